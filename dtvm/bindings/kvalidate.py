"""One tree against the kernel's schemas, reported both ways: dt-validate's lines and dtvm findings.

dt-validate names a node by its name only and points at no source; dtvm's findings carry the node
path and, for a tree compiled from DTS, the ``FILE:LINE`` where the property (or node) was written,
after cpp's linemarkers, so a finding in an included .dtsi names the .dtsi line, and the chain of
``#include`` sites that led there (from the markers' flags), as gcc's ``In file included from``.
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


Where = tuple[str, int, tuple[tuple[str, int], ...]]


def _where(pos: Any, fallback: Where) -> Where:
    """FILE, LINE and the #include chain of a position (the fallback when it has none)."""
    if pos is None:
        return fallback
    try:
        name, line, _col = pos.location()
    except Exception:  # a position without a source: the input file
        return fallback
    from dtvm.dt.dts.source import include_chain

    return name, line, tuple(include_chain(pos))


def _schema_name(path: str) -> str:
    """A schema file as the kernel names it (relative to .../bindings/ or dtschema's schemas/)."""
    for marker in ("/devicetree/bindings/", "/dtschema/schemas/"):
        i = path.find(marker)
        if i >= 0:
            return path[i + len(marker) :]
    return path


def _node_pos(node: Any) -> Any:
    """A node's source position; for a node dtc made up (an overlay's ``fragment@N``, its
    ``__overlay__``), the first position written inside it, else its parent's."""
    if node is None:
        return None
    if node.pos is not None:
        return node.pos
    todo = [node]
    while todo:
        n = todo.pop(0)
        for p in n.props:
            if p.pos is not None:
                return p.pos
        for c in n.children:
            if c.pos is not None:
                return c.pos
            todo.append(c)
    return _node_pos(node.parent)


def to_finding(kf: KernelFinding, fname: str, sourced: bool = True) -> Finding:
    """dtvm's finding for dt-validate's; ``sourced`` is False for a blob (no positions to look for)."""
    blob: Where = (fname, 0, ())
    node_where = _where(_node_pos(kf.node), blob) if sourced else blob
    target = kf.target
    if target is not None and sourced:
        pos = target.pos if not hasattr(target, "children") else _node_pos(target)
        file, line, chain = _where(pos, node_where)
    else:
        file, line, chain = node_where
    prop = ":".join(str(p) for p in kf.path) if kf.path else None
    msg = " ".join(part.strip() for part in kf.msg.splitlines() if part.strip())
    return Finding(file, line, kf.fullname, prop, msg, RULE, _schema_name(kf.schema_file), 0, chain)


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
    sourced = bool(found) and _node_pos(dt.root) is not None
    for kf in found:
        rep.dt_validate.append(kf.dt_validate())
        rep.findings.append(to_finding(kf, fname, sourced))
    return rep
