"""Seeded generators of DTS sources written from dtc's grammar (dtc-parser.y) and lexer (dtc-lexer.l).

Not from dtvm's features: each generator walks the productions of dtc's
grammar (``integer_trinary`` down to ``integer_prim``; ``devicetree`` with its
``/``, ``&ref``, ``label: &ref``, ``/delete-node/ &ref`` blocks; ``subnodes``
with ``/delete-node/``), with the lexer's spellings of literals (decimal,
octal, hex, ``U``/``L`` suffixes, character literals with escapes) and of
whitespace and comments between tokens. The cases are judged by dtc itself in
the tests; nothing here knows the expected answer.
"""

from __future__ import annotations

import random

__all__ = ["deletion_source", "expression_source", "mutate", "tokens_to_text"]

BINOPS = ["+", "-", "*", "/", "%", "<<", ">>", "<", ">", "<=", ">=", "==", "!=", "&", "^", "|", "&&", "||"]
UNARY = ["-", "~", "!"]
_CHARS = ["'a'", "'Z'", "'\\n'", "'\\x41'", "'\\0'", "'\\377'", "'\\''", "'\"'", "'\\\\'", "'\\t'", "'0'"]
_SEPS = [" ", " ", " ", "", "\n", "\t", " /* c */ ", "// c\n"]


def literal(rng: random.Random) -> str:
    """A DT_LITERAL or DT_CHAR_LITERAL as dtc's lexer spells them."""
    r = rng.random()
    if r < 0.1:
        return rng.choice(_CHARS)
    if r < 0.15:
        return rng.choice(["0xffffffffffffffff", "0x8000000000000000", "18446744073709551615", "0x7fffffff", "0xffffffff"])
    n = rng.choice([0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 63, 64, 65, 100, 255, 256, 4095, 65535, rng.randrange(1 << 32), rng.randrange(1 << 64)])
    form = rng.random()
    if form < 0.5:
        text = str(n)
    elif form < 0.85:
        text = hex(n) if rng.random() < 0.7 else "0X" + format(n, "X")
    else:
        text = "0" + format(n, "o") if n else "0"
    if rng.random() < 0.08:
        text += rng.choice(["U", "L", "UL", "LL", "ULL"])
    return text


def expression(rng: random.Random, depth: int) -> list[str]:
    """Tokens of an ``integer_trinary``: every operator, unary chains, ?:, comparison chains, parentheses."""
    r = rng.random()
    if depth <= 0 or r < 0.25:
        return [literal(rng)]
    if r < 0.55:
        # a chain of binary operators at mixed precedence (a < b > c, a - b - c, ...)
        out = expression(rng, depth - 1)
        for _ in range(rng.randint(1, 3)):
            op = rng.choice(BINOPS)
            rhs = expression(rng, depth - 1)
            if op in ("/", "%") and rng.random() < 0.85:
                # mostly a divisor dtc cannot see as zero: (x | 1)
                rhs = ["(", *rhs, "|", "1", ")"]
            out += [op, *rhs]
        return out
    if r < 0.7:
        return [rng.choice(UNARY), *unary_operand(rng, depth - 1)]
    if r < 0.82:
        return [*expression(rng, depth - 1), "?", *expression(rng, depth - 1), ":", *expression(rng, depth - 1)]
    return ["(", *expression(rng, depth - 1), ")"]


def unary_operand(rng: random.Random, depth: int) -> list[str]:
    """An ``integer_unary``: a literal, a parenthesized expression or another unary operator."""
    r = rng.random()
    if r < 0.5 or depth <= 0:
        return [literal(rng)]
    if r < 0.75:
        return [rng.choice(UNARY), *unary_operand(rng, depth - 1)]
    return ["(", *expression(rng, depth - 1), ")"]


def prim(rng: random.Random, depth: int) -> list[str]:
    """An ``integer_prim``: a literal or '(' integer_expr ')'."""
    if rng.random() < 0.2:
        return [literal(rng)]
    return ["(", *expression(rng, depth), ")"]


