"""Devices that make other devices, round trip held to QEMU 7.2.

An i8042 makes a PS/2 keyboard and mouse on the system bus that nothing QEMU shows links to it; a
cuda makes its mos6522-cuda there, a macio-newworld its openpic (``made-by-other`` without buses
in dtvm/vm/data/devices.yaml): those of a maker the user made are left out of the description,
and the maker's -device makes them again. sm501, macio-newworld/oldworld and i82378 make their
children on their own buses (``makes-own-child``): described as nodes, rebuilt by the maker's
-device, and held by dtb2qemu to what the rebuilt maker made. A vmmouse given with -device needs
its i8042 link (``device-links``). Each configuration is described (A, started paused), rebuilt by
``dtb2qemu`` (its check start as a migration destination), started as B, and A live-migrates into
B; B's description must be byte-identical to A's. The refusals are QEMU's own configurations that
dtvm cannot rebuild, and edited descriptions, each one line naming what it refuses.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("qemu.qmp")

from dtvm.dt.dtb import read_dtb, write_dtb
from dtvm.dt.tree import DeviceTree, Node
from tests.test_dtb2qemu import _describe, _positions, _rebuild_and_migrate, _start

Q35 = ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults"]
PC = ["qemu-system-x86_64", "-M", "pc-i440fx-7.2", "-nodefaults"]
PSERIES = ["qemu-system-ppc64", "-M", "pseries-7.2", "-nodefaults", "-m", "256M"]

#: name -> (argv, what the rebuilt argv must hold, the number of ps2-kbd nodes the description has)
CASES: dict[str, tuple[list[str], list[str], int]] = {
    # the machine's i8042 (and its vmmouse) beside one given with -device and a vmmouse linked to it
    "q35-i8042-vmmouse": ([*Q35, "-device", "i8042,id=kbc", "-device", "vmmouse,i8042=kbc"],
                          ["i8042", "vmmouse,"], 1),
    # three i8042s, the vmmouse linked to the middle one, which has no id (QOM numbers it anonymously)
    "q35-vmmouse-anonymous-link": ([*Q35, "-device", "i8042", "-device", "vmmouse,i8042=/machine/peripheral-anon/device[0]",
                                    "-device", "i8042,id=k2"], ["i8042", "vmmouse,"], 1),
    # the pair the census draws, after another i8042 given with -device
    "pc-vmmouse-after-i8042": ([*PC, "-device", "i8042", "-device", "i8042,id=kbc", "-device", "vmmouse,i8042=kbc"],
                               ["i8042", "vmmouse,"], 1),
    # no i8042 of the machine's (and so no vmport, which a vmmouse needs: QEMU refuses one): the one
    # given with -device, without an id, makes the only PS/2 pair
    "pc-i8042-alone": ([*PC, "-M", "i8042=off", "-device", "i8042"], ["i8042"], 0),
    # two of each maker whose children are made on its own bus, and grandchildren on the system bus
    "pseries-makers": ([*PSERIES, "-device", "macio-newworld", "-device", "macio-oldworld,id=mo",
                        "-device", "i82378", "-device", "sm501", "-device", "macio-newworld,id=m2"],
                       ["macio-newworld", "macio-oldworld", "i82378", "sm501"], 0),
    # a CXL host bridge makes a pxb-cxl-host on the system bus, folded as a pxb-pcie's pxb-host is;
    # q35 takes it only with cxl=on ("CXL host bridges present, but cxl=off"), virt 7.2 without
    "q35-pxb-cxl": ([*Q35, "-M", "cxl=on", "-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1",
                     "-device", "cxl-rp,port=0,bus=cxl.1,id=rp13,chassis=0,slot=2"], ["pxb-cxl", "cxl-rp"], 1),
    "aarch64-virt-pxb-cxl": (["qemu-system-aarch64", "-M", "virt-7.2", "-nodefaults", "-device", "pxb-cxl,id=cx,bus_nr=8"],
                             ["pxb-cxl"], 0),
}


def _nodes(guest: bytes) -> list[Node]:
    out: list[Node] = []
    stack: list[Node] = [read_dtb(guest).root]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.live_children())
    return out


def _driver(node: Node) -> str:
    prop = node.get_property("qemu,driver")
    return prop.as_string() if prop is not None else ""


@pytest.mark.parametrize("name", sorted(CASES))
def test_made_devices_round_trip(name: str, vm_factory: Any, tmp_path: Path) -> None:
    argv, rebuilt_has, keyboards = CASES[name]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (its oracle cannot run)")
    a = _start(vm_factory, argv, [])
    snap_a, guest_a, backend_a = _describe(a)
    drivers = [_driver(n) for n in _nodes(guest_a)]
    assert not any(d.endswith("-host") and d.startswith("pxb") for d in drivers), drivers  # folded, never dangling
    assert drivers.count("ps2-kbd") == keyboards and drivers.count("ps2-mouse") == keyboards, drivers
    if name == "pseries-makers":
        # the grandchildren on the system bus are folded; the children on the makers' buses are nodes
        assert "mos6522-cuda" not in drivers and "openpic" not in drivers, drivers
        assert drivers.count("cuda") == 3 and drivers.count("macio-ide") == 6 and drivers.count("i8257") == 2, drivers
    rebuilt, b, status, before = _rebuild_and_migrate(vm_factory, tmp_path, a, guest_a, backend_a)
    assert status.get("status") == "completed", (status, rebuilt)
    devices = [rebuilt[i + 1] for i, x in enumerate(rebuilt) if x == "-device"]
    for want in rebuilt_has:
        assert any(d.startswith(want) for d in devices), (want, devices)
    assert not any(d.startswith(("ps2-", "cuda", "i8257", "i2c-ddc", "escc", "openpic", "mos6522")) for d in devices), devices
    link = [d for d in devices if d.startswith("vmmouse,")]
    assert all("i8042=" in d for d in link), link
    snap_b, guest_b, _ = before if before is not None else _describe(b)
    assert _positions(snap_b) == _positions(snap_a)
    assert guest_b == guest_a, rebuilt


def _qemu2dtb_refuses(argv: list[str], tmp_path: Path) -> str:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (its oracle cannot run)")
    out = tmp_path / "vm.dtb"
    res = subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", "-o", str(out), "--", *argv],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not out.exists() and not (tmp_path / "vm.backend.dtbo").exists()
    return res.stderr.strip()


def test_made_device_set_otherwise_is_refused(tmp_path: Path) -> None:
    """A grandchild on the system bus with a property its maker does not give it (here by
    -global) cannot be left out: the maker's -device would make it otherwise."""
    err = _qemu2dtb_refuses([*PSERIES, "-global", "mos6522-cuda.frequency=1000", "-device", "macio-newworld"], tmp_path)
    assert "mos6522-cuda of cuda" in err and "frequency=1000 is not what its cuda makes" in err, err


