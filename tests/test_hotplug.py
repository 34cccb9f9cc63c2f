"""dtvm hotplug against QEMU 7.2: addresses QEMU itself would choose, device_del followed to its end
or marked pending, descriptions rewritten atomically, and watch following other clients.

The oracle for addresses is QEMU: every placement test starts two identical VMs (paused, TCG, a
QMP socket each), lets ``dtvm hotplug add`` place a device in one and QEMU choose in the other
(plain ``device_add`` without an address), and requires the same guest-visible key and a
byte-identical description.  The assignment rules also get pure unit tests over Configs of saved
snapshots (``fixtures/qemu-snapshots``), including facts from NOTES (which IDE and virtio-mmio bus
QEMU picks) that the bus search must reproduce.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dtvm.dt.dtb import read_dtb
from dtvm.qemu import assign as A
from dtvm.qemu.config import from_snapshot
from dtvm.qemu.snapshot import Snapshot
from dtvm.vm.model import Bus, Config, Device

pytest.importorskip("qemu.qmp")
from qemu.qmp.legacy import QEMUMonitorProtocol

from tests.conftest import VM

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "fixtures" / "qemu-snapshots"

X86 = "qemu-system-x86_64"
AA64 = "qemu-system-aarch64"
Q35 = [X86, "-M", "pc-q35-7.2", "-nodefaults"]
PC = [X86, "-M", "pc-i440fx-7.2", "-nodefaults"]
VIRT = [AA64, "-M", "virt-7.2", "-nodefaults"]


# ------------------------------------------------------------------------------- pure assignment


def _config(name: str) -> Config:
    return from_snapshot(Snapshot.from_json((SNAPSHOTS / f"{name}.json").read_text()))


def _bus(config: Config, name: str) -> Bus:
    found = [b for b in A.bus_search_order(config) if b.name == name]
    assert len(found) == 1, name
    return found[0]


def _plug(bus: Bus, driver: str, address: tuple[str, tuple[int, ...]], **props: str) -> Device:
    dev = Device(driver, address, dict(props), parent=bus)
    bus.devices.append(dev)
    return dev


def test_bus_search_order_matches_qemus_choices_in_notes() -> None:
    """NOTES: ide-hd without bus goes to ide.5 on q35 and ide.1 on pc; the first virtio-*-device
    on virt takes the highest transport (.31), then .30: QEMU's search visits newest first."""
    assert A.find_bus(_config("x86_64-q35-default"), bus_type="IDE").name == "ide.5"  # type: ignore[union-attr]
    assert A.find_bus(_config("x86_64-pc-default"), bus_type="IDE").name == "ide.1"  # type: ignore[union-attr]
    virt = _config("aarch64-virt-default")
    first = A.find_bus(virt, bus_type="virtio-mmio-bus")
    assert first is not None and first.name == "virtio-mmio-bus.31"
    _plug(first, "virtio-rng-device", ("virtio", ()))
    second = A.find_bus(virt, bus_type="virtio-mmio-bus")
    assert second is not None and second.name == "virtio-mmio-bus.30"  # .31 is full (max_dev 1)


def test_pci_without_bus_is_the_root_bus_never_a_root_port() -> None:
    config = _config("x86_64-q35-nodefaults-devices")  # root port rp1 holds virtio-blk at 00.0
    p = A.assign(config, "virtio-net-pci", A.PCI, {})
    assert (p.bus.name, p.address, p.bus_chosen) == ("pcie.0", ("pci", (7, 0)), True)  # 00..06 and 1f used
    assert p.options == {"bus": "pcie.0", "addr": "07.0"}
    p = A.assign(config, "virtio-net-pci", A.PCI, {"bus": "rp1"}, hotplug=False)  # cold: QEMU's own choice
    assert (p.address, p.bus_chosen, p.text()) == (("pci", (1, 0)), False, "bus rp1, addr 01.0")
    with pytest.raises(A.AssignError, match=r"bus rp1: the PCIe port's one slot \(00.0\) is taken by virtio-blk-pci"):
        A.assign(config, "virtio-net-pci", A.PCI, {"bus": "rp1"})
    pc = A.assign(_config("x86_64-pc-default"), "e1000", A.PCI, {})
    assert (pc.bus.name, pc.address) == ("pci.0", ("pci", (4, 0)))  # 00 host, 01 PIIX3, 02 VGA, 03 e1000


