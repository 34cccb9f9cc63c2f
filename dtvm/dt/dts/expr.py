"""dtc's integer expressions (``integer_prim`` of dtc-parser.y), parsed without recursion.

The grammar is C's: ``?:`` (right-associative), ``||``, ``&&``, ``|``, ``^``,
``&``, ``== !=``, ``< > <= >=``, ``<< >>``, ``+ -``, ``* / %`` (all
left-associative, in that order of binding), unary ``- ~ !``, parentheses,
literals and character literals, evaluated in unsigned 64-bit arithmetic.

The parse is an operator-precedence loop over an explicit stack, so no input
can exhaust Python's stack. The stack also counts what bison's stack would
hold at each step (a pending binary operator costs its left operand and the
operator, a parenthesis or unary operator one entry, a pending ``?`` two and a
pending ``:`` four), because dtc rejects an input when that count reaches
YYMAXDEPTH (10,000: "memory exhausted") and accepts everything below it, and
dtvm must draw the same line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dtvm.dt.dts import scan

if TYPE_CHECKING:
    from dtvm.dt.dts.parse import Parser

__all__ = ["BINOPS", "YYMAXDEPTH", "apply_binop", "parse_integer_prim"]

YYMAXDEPTH = 10000  # bison's default; dtc's stack overflows when it holds this many states
M64 = (1 << 64) - 1

# binary operators by precedence level (higher binds tighter), as in dtc-parser.y
BINOPS = {
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
_UNARY = ("-", "~", "!")


def apply_binop(op: str, a: int, b: int) -> int | None:
    """``a op b`` as dtc computes it; None for a division by zero (dtc's error, value 0)."""
    if op == "+":
        return (a + b) & M64
    if op == "-":
        return (a - b) & M64
    if op == "*":
        return (a * b) & M64
    if op == "/" or op == "%":
        if b == 0:
            return None
        return a // b if op == "/" else a % b
    if op == "<<":
        return (a << b) & M64 if b < 64 else 0
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


def _unary(op: str, v: int) -> int:
    if op == "-":
        return -v & M64
    if op == "~":
        return ~v & M64
    return 0 if v else 1


# stack frames: ("(", token index, 0) | ("u", token index, op) | ("b", start index, (op, prec, left))
# | ("?", start index, cond) | (":", start index, (cond, a))
_Frame = tuple[str, int, object]
_COST = {"(": 1, "u": 1, "b": 2, "?": 2, ":": 4}


def parse_integer_prim(p: Parser, depth: int) -> tuple[int, int]:
    """One ``integer_prim`` at the parser's position; ``depth`` is bison's stack below it.

    Returns (value, index of its first token).
    """
    toks = p.toks
    stack: list[_Frame] = []
    while True:
        # -- operand: open parentheses and unary operators, then a literal ----------------
        while True:
            tok = toks[p.i]
            kind = tok[0]
            if kind == "(" or (stack and kind in _UNARY):
                p.push_state(depth + 1)
                stack.append(("(", p.i, 0) if kind == "(" else ("u", p.i, kind))
                depth += 1
                p.i += 1
                continue
            break
        if kind == scan.T_NUM or kind == scan.T_CHAR:
            if depth + 1 >= YYMAXDEPTH:  # checked before calling: this runs for every literal
                p.push_state(depth + 1)
            start = p.i
            value = p.literal(tok)
            p.i += 1
        elif not stack:
            raise p.syntax_error("a number, a character literal or '('")
        else:
            raise p.syntax_error("a number, a character literal, '(' or a unary operator")
        # -- operators after the operand ------------------------------------------------------
        while True:
            while stack and stack[-1][0] == "u":
                frame = stack.pop()
                depth -= 1
                value = _unary(frame[2], value)  # type: ignore[arg-type]
                start = frame[1]
            if not stack:
                return value, start
            tok = toks[p.i]
            op = tok[0]
            prec = BINOPS.get(op)  # type: ignore[arg-type]
            if prec is not None:
                value, start, depth = _reduce(p, stack, value, start, depth, prec)
                p.push_state(depth + 2)
                stack.append(("b", start, (op, prec, value)))
                depth += 2
                p.i += 1
                break
            if op == "?":
                value, start, depth = _reduce(p, stack, value, start, depth, 1)
                p.push_state(depth + 2)
                stack.append(("?", start, value))
                depth += 2
                p.i += 1
                break
            value, start, depth = _reduce(p, stack, value, start, depth, 1)
            value, start, depth = _reduce_ternaries(stack, value, start, depth)
            top = stack[-1][0]
            if op == ":" and top == "?":
                frame = stack.pop()
                p.push_state(depth + 2)
                stack.append((":", frame[1], (frame[2], value)))
                depth += 2
                p.i += 1
                break
            if op == ")" and top == "(":
                # '(' integer_expr ')': the ')' lands on the stack before the reduction
                p.push_state(depth + 2)
                frame = stack.pop()
                depth -= 1
                start = frame[1]
                p.i += 1
                continue
            if top == "?":
                raise p.syntax_error("an operator or ':'")
            raise p.syntax_error("an operator or ')'")


def _reduce(
    p: Parser, stack: list[_Frame], value: int, start: int, depth: int, min_prec: int
) -> tuple[int, int, int]:
    """Apply the pending binary operators that bind at least as tightly as ``min_prec``."""
    while stack and stack[-1][0] == "b":
        frame = stack[-1]
        pending: tuple[str, int, int] = frame[2]  # type: ignore[assignment]
        op, prec, left = pending
        if prec < min_prec:
            break
        stack.pop()
        depth -= 2
        result = apply_binop(op, left, value)
        if result is None:
            p.soft_error("Division by zero", frame[1], p.i - 1)
            result = 0
        value = result
        start = frame[1]
    return value, start, depth


def _reduce_ternaries(stack: list[_Frame], value: int, start: int, depth: int) -> tuple[int, int, int]:
    """Close the complete ``c ? a : b`` frames on top (the false branch extends to here)."""
    while stack and stack[-1][0] == ":":
        frame = stack.pop()
        depth -= 4
        branches: tuple[int, int] = frame[2]  # type: ignore[assignment]
        cond, a = branches
        value = a if cond else value
        start = frame[1]
    return value, start, depth
