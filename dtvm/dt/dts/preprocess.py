"""The C preprocessor step in front of dtc (``dtvm dtc --cpp``), in process, with pcpp.

The kernel runs every board through
``cpp -nostdinc -I DIRS -undef -D__DTS__ -x assembler-with-cpp`` before dtc
sees it; :func:`preprocess` produces the same text for dtc without a
subprocess. pcpp (PyPI) does the C part: macro definitions, expansion with
argument pre-expansion, ``#``/``##``, variadic macros and ``#if`` arithmetic.
The front end around it is GNU cpp's, where pcpp's own differs in ways dtc
would notice:

* lexing: GNU's preprocessing numbers (``0x##port`` pastes to ``0x1f``; the
  ``c20`` of ``1c20`` is no identifier), ``$`` is not an identifier character
  in assembler mode, unterminated ``'`` and ``"`` are plain characters, and
  comments are whitespace everywhere, also across lines;
* assembler-with-cpp: a ``#`` line that is no directive (``#address-cells =
  <N>;``) is ordinary text and is macro-expanded like any other line; the null
  directive is removed; ``#line`` moves the line numbers;
* includes: ``-nostdinc`` and ``-undef`` (only ``__STDC__``,
  ``__STDC_HOSTED__``, ``__ASSEMBLER__`` and ``__DTS__`` are defined),
  ``"..."`` looks in the including file's directory first, then the
  ``--cpp-include`` directories, ``<...>`` only in those, and file names in
  linemarkers are spelled as GNU cpp spells them;
* output: cpp linemarkers (``# 1 "file" 1`` on entry, ``# N "file" 2`` on
  return, blank lines for gaps under 8 lines), so that dtc's errors name the
  original file and line; one output line per source line, so the columns of
  unexpanded text stay those of the source; spaces only where the source had
  whitespace, or where two tokens would otherwise lex as one (GNU's
  ``avoid_paste``); GNU's stringification (only string and character literals
  get their ``\\`` and ``"`` escaped).

Errors are GNU cpp's errors, raised as :class:`~dtvm.errors.SourceError` at the
file, line and column of the offending token (through ``#include``), never as
a traceback; cpp warnings are not errors.

Lines without a macro name are copied as they are, and object-like macro
bodies are only tokenized when used, so a board with its pinmux headers
(thousands of ``#define``) costs a few milliseconds.
"""

from __future__ import annotations

import bisect
import os
import re
import time
from typing import Any

from pcpp.parser import Action, Macro, OutputDirective
from pcpp.preprocessor import Preprocessor

from dtvm.dt.dts.source import SourceBuffer
from dtvm.errors import DtvmError, SourceError

__all__ = ["PreprocessedSource", "preprocess"]

MAX_INCLUDE_DEPTH = 200  # GNU cpp's default -fmax-include-depth

# ---------------------------------------------------------------------------
# Tokens and the lexer (GNU cpp's lexing in assembler-with-cpp mode, with the
# token type names pcpp and its #if evaluator use)
# ---------------------------------------------------------------------------

WS = "CPP_WS"
ID = "CPP_ID"
_WS_TYPES = ("CPP_WS", "CPP_LINECONT", "CPP_COMMENT1", "CPP_COMMENT2")

_PUNCT_TYPES = {
    "<<=": "CPP_LSHIFTEQUAL",
    ">>=": "CPP_RSHIFTEQUAL",
    "...": "CPP_ELLIPSIS",
    "##": "CPP_DPOUND",
    "->": "CPP_DEREFERENCE",
    "-=": "CPP_MINUSEQUAL",
    "--": "CPP_MINUSMINUS",
    "<<": "CPP_LSHIFT",
    "<=": "CPP_LESSEQUAL",
    ">>": "CPP_RSHIFT",
    ">=": "CPP_GREATEREQUAL",
    "||": "CPP_LOGICALOR",
    "|=": "CPP_OREQUAL",
    "&&": "CPP_LOGICALAND",
    "&=": "CPP_ANDEQUAL",
    "==": "CPP_EQUALITY",
    "!=": "CPP_INEQUALITY",
    "^=": "CPP_XOREQUAL",
    "*=": "CPP_MULTIPLYEQUAL",
    "/=": "CPP_DIVIDEEQUAL",
    "+=": "CPP_PLUSEQUAL",
    "++": "CPP_PLUSPLUS",
    "%=": "CPP_PERCENTEQUAL",
    "#": "CPP_POUND",
    "+": "CPP_PLUS",
    "-": "CPP_MINUS",
    "*": "CPP_STAR",
    "/": "CPP_FSLASH",
    "%": "CPP_PERCENT",
    "|": "CPP_BAR",
    "&": "CPP_AMPERSAND",
    "~": "CPP_TILDE",
    "^": "CPP_HAT",
    "<": "CPP_LESS",
    ">": "CPP_GREATER",
    "=": "CPP_EQUAL",
    "!": "CPP_EXCLAMATION",
    "?": "CPP_QUESTION",
    "(": "CPP_LPAREN",
    ")": "CPP_RPAREN",
    "[": "CPP_LBRACKET",
    "]": "CPP_RBRACKET",
    "{": "CPP_LCURLY",
    "}": "CPP_RCURLY",
    ".": "CPP_DOT",
    ",": "CPP_COMMA",
    ";": "CPP_SEMICOLON",
    ":": "CPP_COLON",
    "\\": "CPP_BSLASH",
    "'": "CPP_SQUOTE",
    '"': "CPP_DQUOTE",
}
_PUNCT_RE = "|".join(re.escape(p) for p in sorted(_PUNCT_TYPES, key=len, reverse=True))

_TOKEN_RE = re.compile(
    r"(?P<ws>[ \t\f\v\r]+)"
    r"|(?P<nl>\n)"
    r"|(?P<lc>\\[ \t\f\v]*\n)"
    r"|(?P<c1>/\*[\s\S]*?\*/)"
    r"|(?P<c1open>/\*)"
    r"|(?P<c2>//[^\n]*)"
    r'|(?P<str>L?"(?:[^"\\\n]|\\[^\n])*")'
    r"|(?P<chr>L?'(?:[^'\\\n]|\\[^\n])*')"
    # an unterminated quote is, in assembler-with-cpp, one CPP_OTHER to the end of the line
    r"|(?P<uq>L?[\"'][^\n]*)"
    r"|(?P<num>\.?[0-9](?:[eEpP][+-]|[0-9A-Za-z_.])*)"
    r"|(?P<id>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<punct>" + _PUNCT_RE + r")"
    r"|(?P<other>[\s\S])"
)
_INTEGER_RE = re.compile(r"(?:0[xX][0-9a-fA-F]+|[0-9]+)(?:[uU](?:ll|LL|[lL])?|(?:ll|LL|[lL])[uU]?)?\Z")
_KIND_TYPES = {
    "ws": "CPP_WS",
    "nl": "CPP_WS",
    "lc": "CPP_LINECONT",
    "c1": "CPP_COMMENT1",
    "c1open": "CPP_COMMENT1",
    "c2": "CPP_COMMENT2",
    "str": "CPP_STRING",
    "chr": "CPP_CHAR",
    "uq": "CPP_OTHER",
    "id": "CPP_ID",
    "other": "CPP_OTHER",
}


class _Tok:
    """A pcpp-compatible token; ``orig`` is the type it was lexed with."""

    def __init__(self, type_: str, value: str, lineno: int, lexpos: int, source: str) -> None:
        self.type = type_
        self.value = value
        self.lineno = lineno
        self.lexpos = lexpos
        self.source = source
        self.orig = type_

    def __copy__(self) -> _Tok:
        new = _Tok.__new__(_Tok)
        new.__dict__.update(self.__dict__)
        return new

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"_Tok({self.type}, {self.value!r}, {self.lineno})"


