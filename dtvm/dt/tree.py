"""The live tree: nodes, properties, labels, phandles, path lookup.

The model mirrors dtc's ``livetree.c`` on purpose, because dtc's observable
behaviour depends on it: deleted nodes, properties and labels stay in their
lists with a ``deleted`` flag (so a node deleted and later redefined comes back
in its old place), labels are prepended, and a property value is bytes plus
markers (labels, phandle and path references, type hints) so that the DTS
writer can give back ``<&uart0 0x10>`` as it was written.

The tree knows nothing of QEMU or bindings.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from typing import Any

__all__ = [
    "PHANDLE_BOTH",
    "PHANDLE_EPAPR",
    "PHANDLE_LEGACY",
    "DeviceTree",
    "Label",
    "Marker",
    "MarkerType",
    "Node",
    "Property",
    "ReserveEntry",
    "SourcePos",
]


class MarkerType(enum.IntEnum):
    """dtc's marker types; the order matters: type hints compare >= UINT8."""

    TYPE_NONE = 0
    REF_PHANDLE = 1
    REF_PATH = 2
    LABEL = 3
    TYPE_UINT8 = 4
    TYPE_UINT16 = 5
    TYPE_UINT32 = 6
    TYPE_UINT64 = 7
    TYPE_STRING = 8


TYPE_UINT8 = MarkerType.TYPE_UINT8

#: Node paths longer than this are computed when asked for, never stored (see Node.path).
PATH_CACHE_MAX = 1024


class Marker:
    """A position in a property value that carries meaning beyond the bytes."""

    __slots__ = ("offset", "ref", "type")

    def __init__(self, offset: int, type: MarkerType, ref: str | None = None) -> None:
        self.offset = offset
        self.type = type
        self.ref = ref

    @property
    def is_type(self) -> bool:
        return self.type >= TYPE_UINT8

    def copy(self, shift: int = 0) -> Marker:
        return Marker(self.offset + shift, self.type, self.ref)

    def __repr__(self) -> str:
        ref = f", {self.ref!r}" if self.ref is not None else ""
        return f"Marker({self.offset}, {self.type.name}{ref})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Marker)
            and self.offset == other.offset
            and self.type == other.type
            and self.ref == other.ref
        )

    __hash__ = None  # type: ignore[assignment]


class SourcePos:
    """Where something came from: a source buffer and a byte range in it.

    Line and column are computed on demand: most positions are never shown,
    and computing them eagerly costs measurable time on large trees.
    """

    __slots__ = ("end", "source", "start")

    def __init__(self, source: Any, start: int, end: int) -> None:
        self.source = source  # dtvm.dt.dts.source.SourceBuffer or similar
        self.start = start
        self.end = end

    def location(self) -> tuple[str, int, int]:
        """(file name, 1-based line, 1-based column) of the start."""
        return self.source.location(self.start)  # type: ignore[no-any-return]

    def end_location(self) -> tuple[str, int, int]:
        return self.source.location(self.end)  # type: ignore[no-any-return]

    def __str__(self) -> str:
        name, line, col = self.location()
        return f"{name}:{line}:{col}"

    def __repr__(self) -> str:
        return f"SourcePos({self})"