def test_pci_given_addresses_are_checked() -> None:
    config = _config("x86_64-q35-nodefaults-devices")
    with pytest.raises(A.AssignError, match=r"bus rp1: PCI slot 00 function 0 is in use by virtio-blk-pci \(id blk0\)"):
        A.assign(config, "e1000", A.PCI, {"bus": "rp1", "addr": "0"})
    with pytest.raises(A.AssignError, match=r"bus pcie\.0: PCI slot 01 already has function 0 .*net0"):
        A.assign(config, "e1000", A.PCI, {"bus": "pcie.0", "addr": "1.3"})
    # cold plug: function 3 next to a single-function function 0 is refused too
    with pytest.raises(A.AssignError, match="single-function device"):
        A.assign(config, "e1000", A.PCI, {"bus": "pcie.0", "addr": "1.3"}, hotplug=False)
    p = A.assign(config, "e1000", A.PCI, {"bus": "pcie.0", "addr": "0x9.0x2"})
    assert p.address == ("pci", (9, 2)) and p.options["addr"] == "09.2"
    _plug(_bus(config, "pcie.0"), "e1000", ("pci", (9, 2)))
    with pytest.raises(A.AssignError, match=r"slot 09 already has function.*2.*multifunction=on"):
        A.assign(config, "e1000", A.PCI, {"bus": "pcie.0", "addr": "9"})
    assert A.assign(config, "e1000", A.PCI, {"bus": "pcie.0", "addr": "9", "multifunction": "on"}).address == ("pci", (9, 0))
    # automatic: slot 9 has function 0 free, so QEMU picks it (lowest slot with function 0 free)
    with pytest.raises(A.AssignError, match="slot 07"):
        full = copy.deepcopy(config)
        _plug(_bus(full, "pcie.0"), "e1000", ("pci", (7, 1)))
        A.assign(full, "e1000", A.PCI, {})
    for bad in ("20", "1.8", "x", "1.2.3"):
        with pytest.raises(A.AssignError, match="addr"):
            A.assign(config, "e1000", A.PCI, {"addr": bad})


def test_bus_errors_name_the_bus() -> None:
    config = _config("x86_64-q35-nodefaults-devices")
    with pytest.raises(A.AssignError, match="bus 'nope' not found"):
        A.assign(config, "e1000", A.PCI, {"bus": "nope"})
    with pytest.raises(A.AssignError, match="usb-tablet cannot go on bus 'rp1': it is a PCIE bus of pcie-root-port id rp1"):
        A.assign(config, "usb-tablet", A.USB, {"bus": "rp1"})
    with pytest.raises(A.AssignError, match="no 'SCSI' bus for scsi-hd"):
        A.assign(config, "scsi-hd", A.SCSI, {})
    with pytest.raises(A.AssignError, match="by its name"):
        A.assign(config, "e1000", A.PCI, {"bus": "/q35-pcihost/pcie.0"})
    with pytest.raises(A.AssignError, match="PCI, USB, SCSI and virtio-serial"):
        A.assign(config, "ide-hd", "ide", {})