def test_cxl_fixed_memory_windows_are_refused(tmp_path: Path) -> None:
    """q35's CXL fixed memory windows (a list machine option the guest sees in its ACPI CEDT) are
    not described: qemu2dtb refuses them by name rather than lose them in the rebuild."""
    err = _qemu2dtb_refuses([*Q35, "-M", "cxl=on", "-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1",
                             "-M", "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G"], tmp_path)
    assert "/qemu: machine option cxl-fmw" in err, err


def test_vmmouse_linked_to_the_machines_i8042_is_refused(tmp_path: Path) -> None:
    """A vmmouse given with -device and linked to the machine's own i8042 (by its QOM path): no
    -device of the rebuild can name that i8042, so qemu2dtb refuses it by name."""
    err = _qemu2dtb_refuses([*Q35, "-device", "vmmouse,i8042=/machine/unattached/device[11]"], tmp_path)
    assert "its i8042 link names '/machine/unattached/device[11]': not a i8042 given with -device" in err, err


def _dtb2qemu(guest: bytes, backend: bytes, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "vm.dtb").write_bytes(guest)
    (tmp_path / "vm.backend.dtbo").write_bytes(backend)
    return subprocess.run([sys.executable, "-m", "dtvm", "dtb2qemu", str(tmp_path / "vm.dtb"), "-b",
                           str(tmp_path / "vm.backend.dtbo")], capture_output=True, text=True, timeout=180)


def _find(dt: DeviceTree, driver: str) -> Node:
    stack: list[Node] = [dt.root]
    while stack:
        node = stack.pop()
        if _driver(node) == driver:
            return node
        stack.extend(node.live_children())
    raise AssertionError(f"no {driver} node")


def _set_prop(name: str, value: str) -> Callable[[Node], None]:
    def change(node: Node) -> None:
        node.set_property(name, value.encode() + b"\0")
    return change


def _drop(node: Node) -> None:
    node.delete()


def test_vmmouse_link_edited_to_the_machines_i8042_is_refused(vm_factory: Any, tmp_path: Path) -> None:
    """A description whose vmmouse names the machine's i8042 (position 0) is refused by its node."""
    a = _start(vm_factory, [*Q35, "-device", "i8042,id=kbc", "-device", "vmmouse,i8042=kbc"], [])
    _, guest, backend = _describe(a)
    dt = read_dtb(guest)
    node = next(n for n in _nodes(guest) if _driver(n) == "vmmouse" and n.get_property("qemu,i8042") is not None)
    target = dt.root
    for part in node.path.strip("/").split("/"):
        child = target.get_child(part)
        assert child is not None
        target = child
    assert target.get_property("qemu,i8042") is not None and target["qemu,i8042"].as_string() == "1"
    target.set_property("qemu,i8042", b"0\0")
    res = _dtb2qemu(write_dtb(dt), backend, tmp_path)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert f"{node.path}: qemu,i8042 '0': the i8042 it names is the machine's own" in res.stderr, res.stderr