def _num_type(value: str) -> str:
    return "CPP_INTEGER" if _INTEGER_RE.match(value) else "CPP_FLOAT"


def _lex(text: str, start: int, end: int, lineno: int, source: str, base: int, comments: bool) -> list[_Tok]:
    """Tokens of text[start:end]; ``lexpos`` is ``base`` plus the offset in text.

    With ``comments`` False, comments become whitespace (a block comment on one
    line keeps its width, so the columns after it stay the source's) and a
    line's tokens after a multi-line comment get their own line numbers.
    """
    out: list[_Tok] = []
    append = out.append
    for m in _TOKEN_RE.finditer(text, start, end):
        kind = m.lastgroup
        value = m.group()
        pos = m.start()
        if kind == "punct":
            append(_Tok(_PUNCT_TYPES[value], value, lineno, base + pos, source))
            continue
        if kind == "num":
            append(_Tok(_num_type(value), value, lineno, base + pos, source))
            continue
        if kind == "c1open":
            raise _CppDiag("unterminated comment", base + pos)
        if not comments:
            if kind == "c1":
                nls = value.count("\n")
                append(_Tok(WS, " " if nls else " " * len(value), lineno, base + pos, source))
                lineno += nls
                continue
            if kind == "c2":
                continue
        if kind == "lc":
            append(_Tok("CPP_LINECONT", value[1:-1], lineno, base + pos, source))
            lineno += 1
        elif kind == "nl":
            append(_Tok(WS, value, lineno, base + pos, source))
            lineno += 1
        else:
            append(_Tok(_KIND_TYPES[kind or "other"], value, lineno, base + pos, source))
    return out


class _Lexer:
    """The lexer interface pcpp asks for (``input``/``token``/``clone``)."""

    def __init__(self) -> None:
        self.lineno = 1
        self._toks: list[_Tok] = []
        self._i = 0

    def input(self, text: str) -> None:
        try:
            self._toks = _lex(text, 0, len(text), self.lineno, "", 0, True)
        except _CppDiag:
            self._toks = [_Tok("CPP_OTHER", text, self.lineno, 0, "")]
        self._i = 0

    def token(self) -> _Tok | None:
        if self._i >= len(self._toks):
            return None
        tok = self._toks[self._i]
        self._i += 1
        return tok

    def clone(self) -> _Lexer:
        return _Lexer()


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class _CppDiag(Exception):
    """An error at an offset of the file being read (converted to SourceError)."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class _PcppError(Exception):
    """What pcpp reported through ``on_error``."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class _EvalError(OutputDirective):  # type: ignore[misc]
    """An #if expression GNU cpp rejects; pcpp lets OutputDirective through its evaluator."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(Action.IgnoreAndRemove)
        self.message = message
        self.offset = offset


def _pcpp_message(msg: str) -> str:
    """pcpp's diagnostics, worded as GNU cpp words them."""
    m = re.match(r"Macro (\w+) requires (\d+) arguments but was passed (\d+)", msg)
    if m:
        name, want, got = m.group(1), int(m.group(2)), int(m.group(3))
        if got > want:
            return f'macro "{name}" passed {got} arguments, but takes just {want}'
        return f'macro "{name}" requires {want} arguments, but only {got} given'
    m = re.match(r"Macro (\w+) must have at least (\d+) argument", msg)
    if m:
        return f'macro "{m.group(1)}" requires at least {m.group(2)} arguments'
    if "ZeroDivisionError" in msg:
        return "division by zero in #if"
    if msg.startswith("Could not evaluate expression"):
        if "missing binary operator" in msg:
            return 'missing binary operator before token "("'
        m = re.search(r"around token '(.*?)' type", msg)
        if m:
            return f'missing binary operator before token "{m.group(1)}"'
        if "at EOF" in msg:
            return (
                "#if with no expression" if "passed to evaluator: ''" in msg else "missing expression in #if"
            )
        return "invalid #if expression"
    if msg.startswith("Malformed defined"):
        return 'operator "defined" requires an identifier'
    if msg.startswith("Invalid macro argument") or msg.startswith("No more arguments"):
        return "expected parameter name, found invalid token"
    if msg.startswith("Missing ')' in macro arguments"):
        return "missing ')' in macro parameter list"
    return msg


# ---------------------------------------------------------------------------
# GNU cpp's rules for spaces between tokens of different origin
# ---------------------------------------------------------------------------

_EQ_PASTE = frozenset(["=", "!", ">", "<", "+", "-", "*", "/", "%", "&", "|", "^", ">>", "<<"])
_PASTE_AFTER = {
    ">": ">",
    "<": "<%:",
    "+": "+",
    "-": "->",
    "/": "/*",
    "%": ":%",
    "&": "&",
    "|": "|",
    ":": ":>",
    "->": "*",
    ".": ".%",
    "#": "#%",
}
_OPERATOR_TYPES = frozenset(t for t in _PUNCT_TYPES.values())


def _avoid_paste(a: _Tok, b: _Tok) -> bool:
    """GNU's cpp_avoid_paste: would ``a`` and ``b`` written together lex differently?"""
    return _avoid_paste_tv(a.type, a.value, b.type, b.value)


def _avoid_paste_tv(at: str, av: str, bt: str, bv: str) -> bool:
    if av == "\\":  # a stray backslash is GNU's CPP_OTHER: it would start a UCN
        return bt == ID
    c = bv[0] if bt in _OPERATOR_TYPES else ""
    if at in _OPERATOR_TYPES:
        if c == "=" and av in _EQ_PASTE:
            return True
        follow = _PASTE_AFTER.get(av)
        if follow is not None:
            if c and c in follow:
                return True
            return av == "." and bt in ("CPP_INTEGER", "CPP_FLOAT")
        return False
    if at == ID:
        return bt in (ID, "CPP_CHAR", "CPP_STRING")
    if at in ("CPP_INTEGER", "CPP_FLOAT"):
        return bt in ("CPP_INTEGER", "CPP_FLOAT", ID, "CPP_CHAR") or c in (".", "+", "-")
    if at == "CPP_OTHER":
        return av == "\\" and bt == ID
    return False


def _stringify(tokens: list[_Tok]) -> str:
    """GNU's stringification of a macro argument."""
    parts: list[str] = []
    space = False
    for t in tokens:
        if t.type in _WS_TYPES:
            space = bool(parts)
            continue
        if space:
            parts.append(" ")
            space = False
        v = str(t.value)
        if t.type in ("CPP_STRING", "CPP_CHAR"):
            v = v.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(v)
    return '"' + "".join(parts) + '"'


# ---------------------------------------------------------------------------
# Macros whose body is tokenized on first use
# ---------------------------------------------------------------------------


class _LazyMacro:
    """An object-like macro; its body is lexed when it is first expanded.

    Immutable once lexed, so the analysis of a header (and its macros) is
    shared by every preprocessing run in the process.
    """

    __slots__ = ("_base", "_body", "_value", "lineno", "name", "source", "trivial")
    arglist = None
    variadic = False

    def __init__(self, name: str, body: str, source: str, lineno: int, base: int) -> None:
        self.name = name
        self.source = source
        self.lineno = lineno
        self._body = body
        self._base = base
        self._value: list[_Tok] | None = None
        self.trivial: bool | None = None  # no identifier in the body (set when first asked)

    @property
    def value(self) -> list[_Tok]:
        if self._value is None:
            toks = _lex(self._body, 0, len(self._body), self.lineno, self.source, self._base, False)
            self._value = _strip(toks)
        return self._value