def test_usb_first_free_port_and_the_automatic_hub() -> None:
    config = _config("x86_64-q35-nodefaults-devices")  # qemu-xhci (4 ports), usb-tablet on port 1
    p = A.assign(config, "usb-kbd", A.USB, {})
    assert (p.bus.name, p.address, p.options) == ("xhci.0", ("usb", (2,)), {"bus": "xhci.0", "port": "2"})
    bus = _bus(config, "xhci.0")
    with pytest.raises(A.AssignError, match="USB port 1 is in use by usb-tablet"):
        A.assign(config, "usb-kbd", A.USB, {"port": "1"})
    with pytest.raises(A.AssignError, match="has no USB port 5"):
        A.assign(config, "usb-kbd", A.USB, {"port": "5"})
    _plug(bus, "usb-kbd", ("usb", (2,)))
    _plug(bus, "usb-mouse", ("usb", (4,)))
    # QEMU 7.2 (usb_claim_port): with one free port left it plugs a usb-hub there first
    with pytest.raises(A.AssignError, match=r"only port 3 is free, and QEMU would plug an automatic usb-hub"):
        A.assign(config, "usb-mouse", A.USB, {})
    assert A.assign(config, "usb-mouse", A.USB, {"port": "3"}).address == ("usb", (3,))
    assert A.assign(config, "usb-hub", A.USB, {}).address == ("usb", (3,))
    _plug(bus, "usb-hub", ("usb", (3,)))
    assert A.usb_port_order(bus) == [(1,), (2,), (3,), (4,), *[(3, i) for i in range(1, 9)]]
    assert A.assign(config, "usb-mouse", A.USB, {}).address == ("usb", (3, 1))
    pseries = _config("ppc64-pseries-default")  # nec-usb-xhci: usb-kbd 1, usb-mouse 2
    assert A.assign(pseries, "usb-tablet", A.USB, {}).address == ("usb", (3,))


def test_scsi_lowest_free_id_at_lun_0() -> None:
    pseries = _config("ppc64-pseries-default")  # spapr-vscsi with scsi-cd at 0:2:0
    assert A.assign(pseries, "scsi-hd", A.SCSI, {}).address == ("scsi", (0, 0, 0))
    bus = A.find_bus(pseries, bus_type="SCSI")
    assert bus is not None
    _plug(bus, "scsi-hd", ("scsi", (0, 0, 0)))
    _plug(bus, "scsi-hd", ("scsi", (0, 1, 3)))  # id 1 has lun 3 only: lun 0 there is free
    assert A.assign(pseries, "scsi-hd", A.SCSI, {}).address == ("scsi", (0, 1, 0))
    assert A.assign(pseries, "scsi-hd", A.SCSI, {"lun": "3"}).address == ("scsi", (0, 0, 3))
    assert A.assign(pseries, "scsi-hd", A.SCSI, {"scsi-id": "1"}).address == ("scsi", (0, 1, 0))
    assert A.assign(pseries, "scsi-hd", A.SCSI, {"scsi-id": "0"}).address == ("scsi", (0, 0, 1))
    assert A.assign(pseries, "scsi-hd", A.SCSI, {"scsi-id": "010"}).address == ("scsi", (0, 8, 0))  # octal, as QEMU
    with pytest.raises(A.AssignError, match=r"scsi-id 64 is out of range \(at most 63 on spapr-vscsi"):
        A.assign(pseries, "scsi-hd", A.SCSI, {"scsi-id": "64"})
    with pytest.raises(A.AssignError, match="channel 0 scsi-id 1 lun 3 is in use by scsi-hd"):
        A.assign(pseries, "scsi-hd", A.SCSI, {"scsi-id": "1", "lun": "3"})


def test_virtio_serial_port_0_is_for_consoles() -> None:
    config = _config("x86_64-q35-nodefaults-devices")  # virtconsole con0 at nr 0
    assert A.assign(config, "virtserialport", A.VSERIAL, {}).address == ("nr", (1,))
    assert A.assign(config, "virtconsole", A.VSERIAL, {}, console=True).address == ("nr", (1,))
    bus = _bus(config, "vser.0")
    bus.devices.clear()
    assert A.assign(config, "virtconsole", A.VSERIAL, {}, console=True).address == ("nr", (0,))
    assert A.assign(config, "virtserialport", A.VSERIAL, {}).address == ("nr", (1,))
    with pytest.raises(A.AssignError, match="port 0 is reserved for a virtconsole"):
        A.assign(config, "virtserialport", A.VSERIAL, {"nr": "0"})
    with pytest.raises(A.AssignError, match=r"port 31 is out of range \(max_ports 31"):
        A.assign(config, "virtserialport", A.VSERIAL, {"nr": "31"})


