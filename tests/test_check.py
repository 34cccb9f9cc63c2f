"""``dtvm check``: the dependency rules a VM description must satisfy, against QEMU 7.2.

Oracles, all from the installed QEMU (tests skip, with the reason, when a binary is missing):

- descriptions QEMU built (``dtvm qemu2dtb`` of real command lines on q35, pc, aarch64/arm and
  riscv64 virt and pseries, and of running VMs with hot-plugged devices) check clean;
- edited variants of a rich q35 description (two functions in one slot, function 1 without
  function 0, a root port behind a PCI bridge, a hot-plug mark on pcie.0, a dangling netdev, ...)
  give exactly the expected findings; where QEMU has a word on it, ``dtb2qemu`` (which starts
  its result once, paused) must fail on the edited description and succeed on the original, and
  where dtvm's rule is stricter than QEMU (PCI Express topology, function 0), QEMU is shown to
  accept it, so the README says so honestly;
- the bus table (``dtvm/qemu/data/buses.yaml``) equals QEMU's ``-device help`` for the
  user-creatable devices and ``info qtree`` of running machines for buses and machine-made
  devices, and every bus kind's ``hotplug`` flag equals what ``device_add`` onto such a bus does.

Run ``python -m tests.test_check`` to print the ``devices:`` section from the installed QEMU.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dtvm.dt.dtb import read_dtb, write_dtb
from dtvm.dt.tree import DeviceTree, Node, Property
from dtvm.vm.check import RULES, CheckDataError, Finding, bus_table, check, load_bus_table

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures" / "check"
BINARIES = ["qemu-system-x86_64", "qemu-system-aarch64", "qemu-system-arm", "qemu-system-riscv64", "qemu-system-ppc64"]

Q35 = ["qemu-system-x86_64", "-M", "pc-q35-7.2"]
PC = ["qemu-system-x86_64", "-M", "pc-i440fx-7.2"]
VIRT64 = ["qemu-system-aarch64", "-M", "virt-7.2"]
VIRT32 = ["qemu-system-arm", "-M", "virt-7.2"]
RISCV = ["qemu-system-riscv64", "-M", "virt"]
PSERIES = ["qemu-system-ppc64", "-M", "pseries-7.2"]
NULLDRIVES = ["-blockdev", "driver=null-co,node-name=disk0", "-blockdev", "driver=null-co,node-name=disk1"]

#: the rich q35 VM the edits start from: every bus kind of q35 with a device on it
BASE = [*Q35, "-nodefaults", *NULLDRIVES, "-netdev", "user,id=n0", "-chardev", "null,id=c0",
        "-device", "pcie-root-port,id=rp1,chassis=1,addr=3.0",
        "-device", "virtio-net-pci,bus=rp1,netdev=n0,mac=52:54:00:00:0c:01",
        "-device", "pci-bridge,id=br,chassis_nr=2,addr=4.0",
        "-device", "e1000,bus=br,addr=1.0,mac=52:54:00:00:0c:02",
        "-device", "virtio-rng-pci,addr=5.0",
        "-device", "virtio-blk-pci,drive=disk0,addr=6.0",
        "-device", "virtio-scsi-pci,id=vs,addr=7.0",
        "-device", "scsi-hd,drive=disk1,bus=vs.0,scsi-id=1,lun=0", "-device", "scsi-cd,bus=vs.0,scsi-id=2,lun=0",
        "-device", "qemu-xhci,id=xhci,addr=8.0",
        "-device", "usb-tablet,bus=xhci.0,port=1", "-device", "usb-kbd,bus=xhci.0,port=2",
        "-device", "virtio-serial-pci,id=vser,addr=9.0", "-device", "virtconsole,chardev=c0,bus=vser.0,nr=1",
        "-device", "virtio-balloon-pci,addr=a.0,multifunction=on", "-device", "virtio-rng-pci,addr=a.1",
        "-device", "ide-cd,bus=ide.0", "-device", "isa-serial,iobase=0x2f8"]

#: name -> command line; QEMU built each, so each description must check clean
CLEAN: dict[str, list[str]] = {
    "q35-defaults": Q35,
    "q35-base": BASE,
    "q35-usb-option": [*Q35[:2], "pc-q35-7.2,usb=on", "-nodefaults", "-device", "usb-mouse"],
    "q35-companions": [*Q35, "-nodefaults", "-device", "ich9-usb-ehci1,id=ehci,addr=1d.7,multifunction=on",
                       "-device", "ich9-usb-uhci1,masterbus=ehci.0,firstport=0,addr=1d.0,multifunction=on",
                       "-device", "ich9-usb-uhci2,masterbus=ehci.0,firstport=2,addr=1d.1,multifunction=on"],
    "q35-topology": [*Q35, "-nodefaults", *NULLDRIVES, "-device", "pcie-root-port,id=rp,chassis=1",
                     "-device", "x3130-upstream,id=up,bus=rp", "-device", "xio3130-downstream,id=dn,bus=up,chassis=2",
                     "-device", "virtio-rng-pci,bus=dn", "-device", "pcie-root-port,id=rp2,chassis=3,addr=6.0",
                     "-device", "pcie-pci-bridge,id=pb,bus=rp2", "-device", "pci-bridge,id=br,chassis_nr=4,bus=pb,addr=2",
                     "-device", "lsi53c895a,id=lsi,bus=br,addr=3", "-device", "scsi-hd,drive=disk0,bus=lsi.0,scsi-id=4",
                     "-device", "nvme,drive=disk1,serial=NV1", "-device", "nec-usb-xhci,id=xhci",
                     "-device", "usb-hub,bus=xhci.0,port=1", "-device", "usb-kbd,bus=xhci.0,port=1.2",
                     "-device", "ich9-ahci,id=ahci2", "-device", "ide-cd,bus=ahci2.3"],
    "pc-defaults": PC,
    "pc-devices": [*PC, "-nodefaults", *NULLDRIVES, "-device", "ide-hd,drive=disk0,bus=ide.0,unit=1",
                   "-device", "ide-cd,bus=ide.1,unit=0", "-device", "pci-bridge,id=br,chassis_nr=1",
                   "-device", "e1000,bus=br,addr=4,mac=52:54:00:00:03:01", "-device", "piix3-usb-uhci,id=uhci",
                   "-device", "usb-tablet,bus=uhci.0", "-device", "isa-serial,iobase=0x3e8",
                   "-device", "virtio-scsi-pci,id=vs", "-device", "scsi-hd,drive=disk1,bus=vs.0,lun=3"],
    "aarch64-virt-defaults": VIRT64,
    "aarch64-virt-devices": [*VIRT64[:2], "virt-7.2,gic-version=3", "-cpu", "cortex-a57", "-nodefaults",
                             *NULLDRIVES, "-device", "virtio-blk-device,drive=disk0", "-device", "virtio-rng-device",
                             "-device", "pcie-root-port,id=rp,chassis=1", "-device", "virtio-blk-pci,drive=disk1,bus=rp",
                             "-device", "qemu-xhci", "-device", "usb-kbd"],
    "arm-virt-serial": [*VIRT32, "-nodefaults", "-chardev", "null,id=c0", "-device", "virtio-serial-device",
                        "-device", "virtconsole,chardev=c0"],
    "riscv64-virt-defaults": RISCV,
    "pseries-defaults": PSERIES,
    "pseries-devices": [*PSERIES, "-nodefaults", *NULLDRIVES, "-chardev", "null,id=c0",
                        "-device", "spapr-vty,chardev=c0", "-device", "spapr-vscsi,id=vscsi",
                        "-device", "scsi-hd,drive=disk0,bus=vscsi.0,scsi-id=3", "-device", "virtio-net-pci",
                        "-device", "virtio-scsi-pci,id=vs", "-device", "scsi-hd,drive=disk1,bus=vs.0,scsi-id=0,lun=2"],
}


def _have(binary: str) -> bool:
    return shutil.which(binary) is not None


def _needs(binary: str) -> None:
    if not _have(binary):
        pytest.skip(f"{binary} is not installed (its oracle cannot run)")


def _dtvm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", *args], capture_output=True, text=True, timeout=120)


class Described:
    """``dtvm qemu2dtb -o`` once per command line (module-wide cache): (guest, overlay) bytes."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.done: dict[tuple[str, ...], tuple[bytes, bytes]] = {}

    def __call__(self, argv: list[str]) -> tuple[bytes, bytes]:
        key = tuple(argv)
        if key not in self.done:
            _needs(argv[0])
            out = self.where / f"vm{len(self.done)}.dtb"
            res = _dtvm("qemu2dtb", "-o", str(out), "--", *argv)
            assert res.returncode == 0, res.stderr
            self.done[key] = (out.read_bytes(), out.with_suffix(".backend.dtbo").read_bytes())
        return self.done[key]


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory) -> Described:
    return Described(tmp_path_factory.mktemp("described"))


