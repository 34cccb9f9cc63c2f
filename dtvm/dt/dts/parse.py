"""The DTS parser: dtc 1.6.1's grammar (dtc-parser.y) by recursive descent.

As in dtc, the parser's actions build the tree directly: each ``{ ... }`` block
becomes a Node, top-level blocks are merged into the tree as they are read
(build.py), and references stay as markers until the checks resolve them.
Node nesting and expressions are parsed with explicit stacks, so no input can
exhaust Python's stack; what bounds depth is what bounds dtc's: bison's stack
of YYMAXDEPTH (10,000) states, counted here as dtc's parser would fill it.

Errors come as dtc reports them (diag.py): messages that let the parse go on
(a label not found, a division by zero, a value out of range, a bad literal)
are collected and the source is rejected at the end; a syntax error stops at
once, positioned at the token bison would have stopped at.
"""

from __future__ import annotations

import os
import re
import struct
from itertools import repeat
from operator import itemgetter

from dtvm.dt.dts import scan
from dtvm.dt.dts.build import OrphanCounter, add_orphan_node, guess_boot_cpuid, merge_nodes
from dtvm.dt.dts.diag import FATAL_PARSE, FATAL_SYNTAX, DtsError, Message, ZeroPos
from dtvm.dt.dts.expr import YYMAXDEPTH, parse_integer_prim
from dtvm.dt.dts.scan import Token
from dtvm.dt.dts.source import NodePos, SourceBuffer, SpanPos, make_pos, read_source
from dtvm.dt.dts.values import parse_char_literal, parse_int_literal, unescape
from dtvm.dt.tree import DeviceTree, Marker, MarkerType, Node, Property, ReserveEntry, SourcePos, add_label
from dtvm.errors import SourceError
from dtvm.fileio import MAX_SOURCE

__all__ = ["parse_file", "parse_source", "parse_string", "parse_tokens"]

BISON_STACK_LIMIT = YYMAXDEPTH
_M64 = (1 << 64) - 1
_NAME_RE = re.compile(r"\\?[a-zA-Z0-9,._+*#?@-]+")

_TYPE_FOR_BITS = {8: MarkerType.TYPE_UINT8, 16: MarkerType.TYPE_UINT16, 32: MarkerType.TYPE_UINT32, 64: MarkerType.TYPE_UINT64}

T_NAMEQ, T_CELLS = scan.T_NAMEQ, scan.T_CELLS
T_PSIMPLE, T_NODEOPEN, T_CLOSE = scan.T_PSIMPLE, scan.T_NODEOPEN, scan.T_CLOSE
_CELL_ITEM_RE = re.compile(r"[^ \t\n]+")
# a fused 32-bit cell list of only hex (<= 8 digits) and decimal (<= 9, no leading 0) literals and
# &label references: every value fits and nothing can be reported, so it is packed at once
# (lists under 4 KiB: a long one is read item by item, in bounded memory; possessive, as the scanner's)
_PLAIN_CELLS_RE = re.compile(r"(?:[ \t\n]+|(?:0[xX][0-9a-fA-F]{1,8}|0|[1-9][0-9]{0,8}|&[a-zA-Z_][a-zA-Z0-9_]*)\b)*+")