def test_numbers_as_qemu_reads_them() -> None:
    assert [A.qemu_int(t, "x") for t in ("10", "0x10", "010", "0", "-1")] == [10, 16, 8, 0, -1]
    assert [A.parse_pci_addr(t) for t in ("3", "03.1", "0x1f.0x7", "a")] == [(3, 0), (3, 1), (31, 7), (10, 0)]
    with pytest.raises(A.AssignError):
        A.qemu_int("08", "x")  # not octal: QEMU refuses it too


# ------------------------------------------------------------------------------------ live helpers


def _dtvm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def _hotplug(vm: VM, *args: str, files: Path | None = None) -> subprocess.CompletedProcess[str]:
    out = ["-o", str(files / "vm.dtb")] if files is not None else []
    return _dtvm("hotplug", "--qmp", f"unix:{vm.sock}", *out, *args)


def _describe(vm: VM, where: Path) -> tuple[bytes, bytes]:
    """A fresh ``qemu2dtb --qmp`` of the VM: (guest DTB, back-end overlay)."""
    where.mkdir(parents=True, exist_ok=True)
    res = _dtvm("qemu2dtb", "--qmp", f"unix:{vm.sock}", "-o", str(where / "vm.dtb"))
    assert res.returncode == 0, res.stderr
    return (where / "vm.dtb").read_bytes(), (where / "vm.backend.dtbo").read_bytes()


def _files(where: Path) -> tuple[bytes, bytes]:
    return (where / "vm.dtb").read_bytes(), (where / "vm.backend.dtbo").read_bytes()


def _qmp(vm: VM, commands: list[tuple[str, dict[str, Any]]]) -> None:
    mon = vm.qmp()
    try:
        for name, args in commands:
            mon.cmd(name, **args)
    finally:
        mon.close()


def _key(vm: VM, ident: str) -> str:
    from dtvm.qemu.live import read_socket

    config = from_snapshot(read_socket(f"unix:{vm.sock}"))
    found = [d.key() for d in config.devices() if d.qdev_id == ident]
    assert len(found) == 1, ident
    return found[0]


def _backend_fragment(blob: bytes, ident: str) -> Any:
    tree = read_dtb(blob)
    for frag in tree.root.live_children():
        over = frag.get_child("__overlay__")
        prop = over.get_property("qemu,id") if over is not None else None
        if prop is not None and prop.as_string() == ident:
            return frag, over
    return None


def _no_temp_files(where: Path) -> None:
    assert sorted(p.name for p in where.iterdir() if p.name.startswith(".")) == []


# -------------------------------------------------------------- placement: dtvm's choice == QEMU's

#: name -> (argv, DEVICE-OPTS for dtvm and for QEMU's own device_add, the address dtvm must choose)
TWINS: dict[str, tuple[list[str], str, str]] = {
    "q35-root-port": (
        [*Q35, "-device", "pcie-root-port,id=rp1,chassis=1", "-device", "virtio-net-pci,bus=rp1,id=c0",
         "-device", "pcie-root-port,id=rp2,chassis=2"],
        "virtio-net-pci,bus=rp2,id=n1", "bus rp2, addr 00.0"),
    "q35-pci-bridge": (
        [*Q35, "-device", "pci-bridge,id=br1,chassis_nr=3,addr=5", "-device", "e1000,bus=br1,addr=0",
         "-device", "e1000,bus=br1,addr=1", "-device", "e1000,bus=br1,addr=3"],
        "e1000,bus=br1,id=n1", "bus br1, addr 02.0"),
    "pc-root-bus": (
        [*PC, "-device", "virtio-net-pci", "-device", "e1000,addr=4"],
        "virtio-net-pci,id=n1", "bus pci.0, addr 03.0"),
    "virt-root-port": (
        [*VIRT, "-device", "pcie-root-port,id=rp,chassis=1"],
        "virtio-net-pci,bus=rp,id=n1", "bus rp, addr 00.0"),
    "q35-usb-newest-controller": (
        [*Q35, "-device", "qemu-xhci,id=x1", "-device", "qemu-xhci,id=x2", "-device", "usb-kbd,bus=x2.0"],
        "usb-tablet,id=n1", "bus x2.0, port 2"),
    "q35-scsi": (
        [*Q35, "-device", "virtio-scsi-pci,id=scsi0", "-blockdev", "null-co,node-name=nd0",
         "-blockdev", "null-co,node-name=nd1", "-blockdev", "null-co,node-name=nd2",
         "-device", "scsi-hd,drive=nd0,scsi-id=0", "-device", "scsi-hd,drive=nd1,scsi-id=1,lun=2"],
        "scsi-hd,drive=nd2,id=n1", "bus scsi0.0, scsi-id 1, lun 0"),
    "q35-virtio-serial": (
        [*Q35, "-device", "virtio-serial-pci,id=vser", "-chardev", "null,id=c0", "-chardev", "null,id=c1",
         "-chardev", "null,id=c2", "-device", "virtconsole,chardev=c0", "-device", "virtserialport,chardev=c1,nr=2"],
        "virtserialport,chardev=c2,id=n1", "bus vser.0, nr 1"),
}