def _strip(toks: list[_Tok]) -> list[_Tok]:
    i = 0
    n = len(toks)
    while i < n and toks[i].type in _WS_TYPES:
        i += 1
    while n > i and toks[n - 1].type in _WS_TYPES:
        n -= 1
    return toks[i:n]


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------

_SPLICE_RE = re.compile(r"\\[ \t\f\v]*\n")
# '#' first on a line (comments are blanks), and the directive name
_DIRECTIVE_RE = re.compile(
    r"(?:[ \t\f\v]|/\*[\s\S]*?\*/)*+#(?:[ \t\f\v]|/\*[\s\S]*?\*/)*+([A-Za-z_][A-Za-z0-9_]*)?"
)
_DEFINE_RE = re.compile(r"[ \t\f\v]+([A-Za-z_][A-Za-z0-9_]*)(?:([ \t\f\v])([\s\S]*))?\Z")
_LEADING_BLANKS_RE = re.compile(r"(?:[ \t\f\v\n]|/\*[\s\S]*?\*/)*+")
_WORD_RE = re.compile(r"(?<![0-9A-Za-z_])[A-Za-z_][A-Za-z0-9_]*")
_BLANK_RE = re.compile(r"(?:[ \t\f\v\n]|/\*[\s\S]*?\*/|//[^\n]*)*+\Z")
_GUARD_RE = re.compile(r"[ \t\f\v]*([A-Za-z_][A-Za-z0-9_]*)[ \t\f\v]*\Z")
_CONDITIONALS = frozenset(["if", "ifdef", "ifndef", "elif", "elifdef", "elifndef", "else", "endif"])
_DIRECTIVES = _CONDITIONALS | frozenset(
    [
        "define",
        "undef",
        "include",
        "include_next",
        "import",
        "line",
        "error",
        "warning",
        "pragma",
        "ident",
        "sccs",
        "assert",
        "unassert",
    ]
)

# kinds of analysed lines
_COND = 0  # a conditional directive; payload (name, offset of the name, offset after it)
_DEFINES = 1  # consecutive simple object-like #defines; payload {name: _LazyMacro}
_DIRECTIVE = 2  # any other directive; payload as for _COND
_RAW = 3  # text without comments; payload (text, identifiers in it)
_TEXT = 4  # text with comments, to be tokenized; payload None
_BAD = 5  # an unterminated comment; payload the message


def _normalize(data: str) -> str:
    if data.startswith("\xef\xbb\xbf"):
        data = data[3:]
    if "\r" in data:
        data = data.replace("\r\n", "\n").replace("\r", "\n")
    return data


def _line_end(text: str, pos: int) -> int:
    """The end of the logical line at ``pos`` when a block comment may span lines."""
    for m in _TOKEN_RE.finditer(text, pos):
        kind = m.lastgroup
        if kind == "nl":
            return m.start()
        if kind == "c1open":
            raise _CppDiag("unterminated comment", m.start())
    return len(text)


Entry = tuple[int, int, int, int, Any]  # kind, start, end, physical line, payload


class _Program:
    """What a file's text says, line by line, independent of any macro state.

    The text is spliced (backslash-newlines removed; offsets map back for
    errors), split into logical lines (a block comment continues the line),
    blank and comment-only lines are dropped, and every other line is
    classified once. Headers are analysed once per process.
    """

    def __init__(self, name: str, text: str) -> None:
        self.buffer = SourceBuffer(name, text)  # the unspliced text, for error positions
        self.splices: list[int] = []  # offsets in the spliced text where a splice was
        self.removed: list[int] = []  # characters removed up to and including each splice
        if "\\" in text and _SPLICE_RE.search(text):
            parts = []
            last = 0
            total = 0
            out_len = 0
            for m in _SPLICE_RE.finditer(text):
                parts.append(text[last : m.start()])
                out_len += m.start() - last
                total += m.end() - m.start()
                self.splices.append(out_len)
                self.removed.append(total)
                last = m.end()
            parts.append(text[last:])
            text = "".join(parts)
        self.text = text
        self.entries: list[Entry] = []
        self.guard: str | None = None  # #ifndef X ... #endif around everything
        self._analyse(name)

    def orig(self, pos: int) -> int:
        """The offset in the unspliced text of an offset in the spliced text."""
        if not self.splices:
            return pos
        k = bisect.bisect_right(self.splices, pos) - 1
        return pos + (self.removed[k] if k >= 0 else 0)

    def line_of(self, pos: int) -> int:
        """The physical line of a spliced-text offset."""
        line, _col = self.buffer.physical(self.orig(pos))
        return line + 1

    def _analyse(self, name: str) -> None:
        text = self.text
        n = len(text)
        entries = self.entries
        add = entries.append
        splices = self.splices
        si = 0
        pos = 0
        line = 1
        defines: dict[str, _LazyMacro] | None = None
        while pos < n:
            end = text.find("\n", pos)
            if end < 0:
                end = n
            seg_lines = 1
            if text.find("/*", pos, end) >= 0:
                try:
                    end = _line_end(text, pos)
                except _CppDiag as exc:
                    add((_BAD, exc.offset or pos, n, line, exc.message))
                    break
                seg_lines += text.count("\n", pos, end)
            start = pos
            ln = line
            if splices:
                sj = si
                while sj < len(splices) and splices[sj] <= end:
                    sj += 1
                if sj > si:
                    # GNU places a line by its first token, which a splice can move down
                    first = _LEADING_BLANKS_RE.match(text, start, end)
                    if first is not None and first.end() < end:
                        ln = self.line_of(first.end())
                seg_lines += sj - si
                si = sj
            pos = end + 1
            line += seg_lines
            dm = _DIRECTIVE_RE.match(text, start, end)
            if dm is not None:
                dname = dm.group(1)
                if dname is None:
                    if _BLANK_RE.match(text, dm.end(), end):
                        continue  # the null directive
                elif dname == "define":
                    m = _DEFINE_RE.match(text, dm.end(), end)
                    if m is not None and m.group(1) != "defined" and "##" not in (m.group(3) or ""):
                        body = m.group(3) or ""
                        lm = _LazyMacro(m.group(1), body, name, ln, m.start(3) if body else 0)
                        if defines is None:
                            defines = {}
                            add((_DEFINES, start, end, ln, defines))
                        defines[lm.name] = lm
                        continue
                    add((_DIRECTIVE, start, end, ln, (dname, dm.start(1), dm.end())))
                    defines = None
                    continue
                elif dname in _CONDITIONALS:
                    add((_COND, start, end, ln, (dname, dm.start(1), dm.end())))
                    defines = None
                    continue
                elif dname in _DIRECTIVES:
                    add((_DIRECTIVE, start, end, ln, (dname, dm.start(1), dm.end())))
                    defines = None
                    continue
                # not a directive in assembler-with-cpp (#address-cells): text
            if text.find("//", start, end) >= 0 or text.find("/*", start, end) >= 0:
                if _BLANK_RE.match(text, start, end):
                    continue
                add((_TEXT, start, end, ln, None))
            else:
                body = text[start:end].rstrip()
                if not body or body.isspace():
                    continue
                add((_RAW, start, end, ln, (body, frozenset(_WORD_RE.findall(body)))))
            defines = None
        self._find_guard()

    def _find_guard(self) -> None:
        """GNU's multiple-include optimization applies to #ifndef X ... #endif files."""
        entries = self.entries
        if not entries or entries[0][0] != _COND or entries[0][4][0] != "ifndef":
            return
        depth = 0
        for i, (kind, _s, _e, _l, payload) in enumerate(entries):
            if kind != _COND:
                continue
            d = payload[0]
            if d in ("if", "ifdef", "ifndef"):
                depth += 1
            elif d == "endif":
                depth -= 1
                if depth == 0:
                    if i != len(entries) - 1:
                        return
                    break
        else:
            return
        _k, _s, end, _l, payload = entries[0]
        m = _GUARD_RE.match(self.text, payload[2], end)
        if m:
            self.guard = m.group(1)


