"""Offline for memory hot-plug slots and for devices linked to QOM objects of their own, held to QEMU.

Seeded cases: ``-m SIZE,slots=N,maxmem=M`` in both spellings on the five offline machines
(virt's NUMA node in its DT, highmem=off's 32-bit limit, maxmem below the RAM that QEMU
refuses), CAN cards on one or two ``-object can-bus`` with acpi-erst on a
``memory-backend-ram``, at the root, behind a port or a bridge (the buses numbered by the cards'
positions), pc-dimms on q35 and pc (their slots and addresses) and virtio-mem-pci with them
and on virt (its memaddr).  QEMU 7.2 is the oracle: online qemu2dtb of the same command line, byte for byte,
or both refuse.  What offline does not model is refused by name, and the oracle shows why.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .qemu_helpers import assert_offline_matches_online, qemu2dtb_run
from .qemugen import MACHINES

SEED = 1313
SLOT_CASES = 8
LINK_CASES = 6
DIMM_CASES = 8
DIMM_SEED = 1315
_MACHINES = ["q35", "pc", "aarch64-virt", "arm-virt", "riscv64-virt"]
_CARDS = {"kvaser_pci": ["canbus"], "pcm3680_pci": ["canbus0", "canbus1"], "mioe3680_pci": ["canbus0", "canbus1"],
          "ctucan_pci": ["canbus0", "canbus1"]}


def _head(machine: str, rng: random.Random, options: str = "") -> list[str]:
    spec = MACHINES[machine]
    argv = [spec.binary, "-M", spec.type + options]
    if rng.random() < 0.5:
        argv.append("-nodefaults")
    return argv


def _slots_case(n: int) -> list[str]:
    rng = random.Random(SEED * 1000 + n)
    machine = _MACHINES[n % len(_MACHINES)]
    virt = machine.endswith("virt") and not machine.startswith("riscv")
    options = ",highmem=off" if virt and rng.random() < 0.3 else ""
    argv = _head(machine, rng, options)
    size = rng.choice(MACHINES[machine].memory)
    maxmem = rng.choice(["1G", "2G", "3G", "8G", "64G", "96M"] if not options else ["1G", "2G", "1536M"])
    slots = rng.choice([1, 2, 4, 16])
    spelled = f"size={size}" if rng.random() < 0.4 else size
    argv += ["-m", f"{spelled},slots={slots},maxmem={maxmem}"]
    if virt and rng.random() < 0.5:
        argv += ["-smp", str(rng.choice([2, 3]))]
    return argv


def _links_case(n: int) -> list[str]:
    rng = random.Random(SEED * 2000 + n)
    machine = _MACHINES[n % len(_MACHINES)]
    argv = _head(machine, rng)
    buses = [f"b{i}" for i in rng.sample(range(9), rng.choice([1, 2]))]
    for bus in buses:
        argv += ["-object", f"can-bus,id={bus}"]
    spec = MACHINES[machine]
    where = [""]
    if spec.pcie:
        argv += ["-device", "pcie-root-port,id=rp,chassis=7"]
        where.append(",bus=rp")
    else:
        argv += ["-device", "pci-bridge,id=br,chassis_nr=7"]
        where.append(",bus=br,addr=3")
    for _ in range(rng.choice([1, 2, 3])):
        card = rng.choice(sorted(_CARDS))
        links = ",".join(f"{p}={rng.choice(buses)}" for p in _CARDS[card])
        at = rng.choice(where)
        if at == ",bus=rp":
            where.remove(at)  # a root port takes one device
        argv += ["-device", f"{card},{links}{at}"]
    if machine != "riscv64-virt" and rng.random() < 0.6:
        argv += ["-object", f"memory-backend-ram,id=erst{n},size={rng.choice(['64M', '1M', '8M'])}",
                 "-device", f"acpi-erst,memdev=erst{n}"]
    return argv


def _dimm_case(n: int) -> list[str]:
    """pc-dimms (q35/pc) and virtio-mem-pci (also aarch64/arm virt), mixed, in one
    device-memory region: sizes whole and not whole GiB, RAM above 4 GiB on q35 (the region's
    base moves), sometimes more dimms than slots or than maxmem holds (QEMU refuses)."""
    rng = random.Random(DIMM_SEED * 3000 + n)
    machine = ["q35", "pc", "aarch64-virt", "arm-virt"][n % 4]
    argv = _head(machine, rng)
    ram = rng.choice(["256M", "128M"] + (["3G"] if machine == "q35" else []))
    slots = rng.choice([1, 1, 2, 3])
    argv += ["-m", f"{ram},slots={slots},maxmem={rng.choice(['1G', '2G', '8G'])}"]
    dimm_first = rng.random() < 0.6
    for i in range(rng.choice([1, 2, 3, 3])):
        kind = "pc-dimm" if machine in ("q35", "pc") and (i % 2 == 0) == dimm_first else "virtio-mem-pci"
        argv += ["-object", f"memory-backend-ram,id=dm{i},size={rng.choice(['2M', '64M', '130M', '512M'])}",
                 "-device", f"{kind},memdev=dm{i}" + (f",id=d{i}" if rng.random() < 0.5 else "")]
    return argv


def _need(binary: str) -> None:
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} (the online oracle) is not installed")


@pytest.mark.parametrize("n", range(SLOT_CASES))
def test_memory_slots_offline_equal_online(n: int, tmp_path: Path) -> None:
    argv = _slots_case(n)
    _need(argv[0])
    assert_offline_matches_online(argv, tmp_path)


@pytest.mark.parametrize("n", range(LINK_CASES))
def test_linked_devices_offline_equal_online(n: int, tmp_path: Path) -> None:
    argv = _links_case(n)
    _need(argv[0])
    assert_offline_matches_online(argv, tmp_path)


@pytest.mark.parametrize("n", range(DIMM_CASES))
def test_dimms_offline_equal_online(n: int, tmp_path: Path) -> None:
    argv = _dimm_case(n)
    _need(argv[0])
    assert_offline_matches_online(argv, tmp_path)


@pytest.mark.parametrize("argv", [
    ["qemu-system-aarch64", "-M", "virt-7.2", "-m", "256M,slots=2,maxmem=2G", "-object", "memory-backend-ram,id=v,size=130M",
     "-device", "virtio-mem,memdev=v,requested-size=64M", "-object", "memory-backend-ram,id=w,size=64M",
     "-device", "virtio-mem-pci,memdev=w,id=p,requested-size=1G"],
    ["qemu-system-arm", "-M", "virt-7.2", "-nodefaults", "-m", "128M,slots=1,maxmem=1G", "-object",
     "memory-backend-ram,id=v,size=2M", "-device", "virtio-mem,memdev=v,id=m,requested-size=2097152"]],
    ids=["aarch64", "arm"])
def test_virtio_mem_on_mmio_offline_equal_online(argv: list[str], tmp_path: Path) -> None:
    """virtio-mem on a virtio-mmio transport, beside a virtio-mem-pci: one region, in order; the
    requested sizes (a setting info qtree does not show: read from QOM online), one past its
    back-end's size as QEMU 7.2 takes it at realize."""
    _need(argv[0])
    assert_offline_matches_online(argv, tmp_path)


