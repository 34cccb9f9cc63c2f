"""``#if`` evaluation for ``dtvm dtc --cpp``: pcpp's evaluator with GNU cpp's diagnostics, and
the conditional stack entries.  Split out of :mod:`dtvm.dt.dts.preprocess`."""

from __future__ import annotations

import re
from typing import Any

from dtvm.dt.dts.cpp_lex import _WS_TYPES, ID, _CppDiag, _EvalError, _Tok

# ---------------------------------------------------------------------------
# The preprocessor
# ---------------------------------------------------------------------------

_INCLUDE_RE = re.compile(
    r'[ \t\f\v]*(?:"([^"\n]*)"|<([^>\n]*)>)[ \t\f\v]*(?:/\*.*?\*/|[ \t\f\v])*+(?://.*)?\Z'
)
# identifiers pcpp expands although they are not in its macro table


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