@pytest.mark.parametrize("driver,change,words", [
    # a child its maker makes otherwise: the maker's -device cannot say it
    ("isa-i8259", _set_prop("qemu,elcr_mask", "255"), "qemu,elcr_mask '255': its maker makes it with"),
    # a child its maker makes that the description leaves out
    ("escc", _drop, "makes a escc here that the description does not list"),
], ids=["i82378-child-property", "macio-child-missing"])
def test_edited_made_child_is_refused(driver: str, change: Callable[[Node], None], words: str,
                                      vm_factory: Any, tmp_path: Path) -> None:
    """dtb2qemu holds the children a maker makes to what the rebuilt maker made (QEMU's answer at
    its check start): an edited child is refused by its node, in one line."""
    a = _start(vm_factory, [*PSERIES, "-device", "macio-newworld", "-device", "i82378"], [])
    _, guest, backend = _describe(a)
    dt = read_dtb(guest)
    node = _find(dt, driver)
    path = node.path
    change(node)
    res = _dtb2qemu(write_dtb(dt), backend, tmp_path)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert words in res.stderr and path in res.stderr, res.stderr


def test_ps2_node_alone_is_refused(vm_factory: Any, tmp_path: Path) -> None:
    """A PS/2 keyboard node beside the machine's (as an i8042 given with -device makes one, but
    without that i8042) is refused by that node: only an i8042 makes it."""
    a = _start(vm_factory, Q35, [])
    _, guest, backend = _describe(a)
    dt = read_dtb(guest)
    node = Node("ps2-kbd-1")
    node.set_property("compatible", b"qemu,ps2-kbd\0")
    node.set_property("qemu,driver", b"ps2-kbd\0")
    dt.root.add_child(node)
    res = _dtb2qemu(write_dtb(dt), backend, tmp_path)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().startswith("dtvm dtb2qemu: /ps2-kbd-1: ps2-kbd is made by a i8042"), res.stderr


@pytest.mark.parametrize("value", ["²", "9" * 5000, "-1", "7"])
def test_vmmouse_link_position_is_bounded(value: str, vm_factory: Any, tmp_path: Path) -> None:
    """qemu,i8042 comes from an untrusted tree: anything but the position of an i8042 on the bus
    is refused by the vmmouse's node, in one line, without a traceback."""
    a = _start(vm_factory, [*PC, "-device", "i8042,id=kbc", "-device", "vmmouse,i8042=kbc"], [])
    _, guest, backend = _describe(a)
    dt = read_dtb(guest)
    node = next(n for n in dt.root.walk() if _driver(n) == "vmmouse" and n.get_property("qemu,i8042") is not None)
    node.set_property("qemu,i8042", value.encode() + b"\0")
    res = _dtb2qemu(write_dtb(dt), backend, tmp_path)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert f"{node.path}: qemu,i8042" in res.stderr and "no such device" in res.stderr, res.stderr


@pytest.mark.parametrize("argv", [
    # an i2c-ddc given without bus= lands on the ati-vga's DDC bus, at address 0 (measured)
    [*PC, "-device", "ati-vga", "-device", "i2c-ddc"],
    [*PSERIES, "-device", "sm501,id=fb", "-device", "i2c-ddc,address=0x51,id=mine"],
], ids=["pc-ati-vga", "pseries-sm501"])
def test_users_device_on_a_makers_named_bus_round_trip(argv: list[str], vm_factory: Any, tmp_path: Path) -> None:
    """A maker's own I2C bus has a name QEMU gives it (ati-vga.ddc, sm501.i2c: devices.yaml
    own-child-buses): the user's i2c-ddc beside the maker's own DDC is given with -device on that
    bus, the maker's own is not (it would be made twice: refused before, found by QEMU 10.0's
    generated case pc-950100047)."""
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (its oracle cannot run)")
    a = _start(vm_factory, argv, [])
    _, guest_a, backend_a = _describe(a)
    assert [_driver(n) for n in _nodes(guest_a)].count("i2c-ddc") == 2
    rebuilt, b, status, before = _rebuild_and_migrate(vm_factory, tmp_path, a, guest_a, backend_a)
    assert status.get("status") == "completed", (status, rebuilt)
    devices = [rebuilt[i + 1] for i, x in enumerate(rebuilt) if x == "-device"]
    assert len([d for d in devices if d.startswith("i2c-ddc,")]) == 1, devices
    _, guest_b, _ = before if before is not None else _describe(b)
    assert guest_b == guest_a, rebuilt


def test_users_device_on_one_of_two_alike_named_buses_is_refused(vm_factory: Any, tmp_path: Path) -> None:
    """Two ati-vga name their DDC buses alike: bus=ati-vga.ddc cannot say which, so a description
    with the user's i2c-ddc on one of them is refused by its node, never rebuilt on the other."""
    argv = [*PC, "-device", "ati-vga", "-device", "ati-vga", "-device", "i2c-ddc"]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (its oracle cannot run)")
    _, guest, backend = _describe(_start(vm_factory, argv, []))
    res = _dtb2qemu(guest, backend, tmp_path)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert "i2c-ddc@0: i2c-ddc on the bus of one of 2 ati-vga, whose buses QEMU names alike (ati-vga.ddc)" in res.stderr
