"""``dtc -O yaml``: the tree as YAML, byte-identical to dtc 1.6.1 (``yamltree.c``) through libyaml 0.2.5.

dtc builds a stream of libyaml events (a block sequence holding the root
node's mapping; each property a flow sequence of typed chunks) and libyaml's
emitter decides the layout. This module produces the same events' text
directly, with the emitter's state kept as libyaml keeps it (column,
``whitespace``, ``indention``, the indent stack, the flow level), so that
the quoting of keys, the ``? key`` form of keys longer than 128 characters,
tags (``!u8``, ``!phandle``, ``! 'name'``) and the wrapping of lines past
column 80 come out exactly as libyaml writes them.

Where dtc aborts (an assertion in yamltree.c, or ``die()``), dtvm raises a
:class:`~dtvm.errors.DtvmError` instead, so that both reject the input.
"""

from __future__ import annotations

from dtvm.dt.tree import DeviceTree, MarkerType, Node, Property
from dtvm.errors import DtvmError

__all__ = ["UnwritableYaml", "write_yaml"]

_BEST_WIDTH = 80
_BEST_INDENT = 2

_TYPE_UINT8 = MarkerType.TYPE_UINT8
_TYPE_UINT16 = MarkerType.TYPE_UINT16
_TYPE_UINT32 = MarkerType.TYPE_UINT32
_TYPE_UINT64 = MarkerType.TYPE_UINT64
_TYPE_STRING = MarkerType.TYPE_STRING
_REF_PHANDLE = MarkerType.REF_PHANDLE

_WIDTH = {_TYPE_UINT8: 1, _TYPE_UINT16: 2, _TYPE_UINT32: 4, _TYPE_UINT64: 8}
_INT_TAG = {1: "u8", 2: "u16", 4: None, 8: "u64"}

# libyaml's double-quoted escapes (yaml_emitter_write_double_quoted_scalar)
_DQ_ESC = {
    0x00: "0",
    0x07: "a",
    0x08: "b",
    0x09: "t",
    0x0A: "n",
    0x0B: "v",
    0x0C: "f",
    0x0D: "r",
    0x1B: "e",
    0x22: '"',
    0x5C: "\\",
}


def _dq_table() -> list[str | None]:
    """For each ASCII code: its escape (``\\x01``), or None if written as is."""
    table: list[str | None] = []
    for c in range(128):
        if c in _DQ_ESC:
            table.append("\\" + _DQ_ESC[c])
        elif 0x20 <= c <= 0x7E:
            table.append(None)
        else:
            table.append(f"\\x{c:02X}")
    return table


_DQ = _dq_table()
_DQ_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F) if c not in (0x22, 0x5C, 0x20))

# first characters that make a plain scalar impossible (yaml_emitter_analyze_scalar)
_LEADING_INDICATORS = frozenset("#,[]{}&*!|>'\"%@`")
_FLOW_INDICATORS = frozenset(",?[]{}")
# characters libyaml writes unescaped in a tag suffix (yaml_emitter_write_tag_content)
_TAG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_;/?:@&=+$,.~*'()[]")


class UnwritableYaml(DtvmError):
    """A value dtc 1.6.1 cannot write as YAML (it aborts on an assertion or dies)."""

    def __init__(self, prop: Property, what: str) -> None:
        super().__init__(
            f"error: property '{prop.name}': cannot be written as YAML ({what}); dtc 1.6.1 aborts here too"
        )


