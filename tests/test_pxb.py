"""PCI expander buses (pxb on pc, pxb-pcie on q35 and virt) round trip, held to QEMU 7.2.

QEMU makes, for each expander, a pxb-host on the system bus whose root bus is the expander's new
PCI root bus; the description folds it into the expander's node (dtvm/vm/data/devices.yaml
``made-by-other``).  Each configuration is described (A, started paused, hot-plugs done),
rebuilt by ``dtb2qemu`` (its check start as a migration destination), started as B, and A
live-migrates into B; B's description must be byte-identical to A's, and ``dtb2qemu --offline``
must give the argv the probing ``dtb2qemu`` gave.  The corners: expanders without an id (linked
by the bus number of what sits on them, or, empty, by creation order), a device placed on an
expander by QEMU itself (no ``bus=``), a pxb's own bridge with devices and a bridge behind it, a
device hot-plugged into a root port behind a pxb-pcie.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("qemu.qmp")

from dtvm.dt.dtb import read_dtb, write_dtb
from dtvm.dt.tree import Node
from tests import qemugen
from tests.qemu_helpers import assert_offline_matches_online
from tests.test_dtb2qemu import _describe, _positions, _rebuild_and_migrate, _start

Q35 = ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults"]
PC = ["qemu-system-x86_64", "-M", "pc-i440fx-7.2", "-nodefaults"]

#: name -> (argv, hot-plugs, node paths the description must have)
CASES: dict[str, tuple[list[str], list[dict[str, Any]], list[str]]] = {
    "q35-pxb-pcie": (
        [*Q35, "-device", "pxb-pcie,id=px,bus_nr=32", "-device", "pcie-root-port,id=rp1,bus=px,chassis=1",
         "-device", "virtio-net-pci,bus=rp1,mac=52:54:00:00:0a:01",
         "-device", "pcie-root-port,id=rp2,bus=px,chassis=2,addr=3",
         # an expander without an id, and a root port QEMU puts on it (newest root bus first)
         "-device", "pxb-pcie,bus=pcie.0,bus_nr=64", "-device", "pcie-root-port,id=rp3,chassis=3"],
        [{"driver": "e1000e", "bus": "rp2", "id": "hot0"}],
        ["/pcie/pcie@1/pcie@0/ethernet@0", "/pcie/pcie@1/pcie@3/ethernet@0", "/pcie/pcie@2/pcie@0"]),
    "pc-pxb": (
        [*PC, "-device", "pxb,id=p1,bus_nr=16", "-device", "e1000,bus=p1,addr=3,mac=52:54:00:00:0b:01",
         "-device", "pci-bridge,id=br,bus=p1,chassis_nr=5,addr=4", "-device", "virtio-rng-pci,bus=br,addr=2",
         # an empty expander without an id: paired with its pxb-host by creation order
         "-device", "pxb,bus=pci.0,bus_nr=32"],
        [],
        ["/pci/pci@2/pci@0/ethernet@3", "/pci/pci@2/pci@0/pci@4/pci-device@2", "/pci/pci@3/pci@0"]),
    "aarch64-virt-pxb-pcie": (
        ["qemu-system-aarch64", "-M", "virt-7.2", "-nodefaults", "-device", "pxb-pcie,id=px,bus_nr=8",
         "-device", "pcie-root-port,id=rp,bus=px,chassis=1", "-device", "virtio-rng-pci,bus=rp"],
        [],
        ["/pcie@10000000/pcie@1/pcie@0/pci-device@0"]),
}


def _paths(guest: bytes) -> set[str]:
    out: set[str] = set()
    stack: list[Node] = [read_dtb(guest).root]
    while stack:
        node = stack.pop()
        out.add(node.path)
        stack.extend(node.live_children())
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_expander_round_trip(name: str, vm_factory: Any, tmp_path: Path) -> None:
    argv, hotplug, expected = CASES[name]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (its oracle cannot run)")
    a = _start(vm_factory, argv, hotplug)
    snap_a, guest_a, backend_a = _describe(a)
    paths = _paths(guest_a)
    assert set(expected) <= paths, sorted(paths)
    assert not any(p.rsplit("/", 1)[-1].startswith("pxb-host") for p in paths)  # folded, never dangling
    rebuilt, b, status, _ = _rebuild_and_migrate(vm_factory, tmp_path, a, guest_a, backend_a)
    assert status.get("status") == "completed", (status, rebuilt)
    assert any(x.startswith("pxb") and "bus_nr=" in x for x in rebuilt), rebuilt
    snap_b, guest_b, _ = _describe(b)
    assert _positions(snap_b) == _positions(snap_a)
    assert guest_b == guest_a, rebuilt
    offline = subprocess.run([sys.executable, "-m", "dtvm", "dtb2qemu", str(tmp_path / "a.dtb"), "-b",
                              str(tmp_path / "a.backend.dtbo"), "--offline"], capture_output=True, text=True, timeout=120)
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout) == rebuilt


def test_made_device_not_explained_is_refused(tmp_path: Path) -> None:
    """A pxb-host with a property its expander does not set (here by -global) cannot be folded
    into the expander's node: qemu2dtb says so in one line naming it, and writes nothing."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (its oracle cannot run)")
    out = tmp_path / "vm.dtb"
    res = subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", "-o", str(out), "--",
                          *Q35, "-global", "pxb-host.x-config-reg-migration-enabled=off",
                          "-device", "pxb-pcie,id=px,bus_nr=32"], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "pxb-host of pxb-pcie px: x-config-reg-migration-enabled=off" in res.stderr, res.stderr
    assert not out.exists()


