"""Firmware in flash on aarch64/arm virt, offline against online.

With firmware loaded (a drive in pflash0, libvirt's ``-blockdev`` with ``-machine pflash0=``, or
``-bios``) QEMU's virt builds other hardware (hw/arm/virt.c ``firmware_loaded``): a 32-bit CPU's
PCIe ECAM below 4 GiB, an acpi-ged instead of the PL061 GPIO and gpio-keys with an AArch64 CPU
unless acpi=off, no PSCI with secure=on.  The offline models record firmware as one more
DT-changing condition (dtvm/qemu/offline_flash.py); QEMU 7.2 is the oracle here: each seeded
case is described online and offline, and offline must write the same guest tree and back-end
overlay (or refuse in one line where QEMU refuses to start).  The cases draw what the generator
draws with firmware (tests/qemugen.py ``_flash``): CPU models, up to two machine options among
those that change what firmware does, ``-smp``, devices on the PCIe root bus behind the ECAM.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from .qemu_helpers import assert_offline_matches_online, qemu2dtb_run
from .qemugen import write_qcow2

SEED = 1307
CASES = 8
_FLASH = 64 << 20
_MACHINES = {
    "qemu-system-aarch64": (["cortex-a57", "cortex-a53", "cortex-a72", "max", "cortex-a15"],
                            ["acpi=off", "acpi=on", "secure=on", "highmem=off", "gic-version=3", "virtualization=on",
                             "default-bus-bypass-iommu=on", "dtb-randomness=off"]),
    "qemu-system-arm": (["cortex-a15", "cortex-a7", "max"],
                        ["secure=on", "highmem=off", "gic-version=3", "virtualization=on", "dtb-randomness=off"]),
}


def _image(directory: Path, name: str, rng: random.Random) -> tuple[Path, str]:
    fmt = "qcow2" if rng.random() < 0.25 else "raw"
    path = directory / f"{name}.{fmt}"
    if fmt == "qcow2":
        write_qcow2(path, _FLASH)
    else:
        with open(path, "wb") as f:
            f.truncate(_FLASH)
    return path, fmt


def _case(n: int, directory: Path) -> list[str]:
    rng = random.Random(SEED * 1000 + n)
    binary = "qemu-system-aarch64" if n % 2 == 0 else "qemu-system-arm"
    cpus, options = _MACHINES[binary]
    chosen = rng.sample(options, rng.choice([0, 1, 1, 2]))
    if len({o.split("=")[0] for o in chosen}) < len(chosen):
        chosen = chosen[:1]
    argv = [binary, "-M", ",".join(["virt-7.2" if rng.random() < 0.7 else "virt", *chosen])]
    if rng.random() < 0.5:
        argv.append("-nodefaults")
    if rng.random() < 0.7:
        argv += ["-cpu", rng.choice(cpus)]
    if rng.random() < 0.3:
        argv += ["-smp", rng.choice(["2", "1,maxcpus=2"])]
    for unit in ([0, 1] if rng.random() < 0.7 else [0]):
        path, fmt = _image(directory, f"flash{unit}", rng)
        if rng.random() < 0.4:
            node = f"fw{unit}"
            ro = ",read-only=on" if unit == 0 else ""
            argv += ["-blockdev", f"driver=file,filename={path},node-name={node}f{ro}",
                     "-blockdev", f"driver={fmt},file={node}f,node-name={node}{ro}", "-machine", f"pflash{unit}={node}"]
        else:
            ro = ",readonly=on" if unit == 0 else ""
            argv += ["-drive", f"if=pflash,format={fmt},unit={unit},file={path}{ro}"]
    if rng.random() < 0.5:
        argv += ["-device", rng.choice(["virtio-rng-pci", "virtio-net-pci", "e1000e"])]
    return argv


@pytest.mark.parametrize("n", range(CASES))
def test_virt_firmware_offline_equals_online(n: int, tmp_path: Path) -> None:
    argv = _case(n, tmp_path)
    assert_offline_matches_online(argv, tmp_path)


@pytest.mark.parametrize("binary,cpu", [("qemu-system-aarch64", "max"), ("qemu-system-arm", "cortex-a15")])
def test_bios_is_firmware_too(binary: str, cpu: str, tmp_path: Path) -> None:
    """``-bios FILE`` loads firmware into flash0 as a drive there would: the same other hardware."""
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} (the online oracle) is not installed")
    bios = tmp_path / "code.fd"
    bios.write_bytes(b"\0" * 4096)
    assert_offline_matches_online([binary, "-M", "virt-7.2", "-nodefaults", "-cpu", cpu, "-bios", str(bios)], tmp_path)


def test_cases_reach_the_corners(tmp_path: Path) -> None:
    """The seed draws both machines, both spellings, qcow2, an AArch64 and a 32-bit CPU, an
    option and a PCI device: the oracle test is not vacuous."""
    cases = []
    for n in range(CASES):
        (tmp_path / str(n)).mkdir()
        cases.append(" ".join(_case(n, tmp_path / str(n))))
    assert any("-machine pflash0=" in c for c in cases) and any("if=pflash" in c for c in cases)
    assert any("qemu-system-arm " in c for c in cases) and any(".qcow2" in c for c in cases)
    assert any("-cpu max" in c or "-cpu cortex-a5" in c for c in cases if "aarch64" in c)
    assert any("virt-7.2," in c or "virt," in c for c in cases) and any("-device" in c for c in cases)


@pytest.mark.parametrize("cpu", ["max", "cortex-a57", "cortex-a15"])
def test_ras_beside_firmware(cpu: str, tmp_path: Path) -> None:
    """ras=on without acpi=off: QEMU takes it beside firmware with an AArch64 CPU (the acpi-ged it
    needs), and aborts with a 32-bit one (virt_acpi_setup: "Assertion `vms->acpi_dev' failed"):
    offline answers the first as QEMU builds it and refuses the second in one line."""
    if shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 (the online oracle) is not installed")
    image = tmp_path / "code.img"
    with open(image, "wb") as f:
        f.truncate(_FLASH)
    argv = ["qemu-system-aarch64", "-M", "virt-7.2,ras=on", "-nodefaults", "-cpu", cpu,
            "-drive", f"if=pflash,format=raw,file={image}"]
    assert_offline_matches_online(argv, tmp_path)
    answered = qemu2dtb_run(argv, tmp_path / "again.dtb", offline=True).returncode == 0
    assert answered == (cpu != "cortex-a15")


@pytest.mark.parametrize("devices", [[], ["-object", "memory-backend-ram,id=m,size=128M", "-device", "virtio-mem-pci,memdev=m"]],
                         ids=["slots", "virtio-mem-pci"])
def test_memory_slots_beside_firmware(devices: list[str], tmp_path: Path) -> None:
    """With firmware and an AArch64 CPU virt's acpi-ged signals memory hot-plug too when -m has
    slots (its ged-event gains the memory hot-plug bit): offline wrote the event without it, found
    while adding persistent memory (an nvdimm on virt needs this acpi-ged)."""
    flash = tmp_path / "code.raw"
    with open(flash, "wb") as f:
        f.truncate(_FLASH)
    assert_offline_matches_online(["qemu-system-aarch64", "-M", "virt-7.2", "-cpu", "cortex-a57", "-nodefaults",
                                   "-m", "256M,slots=2,maxmem=1G", "-drive", f"if=pflash,format=raw,file={flash}",
                                   *devices], tmp_path)