class _Analysis:
    """What yaml_emitter_analyze_scalar finds out about a scalar (the parts used here)."""

    __slots__ = ("block_plain", "flow_plain", "multiline", "single_quoted")

    def __init__(self, value: str) -> None:
        n = len(value)
        if n == 0:
            self.multiline = False
            self.flow_plain = False
            self.block_plain = True
            self.single_quoted = True
            return
        block_ind = flow_ind = False
        line_breaks = special = False
        leading_space = leading_break = trailing_space = trailing_break = False
        break_space = space_break = False
        prev_space = prev_break = False
        if value.startswith("---") or value.startswith("..."):
            block_ind = flow_ind = True
        preceded_ws = True
        followed_ws = n == 1 or value[1] in " \t\r\n"
        for i, ch in enumerate(value):
            if i == 0:
                if ch in _LEADING_INDICATORS:
                    flow_ind = block_ind = True
                if ch in "?:":
                    flow_ind = True
                    if followed_ws:
                        block_ind = True
                if ch == "-" and followed_ws:
                    flow_ind = block_ind = True
            else:
                if ch in _FLOW_INDICATORS:
                    flow_ind = True
                if ch == ":":
                    flow_ind = True
                    if followed_ws:
                        block_ind = True
                if ch == "#" and preceded_ws:
                    flow_ind = block_ind = True
            o = ord(ch)
            if not (o == 0x0A or 0x20 <= o <= 0x7E) or o > 0x7F:
                special = True
            is_break = ch in "\r\n"
            if is_break:
                line_breaks = True
            if ch == " ":
                if i == 0:
                    leading_space = True
                if i == n - 1:
                    trailing_space = True
                if prev_break:
                    break_space = True
                prev_space, prev_break = True, False
            elif is_break:
                if i == 0:
                    leading_break = True
                if i == n - 1:
                    trailing_break = True
                if prev_space:
                    space_break = True
                prev_space, prev_break = False, True
            else:
                prev_space = prev_break = False
            preceded_ws = ch in " \t\r\n"
            if i + 1 < n:
                followed_ws = i + 2 >= n or value[i + 2] in " \t\r\n"
        self.multiline = line_breaks
        flow_plain = block_plain = single = True
        if leading_space or leading_break or trailing_space or trailing_break:
            flow_plain = block_plain = False
        if break_space:
            flow_plain = block_plain = single = False
        if space_break or special:
            flow_plain = block_plain = single = False
        if line_breaks:
            flow_plain = block_plain = False
        if flow_ind:
            flow_plain = False
        if block_ind:
            block_plain = False
        self.flow_plain = flow_plain
        self.block_plain = block_plain
        self.single_quoted = single


