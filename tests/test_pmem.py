"""Persistent memory (nvdimm, virtio-pmem-pci) described and rebuilt, held to QEMU 7.2.

The guest tree has the device, its guest-visible properties (label-size, uuid, unarmed, slot,
memaddr) and the RAM the guest sees (``qemu,memdev = "memory-backend-ram,id=ID,size=N"``); the
back-end overlay has the host file behind it (``qom-type``, ``mem-path``, ``share``, ...), which
only the overlay makes ``dtb2qemu`` map, as for acpi-erst (tests/test_qom_links.py).  QEMU is the
oracle: the VM starts, is read twice, is rebuilt while it runs, migrates into the rebuild, and the
rebuild reads byte-identical.  A guest tree that names a host file itself is refused by node.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dtvm.dt.dtb import read_dtb, write_dtb

from .qemu_helpers import needs_qemu
from .qemu_random import STAGES, run_case
from .qemugen import Case

X86 = "qemu-system-x86_64"
PPC = "qemu-system-ppc64"


def _round_trip(tmp_path: Path, machine: str, argv: list[str], images: dict[str, tuple[str, int]]) -> str:
    """Every stage of tests/qemu_random.py; returns what offline said."""
    out = run_case(Case(tmp_path.name, machine, argv, images=images), tmp_path / "case")
    assert out.discarded is None, out.discarded
    assert out.failed is None, f"{out.failed}: {out.message}"
    assert out.passed == STAGES
    return out.offline


@needs_qemu(X86)
def test_nvdimm_and_virtio_pmem_on_host_files_round_trip(tmp_path: Path) -> None:
    """q35 with nvdimm=on, an nvdimm with a label area on a shared file and a virtio-pmem-pci on
    another file: one migration into the rebuild (which maps the same files, as a destination on
    the same host does).  Offline refuses what it does not model by name."""
    offline = _round_trip(tmp_path, "q35", [
        X86, "-machine", "pc-q35-7.2,nvdimm=on", "-nodefaults", "-m", "128M,slots=2,maxmem=1G",
        "-object", "memory-backend-file,id=nv0,size=64M,mem-path=@IMG@nv.img,share=on",
        "-device", "nvdimm,memdev=nv0,label-size=128K,uuid=5be6e2a4-6d8f-4c1e-9b0a-1f2e3d4c5b6a",
        "-object", "memory-backend-file,id=pm0,size=32M,mem-path=@IMG@pm.img",
        "-device", "virtio-pmem-pci,memdev=pm0,addr=4.0",
    ], {"nv.img": ("raw", 64 << 20), "pm.img": ("raw", 32 << 20)})
    assert offline == "same" or offline.startswith("refused: -"), offline


_AAVMF = "/usr/share/AAVMF/AAVMF_CODE.fd"  # (Debian's qemu-efi-aarch64)
_AARCH64_NVDIMM = ["qemu-system-aarch64", "-machine", "virt-7.2,nvdimm=on", "-cpu", "cortex-a57", "-nodefaults",
                   "-m", "256M,slots=2,maxmem=1G",
                   # virt makes the acpi-ged memory hot-plug needs only with firmware and an AArch64 CPU
                   # (QEMU 7.2: "memory hotplug is not enabled: missing acpi-ged device")
                   "-drive", "if=pflash,format=raw,readonly=on,file=" + _AAVMF]
_PSERIES = [PPC, "-machine", "pseries-7.2", "-nodefaults", "-m", "256M,slots=2,maxmem=1G"]
#: PAPR's persistent memory: a label, a UUID, whole 256 MiB beside the label (QEMU refuses less)
_PAPR = "label-size=128K,uuid=4a1b2c3d-5e6f-4708-9a1b-2c3d4e5f6a7b"


@pytest.mark.pmem_full
@pytest.mark.parametrize(("machine", "argv"), [
    ("aarch64-virt", [*_AARCH64_NVDIMM, "-object", "memory-backend-file,id=nv0,size=64M,mem-path=@IMG@nv.img,share=on",
                      "-device", "nvdimm,memdev=nv0,label-size=128K"]),
    ("pseries", [*_PSERIES, "-object", "memory-backend-file,id=nv0,size=268566528,mem-path=@IMG@nv.img",
                 "-device", f"spapr-nvdimm,memdev=nv0,{_PAPR},pmem-override=on"]),
    ("pseries", [*_PSERIES, "-object", "memory-backend-ram,id=nv0,size=268566528", "-device", f"nvdimm,memdev=nv0,{_PAPR}"]),
], ids=["aarch64-nvdimm-file", "pseries-spapr-nvdimm-file", "pseries-nvdimm-ram"])
def test_persistent_memory_round_trip_elsewhere(tmp_path: Path, machine: str, argv: list[str]) -> None:
    """aarch64 virt (with firmware) and pseries (QEMU's own DT gains an ibm,pmemory node): every
    stage, one migration each; offline refuses them by name (no nvdimm model on those machines)."""
    from .qemu_helpers import have_qemu

    if not have_qemu(argv[0]) or (machine == "aarch64-virt" and not Path(_AAVMF).exists()):
        pytest.skip(f"{argv[0]} or its firmware is not installed")
    offline = _round_trip(tmp_path, machine, argv, {"nv.img": ("raw", 268566528)})
    assert offline.startswith("refused: -") or offline == "skipped", offline


def _qemu2dtb(argv: list[str], out: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", "-o", str(out), "--", *argv],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def _dtb2qemu(guest: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", "dtb2qemu", str(guest), "--format", "lines", *more],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One q35 VM with an nvdimm and a virtio-pmem-pci on host files, described once (one QEMU
    start) for the trust tests below."""
    if not _have(X86):
        pytest.skip(f"{X86} is not installed")
    where = tmp_path_factory.mktemp("pmem")
    for name in ("nv.img", "pm.img"):
        with open(where / name, "wb") as f:
            f.truncate(16 << 20)
    _qemu2dtb([X86, "-machine", "pc-q35-7.2,nvdimm=on", "-nodefaults", "-m", "128M,slots=2,maxmem=1G",
               "-object", f"memory-backend-file,id=nv0,size=16M,mem-path={where / 'nv.img'},share=on",
               "-device", "nvdimm,memdev=nv0",
               "-object", f"memory-backend-file,id=pm0,size=16M,mem-path={where / 'pm.img'}",
               "-device", "virtio-pmem-pci,memdev=pm0,addr=4.0"], where / "vm.dtb")
    return where


def _have(binary: str) -> bool:
    import shutil

    return shutil.which(binary) is not None


def test_guest_tree_holds_ram_and_overlay_the_files(described: Path) -> None:
    """The guest tree states RAM of the file's size under the back-end's id, never the file; the
    overlay has the file.  Without the overlay dtb2qemu makes that RAM (and the check start
    accepts it); with it, the files, each listed on stderr."""
    guest = (described / "vm.dtb").read_bytes()
    assert b"nv.img" not in guest and b"pm.img" not in guest and b"memory-backend-file" not in guest
    tree = read_dtb(guest)
    assert tree.get_node("/nvdimm")["qemu,memdev"].as_string() == "memory-backend-ram,id=nv0,size=16777216"
    assert tree.get_node("/pcie/pci-device@4")["qemu,memdev"].as_string() == "memory-backend-ram,id=pm0,size=16777216"
    assert b"nv.img" in (described / "vm.backend.dtbo").read_bytes()
    alone = _dtb2qemu(described / "vm.dtb")
    assert alone.returncode == 0, alone.stderr
    assert "memory-backend-ram,id=nv0,size=16777216" in alone.stdout.splitlines()
    assert "memory-backend-ram,id=pm0,size=16777216" in alone.stdout.splitlines()
    assert ".img" not in alone.stdout and "mem-path" not in alone.stderr
    assert "pc-q35-7.2,nvdimm=on,usb=off" in alone.stdout.splitlines()
    both = _dtb2qemu(described / "vm.dtb", "-b", str(described / "vm.backend.dtbo"), "--no-check")
    assert both.returncode == 0, both.stderr
    assert f"mem-path={described / 'nv.img'},share=on" in both.stdout
    assert f"mem-path={described / 'pm.img'},share=off" in both.stdout
    assert both.stderr.count("QEMU will open mem-path") == 2


@pytest.mark.parametrize(("node", "prop", "value", "words"), [
    ("/nvdimm", "memdev", "memory-backend-file,id=nv0,size=16777216,mem-path=/etc/passwd",
     "may state only -object memory-backend-ram,id=ID,size=..."),
    ("/nvdimm", "memdev", "memory-backend-ram,id=nv0,size=16777216,share=on", "may state only"),
    ("/nvdimm", "memdev", "memory-backend-ram,id=nv0,size=34359738368", "size must be a byte count"),
    ("/nvdimm", "mem-path", "/etc/passwd", "nvdimm has no such property"),
    ("/pcie/pci-device@4", "memdev", "memory-backend-file,id=pm0,size=16777216,mem-path=/dev/pmem0",
     "may state only -object memory-backend-ram,id=ID,size=..."),
    ("/pcie/pci-device@4", "memdev", "memory-backend-memfd,id=pm0,size=16777216", "may state only"),
    ("/pcie/pci-device@4", "memdev", "pm0", "may state only -object memory-backend-ram"),
])
def test_guest_tree_naming_a_host_file_is_refused(described: Path, node: str, prop: str, value: str,
                                                  words: str) -> None:
    """A guest tree comes from anyone: persistent memory's file is the host's, so a tree that
    names one (as the link's object or as a property of its own), another back-end type, a host
    option, a bare back-end id or RAM past the rule's bound is refused in one line naming the
    node, the overlay given or not."""
    tree = read_dtb((described / "vm.dtb").read_bytes())
    tree.get_node(node).set_property(f"qemu,{prop}", value.encode() + b"\0")
    bad = described / f"bad{abs(hash((node, value)))}.dtb"
    bad.write_bytes(write_dtb(tree))
    for more in ([], ["-b", str(described / "vm.backend.dtbo")]):
        proc = _dtb2qemu(bad, *more, "--no-check")
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert node in lines[0] and words in lines[0], lines[0]


def test_memdev_as_a_plain_property_is_refused(described: Path) -> None:
    """The host back-end reference itself (``memdev``, a bare id: the overlay's) stated by a
    guest tree on an nvdimm is refused by node, as for every device."""
    tree = read_dtb((described / "vm.dtb").read_bytes())
    tree.get_node("/nvdimm").set_property("qemu,drive", b"nv0\0")
    (described / "drive.dtb").write_bytes(write_dtb(tree))
    proc = _dtb2qemu(described / "drive.dtb", "--no-check")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "/nvdimm" in proc.stderr and "names a host back-end" in proc.stderr


_Q35 = [X86, "-M", "pc-q35-7.2,nvdimm=on", "-nodefaults"]
_PC = [X86, "-M", "pc-i440fx-7.2,nvdimm=on"]


def _ram(ident: str, size: str) -> list[str]:
    return ["-object", f"memory-backend-ram,id={ident},size={size}"]


@pytest.mark.parametrize("argv", [
    # nvdimms and virtio-pmem-pcis with a pc-dimm between them: one slot count, one region (an
    # nvdimm takes its back-end less the label, aligned down to 2 MiB), uuid in QEMU's case; the
    # NFIT's flush domain (nvdimm-persistence)
    [X86, "-M", "pc-q35-7.2,nvdimm=on,nvdimm-persistence=cpu", "-nodefaults", "-m", "128M,slots=4,maxmem=2G",
     *_ram("a", "64M"),
     "-device", "nvdimm,memdev=a,label-size=128K,uuid=ABCDEF00-0000-0000-0000-000000000001",
     *_ram("b", "128M"), "-device", "pc-dimm,memdev=b", *_ram("c", "34M"), "-device", "virtio-pmem-pci,memdev=c",
     *_ram("d", "32M"), "-device", "nvdimm,memdev=d,unarmed=on,id=nv1", *_ram("e", "32M"),
     "-device", "virtio-pmem-pci,memdev=e,addr=5.0"],
    [*_PC, "-m", "256M,slots=2,maxmem=1G", *_ram("p", "16M"), "-device", "virtio-pmem-pci,memdev=p",
     *_ram("n", "20M"), "-device", "nvdimm,memdev=n,label-size=1M,uuid=00000000-0000-0000-0000-000000000000"],
    # what QEMU refuses, offline refuses
    [X86, "-M", "pc-q35-7.2", "-m", "128M,slots=2,maxmem=1G", *_ram("a", "16M"), "-device", "nvdimm,memdev=a"],
    [*_Q35, "-m", "128M,slots=2,maxmem=1G", *_ram("a", "16M"), "-device", "nvdimm,memdev=a,label-size=64K"],
    [*_Q35, "-m", "128M,slots=2,maxmem=1G", *_ram("a", "2M"), "-device", "nvdimm,memdev=a,label-size=1M"],
    [*_PC, "-m", "128M", *_ram("a", "16M"), "-device", "virtio-pmem-pci,memdev=a"],
], ids=["q35-mixed", "pc-label", "no-nvdimm-option", "small-label", "too-small", "no-slots"])
def test_offline_is_online(argv: list[str], tmp_path: Path) -> None:
    """qemu2dtb --offline writes online's guest tree and overlay byte for byte (QEMU 7.2 is the
    oracle), or refuses in one line where QEMU refuses."""
    from .qemu_helpers import assert_offline_matches_online

    assert_offline_matches_online(argv, tmp_path)


def test_offline_refuses_a_host_file_by_name(tmp_path: Path) -> None:
    """A file behind persistent memory: what QEMU reports of it (its file's page size, ...) is
    not in the offline model, so offline names it and writes nothing."""
    from .qemu_helpers import qemu2dtb_run

    argv = [*_Q35, "-m", "128M,slots=2,maxmem=1G",
            "-object", f"memory-backend-file,id=f,size=16M,mem-path={tmp_path / 'pm.img'}",
            "-device", "nvdimm,memdev=f"]
    proc = qemu2dtb_run(argv, tmp_path / "off.dtb", offline=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "memory-backend-file" in proc.stderr, proc.stderr
    assert not (tmp_path / "off.dtb").exists() and not (tmp_path / "pm.img").exists()
