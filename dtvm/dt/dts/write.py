"""The DTS writer: a tree back to source text, formatted exactly as dtc 1.6.1 formats it.

dtc writes each property value by walking its markers: type markers open a
new group (``<``, ``[``, ``/bits/ 16 <`` or a string), label markers print
``name:`` in place, and reference markers only separate. Values without type
markers (from a blob) get dtc's type guess. Quirks are kept on purpose, since
byte-identical output is the contract: bytes >= 0x80 in strings print as
sign-extended ``\\xffffffc3``, and references print as their resolved numbers.
"""

from __future__ import annotations

from dtvm.dt.dts.source import pos_spans
from dtvm.dt.tree import DeviceTree, Marker, MarkerType, Node, Property, SourcePos
from dtvm.errors import DtvmError

__all__ = ["format_propval", "guess_value_type", "write_dts"]

_TYPE_UINT8 = MarkerType.TYPE_UINT8
_TYPE_UINT16 = MarkerType.TYPE_UINT16
_TYPE_UINT32 = MarkerType.TYPE_UINT32
_TYPE_UINT64 = MarkerType.TYPE_UINT64
_TYPE_STRING = MarkerType.TYPE_STRING
_LABEL = MarkerType.LABEL
_TYPE_NONE = MarkerType.TYPE_NONE

_WIDTH = {_TYPE_UINT8: 1, _TYPE_UINT16: 2, _TYPE_UINT32: 4, _TYPE_UINT64: 8}


class UnwritableValue(DtvmError):
    """A value that dtc 1.6.1 cannot write as DTS (its writer aborts on an assertion).

    dtc crashes on these; dtvm refuses them with a message instead, so both reject.
    """

    def __init__(self, prop: Property, what: str) -> None:
        super().__init__(f"error: property '{prop.name}': cannot be written as DTS ({what}); dtc 1.6.1 aborts here too")


_DELIM_START = {_TYPE_UINT8: "[", _TYPE_UINT16: "/bits/ 16 <", _TYPE_UINT32: "<", _TYPE_UINT64: "/bits/ 64 <", _TYPE_STRING: ""}
_DELIM_END = {_TYPE_UINT8: "]", _TYPE_UINT16: ">", _TYPE_UINT32: ">", _TYPE_UINT64: ">", _TYPE_STRING: ""}

# C isprint() in the C locale, plus NUL and the escapes dtc treats as string characters
_STRINGCHARS = frozenset(range(0x20, 0x7F)) | {0, 7, 8, 9, 10, 11, 12, 13}
_NOT_STRING = bytes(b for b in range(256) if b not in _STRINGCHARS)

_NEEDS_ESCAPE = bytes(b for b in range(256) if not 0x20 <= b < 0x7F or b in (0x5C, 0x22))

_ESC = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 0x5C: "\\\\", 0x22: '\\"', 0: "\\0"}


def _string_table() -> list[str]:
    table = []
    for b in range(256):
        if b in _ESC:
            table.append(_ESC[b])
        elif 0x20 <= b < 0x7F:
            table.append(chr(b))
        elif b >= 0x80:
            table.append(f"\\x{(b - 256) & 0xFFFFFFFF:02x}")  # a signed char through %x
        else:
            table.append(f"\\x{b:02x}")
    return table


_STRMAP = _string_table()


def _write_string(p: bytes) -> str:
    """One NUL-terminated chunk as a quoted C string (dtc's write_propval_string)."""
    if not p:
        return ""
    body = p[:-1]
    if body.translate(None, _NEEDS_ESCAPE) != body:
        return '"' + "".join([_STRMAP[b] for b in body]) + '"'
    return '"' + body.decode("latin-1") + '"'


def _write_ints(p: bytes, width: int) -> str:
    if width == 1:
        return p.hex(" ")
    n = len(p) // width
    vals = [int.from_bytes(p[k * width : (k + 1) * width], "big") for k in range(n)]
    return " ".join([f"0x{v:02x}" for v in vals])


def guess_value_type(value: bytes, markers: list[Marker]) -> MarkerType:
    """dtc's guess for values that carry no type: string, cells or bytes."""
    n = len(value)
    nnotstring = n - len(value.translate(None, _NOT_STRING))
    nnul = value.count(0)
    nnotstringlbl = 0
    nnotcelllbl = 0
    for m in markers:
        if m.type == _LABEL:
            if m.offset > 0 and value[m.offset - 1] != 0:
                nnotstringlbl += 1
            if m.offset % 4:
                nnotcelllbl += 1
    if n and value[-1] == 0 and nnotstring == 0 and nnul <= n - nnul and nnotstringlbl == 0:
        return _TYPE_STRING
    if n % 4 == 0 and nnotcelllbl == 0:
        return _TYPE_UINT32
    return _TYPE_UINT8