def test_cases_reach_the_corners() -> None:
    """The seeds draw both -m spellings, every machine, virt's -smp and highmem=off, a maxmem
    QEMU refuses, several CAN buses and cards behind a port or bridge, and acpi-erst."""
    slots = [" ".join(_slots_case(n)) for n in range(SLOT_CASES)]
    links = [" ".join(_links_case(n)) for n in range(LINK_CASES)]
    assert any("size=" in c for c in slots) and any("-m 1" in c or "-m 2" in c or "-m 3" in c or "-m 5" in c
                                                     for c in slots)
    assert any("highmem=off" in c for c in slots) and any("maxmem=96M" in c for c in slots)
    assert any("-smp" in c for c in slots)
    assert {c.split()[0] for c in slots} == {MACHINES[m].binary for m in _MACHINES}
    assert any(c.count("can-bus") == 2 for c in links) and any("acpi-erst" in c for c in links)
    assert any(",bus=" in c.split("pcie-root-port")[-1].split("pci-bridge")[-1] for c in links)
    assert len({d for c in links for d in _CARDS if d in c}) >= 3
    dimms = [" ".join(_dimm_case(n)) for n in range(DIMM_CASES)]
    assert any(c.count("pc-dimm") > int(c.split("slots=")[1][0]) for c in dimms)  # more than slots
    assert any("pc-dimm" in c and "virtio-mem-pci" in c for c in dimms)
    assert any("virtio-mem-pci" in c and "aarch64" in c for c in dimms)
    assert any(c.count("pc-dimm") > 1 for c in dimms) and any("-m 3G" in c for c in dimms)