def _findings(guest: bytes, backend: bytes | None) -> set[tuple[str, str, str]]:
    found = check(read_dtb(guest), read_dtb(backend) if backend is not None else None)
    return {(f.path, f.rule, f.severity) for f in found}


def _write(tmp: Path, name: str, guest: bytes, backend: bytes | None) -> tuple[Path, Path | None]:
    gpath = tmp / f"{name}.dtb"
    gpath.write_bytes(guest)
    bpath = None
    if backend is not None:
        bpath = tmp / f"{name}.backend.dtbo"
        bpath.write_bytes(backend)
    return gpath, bpath


def _cli_check(tmp: Path, guest: bytes, backend: bytes | None, *extra: str) -> subprocess.CompletedProcess[str]:
    gpath, bpath = _write(tmp, "c", guest, backend)
    return _dtvm("check", str(gpath), *(["-b", str(bpath)] if bpath else []), *extra)


# -- the descriptions QEMU built check clean ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_descriptions_qemu_built_check_clean(name: str, described: Described, tmp_path: Path) -> None:
    guest, backend = described(CLEAN[name])
    res = _cli_check(tmp_path, guest, backend, "--format", "json")
    doc = json.loads(res.stdout)
    assert res.returncode == 0 and doc["findings"] == [] and doc["backends_checked"], res.stdout + res.stderr
    assert res.stderr == ""


def _hotplugged_description(vm_factory: Any, argv: list[str], adds: list[dict[str, Any]], tmp: Path) -> tuple[bytes, bytes]:
    vm = vm_factory(argv)
    mon = vm.qmp()
    try:
        for args in adds:
            mon.cmd("device_add", **args)
    finally:
        mon.close()
    out = tmp / "hot.dtb"
    res = _dtvm("qemu2dtb", "-o", str(out), "--qmp", f"unix:{vm.sock}")
    assert res.returncode == 0, res.stderr
    return out.read_bytes(), out.with_suffix(".backend.dtbo").read_bytes()


HOTPLUG_CASES = {
    "q35": ([*Q35, "-nodefaults", "-device", "pcie-root-port,id=rp1,chassis=1", "-device", "pci-bridge,id=br,chassis_nr=2",
             "-device", "virtio-scsi-pci,id=vs", "-device", "qemu-xhci,id=xhci", "-device", "virtio-serial-pci,id=vser",
             "-device", "pcie-root-port,id=rp2,chassis=3", "-device", "x3130-upstream,id=up,bus=rp2"],
            [{"driver": "virtio-net-pci", "bus": "rp1", "id": "hot0", "mac": "52:54:00:00:09:01"},
             {"driver": "virtio-rng-pci", "bus": "br", "addr": "3", "id": "hot1"},
             {"driver": "scsi-cd", "bus": "vs.0", "id": "hot2"},
             {"driver": "usb-kbd", "bus": "xhci.0", "id": "hot3"},
             {"driver": "virtconsole", "bus": "vser.0", "id": "hot4"},
             {"driver": "xio3130-downstream", "bus": "up", "chassis": "9", "id": "hot5"}]),
    "pc": ([*PC, "-nodefaults"], [{"driver": "virtio-rng-pci", "bus": "pci.0", "addr": "9", "id": "hot0"}]),
    "aarch64-virt": ([*VIRT64, "-nodefaults", "-device", "pcie-root-port,id=rp,chassis=1"],
                     [{"driver": "virtio-rng-pci", "bus": "rp", "id": "hot0"}]),
}