def test_pxb_host_node_alone_is_refused(vm_factory: Any, tmp_path: Path) -> None:
    """A description that names a pxb-host node by itself (not folded into its expander) is
    refused by that node: QEMU makes a pxb-host only for an expander."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (its oracle cannot run)")
    a = _start(vm_factory, Q35, [])
    _, guest, backend = _describe(a)
    dt = read_dtb(guest)
    node = Node("pxb-host")
    node.set_property("compatible", b"qemu,pxb-host\0")
    node.set_property("qemu,driver", b"pxb-host\0")
    dt.root.add_child(node)
    (tmp_path / "vm.dtb").write_bytes(write_dtb(dt))
    (tmp_path / "vm.backend.dtbo").write_bytes(backend)
    res = subprocess.run([sys.executable, "-m", "dtvm", "dtb2qemu", str(tmp_path / "vm.dtb"), "-b",
                          str(tmp_path / "vm.backend.dtbo")], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("dtvm dtb2qemu: /pxb-host: pxb-host is made by a pxb or pxb-pcie"), res.stderr


def _expander_argv(seed: int, machine: str, directory: Path) -> list[str]:
    """The generator's expander stream alone (tests/qemugen.py _expanders) on a bare machine."""
    spec = qemugen.MACHINES[machine]
    rng = random.Random(seed)
    g = qemugen._Gen(rng, spec, machine)
    g.args = [spec.binary, "-M", spec.type, "-nodefaults"]
    qemugen._expanders(rng, machine, g)
    return qemugen.Case(f"{machine}-{seed}", machine, g.args, g.images).materialize(directory)


@pytest.mark.parametrize("seed", range(12))
def test_offline_equals_online_generated(seed: int, tmp_path: Path) -> None:
    """Expanders as the generator draws them, 3 seeds per machine: qemu2dtb --offline writes the
    guest tree and back-end overlay online qemu2dtb reads from QEMU, byte for byte."""
    machine = sorted(qemugen._EXPANDERS)[seed % len(qemugen._EXPANDERS)]
    argv = _expander_argv(7130 + seed, machine, tmp_path)
    assert any(a.startswith(("pxb,", "pxb-pcie,")) for a in argv)
    assert_offline_matches_online(argv, tmp_path)


@pytest.mark.parametrize("tail", [
    # QEMU puts a device given without bus= on the newest expander's root bus: a root port is taken
    ["-device", "pxb-pcie,id=px,bus_nr=32", "-device", "pcie-root-port,id=rp,chassis=1", "-device", "e1000e,bus=rp"],
    # an endpoint is refused there, offline in QEMU's words
    ["-device", "pxb-pcie,id=px,bus_nr=32", "-device", "e1000e"],
    # a pxb without bus_nr: QEMU refuses its bridge's chassis number 0
    ["-device", "pxb-pcie,id=px,bus_nr=32", "-device", "pxb-pcie,id=py,bus=pcie.0"],
], ids=["root-port-placed-by-qemu", "endpoint-refused", "second-without-bus-nr"])
def test_offline_expander_corners(tail: list[str], tmp_path: Path) -> None:
    argv = [*Q35, *tail]
    assert_offline_matches_online(argv, tmp_path)


@pytest.mark.parametrize("tail", [
    ["-device", "pxb,id=p1,bus_nr=16", "-device", "e1000"],
    ["-device", "pxb,id=p1"],
    ["-device", "pxb,id=p1,bus_nr=16", "-device", "pci-bridge,id=b,chassis_nr=3", "-device", "e1000,bus=b,addr=1"],
], ids=["endpoint-refused", "without-bus-nr", "bridge-placed-by-qemu"])
def test_offline_pxb_corners(tail: list[str], tmp_path: Path) -> None:
    argv = [*PC, *tail]
    assert_offline_matches_online(argv, tmp_path)
