"""A QEMU snapshot to a description: the qdev Config read from QEMU's answers, then translated.

The one path from what QEMU said to the guest tree and back-end overlay, shared by
``qemu2dtb``, ``hotplug`` and ``dtb2qemu``'s probe.
"""

from __future__ import annotations

from dtvm.qemu.config import from_snapshot
from dtvm.qemu.snapshot import Snapshot
from dtvm.vm.translate import Description, describe, driver_compat

__all__ = ["describe_snapshot"]


def describe_snapshot(snapshot: Snapshot, compat: dict[str, list[str]] | None = None) -> Description:
    """Snapshot -> Description (guest tree, back-end overlay, node of each device).

    ``compat`` (qdev driver -> binding compatibles) is loaded from the bindings when not given;
    callers that describe many snapshots load it once.
    """
    return describe(from_snapshot(snapshot), compat if compat is not None else driver_compat())
