"""Findings and unchecked nodes: what a validation run reports, as text or JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Finding", "Unchecked"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with one node or property.

    ``file``/``line`` locate the input (``line`` is 0 for a DTB, which has no lines);
    ``binding``/``binding_line`` locate the rule that the value breaks.
    """

    file: str
    line: int
    path: str
    prop: str | None
    message: str
    rule: str
    binding: str | None = None
    binding_line: int = 0

    def format(self) -> str:
        where = f"{self.file}:{self.line}:" if self.line else f"{self.file}:"
        what = f"{self.prop}: {self.message}" if self.prop else self.message
        src = ""
        if self.binding:
            src = f" ({self.binding}:{self.binding_line})" if self.binding_line else f" ({self.binding})"
        return f"{where}{self.path}: {what} [{self.rule}]{src}"

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Unchecked:
    """A node with a compatible that no binding matches."""

    file: str
    line: int
    path: str
    compatible: tuple[str, ...]

    def format(self) -> str:
        where = f"{self.file}:{self.line}:" if self.line else f"{self.file}:"
        comp = ", ".join(f'"{c}"' for c in self.compatible)
        return f"{where}{self.path}: no binding for compatible {comp} [unchecked]"

    def as_finding(self) -> Finding:
        comp = ", ".join(f'"{c}"' for c in self.compatible)
        return Finding(self.file, self.line, self.path, "compatible", f"no binding for {comp}", "unchecked")

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["compatible"] = list(self.compatible)
        return d