_PROGRAMS: dict[tuple[str, str], tuple[float, int, _Program]] = {}


def _program(path: str) -> _Program:
    """The analysis of a file, kept while the file is unchanged."""
    st = os.stat(path)
    key = (os.path.abspath(path), path)
    hit = _PROGRAMS.get(key)
    if hit is not None and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
        return hit[2]
    from dtvm.fileio import MAX_SOURCE, read_limited

    text = _normalize(read_limited(path, MAX_SOURCE).decode("latin-1"))  # bounded: no /dev/zero
    prog = _Program(path, text)
    if len(_PROGRAMS) > 4096:
        _PROGRAMS.clear()
    _PROGRAMS[key] = (st.st_mtime_ns, st.st_size, prog)
    return prog


class _File:
    """A file being read in this run: its program plus what #line changed."""

    def __init__(self, name: str, prog: _Program, dir_index: int) -> None:
        self.name = name  # as GNU cpp spells it (linemarkers, __FILE__, errors)
        self.prog = prog
        self.text = prog.text
        self.dir = os.path.dirname(name)
        self.dir_index = dir_index  # which include directory it was found in (-1: none)
        self.presumed_name = name
        self.line_delta = 0  # #line: presumed line minus physical line
        self.buffer = prog.buffer  # for errors; a copy of its own once #line moves lines

    def line_of(self, pos: int) -> int:
        return self.prog.line_of(pos)


class PreprocessedSource(SourceBuffer):
    """The preprocessed text; ``includes`` lists the files cpp read (for ``-d``)."""

    __slots__ = ("includes",)

    def __init__(self, name: str, text: str, directory: str | None, includes: list[str]) -> None:
        super().__init__(name, text, directory)
        self.includes = includes


# ---------------------------------------------------------------------------
# Output with linemarkers (GNU cpp's maybe_print_line / print_line)
# ---------------------------------------------------------------------------


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Output:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.line = 1  # the presumed line the current output line stands for
        self.name = ""
        self.printed = False  # something is on the current output line

    def marker(self, line: int, name: str, flag: str = "") -> None:
        if self.printed:
            self.parts.append("\n")
            self.printed = False
        self.parts.append(f'# {line} "{_quote(name)}"{flag}\n')
        self.line = line
        self.name = name

    def sync(self, line: int, name: str) -> None:
        """Start the output line that stands for source line ``line`` of ``name``."""
        self.maybe_print_line(line, name)
        self.printed = True

    def maybe_print_line(self, line: int, name: str) -> None:
        """Bring the output to source line ``line`` (blank lines or a linemarker)."""
        parts = self.parts
        if self.printed:
            parts.append("\n")
            self.line += 1
            self.printed = False
        if name != self.name:
            self.marker(line, name)
        else:
            gap = line - self.line
            if 0 <= gap < 8:
                if gap:
                    parts.append("\n" * gap)
            else:
                parts.append(f'# {line} "{_quote(name)}"\n')
            self.line = line


# ---------------------------------------------------------------------------
# The preprocessor
# ---------------------------------------------------------------------------

_INCLUDE_RE = re.compile(
    r'[ \t\f\v]*(?:"([^"\n]*)"|<([^>\n]*)>)[ \t\f\v]*(?:/\*.*?\*/|[ \t\f\v])*+(?://.*)?\Z'
)
# identifiers pcpp expands although they are not in its macro table
_DYNAMIC = frozenset(["__LINE__", "__COUNTER__"])


class _CheckedEvaluator:
    """pcpp's #if evaluator behind the checks GNU cpp makes on the expanded tokens."""

    def __init__(self, evaluator: Any) -> None:
        self.evaluator = evaluator

    def __call__(self, tokens: list[_Tok], functions: Any = None, identifiers: Any = None) -> Any:
        depth = 0
        prev: _Tok | None = None
        for t in tokens:
            ty = t.type
            if ty in _WS_TYPES:
                continue
            v = str(t.value)
            if v == "(" and prev is not None and prev.type == ID:
                raise _EvalError('missing binary operator before token "("', t.lexpos)
            prev = t
            if ty == "CPP_INTEGER":
                if v[0] == "0" and v[1:2] not in ("x", "X"):
                    digits = v.rstrip("uUlL")
                    bad = next((c for c in digits if c in "89"), None)
                    if bad:
                        raise _EvalError(f'invalid digit "{bad}" in octal constant', t.lexpos)
            elif ty == "CPP_FLOAT":
                if re.match(r"\.?[0-9][0-9]*(?:\.|[eE][+-]?[0-9])", v) and not v.startswith(("0x", "0X")):
                    raise _EvalError("floating constant in preprocessor expression", t.lexpos)
                m = re.match(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)", v)
                suffix = v[m.end() :] if m else v
                raise _EvalError(f'invalid suffix "{suffix}" on integer constant', t.lexpos)
            elif ty in ("CPP_STRING", "CPP_OTHER", "CPP_SQUOTE", "CPP_DQUOTE") or ty in _ASSIGN_TYPES:
                raise _EvalError(f'token "{v}" is not valid in preprocessor expressions', t.lexpos)
            elif v == "(":
                depth += 1
            elif v == ")":
                depth -= 1
                if depth < 0:
                    raise _EvalError("missing '(' in expression", t.lexpos)
        if depth > 0:
            raise _EvalError("missing ')' in expression", tokens[0].lexpos if tokens else None)
        return self.evaluator(tokens, functions=functions, identifiers=identifiers)


_ASSIGN_TYPES = frozenset(
    [
        "CPP_EQUAL",
        "CPP_MINUSEQUAL",
        "CPP_PLUSEQUAL",
        "CPP_MULTIPLYEQUAL",
        "CPP_DIVIDEEQUAL",
        "CPP_PERCENTEQUAL",
        "CPP_OREQUAL",
        "CPP_ANDEQUAL",
        "CPP_XOREQUAL",
        "CPP_LSHIFTEQUAL",
        "CPP_RSHIFTEQUAL",
        "CPP_PLUSPLUS",
        "CPP_MINUSMINUS",
        "CPP_DEREFERENCE",
        "CPP_LBRACKET",
        "CPP_RBRACKET",
        "CPP_LCURLY",
        "CPP_RCURLY",
        "CPP_SEMICOLON",
        "CPP_DOT",
        "CPP_ELLIPSIS",
        "CPP_POUND",
        "CPP_DPOUND",
        "CPP_BSLASH",
    ]
)


class _Cond:
    __slots__ = ("directive", "offset", "outer_skip", "saw_else", "taken")

    def __init__(self, directive: str, offset: int, outer_skip: bool, taken: bool) -> None:
        self.directive = directive
        self.offset = offset
        self.outer_skip = outer_skip
        self.taken = taken
        self.saw_else = False


