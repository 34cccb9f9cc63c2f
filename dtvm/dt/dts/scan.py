"""The DTS tokenizer: dtc's flex scanner as one compiled regular expression per lexer state.

dtc's lexer (dtc-lexer.l) is modal, and the modes decide what a run of
characters means: after ``{`` or ``;`` the next word is a node or property name
(``0x10`` is a name there), inside ``[ ]`` pairs of hex digits are bytes, and
elsewhere numbers are literals. The mode changes only on tokens, never on
parser feedback, so the whole input can be tokenized before parsing.

flex picks the longest match (first rule on ties); the alternatives below are
ordered so that Python's first-match gives the same answer for every input.
Whitespace and comments are folded into the front of each token's pattern.

Tokens are tuples ``(kind, value, source, start, end)``; kinds are the strings
named in ``T_*`` below or the punctuation character itself.
"""

from __future__ import annotations

import os
import re

from dtvm.dt.dts.source import SourceBuffer, read_source
from dtvm.errors import SourceError

__all__ = ["MAX_INCLUDE_DEPTH", "Token", "tokenize"]

Token = tuple[str, object, SourceBuffer, int, int]

MAX_INCLUDE_DEPTH = 200  # dtc's MAX_SRCFILE_DEPTH

T_NAME = "name"  # DT_PROPNODENAME
T_NAMEQ = "nameq"  # DT_PROPNODENAME followed by '=' (two tokens fused)
T_PSIMPLE = "psimple"  # NAME '=' (<simple cells> | "string") ';' fused; value (name, cells, string)
T_NODEOPEN = "nopen"  # NAME '{' fused; value is the name
T_CLOSE = "close"  # '}' ';' fused
T_CELLS = "cells"  # '<' simple cells '>' fused; value is the text between the brackets
T_LABEL = "label"  # DT_LABEL, value is the label without ':'
T_NUM = "num"  # DT_LITERAL, value is the raw literal text
T_CHAR = "char"  # DT_CHAR_LITERAL, value is the raw text between quotes
T_STR = "str"  # DT_STRING, value is the raw text between quotes
T_REF = "ref"  # DT_REF, value is the label or path
T_BYTE = "byte"  # DT_BYTE, value is an int
T_V1 = "/dts-v1/"
T_PLUGIN = "/plugin/"
T_MEMRES = "/memreserve/"
T_BITS = "/bits/"
T_DELPROP = "/delete-property/"
T_DELNODE = "/delete-node/"
T_OMIT = "/omit-if-no-ref/"
T_INCBIN = "/incbin/"
T_EOF = "eof"  # value "zero" when nothing was read: dtc's location is then FILE:0.0
T_FATAL = "fatal"  # dtc dies here (a missing /include/): value is the message; scanning stopped

# lexer states
INITIAL, V1, PROPNODENAME, BYTESTRING = range(4)

_SKIP = r"(?:[ \t\n\r\f\v]+|/\*[\s\S]*?\*/|//[^\n]*\n)*"
_STRING = r'"([^\\"]*(?:\\.[^\\"]*)*)"'
_LABEL = r"([a-zA-Z_][a-zA-Z0-9_]*):"
_PROPNODECHAR = r"[a-zA-Z0-9,._+*#?@-]"
_PATHCHAR = r"[a-zA-Z0-9,._+*#?@/-]"

# Fast path: a cell list of plain literals, &label references and labels, separated by
# whitespace only, is one token. It yields exactly the tokens flex would (the
# lookahead rejects '>>' and '>='); anything else falls back to single tokens.
_CELL_ITEM = r"(?:0[xX][0-9a-fA-F]+|[0-9]+|&[a-zA-Z_][a-zA-Z0-9_]*|[a-zA-Z_][a-zA-Z0-9_]*:)"
# The repetition is possessive (*+): what follows it can never match inside a cell list, so
# giving an item back never helps, and without it the regex engine keeps backtracking state
# for every cell (about 900 bytes a cell: 2 MB of cells took 200 MB).
_CELLS_BODY = r"[ \t\n]*(?:" + _CELL_ITEM + r"(?:[ \t\n]+" + _CELL_ITEM + r")*+[ \t\n]*)?"

_WS = r"[ \t\n\r\f\v]*"
_STRING_NAMED = r'"(?P<pstr>[^\\"]*(?:\\.[^\\"]*)*)"'