def tokens_to_text(rng: random.Random, toks: list[str]) -> str:
    """Join tokens with the separators dtc's lexer skips, never gluing two into another token."""
    out: list[str] = []
    prev = ""
    for t in toks:
        sep = rng.choice(_SEPS)
        if prev.endswith("/") and sep.startswith("/"):
            sep = " "  # '/' then '/* c */' would read as '//': a line comment
        if prev and not sep.strip() and not sep:
            # keep apart what would lex differently when glued
            glue = prev[-1] + t[0]
            if ((prev[-1].isalnum() or prev[-1] in "_'") and (t[0].isalnum() or t[0] in "_'")) or glue in (
                "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "/*", "//", "*/", "&{", "&a",
            ) or (prev[-1] in "<>!=&|/" and t[0] in "<>=&|/*"):
                sep = " "
        out.append(sep if out else "")
        out.append(t)
        prev = t
    return "".join(out)


def expression_source(rng: random.Random) -> str:
    """A small tree whose values are expressions: cells, /bits/ arrays, /memreserve/ and /incbin/-free."""
    toks: list[str] = ["/dts-v1/", ";"]
    for _ in range(rng.choice([0, 0, 1, 2])):
        toks += ["/memreserve/", *prim(rng, 2), *prim(rng, 2), ";"]
    toks += ["/", "{"]
    for k in range(rng.randint(1, 4)):
        toks += [f"p{k}", "="]
        for j in range(rng.randint(1, 2)):
            if j:
                toks.append(",")
            bits = rng.choice(["8", "16", "32", "64"]) if rng.random() < 0.3 else "32"
            if bits != "32" or rng.random() < 0.5:
                toks += ["/bits/", bits]
            mask = hex((1 << int(bits)) - 1)
            toks.append("<")
            for _ in range(rng.randint(1, 3)):
                if rng.random() < 0.1:
                    toks.append(f"v{k}{j}:")
                value = prim(rng, rng.randint(1, 4))
                if rng.random() < 0.7:
                    # mostly in range for the element size, so most cases compile
                    value = ["(", *value, "&", mask, ")"]
                toks += value
            toks.append(">")
        toks.append(";")
    toks += ["}", ";"]
    return tokens_to_text(rng, toks) + "\n"


# -- deletions and merges ------------------------------------------------------------------------

_NODE_NAMES = ["a", "b", "c", "a@1", "b@2"]
_PROP_NAMES = ["p", "q", "r"]


def _label(rng: random.Random, labels: list[str]) -> str:
    """Mostly a fresh label (a label names one thing); sometimes one already used, which dtc rejects."""
    if labels and rng.random() < 0.08:
        return rng.choice(labels)
    return f"l{len(labels)}"


def _node_body(rng: random.Random, depth: int, labels: list[str], plugin: bool = False) -> list[str]:
    toks: list[str] = []
    # properties mostly distinct (a name twice in one block is dtc's duplicate_property_names)
    props = rng.sample(_PROP_NAMES, len(_PROP_NAMES))
    for k in range(rng.randint(0, 3)):
        pname = props[k] if rng.random() < 0.9 else rng.choice(_PROP_NAMES)
        r = rng.random()
        if r < 0.25:
            toks += ["/delete-property/", pname, ";"]
        elif r < 0.4:
            toks += [pname, ";"]
        elif r < 0.55 and labels:
            toks += [pname, "=", "<", "&" + rng.choice(labels), ">", ";"]
        else:
            toks += [pname, "=", "<", str(rng.randint(0, 9)), ">", ";"]
    # siblings mostly distinct (a repeated name in one block is dtc's duplicate_node_names)
    names = rng.sample(_NODE_NAMES, len(_NODE_NAMES))
    for k in range(rng.randint(0, 3 if depth else 0)):
        name = names[k] if rng.random() < 0.9 else rng.choice(_NODE_NAMES)
        if rng.random() < 0.3 and not plugin:
            # (not in overlays: dtc 1.6.1 leaves such a node parentless when a later
            # block revives it, and files its __local_fixups__ entry under the root)
            toks += ["/delete-node/", name, ";"]
            continue
        if rng.random() < 0.35:
            lab = _label(rng, labels)
            labels.append(lab)
            toks.append(lab + ":")
        if rng.random() < 0.08:
            toks.append("/omit-if-no-ref/")
        toks += [name, "{", *_node_body(rng, depth - 1, labels, plugin), "}", ";"]
    return toks


def deletion_source(rng: random.Random) -> str:
    """A first root block, then later blocks that merge, delete by name and by reference, and relabel."""
    labels: list[str] = []
    # sometimes an overlay: unresolved references become fragments and __fixups__
    header = ["/dts-v1/", ";", "/plugin/", ";"] if rng.random() < 0.15 else ["/dts-v1/", ";"]
    plugin = "/plugin/" in header
    toks: list[str] = [*header, "/", "{", *_node_body(rng, 3, labels, plugin), "}", ";"]
    for _ in range(rng.randint(0, 4)):
        r = rng.random()
        if labels and rng.random() < 0.85:
            ref = "&" + rng.choice(labels)
        elif plugin and rng.random() < 0.5:
            ref = "&ext" + str(rng.randint(0, 2))
        else:
            ref = "&{/" + (rng.choice(_NODE_NAMES) if rng.random() < 0.3 else "") + "}"
        if r < 0.4:
            toks += ["/", "{", *_node_body(rng, 3, labels, plugin), "}", ";"]
        elif r < 0.65:
            toks += [ref, "{", *_node_body(rng, 2, labels, plugin), "}", ";"]
        elif r < 0.75:
            lab = _label(rng, labels)
            labels.append(lab)
            toks += [lab + ":", ref, "{", *_node_body(rng, 2, labels, plugin), "}", ";"]
        else:
            toks += ["/delete-node/", ref, ";"]
    return tokens_to_text(rng, toks) + "\n"


# -- syntax errors -----------------------------------------------------------------------------

_INSERTS = [";", "{", "}", "=", "<", ">", "(", ")", "[", "]", "/", ",", "&x", "l:", "0x1", '"s"', "/delete-node/", "?", ":", "'a'"]


def mutate(rng: random.Random, text: str) -> str:
    """A valid source with one token deleted, duplicated or inserted: the error position must match dtc's."""
    parts = text.split(" ")
    k = rng.randrange(len(parts))
    r = rng.random()
    if r < 0.4:
        del parts[k]
    elif r < 0.6:
        parts.insert(k, parts[k])
    else:
        parts.insert(k, rng.choice(_INSERTS))
    return " ".join(parts)
