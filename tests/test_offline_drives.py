"""Offline against online for -drive if=none counts: vl.c adds a machine's default CD-ROM drive
at index 2 of its default interface only where no drive took that unit, and each -drive if=none
takes the next unit of bus 0 of its interface, so on riscv64 virt (whose default CD-ROM drive is
``none2``) a third if=none drive leaves it out. Found by the generator's census stream
(seed 790100244: offline's overlay held a drive QEMU did not make)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .qemu_helpers import assert_offline_matches_online, needs_qemu
from .qemugen import write_raw

MACHINES = {"riscv64": ["qemu-system-riscv64", "-M", "virt"], "q35": ["qemu-system-x86_64", "-M", "pc-q35-7.2"],
            "aarch64": ["qemu-system-aarch64", "-M", "virt-7.2"]}


@pytest.mark.parametrize("count", [2, 3, 4])
@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_if_none_drives_and_the_default_cdrom(machine: str, count: int, tmp_path: Path) -> None:
    head = MACHINES[machine]
    needs = needs_qemu(head[0])
    if needs.args[0]:
        pytest.skip(needs.kwargs["reason"])
    argv = list(head)
    for i in range(count):
        image = tmp_path / f"d{i}.raw"
        write_raw(image, 1 << 20)
        argv += ["-drive", f"if=none,id=d{i},file={image},format=raw"]
    argv += ["-device", "virtio-blk-pci,drive=d0"]
    assert_offline_matches_online(argv, tmp_path)