_COMMON_HEAD = (
    r"(?P<lm>^\#(?:line)?[ \t]+([0-9]+)[ \t]+" + _STRING + r"(?:[ \t]+[0-9]+)*)"
    r"|(?P<inc>/include/[ \t\n\r\f\v]*" + _STRING + r")"
    r"|(?P<kw>/(?:dts-v1|plugin|memreserve|bits|delete-property|delete-node|omit-if-no-ref)/)"
)
_COMMON_TAIL = (
    r"|(?P<str>" + _STRING + r")"
    r"|(?P<chr>'((?:\\'|[^'])*)')"
    r"|(?P<pref>&\{(/" + _PATHCHAR + r"*|[a-zA-Z_][a-zA-Z0-9_]*(?:/" + _PATHCHAR + r"*)?)\})"
    r"|(?P<ref>&([a-zA-Z_][a-zA-Z0-9_]*))"
    r"|(?P<op><<|>>|<=|>=|==|!=|&&|\|\|)"
    r"|(?P<ch>[\s\S])"
    r"|(?P<eof>\Z)"
)

_PATTERNS = {
    INITIAL: _COMMON_HEAD + r"|(?P<lab>" + _LABEL + r")" + r"|(?P<incbin>/incbin/)" + _COMMON_TAIL,
    V1: _COMMON_HEAD
    + r"|(?P<cells><" + _CELLS_BODY + r">(?![>=]))"
    + r"|(?P<lab>"
    + _LABEL
    + r")"
    + r"|(?P<num>(?:0[xX][0-9a-fA-F]+|[0-9]+)(?:ULL|UL|LL|U|L)?)"
    + r"|(?P<incbin>/incbin/)"
    + _COMMON_TAIL,
    PROPNODENAME: _COMMON_HEAD
    + r"|(?P<lab>"
    + _LABEL
    + r")"
    + r"|(?P<psimple>(?P<pname>\\?" + _PROPNODECHAR + r"+)" + _WS + r"=" + _WS
    + r"(?:<(?P<pcells>" + _CELLS_BODY + r")>|" + _STRING_NAMED + r")" + _WS + r";)"
    + r"|(?P<nopen>(?P<oname>\\?" + _PROPNODECHAR + r"+)" + _WS + r"\{)"
    + r"|(?P<close>\}" + _WS + r";)"
    + r"|(?P<nameq>\\?"
    + _PROPNODECHAR
    + r"+)[ \t\n\r\f\v]*=(?!=)"
    + r"|(?P<name>\\?"
    + _PROPNODECHAR
    + r"+)"
    + _COMMON_TAIL,
    BYTESTRING: _COMMON_HEAD
    + r"|(?P<lab>"
    + _LABEL
    + r")"
    + r"|(?P<byte>[0-9a-fA-F]{2})"
    + r"|(?P<bend>\])"
    + _COMMON_TAIL,
}

# V1 without the fused cell list: after a literal or ')' a '<' is the less-than
# operator, so '(a < b > c)' must not become one cell token
V1_NOCELLS = 4
_PATTERNS[V1_NOCELLS] = _PATTERNS[V1].replace(r"|(?P<cells><" + _CELLS_BODY + r">(?![>=]))", "")
_REGEXES = {state: re.compile(_SKIP + r"(?:" + pat + r")", re.M) for state, pat in _PATTERNS.items()}
# the tokens after which a '<' opens a cell list (a value starts): '=', ',', a label, '/bits/ N'
_CELLS_AFTER = frozenset({T_NAMEQ, "=", ",", T_LABEL})
# flex's runs of whitespace and comments: the last one is dtc's location of the end of input
_SKIP_RUN = re.compile(r"[ \t\n\r\f\v]+|(?:/\*[\s\S]*?\*/)+|(?://[^\n]*\n)+")
_KW_STATE = {
    T_V1: V1,
    T_PLUGIN: None,
    T_MEMRES: V1,
    T_BITS: V1,
    T_DELPROP: PROPNODENAME,
    T_DELNODE: PROPNODENAME,
    T_OMIT: PROPNODENAME,
}
_LM_RE = re.compile(r"\#(?:line)?[ \t]+([0-9]+)[ \t]+" + _STRING + r"((?:[ \t]+[0-9]+)*)")