@pytest.mark.parametrize("name", sorted(HOTPLUG_CASES))
def test_hotplugged_descriptions_check_clean(name: str, vm_factory: Any, tmp_path: Path) -> None:
    """Running VMs with devices added by device_add: QEMU took each, so each mark is allowed."""
    argv, adds = HOTPLUG_CASES[name]
    guest, backend = _hotplugged_description(vm_factory, argv, adds, tmp_path)
    marked = [n for n in read_dtb(backend).root.walk() if n.get_property("qemu,hotplugged") is not None]
    assert len(marked) == len(adds)  # not vacuous: the overlay carries every mark
    assert _findings(guest, backend) == set()


# -- edits: exactly the expected findings -------------------------------------------------------


def _device_nodes(dt: DeviceTree, driver: str) -> list[Node]:
    return [n for n in dt.root.walk() if n.get_property("qemu,driver") is not None
            and n["qemu,driver"].as_string() == driver]


def _one(dt: DeviceTree, driver: str, index: int = 0) -> Node:
    return _device_nodes(dt, driver)[index]


def _pci_reg(slot: int, fn: int) -> bytes:
    return struct.pack(">5I", (slot << 11) | (fn << 8), 0, 0, 0, 0)


def _clone(node: Node, name: str | None = None) -> Node:
    """A deep copy of ``node`` (unattached), renamed: two children of one name are not a tree."""
    copy = Node(name if name is not None else node.name)
    for prop in node.live_props():
        copy.add_property(Property(prop.name, prop.value))
    for child in node.live_children():
        copy.add_child(_clone(child))
    return copy


def _detach(node: Node) -> Node:
    assert node.parent is not None
    node.parent.children.remove(node)
    node.parent = None
    return node


def _path(node: Node) -> str:
    parts = []
    cur: Node | None = node
    while cur is not None and cur.parent is not None:
        parts.append(cur.name)
        cur = cur.parent
    return "/" + "/".join(reversed(parts))


def _fragment(backend: DeviceTree, target: str) -> Node:
    """The overlay's ``__overlay__`` for ``target``, added when there is none."""
    for frag in backend.root.live_children():
        prop = frag.get_property("target-path")
        if prop is not None and prop.as_string() == target:
            over = frag.get_child("__overlay__")
            assert over is not None
            return over
    frag = backend.root.add_child(Node(f"fragment@{len(backend.root.children) + 100}"))
    frag.set_property("target-path", target.encode() + b"\0")
    return frag.add_child(Node("__overlay__"))


def _retarget(backend: DeviceTree, old: str, new: str) -> None:
    """Move the overlay's fragments with a moved subtree, so that only the move itself is judged."""
    for frag in backend.root.live_children():
        prop = frag.get_property("target-path")
        if prop is not None:
            target = prop.as_string()
            if target == old or target.startswith(old + "/"):
                frag.set_property("target-path", (new + target[len(old):]).encode() + b"\0")


Edit = Callable[[DeviceTree, DeviceTree], set[tuple[str, str, str]]]