def format_propval(prop: Property) -> str:
    """The text after the property name: ``;`` or `` = <...>;`` (without newline)."""
    value = prop.value
    n = len(value)
    if n == 0:
        return ";"
    markers = prop.markers
    if not any(m.type >= _TYPE_UINT8 for m in markers):
        markers = [Marker(0, guess_value_type(value, markers)), *markers]
    out = [" ="]
    emit_type = _TYPE_NONE
    nm = len(markers)
    # offset of the next type marker after index k, for type_marker_length
    next_type_off: list[int | None] = [None] * nm
    nxt: int | None = None
    for k in range(nm - 1, -1, -1):
        next_type_off[k] = nxt
        if markers[k].type >= _TYPE_UINT8:
            nxt = markers[k].offset
    for k, m in enumerate(markers):
        off = m.offset
        end = markers[k + 1].offset if k + 1 < nm else n
        chunk_len = end - off
        nto = next_type_off[k]
        tml = nto - off if nto is not None else 0
        data_len = tml if tml else n - off
        mtype = m.type
        if mtype >= _TYPE_UINT8:
            emit_type = mtype
            out.append(" " + _DELIM_START[mtype])
        elif mtype == _LABEL:
            out.append(f" {m.ref}:")
        elif off:
            out.append(" ")
        if emit_type == _TYPE_NONE:
            if chunk_len:
                raise UnwritableValue(prop, "bytes before any type marker (/incbin/ first)")
            continue
        chunk = value[off:end]
        if emit_type == _TYPE_STRING:
            if chunk and chunk[-1] != 0:
                raise UnwritableValue(prop, "a string chunk without its terminating NUL")
            out.append(_write_string(chunk))
        else:
            width = _WIDTH[emit_type]
            if chunk_len % width:
                raise UnwritableValue(prop, f"{chunk_len} bytes in {width}-byte elements")
            out.append(_write_ints(chunk, width))
        if chunk_len == data_len:
            out.append(_DELIM_END[emit_type] if off + chunk_len == n else _DELIM_END[emit_type] + ",")
            emit_type = _TYPE_NONE
    out.append(";")
    return "".join(out)


def _shorten(fname: str, initial: str) -> str | None:
    """dtc's shorten_to_initial_path: ``fname`` relative to the initial file's directory."""
    prevslash = -1
    slashes = 0
    for i in range(min(len(fname), len(initial))):
        if fname[i] != initial[i]:
            break
        if fname[i] == "/":
            prevslash = i
            slashes += 1
    if prevslash < 0:
        return None
    return "../" * (initial.count("/") - slashes) + fname[prevslash + 1 :]


class _Annotator:
    """dtc's srcpos_string_first / srcpos_string_last for ``-T`` (level 1) and ``-T -T`` (level 2)."""

    def __init__(self, dt: DeviceTree, level: int) -> None:
        self.level = level
        self.initial = self._initial_path(dt)
        self.short: dict[str, str] = {}

    @staticmethod
    def _initial_path(dt: DeviceTree) -> str:
        """The main file's name, or the file named by the first linemarker (dtc's initial_path)."""
        if dt.initial_path:
            return dt.initial_path
        first: tuple[int, str] | None = None
        seen: set[int] = set()
        for node in dt.root.walk(with_deleted=True):
            positions = [*pos_spans(node.pos), *(p.pos for p in node.props if p.pos is not None)]
            if node.pos is not None:
                positions.append(node.pos)  # its own buffer: where the name (or '/') was read
            for pos in positions:
                # a span may start in one buffer and end in another (/include/)
                for src in (pos.source, getattr(pos, "end_source", pos.source), getattr(pos, "brace_source", pos.source)):
                    if id(src) in seen:
                        continue
                    seen.add(id(src))
                    mark = getattr(src, "first_mark", None)
                    if mark is not None and (first is None or mark[0] < first[0]):
                        first = mark
        return first[1] if first is not None else dt.source_name

    def comment(self, pos: SourcePos | None, first_line: bool) -> str:
        """`` /* file:line, ... */`` for a node or property, or "" where dtc prints nothing."""
        spans = pos_spans(pos)
        if not spans:
            return " /* <no-file>:<no-line> */" if self.level > 1 else ""
        parts = []
        for span in spans:
            # dtc names the file the rule ended in and counts the first line where it began
            fname, last_line, last_col = span.end_location()
            _, line, col = span.location()
            if self.level > 1:
                parts.append(f"{fname}:{line}:{col}-{last_line}:{last_col}")
                continue
            short = self.short.get(fname)
            if short is None:
                short = self.short[fname] = _shorten(fname, self.initial) or fname
            parts.append(f"{short}:{line if first_line else last_line}")
        return " /* " + ", ".join(parts) + " */"


def write_dts(dt: DeviceTree, annotate: int = 0) -> str:
    """The whole tree as DTS text, exactly as ``dtc -O dts`` prints it (``-T`` levels in ``annotate``)."""
    ann = _Annotator(dt, annotate) if annotate else None
    out: list[str] = ["/dts-v1/;\n\n"]
    for entry in dt.reservations:
        for lab in entry.labels:
            if not lab.deleted:
                out.append(f"{lab.name}: ")
        out.append(f"/memreserve/\t0x{entry.address:016x} 0x{entry.size:016x};\n")
    # iterative pre-order; each child is preceded by a blank line
    stack: list[tuple[Node, int, bool]] = [(dt.root, 0, False)]
    append = out.append
    while stack:
        node, level, closing = stack.pop()
        indent = "\t" * level
        if closing:
            append(indent + "};" + (ann.comment(node.pos, False) if ann else "") + "\n")
            continue
        if level:
            append("\n")
        labels = "".join([lab.name + ": " for lab in node.labels if not lab.deleted])
        append(f"{indent}{labels}{node.name or '/'} {{" + (ann.comment(node.pos, True) if ann else "") + "\n")
        pindent = indent + "\t"
        for prop in node.props:
            if prop.deleted:
                continue
            plabels = "".join([lab.name + ": " for lab in prop.labels if not lab.deleted])
            append(f"{pindent}{plabels}{prop.name}{format_propval(prop)}")
            append(ann.comment(prop.pos, True) + "\n" if ann else "\n")
        stack.append((node, level, True))
        for child in reversed(node.children):
            if not child.deleted:
                stack.append((child, level + 1, False))
    return "".join(out)
