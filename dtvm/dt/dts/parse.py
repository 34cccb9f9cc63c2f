"""The DTS parser: dtc 1.6.1's grammar (dtc-parser.y) by recursive descent.

As in dtc, the parser's actions build the tree directly: each ``{ ... }`` block
becomes a Node, top-level blocks are merged into the tree as they are read
(build.py), and references stay as markers until the checks resolve them.
Node nesting is parsed with an explicit stack, so depth is bounded by memory,
not by Python's recursion limit; expressions recurse, and are bounded by
MAX_EXPR_DEPTH.
"""

from __future__ import annotations

import os
import re

from dtvm.dt.dts import scan
from dtvm.dt.dts.build import OrphanCounter, add_orphan_node, merge_nodes
from dtvm.dt.dts.scan import Token
from dtvm.dt.dts.source import NodePos, SourceBuffer, read_source
from dtvm.dt.dts.values import parse_char_literal, parse_int_literal, unescape
from dtvm.dt.tree import DeviceTree, Marker, MarkerType, Node, Property, ReserveEntry, SourcePos, add_label
from dtvm.errors import SourceError
from dtvm.fileio import MAX_SOURCE

__all__ = ["MAX_EXPR_DEPTH", "parse_file", "parse_source", "parse_string", "parse_tokens"]

MAX_EXPR_DEPTH = 256
BISON_STACK_LIMIT = 10000
_M64 = (1 << 64) - 1

_TYPE_FOR_BITS = {
    8: MarkerType.TYPE_UINT8,
    16: MarkerType.TYPE_UINT16,
    32: MarkerType.TYPE_UINT32,
    64: MarkerType.TYPE_UINT64,
}

T_NAMEQ, T_CELLS = scan.T_NAMEQ, scan.T_CELLS
T_PSIMPLE, T_NODEOPEN, T_CLOSE = scan.T_PSIMPLE, scan.T_NODEOPEN, scan.T_CLOSE
_CELL_ITEM_RE = re.compile(r"[^ \t\n]+")
T_NAME, T_LABEL, T_NUM, T_CHAR, T_STR, T_REF, T_BYTE = (
    scan.T_NAME,
    scan.T_LABEL,
    scan.T_NUM,
    scan.T_CHAR,
    scan.T_STR,
    scan.T_REF,
    scan.T_BYTE,
)

# binary operators by precedence level (higher binds tighter), as in dtc-parser.y
_BINOPS = {
    "||": 1,
    "&&": 2,
    "|": 3,
    "^": 4,
    "&": 5,
    "==": 6,
    "!=": 6,
    "<": 7,
    ">": 7,
    "<=": 7,
    ">=": 7,
    "<<": 8,
    ">>": 8,
    "+": 9,
    "-": 9,
    "*": 10,
    "/": 10,
    "%": 10,
}


def _describe(tok: Token) -> str:
    kind, value = tok[0], tok[1]
    if kind == scan.T_EOF:
        return "end of input"
    if kind == T_STR:
        return f'string "{value}"'
    if kind == T_NAME:
        return f"name '{value}'"
    if kind == T_LABEL:
        return f"label '{value}:'"
    if kind == T_REF:
        return f"reference '&{value}'"
    if kind in (T_NUM, T_CHAR):
        return f"literal {value}"
    if kind == T_BYTE:
        return f"byte {value:02x}"
    return f"'{value}'"