class _Cpp(Preprocessor):  # type: ignore[misc]
    """pcpp's macro engine behind GNU cpp's directive handling and output."""

    evaluator: Any

    def __init__(self, include_dirs: list[str]) -> None:
        super().__init__(_Lexer())
        self.evaluator = _CheckedEvaluator(self.evaluator)
        self.auto_pragma_once_enabled = False
        self.include_dirs = include_dirs
        self.out = _Output()
        self.files: list[str] = []
        self.once: set[str] = set()  # #pragma once and #import
        self.included: set[str] = set()
        self.stack: list[_File] = []
        self.guards: dict[tuple[str, str | None, int], str] = {}  # include lookup -> guard macro
        self.pending: list[_Tok] = []
        self.pending_file: _File | None = None
        for name in ("__PCPP__", "__DATE__", "__TIME__", "__FILE__"):
            self.macros.pop(name, None)
        now = time.localtime()
        day = time.strftime("%b %d %Y", now)
        if day[4] == "0":
            day = day[:4] + " " + day[5:]
        self._define_text("__DATE__", f'"{day}"')
        self._define_text("__TIME__", time.strftime('"%H:%M:%S"', now))
        stamp = time.strftime("%a %b %d %H:%M:%S %Y", now)
        if stamp[8] == "0":
            stamp = stamp[:8] + " " + stamp[9:]
        self._define_text("__TIMESTAMP__", f'"{stamp}"')
        for name in ("__STDC__", "__STDC_HOSTED__", "__ASSEMBLER__", "__DTS__"):
            self._define_text(name, "1")

    # -- pcpp hooks ---------------------------------------------------------

    def on_error(self, file: Any, line: Any, msg: str) -> None:
        raise _PcppError(_pcpp_message(msg), line if isinstance(line, int) else 0)

    def on_unknown_macro_function_in_expr(self, ident: str) -> Any:
        raise _EvalError('missing binary operator before token "("')

    def collect_args(self, tokenlist: list[_Tok], ignore_errors: bool = False) -> Any:
        result = super().collect_args(tokenlist, ignore_errors)
        if ignore_errors and result[0] == 0:
            # an expansion that ends inside a macro call (pcpp stops quietly)
            raise _PcppError("unterminated argument list invoking macro", tokenlist[0].lineno)
        return result

    def macro_prescan(self, macro: Any) -> None:
        super().macro_prescan(macro)
        for argnum, i in macro.str_patch:
            macro.value[i].sarg = argnum

    def macro_expand_args(self, macro: Any, args: list[list[_Tok]]) -> list[_Tok]:
        if macro.variadic and args:
            # pcpp strips the blanks around every argument but the variable one;
            # GNU keeps a blank before it only in ", ## __VA_ARGS__"
            va = args[-1]
            stripped = _strip(va)
            if stripped and macro.var_comma_patch and va[0].type in _WS_TYPES:
                stripped = [va[0], *stripped]
            args = [*args[:-1], stripped]
        if macro.str_patch:
            # GNU stringification: pcpp escapes every backslash; only string
            # and character literals get escapes (the tokens marked above)
            saved = [list(a) for a in args]
            rep: list[_Tok] = super().macro_expand_args(macro, args)
            for tok in rep:
                sarg = tok.__dict__.pop("sarg", None)
                if sarg is not None:
                    tok.value = _stringify(saved[sarg])
            return rep
        return super().macro_expand_args(macro, args)  # type: ignore[no-any-return]

    # -- definitions --------------------------------------------------------

    def _define_text(self, name: str, body: str) -> None:
        self.macros[name] = _LazyMacro(name, body, "<built-in>", 0, 0)

    def define_option(self, text: str) -> None:
        """A --cpp-define NAME[=VALUE] (cpp's -D: NAME alone means 1)."""
        name, eq, value = text.partition("=")
        line = f"{name} {value}" if eq else f"{name} 1"
        toks = _lex(line, 0, len(line), 1, "<command-line>", 0, False)
        if not toks or toks[0].type != ID:
            raise DtvmError(f"<command-line>: error: macro names must be identifiers: {text!r}")
        self._define_tokens(toks, None, "<command-line>")

    def _define_tokens(self, toks: list[_Tok], f: _File | None, where: str) -> None:
        """#define from tokens (name first); errors as GNU cpp reports them."""
        name = toks[0]
        if name.type != ID:
            raise _CppDiag("macro names must be identifiers", name.lexpos)
        if name.value == "defined":
            raise _CppDiag('"defined" cannot be used as a macro name', name.lexpos)
        if len(toks) > 1 and toks[1].type not in _WS_TYPES and toks[1].value != "(":
            # "missing whitespace after the macro name" is a warning: the body starts here
            toks = [name, _Tok(WS, " ", name.lineno, name.lexpos, name.source), *toks[1:]]
        if len(toks) > 1 and toks[1].value == "(":
            body_start = self._check_params(toks)
            body = _strip(toks[body_start:])
            self._check_paste_ends(body)
            try:
                self.define(toks)
            except _PcppError as exc:
                raise _CppDiag(exc.message, name.lexpos) from None
            return
        body = _strip(toks[1:])
        self._check_paste_ends(body)
        if any(t.value == "##" for t in body):
            body = self._paste_object_like(body)
        m = Macro(name.value, body)
        m.source = name.source
        m.lineno = name.lineno
        self.macros[name.value] = m

    def _check_params(self, toks: list[_Tok]) -> int:
        """Validate a function-like macro's parameter list; the index after ')'."""
        seen: set[str] = set()
        i = 2
        expect_name = True
        n = len(toks)
        while i < n:
            t = toks[i]
            if t.type in _WS_TYPES:
                i += 1
                continue
            if t.value == ")" and (not expect_name or not seen):
                return i + 1
            if expect_name:
                if t.type == ID:
                    if t.value in seen:
                        raise _CppDiag(f'duplicate macro parameter "{t.value}"', t.lexpos)
                    seen.add(t.value)
                    expect_name = False
                elif t.value == "...":
                    seen.add("__VA_ARGS__")
                    expect_name = False
                else:
                    raise _CppDiag(f'expected parameter name, found "{t.value}"', t.lexpos)
            elif t.value == ",":
                expect_name = True
            elif t.value == "...":
                pass
            else:
                raise _CppDiag(f"expected ',' or ')', found \"{t.value}\"", t.lexpos)
            i += 1
        raise _CppDiag("missing ')' in macro parameter list", toks[-1].lexpos)

    @staticmethod
    def _check_paste_ends(body: list[_Tok]) -> None:
        if body and (body[0].value == "##" or body[-1].value == "##"):
            t = body[0] if body[0].value == "##" else body[-1]
            raise _CppDiag("'##' cannot appear at either end of a macro expansion", t.lexpos)

    def _paste_object_like(self, body: list[_Tok]) -> list[_Tok]:
        """``##`` in an object-like macro (pcpp pastes only in function-like ones)."""
        out: list[_Tok] = []
        i = 0
        n = len(body)
        while i < n:
            t = body[i]
            if t.value == "##" and out:
                j = i + 1
                while j < n and body[j].type in _WS_TYPES:
                    j += 1
                while out and out[-1].type in _WS_TYPES:
                    out.pop()
                left = out.pop()
                text = str(left.value) + str(body[j].value)
                for nt in _lex(text, 0, len(text), left.lineno, left.source, left.lexpos, True):
                    out.append(nt)
                i = j + 1
                continue
            out.append(t)
            i += 1
        return out

    # -- running ------------------------------------------------------------

    def run(self, src: SourceBuffer) -> str:
        f = _File(src.name, _Program(src.name, _normalize(src.text)), -1)
        f.dir = src.dir
        self._define_text("__BASE_FILE__", f'"{_quote(src.name)}"')
        self.out.marker(1, src.name)
        self._process(f)
        out = self.out
        if out.printed:
            out.parts.append("\n")
        return "".join(out.parts)

    def _error(self, f: _File, message: str, pos: int) -> SourceError:
        """A SourceError at spliced offset ``pos`` of ``f``."""
        return SourceError(message, f.buffer, f.prog.orig(pos))

    def _process(self, f: _File) -> None:
        stack = self.stack
        stack.append(f)
        self._define_text("__FILE__", f'"{_quote(f.presumed_name)}"')
        self._define_text("__INCLUDE_LEVEL__", str(len(stack) - 1))
        self.line_pos = 0
        try:
            self._run_program(f)
        except _CppDiag as exc:
            raise self._error(
                f, exc.message, exc.offset if exc.offset is not None else self.line_pos
            ) from None
        except _PcppError as exc:
            raise self._error(f, exc.message, self.line_pos) from None
        finally:
            stack.pop()
        if stack:
            self._define_text("__FILE__", f'"{_quote(stack[-1].presumed_name)}"')
            self._define_text("__INCLUDE_LEVEL__", str(len(stack) - 1))

    def _run_program(self, f: _File) -> None:
        macros = self.macros
        keys = macros.keys()
        conds: list[_Cond] = []
        skipping = False
        out = self.out
        parts = out.parts
        dynamic = _DYNAMIC
        for kind, start, end, line, payload in f.prog.entries:
            if kind == _COND:
                self.line_pos = start
                skipping = self._conditional(f, payload, end, conds, skipping, line + f.line_delta)
                continue
            if skipping:
                if kind == _BAD:
                    raise _CppDiag(payload, start)  # GNU lexes skipped lines too
                continue
            if kind == _RAW or kind == _TEXT:
                if not self.pending:
                    if kind == _RAW and keys.isdisjoint(payload[1]) and dynamic.isdisjoint(payload[1]):
                        body = payload[0]  # no macro: the line as it is
                    else:
                        body = self._subst(f.text, start, end)  # constants only
                    if body is not None:
                        if body:
                            # out.sync(), inlined: this is most lines
                            presumed = line + f.line_delta
                            if out.printed and out.name == f.presumed_name and 0 < presumed - out.line < 9:
                                parts.append("\n" * (presumed - out.line))
                                out.line = presumed
                            else:
                                out.sync(presumed, f.presumed_name)
                            parts.append(body)
                        continue
            elif kind == _DEFINES:
                if self.pending:
                    self._flush()
                macros.update(payload)
                continue
            elif kind == _DIRECTIVE:
                self.line_pos = start
                if self.pending:
                    self._flush()
                name, at, after = payload
                self._directive(f, name, at, after, end, line + f.line_delta)
                continue
            elif kind == _BAD:
                raise _CppDiag(payload, start)
            # a line of text with macros or comments
            self.line_pos = start
            presumed = line + f.line_delta
            toks = _lex(f.text, start, end, presumed, f.presumed_name, 0, False)
            splices = f.prog.splices
            if splices and bisect.bisect_left(splices, start) != bisect.bisect_right(splices, end):
                for t in toks:  # tokens after a splice are on a later line (__LINE__)
                    t.lineno = f.line_of(t.lexpos) + f.line_delta
            pending = self.pending
            if not pending:
                self.pending_file = f
            pending.extend(toks)
            pending.append(_Tok(WS, "\n", presumed, end, f.presumed_name))
            if self._complete(pending):
                self._flush()
        if self.pending:
            self._check_unterminated()
            self._flush()
        if conds:
            c = conds[-1]
            raise _CppDiag(f"unterminated #{c.directive}", c.offset)

    # -- conditionals -------------------------------------------------------

    def _conditional(
        self, f: _File, payload: tuple[str, int, int], end: int, conds: list[_Cond], skipping: bool, line: int
    ) -> bool:
        """One of #if/#ifdef/#ifndef/#elif/#elifdef/#elifndef/#else/#endif; whether to skip after it."""
        name, at, after = payload
        if name in ("if", "ifdef", "ifndef"):
            if skipping:
                conds.append(_Cond(name, at, True, True))
                return True
            self._flush()
            value = self._condition(f, name, after, end, line)
            conds.append(_Cond(name, at, False, value))
            return not value
        if not conds:
            raise _CppDiag(f"#{name} without #if", at)
        c = conds[-1]
        if name == "endif":
            conds.pop()
            return c.outer_skip
        if c.saw_else:
            raise _CppDiag(f"#{name} after #else", at)
        c.directive = name  # GNU's "unterminated #..." names the group's last directive
        if name == "else":
            c.saw_else = True
            if c.outer_skip or c.taken:
                return True
            c.taken = True
            return False
        # #elif, #elifdef, #elifndef: looked at only while no group was taken
        if c.outer_skip or c.taken:
            return True
        self._flush()
        value = self._condition(f, "if" if name == "elif" else name[2:], after, end, line)
        c.taken = value
        return not value

    def _condition(self, f: _File, kind: str, start: int, end: int, line: int) -> bool:
        args = _strip(_lex(f.text, start, end, line, f.presumed_name, 0, False))
        if kind != "if":
            if not args:
                raise _CppDiag(f"no macro name given in #{kind} directive", end)
            if args[0].type != ID:
                raise _CppDiag("macro names must be identifiers", args[0].lexpos)
            defined = args[0].value in self.macros or args[0].value in _DYNAMIC
            return defined if kind == "ifdef" else not defined
        if not args:
            raise _CppDiag("#if with no expression", end)
        _check_defined(args, end)
        try:
            result, _partial = self.evalexpr(args)
        except _EvalError as exc:
            raise _CppDiag(exc.message, exc.offset if exc.offset is not None else args[0].lexpos) from None
        except _PcppError as exc:
            raise _CppDiag(exc.message, args[0].lexpos) from None
        except (ValueError, TypeError, IndexError, KeyError, AttributeError):
            raise _CppDiag("invalid #if expression", args[0].lexpos) from None
        return bool(result)

    # -- other directives ---------------------------------------------------

    def _directive(self, f: _File, name: str, at: int, start: int, end: int, line: int) -> None:
        text = f.text
        if name == "define":
            m = _DEFINE_RE.match(text, start, end)
            if m is not None and (m.group(3) is None or "##" not in m.group(3)):
                mname = m.group(1)
                if mname == "defined":
                    raise _CppDiag('"defined" cannot be used as a macro name', m.start(1))
                body = m.group(3) or ""
                self.macros[mname] = _LazyMacro(mname, body, f.presumed_name, line, m.start(3) if body else 0)
                return
            toks = _strip(_lex(text, start, end, line, f.presumed_name, 0, False))
            if not toks:
                raise _CppDiag("no macro name given in #define directive", end)
            self._define_tokens(toks, f, f.presumed_name)
            return
        if name == "undef":
            toks = _strip(_lex(text, start, end, line, f.presumed_name, 0, False))
            if not toks:
                raise _CppDiag("no macro name given in #undef directive", end)
            if toks[0].type != ID:
                raise _CppDiag("macro names must be identifiers", toks[0].lexpos)
            if toks[0].value == "defined":
                raise _CppDiag('"defined" cannot be used as a macro name', toks[0].lexpos)
            self.macros.pop(toks[0].value, None)
            return
        if name in ("include", "include_next", "import"):
            self._include(f, name, start, end, line)
            return
        if name == "line":
            self._line(f, start, end, line)
            return
        if name == "error":
            msg = text[start:end].strip()
            raise _CppDiag(f"#error {msg}" if msg else "#error", at)
        if name == "pragma":
            toks = _strip(_lex(text, start, end, line, f.presumed_name, 0, False))
            if toks and toks[0].value == "once":
                self.once.add(os.path.abspath(f.name))
                # GNU writes the blanks before "once" as a line of its own
                self.out.sync(line, f.presumed_name)
                self.out.parts.append(
                    " " * max(0, f.prog.buffer.physical(f.prog.orig(toks[0].lexpos))[1] - 2)
                )
            return
        # warning, ident, sccs, assert, unassert: nothing to output

    def _line(self, f: _File, start: int, end: int, line: int) -> None:
        toks = self.expand_macros(_strip(_lex(f.text, start, end, line, f.presumed_name, 0, False)))
        toks = [t for t in toks if t.type not in _WS_TYPES]
        if not toks or not re.fullmatch(r"[0-9]+", str(toks[0].value)):
            bad = toks[0] if toks else None
            what = (
                f'"{bad.value}" after #line is not a positive integer'
                if bad
                else "unexpected end of file after #line"
            )
            raise _CppDiag(what, bad.lexpos if bad else end)
        new_line = int(toks[0].value)
        if len(toks) > 1:
            if toks[1].type != "CPP_STRING":
                raise _CppDiag(f'invalid filename "{toks[1].value}"', toks[1].lexpos)
            raw = str(toks[1].value)[1:-1]
            f.presumed_name = re.sub(r"\\(.)", r"\1", raw)
            self._define_text("__FILE__", f'"{_quote(f.presumed_name)}"')
        # the line after the directive is new_line
        physical_next = f.line_of(end) + 1
        f.line_delta = new_line - physical_next
        self.out.marker(new_line, f.presumed_name)
        # errors further on are reported at the presumed file and line, as GNU does
        if f.buffer is f.prog.buffer:
            f.buffer = SourceBuffer(f.name, f.prog.buffer.text)
        f.buffer.add_linemarker(min(f.prog.orig(end) + 1, len(f.buffer.text)), f.presumed_name, new_line)

    # -- includes -----------------------------------------------------------

    def _include(self, f: _File, kind: str, start: int, end: int, line: int) -> None:
        text = f.text
        m = _INCLUDE_RE.match(text, start, end)
        at = start
        if m is not None:
            quoted = m.group(1) is not None
            fname = m.group(1) if quoted else m.group(2)
            at = (m.start(1) if quoted else m.start(2)) - 1  # GNU points at the quote or '<'
        else:
            # a computed include: macro-expand, then "file" or <file>
            toks = _strip(_lex(text, start, end, line, f.presumed_name, 0, False))
            if not toks:
                raise _CppDiag(f'#{kind} expects "FILENAME" or <FILENAME>', end)
            at = toks[0].lexpos
            try:
                toks = _strip(self.expand_macros(toks))
            except _PcppError as exc:
                raise _CppDiag(exc.message, at) from None
            if toks and toks[0].type == "CPP_STRING" and len(toks) >= 1:
                quoted = True
                fname = str(toks[0].value)[1:-1]
            elif toks and toks[0].value == "<" and any(t.value == ">" for t in toks):
                quoted = False
                parts: list[str] = []
                for t in toks[1:]:
                    if t.value == ">":
                        break
                    parts.append(" " if t.type in _WS_TYPES else str(t.value))
                fname = "".join(parts)
            else:
                raise _CppDiag(f'#{kind} expects "FILENAME" or <FILENAME>', at)
        if not fname:
            raise _CppDiag(f"empty filename in #{kind}", at)
        if len(self.stack) >= MAX_INCLUDE_DEPTH:
            raise _CppDiag(
                f"#include nested depth {len(self.stack)} exceeds maximum of {MAX_INCLUDE_DEPTH}", at
            )
        found = self._find(f, fname, quoted, kind == "include_next")
        if found is None:
            raise _CppDiag(f"{fname}: No such file or directory", at)
        path, dir_index, prog = found
        key = os.path.abspath(path)
        if key in self.once:
            return
        if kind == "import":
            if key in self.included:
                return  # #import: not again, however it was included before
            self.once.add(key)
        self.included.add(key)
        # GNU's multiple-include optimization (a guarded file whose guard is
        # defined is not entered at all); GNU keeps it per lookup: the name
        # as written and where the search started
        lookup = (
            fname,
            f.dir if quoted and kind != "include_next" else None,
            dir_index if kind == "include_next" else -2,
        )
        g = self.guards.get(lookup)
        if g is not None and g in self.macros:
            return
        self.files.append(path)
        out = self.out
        out.maybe_print_line(line, f.presumed_name)
        out.marker(1, path, " 1")
        self._process(_File(path, prog, dir_index))
        if prog.guard is not None:
            self.guards[lookup] = prog.guard
        out.marker(f.line_of(end) + 1 + f.line_delta, f.presumed_name, " 2")

    def _find(self, f: _File, fname: str, quoted: bool, next_: bool) -> tuple[str, int, _Program] | None:
        if os.path.isabs(fname):
            candidates = [(fname, -1)]
        else:
            dirs = self.include_dirs
            candidates = []
            if next_ and f.dir_index >= 0:
                first = f.dir_index + 1
            else:
                first = 0
                if quoted:
                    candidates.append((os.path.join(f.dir, fname) if f.dir else fname, -1))
            for i in range(first, len(dirs)):
                d = dirs[i]
                candidates.append((f"{d}/{fname}" if d else fname, i))
        for path, index in candidates:
            try:
                prog = _program(path)
            except (IsADirectoryError, NotADirectoryError, FileNotFoundError):
                continue
            except OSError as exc:
                raise _CppDiag(f"{path}: {exc.strerror}") from None
            return path, index, prog
        return None

    # -- text ---------------------------------------------------------------

    def _subst(self, text: str, start: int, end: int) -> str | None:
        """A text line whose macros are all constants (no identifier in their
        bodies), written exactly as lexing, expanding and :meth:`_write` would
        write it, without making tokens; None when the line needs the token path
        (function-like macros, comments across lines, __LINE__)."""
        macros = self.macros
        parts: list[str] = []
        append = parts.append
        prev_t = ""
        prev_v = ""
        prev_exp = False
        space: str | None = None
        for m in _TOKEN_RE.finditer(text, start, end):
            kind = m.lastgroup
            v = m.group()
            if kind == "ws":
                space = v if space is None else space + v
                continue
            if kind == "id":
                mac = macros.get(v)
                if mac is not None:
                    if mac.arglist is not None:
                        return None
                    value = mac.value
                    trivial = getattr(mac, "trivial", None)
                    if trivial is None:
                        trivial = mac.trivial = all(x.type != ID for x in value)
                    if not trivial:
                        return None
                    inner = False
                    for x in value:
                        xt = x.type
                        if xt in _WS_TYPES:
                            inner = True
                            continue
                        xv = x.value
                        if space is not None:
                            append(space)
                            space = None
                        elif inner:
                            append(" ")
                        elif prev_t and _avoid_paste_tv(prev_t, prev_v, xt, xv):
                            append(" ")
                        append(xv)
                        prev_t = xt
                        prev_v = xv
                        prev_exp = True
                        inner = False
                    continue
                if v in _DYNAMIC:
                    return None
                ty = ID
            elif kind == "punct":
                ty = _PUNCT_TYPES[v]
            elif kind == "num":
                ty = _num_type(v)
            elif kind == "c1":
                if "\n" in v:
                    return None
                v = " " * len(v)
                space = v if space is None else space + v
                continue
            elif kind == "c2":
                continue
            elif kind == "str" or kind == "chr" or kind == "other" or kind == "uq":
                ty = _KIND_TYPES[kind]
            else:  # nl, lc, c1open: not in one line of spliced text
                return None
            if space is not None:
                append(space)
                space = None
            elif prev_exp and _avoid_paste_tv(prev_t, prev_v, ty, v):
                append(" ")
            append(v)
            prev_t = ty
            prev_v = v
            prev_exp = False
        return "".join(parts)

    def _complete(self, toks: list[_Tok]) -> bool:
        """Whether every function-like macro invocation in ``toks`` is closed."""
        macros = self.macros
        n = len(toks)
        i = 0
        last: _Tok | None = None
        while i < n:
            t = toks[i]
            if t.type == ID:
                m = macros.get(t.value)
                if m is not None and m.arglist is not None:
                    j = i + 1
                    while j < n and toks[j].type in _WS_TYPES:
                        j += 1
                    if j == n:
                        return False
                    if toks[j].value == "(":
                        depth = 0
                        k = j
                        while k < n:
                            v = toks[k].value
                            if v == "(":
                                depth += 1
                            elif v == ")":
                                depth -= 1
                                if depth == 0:
                                    break
                            k += 1
                        if k == n:
                            return False
                        last = toks[k]
                        i = k + 1
                        continue
            if t.type not in _WS_TYPES:
                last = t
            i += 1
        if last is not None and last.type == ID:
            return not self._ends_in_function_like(last.value, 0)
        return True

    def _ends_in_function_like(self, name: str, depth: int) -> bool:
        """Whether expanding macro ``name`` can leave a function-like macro name at the end."""
        m = self.macros.get(name)
        if m is None or depth > 20:
            return False
        if m.arglist is not None:
            return True
        body = m.value
        if not body:
            return False
        tail = body[-1]
        return tail.type == ID and tail.value != name and self._ends_in_function_like(tail.value, depth + 1)

    def _check_unterminated(self) -> None:
        """At the end of a file, a function-like macro call still open is an error."""
        toks = self.pending
        macros = self.macros
        n = len(toks)
        for i, t in enumerate(toks):
            if t.type != ID:
                continue
            m = macros.get(t.value)
            if m is None or m.arglist is None:
                continue
            j = i + 1
            while j < n and toks[j].type in _WS_TYPES:
                j += 1
            if j < n and toks[j].value == "(":
                depth = 0
                for k in range(j, n):
                    v = toks[k].value
                    if v == "(":
                        depth += 1
                    elif v == ")":
                        depth -= 1
                        if depth == 0:
                            break
                else:
                    at = toks[-1].lexpos  # GNU: at the end of the file's last line
                    raise _CppDiag(f'unterminated argument list invoking macro "{t.value}"', at)

    def _flush(self) -> None:
        """Macro-expand the pending lines and write them out."""
        toks = self.pending
        if not toks:
            return
        self.pending = []
        f = self.pending_file
        toks, rest = self._expand_constants(toks)
        if not rest:
            self._write(toks)
            return
        try:
            toks = self.expand_macros(toks)
        except _PcppError as exc:
            offset = self._find_macro_call(toks, exc)
            if f is None:  # pragma: no cover - pending_file is set with pending
                raise DtvmError(exc.message) from None
            raise self._error(f, exc.message, offset) from None
        self._write(toks)

    def _expand_constants(self, toks: list[_Tok]) -> tuple[list[_Tok], bool]:
        """Expand the macros whose bodies hold no identifier (most dt-bindings
        constants) outside function-like macro calls; pcpp would give the same
        tokens, only slower. The flag says whether pcpp has work left."""
        macros = self.macros
        out: list[_Tok] = []
        append = out.append
        rest = False
        after_function = False
        depth = 0
        for t in toks:
            if depth:
                append(t)
                v = t.value
                if v == "(":
                    depth += 1
                elif v == ")":
                    depth -= 1
                continue
            ty = t.type
            if ty in _WS_TYPES:
                append(t)
                continue
            if after_function:
                after_function = False
                if t.value == "(":
                    depth = 1
                    append(t)
                    continue
                if ty == ID and (t.value in macros or t.value in _DYNAMIC):
                    rest = True  # a macro right after an uncalled function-like one: pcpp's turn
                    append(t)
                    continue
            if ty == ID:
                m = macros.get(t.value)
                if m is not None:
                    if m.arglist is not None:
                        rest = True
                        after_function = True
                        append(t)
                        continue
                    value = m.value
                    trivial = getattr(m, "trivial", None)
                    if trivial is None:
                        trivial = m.trivial = all(v.type != ID for v in value)
                    if trivial:
                        name = t.value
                        for v in value:
                            c = v.__copy__()
                            c.lineno = t.lineno
                            c.source = t.source
                            c.expanded_from = [name]
                            append(c)
                        continue
                    rest = True
                elif t.value in _DYNAMIC:
                    rest = True
            append(t)
        return out, rest

    @staticmethod
    def _find_macro_call(toks: list[_Tok], exc: _PcppError) -> int:
        """Where GNU reports a bad macro call: the ')' that closes it."""
        m = re.search(r'macro "(\w+)"', exc.message)
        n = len(toks)
        for i, t in enumerate(toks):
            if m is not None and t.value == m.group(1) and t.lineno == exc.line:
                depth = 0
                for k in range(i + 1, n):
                    v = toks[k].value
                    if v == "(":
                        depth += 1
                    elif v == ")":
                        depth -= 1
                        if depth == 0:
                            return toks[k].lexpos
                return t.lexpos
        return toks[0].lexpos if toks else 0

    def _write(self, toks: list[_Tok]) -> None:
        out = self.out
        parts = out.parts
        f = self.pending_file
        fname = f.presumed_name if f is not None else ""
        prev: _Tok | None = None
        space: str | None = None
        synthetic = False
        bol = True
        n = len(toks)
        for i, t in enumerate(toks):
            ty = t.type
            if ty in _WS_TYPES:
                exp = t.__dict__.get("expanded_from")
                if t.value == "\n" and not exp:
                    bol = True
                    prev = None
                    space = None
                    synthetic = False
                elif t.orig == ID and i + 1 < n and toks[i + 1].lexpos == t.lexpos and toks[i + 1].type == ID:
                    # pcpp's space between a function-like macro call and an
                    # identifier (a copy of that identifier); GNU spaces by avoid_paste
                    synthetic = True
                elif ty == "CPP_WS" or ty == "CPP_LINECONT":
                    v = " " if exp or t.value == "\n" else t.value
                    space = v if space is None else space + v
                continue
            if bol:
                out.sync(t.lineno, fname)
                if space:
                    parts.append(space)
                bol = False
            elif space is not None:
                parts.append(space)
            elif prev is not None and (
                synthetic
                or prev.__dict__.get("expanded_from")
                or t.__dict__.get("expanded_from")
                or prev.orig != prev.type  # __LINE__, __COUNTER__
                or t.orig != t.type
            ):
                if _avoid_paste(prev, t):
                    parts.append(" ")
            parts.append(str(t.value))
            prev = t
            space = None
            synthetic = False


