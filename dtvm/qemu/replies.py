"""The shape of every QMP answer dtvm uses, checked once, before anything reads it.

A QMP peer is not trusted: it may be another QEMU version, a proxy, or something that only
pretends to be QEMU.  Code that reads an answer (``reply["arch"]``, ``for p in listed``,
``int(address["unit"])``) would otherwise turn a wrong type into ``'int' object has no attribute
'get'`` far from the command that caused it.  So :func:`check` holds each answer against the shape
QEMU 7.2 documents for that command (its QAPI schema: the members dtvm reads are required with
their types, the others are free) and raises :class:`~dtvm.qemu.errors.QmpReplyError`, one line
naming the command and the place in the answer, when it does not match.

Every answer is also bounded before its shape is looked at: nesting depth (:data:`MAX_DEPTH`),
number of JSON values (:data:`MAX_VALUES`) and list lengths per command.  The size of one answer is
bounded earlier, by the reader (``dtvm.qemu.qmp.MAX_REPLY_BYTES``), and its time by the caller's
deadline.  Shapes are data (a few combinators below), so adding a command is one line of the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import repeat
from typing import Any

__all__ = ["ADDRESS_PROPS", "MAX_DEPTH", "MAX_DTB_BYTES", "MAX_VALUES", "ReplyMismatch", "check", "describe_command"]

#: Bus address properties read from every ``-device``/``device_add`` device that has them.
ADDRESS_PROPS = ("addr", "port", "unit", "scsi-id", "lun", "channel", "nr", "reg", "iobase", "index",
                 "address", "bus-nr")

#: The largest device tree blob accepted from ``dumpdtb`` (arm ``virt`` pads its DT to 1 MiB).
MAX_DTB_BYTES = 16 << 20

#: No QEMU answer nests deeper than 6 (query-block: list, object, inserted, image, format-specific,
#: data); 32 leaves room for future members while keeping every walk over an answer shallow.
MAX_DEPTH = 32
#: JSON values in one answer: ``qom-list-types`` of a full QEMU has about 3,000 (1,000 entries of
#: three members); this is generous and still bounds the work a hostile answer can cause.
MAX_VALUES = 500_000

_MAX_LIST = 65_536  # entries of a list answer (qom-list of a container, types, block nodes)


class ReplyMismatch(Exception):
    """Where an answer differs from its shape (``[3].inserted.ro``) and how."""

    def __init__(self, where: str, detail: str) -> None:
        self.where = where
        self.detail = detail
        super().__init__(f"{where or 'the answer'}: {detail}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _join(where: str, key: str | int) -> str:
    return f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else key)


def _under(where: str, key: str | int, exc: ReplyMismatch) -> ReplyMismatch:
    """``exc``, found in member or entry ``key`` (validated with an empty ``where``), placed at
    ``where``: the path is built only for an answer that fails, not for every value of one that
    does not (about 5 ms of every ``qemu2dtb``)."""
    base = _join(where, key)
    rel = exc.where
    return ReplyMismatch(base + rel if rel.startswith("[") else f"{base}.{rel}" if rel else base, exc.detail)


class Shape:
    """What one JSON value must be; ``validate`` raises :class:`ReplyMismatch`."""

    what = "a value"

    def validate(self, value: Any, where: str) -> None:
        raise NotImplementedError


class _Type(Shape):
    def __init__(self, what: str, *types: type) -> None:
        self.what = what
        self.types = types
        self.exact = frozenset(types)  # what json.loads makes: the test for nearly every value

    def validate(self, value: Any, where: str) -> None:
        if type(value) in self.exact:
            return
        # bool is an int in Python, never in JSON
        if isinstance(value, bool) and bool not in self.types:
            raise ReplyMismatch(where, f"expected {self.what}, got {_kind(value)}")
        if not isinstance(value, self.types):
            raise ReplyMismatch(where, f"expected {self.what}, got {_kind(value)}")


class _AnyOf(Shape):
    def __init__(self, *shapes: Shape) -> None:
        self.shapes = shapes
        self.what = " or ".join(s.what for s in shapes)

    def validate(self, value: Any, where: str) -> None:
        for shape in self.shapes:
            try:
                shape.validate(value, where)
                return
            except ReplyMismatch:
                continue
        raise ReplyMismatch(where, f"expected {self.what}, got {_kind(value)}")


class _Any(Shape):
    """Any JSON value (its depth and size are bounded for the whole answer by :func:`check`)."""

    what = "any value"

    def validate(self, value: Any, where: str) -> None:
        return


class List(Shape):
    def __init__(self, item: Shape, limit: int = _MAX_LIST) -> None:
        self.item = item
        self.limit = limit
        self.what = "an array"

    def validate(self, value: Any, where: str) -> None:
        if not isinstance(value, list):
            raise ReplyMismatch(where, f"expected an array, got {_kind(value)}")
        if len(value) > self.limit:
            raise ReplyMismatch(where, f"{len(value)} entries, more than the {self.limit} dtvm reads")
        shape = self.item
        for i, item in enumerate(value):
            try:
                shape.validate(item, "")
            except ReplyMismatch as exc:
                raise _under(where, i, exc) from None


class Obj(Shape):
    """A JSON object with these members (``optional``: may be absent); other members are free."""

    what = "an object"

    def __init__(self, required: Mapping[str, Shape] | None = None,
                 optional: Mapping[str, Shape] | None = None) -> None:
        self.required = dict(required or {})
        self.optional = dict(optional or {})

    def validate(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise ReplyMismatch(where, f"expected an object, got {_kind(value)}")
        for key, shape in self.required.items():
            if key not in value:
                raise ReplyMismatch(where, f"member {key!r} is missing")
            try:
                shape.validate(value[key], "")
            except ReplyMismatch as exc:
                raise _under(where, key, exc) from None
        for key, shape in self.optional.items():
            if key in value:
                try:
                    shape.validate(value[key], "")
                except ReplyMismatch as exc:
                    raise _under(where, key, exc) from None


class DictOf(Shape):
    """A JSON object used as a map: every member's value has one shape."""

    what = "an object"

    def __init__(self, value: Shape) -> None:
        self.value = value

    def validate(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise ReplyMismatch(where, f"expected an object, got {_kind(value)}")
        shape = self.value
        for key, item in value.items():
            try:
                shape.validate(item, "")
            except ReplyMismatch as exc:
                raise _under(where, key, exc) from None


STR = _Type("a string", str)
INT = _Type("an integer", int)
BOOL = _Type("a boolean", bool)
ANY = _Any()
SCALAR = _Type("a string, number, boolean or null", str, int, float, bool, type(None))
OBJ = Obj()

_PROPERTY_INFO = Obj({"name": STR, "type": STR}, {"default-value": ANY, "description": STR})

#: command -> shape of its ``return`` value (members dtvm reads are required; QEMU 7.2's QAPI schema)
SHAPES: dict[str, Shape] = {
    "qom-list": List(Obj({"name": STR, "type": STR})),
    "qom-list-properties": List(_PROPERTY_INFO, 4096),
    "device-list-properties": List(_PROPERTY_INFO, 4096),
    "qom-list-types": List(Obj({"name": STR}, {"parent": STR, "abstract": BOOL})),
    "human-monitor-command": STR,
    "query-cpus-fast": List(Obj({"qom-path": STR, "cpu-index": INT}, {"thread-id": INT, "target": STR,
                                                                      "props": DictOf(INT)}), 4096),
    "query-hotpluggable-cpus": List(Obj({"type": STR, "vcpus-count": INT, "props": DictOf(INT)},
                                        {"qom-path": STR}), 4096),
    "query-target": Obj({"arch": STR}),
    # QEMU >= 9.1 with compat-props: true (what each versioned machine type changes in device defaults)
    "query-machines": List(Obj({"name": STR}, {"alias": STR, "compat-props": List(
        Obj({"qom-type": STR, "property": STR, "value": STR}), 4096)}), 4096),
    "query-version": Obj({"qemu": Obj({"major": INT, "minor": INT, "micro": INT}), "package": STR}),
    "query-memory-size-summary": Obj({"base-memory": INT}, {"plugged-memory": INT}),
    "query-memdev": List(Obj({"size": INT}, {"id": STR})),
    "query-block": List(Obj({"device": STR, "removable": BOOL},
                            {"inserted": Obj({"file": STR, "drv": STR, "ro": BOOL},
                                             {"node-name": STR, "backing_file": STR}),
                             "qdev": STR})),
    "query-named-block-nodes": List(Obj({"file": STR, "drv": STR}, {"node-name": STR})),
    "query-chardev": List(Obj({"label": STR, "filename": STR}, {"frontend-open": BOOL})),
    "query-migrate": Obj(optional={"status": STR}),
    "query-status": Obj({"status": STR}, {"running": BOOL}),
    "dumpdtb": OBJ,
    "device_add": OBJ,
    "device_del": OBJ,
}

#: qom-get: the properties dtvm reads by name, and the scalar machine properties for the rest
_QOM_GET = {"type": STR, "parent_bus": STR, "hotplugged": BOOL, "chardev": STR,
            **{name: _AnyOf(INT, STR) for name in ADDRESS_PROPS},
            "cxl-fmw": List(OBJ),
            # the machine's -m (a struct); a device's link of that name (an x86 CPU's) is a path
            "memory": _AnyOf(Obj(optional={k: INT for k in ("size", "slots", "max-size")}), STR),
            "smp": Obj(optional={k: INT for k in ("cpus", "maxcpus", "sockets", "dies", "clusters", "cores", "threads")})}


def shape_of(command: str, arguments: Mapping[str, object] | None) -> Shape:
    """The shape of ``command``'s answer (``qom-get``'s depends on the property asked for)."""
    if command == "qom-get":
        prop = (arguments or {}).get("property")
        return _QOM_GET.get(prop, SCALAR) if isinstance(prop, str) else SCALAR
    return SHAPES.get(command, ANY)


def describe_command(command: str, arguments: Mapping[str, object] | None) -> str:
    """The command as a message names it: ``qom-get /machine type``, ``human-monitor-command info qtree``."""
    args = arguments or {}
    if command == "qom-get":
        return f"qom-get {args.get('path')} {args.get('property')}"
    if command in ("qom-list", "device-list-properties", "qom-list-properties"):
        arg = args.get("path", args.get("typename"))
        return f"{command} {arg}" if arg is not None else command
    if command == "human-monitor-command":
        return f"human-monitor-command {args.get('command-line')!r}"
    return command


def _bounded(value: Any) -> None:
    """Depth and count limits over the whole answer, without recursion."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ReplyMismatch("", f"more than {MAX_VALUES} values")
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= MAX_DEPTH:
            raise ReplyMismatch("", f"nested deeper than {MAX_DEPTH}")
        stack.extend(zip(children, repeat(depth + 1)))


def check(command: str, arguments: Mapping[str, object] | None, value: Any) -> Any:
    """``value`` if it has the shape of ``command``'s answer, else :class:`ReplyMismatch`."""
    _bounded(value)
    shape_of(command, arguments).validate(value, "")
    return value
