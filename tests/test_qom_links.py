"""Devices linked to QOM objects of their own (CAN cards to can-bus, acpi-erst to its RAM) and the
self-placed intel-iommu: held to QEMU 7.2 by live migration (tests/qemu_random.py's stages).

The oracle is QEMU: the configuration starts, is read twice and after running, is rebuilt by
``dtb2qemu`` while it runs, the rebuild starts as a migration destination, the VM migrates into it
(completed on both sides), and the rebuild reads byte-identical.  Offline refuses these types by
name (another model's job); the refusal is counted by the runner, never a failure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dtvm.dt.dtb import read_dtb, write_dtb
from dtvm.errors import DtvmError

from .qemu_helpers import VMs, needs_qemu
from .qemu_random import STAGES, _describe, _migrate, run_case
from .qemugen import Case

X86 = "qemu-system-x86_64"


@pytest.fixture
def vms(tmp_path: Path) -> Any:
    pool = VMs(tmp_path)
    yield pool
    pool.stop_all()


def _round_trip(tmp_path: Path, machine: str, argv: list[str], hotplug: list[dict[str, Any]] | None = None) -> None:
    out = run_case(Case(tmp_path.name, machine, argv, hotplug=hotplug or []), tmp_path / "case")
    assert out.discarded is None, out.discarded
    assert out.failed is None, f"{out.failed}: {out.message}"
    assert out.passed == STAGES
    # offline answers these since tests/test_offline_links.py (the same bytes), or refuses by name
    assert out.offline in ("skipped", "same") or out.offline.startswith("refused: -"), out.offline


@needs_qemu(X86)
def test_can_buses_shared_and_hotplugged_round_trip(tmp_path: Path) -> None:
    """Two buses shared by a one-channel and a two-channel card, a card hot-plugged onto one bus
    on both channels: which controllers share a bus survives the rebuild and migration."""
    _round_trip(tmp_path, "pc", [
        X86, "-machine", "pc-i440fx-7.2", "-nodefaults", "-m", "128M",
        "-object", "can-bus,id=zbus", "-object", "can-bus,id=abus",
        "-device", "ctucan_pci,canbus0=zbus,canbus1=abus,addr=6.0",
        "-device", "kvaser_pci,canbus=abus,addr=4.0",
        "-device", "pcm3680_pci,canbus0=abus,canbus1=abus,addr=5.0",
    ], [{"driver": "mioe3680_pci", "canbus0": "zbus", "canbus1": "zbus", "id": "hot"}])


@needs_qemu(X86)
def test_can_bus_ids_and_order_are_not_described(vms: VMs) -> None:
    """The same topology made with other ids and in another order reads the same: neither the
    guest nor migration sees a can-bus id, so the description numbers the buses by position."""
    def read(argv: list[str]) -> tuple[bytes, bytes]:
        return _describe(vms.start([X86, "-machine", "pc-q35-7.2", "-nodefaults", "-m", "128M", *argv]))

    first = read(["-object", "can-bus,id=one", "-object", "can-bus,id=two",
                  "-device", "kvaser_pci,canbus=one,addr=3.0", "-device", "mioe3680_pci,canbus0=two,canbus1=one,addr=2.0"])
    second = read(["-object", "can-bus,id=b9", "-object", "can-bus,id=a1",
                   "-device", "mioe3680_pci,canbus0=a1,canbus1=b9,addr=2.0", "-device", "kvaser_pci,canbus=b9,addr=3.0"])
    assert first == second
    other = read(["-object", "can-bus,id=one", "-object", "can-bus,id=two",
                  "-device", "kvaser_pci,canbus=two,addr=3.0", "-device", "mioe3680_pci,canbus0=two,canbus1=one,addr=2.0"])
    assert other[0] != first[0]  # the kvaser on the other bus: other topology, another description


@needs_qemu(X86, "qemu-system-aarch64")
@pytest.mark.parametrize("machine", ["q35", "aarch64-virt"])
def test_acpi_erst_memory_backend_round_trip(tmp_path: Path, machine: str) -> None:
    """acpi-erst's RAM back-end (its id, its size) and a record size of its own."""
    base = {"q35": [X86, "-machine", "pc-q35-7.2"],
            "aarch64-virt": ["qemu-system-aarch64", "-machine", "virt-7.2", "-cpu", "cortex-a57"]}[machine]
    _round_trip(tmp_path, machine, [
        *base, "-nodefaults", "-m", "256M", "-object", "memory-backend-ram,id=erstram,size=64M",
        "-device", "acpi-erst,memdev=erstram,record_size=16384",
    ])