def _offline(argv: list[str], out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", "--offline", "-o", str(out), "--", *argv],
                          capture_output=True, text=True, timeout=120)


def _refused(argv: list[str], out: Path, words: str) -> None:
    res = _offline(argv, out)
    assert res.returncode != 0 and words in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert not out.exists()


def test_virt_device_memory_past_256g_is_refused_by_name(tmp_path: Path) -> None:
    """maxmem=300G on aarch64 virt moves the high PCIe windows (the oracle: QEMU's DT differs
    from maxmem=1G's in more than the /qemu memory properties): offline refuses it by name."""
    _need("qemu-system-aarch64")
    head = ["qemu-system-aarch64", "-M", "virt-7.2", "-nodefaults", "-m"]
    small, large = tmp_path / "small.dtb", tmp_path / "large.dtb"
    assert qemu2dtb_run([*head, "256M,slots=2,maxmem=1G"], small, offline=False).returncode == 0
    assert qemu2dtb_run([*head, "256M,slots=2,maxmem=300G"], large, offline=False).returncode == 0
    from dtvm.dt.dtb import read_dtb

    def body(path: Path) -> dict[str, bytes]:
        tree = read_dtb(path.read_bytes())
        return {f"{n.path}:{p.name}": bytes(p.value) for n in tree.root.walk() for p in n.live_props()
                if p.name not in ("memory-slots", "max-memory-size")}

    assert body(small) != body(large)  # beyond /qemu's memory-slots and max-memory-size
    _refused([*head, "256M,slots=2,maxmem=300G"], tmp_path / "off.dtb", "moves virt's high PCIe windows")


def test_host_can_interface_is_refused_by_name(tmp_path: Path) -> None:
    """can-host-socketcan connects a bus to the host's CAN interface: online refuses it by name
    too (QEMU may not even start it here: no can0 on this host)."""
    argv = ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults", "-object", "can-bus,id=c",
            "-object", "can-host-socketcan,id=h,if=can0,canbus=c", "-device", "kvaser_pci,canbus=c"]
    _refused(argv, tmp_path / "off.dtb", "can-host-socketcan,id=h: connects a CAN bus to a host CAN interface")


def test_file_memory_behind_erst_is_refused_by_name(tmp_path: Path) -> None:
    """A memory-backend-file's host side lives in the back-end overlay online; offline does not
    model what QEMU reports of it: refused by name."""
    argv = ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults", "-object",
            f"memory-backend-file,id=e,size=1M,mem-path={tmp_path / 'erst'}", "-device", "acpi-erst,memdev=e"]
    _refused(argv, tmp_path / "off.dtb", "-object memory-backend-file: what QEMU reports of it is not in the offline model")


@pytest.mark.parametrize(("m", "words"), [("256M,slots=0,maxmem=1G", "slots=0: only 1 to 256 slots"),
                                          ("256M,slots=2", "slots and maxmem only together")])
def test_memory_options_outside_the_model_are_refused_by_name(m: str, words: str, tmp_path: Path) -> None:
    _refused(["qemu-system-x86_64", "-M", "pc-q35-7.2", "-m", m], tmp_path / "off.dtb", words)
