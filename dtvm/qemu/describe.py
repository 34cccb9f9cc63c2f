"""A QEMU snapshot to a description: the qdev Config read from QEMU's answers, then translated.

The one path from what QEMU said to the guest tree and back-end overlay, shared by
``qemu2dtb``, ``hotplug`` and ``dtb2qemu``'s probe.

A machine whose own DT is built at reset (pseries: ``dt-built-at-reset`` in data/machines.yaml)
shows a device or CPU core hot-plugged since in that DT only after the next reset; the same VM
rebuilt with the device cold-plugged has it from the start.  Its description must not depend on
that history, so such a VM is described with the DT its next reset builds, and QEMU builds it:
the rebuild of the first reading, started paused as a migration destination on null back-ends
(dtb2qemu's check start: no image, socket or lock of the running VM is touched).  The node of the
hot-plugged device is then QEMU's own, the one the rebuilt VM has.
"""

from __future__ import annotations

import dataclasses

from dtvm.errors import DtvmError, first_line
from dtvm.qemu.config import Config, dt_built_at_reset, from_snapshot
from dtvm.qemu.errors import QemuError
from dtvm.qemu.snapshot import Snapshot, version_of
from dtvm.vm.translate import Description, describe, driver_compat

__all__ = ["describe_snapshot"]


def describe_snapshot(snapshot: Snapshot, compat: dict[str, list[str]] | None = None) -> Description:
    """Snapshot -> Description (guest tree, back-end overlay, node of each device).

    ``compat`` (qdev driver -> binding compatibles) is loaded from the bindings when not given;
    callers that describe many snapshots load it once.
    """
    compat = compat if compat is not None else driver_compat()
    config = from_snapshot(snapshot)
    desc = describe(config, compat)
    if not _stale_dt(config, snapshot):
        return desc
    dtb = _dt_at_reset(desc, snapshot)
    return describe(from_snapshot(dataclasses.replace(snapshot, dtb=dtb)), compat)


def _stale_dt(config: Config, snapshot: Snapshot) -> bool:
    """Whether QEMU's DT may lack what was hot-plugged since the last reset: a device or CPU core
    that QOM says was hot-plugged (a cold-plugged CPU core is in the DT from the start)."""
    if config.dtb is None or not dt_built_at_reset(config.machine.type):
        return False
    return any(per.hotplugged for per in snapshot.peripherals)


def _dt_at_reset(desc: Description, snapshot: Snapshot) -> bytes:
    """QEMU's DT of this VM as its next reset builds it, from the rebuild's check start."""
    from dtvm.qemu.argv import BINARIES, build_argv
    from dtvm.qemu.live import binary_version, read_argv
    from dtvm.vm.readback import read_config

    arch = snapshot.arch
    binary = snapshot.argv[0] if snapshot.argv else snapshot.binary or BINARIES.get(arch)
    where = f"{snapshot.machine_type} with hot-plugged devices"
    if binary is None:
        raise QemuError(f"{where}: no QEMU binary known for arch {arch!r} to build the DT of its next reset")
    want = version_of(snapshot)[:2]
    have = binary_version(binary)
    if have is None or have[:2] != want:
        # another QEMU could build another DT: only the VM's own version may answer
        found = "unknown version" if have is None else f"{have[0]}.{have[1]}"
        raise QemuError(f"{where}: its own DT shows hot-plugged devices only after the next reset, and "
                        f"{binary} ({found}) is not the VM's QEMU ({want[0]}.{want[1]}) to build it")
    built: list[bytes] = []

    def verify(argv: list[str]) -> Snapshot:
        started = read_argv(argv, incoming=True)
        if started.dtb is not None:
            built.append(started.dtb)
        return started

    try:
        # the probes and check start dtb2qemu makes (the offline models are not asked: the DT must
        # be the one dtb2qemu's rebuild gets)
        build_argv(read_config(desc.guest, desc.backend), binary=binary, verify=verify)
    except DtvmError as exc:
        raise QemuError(f"{where}: the DT of its next reset could not be built: {first_line(exc)}") from None
    if not built:
        raise QemuError(f"{where}: {binary} gave no DT for the rebuilt VM")
    return built[-1]
