"""GNU cpp's lexing for ``dtvm dtc --cpp`` (assembler-with-cpp mode): tokens with the type names
pcpp and its ``#if`` evaluator use, the errors, GNU's spacing between tokens of different origin,
and macros whose body is tokenized on first use.  Split out of :mod:`dtvm.dt.dts.preprocess`,
which documents the whole step."""

from __future__ import annotations

import re
from typing import Any

from pcpp.parser import Action, OutputDirective

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


_DYNAMIC = frozenset(["__LINE__", "__COUNTER__"])


def subst_constants(macros: dict[str, Any], text: str, start: int, end: int) -> str | None:
    """A text line whose macros are all constants (no identifier in their
    bodies), written exactly as lexing, expanding and ``_Cpp._write`` would
    write it, without making tokens; None when the line needs the token path
    (function-like macros, comments across lines, __LINE__)."""
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