def _find_include(name: str, current_dir: str, include_dirs: list[str]) -> str | None:
    """dtc's fopen_any_on_path: the including file's directory first, then -i dirs."""
    candidates = [name] if os.path.isabs(name) else [os.path.join(d, name) if d else name for d in [current_dir, *include_dirs]]
    for path in candidates:
        if os.path.isfile(path):
            return path
    return None


def describe_token(tok: Token) -> str:
    """How a syntax error names the token it stopped at."""
    kind, value = tok[0], tok[1]
    if kind == T_EOF:
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


class Scanner:
    """Tokenizes a source and the files it /include/s into one token list."""

    def __init__(self, include_dirs: list[str] | None = None) -> None:
        self.include_dirs = list(include_dirs or [])
        self.state = INITIAL
        self.depth = 0
        self.files: list[str] = []
        self.buffers: list[SourceBuffer] = []  # every buffer scanned, the main one first
        # set when scanning ends early: a NUL byte (flex returns it as token 0,
        # the end of input for bison) or a fatal error
        self.stopped = False
        self.end: tuple[SourceBuffer, int, int] | None = None

    def run(self, src: SourceBuffer) -> list[Token]:
        out: list[Token] = []
        self._scan(src, out)
        if self.stopped and out and out[-1][0] == T_FATAL:
            return out
        if self.end is not None:
            esrc, start, end = self.end
            out.append((T_EOF, None, esrc, start, end))
        elif out:
            # dtc's location at the end is that of the last token it read
            kind, _, lsrc, lstart, lend = out[-1]
            if kind in (T_CLOSE, T_PSIMPLE, T_CELLS, T_NODEOPEN):
                lstart = lend - 1  # a fused token ends with '}' ';', ';', '>' or '{'
            elif kind == T_NAMEQ:
                lstart = lsrc.text.index("=", lend)
                lend = lstart + 1
            out.append((T_EOF, None, lsrc, lstart, lend))
        else:
            out.append((T_EOF, "zero", src, 0, 0))
        return out

    def _scan(self, src: SourceBuffer, out: list[Token]) -> None:
        self.buffers.append(src)
        text = src.text
        pos = 0
        regexes = _REGEXES
        cells_after = _CELLS_AFTER
        append = out.append
        nocells = regexes[V1_NOCELLS]
        regex = regexes[self.state]  # kept with self.state (which outlives this buffer: /include/)
        while True:
            m = regex.match(text, pos)
            assert m is not None  # the last alternatives match any character or the end
            kind = m.lastgroup
            if kind == "cells" and out:
                # a '<' opens a fused cell list only where a value starts, never inside an
                # expression: asked only when one matched (the regex without the cell list
                # differs from V1's only in that alternative, so it finds what V1 would have)
                last = out[-1][0]
                if last not in cells_after and not (last == T_NUM and len(out) > 1 and out[-2][0] == T_BITS):
                    m = nocells.match(text, pos)
                    assert m is not None
                    kind = m.lastgroup
            start = m.start(kind)  # type: ignore[arg-type]
            pos = m.end()
            if kind == "psimple":
                name = m.group("pname")
                if name[0] == "\\":
                    name = name[1:]
                append((T_PSIMPLE, (name, m.group("pcells"), m.group("pstr")), src, start, pos))
            elif kind == "close":
                append((T_CLOSE, "};", src, start, pos))
            elif kind == "nopen":
                name = m.group("oname")
                append((T_NODEOPEN, name[1:] if name[0] == "\\" else name, src, start, pos))
            elif kind == "cells":
                append((T_CELLS, text[start + 1 : pos - 1], src, start, pos))
            elif kind == "nameq":
                name = m.group(kind)
                append((T_NAMEQ, name[1:] if name[0] == "\\" else name, src, start, m.end(kind)))
                self.state = V1
                regex = regexes[V1]
            elif kind == "ch":
                c = text[start]
                append((c, c, src, start, pos))
                if c == "\0":
                    # flex returns a NUL byte as token 0, which bison takes for the end of input
                    out.pop()
                    self.end = (src, start, pos)
                    self.stopped = True
                    return
                if c == "[":
                    self.state = BYTESTRING
                    regex = regexes[BYTESTRING]
                elif c == "{" or c == ";":
                    self.state = PROPNODENAME
                    regex = regexes[PROPNODENAME]
            elif kind == "name":
                name = m.group(kind)
                append((T_NAME, name[1:] if name[0] == "\\" else name, src, start, pos))
                self.state = V1
                regex = regexes[V1]
            elif kind == "num":
                append((T_NUM, m.group(kind), src, start, pos))
            elif kind == "lab":
                append((T_LABEL, text[start : pos - 1], src, start, pos))
            elif kind == "ref":
                append((T_REF, text[start + 1 : pos], src, start, pos))
            elif kind == "str":
                append((T_STR, text[start + 1 : pos - 1], src, start, pos))
            elif kind == "byte":
                append((T_BYTE, int(text[start:pos], 16), src, start, pos))
            elif kind == "op":
                op = text[start:pos]
                append((op, op, src, start, pos))
            elif kind == "bend":
                append(("]", "]", src, start, pos))
                self.state = V1
                regex = regexes[V1]
            elif kind == "kw":
                kw = text[start:pos]
                append((kw, kw, src, start, pos))
                nstate = _KW_STATE[kw]
                if nstate is not None:
                    self.state = nstate
                    regex = regexes[nstate]
            elif kind == "pref":
                append((T_REF, text[start + 2 : pos - 1], src, start, pos))
            elif kind == "chr":
                append((T_CHAR, text[start + 1 : pos - 1], src, start, pos))
            elif kind == "incbin":
                append((T_INCBIN, T_INCBIN, src, start, pos))
            elif kind == "lm":
                self._linemarker(src, text, start, pos)
            elif kind == "inc":
                self._include(src, text, start, pos, out)
                if self.stopped:
                    return
                regex = regexes[self.state]
            elif kind == "eof":
                if self.depth == 0:
                    runs = list(_SKIP_RUN.finditer(text, m.start(), start))
                    if runs:
                        self.end = (src, runs[-1].start(), runs[-1].end())
                return
            else:  # pragma: no cover - every group is handled above
                raise AssertionError(kind)

    def _fatal(self, out: list[Token], message: str, src: SourceBuffer, start: int, end: int) -> None:
        """dtc dies here; the parser reports it when it gets this far (an earlier syntax error wins)."""
        out.append((T_FATAL, message, src, start, end))
        self.stopped = True

    def _linemarker(self, src: SourceBuffer, text: str, start: int, end: int) -> None:
        from dtvm.dt.dts.values import unescape

        lm = _LM_RE.match(text, start)
        assert lm is not None
        raw = lm.group(2)
        fname = unescape(raw, src, lm.start(2)) if "\\" in raw else raw.encode("latin-1")
        if b"\0" in fname:
            raise SourceError("nul in line number directive", src, start)
        # '# N' names the line that follows the marker, hence N - 1 here
        # strtol clamps a huge number (Python's int() refuses over 4,300 digits)
        digits = lm.group(1).lstrip("0")
        line = int(digits) if 0 < len(digits) <= 19 else (0 if not digits else 1 << 63)
        flags = lm.group(3).split()
        flag = 1 if "1" in flags else 2 if "2" in flags else 0  # cpp: entering / leaving an #include
        src.add_linemarker(end, fname.decode("latin-1"), min(line, (1 << 63) - 1) - 1, flag, start)

    def _include(self, src: SourceBuffer, text: str, start: int, end: int, out: list[Token]) -> None:
        q = text.index('"', start)
        name = text[q + 1 : end - 1]
        if self.depth >= MAX_INCLUDE_DEPTH:
            self._fatal(out, "Includes nested too deeply", src, start, end)
            return
        path = _find_include(name, src.dir, self.include_dirs)
        if path is None:
            self._fatal(out, f'Couldn\'t open "{name}": No such file or directory', src, start, end)
            return
        try:
            inc = read_source(path)
            inc.included_from = (src, start)
        except OSError as exc:
            self._fatal(out, f'Couldn\'t open "{name}": {exc.strerror}', src, start, end)
            return
        self.files.append(path)
        self.depth += 1
        try:
            self._scan(inc, out)
        finally:
            self.depth -= 1


def tokenize(src: SourceBuffer, include_dirs: list[str] | None = None) -> list[Token]:
    """All tokens of ``src`` and its /include/s, ending with an eof token."""
    return Scanner(include_dirs).run(src)