class Label:
    """A label on a node, property or reservation; deleted labels stay listed."""

    __slots__ = ("deleted", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.deleted = False

    def __repr__(self) -> str:
        return f"Label({self.name!r}{', deleted' if self.deleted else ''})"


def add_label(labels: list[Label], name: str) -> Label:
    """dtc's add_label: revive an existing label, else prepend a new one."""
    for lab in labels:
        if lab.name == name:
            lab.deleted = False
            return lab
    lab = Label(name)
    labels.insert(0, lab)
    return lab


def live_labels(labels: list[Label]) -> list[str]:
    return [lab.name for lab in labels if not lab.deleted]


class Property:
    """A named value: bytes plus markers, with labels and a source position."""

    __slots__ = ("deleted", "labels", "markers", "name", "pos", "value")

    def __init__(
        self,
        name: str,
        value: bytes = b"",
        markers: list[Marker] | None = None,
        pos: SourcePos | None = None,
    ) -> None:
        self.name = name
        self.value = value
        self.markers: list[Marker] = markers if markers is not None else []
        self.labels: list[Label] = []
        self.pos = pos
        self.deleted = False

    def __repr__(self) -> str:
        return f"Property({self.name!r}, {self.value!r})"

    # -- typed accessors ----------------------------------------------------
    def as_bytes(self) -> bytes:
        """The raw value, as the blob holds it (references already resolved if the tree was)."""
        return self.value

    def as_u32s(self) -> list[int]:
        """The value as big-endian 32-bit cells; ValueError if it is not whole cells."""
        n, rem = divmod(len(self.value), 4)
        if rem:
            raise ValueError(f"property {self.name}: length {len(self.value)} is not a multiple of 4")
        return list(struct.unpack(f">{n}I", self.value))

    def as_u32(self) -> int:
        """The value as exactly one 32-bit cell (a phandle, a count); ValueError otherwise."""
        if len(self.value) != 4:
            raise ValueError(f"property {self.name}: expected one cell, got {len(self.value)} bytes")
        return int.from_bytes(self.value, "big")

    def as_u64s(self) -> list[int]:
        """The value as big-endian 64-bit numbers (``/bits/ 64``); ValueError if not whole ones."""
        n, rem = divmod(len(self.value), 8)
        if rem:
            raise ValueError(f"property {self.name}: length {len(self.value)} is not a multiple of 8")
        return list(struct.unpack(f">{n}Q", self.value))

    def as_strings(self) -> list[str]:
        """NUL-separated strings; ValueError if the value is not NUL-terminated text."""
        if not self.value or self.value[-1] != 0:
            raise ValueError(f"property {self.name}: not a NUL-terminated string list")
        try:
            return self.value[:-1].decode("utf-8").split("\0")
        except UnicodeDecodeError as exc:
            raise ValueError(f"property {self.name}: not UTF-8 text ({exc})") from None

    def as_string(self) -> str:
        """The value as exactly one string; ValueError for a list or non-text."""
        strings = self.as_strings()
        if len(strings) != 1:
            raise ValueError(f"property {self.name}: expected one string, got {len(strings)}")
        return strings[0]

    def copy(self) -> Property:
        p = Property(self.name, self.value, [m.copy() for m in self.markers], self.pos)
        p.labels = [Label(lab.name) for lab in self.labels if not lab.deleted]
        return p


class Node:
    """A devicetree node, dtc-style: deleted children and properties stay listed."""

    __slots__ = (
        "_fullpath",
        "children",
        "deleted",
        "is_referenced",
        "labels",
        "name",
        "omit_if_unused",
        "parent",
        "phandle",
        "pos",
        "props",
    )

    def __init__(self, name: str = "", pos: SourcePos | None = None) -> None:
        self.name = name
        self.props: list[Property] = []
        self.children: list[Node] = []
        self.parent: Node | None = None
        self.labels: list[Label] = []
        self.pos = pos
        self.deleted = False
        self.phandle = 0
        self.omit_if_unused = False
        self.is_referenced = False
        self._fullpath: str | None = None

    def __repr__(self) -> str:
        return f"Node({self.path!r})"

    # -- names --------------------------------------------------------------
    @property
    def basename(self) -> str:
        """The node name without the unit address."""
        at = self.name.find("@")
        return self.name if at < 0 else self.name[:at]

    @property
    def unit_address(self) -> str | None:
        at = self.name.find("@")
        return None if at < 0 else self.name[at + 1 :]

    @property
    def path(self) -> str:
        """The full path, as dtc's fill_fullpaths computes it.

        Computed, not stored: a path string per node costs the sum of all path lengths, which a
        100,000-deep blob (1.2 MB) turns into gigabytes.  Paths up to :data:`PATH_CACHE_MAX`
        characters are cached by :meth:`freeze_paths`; a deeper node's path is built from its
        nearest cached ancestor on each call (the caller asked for a string that long).
        """
        if self._fullpath:
            return self._fullpath
        parts = []
        node: Node | None = self
        while node is not None and node.parent is not None:
            if node._fullpath:
                break
            parts.append(node.name)
            node = node.parent
        parts.reverse()
        if node is not None and node._fullpath and node._fullpath != "/":
            return node._fullpath + "/" + "/".join(parts)
        return "/" + "/".join(parts)

    @property
    def frozen(self) -> bool:
        """True if the node existed when paths were frozen (dtc's fill_fullpaths ran): nodes
        generated later (aliases, __symbols__, fixups) have no full path in dtc."""
        return self._fullpath is not None

    def freeze_paths(self) -> None:
        """Mark the nodes below as having full paths (dtc's fill_fullpaths), caching the short ones.

        The tree must not be renamed afterwards.  Memory stays linear: a path longer than
        :data:`PATH_CACHE_MAX` is not stored (the node is marked with ``""``) and is computed on
        demand.
        """
        start = self.path
        stack: list[tuple[Node, str | None]] = [(self, start if len(start) <= PATH_CACHE_MAX else None)]
        while stack:
            node, path = stack.pop()
            node._fullpath = path if path is not None else ""
            if path is None:
                for child in node.children:
                    stack.append((child, None))
                continue
            prefix = path if path != "/" else ""
            for child in node.children:
                cpath: str | None = None
                if len(prefix) + 1 + len(child.name) <= PATH_CACHE_MAX:
                    cpath = prefix + "/" + child.name
                stack.append((child, cpath))

    # -- iteration ----------------------------------------------------------
    def live_props(self) -> Iterator[Property]:
        return (p for p in self.props if not p.deleted)

    def live_children(self) -> Iterator[Node]:
        return (c for c in self.children if not c.deleted)

    @property
    def properties(self) -> list[Property]:
        return [p for p in self.props if not p.deleted]

    @property
    def nodes(self) -> list[Node]:
        return [c for c in self.children if not c.deleted]

    def walk(self, with_deleted: bool = False) -> Iterator[Node]:
        """Pre-order walk, iterative so that deep trees cannot exhaust the stack."""
        if self.deleted and not with_deleted:
            return
        stack: list[Node] = [self]
        while stack:
            node = stack.pop()
            yield node
            kids = node.children if with_deleted else [c for c in node.children if not c.deleted]
            stack.extend(reversed(kids))

    # -- lookup -------------------------------------------------------------
    def get_property(self, name: str) -> Property | None:
        """The live property of that name, or None (``node[name]`` raises KeyError instead)."""
        for p in self.props:
            if not p.deleted and p.name == name:
                return p
        return None

    def __getitem__(self, name: str) -> Property:
        p = self.get_property(name)
        if p is None:
            raise KeyError(f"{self.path}: no property {name!r}")
        return p

    def __contains__(self, name: str) -> bool:
        return self.get_property(name) is not None

    def get_child(self, name: str) -> Node | None:
        """The live child with that full name (``name@unit``), or None."""
        for c in self.children:
            if not c.deleted and c.name == name:
                return c
        return None

    def get_node(self, path: str) -> Node | None:
        """dtc's get_node_by_path: full child names, deleted nodes invisible."""
        if self.deleted:
            return None
        node: Node = self
        for part in path.split("/"):
            if not part:
                continue
            nxt = node.get_child(part)
            if nxt is None:
                return None
            node = nxt
        return node

    def get_node_by_label(self, label: str) -> Node | None:
        for node in self.walk():
            for lab in node.labels:
                if not lab.deleted and lab.name == label:
                    return node
        return None

    def get_node_by_phandle(self, phandle: int) -> Node | None:
        if phandle == 0 or phandle == 0xFFFFFFFF:
            return None
        for node in self.walk():
            if node.phandle == phandle:
                return node
        return None

    def get_node_by_ref(self, ref: str) -> Node | None:
        """A reference is "/", a path, or a label (1.8.1: label/path)."""
        if ref == "/":
            return self
        if ref.startswith("/"):
            return self.get_node(ref)
        slash = ref.find("/")
        if slash > 0:
            base = self.get_node_by_label(ref[:slash])
            return None if base is None else base.get_node(ref[slash:])
        return self.get_node_by_label(ref)

    # -- editing ------------------------------------------------------------
    def add_property(self, prop: Property) -> Property:
        self.props.append(prop)
        return prop

    def set_property(self, name: str, value: bytes, markers: list[Marker] | None = None) -> Property:
        """Set (or add, last) a property to raw bytes: a string value needs its NUL."""
        p = self.get_property(name)
        if p is None:
            return self.add_property(Property(name, value, markers))
        p.value = value
        p.markers = markers if markers is not None else []
        return p

    def add_child(self, child: Node) -> Node:
        child.parent = self
        self.children.append(child)
        return child

    def delete_property(self, name: str) -> None:
        """dtc's delete_property_by_name: the first property of that name, deleted or not."""
        for p in self.props:
            if p.name == name:
                p.deleted = True
                for lab in p.labels:
                    lab.deleted = True
                return

    def delete(self) -> None:
        """dtc's delete_node: mark this subtree deleted, labels included."""
        for node in self.walk(with_deleted=True):
            node.deleted = True
            for p in node.props:
                p.deleted = True
                for lab in p.labels:
                    lab.deleted = True
            for lab in node.labels:
                lab.deleted = True


class ReserveEntry:
    """A /memreserve/ entry.

    A plain class, not a dataclass: importing ``dataclasses`` costs ~5 ms of every short run.
    """

    __slots__ = ("address", "labels", "size")

    def __init__(self, address: int, size: int, labels: list[Label] | None = None) -> None:
        self.address = address
        self.size = size
        self.labels: list[Label] = labels if labels is not None else []

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReserveEntry):
            return NotImplemented
        return (self.address, self.size, self.labels) == (other.address, other.size, other.labels)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ReserveEntry(address={self.address:#x}, size={self.size:#x}, labels={self.labels!r})"


PHANDLE_LEGACY = 1
PHANDLE_EPAPR = 2
PHANDLE_BOTH = 3


class DeviceTree:
    """dtc's dt_info: the root node plus what lives outside it (a plain class, see ReserveEntry)."""

    def __init__(
        self,
        root: Node,
        reservations: list[ReserveEntry] | None = None,
        boot_cpuid: int = 0,
        plugin: bool = False,
        source_name: str = "",
    ) -> None:
        self.root = root
        self.reservations: list[ReserveEntry] = reservations if reservations is not None else []
        self.boot_cpuid = boot_cpuid
        self.plugin = plugin
        self.source_name = source_name
        #: dtc's initial path for -T (the first linemarker read, else the main file); "" when unknown
        self.initial_path = ""

    def __repr__(self) -> str:
        return f"DeviceTree(root={self.root!r}, reservations={self.reservations!r}, plugin={self.plugin})"

    def get_node(self, path: str) -> Node | None:
        return self.root.get_node(path)