class Parser:
    """One DTS compilation unit: the token list of a file and its includes."""

    def __init__(self, tokens: list[Token], include_dirs: list[str] | None = None) -> None:
        self.toks = tokens
        self.i = 0
        self.include_dirs = list(include_dirs or [])
        self.plugin = False
        self.orphans = OrphanCounter()
        self.incbin_files: list[str] = []
        # every node that was ever given a label, by label; lookups filter for
        # live ones, so resolving `&label {` does not walk the whole tree
        self.label_nodes: dict[str, list[Node]] = {}
        self.root: Node | None = None

    def note_label(self, node: Node, name: str) -> None:
        nodes = self.label_nodes.setdefault(name, [])
        if not nodes or nodes[-1] is not node:
            nodes.append(node)

    def find_ref(self, root: Node, ref: str) -> Node | None:
        """dtc's get_node_by_ref during parsing, served from the label index."""
        if ref == "/" or ref.startswith("/"):
            return root.get_node_by_ref(ref)
        slash = ref.find("/")
        label = ref if slash < 0 else ref[:slash]
        live = []
        for node in self.label_nodes.get(label, ()):
            if node.deleted or not any(lab.name == label and not lab.deleted for lab in node.labels):
                continue
            top = node
            while top.parent is not None:
                top = top.parent
            if top is root and node not in live:
                live.append(node)
        if len(live) > 1:
            # duplicate labels (an error later): dtc takes the first in pre-order
            return root.get_node_by_ref(ref)
        if not live:
            return None
        return live[0] if slash < 0 else live[0].get_node(ref[slash:])

    # -- helpers ---------------------------------------------------------------
    def error(self, message: str, tok: Token | None = None) -> SourceError:
        if tok is None:
            tok = self.toks[self.i]
        return SourceError(message, tok[2], tok[3], tok[4])

    def syntax_error(self, expected: str) -> SourceError:
        tok = self.toks[self.i]
        return self.error(f"syntax error: expected {expected}, found {_describe(tok)}", tok)

    def expect(self, kind: str, what: str | None = None) -> Token:
        tok = self.toks[self.i]
        if tok[0] != kind:
            raise self.syntax_error(what or f"'{kind}'")
        self.i += 1
        return tok

    def pos(self, start_tok: Token) -> SourcePos:
        end_tok = self.toks[self.i - 1]
        end = end_tok[4] if end_tok[2] is start_tok[2] else start_tok[4]
        return SourcePos(start_tok[2], start_tok[3], end)

    # -- file structure --------------------------------------------------------
    def parse(self) -> DeviceTree:
        toks = self.toks
        # headers: /dts-v1/; [/plugin/;] one or more times, all equal
        flags = None
        while toks[self.i][0] == scan.T_V1:
            htok = toks[self.i]
            self.i += 1
            self.expect(";")
            plugin = False
            if toks[self.i][0] == scan.T_PLUGIN:
                self.i += 1
                self.expect(";")
                plugin = True
            if flags is None:
                flags = plugin
            elif flags != plugin:
                raise self.error("Header flags don't match earlier ones", htok)
        if flags is None:
            raise self.syntax_error("/dts-v1/")
        self.plugin = flags

        reservations = self.parse_memreserves()
        root = self.parse_devicetree()
        dt = DeviceTree(root, reservations, 0, self.plugin)
        dt.boot_cpuid = guess_boot_cpuid(root)
        return dt

    def parse_memreserves(self) -> list[ReserveEntry]:
        toks = self.toks
        out: list[ReserveEntry] = []
        while True:
            labels: list[str] = []
            j = self.i
            while toks[j][0] == T_LABEL:
                labels.append(toks[j][1])  # type: ignore[arg-type]
                j += 1
            if toks[j][0] != scan.T_MEMRES:
                if labels:
                    self.i = j
                    raise self.syntax_error("/memreserve/ after label")
                return out
            self.i = j + 1
            addr = self.parse_integer_prim()
            size = self.parse_integer_prim()
            self.expect(";")
            entry = ReserveEntry(addr, size)
            for name in reversed(labels):
                add_label(entry.labels, name)
            out.append(entry)

    def parse_devicetree(self) -> Node:
        toks = self.toks
        tok = toks[self.i]
        if tok[0] == "/":
            self.i += 1
            root = self.parse_nodedef(tok, 3)
            root.name = ""
        elif tok[0] == T_REF:
            self.i += 1
            body = self.parse_nodedef(tok)
            if not self.plugin:
                raise self.error(f"Label or path {tok[1]} not found", tok)
            root = Node("")
            add_orphan_node(root, body, tok[1], self.orphans)  # type: ignore[arg-type]
        else:
            raise self.syntax_error("'/' or a reference to start the tree")

        while True:
            tok = toks[self.i]
            kind = tok[0]
            if kind == scan.T_EOF:
                return root
            if kind == "/":
                self.i += 1
                merge_nodes(root, self.parse_nodedef(tok), self.note_label)
            elif kind == T_REF:
                self.i += 1
                body = self.parse_nodedef(tok)
                ref: str = tok[1]  # type: ignore[assignment]
                # in a /plugin/, dtc 1.6.1 makes a fragment of every &{/path}
                # block and of every &label it cannot resolve in the plugin
                # itself; a label of the plugin's own nodes merges
                target = None if (self.plugin and ref.startswith("/")) else self.find_ref(root, ref)
                if target is not None:
                    merge_nodes(target, body, self.note_label)
                elif self.plugin:
                    add_orphan_node(root, body, ref, self.orphans)
                else:
                    raise self.error(f"Label or path {ref} not found", tok)
            elif kind == T_LABEL:
                self.i += 1
                ref_tok = self.expect(T_REF, "a reference after a label")
                body = self.parse_nodedef(ref_tok, 5)
                target = self.find_ref(root, ref_tok[1])  # type: ignore[arg-type]
                if target is None:
                    raise self.error(f"Label or path {ref_tok[1]} not found", ref_tok)
                add_label(target.labels, tok[1])  # type: ignore[arg-type]
                self.note_label(target, tok[1])  # type: ignore[arg-type]
                merge_nodes(target, body, self.note_label)
            elif kind == scan.T_DELNODE or kind == scan.T_OMIT:
                self.i += 1
                ref_tok = self.expect(T_REF, "a reference")
                self.expect(";")
                target = self.find_ref(root, ref_tok[1])  # type: ignore[arg-type]
                if target is None:
                    raise self.error(f"Label or path {ref_tok[1]} not found", ref_tok)
                if kind == scan.T_DELNODE:
                    target.delete()
                else:
                    target.omit_if_unused = True
            else:
                raise self.syntax_error("a node definition or end of input")

    # -- nodes -------------------------------------------------------------------
    def parse_nodedef(self, start_tok: Token, base: int = 4) -> Node:
        """'{' proplist subnodes '}' ';' with an explicit stack for nesting."""
        toks = self.toks
        brace = self.expect("{")
        root = Node("", None)
        # frame: [node, seen_subnode, start token, bison stack entries of this frame,
        #         offset of the '{' (where dtc's position of the node starts)]
        stack: list[list] = [[root, False, start_tok, 3, brace[3]]]
        # dtc's bison parser stack (YYMAXDEPTH 10000) bounds nesting, and because
        # `subnodes` is right-recursive, also the number of siblings and labels
        # pending on the stack; dtc rejects such input, so dtvm does too.
        total = base + 3
        while stack:
            frame = stack[-1]
            node: Node = frame[0]
            item_tok = toks[self.i]
            labels: list[str] = []
            omit = False
            while True:
                kind = toks[self.i][0]
                if kind == T_LABEL:
                    labels.append(toks[self.i][1])  # type: ignore[arg-type]
                    self.i += 1
                elif kind == scan.T_OMIT:
                    omit = True
                    self.i += 1
                else:
                    break
            tok = toks[self.i]
            kind = tok[0]
            if kind == T_PSIMPLE:
                # the scanner fused NAME '=' (<simple cells> | "string") ';'
                if omit:
                    raise self.syntax_error("a node after /omit-if-no-ref/")
                if frame[1]:
                    raise self.error("Properties must precede subnodes", tok)
                self.i += 1
                fused: tuple[str, str | None, str | None] = tok[1]  # type: ignore[assignment]
                pname, cells, string = fused
                pdata = bytearray()
                if cells is not None:
                    pmarkers = [Marker(0, MarkerType.TYPE_UINT32)]
                    self.fast_cells(tok, pdata, pmarkers, 32, cells)
                else:
                    assert string is not None
                    pmarkers = [Marker(0, MarkerType.TYPE_STRING)]
                    if "\\" in string:
                        pdata += unescape(string, tok[2], tok[2].text.index('"', tok[3]) + 1)
                    else:
                        pdata += string.encode("latin-1")
                    pdata.append(0)
                prop = Property(pname, bytes(pdata), pmarkers, SourcePos(tok[2], tok[3], tok[4]))
                for name in reversed(labels):
                    add_label(prop.labels, name)
                node.props.append(prop)
            elif kind == T_NODEOPEN:
                self.i += 1
                total += self._open_child(tok, labels, omit, stack, item_tok, tok[4] - 1)
            elif kind == T_NAMEQ:
                # the scanner fused NAME '=' (the common case)
                if omit:
                    raise self.syntax_error("a node after /omit-if-no-ref/")
                if frame[1]:
                    raise self.error("Properties must precede subnodes", tok)
                self.i += 1
                value, markers = self.parse_propdata()
                self.expect(";")
                prop = Property(tok[1], value, markers, SourcePos(tok[2], tok[3], toks[self.i - 1][4]))  # type: ignore[arg-type]
                for name in reversed(labels):
                    add_label(prop.labels, name)
                node.props.append(prop)
            elif kind == T_NAME:
                nxt = toks[self.i + 1][0]
                if nxt == "{":
                    self.i += 2
                    total += self._open_child(tok, labels, omit, stack, item_tok, toks[self.i - 1][3])
                    continue
                if omit:
                    raise self.syntax_error("a node after /omit-if-no-ref/")
                if frame[1] and nxt in ("=", ";"):
                    raise self.error("Properties must precede subnodes", tok)
                self.i += 1
                if nxt == "=":
                    self.i += 1
                    value, markers = self.parse_propdata()
                elif nxt == ";":
                    value, markers = b"", []
                else:
                    raise self.syntax_error("'=', ';' or '{' after a name")
                self.expect(";")
                prop = Property(tok[1], value, markers, SourcePos(tok[2], tok[3], self.toks[self.i - 1][4]))  # type: ignore[arg-type]
                for name in reversed(labels):
                    add_label(prop.labels, name)
                node.props.append(prop)
            elif kind == scan.T_DELPROP:
                if omit:
                    raise self.syntax_error("a node after /omit-if-no-ref/")
                if frame[1]:
                    raise self.error("Properties must precede subnodes", tok)
                self.i += 1
                name_tok = self.expect(T_NAME, "a property name")
                self.expect(";")
                prop = Property(name_tok[1], b"", [], SourcePos(tok[2], tok[3], name_tok[4]))  # type: ignore[arg-type]
                prop.deleted = True
                for name in reversed(labels):
                    add_label(prop.labels, name)
                node.props.append(prop)
            elif kind == scan.T_DELNODE:
                self.i += 1
                name_tok = self.expect(T_NAME, "a node name")
                semi = self.expect(";")
                child = Node(name_tok[1], SourcePos(tok[2], tok[3], semi[4]))  # type: ignore[arg-type]
                child.deleted = True
                for name in reversed(labels):
                    add_label(child.labels, name)
                if omit:
                    child.omit_if_unused = True
                frame[1] = True
                node.add_child(child)
                frame[3] += 1
                total += 1
            elif (kind == T_CLOSE or kind == "}") and not labels and not omit:
                if total + 3 >= BISON_STACK_LIMIT:
                    raise self.error(
                        f"nesting too deep: dtc's parser stack ({BISON_STACK_LIMIT} entries) overflows here", tok
                    )
                self.i += 1
                if kind == "}":
                    self.expect(";")
                node.pos = NodePos(frame[2][2], frame[2][3], self.toks[self.i - 1][4], frame[4])
                done = stack.pop()
                total -= done[3]
                if stack:
                    stack[-1][0].add_child(node)
                    # a completed subnode stays on dtc's stack until its parent closes
                    stack[-1][3] += 1
                    total += 1
            else:
                raise self.syntax_error("a property, a subnode or '}'")
        return root

    def _open_child(
        self, tok: Token, labels: list[str], omit: bool, stack: list[list], item_tok: Token, brace: int
    ) -> int:
        """Push a frame for a subnode whose '{' is at ``brace``; returns its bison stack cost."""
        child = Node(tok[1], None)  # type: ignore[arg-type]
        for name in reversed(labels):
            add_label(child.labels, name)
            self.note_label(child, name)
        if omit:
            child.omit_if_unused = True
        stack[-1][1] = True
        # a subnode costs NAME '{' proplist plus the labels and /omit-if-no-ref/ before it
        cost = 3 + len(labels) + (1 if omit else 0)
        stack.append([child, False, item_tok, cost, brace])
        return cost

    # -- property values ---------------------------------------------------------
    def parse_propdata(self) -> tuple[bytes, list[Marker]]:
        toks = self.toks
        data = bytearray()
        markers: list[Marker] = []
        while True:
            tok = toks[self.i]
            kind = tok[0]
            while kind == T_LABEL:
                markers.append(Marker(len(data), MarkerType.LABEL, tok[1]))  # type: ignore[arg-type]
                self.i += 1
                tok = toks[self.i]
                kind = tok[0]
            if kind == T_STR:
                self.i += 1
                raw: str = tok[1]  # type: ignore[assignment]
                markers.append(Marker(len(data), MarkerType.TYPE_STRING))
                if "\\" in raw:
                    data += unescape(raw, tok[2], tok[3] + 1)
                else:
                    data += raw.encode("latin-1")
                data.append(0)
            elif kind == T_CELLS:
                self.i += 1
                markers.append(Marker(len(data), MarkerType.TYPE_UINT32))
                self.fast_cells(tok, data, markers)
            elif kind == "<" or kind == scan.T_BITS:
                self.parse_array(data, markers)
            elif kind == "[":
                self.i += 1
                markers.append(Marker(len(data), MarkerType.TYPE_UINT8))
                while True:
                    tok = toks[self.i]
                    if tok[0] == T_BYTE:
                        data.append(tok[1])  # type: ignore[arg-type]
                    elif tok[0] == T_LABEL:
                        markers.append(Marker(len(data), MarkerType.LABEL, tok[1]))  # type: ignore[arg-type]
                    elif tok[0] == "]":
                        self.i += 1
                        break
                    else:
                        raise self.syntax_error("hex bytes or ']'")
                    self.i += 1
            elif kind == T_REF:
                self.i += 1
                markers.append(Marker(len(data), MarkerType.TYPE_STRING, tok[1]))  # type: ignore[arg-type]
                markers.append(Marker(len(data), MarkerType.REF_PATH, tok[1]))  # type: ignore[arg-type]
            elif kind == scan.T_INCBIN:
                self.i += 1
                data += self.parse_incbin(tok, markers, len(data))
            else:
                raise self.syntax_error("a property value")
            tok = toks[self.i]
            while tok[0] == T_LABEL:
                markers.append(Marker(len(data), MarkerType.LABEL, tok[1]))  # type: ignore[arg-type]
                self.i += 1
                tok = toks[self.i]
            if tok[0] == ",":
                self.i += 1
                continue
            return bytes(data), markers

    def parse_array(self, data: bytearray, markers: list[Marker]) -> None:
        toks = self.toks
        tok = toks[self.i]
        bits = 32
        if tok[0] == scan.T_BITS:
            self.i += 1
            btok = self.expect(T_NUM, "a bit width after /bits/")
            bits = parse_int_literal(btok[1], btok[2], btok[3])  # type: ignore[arg-type]
            if bits not in _TYPE_FOR_BITS:
                raise self.error("Array elements must be 8, 16, 32 or 64-bits", btok)
        tok = toks[self.i]
        if tok[0] == T_CELLS:
            self.i += 1
            markers.append(Marker(len(data), _TYPE_FOR_BITS[bits]))
            self.fast_cells(tok, data, markers, bits)
            return
        self.expect("<")
        markers.append(Marker(len(data), _TYPE_FOR_BITS[bits]))
        nbytes = bits // 8
        mask = (1 << bits) - 1
        while True:
            tok = toks[self.i]
            kind = tok[0]
            if kind == T_NUM:
                self.i += 1
                val = parse_int_literal(tok[1], tok[2], tok[3])  # type: ignore[arg-type]
            elif kind == T_REF:
                self.i += 1
                if bits != 32:
                    raise self.error("References are only allowed in arrays with 32-bit elements.", tok)
                markers.append(Marker(len(data), MarkerType.REF_PHANDLE, tok[1]))  # type: ignore[arg-type]
                data += b"\xff\xff\xff\xff"
                continue
            elif kind == T_LABEL:
                self.i += 1
                markers.append(Marker(len(data), MarkerType.LABEL, tok[1]))  # type: ignore[arg-type]
                continue
            elif kind == ">":
                self.i += 1
                return
            elif kind == T_CHAR or kind == "(":
                val = self.parse_integer_prim()
                tok = self.toks[self.i - 1]
            else:
                raise self.syntax_error("a number, a reference or '>'")
            if bits < 64 and val > mask and (val | mask) != _M64:
                raise self.error(f"Value out of range for {bits}-bit array element", tok)
            data += (val & mask).to_bytes(nbytes, "big")

    def fast_cells(
        self, tok: Token, data: bytearray, markers: list[Marker], bits: int = 32, body: str | None = None
    ) -> None:
        """Cells from a fused '<...>' (or whole-property) token: plain literals, &label references, labels."""
        if body is None:
            body = tok[1]  # type: ignore[assignment]
        assert body is not None
        nbytes = bits // 8
        mask = (1 << bits) - 1
        for m in _CELL_ITEM_RE.finditer(body):
            item = m.group()
            if item[-1] == ":":  # a label inside the cells
                markers.append(Marker(len(data), MarkerType.LABEL, item[:-1]))
                continue
            if item[0] == "&":
                if bits != 32:
                    raise SourceError(
                        "References are only allowed in arrays with 32-bit elements.", tok[2], tok[2].text.index("<", tok[3]) + 1 + m.start()
                    )
                markers.append(Marker(len(data), MarkerType.REF_PHANDLE, item[1:]))
                data += b"\xff\xff\xff\xff"
                continue
            if (item[0] == "0" and len(item) > 1 and item[1] not in "xX") or len(item) > 18:
                # octal, or long enough to be out of range: the careful path (no int() of 4,300+ digits)
                val = parse_int_literal(item, tok[2], tok[2].text.index("<", tok[3]) + 1 + m.start())
            elif item[:2] in ("0x", "0X"):
                val = int(item[2:], 16)
            else:
                val = int(item)
            if val > mask:
                if val > _M64:
                    raise SourceError(f"Integer literal '{item}' out of range", tok[2], tok[2].text.index("<", tok[3]) + 1 + m.start())
                if (val | mask) != _M64:
                    raise SourceError(f"Value out of range for {bits}-bit array element", tok[2], tok[2].text.index("<", tok[3]) + 1 + m.start())
            data += (val & mask).to_bytes(nbytes, "big")

    def parse_incbin(self, tok: Token, markers: list[Marker], offset: int) -> bytes:
        self.expect("(")
        name_tok = self.expect(T_STR, "a file name")
        fname = unescape(name_tok[1], name_tok[2], name_tok[3] + 1)  # type: ignore[arg-type]
        fname = fname.split(b"\0", 1)[0]
        start = 0
        length = -1
        if self.toks[self.i][0] == ",":
            self.i += 1
            start = self.parse_integer_prim()
            self.expect(",")
            length = self.parse_integer_prim()
        self.expect(")")
        name = fname.decode("latin-1")
        src: SourceBuffer = tok[2]
        path = scan._find_include(name, src.dir, self.include_dirs)
        if path is None:
            raise self.error(f'Couldn\'t open "{name}": No such file or directory', name_tok)
        self.incbin_files.append(path)
        try:
            with open(path, "rb") as f:
                if start:
                    f.seek(start)
                # bounded (dtvm.fileio.MAX_SOURCE): /dev/zero or a FIFO must not take all memory
                cap = MAX_SOURCE + 1
                data = f.read(cap if length < 0 or length == _M64 else min(length, cap))
        except (OSError, OverflowError, ValueError) as exc:
            raise self.error(f'Couldn\'t read "{name}": {exc}', name_tok) from None
        if len(data) > MAX_SOURCE:
            raise self.error(f'Couldn\'t read "{name}": larger than dtvm reads ({MAX_SOURCE >> 20} MiB)', name_tok)
        markers.append(Marker(offset, MarkerType.TYPE_NONE))
        return data

    # -- integer expressions -------------------------------------------------------
    def parse_integer_prim(self, depth: int = 0) -> int:
        tok = self.toks[self.i]
        kind = tok[0]
        if kind == T_NUM:
            self.i += 1
            return parse_int_literal(tok[1], tok[2], tok[3])  # type: ignore[arg-type]
        if kind == T_CHAR:
            self.i += 1
            return parse_char_literal(tok[1], tok[2], tok[3])  # type: ignore[arg-type]
        if kind == "(":
            if depth >= MAX_EXPR_DEPTH:
                raise self.error("expression nested too deeply", tok)
            self.i += 1
            val = self.parse_expr(depth + 1)
            self.expect(")")
            return val
        raise self.syntax_error("a number, a character literal or '('")

    def parse_expr(self, depth: int) -> int:
        """integer_trinary: or_expr ['?' expr ':' trinary]."""
        cond = self.parse_binary(1, depth)
        if self.toks[self.i][0] != "?":
            return cond
        self.i += 1
        if depth >= MAX_EXPR_DEPTH:
            raise self.error("expression nested too deeply")
        a = self.parse_expr(depth + 1)
        self.expect(":")
        b = self.parse_expr(depth + 1)
        return a if cond else b

    def parse_binary(self, min_prec: int, depth: int) -> int:
        left = self.parse_unary(depth)
        toks = self.toks
        while True:
            tok = toks[self.i]
            op = tok[0]
            prec = _BINOPS.get(op)  # type: ignore[arg-type]
            if prec is None or prec < min_prec:
                return left
            self.i += 1
            right = self.parse_binary(prec + 1, depth + 1) if depth < MAX_EXPR_DEPTH else self._too_deep()
            left = self.apply(op, left, right, tok)

    def _too_deep(self) -> int:
        raise self.error("expression nested too deeply")

    def parse_unary(self, depth: int) -> int:
        tok = self.toks[self.i]
        op = tok[0]
        if op in ("-", "~", "!"):
            ops = []
            while self.toks[self.i][0] in ("-", "~", "!"):
                ops.append(self.toks[self.i][0])
                self.i += 1
                if len(ops) > 10000:
                    raise self.error("expression nested too deeply")
            val = self.parse_integer_prim(depth)
            for op in reversed(ops):
                if op == "-":
                    val = -val & _M64
                elif op == "~":
                    val = ~val & _M64
                else:
                    val = 0 if val else 1
            return val
        return self.parse_integer_prim(depth)

    def apply(self, op: str, a: int, b: int, tok: Token) -> int:
        if op == "+":
            return (a + b) & _M64
        if op == "-":
            return (a - b) & _M64
        if op == "*":
            return (a * b) & _M64
        if op == "/" or op == "%":
            if b == 0:
                raise self.error("Division by zero", tok)
            return a // b if op == "/" else a % b
        if op == "<<":
            return (a << b) & _M64 if b < 64 else 0
        if op == ">>":
            return a >> b if b < 64 else 0
        if op == "<":
            return int(a < b)
        if op == ">":
            return int(a > b)
        if op == "<=":
            return int(a <= b)
        if op == ">=":
            return int(a >= b)
        if op == "==":
            return int(a == b)
        if op == "!=":
            return int(a != b)
        if op == "&":
            return a & b
        if op == "^":
            return a ^ b
        if op == "|":
            return a | b
        if op == "&&":
            return int(bool(a) and bool(b))
        if op == "||":
            return int(bool(a) or bool(b))
        raise AssertionError(op)