_PACK = [struct.Struct(f">{n}I").pack for n in range(17)]  # fast_cells' lists of up to 16 cells
T_NAME, T_LABEL, T_NUM, T_CHAR, T_STR, T_REF = scan.T_NAME, scan.T_LABEL, scan.T_NUM, scan.T_CHAR, scan.T_STR, scan.T_REF
T_BYTE = scan.T_BYTE

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
        self.errors: list[Message] = []  # dtc's ERROR()s so far: the parse goes on
        self.plain_cells: dict[str, tuple[bytes, tuple[tuple[int, str], ...]]] = {}  # fast_cells' packed lists

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

    # -- errors ------------------------------------------------------------------
    def tok_pos(self, tok: Token) -> SourcePos:
        """dtc's location of a token; a fused token (``name {``, ``};``, ``<1 2>``) by its first part."""
        kind, value, src, start, end = tok
        if kind == scan.T_EOF and value == "zero":
            return ZeroPos(src, 0, 0)
        if kind == T_CLOSE or kind == T_CELLS:
            end = start + 1
        elif kind == T_NODEOPEN or kind == T_NAMEQ or kind == T_PSIMPLE:
            m = _NAME_RE.match(src.text, start)
            assert m is not None
            end = m.end()
        return SourcePos(src, start, end)

    def span(self, i: int, j: int) -> SourcePos:
        """dtc's location of a rule from token ``i`` to token ``j`` (the file is where it ends)."""
        a, b = self.toks[i], self.toks[j]
        return make_pos(a[2], a[3], b[2], b[4])

    def soft_error(self, message: str, i: int, j: int, text: str | None = None, prefix: str = "Error") -> None:
        """dtc's ERROR() (or lexical_error): reported, and the parse goes on.

        dtc prints it when the rule is reduced, naming the file as it is named
        then: a linemarker read since in that file (inside a long ``&ref { }``
        block) has renamed it.
        """
        pos = self.span(i, j)
        src = self.toks[j][2]
        k = self.i - 1
        while k > j and self.toks[k][2] is not src:
            k -= 1
        name = src.location(self.toks[k][4])[0] if k > j else None
        self.errors.append(Message(pos, message, text or message, prefix, name))

    def hard_error(self, message: str, pos: SourcePos, text: str | None = None) -> DtsError:
        """A message after which dtc's parser gives up (yyerror, YYERROR)."""
        return DtsError([*self.errors, Message(pos, message, text or message)], FATAL_PARSE)

    def error(self, message: str, tok: Token | None = None) -> DtsError:
        if tok is None:
            tok = self.toks[self.i]
        return self.hard_error(message, self.tok_pos(tok))

    def fatal(self, message: str, tok: Token) -> DtsError:
        """dtc's die(): ``FATAL ERROR: message``, no position (dtvm's form keeps the token's)."""
        return DtsError(list(self.errors), message, SourcePos(tok[2], tok[3], tok[4]))

    def syntax_error(self, expected: str) -> DtsError:
        tok = self.toks[self.i]
        if tok[0] == scan.T_FATAL:
            # the scanner stopped here (a missing /include/): dtc dies with no position
            return self.fatal(tok[1], tok)  # type: ignore[arg-type]
        if tok[0] == T_NUM or tok[0] == T_CHAR:
            # dtc's lexer judged the literal when it read it, before the parser saw it was misplaced
            self.literal(tok)
        return self.hard_error("syntax error", self.tok_pos(tok), f"syntax error: expected {expected}, found {scan.describe_token(tok)}")

    def push_state(self, depth: int, tok: Token | None = None) -> None:
        """bison pushes its ``depth``-th state: at YYMAXDEPTH dtc stops with "memory exhausted"."""
        if depth >= YYMAXDEPTH:
            if tok is None:
                tok = self.toks[self.i]
            raise self.hard_error(
                "memory exhausted",
                self.tok_pos(tok),
                f"nesting too deep: dtc's parser stack ({YYMAXDEPTH} entries) overflows here",
            )

    def literal(self, tok: Token) -> int:
        """A DT_LITERAL or DT_CHAR_LITERAL's value; a bad one is dtc's lexical error, read as strtoull reads it."""
        text: str = tok[1]  # type: ignore[assignment]
        if tok[0] == T_NUM and len(text) <= 16 and text[-1] not in "UL":
            # short decimal or hex, no suffix (the scanner gave only digits): in range, nothing to report
            if text[0] != "0":
                return int(text)
            if text[1:2] in ("x", "X"):
                return int(text[2:], 16)
        try:
            if tok[0] == T_NUM:
                return parse_int_literal(tok[1], tok[2], tok[3])  # type: ignore[arg-type]
            return parse_char_literal(tok[1], tok[2], tok[3])  # type: ignore[arg-type]
        except DtsError:
            raise
        except SourceError as exc:
            if exc.message.startswith("\\x used"):
                raise self.fatal(exc.message, tok) from None
            self.errors.append(Message(self.tok_pos(tok), exc.message, exc.message, "Lexical error"))
            return _bad_literal_value(tok)

    def string(self, tok: Token, offset: int) -> bytes:
        """A string's bytes; dtc dies on a ``\\x`` without hex digits."""
        raw: str = tok[1]  # type: ignore[assignment]
        if "\\" not in raw:
            return raw.encode("latin-1")
        try:
            return unescape(raw, tok[2], offset)
        except SourceError as exc:
            raise self.fatal(exc.message, tok) from None

    def expect(self, kind: str, what: str | None = None) -> Token:
        tok = self.toks[self.i]
        if tok[0] != kind:
            raise self.syntax_error(what or f"'{kind}'")
        self.i += 1
        return tok

    def expect_name(self, what: str) -> Token:
        """A DT_PROPNODENAME that ';' must follow; a fused ``name {`` or ``name =`` fails at its second part."""
        tok = self.toks[self.i]
        kind = tok[0]
        if kind == T_NODEOPEN:
            raise self.hard_error("syntax error", SourcePos(tok[2], tok[4] - 1, tok[4]), f"syntax error: expected ';' after {what}")
        if kind == T_NAMEQ or kind == T_PSIMPLE:
            eq = tok[2].text.index("=", tok[3])
            raise self.hard_error("syntax error", SourcePos(tok[2], eq, eq + 1), f"syntax error: expected ';' after {what}")
        return self.expect(T_NAME, what)

    def pos(self, start_tok: Token) -> SourcePos:
        end_tok = self.toks[self.i - 1]
        return make_pos(start_tok[2], start_tok[3], end_tok[2], end_tok[4])

    # -- file structure --------------------------------------------------------
    def parse(self) -> DeviceTree:
        toks = self.toks
        # headers: /dts-v1/; [/plugin/;] one or more times (right-recursive in
        # dtc's grammar: each stays on bison's stack until the last one)
        headers: list[tuple[bool, int, int]] = []  # (plugin, first token, last token)
        while toks[self.i][0] == scan.T_V1:
            first = self.i
            depth = len(headers) + 1
            self.push_state(depth + 1)
            self.i += 1
            self.push_state(depth + 2)
            self.expect(";")
            plugin = False
            if toks[self.i][0] == scan.T_PLUGIN:
                self.push_state(depth + 3)
                self.i += 1
                self.push_state(depth + 4)
                self.expect(";")
                plugin = True
            headers.append((plugin, first, self.i - 1))
        if not headers:
            raise self.syntax_error("/dts-v1/")
        # `header headers`: reduced from the last one back, comparing each with the rest
        flags = headers[-1][0]
        for k in range(len(headers) - 2, -1, -1):
            if headers[k][0] != flags:
                self.soft_error("Header flags don't match earlier ones", headers[k + 1][1], headers[-1][2])
            flags = headers[k][0]
        self.plugin = flags

        reservations = self.parse_memreserves()
        root = self.parse_devicetree()
        if self.errors:
            raise DtsError(self.errors, FATAL_SYNTAX)
        dt = DeviceTree(root, reservations, 0, self.plugin)
        dt.boot_cpuid = guess_boot_cpuid(root)
        return dt

    def parse_memreserves(self) -> list[ReserveEntry]:
        toks = self.toks
        out: list[ReserveEntry] = []
        while True:
            # `memreserve memreserves` is right-recursive too: every entry stays on the stack
            base = 2 + len(out)
            labels: list[str] = []
            while toks[self.i][0] == T_LABEL:
                self.push_state(base + len(labels) + 1)
                labels.append(toks[self.i][1])  # type: ignore[arg-type]
                self.i += 1
            if toks[self.i][0] != scan.T_MEMRES:
                if labels:
                    raise self.syntax_error("/memreserve/ after label")
                self.push_state(base + 1)  # the empty `memreserves`
                return out
            base += len(labels)
            self.push_state(base + 1)
            self.i += 1
            addr = parse_integer_prim(self, base + 1)[0]
            size = parse_integer_prim(self, base + 2)[0]
            self.push_state(base + 4)
            self.expect(";")
            entry = ReserveEntry(addr, size)
            for name in reversed(labels):
                add_label(entry.labels, name)
            out.append(entry)

    def parse_devicetree(self) -> Node:
        toks = self.toks
        tok = toks[self.i]
        if tok[0] == "/":
            self.push_state(4)
            self.i += 1
            root = self.parse_nodedef(tok, 3)
            root.name = ""
        elif tok[0] == T_REF:
            self.push_state(4)
            self.i += 1
            first = self.i
            body = self.parse_nodedef(tok, 3)
            if not self.plugin:
                self.soft_error(f"Label or path {tok[1]} not found", first, self.i - 1)
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
                self.push_state(5)
                self.i += 1
                merge_nodes(root, self.parse_nodedef(tok), self.note_label)
            elif kind == T_REF:
                self.push_state(5)
                k = self.i
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
                    self.soft_error(f"Label or path {ref} not found", k, k)
            elif kind == T_LABEL:
                self.push_state(5)
                self.i += 1
                self.push_state(6)
                k = self.i
                ref_tok = self.expect(T_REF, "a reference after a label")
                body = self.parse_nodedef(ref_tok, 5)
                target = self.find_ref(root, ref_tok[1])  # type: ignore[arg-type]
                if target is None:
                    self.soft_error(f"Label or path {ref_tok[1]} not found", k, k)
                    continue
                add_label(target.labels, tok[1])  # type: ignore[arg-type]
                self.note_label(target, tok[1])  # type: ignore[arg-type]
                merge_nodes(target, body, self.note_label)
            elif kind == scan.T_DELNODE or kind == scan.T_OMIT:
                self.push_state(5)
                self.i += 1
                self.push_state(6)
                k = self.i
                ref_tok = self.expect(T_REF, "a reference")
                self.push_state(7)
                self.expect(";")
                target = self.find_ref(root, ref_tok[1])  # type: ignore[arg-type]
                if target is None:
                    self.soft_error(f"Label or path {ref_tok[1]} not found", k, k)
                elif kind == scan.T_DELNODE:
                    target.delete()
                else:
                    target.omit_if_unused = True
            else:
                raise self.syntax_error("a node definition or end of input")

    # -- nodes -------------------------------------------------------------------
    def parse_nodedef(self, start_tok: Token, base: int = 4) -> Node:
        """'{' proplist subnodes '}' ';' with an explicit stack for nesting."""
        toks = self.toks
        self.push_state(base + 1)
        brace = self.expect("{")
        self.push_state(base + 2)
        root = Node("", None)
        # frame: [node, seen_subnode, start token, bison stack entries of this frame,
        #         offset of the '{' (where dtc's position of the node starts)]
        stack: list[list] = [[root, False, start_tok, 3, brace[3], brace[2]]]
        # dtc's bison parser stack (YYMAXDEPTH 10000) bounds nesting, and because
        # `subnodes` is right-recursive, also the number of siblings and labels
        # pending on the stack; dtc rejects such input, so dtvm does too.
        total = base + 3
        while stack:
            frame = stack[-1]
            node: Node = frame[0]
            item = self.i
            labels: list[str] = []
            omit = False
            while True:
                kind = toks[self.i][0]
                if kind == T_LABEL:
                    labels.append(toks[self.i][1])  # type: ignore[arg-type]
                elif kind == scan.T_OMIT:
                    omit = True
                else:
                    break
                if total + self.i - item + 1 >= YYMAXDEPTH:
                    self.push_state(total + self.i - item + 1)
                self.i += 1
            pending = total + self.i - item  # the labels and /omit-if-no-ref/ wait on the stack
            # each push below is checked only near bison's limit (this runs for every item)
            deep = pending + 5 >= YYMAXDEPTH  # a property pushes up to 5 states (parse_property)
            tok = toks[self.i]
            kind = tok[0]
            if kind == T_PSIMPLE and not deep and not omit and not frame[1]:
                # parse_property's fused case inlined: most properties are NAME = <cells>; or
                # NAME = "string"; and a call less each is measurable on kernel trees
                self.i += 1
                fused: tuple[str, str | None, str | None] = tok[1]  # type: ignore[assignment]
                pname, cells, string = fused
                pdata = bytearray()
                if cells is not None:
                    pmarkers = [Marker(0, MarkerType.TYPE_UINT32)]
                    hit = self.plain_cells.get(cells)
                    if hit is not None and not hit[1]:  # packed before, no reference: the bytes as they are
                        prop = Property(pname, hit[0], pmarkers, SourcePos(tok[2], tok[3], tok[4]))
                        for name in reversed(labels):
                            add_label(prop.labels, name)
                        node.props.append(prop)
                        continue
                    self.fast_cells(tok, pdata, pmarkers, 32, cells)
                else:
                    assert string is not None
                    pmarkers = [Marker(0, MarkerType.TYPE_STRING)]
                    if "\\" in string:
                        pdata += self.string((T_STR, string, tok[2], tok[3], tok[4]), tok[2].text.index('"', tok[3]) + 1)
                    else:
                        pdata += string.encode("latin-1")
                    pdata.append(0)
                prop = Property(pname, bytes(pdata), pmarkers, SourcePos(tok[2], tok[3], tok[4]))
                for name in reversed(labels):
                    add_label(prop.labels, name)
                node.props.append(prop)
            elif kind == T_NAMEQ and not deep and not omit and not frame[1]:
                # parse_property's NAME '=' propdata ';' inlined, as the fused case above
                self.i += 1
                value, pmarkers = self.parse_propdata(pending + 2)
                semi = toks[self.i]
                if semi[0] != ";":
                    raise self.syntax_error("';'")
                self.i += 1
                src = tok[2]
                prop = Property(tok[1], value, pmarkers, SourcePos(src, tok[3], semi[4]) if semi[2] is src  # type: ignore[arg-type]
                                else SpanPos(src, tok[3], semi[2], semi[4]))
                for name in reversed(labels):
                    add_label(prop.labels, name)
                node.props.append(prop)
            elif kind == T_NODEOPEN or (kind == T_NAME and toks[self.i + 1][0] == "{"):
                if deep:
                    self.push_state(pending + 1)
                brace_tok = tok if kind == T_NODEOPEN else toks[self.i + 1]
                brace_off = tok[4] - 1 if kind == T_NODEOPEN else brace_tok[3]
                self.i += 1 if kind == T_NODEOPEN else 2
                if deep:
                    self.push_state(pending + 3)
                total += self._open_child(tok, labels, omit, stack, toks[item], brace_off, brace_tok[2])
            elif kind in (T_PSIMPLE, T_NAMEQ, T_NAME, scan.T_DELPROP):
                if omit:
                    # /omit-if-no-ref/ takes a subnode: dtc stops at the token after the name
                    if kind == T_NAME or kind == scan.T_DELPROP:
                        self.i += 1
                    else:
                        eq = tok[2].text.index("=", tok[3])
                        raise self.hard_error("syntax error", SourcePos(tok[2], eq, eq + 1), "syntax error: expected '{' after /omit-if-no-ref/ NAME")
                    raise self.syntax_error("'{' after /omit-if-no-ref/ NAME")
                prop = self.parse_property(pending)
                for name in reversed(labels):
                    add_label(prop.labels, name)
                if frame[1]:
                    raise self.hard_error("Properties must precede subnodes", self.span(item, self.i - 1))
                node.props.append(prop)
            elif kind == scan.T_DELNODE:
                if deep:
                    self.push_state(pending + 1)
                self.i += 1
                if deep:
                    self.push_state(pending + 2)
                name_tok = self.expect_name("a node name")
                if deep:
                    self.push_state(pending + 3)
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
                # the empty `subnodes`, then '}' and ';' land on the stack
                if deep:
                    self.push_state(total + 2)
                self.i += 1
                if kind == "}":
                    if deep:
                        self.push_state(total + 3)
                    self.expect(";")
                elif deep:
                    self.push_state(total + 3, (";", ";", tok[2], tok[4] - 1, tok[4]))
                last = self.toks[self.i - 1]
                node.pos = NodePos(frame[2][2], frame[2][3], last[4], frame[4], frame[5], last[2])
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

    def parse_property(self, depth: int) -> Property:
        """A propdef after its labels; ``depth`` is bison's stack below its name."""
        toks = self.toks
        tok = toks[self.i]
        kind = tok[0]
        # a property pushes at most 5 states over ``depth``; only near bison's
        # limit is each push checked (this runs for every property)
        deep = depth + 5 >= YYMAXDEPTH
        if deep:
            self.push_state(depth + 1)
        if kind == T_PSIMPLE:
            # the scanner fused NAME '=' (<simple cells> | "string") ';'
            self.i += 1
            fused: tuple[str, str | None, str | None] = tok[1]  # type: ignore[assignment]
            pname, cells, string = fused
            pdata = bytearray()
            if cells is not None:
                if deep:
                    self.push_state(depth + 5)
                pmarkers = [Marker(0, MarkerType.TYPE_UINT32)]
                self.fast_cells(tok, pdata, pmarkers, 32, cells)
            else:
                assert string is not None
                if deep:
                    self.push_state(depth + 4)
                pmarkers = [Marker(0, MarkerType.TYPE_STRING)]
                pdata += self.string((T_STR, string, tok[2], tok[3], tok[4]), tok[2].text.index('"', tok[3]) + 1)
                pdata.append(0)
            return Property(pname, bytes(pdata), pmarkers, SourcePos(tok[2], tok[3], tok[4]))
        if kind == scan.T_DELPROP:
            self.i += 1
            if deep:
                self.push_state(depth + 2)
            name_tok = self.expect_name("a property name")
            if deep:
                self.push_state(depth + 3)
            self.expect(";")
            prop = Property(name_tok[1], b"", [], None)  # type: ignore[arg-type]
            prop.deleted = True
            return prop
        if kind == T_NAMEQ:
            # the scanner fused NAME '=' (the common case)
            self.i += 1
            if deep:
                self.push_state(depth + 2)
            value, markers = self.parse_propdata(depth + 2)
            if deep:
                self.push_state(depth + 4)
            self.expect(";")
        elif kind == T_NAME:
            nxt = toks[self.i + 1][0]
            self.i += 1
            if nxt == "=":
                if deep:
                    self.push_state(depth + 2)
                self.i += 1
                value, markers = self.parse_propdata(depth + 2)
                if deep:
                    self.push_state(depth + 4)
            elif nxt == ";":
                if deep:
                    self.push_state(depth + 2)
                value, markers = b"", []
            else:
                raise self.syntax_error("'=', ';' or '{' after a name")
            self.expect(";")
        else:
            raise self.syntax_error("a property")
        last = toks[self.i - 1]
        src = tok[2]
        pos = SourcePos(src, tok[3], last[4]) if last[2] is src else SpanPos(src, tok[3], last[2], last[4])
        return Property(tok[1], value, markers, pos)  # type: ignore[arg-type]

    def _open_child(
        self,
        tok: Token,
        labels: list[str],
        omit: bool,
        stack: list[list],
        item_tok: Token,
        brace: int,
        brace_src: SourceBuffer,
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
        stack.append([child, False, item_tok, cost, brace, brace_src])
        return cost

    # -- property values ---------------------------------------------------------
    def parse_propdata(self, depth: int) -> tuple[bytes, list[Marker]]:
        """propdata; ``depth`` is bison's stack below it (the name and '=' included)."""
        toks = self.toks
        data = bytearray()
        markers: list[Marker] = []
        deep = depth + 3 >= YYMAXDEPTH  # only near bison's limit is each push checked
        if deep:
            self.push_state(depth + 1)  # the empty propdataprefix
        while True:
            tok = toks[self.i]
            kind = tok[0]
            while kind == T_LABEL:
                if deep:
                    self.push_state(depth + 2)
                markers.append(Marker(len(data), MarkerType.LABEL, tok[1]))  # type: ignore[arg-type]
                self.i += 1
                tok = toks[self.i]
                kind = tok[0]
            if kind == T_STR:
                if deep:
                    self.push_state(depth + 2)
                self.i += 1
                markers.append(Marker(len(data), MarkerType.TYPE_STRING))
                data += self.string(tok, tok[3] + 1)
                data.append(0)
            elif kind == T_CELLS:
                if deep:
                    self.push_state(depth + 3)
                self.i += 1
                markers.append(Marker(len(data), MarkerType.TYPE_UINT32))
                self.fast_cells(tok, data, markers)
            elif kind == "<" or kind == scan.T_BITS:
                self.parse_array(data, markers, depth + 1)
            elif kind == "[":
                if deep:
                    self.push_state(depth + 3)
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
                if deep:
                    self.push_state(depth + 2)
                self.i += 1
                markers.append(Marker(len(data), MarkerType.TYPE_STRING, tok[1]))  # type: ignore[arg-type]
                markers.append(Marker(len(data), MarkerType.REF_PATH, tok[1]))  # type: ignore[arg-type]
            elif kind == scan.T_INCBIN:
                self.i += 1
                data += self.parse_incbin(tok, markers, len(data), depth + 1)
            else:
                raise self.syntax_error("a property value")
            tok = toks[self.i]
            while tok[0] == T_LABEL:
                markers.append(Marker(len(data), MarkerType.LABEL, tok[1]))  # type: ignore[arg-type]
                self.i += 1
                tok = toks[self.i]
            if tok[0] == ",":
                if deep:
                    self.push_state(depth + 2)
                self.i += 1
                continue
            return bytes(data), markers

    def parse_array(self, data: bytearray, markers: list[Marker], depth: int) -> None:
        """arrayprefix ... '>'; ``depth`` is bison's stack below it (propdataprefix included)."""
        toks = self.toks
        tok = toks[self.i]
        bits = 32
        deep = depth + 3 >= YYMAXDEPTH  # only near bison's limit is each push checked
        if tok[0] == scan.T_BITS:
            if deep:
                self.push_state(depth + 1)
            self.i += 1
            if deep:
                self.push_state(depth + 2)
            btok = self.expect(T_NUM, "a bit width after /bits/")
            bits = self.literal(btok)
            if bits not in _TYPE_FOR_BITS:
                # dtc says so when it reduces `DT_BITS DT_LITERAL '<'`: only once the '<' is there
                if toks[self.i][0] in ("<", T_CELLS):
                    k = self.i - 1
                    self.soft_error("Array elements must be 8, 16, 32 or 64-bits", k, k)
                bits = 32
            if deep:
                self.push_state(depth + 3, toks[self.i])
        tok = toks[self.i]
        if tok[0] == T_CELLS:
            if deep:
                self.push_state(depth + 2)
            self.i += 1
            markers.append(Marker(len(data), _TYPE_FOR_BITS[bits]))
            self.fast_cells(tok, data, markers, bits)
            return
        if deep:
            self.push_state(depth + 1)
        self.expect("<")
        markers.append(Marker(len(data), _TYPE_FOR_BITS[bits]))
        nbytes = bits // 8
        mask = (1 << bits) - 1
        while True:
            tok = toks[self.i]
            kind = tok[0]
            if kind == T_REF:
                if deep:
                    self.push_state(depth + 2)
                self.i += 1
                if bits != 32:
                    k = self.i - 1
                    self.soft_error("References are only allowed in arrays with 32-bit elements.", k, k)
                else:
                    markers.append(Marker(len(data), MarkerType.REF_PHANDLE, tok[1]))  # type: ignore[arg-type]
                data += b"\xff" * nbytes
                continue
            if kind == T_LABEL:
                if deep:
                    self.push_state(depth + 2)
                self.i += 1
                markers.append(Marker(len(data), MarkerType.LABEL, tok[1]))  # type: ignore[arg-type]
                continue
            if kind == ">":
                if deep:
                    self.push_state(depth + 2)
                self.i += 1
                return
            if kind == T_NUM:  # alone, a literal is the whole integer_prim (parse_integer_prim's first step)
                if depth + 2 >= YYMAXDEPTH:
                    self.push_state(depth + 2)
                first = self.i
                val = self.literal(tok)
                self.i += 1
            elif kind == T_CHAR or kind == "(":
                val, first = parse_integer_prim(self, depth + 1)
            else:
                raise self.syntax_error("a number, a reference or '>'")
            if bits < 64 and val > mask and (val | mask) != _M64:
                self.soft_error(f"Value out of range for {bits}-bit array element", first, self.i - 1)
            data += (val & mask).to_bytes(nbytes, "big")

    def fast_cells(self, tok: Token, data: bytearray, markers: list[Marker], bits: int = 32, body: str | None = None) -> None:
        """Cells from a fused '<...>' (or whole-property) token: plain literals, &label references, labels."""
        text: str = tok[1] if body is None else body  # type: ignore[assignment]
        if bits == 32:
            # a board repeats most of its cell lists (<1>, <0>, <&gic 0 12 4>): each plain one is
            # packed once per compilation (bounded: short lists, a few thousand of them)
            hit = self.plain_cells.get(text)
            if hit is None and len(text) < 4096 and _PLAIN_CELLS_RE.fullmatch(text):
                items = text.split()
                pack = _PACK[len(items)] if len(items) < len(_PACK) else struct.Struct(f">{len(items)}I").pack
                if "&" in text:
                    hit = (pack(*[0xFFFFFFFF if x[0] == "&" else int(x, 0) for x in items]),
                           tuple([(4 * k, item[1:]) for k, item in enumerate(items) if item[0] == "&"]))
                else:
                    hit = (pack(*map(int, items, repeat(0))), ())  # int(item, 0) each
                if len(text) <= 256 and len(self.plain_cells) < 4096:
                    self.plain_cells[text] = hit
            if hit is not None:
                if hit[1]:
                    at = len(data)
                    markers += [Marker(at + off, MarkerType.REF_PHANDLE, ref) for off, ref in hit[1]]
                data += hit[0]
                return
        nbytes = bits // 8
        mask = (1 << bits) - 1
        src: SourceBuffer = tok[2]
        base = -1
        for m in _CELL_ITEM_RE.finditer(text):
            item = m.group()
            if item[-1] == ":":  # a label inside the cells
                markers.append(Marker(len(data), MarkerType.LABEL, item[:-1]))
                continue
            if item[0] == "&":
                if bits != 32:
                    if base < 0:
                        base = src.text.index("<", tok[3]) + 1
                    self.soft_at("References are only allowed in arrays with 32-bit elements.", src, base + m.start(), base + m.end())
                else:
                    markers.append(Marker(len(data), MarkerType.REF_PHANDLE, item[1:]))
                data += b"\xff" * nbytes
                continue
            if (item[0] == "0" and len(item) > 1 and item[1] not in "xX") or len(item) > 18:
                # octal, or long enough to be out of range: the careful path (no int() of 4,300+
                # digits; leading zeros do not count), with dtc's lexical error when bad
                if base < 0:
                    base = src.text.index("<", tok[3]) + 1
                val = self.literal((T_NUM, item, src, base + m.start(), base + m.end()))
            elif item[:2] in ("0x", "0X"):
                val = int(item[2:], 16)
            else:
                # int() refuses over 4,300 digits; beyond 20 it is out of range anyway
                val = int(item) if len(item) <= 20 else _M64 + 1
            if val > mask:
                if base < 0:
                    base = src.text.index("<", tok[3]) + 1
                if val > _M64:
                    val = self.literal((T_NUM, item, src, base + m.start(), base + m.end()))
                if val > mask and (val | mask) != _M64:
                    self.soft_at(f"Value out of range for {bits}-bit array element", src, base + m.start(), base + m.end())
            data += (val & mask).to_bytes(nbytes, "big")

    def soft_at(self, message: str, src: SourceBuffer, start: int, end: int, prefix: str = "Error") -> None:
        self.errors.append(Message(SourcePos(src, start, end), message, message, prefix))

    def parse_incbin(self, tok: Token, markers: list[Marker], offset: int, depth: int) -> bytes:
        self.push_state(depth + 1, tok)
        self.push_state(depth + 2)
        self.expect("(")
        self.push_state(depth + 3)
        name_tok = self.expect(T_STR, "a file name")
        fname = self.string(name_tok, name_tok[3] + 1)
        fname = fname.split(b"\0", 1)[0]
        start = 0
        length = -1
        if self.toks[self.i][0] == ",":
            self.push_state(depth + 4)
            self.i += 1
            start = parse_integer_prim(self, depth + 4)[0]
            self.push_state(depth + 6)
            self.expect(",")
            length = parse_integer_prim(self, depth + 6)[0]
            self.push_state(depth + 8)
        else:
            self.push_state(depth + 4)
        self.expect(")")
        name = fname.decode("latin-1")
        src: SourceBuffer = tok[2]
        path = scan._find_include(name, src.dir, self.include_dirs)
        if path is None:
            raise self.fatal(f'Couldn\'t open "{name}": No such file or directory', name_tok)
        self.incbin_files.append(path)
        try:
            with open(path, "rb") as f:
                if start:
                    f.seek(start)
                # bounded (dtvm.fileio.MAX_SOURCE): /dev/zero or a FIFO must not take all memory
                cap = MAX_SOURCE + 1
                data = f.read(cap if length < 0 or length == _M64 else min(length, cap))
        except (OSError, OverflowError, ValueError) as exc:
            raise self.fatal(f'Couldn\'t read "{name}": {exc}', name_tok) from None
        if len(data) > MAX_SOURCE:
            raise self.fatal(f'Couldn\'t read "{name}": larger than dtvm reads ({MAX_SOURCE >> 20} MiB)', name_tok)
        markers.append(Marker(offset, MarkerType.TYPE_NONE))
        return data


def _bad_literal_value(tok: Token) -> int:
    """What dtc's lexer returns for a literal it reported: strtoull's value, or a character literal's first byte."""
    text: str = tok[1]  # type: ignore[assignment]
    if tok[0] == T_NUM:
        body = text.rstrip("UL")
        if body[:2] in ("0x", "0X"):
            val = int(body[2:], 16)
        elif body[:1] == "0":
            j = 1
            while j < len(body) and body[j] in "01234567":
                j += 1
            val = int(body[:j], 8)
        else:
            val = int(body) if len(body) <= 20 else _M64
        return min(val, _M64)
    data = unescape(text, tok[2], tok[3] + 1)
    return data[0] if data else 0


def parse_tokens(tokens: list[Token], include_dirs: list[str] | None = None) -> DeviceTree:
    return Parser(tokens, include_dirs).parse()


def parse_source(src: SourceBuffer, include_dirs: list[str] | None = None) -> DeviceTree:
    """Parse a DTS source (and what it includes) into a DeviceTree, references unresolved."""
    scanner = scan.Scanner(include_dirs)
    tokens = scanner.run(src)
    dt = parse_tokens(tokens, include_dirs)
    name_sources(dt, tokens, src, scanner.buffers)
    return dt


def name_sources(dt: DeviceTree, tokens: list[Token], src: SourceBuffer, buffers: list[SourceBuffer] | None = None) -> None:
    """The main file's name, and dtc's initial path (what ``-T`` shortens file names against):
    the first linemarker the lexer read, in any buffer a token came from, else the main file.
    ``buffers``: the scanner's (a superset of the tokens' buffers), so that only the few with a
    linemarker are looked for among the tokens, not each of the tokens' (10^5 in a kernel board)."""
    dt.source_name = src.name
    if buffers is None:
        buffers = list(set(map(itemgetter(2), tokens)))  # each buffer once (a set built in C)
    marks = [m for b in buffers if (m := b.first_mark) is not None and b in map(itemgetter(2), tokens)]
    dt.initial_path = min(marks)[1] if marks else src.name


def parse_file(path: str, include_dirs: list[str] | None = None) -> DeviceTree:
    """Parse a DTS file; '-' reads standard input."""
    return parse_source(read_source(path), include_dirs)


def parse_string(text: str, name: str = "<string>", include_dirs: list[str] | None = None) -> DeviceTree:
    return parse_source(SourceBuffer(name, text, os.getcwd()), include_dirs)
