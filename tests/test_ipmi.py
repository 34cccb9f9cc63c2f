"""IPMI, round trip held to QEMU 7.2.

QEMU's BMCs (``ipmi-bmc-sim``, ``ipmi-bmc-extern``) are devices on no bus; its interfaces
(``isa-ipmi-kcs``, ``isa-ipmi-bt``, ``pci-ipmi-kcs``, ``pci-ipmi-bt``, ``smbus-ipmi``) each take a
``bmc`` link to one. The guest tree describes both with their guest-visible properties, the link as
the BMC's position among the BMCs (``device-links`` in dtvm/vm/data/devices.yaml); the external
BMC's chardev and the simulated BMC's SDR and FRU files are host facts of the back-end overlay
(dtvm/qemu/data/trust.json). A guest tree that states a host fact, or a link naming no BMC, is
refused by its node, in one line. ``guid=auto`` is a random GUID each start (measured below):
described as read, so the rebuild has that VM's GUID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("qemu.qmp")

from dtvm.dt.dtb import read_dtb, write_dtb
from dtvm.dt.tree import DeviceTree, Node
from tests.qemu_helpers import assert_offline_matches_online, qemu2dtb_run
from tests.test_dtb2qemu import _describe, _positions, _rebuild_and_migrate, _start

PC = ["qemu-system-x86_64", "-M", "pc-i440fx-7.2", "-nodefaults", "-m", "128M"]
Q35 = ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults", "-m", "128M"]

#: three BMCs (an anonymous simulated one with a GUID, an external one, a named simulated one) and
#: three interfaces, each on another bus, linked out of the BMCs' order
MIXED = [*PC, "-chardev", "null,id=c0",
         "-device", "ipmi-bmc-sim,guid=5c1b2f0e-0b1a-4e7e-9d62-1a2b3c4d5e6f,mfg_id=77",
         "-device", "ipmi-bmc-extern,chardev=c0,id=zz", "-device", "ipmi-bmc-sim,id=aa",
         "-device", "isa-ipmi-kcs,bmc=/machine/peripheral-anon/device[0]",
         "-device", "smbus-ipmi,bmc=zz,address=0x20", "-device", "pci-ipmi-bt,bmc=aa"]


def _driver(node: Node) -> str:
    prop = node.get_property("qemu,driver")
    return prop.as_string() if prop is not None else ""


def _nodes(dt: DeviceTree, driver: str) -> list[Node]:
    return [n for n in dt.root.walk() if _driver(n) == driver]


def _qemu2dtb(argv: list[str], tmp_path: Path, *extra: str) -> tuple[bytes, bytes]:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (its oracle cannot run)")
    out = tmp_path / "vm.dtb"
    res = subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", *extra, "-o", str(out), "--", *argv],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return out.read_bytes(), (tmp_path / "vm.backend.dtbo").read_bytes()


def _dtb2qemu(guest: bytes, backend: bytes, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "e.dtb").write_bytes(guest)
    (tmp_path / "e.backend.dtbo").write_bytes(backend)
    return subprocess.run([sys.executable, "-m", "dtvm", "dtb2qemu", str(tmp_path / "e.dtb"), "-b",
                           str(tmp_path / "e.backend.dtbo"), "--format", "lines", *extra],
                          capture_output=True, text=True, timeout=180)


def _refused(res: subprocess.CompletedProcess[str], *words: str) -> None:
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    for word in words:
        assert word in res.stderr, res.stderr


def test_ipmi_round_trip(vm_factory: Any, tmp_path: Path) -> None:
    """Three BMCs and three interfaces: each link is the BMC's position in node order (the external
    BMC, then the simulated ones by creation order: the named one first, as QOM lists it), the
    BMCs are given before the interfaces (pc's host bridge node sorts before them), A migrates
    into the rebuild, and B reads the same. (QEMU 7.2 registers both simulated BMCs' state as one
    section, ipmi-bmc-sim instance 0: the migration completes, which is what 7.2 itself does; 10.0
    refuses the second BMC.)"""
    a = _start(vm_factory, MIXED, [])
    snap_a, guest_a, backend_a = _describe(a)
    dt = read_dtb(guest_a)
    links = {_driver(n): n["qemu,bmc"].as_string() for n in dt.root.walk() if n.get_property("qemu,bmc") is not None}
    assert links == {"isa-ipmi-kcs": "2", "smbus-ipmi": "0", "pci-ipmi-bt": "1"}, links
    sims = _nodes(dt, "ipmi-bmc-sim")
    assert [n.path for n in sims] == ["/ipmi-bmc-sim", "/ipmi-bmc-sim-1"]
    # the unset GUID (zeros) is the type's; the one given is described
    assert sims[0].get_property("qemu,guid") is None
    assert sims[1]["qemu,guid"].as_string() == "5c1b2f0e-0b1a-4e7e-9d62-1a2b3c4d5e6f"
    extern = _nodes(dt, "ipmi-bmc-extern")[0]
    assert extern.get_property("qemu,chardev") is None  # a host back-end: the overlay's
    assert b"c0" in backend_a
    rebuilt, b, status, _ = _rebuild_and_migrate(vm_factory, tmp_path, a, guest_a, backend_a)
    assert status.get("status") == "completed", (status, rebuilt)
    devices = [rebuilt[i + 1] for i, x in enumerate(rebuilt) if x == "-device"]
    first_interface = min(i for i, d in enumerate(devices) if "bmc=" in d)
    assert all(i < first_interface for i, d in enumerate(devices) if d.startswith("ipmi-bmc-")), devices
    # the interface linked to the anonymous BMC names the id the rebuild gives it
    guid = next(d for d in devices if "guid=5c1b2f0e" in d).split(",")[1].removeprefix("id=")
    assert any(d.startswith("isa-ipmi-kcs,") and d.endswith(f",bmc=/machine/peripheral/{guid}") for d in devices), devices
    snap_b, guest_b, _ = _describe(b)
    assert _positions(snap_b) == _positions(snap_a)
    assert guest_b == guest_a, rebuilt


def test_random_guid_is_described_as_read(tmp_path: Path) -> None:
    """guid=auto is another GUID at each start (QEMU's random UUID): each reading describes the
    GUID that VM has, and dtb2qemu gives it back fixed."""
    argv = [*Q35, "-device", "ipmi-bmc-sim,id=bmc,guid=auto", "-device", "isa-ipmi-bt,bmc=bmc"]
    guids = []
    for run in ("1", "2"):
        (tmp_path / run).mkdir()
        guest, backend = _qemu2dtb(argv, tmp_path / run)
        guids.append(_nodes(read_dtb(guest), "ipmi-bmc-sim")[0]["qemu,guid"].as_string())
    assert guids[0] != guids[1] and all(len(g) == 36 and g != "0" * 8 + "-0000-0000-0000-" + "0" * 12 for g in guids)
    res = _dtb2qemu(guest, backend, tmp_path, "--no-check")
    assert res.returncode == 0, res.stderr
    assert f"ipmi-bmc-sim,id=bmc,guid={guids[1]}" in res.stdout.splitlines(), res.stdout


def test_fru_file_is_the_overlays(tmp_path: Path) -> None:
    """A simulated BMC's FRU data file is a host file: the overlay holds it, dtb2qemu names it on
    stderr and gives it to the rebuilt VM, and its check start opens none (a FIFO there would
    block QEMU's read: the check must not touch it)."""
    fru = tmp_path / "fru.bin"
    fru.write_bytes(bytes(range(64)))
    guest, backend = _qemu2dtb([*Q35, "-device", f"ipmi-bmc-sim,id=bmc,frudatafile={fru}",
                                "-device", "isa-ipmi-kcs,bmc=bmc"], tmp_path)
    assert str(fru).encode() not in guest and str(fru).encode() in backend
    fifo = tmp_path / "fru.fif"  # the same length: the overlay's bytes change in place
    os.mkfifo(fifo)
    backend = backend.replace(str(fru).encode(), str(fifo).encode())
    res = _dtb2qemu(guest, backend, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "QEMU will open frudatafile" in res.stderr and "(ipmi-bmc-sim at /ipmi-bmc-sim)" in res.stderr, res.stderr
    assert any(line.startswith("ipmi-bmc-sim,") and "frudatafile=" in line for line in res.stdout.splitlines())


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """One description (QEMU started once) for the hostile edits below."""
    return _qemu2dtb(MIXED, tmp_path_factory.mktemp("ipmi"))


def _edit(guest: bytes, driver: str, index: int, prop: str, value: str) -> tuple[bytes, str]:
    dt = read_dtb(guest)
    node = _nodes(dt, driver)[index]
    node.set_property(prop, value.encode() + b"\0")
    return write_dtb(dt), node.path


@pytest.mark.parametrize("driver,prop,value,words", [
    # a guest tree may not name the external BMC's socket, nor the files a simulated BMC reads
    ("ipmi-bmc-extern", "qemu,chardev", "c0", "qemu,chardev names a host back-end"),
    ("ipmi-bmc-sim", "qemu,frudatafile", "/etc/shadow", "qemu,frudatafile names a host file"),
    ("ipmi-bmc-sim", "qemu,sdrfile", "/etc/passwd", "qemu,sdrfile names a host file"),
], ids=["chardev", "frudatafile", "sdrfile"])
def test_host_facts_in_the_guest_tree_are_refused(driver: str, prop: str, value: str, words: str,
                                                  described: tuple[bytes, bytes], tmp_path: Path) -> None:
    guest, backend = described
    edited, path = _edit(guest, driver, 0, prop, value)
    _refused(_dtb2qemu(edited, backend, tmp_path), f"{path}: {words}", "only the back-end overlay may state it")


@pytest.mark.parametrize("value", ["3", "²", "9" * 5000, "-1", "/machine/peripheral/zz"])
def test_link_naming_no_bmc_is_refused(value: str, described: tuple[bytes, bytes], tmp_path: Path) -> None:
    """qemu,bmc comes from an untrusted tree: anything but the position of a BMC is refused by the
    interface's node (never a QOM path: a guest tree names no host object)."""
    guest, backend = described
    edited, path = _edit(guest, "pci-ipmi-bt", 0, "qemu,bmc", value)
    _refused(_dtb2qemu(edited, backend, tmp_path), f"{path}: qemu,bmc", "no such device")


def test_link_missing_is_refused(described: tuple[bytes, bytes], tmp_path: Path) -> None:
    dt = read_dtb(described[0])
    node = _nodes(dt, "smbus-ipmi")[0]
    node.delete_property("qemu,bmc")
    _refused(_dtb2qemu(write_dtb(dt), described[1], tmp_path), f"{node.path}: a smbus-ipmi needs its bmc")


#: offline against online: BMCs named by id (the BMCs' order is by type, then id), the link given
#: by id or by /machine/peripheral/ID, a GUID in capitals (QEMU prints it in lower case), properties
#: the simulated BMC's realize sets whatever -device says (device_id, ipmi_version), an all-zero GUID
OFFLINE_CASES = {
    "pc-three-bmcs": [*PC, "-chardev", "null,id=c0",
                      "-device", "ipmi-bmc-sim,id=s2,guid=5C1B2F0E-0B1A-4E7E-9D62-1A2B3C4D5E6F,device_id=5,fwrev1=3",
                      "-device", "ipmi-bmc-extern,chardev=c0,id=zz,slave_addr=0x24", "-device", "ipmi-bmc-sim,id=aa",
                      "-device", "isa-ipmi-kcs,bmc=s2", "-device", "smbus-ipmi,bmc=zz",
                      "-device", "pci-ipmi-bt,bmc=/machine/peripheral/aa"],
    "q35-two-interfaces": [*Q35, "-device", "ipmi-bmc-sim,id=b,ipmi_version=1,guid=00000000-0000-0000-0000-000000000000",
                           "-device", "isa-ipmi-bt,bmc=/machine/peripheral/b", "-device", "ipmi-bmc-sim,id=b2",
                           "-device", "pci-ipmi-kcs,bmc=b2"],
    # QEMU refuses both: one interface a BMC ("BMC object is already in use"), and a bare id equal
    # to the link's name once an interface has that link ("Path 'bmc' does not uniquely identify")
    "pc-bmc-shared": [*PC, "-device", "ipmi-bmc-sim,id=b1", "-device", "isa-ipmi-kcs,bmc=b1",
                      "-device", "pci-ipmi-kcs,bmc=b1"],
    "pc-bmc-ambiguous": [*PC, "-device", "ipmi-bmc-sim,id=bmc", "-device", "ipmi-bmc-sim,id=b2",
                         "-device", "isa-ipmi-kcs,bmc=b2", "-device", "isa-ipmi-bt,bmc=bmc"],
}


@pytest.mark.parametrize("name", sorted(OFFLINE_CASES))
def test_offline_is_online(name: str, tmp_path: Path) -> None:
    assert_offline_matches_online(OFFLINE_CASES[name], tmp_path)


@pytest.mark.parametrize("option,words", [
    ("guid=auto", "guid=auto: QEMU draws a random GUID each start"),
], ids=["random-guid"])
def test_offline_refuses_by_name(option: str, words: str, tmp_path: Path) -> None:
    res = qemu2dtb_run([*Q35, "-device", f"ipmi-bmc-sim,id=b,{option}", "-device", "isa-ipmi-kcs,bmc=b"],
                       tmp_path / "vm.dtb", offline=True)
    _refused(res, "-device ipmi-bmc-sim", words)


def test_offline_refuses_an_anonymous_bmcs_path(tmp_path: Path) -> None:
    """QOM numbers anonymous devices across every type: offline refuses such a link by name."""
    res = qemu2dtb_run([*PC, "-device", "ipmi-bmc-sim", "-device", "isa-ipmi-kcs,bmc=/machine/peripheral-anon/device[0]"],
                       tmp_path / "vm.dtb", offline=True)
    _refused(res, "-device isa-ipmi-kcs: bmc=/machine/peripheral-anon/device[0]: a QOM path", "use online mode")


def test_bmc_linked_twice_is_refused(described: tuple[bytes, bytes], tmp_path: Path) -> None:
    """QEMU links a BMC to one interface ("BMC object is already in use"): a tree giving two
    interfaces one BMC is refused by the second's node."""
    dt = read_dtb(described[0])
    kcs = _nodes(dt, "isa-ipmi-kcs")[0]
    smbus = _nodes(dt, "smbus-ipmi")[0]
    smbus.set_property("qemu,bmc", kcs["qemu,bmc"].value)
    _refused(_dtb2qemu(write_dtb(dt), described[1], tmp_path), f"{smbus.path}: qemu,bmc '2'",
             f"linked by {kcs.path} already")


def test_external_bmc_without_its_socket_is_refused(described: tuple[bytes, bytes], tmp_path: Path) -> None:
    """Without the overlay an external BMC has no chardev, which QEMU cannot make it without
    (bindings/qemu/qemu,ipmi-bmc-extern.yaml needs:): refused by its node, even unchecked."""
    (tmp_path / "e.dtb").write_bytes(described[0])
    res = subprocess.run([sys.executable, "-m", "dtvm", "dtb2qemu", str(tmp_path / "e.dtb"), "--no-check"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert "/ipmi-bmc-extern: ipmi-bmc-extern needs a chardev back-end" in res.stderr, res.stderr
