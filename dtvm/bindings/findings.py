"""Findings and unchecked nodes: what a validation run reports, as text or JSON."""

from __future__ import annotations

from typing import Any

__all__ = ["Finding", "Unchecked"]

# Plain classes rather than dataclasses: ``dtvm validate`` on one blob is mostly start-up, and
# building a frozen dataclass costs about half a millisecond at import time.


class Finding:
    """One thing wrong with one node or property (immutable, hashable).

    ``file``/``line`` locate the input (``line`` is 0 for a DTB, which has no lines);
    ``binding``/``binding_line`` locate the rule that the value breaks. ``included_from`` is the
    chain of ``#include`` sites (file, line) that ``file`` was reached through, innermost first
    (empty for the top file and for a DTB): a .dtsi line alone does not say which board it is.
    """

    __slots__ = ("binding", "binding_line", "file", "included_from", "line", "message", "path", "prop", "rule")

    file: str
    line: int
    path: str
    prop: str | None
    message: str
    rule: str
    binding: str | None
    binding_line: int
    included_from: tuple[tuple[str, int], ...]

    def __init__(
        self,
        file: str,
        line: int,
        path: str,
        prop: str | None,
        message: str,
        rule: str,
        binding: str | None = None,
        binding_line: int = 0,
        included_from: tuple[tuple[str, int], ...] = (),
    ) -> None:
        values = (file, line, path, prop, message, rule, binding, binding_line, included_from)
        for name, value in zip(_FINDING_FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def _astuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in _FINDING_FIELDS)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Finding is immutable: cannot set {name}")

    def __eq__(self, other: object) -> bool:
        return other.__class__ is self.__class__ and self._astuple() == other._astuple()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._astuple())

    def __reduce__(self) -> tuple[Any, ...]:
        return (Finding, self._astuple())

    def __repr__(self) -> str:
        return "Finding(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in _FINDING_FIELDS) + ")"

    def format(self) -> str:
        where = f"{self.file}:{self.line}:" if self.line else f"{self.file}:"
        what = f"{self.prop}: {self.message}" if self.prop else self.message
        src = ""
        if self.binding:
            src = f" ({self.binding}:{self.binding_line})" if self.binding_line else f" ({self.binding})"
        chain = ""
        if self.included_from:
            # gcc's "In file included from a.dtsi:3, from board.dts:5", on the finding's own line
            chain = " (included from " + ", from ".join(f"{f}:{n}" for f, n in self.included_from) + ")"
        return f"{where}{self.path}: {what} [{self.rule}]{src}{chain}"

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {f: getattr(self, f) for f in _FINDING_FIELDS[:-1]}
        if self.included_from:  # only where there is a chain: the key is new, older readers ignore it
            out["included_from"] = [[f, n] for f, n in self.included_from]
        return out


_FINDING_FIELDS = ("file", "line", "path", "prop", "message", "rule", "binding", "binding_line", "included_from")


class Unchecked:
    """A node with a compatible that no binding matches (immutable, hashable)."""

    __slots__ = ("compatible", "file", "line", "path")

    file: str
    line: int
    path: str
    compatible: tuple[str, ...]

    def __init__(self, file: str, line: int, path: str, compatible: tuple[str, ...]) -> None:
        object.__setattr__(self, "file", file)
        object.__setattr__(self, "line", line)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "compatible", compatible)

    def _astuple(self) -> tuple[Any, ...]:
        return (self.file, self.line, self.path, self.compatible)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Unchecked is immutable: cannot set {name}")

    def __eq__(self, other: object) -> bool:
        return other.__class__ is self.__class__ and self._astuple() == other._astuple()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._astuple())

    def __reduce__(self) -> tuple[Any, ...]:
        return (Unchecked, self._astuple())

    def __repr__(self) -> str:
        return f"Unchecked(file={self.file!r}, line={self.line!r}, path={self.path!r}, compatible={self.compatible!r})"

    def format(self) -> str:
        where = f"{self.file}:{self.line}:" if self.line else f"{self.file}:"
        comp = ", ".join(f'"{c}"' for c in self.compatible)
        return f"{where}{self.path}: no binding for compatible {comp} [unchecked]"

    def as_finding(self) -> Finding:
        comp = ", ".join(f'"{c}"' for c in self.compatible)
        return Finding(self.file, self.line, self.path, "compatible", f"no binding for {comp}", "unchecked")

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "path": self.path, "compatible": list(self.compatible)}