@needs_qemu("qemu-system-aarch64")
def test_virtio_mem_on_ram_round_trip(tmp_path: Path) -> None:
    """A virtio-mem on a virtio-mmio transport with its RAM back-end: trust.json lets a guest tree
    make RAM for it (anonymous, bounded: no host resource), as for acpi-erst."""
    _round_trip(tmp_path, "aarch64-virt", [
        "qemu-system-aarch64", "-machine", "virt-7.2", "-cpu", "cortex-a57", "-nodefaults", "-m", "128M",
        "-object", "memory-backend-ram,id=vmem,size=128M", "-device", "virtio-mem,memdev=vmem,requested-size=64M",
    ])


@needs_qemu(X86)
@pytest.mark.parametrize(("machine", "devices", "cpu"), [
    ("pc", ["-object", "memory-backend-ram,id=dimm0,size=128M", "-device", "pc-dimm,memdev=dimm0,id=d0"], False),
    ("q35", ["-object", "memory-backend-ram,id=vmem0,size=256M",
             "-device", "virtio-mem-pci,memdev=vmem0,requested-size=128M,addr=3.0"], False),
    # a hot-plugged x86 CPU has a link named `memory` too, a path, where the machine's is -m's struct
    ("q35", ["-smp", "1,maxcpus=2"], True),
])
def test_memory_hotplug_slots_round_trip(tmp_path: Path, machine: str, devices: list[str], cpu: bool) -> None:
    """-m slots=,maxmem= (the memory hot-plug range the guest's ACPI shows) is described and given
    back, with a pc-dimm or virtio-mem-pci plugged into it: without it QEMU refuses them ("please
    specify the maxmem option") and the rebuild would lose the range."""
    mtype = {"pc": "pc-i440fx-7.2", "q35": "pc-q35-7.2"}[machine]
    _round_trip(tmp_path, machine, [X86, "-machine", mtype, "-nodefaults", "-m", "256M,slots=3,maxmem=2G", *devices],
                [{"driver": "cpu", "id": "cpu9"}] if cpu else None)


@needs_qemu(X86)
def test_memory_hotplug_range_is_hardware(vms: VMs) -> None:
    """Another maxmem, or another slot count, is other hardware: another description."""
    def read(memory: str) -> bytes:
        return _describe(vms.start([X86, "-machine", "pc-q35-7.2", "-nodefaults", "-m", memory]))[0]

    plain, hotplug = read("256M"), read("256M,slots=2,maxmem=1G")
    assert plain == read("256M,maxmem=256M")  # maxmem equal to the RAM: no hot-plug range, as QEMU's default
    assert len({plain, hotplug, read("256M,slots=3,maxmem=1G"), read("256M,slots=2,maxmem=2G")}) == 4


def test_maxmem_without_slots_refused_by_name(tmp_path: Path) -> None:
    """QEMU 7.2 answers -m 256M,slots=0,maxmem=1G with the size alone, yet makes the NUMA node of
    memory hot-plug for it (and the hot-plug range): what dtvm cannot read it refuses by name,
    never describing a VM without the range."""
    out = subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", "-o", str(tmp_path / "vm.dtb"), "--", X86, "-M",
                          "pc-q35-7.2", "-nodefaults", "-m", "256M,slots=0,maxmem=1G"], capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "maxmem without memory slots" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "vm.dtb").exists()