class _Emitter:
    """The parts of libyaml's emitter state that decide the text."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.column = 0
        self.whitespace = True
        self.indention = True
        self.indent = -1
        self.indents: list[int] = []
        self.flow_level = 0

    # -- writers (yaml_emitter_write_*) ------------------------------------------
    def put(self, text: str) -> None:
        self.out.append(text)
        self.column += len(text)

    def write_indent(self) -> None:
        indent = self.indent if self.indent >= 0 else 0
        if not self.indention or self.column > indent or (self.column == indent and not self.whitespace):
            self.out.append("\n")
            self.column = 0
        if self.column < indent:
            self.out.append(" " * (indent - self.column))
            self.column = indent
        self.whitespace = True
        self.indention = True

    def write_indicator(
        self, indicator: str, need_whitespace: bool, is_whitespace: bool, is_indention: bool
    ) -> None:
        if need_whitespace and not self.whitespace:
            self.out.append(" ")
            self.column += 1
        self.out.append(indicator)
        self.column += len(indicator)
        self.whitespace = is_whitespace
        self.indention = self.indention and is_indention

    def write_tag(self, handle: str, suffix: str | None) -> None:
        if not self.whitespace:
            self.put(" ")
        self.put(handle)
        if suffix:
            self.put(
                "".join(c if c in _TAG_CHARS else "".join(f"%{b:02X}" for b in c.encode()) for c in suffix)
            )
        self.whitespace = False
        self.indention = False

    def increase_indent(self, flow: bool) -> None:
        self.indents.append(self.indent)
        if self.indent < 0:
            self.indent = _BEST_INDENT if flow else 0
        else:
            self.indent += _BEST_INDENT

    def write_plain(self, value: str, allow_breaks: bool) -> None:
        if not self.whitespace and (value or self.flow_level):
            self.put(" ")
        spaces = breaks = False
        n = len(value)
        i = 0
        while i < n:
            ch = value[i]
            if ch == " ":
                if (
                    allow_breaks
                    and not spaces
                    and self.column > _BEST_WIDTH
                    and not (i + 1 < n and value[i + 1] == " ")
                ):
                    self.write_indent()
                else:
                    self.put(ch)
                spaces = True
            elif ch in "\r\n":
                if not breaks and ch == "\n":
                    self.out.append("\n")
                    self.column = 0
                self.out.append(ch)
                self.column = 0
                self.indention = True
                breaks = True
            else:
                if breaks:
                    self.write_indent()
                self.put(ch)
                self.indention = False
                spaces = breaks = False
            i += 1
        self.whitespace = False
        self.indention = False

    def write_single_quoted(self, value: str, allow_breaks: bool) -> None:
        self.write_indicator("'", True, False, False)
        spaces = breaks = False
        n = len(value)
        for i, ch in enumerate(value):
            if ch == " ":
                if (
                    allow_breaks
                    and not spaces
                    and self.column > _BEST_WIDTH
                    and i != 0
                    and i != n - 1
                    and not (i + 1 < n and value[i + 1] == " ")
                ):
                    self.write_indent()
                else:
                    self.put(ch)
                spaces = True
            elif ch in "\r\n":
                if not breaks and ch == "\n":
                    self.out.append("\n")
                    self.column = 0
                self.out.append(ch)
                self.column = 0
                self.indention = True
                breaks = True
            else:
                if breaks:
                    self.write_indent()
                if ch == "'":
                    self.put("'")
                self.put(ch)
                self.indention = False
                spaces = breaks = False
        if breaks:
            self.write_indent()
        self.write_indicator("'", False, False, False)
        self.whitespace = False
        self.indention = False

    def write_double_quoted(self, value: str, allow_breaks: bool) -> None:
        self.write_indicator('"', True, False, False)
        out = self.out
        n = len(value)
        # fast path: nothing to escape and no chance of a line break
        if self.column + n <= _BEST_WIDTH + 1 or not allow_breaks or " " not in value:
            if all(c in _DQ_PLAIN or c == " " for c in value):
                out.append(value)
                self.column += n
                self.write_indicator('"', False, False, False)
                self.whitespace = False
                self.indention = False
                return
        spaces = False
        for i, ch in enumerate(value):
            o = ord(ch)
            esc = _DQ[o] if o < 128 else f"\\x{o:02X}"
            if esc is not None:
                out.append(esc)
                self.column += len(esc)
                spaces = False
            elif ch == " ":
                if allow_breaks and not spaces and self.column > _BEST_WIDTH and i != 0 and i != n - 1:
                    self.write_indent()
                    if value[i + 1] == " ":
                        self.put("\\")
                else:
                    out.append(" ")
                    self.column += 1
                spaces = True
            else:
                out.append(ch)
                self.column += 1
                spaces = False
        self.write_indicator('"', False, False, False)
        self.whitespace = False
        self.indention = False

    # -- events ------------------------------------------------------------------
    def scalar(
        self,
        value: str,
        tag: tuple[str, str] | None,
        plain_implicit: bool,
        quoted_implicit: bool,
        style: str,
        simple_key: bool,
        analysis: _Analysis | None = None,
    ) -> None:
        """yaml_emitter_emit_scalar: select the style, write tag and value.

        ``tag`` is the analysed tag (handle, suffix), given only when libyaml
        analyses it (both implicit flags false); ``style`` is 'plain',
        'single' or 'double'.
        """
        a = analysis if analysis is not None else _Analysis(value)
        no_tag = tag is None
        if no_tag and not plain_implicit and not quoted_implicit:
            raise DtvmError("yaml: neither tag nor implicit flags are specified")
        if simple_key and a.multiline:
            style = "double"
        if style == "plain":
            if (self.flow_level and not a.flow_plain) or (not self.flow_level and not a.block_plain):
                style = "single"
            if not value and (self.flow_level or simple_key):
                style = "single"
            if no_tag and not plain_implicit:
                style = "single"
        if style == "single" and not a.single_quoted:
            style = "double"
        if no_tag and not quoted_implicit and style != "plain":
            tag = ("!", "")
        if tag is not None:
            self.write_tag(tag[0], tag[1])
        self.increase_indent(True)
        allow_breaks = not simple_key
        if style == "plain":
            self.write_plain(value, allow_breaks)
        elif style == "single":
            self.write_single_quoted(value, allow_breaks)
        else:
            self.write_double_quoted(value, allow_breaks)
        self.indent = self.indents.pop()

    def key(self, name: str, quoted_implicit: bool) -> bool:
        """A block mapping key (yaml_emitter_emit_block_mapping_key); True if it was simple."""
        self.write_indent()
        a = _Analysis(name)
        if not a.multiline and len(name) <= 128:
            self.scalar(name, None, True, quoted_implicit, "plain", True, a)
            self.write_indicator(":", False, False, False)
            return True
        self.write_indicator("?", True, False, True)
        self.scalar(name, None, True, quoted_implicit, "plain", False, a)
        self.write_indent()
        self.write_indicator(":", True, False, True)
        return False

    def flow_seq_start(self, tag: str | None) -> None:
        if tag is not None:
            self.write_tag("!", tag)
        self.write_indicator("[", True, True, False)
        self.increase_indent(True)
        self.flow_level += 1

    def flow_seq_end(self) -> None:
        self.flow_level -= 1
        self.indent = self.indents.pop()
        self.write_indicator("]", False, False, False)

    def flow_item(self, first: bool) -> None:
        if not first:
            self.write_indicator(",", False, False, False)
        if self.column > _BEST_WIDTH:
            self.write_indent()

    def int_seq(self, items: list[str], phandles: set[int] | None, tag: str | None) -> None:
        """A flow sequence of plain hex integers, some tagged ``!phandle``."""
        self.flow_seq_start(tag)
        out = self.out
        col = self.column
        ws = self.whitespace
        indent = self.indent
        wrap = "\n" + " " * indent
        for k, item in enumerate(items):
            if k:
                out.append(",")
                col += 1
                ws = False
            if col > _BEST_WIDTH:
                out.append(wrap)
                col = indent
                ws = True
            if phandles is not None and k in phandles:
                out.append("!phandle " if ws else " !phandle ")
                col += 9 if ws else 10
            elif not ws:
                out.append(" ")
                col += 1
            out.append(item)
            col += len(item)
            ws = False
        self.column = col
        self.whitespace = False
        self.indention = False
        self.flow_seq_end()

    def flow_mapping_empty(self) -> None:
        self.write_indicator("{", True, True, False)
        self.write_indicator("}", False, False, False)


def _propval(e: _Emitter, prop: Property) -> None:
    """dtc's yaml_propval after the key: ``true`` or a flow sequence of chunks."""
    value = prop.value
    n = len(value)
    if n == 0:
        e.scalar("true", None, True, False, "plain", False)
        return
    markers = prop.markers
    if not markers:
        # dtc dies here; /incbin/ data carries a TYPE_NONE marker, so it gets '[]'
        raise UnwritableYaml(prop, "no markers present in the value")
    e.flow_seq_start(None)
    first = True
    remaining = n
    types = [m for m in markers if m.type >= _TYPE_UINT8]
    phandle_offsets = {m.offset for m in markers if m.type == _REF_PHANDLE}
    for k, m in enumerate(types):
        off = m.offset
        tml = types[k + 1].offset - off if k + 1 < len(types) else 0
        chunk_len = tml if tml else remaining
        if chunk_len <= 0:
            raise UnwritableYaml(prop, "an empty chunk of data")
        remaining -= chunk_len
        chunk = value[off : off + chunk_len]
        if len(chunk) < chunk_len:
            raise UnwritableYaml(prop, "a chunk that runs past the end of the value")
        e.flow_item(first)
        first = False
        if m.type == _TYPE_STRING:
            if chunk[-1] != 0:
                raise UnwritableYaml(prop, "a string chunk without its terminating NUL")
            if any(b >= 0x80 for b in chunk):
                raise UnwritableYaml(prop, "a string with bytes outside 7-bit ASCII")
            e.scalar(chunk[:-1].decode("ascii"), None, False, True, "double", False)
            continue
        width = _WIDTH[m.type]
        if chunk_len % width:
            raise UnwritableYaml(prop, f"{chunk_len} bytes in {width}-byte elements")
        if width == 1:
            items = [f"0x{b:x}" for b in chunk]
        else:
            items = [f"0x{int.from_bytes(chunk[i : i + width], 'big'):x}" for i in range(0, chunk_len, width)]
        phandles = None
        if width == 4 and phandle_offsets:
            phandles = {j for j in range(len(items)) if off + 4 * j in phandle_offsets} or None
        e.int_seq(items, phandles, _INT_TAG[width])
    e.flow_seq_end()