def guess_boot_cpuid(root: Node) -> int:
    """dtc's guess_boot_cpuid: the first child of /cpus (even a deleted one) with a one-cell reg."""
    cpus = root.get_node("/cpus")
    if cpus is None or not cpus.children:
        return 0
    first = cpus.children[0]
    reg = first.get_property("reg")
    if reg is None or len(reg.value) != 4:
        return 0
    return int.from_bytes(reg.value, "big")


def parse_tokens(tokens: list[Token], include_dirs: list[str] | None = None) -> DeviceTree:
    return Parser(tokens, include_dirs).parse()


def parse_source(src: SourceBuffer, include_dirs: list[str] | None = None) -> DeviceTree:
    """Parse a DTS source (and what it includes) into a DeviceTree, references unresolved."""
    tokens = scan.tokenize(src, include_dirs)
    dt = parse_tokens(tokens, include_dirs)
    dt.source_name = src.name
    return dt


def parse_file(path: str, include_dirs: list[str] | None = None) -> DeviceTree:
    """Parse a DTS file; '-' reads standard input."""
    return parse_source(read_source(path), include_dirs)


def parse_string(text: str, name: str = "<string>", include_dirs: list[str] | None = None) -> DeviceTree:
    return parse_source(SourceBuffer(name, text, os.getcwd()), include_dirs)