def test_memory_device_trust_decisions() -> None:
    """RAM is rebuilt from a guest tree for acpi-erst, pc-dimm, virtio-mem and persistent memory
    (nvdimm, virtio-pmem), by the same rule: a memory-backend-ram of at most 16 GiB, no host
    option; a file behind any of them (persistent memory's usual back-end) is the overlay's
    (tests/test_pmem.py)."""
    from dtvm.qemu.trust import trust

    t = trust()
    drivers = ("acpi-erst", "pc-dimm", "virtio-mem", "virtio-mem-pci", "nvdimm", "virtio-pmem", "virtio-pmem-pci")
    rules = {t.link_of(d, "memdev") for d in drivers}
    assert len(rules) == 1
    (rule,) = rules
    assert rule is not None and rule.object == "memory-backend-ram" and rule.options == ("size",)
    assert rule.host_objects == ("memory-backend-file",)
    for driver in ("pc-dimm", "virtio-mem-pci", "nvdimm", "virtio-pmem-pci"):
        t.device(driver, "/x")


@needs_qemu(X86)
def test_memory_backend_id_is_what_migration_matches(vms: VMs) -> None:
    """Why the RAM back-end's id is described (``kept`` in trust.json's guest-links): QEMU
    migrates its RAM block by that id, so the same VM with another id cannot receive it."""
    argv = [X86, "-machine", "pc-q35-7.2", "-nodefaults", "-m", "128M", "-device", "acpi-erst,memdev=m1"]
    a = vms.start([*argv, "-object", "memory-backend-ram,id=m1,size=16M"])
    b = vms.start([*[x.replace("m1", "m2") for x in argv], "-object", "memory-backend-ram,id=m2,size=16M",
                   "-incoming", "defer"])
    status = _migrate(a, b, str(vms.directory / "mig.sock"))
    assert status != "completed"


@needs_qemu(X86)
@pytest.mark.parametrize("argv", [
    ["-machine", "pc-q35-7.2,kernel-irqchip=split", "-device", "e1000e,netdev=n", "-netdev", "user,id=n",
     "-device", "intel-iommu,intremap=on,caching-mode=on,aw-bits=48,device-iotlb=on"],
    ["-machine", "pc-q35-7.2", "-device", "intel-iommu,x-scalable-mode=on,intremap=off",
     "-device", "virtio-net-pci,disable-legacy=on,iommu_platform=on,ats=on,addr=5.0"],
], ids=["intremap", "scalable"])
def test_intel_iommu_round_trip(tmp_path: Path, argv: list[str]) -> None:
    _round_trip(tmp_path, "q35", [X86, "-nodefaults", "-m", "128M", *argv])


def _qemu2dtb(argv: list[str], out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", "-o", str(out), "--", *argv],
                          capture_output=True, text=True, timeout=60, check=False)


