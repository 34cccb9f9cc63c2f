"""Literal values as dtc reads them: integer literals, character literals, string escapes.

dtc reads escapes with C's strtol on at most two hex or three octal digits, so
``"\\x+1"`` is accepted, ``\\400`` wraps to NUL and ``\\1234`` is ``\\123`` then
``4``. These functions reproduce that, byte for byte.
"""

from __future__ import annotations

from typing import Any

from dtvm.errors import SourceError

__all__ = ["parse_char_literal", "parse_int_literal", "unescape"]

_SIMPLE = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13}
_HEXDIGITS = "0123456789abcdefABCDEF"
_CSPACE = " \t\n\v\f\r"


def _strtol(x: str, base: int) -> tuple[int, int]:
    """C strtol on a short string: (value, characters consumed; 0 if no digits)."""
    i = 0
    n = len(x)
    while i < n and x[i] in _CSPACE:
        i += 1
    neg = False
    if i < n and x[i] in "+-":
        neg = x[i] == "-"
        i += 1
    digits = _HEXDIGITS if base == 16 else "01234567"
    if base == 16 and i + 2 < n + 1 and x[i : i + 2] in ("0x", "0X") and i + 2 < n and x[i + 2] in digits:
        i += 2
    start = i
    while i < n and x[i] in digits:
        i += 1
    if i == start:
        return 0, 0
    val = int(x[start:i], base)
    return (-val if neg else val), i


def unescape(raw: str, source: Any = None, offset: int = 0) -> bytes:
    """The bytes of a string literal's body (without quotes), escapes applied, no NUL added."""
    if "\\" not in raw:
        return raw.encode("latin-1")
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        i += 1
        if c != "\\":
            out.append(ord(c))
            continue
        c = raw[i]
        if c in _SIMPLE:
            out.append(_SIMPLE[c])
            i += 1
        elif "0" <= c <= "7":
            val, used = _strtol(raw[i : i + 3], 8)
            out.append(val & 0xFF)
            i += used
        elif c == "x":
            val, used = _strtol(raw[i + 1 : i + 3], 16)
            if used == 0:
                raise SourceError("\\x used with no following hex digits", source, offset + i - 1)
            out.append(val & 0xFF)
            i += 1 + used
        else:
            out.append(ord(c))
            i += 1
    return bytes(out)


_MAX64 = (1 << 64) - 1


def parse_int_literal(text: str, source: Any = None, offset: int = 0) -> int:
    """A DT_LITERAL: strtoull base 0 with dtc's suffix and range checks."""
    body = text.rstrip("UL")
    suffix = text[len(body) :]
    if body[:2] in ("0x", "0X"):
        val = int(body[2:], 16)
    elif body[0] == "0" and len(body) > 1:
        # octal; strtoull stops at the first 8 or 9 and dtc rejects the rest
        j = 1
        while j < len(body) and body[j] in "01234567":
            j += 1
        if j < len(body):
            raise SourceError(f"Bad integer literal '{text}'", source, offset)
        val = int(body, 8)
    elif len(body.lstrip("0")) > 20:
        # beyond 2**64 for sure; int() would refuse strings of over 4,300 digits
        raise SourceError(f"Integer literal '{text}' out of range", source, offset)
    else:
        val = int(body)
    if suffix and suffix not in ("U", "L", "UL", "LL", "ULL"):
        raise SourceError(f"Bad integer literal '{text}'", source, offset)
    if val > _MAX64:
        raise SourceError(f"Integer literal '{text}' out of range", source, offset)
    return val


def parse_char_literal(raw: str, source: Any = None, offset: int = 0) -> int:
    """A DT_CHAR_LITERAL: exactly one (possibly escaped) character."""
    data = unescape(raw, source, offset + 1)
    if len(data) == 0:
        raise SourceError("Empty character literal", source, offset)
    if len(data) > 1:
        raise SourceError(f"Character literal has {len(data)} characters instead of 1", source, offset)
    return data[0]
