"""One tree against the kernel's schemas, reported both ways: dt-validate's lines and dtvm findings.

dt-validate names a node by its name only and points at no source; dtvm's findings carry the node
path and, for a tree compiled from DTS, the ``FILE:LINE`` where the property (or node) was written,
after cpp's linemarkers, so a finding in an included .dtsi names the .dtsi line.
"""

from __future__ import annotations

from typing import Any

from dtvm.bindings.findings import Finding
from dtvm.bindings.kdecode import DecodeCrash
from dtvm.bindings.kfixup import decode_tree
from dtvm.bindings.kschema import KernelFinding, KernelSchemas

__all__ = ["KernelReport", "validate_kernel"]

RULE = "kernel-schema"


class KernelReport:
    """What one file gives: findings (dtvm's), dt-validate's lines, and problems (one line each)."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.dt_validate: list[str] = []
        self.problems: list[str] = []
        self.crash: str | None = None


def _where(pos: Any, fallback: tuple[str, int]) -> tuple[str, int]:
    if pos is None:
        return fallback
    try:
        name, line, _col = pos.location()
    except Exception:  # a position without a source: the input file
        return fallback
    return name, line


def _schema_name(path: str) -> str:
    """A schema file as the kernel names it (relative to .../bindings/ or dtschema's schemas/)."""
    for marker in ("/devicetree/bindings/", "/dtschema/schemas/"):
        i = path.find(marker)
        if i >= 0:
            return path[i + len(marker) :]
    return path


def to_finding(kf: KernelFinding, fname: str) -> Finding:
    node_where = _where(getattr(kf.node, "pos", None), (fname, 0))
    target = kf.target
    file, line = _where(getattr(target, "pos", None), node_where) if target is not None else node_where
    prop = ":".join(str(p) for p in kf.path) if kf.path else None
    msg = " ".join(part.strip() for part in kf.msg.splitlines() if part.strip())
    return Finding(file, line, kf.fullname, prop, msg, RULE, _schema_name(kf.schema_file), 0)


def validate_kernel(dt: Any, schemas: KernelSchemas, fname: str) -> KernelReport:
    """Validate DT (a dtvm tree from a DTB or DTS) as dt-validate validates the blob of it."""
    rep = KernelReport()
    try:
        dec = decode_tree(dt, schemas.types)
    except DecodeCrash as exc:
        rep.crash = f"{fname}: error: dtschema cannot decode this tree ({exc}); dt-validate stops here too"
        return rep
    rep.dt_validate.extend(dec.notes)
    found, problems = schemas.validate(dec, fname)
    rep.problems.extend(problems)
    for kf in found:
        rep.dt_validate.append(kf.dt_validate())
        rep.findings.append(to_finding(kf, fname))
    return rep