def _refused(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@needs_qemu(X86)
@pytest.mark.parametrize("share", ["on", "off"])
def test_acpi_erst_on_a_host_file_round_trip(tmp_path: Path, share: str) -> None:
    """ERST records kept in a host file: the guest tree holds the RAM the guest sees, the overlay
    the file (the rebuild maps the source's own file, as a destination on the same host does)."""
    _round_trip(tmp_path, "q35", [
        X86, "-machine", "pc-q35-7.2", "-nodefaults", "-m", "128M",
        "-object", f"memory-backend-file,id=erstfile,size=2M,mem-path=@IMG@erst.img,share={share}",
        "-device", "acpi-erst,memdev=erstfile",
    ])


@needs_qemu(X86)
def test_host_file_comes_only_from_the_overlay(tmp_path: Path) -> None:
    """Without the overlay the rebuild makes the guest tree's RAM: no host file is named."""
    proc = _qemu2dtb([X86, "-machine", "pc-q35-7.2", "-nodefaults", "-m", "128M",
                      "-object", f"memory-backend-file,id=f,size=1M,mem-path={tmp_path / 'erst.img'}",
                      "-device", "acpi-erst,memdev=f"], tmp_path / "vm.dtb")
    assert proc.returncode == 0, proc.stderr
    alone = subprocess.run([sys.executable, "-m", "dtvm", "dtb2qemu", str(tmp_path / "vm.dtb")],
                           capture_output=True, text=True, timeout=60, check=False)
    assert alone.returncode == 0, alone.stderr
    assert "memory-backend-ram,id=f,size=1048576" in alone.stdout and "erst.img" not in alone.stdout
    both = _dtb2qemu(tmp_path / "vm.dtb", tmp_path / "vm.backend.dtbo")
    assert both.returncode == 0, both.stderr
    assert f"mem-path={tmp_path / 'erst.img'}" in both.stdout and "erst.img" in both.stderr


@needs_qemu(X86)
def test_erst_on_memfd_is_refused_by_name(tmp_path: Path) -> None:
    """A back-end type the rule does not name: qemu2dtb says so and writes nothing."""
    proc = _qemu2dtb([X86, "-machine", "pc-q35-7.2", "-nodefaults", "-m", "128M",
                      "-object", "memory-backend-memfd,id=f,size=1M", "-device", "acpi-erst,memdev=f"],
                     tmp_path / "vm.dtb")
    _refused(proc, "acpi-erst", "memory-backend-memfd")
    assert not (tmp_path / "vm.dtb").exists()


@needs_qemu(X86)
def test_host_can_interface_is_refused_by_name(vms: VMs) -> None:
    """A can-host-socketcan connects a CAN bus to a host interface: refused by name (this machine
    has no CAN interface for QEMU to open, so QEMU's own answer about a CAN VM gets one added)."""
    from dtvm.qemu.config import from_snapshot
    from dtvm.qemu.live import read_socket

    vm = vms.start([X86, "-machine", "pc-q35-7.2", "-nodefaults", "-object", "can-bus,id=c",
                    "-device", "kvaser_pci,canbus=c"])
    snapshot = read_socket(vm.address, timeout=30)
    from_snapshot(snapshot)  # as QEMU answered: described
    snapshot.objects["host"] = {"type": "can-host-socketcan"}
    with pytest.raises(DtvmError, match=r"can-host-socketcan,id=host: connects a CAN bus to a host CAN interface"):
        from_snapshot(snapshot)


def _dtb2qemu(guest: Path, overlay: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", "dtb2qemu", str(guest), "-b", str(overlay), "--no-check"],
                          capture_output=True, text=True, timeout=60, check=False)


@needs_qemu(X86)
@pytest.mark.parametrize(("node", "prop", "value", "words"), [
    ("pci-device@2", "qemu,memdev", "memory-backend-file,id=erst,size=4096,mem-path=/etc/passwd",
     "may state only -object memory-backend-ram,id=ID,size=..."),
    ("pci-device@2", "qemu,memdev", "memory-backend-ram,id=erst,size=68719476736", "size must be a byte count"),
    ("pci-device@2", "qemu,memdev", "memory-backend-ram,id=erst,size=4096,prealloc=on", "may state only"),
    ("pci-device@3", "qemu,canbus", "can-host-socketcan,id=can0,if=eth0", "may state only -object can-bus,id=ID"),
    ("pci-device@3", "qemu,canbus", "can-bus,id=mine", "not an object id dtvm gives"),
    ("pci-device@3", "qemu,drive", "erst", "names a host back-end: only the back-end overlay may state it"),
])
def test_guest_tree_links_are_held_to_the_trust_model(tmp_path: Path, node: str, prop: str, value: str,
                                                      words: str) -> None:
    """A guest tree comes from anyone: a link it states makes only the object its rule allows."""
    proc = _qemu2dtb([X86, "-machine", "pc-q35-7.2", "-nodefaults", "-m", "128M",
                      "-object", "memory-backend-ram,id=erst,size=1M", "-device", "acpi-erst,memdev=erst,addr=2.0",
                      "-object", "can-bus,id=c", "-device", "kvaser_pci,canbus=c,addr=3.0"], tmp_path / "vm.dtb")
    assert proc.returncode == 0, proc.stderr
    good = _dtb2qemu(tmp_path / "vm.dtb", tmp_path / "vm.backend.dtbo")
    assert good.returncode == 0, good.stderr
    tree = read_dtb((tmp_path / "vm.dtb").read_bytes())
    target = tree.get_node(f"/pcie/{node}")
    target.set_property(prop, value.encode() + b"\0")
    (tmp_path / "bad.dtb").write_bytes(write_dtb(tree))
    _refused(_dtb2qemu(tmp_path / "bad.dtb", tmp_path / "vm.backend.dtbo"), f"/pcie/{node}", words)


@needs_qemu(X86)
def test_diff_sees_a_described_link(tmp_path: Path) -> None:
    """``dtvm diff`` ignores back-end references (bare ids), not the objects a guest tree
    describes: acpi-erst with another RAM size is other hardware."""
    proc = _qemu2dtb([X86, "-machine", "pc-q35-7.2", "-nodefaults", "-m", "128M",
                      "-object", "memory-backend-ram,id=erst,size=1M", "-device", "acpi-erst,memdev=erst,addr=2.0"],
                     tmp_path / "vm.dtb")
    assert proc.returncode == 0, proc.stderr
    tree = read_dtb((tmp_path / "vm.dtb").read_bytes())
    tree.get_node("/pcie/pci-device@2").set_property("qemu,memdev", b"memory-backend-ram,id=erst,size=2097152\0")
    (tmp_path / "other.dtb").write_bytes(write_dtb(tree))

    def diff(a: str, b: str) -> int:
        return subprocess.run([sys.executable, "-m", "dtvm", "diff", str(tmp_path / a), str(tmp_path / b)],
                              capture_output=True, text=True, timeout=60, check=False).returncode

    assert diff("vm.dtb", "vm.dtb") == 0
    assert diff("vm.dtb", "other.dtb") == 1


@needs_qemu(X86)
def test_virtio_mem_requested_size_is_described(vms: VMs, tmp_path: Path) -> None:
    """virtio-mem's requested-size (the size the host asks the guest to plug, in the config space
    the guest reads) is no qdev property: info qtree never shows it, and a cold rebuild would ask
    for 0. The operator's qom-set of it is read from QOM, and the VM rebuilt without migration
    (a plain start of dtb2qemu's command line) reads the same."""
    from dtvm.qemu.argv import build_argv
    from dtvm.vm.readback import read_config

    argv = [X86, "-machine", "pc-q35-7.2", "-nodefaults", "-m", "256M,slots=2,maxmem=2G",
            "-object", "memory-backend-ram,id=vmem0,size=256M", "-device", "virtio-mem-pci,memdev=vmem0,id=vm0,addr=3.0"]
    a = vms.start(argv)
    default = _describe(a)
    assert b"requested-size" not in default[0]  # the default (0) is not written
    a.qmp("qom-set", {"path": "/machine/peripheral/vm0", "property": "requested-size", "value": 64 << 20})
    asked = _describe(a)
    node = next(n for n in read_dtb(asked[0]).root.walk() if n.name == "virtio" and n.get_property("qemu,requested-size"))
    assert node["qemu,requested-size"].as_string() == str(64 << 20)
    rebuild = build_argv(read_config(read_dtb(asked[0]), read_dtb(asked[1])))
    assert _describe(vms.start(rebuild.argv)) == asked


@needs_qemu(X86)
def test_xhci_port_counts_round_trip(tmp_path: Path) -> None:
    """qemu-xhci's and nec-usb-xhci's p2/p3 (USB 2 and USB 3 port counts) are aliases of the inner
    xhci-core's, which info qtree never shows (devices.yaml qom-settings): without them the rebuild
    had 4 and 4, and the migration failed ("Missing section footer for 0000:00:01.0/xhci", found by
    the usb-host helper), while QEMU migrates the identical command line into itself."""
    _round_trip(tmp_path, "q35", [
        X86, "-machine", "pc-q35-7.2", "-nodefaults", "-m", "128M",
        "-device", "qemu-xhci,id=x,p2=8,p3=2,addr=3.0", "-device", "usb-tablet,bus=x.0,port=7",
        "-device", "nec-usb-xhci,p3=3,addr=4.0",
    ])