def _check_defined(args: list[_Tok], end: int) -> None:
    """``defined`` needs an identifier, alone or in parentheses."""
    sig = [t for t in args if t.type not in _WS_TYPES]
    for i, t in enumerate(sig):
        if t.type == ID and t.value == "defined":
            nxt = sig[i + 1] if i + 1 < len(sig) else None
            if nxt is not None and nxt.value == "(":
                name = sig[i + 2] if i + 2 < len(sig) else None
                close = sig[i + 3] if i + 3 < len(sig) else None
                if name is None or name.type != ID:
                    raise _CppDiag('operator "defined" requires an identifier', name.lexpos if name else end)
                if close is None or close.value != ")":
                    raise _CppDiag("missing ')' after \"defined\"", close.lexpos if close else end)
            elif nxt is None or nxt.type != ID:
                raise _CppDiag('operator "defined" requires an identifier', nxt.lexpos if nxt else end)


def preprocess(
    src: SourceBuffer, include_dirs: list[str] | None = None, defines: list[str] | None = None
) -> SourceBuffer:
    """``src`` through the kernel's cpp step; the result keeps ``src``'s name and directory.

    ``include_dirs`` are cpp's ``-I`` directories (after the including file's
    own directory for ``"..."``); ``defines`` are ``NAME`` or ``NAME=VALUE``.
    """
    dirs = [d.rstrip("/") or "/" if d not in ("", ".") else d for d in (include_dirs or [])]
    cpp = _Cpp(dirs)
    for d in defines or []:
        cpp.define_option(d)
    text = cpp.run(src)
    return PreprocessedSource(src.name, text, src.dir, list(dict.fromkeys(cpp.files)))