def _options(text: str) -> dict[str, Any]:
    from dtvm.qemu.opts import parse

    head, pairs = parse(text, implied="driver")
    return {"driver": head, **dict(pairs)}


@pytest.mark.parametrize("name", sorted(TWINS))
def test_add_chooses_what_qemu_chooses(name: str, vm_factory: Callable[[list[str]], VM], tmp_path: Path) -> None:
    argv, device, placement = TWINS[name]
    ours, theirs = vm_factory(argv), vm_factory(argv)
    (tmp_path / "ours").mkdir()
    res = _hotplug(ours, "add", device, files=tmp_path / "ours")
    assert res.returncode == 0, res.stderr
    assert f"added n1 ({device.split(',')[0]}) at {placement}: " in res.stdout
    _qmp(theirs, [("device_add", _options(device))])
    assert _key(ours, "n1") == _key(theirs, "n1")
    # same device model, so the same description, byte for byte (the hot-plugged flag included)
    assert _files(tmp_path / "ours") == _describe(theirs, tmp_path / "theirs")
    _no_temp_files(tmp_path / "ours")


def test_add_gives_an_id_and_keeps_the_users_options(vm_factory: Callable[[list[str]], VM], tmp_path: Path) -> None:
    vm = vm_factory([*Q35, "-device", "pcie-root-port,id=rp1,chassis=1"])
    res = _hotplug(vm, "add", "virtio-net,bus=rp1,mac=52:54:00:aa:bb:cc", files=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "added virtio-net-pci0 (virtio-net-pci) at bus rp1, addr 00.0" in res.stdout  # the alias resolved
    frag = _backend_fragment((tmp_path / "vm.backend.dtbo").read_bytes(), "virtio-net-pci0")
    assert frag is not None and frag[1].get_property("qemu,hotplugged") is not None
    guest = read_dtb((tmp_path / "vm.dtb").read_bytes())
    node = guest.get_node(frag[0]["target-path"].as_string())
    assert node is not None and node.get_node("virtio")["local-mac-address"].value == bytes.fromhex("525400aabbcc")  # type: ignore[union-attr]
    assert _files(tmp_path) == _describe(vm, tmp_path / "fresh")


def test_add_errors_change_nothing(vm_factory: Callable[[list[str]], VM], tmp_path: Path) -> None:
    vm = vm_factory([*Q35, "-device", "pcie-root-port,id=rp1,chassis=1", "-device", "virtio-net-pci,bus=rp1,id=c0",
                     "-device", "qemu-xhci,id=xhci"])
    before = _describe(vm, tmp_path)
    stamps = [os.stat(tmp_path / n).st_mtime_ns for n in ("vm.dtb", "vm.backend.dtbo")]
    cases = [
        # the root bus of q35 takes no hot-plugged device: QEMU's own refusal, and why that bus
        ("virtio-net-pci", "QEMU refused device_add: Bus 'pcie.0' does not support hotplugging (no bus= given: "
                           "QEMU's choice for virtio-net-pci is the first PCI bus, pcie.0"),
        ("virtio-net-pci,bus=rp1,addr=0", "bus rp1: PCI slot 00 function 0 is in use by virtio-net-pci (id c0)"),
        # QEMU itself would put it at 01.0 (it skips this check for its own choice), where the guest
        # does not look, and refuses 01.0 when it is given: dtvm refuses and says why
        ("virtio-net-pci,bus=rp1", "bus rp1: the PCIe port's one slot (00.0) is taken by virtio-net-pci (id c0)"),
        ("virtio-net-pci,bus=rp1,addr=0.1", "bus rp1: the PCIe port's one slot (00.0) is taken"),
        ("nonesuch,bus=rp1", "unknown device type 'nonesuch'"),
        ("usb-tablet,bus=rp1", "usb-tablet cannot go on bus 'rp1'"),
        ("usb-tablet,bus=xhci.0,port=9", "bus xhci.0: has no USB port 9"),
        ("ide-hd,bus=ide.0", "ide-hd is an IDE device: dtvm hotplug assigns addresses on PCI, USB, SCSI"),
        ("usb-kbd,id=c0", "QEMU refused device_add: Duplicate device ID 'c0'"),
        ("virtio-net-pci,bus=rp1,help", "asks QEMU for help"),
    ]
    for device, message in cases:
        res = _hotplug(vm, "add", device, files=tmp_path)
        assert res.returncode == 1, (device, res.stdout)
        assert res.stderr.startswith("dtvm hotplug: ") and message in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and res.stdout == ""
    assert _files(tmp_path) == before
    assert [os.stat(tmp_path / n).st_mtime_ns for n in ("vm.dtb", "vm.backend.dtbo")] == stamps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vm.backend.dtbo", "vm.dtb"]
    # an output that cannot be written is refused before QEMU is asked anything
    res = _hotplug(vm, "add", "e1000,bus=rp1,addr=1", files=tmp_path / "missing")
    assert res.returncode == 1 and "no such directory" in res.stderr
    assert _describe(vm, tmp_path / "after") == before  # QEMU has nothing new either


# ----------------------------------------------------------------------------------------------- del


def test_del_native_pcie_completes(vm_factory: Callable[[list[str]], VM], tmp_path: Path) -> None:
    vm = vm_factory([*VIRT, "-device", "pcie-root-port,id=rp1,chassis=1", "-device", "pcie-root-port,id=rp2,chassis=2"])
    assert _hotplug(vm, "add", "virtio-net-pci,bus=rp1,id=n1", files=tmp_path).returncode == 0
    assert _hotplug(vm, "add", "virtio-net-pci,bus=rp2,id=n2", files=tmp_path).returncode == 0
    assert _backend_fragment(_files(tmp_path)[1], "n1") is not None
    res = _hotplug(vm, "del", "n1", files=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("deleted n1 (virtio-net-pci at /")
    assert _backend_fragment(_files(tmp_path)[1], "n1") is None
    assert _backend_fragment(_files(tmp_path)[1], "n2") is not None
    assert _files(tmp_path) == _describe(vm, tmp_path / "fresh")
    _no_temp_files(tmp_path)
    res = _hotplug(vm, "del", "n1", files=tmp_path)
    assert res.returncode == 1 and "QEMU refused device_del n1: Device 'n1' not found" in res.stderr


def test_del_acpi_stays_pending_and_marked(vm_factory: Callable[[list[str]], VM], tmp_path: Path) -> None:
    from dtvm.qemu.hotplug import Outputs, watch

    vm = vm_factory([*Q35, "-device", "pcie-root-port,id=rp1,chassis=1", "-device", "pcie-root-port,id=rp2,chassis=2"])
    assert _hotplug(vm, "add", "virtio-net-pci,bus=rp1,id=n1", files=tmp_path).returncode == 0
    guest_before = _files(tmp_path)[0]
    res = _hotplug(vm, "del", "n1", "--wait", "0.5", files=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "unplug of n1 (virtio-net-pci at /q35-pcihost#0/pci:01.0/pci:00.0) pending after 0.5 s" in res.stdout
    guest, backend = _files(tmp_path)
    assert guest == guest_before  # the device is still there for the guest
    _, over = _backend_fragment(backend, "n1")
    assert over.get_property("qemu,unplug-pending") is not None
    assert _key(vm, "n1") == "/q35-pcihost#0/pci:01.0/pci:00.0"
    # asked again: QEMU says "already in the process of unplug"; that is pending, not an error
    res = _hotplug(vm, "del", "n1", files=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "already pending (asked before)" in res.stdout and res.stderr == ""
    assert _files(tmp_path)[1] == backend
    # another change rewrites the files and carries the mark over
    assert _hotplug(vm, "add", "e1000,bus=rp2,id=e1", files=tmp_path).returncode == 0
    _, over = _backend_fragment(_files(tmp_path)[1], "n1")
    assert over.get_property("qemu,unplug-pending") is not None
    # the rebuild keeps the device (the source has it until its guest lets go) and says so
    rebuilt = _dtvm("dtb2qemu", str(tmp_path / "vm.dtb"), "-b", str(tmp_path / "vm.backend.dtbo"), "--no-check")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "virtio-net-pci,id=n1," in rebuilt.stdout
    pending = [ln for ln in rebuilt.stderr.splitlines() if "unplug was pending" in ln]
    assert len(pending) == 1 and pending[0].startswith("dtvm dtb2qemu: /"), rebuilt.stderr
    # without -o/-b nothing is written, and the mark cannot be kept
    assert "pending" in _hotplug(vm, "del", "n1").stdout
    # system_reset lets QEMU finish the unplug; the next rewrite drops device and mark
    _qmp(vm, [("system_reset", {})])
    assert watch(f"unix:{vm.sock}", Outputs.from_options(str(tmp_path / "vm.dtb"), None), max_rounds=1).startswith("stopped")
    assert _backend_fragment(_files(tmp_path)[1], "n1") is None
    assert _files(tmp_path) == _describe(vm, tmp_path / "fresh")


def test_del_usb_scsi_virtio_serial_complete(vm_factory: Callable[[list[str]], VM], tmp_path: Path) -> None:
    vm = vm_factory([*TWINS["q35-scsi"][0], "-device", "qemu-xhci", "-device", "usb-tablet,id=t0",
                     "-device", "virtio-serial-pci", "-chardev", "null,id=c0", "-device", "virtconsole,chardev=c0,id=s0"])
    _qmp(vm, [("device_add", {"driver": "scsi-hd", "drive": "nd2", "id": "d2"})])
    for ident in ("t0", "d2", "s0"):
        res = _hotplug(vm, "del", ident, files=tmp_path)
        assert res.returncode == 0 and res.stdout.startswith(f"deleted {ident} ("), res.stderr
    assert _files(tmp_path) == _describe(vm, tmp_path / "fresh")


# --------------------------------------------------------------------------------------------- watch


def _connect(path: Path) -> QEMUMonitorProtocol:
    deadline = time.monotonic() + 10
    while True:
        mon = QEMUMonitorProtocol(str(path))
        try:
            mon.connect()
            return mon
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _until(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[Callable[[VM], subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(vm: VM) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "dtvm", "hotplug", "--qmp", f"unix:{vm.sock}",
                                 "-o", str(tmp_path / "vm.dtb"), "watch", "--interval", "0.3"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _has_id(where: Path, ident: str) -> bool:
    try:
        return _backend_fragment((where / "vm.backend.dtbo").read_bytes(), ident) is not None
    except (OSError, Exception):
        return False


def test_watch_follows_another_client(vm_factory: Callable[[list[str]], VM], watcher: Any, tmp_path: Path) -> None:
    """QEMU serves one client per QMP socket: dtvm watches on one, the test acts on a second."""
    other = tmp_path / "other.sock"
    vm = vm_factory([*Q35, "-device", "qemu-xhci,id=xhci", "-device", "usb-tablet,id=t0",
                     "-qmp", f"unix:{other},server=on,wait=off"])
    proc = watcher(vm)
    _until(lambda: _has_id(tmp_path, "t0"), "the first description")
    mon = _connect(other)
    try:
        mon.cmd("device_del", id="t0")          # completes at once: DEVICE_DELETED reaches dtvm too
        _until(lambda: not _has_id(tmp_path, "t0"), "t0 to leave the description")
        mon.cmd("device_add", driver="usb-kbd", id="k1")   # no event in 7.2: the periodic read finds it
        _until(lambda: _has_id(tmp_path, "k1"), "k1 to join the description")
    finally:
        mon.close()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "went away: /q35-pcihost#0/pci:01.0/usb:1 usb-tablet id t0" in out
    # QEMU's own choice after an unplug: the freed port 1 went to the end of its free list, so k1
    # is on port 2 (dtvm, choosing from the description alone, would say 1: see dtvm.qemu.assign)
    assert "appeared: /q35-pcihost#0/pci:01.0/usb:2 usb-kbd id k1" in out, out
    assert err.strip().splitlines()[-1] == "stopped watching: interrupted"
    assert _files(tmp_path) == _describe(vm, tmp_path / "fresh")
    _no_temp_files(tmp_path)


def test_watch_stops_when_qemu_goes_away(vm_factory: Callable[[list[str]], VM], watcher: Any, tmp_path: Path) -> None:
    vm = vm_factory([*Q35, "-device", "qemu-xhci,id=xhci"])
    proc = watcher(vm)
    _until(lambda: _has_id(tmp_path, "xhci"), "the first description")
    written = _files(tmp_path)
    vm.proc.kill()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped watching: QEMU went away" in err
    assert _files(tmp_path) == written


def test_watch_needs_files_and_connects_once(vm_factory: Callable[[list[str]], VM]) -> None:
    vm = vm_factory([*Q35])
    res = _hotplug(vm, "watch")
    assert res.returncode == 2 and "watch needs -o and/or -b" in res.stderr
    mon = vm.qmp()  # QEMU now serves this client only: dtvm waits for its greeting, then gives up
    try:
        res = _dtvm("hotplug", "--qmp", f"unix:{vm.sock}", "--timeout", "0.5", "add", "e1000")
    finally:
        mon.close()
    assert res.returncode == 1 and "no QMP greeting within 0.5 s" in res.stderr


def test_del_by_node_path(vm_factory: Callable[[list[str]], VM], tmp_path: Path) -> None:
    """The node path ``show --paths`` prints (and ``backend``/``check`` take) unplugs the device,
    one with an id and one without (QEMU is asked by id, or by QOM path); a machine-made device or
    a path that describes no device is refused in one line."""
    vm = vm_factory([*VIRT, "-device", "pcie-root-port,id=rp1,chassis=1", "-device", "pcie-root-port,id=rp2,chassis=2"])
    assert _hotplug(vm, "add", "virtio-net-pci,bus=rp1,id=n1", files=tmp_path).returncode == 0
    _qmp(vm, [("device_add", {"driver": "virtio-rng-pci", "bus": "rp2"})])  # no id
    shown = _dtvm("show", "--paths", "--no-color", str(tmp_path / "vm.dtb"))
    assert shown.returncode == 0, shown.stderr
    assert _hotplug(vm, "add", "virtio-net-pci,bus=rp2", files=tmp_path).returncode == 1  # rp2 is taken

    def node_of(driver: str) -> str:
        desc = _describe(vm, tmp_path / "now")
        text = _dtvm("show", "--paths", "--no-color", str(tmp_path / "now" / "vm.dtb")).stdout
        assert desc
        lines = [ln for ln in text.splitlines() if f" {driver} " in f" {ln} "]
        assert len(lines) == 1, text
        return lines[0].rsplit("  ", 1)[-1]

    for driver in ("virtio-net-pci", "virtio-rng-pci"):
        node = node_of(driver)
        res = _hotplug(vm, "del", node, files=tmp_path)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("deleted "), res.stdout
        assert f" {driver} " not in _dtvm("show", "--no-color", str(tmp_path / "vm.dtb")).stdout
    assert _files(tmp_path) == _describe(vm, tmp_path / "fresh")
    for node, message in (("/pl011@9000000", "was made by the machine"), ("/nowhere@1", "no device of this VM")):
        res = _hotplug(vm, "del", node, files=tmp_path)
        assert res.returncode == 1 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