def _mapping(e: _Emitter, root: Node) -> None:
    """dtc's yaml_tree: a node as a mapping of its properties, then its children."""
    # (node, iterator state) stack so that deep trees do not exhaust Python's stack
    stack: list[tuple[Node, list[Node], int]] = []
    node = root
    while True:
        props = [p for p in node.props if not p.deleted]
        kids = [c for c in node.children if not c.deleted]
        if not props and not kids:
            e.flow_mapping_empty()
        else:
            e.increase_indent(False)
            for prop in props:
                e.key(prop.name, True)
                _propval(e, prop)
            if kids:
                stack.append((node, kids, 0))
                e.key(kids[0].name, False)
                node = kids[0]
                continue
            e.indent = e.indents.pop()
        # the node is done: resume its parent's children
        while stack:
            parent, kids, idx = stack.pop()
            idx += 1
            if idx < len(kids):
                stack.append((parent, kids, idx))
                e.key(kids[idx].name, False)
                node = kids[idx]
                break
            e.indent = e.indents.pop()
        else:
            return


def write_yaml(dt: DeviceTree) -> bytes:
    """The tree as ``dtc -O yaml`` writes it."""
    if dt.root.deleted:
        # `/delete-node/ &{/}`: dtc's yaml_tree skips a deleted node, and libyaml
        # writes the empty sequence in flow style
        return b"--- []\n...\n"
    e = _Emitter()
    # document start, not implicit: '---'
    e.write_indent()
    e.write_indicator("---", True, False, False)
    # the root block sequence and its one item
    e.increase_indent(False)
    e.write_indent()
    e.write_indicator("-", True, False, True)
    _mapping(e, dt.root)
    e.indent = e.indents.pop()
    # document end, not implicit
    e.write_indent()
    e.write_indicator("...", True, False, False)
    e.write_indent()
    return "".join(e.out).encode("ascii", "backslashreplace")