def _pci_duplicate(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    rng = _one(g, "virtio-rng-pci")
    assert rng.parent is not None
    copy = rng.parent.add_child(_clone(rng, "rng@5"))
    return {(_path(copy), "address-conflict", "error")}


def _fn1_without_fn0(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    rng = _one(g, "virtio-rng-pci")
    rng.set_property("reg", _pci_reg(5, 1))
    rng.name = "pci-device@5,1"
    _retarget(b, "/pcie/pci-device@5", _path(rng))
    return {(_path(rng), "multifunction", "error")}


def _fn0_single_function(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    balloon = _one(g, "virtio-balloon-pci")
    balloon.delete_property("qemu,multifunction")
    return {(_path(balloon), "multifunction", "error")}


def _second_function_on_single(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    rng = _one(g, "virtio-rng-pci")
    assert rng.parent is not None
    copy = _clone(rng, "rng@5,1")
    copy.set_property("reg", _pci_reg(5, 1))
    rng.parent.add_child(copy)
    return {(_path(rng), "multifunction", "error")}


def _root_port_behind_bridge(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    port = _one(g, "pcie-root-port")
    bridge = _one(g, "pci-bridge")
    old = _path(port)
    _detach(port)
    port.name = "pcie@2"
    port.set_property("reg", _pci_reg(2, 0))
    bridge.add_child(port)
    _retarget(b, old, _path(port))
    return {(_path(port), "bus-kind", "error")}


def _root_port_on_root_port(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    port = _one(g, "pcie-root-port")
    copy = _clone(port, "pcie@0")
    copy.set_property("reg", _pci_reg(0, 0))
    for child in list(copy.children):
        _detach(child)
    copy.set_property("qemu,chassis", b"7\0")
    _detach(_one(g, "virtio-net-pci"))
    _retarget(b, _path(port) + "/ethernet@0", "/gone")
    for frag in list(b.root.live_children()):
        prop = frag.get_property("target-path")
        if prop is not None and prop.as_string().startswith("/gone"):
            b.root.children.remove(frag)
    port.add_child(copy)
    return {(_path(copy), "bus-kind", "error")}


def _pci_function_at_root(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    rng = _detach(_one(g, "virtio-rng-pci"))
    rng.name = "rng"
    g.root.add_child(rng)
    _retarget(b, "/pcie/pci-device@5", "/rng")
    return {("/rng", "bus-kind", "error")}


def _ide_on_scsi(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    cd = _detach(_one(g, "ide-cd"))
    scsi = _one(g, "virtio-scsi-device")
    cd.name = "cdrom@0,3,0"
    cd.set_property("reg", struct.pack(">3I", 0, 3, 0))
    scsi.add_child(cd)
    return {(_path(cd), "bus-kind", "error")}


def _no_reg(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    rng = _one(g, "virtio-rng-pci")
    rng.delete_property("reg")
    return {(_path(rng), "address-form", "error")}


def _duplicate(driver: str, name: str) -> Edit:
    def edit(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
        node = _one(g, driver)
        assert node.parent is not None
        copy = node.parent.add_child(_clone(node, name))
        return {(_path(copy), "address-conflict", "error")}
    edit.__name__ = f"duplicate_{driver}"
    return edit


def _two_virtio_devices(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    dev = _one(g, "virtio-rng-device")
    assert dev.parent is not None
    copy = dev.parent.add_child(_clone(dev, "virtio@1"))
    return {(_path(copy), "address-conflict", "error")}


def _ide_unit_1_on_ahci(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    cd = _one(g, "ide-cd")
    cd.set_property("reg", struct.pack(">2I", 0, 1))
    cd.name = "cdrom@0,1"
    return {(_path(cd), "address-range", "error")}


def _slot_1_behind_port(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    nic = _one(g, "virtio-net-pci")
    old = _path(nic)
    nic.set_property("reg", _pci_reg(1, 0))
    nic.name = "ethernet@1"
    _retarget(b, old, _path(nic))
    return {(_path(nic), "address-range", "error")}


def _hotplug_on_root_bus(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    rng = _one(g, "virtio-rng-pci")
    _fragment(b, _path(rng)).set_property("qemu,hotplugged", b"")
    return {(_path(rng), "hotplug-bus", "error")}


def _hotplug_behind_port(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    _fragment(b, _path(_one(g, "virtio-net-pci"))).set_property("qemu,hotplugged", b"")
    _fragment(b, _path(_one(g, "e1000"))).set_property("qemu,hotplugged", b"")
    _fragment(b, _path(_one(g, "usb-kbd"))).set_property("qemu,hotplugged", b"")
    return set()


def _hotplug_port_off(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    _one(g, "pcie-root-port").set_property("qemu,hotplug", b"off\0")
    nic = _one(g, "virtio-net-pci")
    _fragment(b, _path(nic)).set_property("qemu,hotplugged", b"")
    return {(_path(nic), "hotplug-bus", "error")}


def _hotplug_on_ide(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    cd = _one(g, "ide-cd")
    _fragment(b, _path(cd)).set_property("qemu,hotplugged", b"")
    return {(_path(cd), "hotplug-bus", "error")}


def _netdev_missing(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    nic = _one(g, "virtio-net-device")
    _fragment(b, _path(nic)).set_property("qemu,netdev", b"nosuch\0")
    return {(_path(nic), "backend-ref", "error")}


def _chardev_missing(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    con = _one(g, "virtconsole")
    _fragment(b, _path(con)).set_property("qemu,chardev", b"c9\0")
    return {(_path(con), "backend-ref", "error")}


def _drive_dropped(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    blk = _one(g, "virtio-blk-device")
    _fragment(b, _path(blk)).delete_property("qemu,drive")
    return {(_path(_one(g, "virtio-blk-pci")), "backend-ref", "error")}


def _drive_without_medium(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    for node in b.root.walk():
        if node.get_property("id") is not None and node["id"].as_string() == "disk1":
            node.delete_property("drv")
    return {(_path(_one(g, "scsi-hd")), "backend-ref", "error")}


def _device_moved_overlay_not(g: DeviceTree, b: DeviceTree) -> set[tuple[str, str, str]]:
    """The guest tree moves the disk to slot 0x0b; the overlay still targets the old path."""
    blk = _one(g, "virtio-blk-pci")
    old = _path(blk) + "/virtio"
    blk.name = "scsi@b"
    blk.set_property("reg", _pci_reg(11, 0))
    frag = next(f for f in b.root.live_children() if f.get_property("target-path") is not None
                and f["target-path"].as_string() == old)
    return {(_path(blk), "backend-ref", "error"), (_path(frag), "backend-target", "error")}


#: name -> (edit, what QEMU says of the edited description: its words when it refuses it, "accepts",
#: or None when not asked (back-end rules are dtvm's own; hot-plug: test_hotplug_flags_match_qemu))
EDITS: dict[str, tuple[Edit, str | None]] = {
    "pci-two-functions-one-slot": (_pci_duplicate, "function 0 not available"),
    "pci-function-1-without-0": (_fn1_without_fn0, "accepts"),
    "pci-function-0-single": (_fn0_single_function, "single function device can't be populated"),
    "pci-second-function-on-single": (_second_function_on_single, "single function device can't be populated"),
    "root-port-behind-pci-bridge": (_root_port_behind_bridge, "accepts"),
    "root-port-on-root-port": (_root_port_on_root_port, "accepts"),
    "pci-function-at-root": (_pci_function_at_root, None),
    "ide-cd-on-scsi": (_ide_on_scsi, "can't go on SCSI bus"),
    "pci-function-without-reg": (_no_reg, None),
    "scsi-same-id-lun": (_duplicate("scsi-cd", "cd@0,2,0"), "lun already used"),
    "usb-same-port": (_duplicate("usb-kbd", "kbd@2"), "(in use?)"),
    "virtio-serial-same-nr": (_duplicate("virtconsole", "port@1"), "A port already exists at id 1"),
    "ide-same-unit": (_duplicate("ide-cd", "cd@0,0"), "IDE unit 0 is in use"),
    "isa-same-iobase": (_duplicate("isa-serial", "uart@i2f8"), "accepts"),
    "virtio-transport-two-devices": (_two_virtio_devices, None),
    "ide-unit-1-on-ahci-port": (_ide_unit_1_on_ahci, "Can't create IDE unit 1"),
    "slot-1-behind-root-port": (_slot_1_behind_port, "accepts"),
    "hotplugged-on-pcie-root": (_hotplug_on_root_bus, None),
    "hotplugged-behind-ports": (_hotplug_behind_port, None),
    "hotplugged-port-hotplug-off": (_hotplug_port_off, None),
    "hotplugged-on-ide": (_hotplug_on_ide, None),
    "netdev-missing": (_netdev_missing, None),
    "chardev-missing": (_chardev_missing, None),
    "drive-dropped": (_drive_dropped, None),
    "drive-without-medium": (_drive_without_medium, None),
    "device-moved-overlay-not": (_device_moved_overlay_not, None),
}


def _edited(described: Described, edit: Edit) -> tuple[bytes, bytes, set[tuple[str, str, str]]]:
    guest, backend = described(BASE)
    g, b = read_dtb(guest), read_dtb(backend)
    expected = edit(g, b)
    return write_dtb(g), write_dtb(b), expected


@pytest.mark.parametrize("name", sorted(EDITS))
def test_edits_give_exactly_the_expected_findings(name: str, described: Described) -> None:
    guest, backend, expected = _edited(described, EDITS[name][0])
    assert _findings(guest, backend) == expected


@pytest.fixture(scope="module")
def base_rebuilds(described: Described, tmp_path_factory: pytest.TempPathFactory) -> bool:
    """The original description rebuilds: dtb2qemu (which starts its result once) succeeds."""
    guest, backend = described(BASE)
    gpath, bpath = _write(tmp_path_factory.mktemp("base"), "base", guest, backend)
    assert bpath is not None
    res = _dtvm("dtb2qemu", str(gpath), "-b", str(bpath))
    assert res.returncode == 0, res.stderr
    return True


@pytest.mark.parametrize("name", sorted(n for n, (_, q) in EDITS.items() if q is not None))
def test_qemu_agrees_on_edits(name: str, described: Described, base_rebuilds: bool, tmp_path: Path) -> None:
    """Where QEMU itself refuses an edited description, dtb2qemu fails on it (one line naming a
    node or QEMU's words); where dtvm is stricter than QEMU, QEMU is shown to accept it."""
    edit, qemu = EDITS[name]
    guest, backend, expected = _edited(described, edit)
    assert expected
    gpath, bpath = _write(tmp_path, "edited", guest, backend)
    assert bpath is not None
    res = _dtvm("dtb2qemu", str(gpath), "-b", str(bpath))
    if qemu == "accepts":
        assert res.returncode == 0, res.stderr
    else:
        assert res.returncode != 0 and res.stdout == "", res.stdout
        assert len(res.stderr.strip().splitlines()) == 1 and "QEMU refuses" in res.stderr, res.stderr
        assert qemu is not None and qemu in res.stderr, res.stderr


def test_cli_text_and_exit_status(described: Described, tmp_path: Path) -> None:
    guest, backend, expected = _edited(described, _pci_duplicate)
    res = _cli_check(tmp_path, guest, backend)
    assert res.returncode == 1 and res.stderr == ""
    (path, rule, _), = expected
    assert res.stdout == f"{tmp_path / 'c.dtb'}:{path}: {_message(guest, backend)} [{rule}]\n"
    assert "/pcie/pci-device@5 (virtio-rng-pci)" in res.stdout
    res = _cli_check(tmp_path, guest, backend, "--format", "json")
    doc = json.loads(res.stdout)
    assert res.returncode == 1 and doc["errors"] == 1 and doc["warnings"] == 0
    assert [(f["path"], f["rule"], f["severity"], f["source"]) for f in doc["findings"]] == [(path, rule, "error", "guest")]


def _message(guest: bytes, backend: bytes) -> str:
    (finding,) = check(read_dtb(guest), read_dtb(backend))
    return finding.message


def test_without_backend_says_so(described: Described, tmp_path: Path) -> None:
    """Without -b the back-end rules and hot-plug marks are not checked, and stderr says so."""
    guest, backend, _ = _edited(described, _netdev_missing)
    res = _cli_check(tmp_path, guest, None)
    assert res.returncode == 0 and res.stdout == ""
    assert res.stderr.strip().splitlines() == ["dtvm check: no back-end overlay (-b): back-ends not checked, nor hot-plug marks"]
    res = _cli_check(tmp_path, guest, backend)
    assert res.returncode == 1 and "[backend-ref]" in res.stdout and "nosuch" in res.stdout


def test_backend_target_names_the_overlay(described: Described, tmp_path: Path) -> None:
    guest, backend, _ = _edited(described, _device_moved_overlay_not)
    res = _cli_check(tmp_path, guest, backend)
    lines = res.stdout.splitlines()
    assert res.returncode == 1 and len(lines) == 2
    assert lines[0].startswith(f"{tmp_path / 'c.dtb'}:/pcie/scsi@b: ") and lines[0].endswith("[backend-ref]")
    assert lines[1].startswith(f"{tmp_path / 'c.backend.dtbo'}:/fragment@") and lines[1].endswith("[backend-target]")
    assert "/pcie/scsi@6/virtio" in lines[1] and "qemu,drive" in lines[1]


# -- q35's USB companions and pc's root hot-plug switch ---------------------------------------


def test_q35_companions_without_multifunction_warn(described: Described, tmp_path: Path) -> None:
    """A q35 USB companion slot with a function lacking multifunction: a warning (QEMU accepts
    it; q35's own companions have it on every function), exit status 0."""
    guest, backend = described(CLEAN["q35-usb-option"])
    g = read_dtb(guest)
    uhci2 = _one(g, "ich9-usb-uhci2")
    uhci2.delete_property("qemu,multifunction")
    edited = write_dtb(g)
    assert _findings(edited, backend) == {(_path(uhci2), "multifunction-all", "warning")}
    res = _cli_check(tmp_path, edited, backend)
    assert res.returncode == 0 and res.stdout.endswith(": warning: " + res.stdout.split(": warning: ", 1)[1])
    assert "[multifunction-all]" in res.stdout
    gpath, bpath = _write(tmp_path, "usb", edited, backend)
    assert bpath is not None
    assert _dtvm("dtb2qemu", str(gpath), "-b", str(bpath)).returncode == 0  # QEMU accepts it


def test_pc_root_hotplug_switched_off(described: Described) -> None:
    """pc's pci.0 takes hot-plug, unless PIIX4_PM's acpi-root-pci-hotplug is off (QEMU: "Bus
    'pci.0' does not support hotplugging", test_hotplug_flags_match_qemu)."""
    for extra, want in (([], False), (["-global", "PIIX4_PM.acpi-root-pci-hotplug=off"], True)):
        guest, backend = described([*PC, "-nodefaults", *extra, "-device", "virtio-rng-pci,addr=9"])
        g, b = read_dtb(guest), read_dtb(backend)
        rng = _one(g, "virtio-rng-pci")
        _fragment(b, _path(rng)).set_property("qemu,hotplugged", b"")
        expected = {(_path(rng), "hotplug-bus", "error")} if want else set()
        assert _findings(write_dtb(g), write_dtb(b)) == expected


def test_pxb_bridge_takes_no_hotplug(described: Described, vm_factory: Any) -> None:
    """The pci-bridge a pxb makes takes no hot-plug, a pci-bridge behind it does (QEMU 7.2's
    device_add: "Bus 'px' does not support hotplugging" on the first, accepted on the second):
    a device marked hot-plugged on the first is a finding, on the second none."""
    argv = [*PC, "-nodefaults", "-device", "pxb,id=px,bus_nr=32", "-device", "pci-bridge,id=b,bus=px,addr=2,chassis_nr=3"]
    vm = vm_factory(argv)
    mon = vm.qmp()
    try:
        with pytest.raises(Exception, match="does not support hotplugging"):
            mon.cmd("device_add", driver="e1000", bus="px", addr="3", id="e1")
        mon.cmd("device_add", driver="e1000", bus="b", addr="3", id="e2")
    finally:
        mon.close()
        vm.stop()
    guest, backend = described([*argv, "-device", "e1000,bus=px,addr=3", "-device", "rtl8139,bus=b,addr=3"])
    g, b = read_dtb(guest), read_dtb(backend)
    on_made, behind = _one(g, "e1000"), _one(g, "rtl8139")
    _fragment(b, _path(on_made)).set_property("qemu,hotplugged", b"")
    _fragment(b, _path(behind)).set_property("qemu,hotplugged", b"")
    assert _findings(write_dtb(g), write_dtb(b)) == {(_path(on_made), "hotplug-bus", "error")}


# -- unusable input: exit 2, one line ----------------------------------------------------------


def _plain_board(tmp: Path) -> bytes:
    out = tmp / "plain.dtb"
    res = _dtvm("dtc", "-I", "dts", "-O", "dtb", "-o", str(out), str(FIX / "plain-board.dts"))
    assert res.returncode == 0, res.stderr
    return out.read_bytes()


@pytest.mark.parametrize("case", ["missing", "directory", "garbage", "truncated", "overlay-as-guest", "no-machine",
                                  "guest-as-backend", "backend-bad-value", "machine-without-cpus"])
def test_unusable_input_is_one_line_exit_2(case: str, described: Described, tmp_path: Path) -> None:
    guest, backend = described(CLEAN["q35-defaults"])
    gpath, bpath = _write(tmp_path, "vm", guest, backend)
    assert bpath is not None
    args: list[str] = [str(gpath), "-b", str(bpath)]
    if case == "missing":
        args[0] = str(tmp_path / "nosuch.dtb")
    elif case == "directory":
        args[0] = str(tmp_path)
    elif case == "garbage":
        gpath.write_bytes(b"not a blob\n" * 10)
    elif case == "truncated":
        gpath.write_bytes(guest[: len(guest) // 2])
    elif case == "overlay-as-guest":
        args = [str(bpath), "-b", str(gpath)]
    elif case == "no-machine":
        gpath.write_bytes(_plain_board(tmp_path))
    elif case == "guest-as-backend":
        args = [str(gpath), "-b", str(gpath)]
    elif case == "backend-bad-value":
        b = read_dtb(backend)
        next(n for n in b.root.walk() if n.name == "__overlay__" and n.get_property("qemu,chardev") is not None) \
            .set_property("qemu,chardev", struct.pack(">I", 7))
        bpath.write_bytes(write_dtb(b))
    elif case == "machine-without-cpus":
        g = read_dtb(guest)
        machine = g.root.get_node("/qemu")
        assert machine is not None
        machine.delete_property("cpus")
        gpath.write_bytes(write_dtb(g))
    res = _dtvm("check", *args)
    assert res.returncode == 2 and res.stdout == "", res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dtvm check: ") and "Traceback" not in res.stderr, res.stderr
    if case == "backend-bad-value":
        assert str(bpath) in lines[0] and "qemu,chardev" in lines[0]
    if case in ("no-machine", "machine-without-cpus"):
        assert str(gpath) in lines[0] and "/qemu" in lines[0]


def test_moved_nodes_give_findings_never_crashes(described: Described) -> None:
    """Any node moved anywhere (random, seeded): findings or PlanError, nothing else escapes."""
    import random

    from dtvm.vm.readback import ReadbackError as PlanError

    guest, backend = described(BASE)
    rnd = random.Random(7)
    findings = 0
    for i in range(300):
        g = read_dtb(guest)
        nodes = [n for n in g.root.walk() if n.parent is not None]
        for _ in range(rnd.randint(1, 3)):
            node, target = rnd.choice(nodes), rnd.choice(nodes)
            up: Node | None = target
            while up is not None and up is not node:
                up = up.parent
            if up is None:  # not into its own subtree
                _detach(node).name += f"-{i}"
                target.add_child(node)
        try:
            findings += len(check(read_dtb(write_dtb(g)), read_dtb(backend)))
        except PlanError:
            pass
    assert findings > 300


def test_hostile_names_are_escaped(described: Described, tmp_path: Path) -> None:
    """Node names and back-end ids come from anyone: a finding line stays one printable line."""
    guest, backend = described(BASE)
    g, b = read_dtb(guest), read_dtb(backend)
    con = _one(g, "virtconsole")
    _fragment(b, _path(con)).set_property("qemu,chardev", b"evil\x1b[2J\nline\0")
    res = _cli_check(tmp_path, write_dtb(g), write_dtb(b))
    assert res.returncode == 1 and res.stdout.count("\n") == 1 and "\x1b" not in res.stdout
    assert "evil\\x1b[2J\\x0aline" in res.stdout


# -- the bus table is QEMU's ---------------------------------------------------------------------


def _device_help(binary: str) -> dict[str, str]:
    """QEMU's ``-device help``: device type -> the bus type it names."""
    import re

    out = subprocess.run([binary, "-device", "help"], capture_output=True, text=True, timeout=60).stdout
    return {m.group(1): m.group(2) for m in re.finditer(r'^name "([^"]+)", bus ([^,\n]+)', out, re.M)}


def _table_bus_types() -> set[str]:
    return {t for k in bus_table().kinds.values() for t in k.takes}


def test_user_creatable_devices_match_device_help() -> None:
    table = bus_table()
    types = _table_bus_types()
    seen: dict[str, str] = {}
    for binary in BINARIES:
        if not _have(binary):
            continue
        for name, bus in _device_help(binary).items():
            if bus in types:
                assert table.user_creatable.get(name) == bus, (binary, name, bus)
                seen[name] = bus
    if not seen:
        pytest.skip("no qemu-system binary is installed (the oracle cannot run)")
    if all(_have(b) for b in BINARIES):
        assert seen == table.user_creatable  # nothing stale either


QTREE_CONFIGS = [CLEAN["q35-defaults"], CLEAN["q35-base"], CLEAN["q35-topology"], CLEAN["q35-companions"],
                 CLEAN["pc-defaults"], CLEAN["pc-devices"], CLEAN["aarch64-virt-devices"], CLEAN["arm-virt-serial"],
                 CLEAN["riscv64-virt-defaults"], CLEAN["pseries-devices"],
                 [*Q35, "-nodefaults", "-device", "intel-hda,id=hda", "-device", "hda-duplex,bus=hda.0",
                  "-device", "megasas", "-device", "i82801b11-bridge", "-device", "pcie-root-port,id=rp,chassis=1",
                  "-device", "ioh3420,chassis=2,bus=pcie.0"],
                 [*PC, "-nodefaults", "-device", "piix4-usb-uhci", "-device", "usb-ehci", "-device", "isa-fdc"]]


def _walk_buses(bus: Any) -> Iterator[tuple[Any, Any]]:
    stack = [bus]
    while stack:
        cur = stack.pop()
        for dev in cur.devices:
            yield dev, cur
            stack.extend(dev.buses)


@pytest.mark.parametrize("argv", QTREE_CONFIGS, ids=lambda a: "-".join(a[2:4]) + f"-{len(a)}")
def test_buses_match_qtree(argv: list[str]) -> None:
    """Every device of a running machine sits on the bus type the table says it needs, and every
    controller gives the bus type of the kind the table says (``info qtree`` of QEMU 7.2)."""
    _needs(argv[0])
    from dtvm.qemu.config import from_snapshot
    from dtvm.qemu.live import read_argv

    table = bus_table()
    config = from_snapshot(read_argv(argv))
    types = _table_bus_types()
    qtypes = {q for k in table.kinds.values() for q in k.qemu}
    for dev, bus in _walk_buses(config.root):
        if bus.type in qtypes:
            need = table.needs.get(dev.driver)
            assert need is not None, (dev.driver, bus.type)
            kinds = {k.name for k in table.kinds.values() if bus.type in k.qemu}
            assert any(need in table.kinds[k].takes or dev.driver in table.placement for k in kinds), (dev.driver, bus.type)
        elif bus.type == "System":
            assert table.needs.get(dev.driver) not in types, dev.driver
        for child in dev.buses:
            if child.type in qtypes:
                gives = table.gives(dev.driver)
                assert gives is not None and child.type in table.kinds[gives].qemu, (dev.driver, child.type, gives)


def _hotplug_trials() -> list[tuple[str, list[str], dict[str, Any]]]:
    q35 = [*Q35, "-nodefaults", "-blockdev", "driver=null-co,node-name=nd", "-device", "pcie-root-port,id=rp,chassis=1",
           "-device", "pcie-root-port,id=rp2,chassis=2", "-device", "x3130-upstream,id=up,bus=rp2",
           "-device", "pci-bridge,id=br,chassis_nr=3", "-device", "virtio-scsi-pci,id=vs", "-device", "qemu-xhci,id=xhci",
           "-device", "virtio-serial-pci,id=vser", "-device", "intel-hda,id=hda", "-device", "nvme,id=nv,serial=N"]
    return [
        ("pcie-root", q35, {"driver": "virtio-rng-pci", "bus": "pcie.0", "addr": "0x10"}),
        ("pcie-port", q35, {"driver": "virtio-rng-pci", "bus": "rp"}),
        ("pcie-switch", q35, {"driver": "xio3130-downstream", "bus": "up", "chassis": "9"}),
        ("pci", q35, {"driver": "virtio-rng-pci", "bus": "br", "addr": "3"}),
        ("isa", q35, {"driver": "isa-serial", "iobase": "0x2f8"}),
        ("ide", q35, {"driver": "ide-cd", "bus": "ide.1"}),
        ("scsi", q35, {"driver": "scsi-cd", "bus": "vs.0"}),
        ("usb", q35, {"driver": "usb-kbd", "bus": "xhci.0"}),
        ("virtio-serial", q35, {"driver": "virtconsole", "bus": "vser.0"}),
        ("hda", q35, {"driver": "hda-duplex", "bus": "hda.0"}),
        ("nvme", q35, {"driver": "nvme-ns", "bus": "nv", "drive": "nd"}),
        ("i2c", q35, {"driver": "i2c-ddc", "bus": "i2c", "address": "0x70"}),
        ("pci-root", [*PC, "-nodefaults"], {"driver": "virtio-rng-pci", "bus": "pci.0", "addr": "9"}),
        ("floppy", [*PC, "-nodefaults", "-device", "isa-fdc,id=fdc"], {"driver": "floppy", "bus": "floppy-bus.0"}),
        ("pxb-pcie-root", [*Q35, "-nodefaults", "-device", "pxb-pcie,id=px,bus_nr=32"],
         {"driver": "pcie-root-port", "bus": "px", "chassis": "9"}),
        ("pxb-root", [*PC, "-nodefaults", "-device", "pxb,id=px,bus_nr=32"],
         {"driver": "pci-bridge", "bus": "pxb-internal", "chassis_nr": "9"}),
        ("pxb-cxl-root", [*Q35, "-nodefaults", "-M", "cxl=on", "-device", "pxb-cxl,id=cx,bus_nr=32,bus=pcie.0"],
         {"driver": "pcie-root-port", "bus": "cx", "chassis": "9"}),
        ("virtio", [*VIRT64, "-nodefaults"], {"driver": "virtio-rng-device"}),
        ("pci-root", [*PSERIES, "-nodefaults"], {"driver": "virtio-rng-pci", "addr": "9"}),
        ("vio", [*PSERIES, "-nodefaults", "-chardev", "null,id=c0"], {"driver": "spapr-vty", "chardev": "c0"}),
    ]


def test_hotplug_flags_match_qemu(vm_factory: Any) -> None:
    """Each bus kind's ``hotplug`` is what ``device_add`` onto such a bus does in QEMU 7.2."""
    table = bus_table()
    tried: set[str] = set()
    for kind, argv, args in _hotplug_trials():
        if not _have(argv[0]):
            continue
        vm = vm_factory(argv)
        mon = vm.qmp()
        try:
            mon.cmd("device_add", **args)
            took, why = True, ""
        except Exception as exc:
            took, why = False, str(exc)
        finally:
            mon.close()
            vm.stop()
        assert took == table.kinds[kind].hotplug, (kind, args, why)
        if not took:
            assert "does not support hotplugging" in why, (kind, why)
        tried.add(kind)
    if not tried:
        pytest.skip("no qemu-system binary is installed (the oracle cannot run)")
    if all(_have(b) for b in ("qemu-system-x86_64", "qemu-system-aarch64", "qemu-system-ppc64")):
        assert tried == set(table.kinds)


def test_hotplug_port_switch_matches_qemu(vm_factory: Any) -> None:
    """A root port with hotplug=off refuses device_add (the ``hotplug-off: self`` data)."""
    vm = vm_factory([*Q35, "-nodefaults", "-device", "pcie-root-port,id=rp,chassis=1,hotplug=off"])
    mon = vm.qmp()
    try:
        with pytest.raises(Exception, match="does not support hotplugging"):
            mon.cmd("device_add", driver="virtio-rng-pci", bus="rp")
    finally:
        mon.close()
    assert bus_table().hotplug_self["pcie-root-port"] == "hotplug"


# -- the table itself ---------------------------------------------------------------------------


def test_rules_are_documented() -> None:
    import dtvm.vm.check

    doc = dtvm.vm.check.__doc__ or ""
    for rule in RULES:
        assert f"``{rule}``" in doc, rule


@pytest.mark.parametrize("data,needle", [
    ({}, "kinds"),
    ({"kinds": {"x": {"words": "x", "qemu": ["X"], "takes": ["X"], "hotplug": "yes"}}}, "kinds.x"),
    ({"kinds": {}, "provides": {"a": "nosuch"}}, "provides.a"),
])
def test_broken_table_is_named(data: Any, needle: str) -> None:
    with pytest.raises(CheckDataError, match=needle.replace(".", r"\.")):
        load_bus_table(data)


def test_finding_json_shape() -> None:
    f = Finding("/pcie/x@1", "bus-kind", "words")
    assert f.to_json() == {"path": "/pcie/x@1", "rule": "bus-kind", "severity": "error", "source": "guest", "message": "words"}


if __name__ == "__main__":  # print the devices: section of buses.yaml from the installed QEMU
    import textwrap

    merged: dict[str, set[str]] = {}
    wanted = _table_bus_types()
    for exe in BINARIES:
        if _have(exe):
            for dev_name, dev_bus in _device_help(exe).items():
                if dev_bus in wanted:
                    merged.setdefault(dev_bus, set()).add(dev_name)
    print("devices:")
    for bus_name in sorted(merged, key=lambda t: (t != "PCI", t)):
        body = textwrap.wrap(", ".join(sorted(merged[bus_name])), 96, break_on_hyphens=False)
        print(f"  {bus_name}:\n    [" + "\n     ".join(body) + "]")
