"""usb-host: the guest's device at its USB port in the guest tree, which host device it takes in
the back-end overlay, held to QEMU 7.2.

QEMU makes a usb-host whether or not a host device matches its selection (``vendorid``/
``productid``, ``hostbus``/``hostaddr``, ``hostport``; an empty selection matches every host
device) and attaches one when the running VM finds it; this host has no USB at all, so every
usb-host here waits, as on a source whose device is unplugged. The guest tree has the device on
its USB bus, numbered per bus as an unattached usb-redir is (and how it behaves toward the guest:
``guest-reset``, ``suppress-remote-wake``, ...);
the selection, ``hostdevice`` and ``loglevel`` are the overlay's. A VM with the forms users write
is described over QMP, rebuilt and live-migrates into the rebuild, whose description is the
same; a guest tree that names a host device is refused by node; without an overlay, and in
dtb2qemu's check start always, the usb-host gets a selection no host device matches
(``hostbus=256``: libusb numbers buses in 8 bits).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dtvm.dt.dtb import read_dtb, write_dtb
from tests.qemu_helpers import assert_offline_matches_online

Q35 = ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults"]
#: the forms users write, none matching a device of this host (which has no USB)
HOSTS = ["-device", "qemu-xhci,id=x", "-device", "usb-host,vendorid=0x46f4,productid=0x0001,guest-reset=off",
         "-device", "usb-host,hostbus=1,hostport=1.2,id=stick", "-device", "usb-host,hostbus=2,hostaddr=5,vendorid=0x1d6b",
         "-device", "usb-ehci,id=e", "-device", "usb-host,bus=e.0,loglevel=3"]
SELECTIONS = ("hostbus", "hostaddr", "hostport", "vendorid", "productid", "hostdevice", "loglevel")


def _dtvm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", *args], capture_output=True, text=True, timeout=120)


def _host_facts(overlay: bytes) -> dict[str, dict[str, str]]:
    """target path -> the usb-host selection the overlay states there."""
    out: dict[str, dict[str, str]] = {}
    for frag in read_dtb(overlay).root.live_children():
        node = frag.get_child("__overlay__")
        target = frag.get_property("target-path")
        if node is None or target is None:
            continue
        facts = {p.name[5:]: p.as_string() for p in node.live_props() if p.name[5:] in SELECTIONS}
        if facts:
            out[target.as_string()] = facts
    return out


def test_round_trip_over_qmp(vm_factory: Any, tmp_path: Path) -> None:
    """Four usb-hosts as users write them, read over QMP: the guest tree has each on its bus with
    nothing of the host (an empty selection stated as hostbus=0, QEMU's 'any'); the rebuild gives
    the overlay's selections back, and the original live-migrates into it: one QEMU pair."""
    from tests.test_dtb2qemu import _describe, _rebuild_and_migrate, _start

    if shutil.which(Q35[0]) is None:
        pytest.skip(f"{Q35[0]} is not installed (its oracle cannot run)")
    a = _start(vm_factory, [*Q35, *HOSTS], [])
    _snap_a, guest_a, backend_a = _describe(a)
    tree = read_dtb(guest_a).root
    nodes = {f"/pcie/usb@{n}/{c.name}": {p.name for p in c.live_props()}
             for n in (1, 2) for c in tree.get_node(f"/pcie/usb@{n}").live_children()}
    assert sorted(nodes) == ["/pcie/usb@1/usb-host", "/pcie/usb@1/usb-host-1", "/pcie/usb@1/usb-host-2",
                             "/pcie/usb@2/usb-host"], nodes
    assert all(not any(f"qemu,{k}" in props for k in SELECTIONS) for props in nodes.values()), nodes
    assert "qemu,guest-reset" in nodes["/pcie/usb@1/usb-host"]
    assert _host_facts(backend_a) == {
        "/pcie/usb@1/usb-host": {"productid": "1", "vendorid": "18164"},
        "/pcie/usb@1/usb-host-1": {"hostbus": "1", "hostport": "1.2"},
        "/pcie/usb@1/usb-host-2": {"hostaddr": "5", "hostbus": "2", "vendorid": "7531"},
        "/pcie/usb@2/usb-host": {"hostbus": "0", "loglevel": "3"}}
    rebuilt, b, status, _ = _rebuild_and_migrate(vm_factory, tmp_path, a, guest_a, backend_a)
    assert status.get("status") == "completed", (status, rebuilt)
    assert "usb-host,id=stick,bus=x.0,hostbus=1,hostport=1.2" in rebuilt, rebuilt
    _snap_b, guest_b, backend_b = _describe(b)
    assert guest_b == guest_a, rebuilt
    assert _host_facts(backend_b) == _host_facts(backend_a)  # (ids: the rebuild names the anonymous ones)


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """qemu2dtb --offline of a q35 with one usb-host (no QEMU): the guest tree and overlay to edit."""
    tmp = tmp_path_factory.mktemp("usbhost")
    out = tmp / "vm.dtb"
    res = _dtvm("qemu2dtb", "--offline", "-o", str(out), "--", *Q35, "-device", "qemu-xhci",
                "-device", "usb-host,vendorid=0x46f4,productid=1")
    assert res.returncode == 0, res.stderr
    return out, tmp / "vm.backend.dtbo"


def _refused(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    return res.stderr.strip()


NODE = "/pcie/usb@1/usb-host"


@pytest.mark.parametrize("prop, value, words", [
    ("qemu,vendorid", "1234", "qemu,vendorid selects the host USB device"),
    ("qemu,productid", "1", "qemu,productid selects the host USB device"),
    ("qemu,hostbus", "1", "qemu,hostbus names a host device or address"),
    ("qemu,hostaddr", "2", "qemu,hostaddr names a host device or address"),
    ("qemu,hostport", "1.1", "qemu,hostport names a host device or address"),
    ("qemu,hostdevice", "/dev/bus/usb/001/002", "qemu,hostdevice names a host device or address"),
    ("qemu,loglevel", "4", "qemu,loglevel sets the host's libusb log level"),
])
def test_guest_tree_naming_a_host_device_is_refused(described: tuple[Path, Path], tmp_path: Path, prop: str,
                                                    value: str, words: str) -> None:
    """A guest tree is data from anyone: one that selects a host device itself (or the host's log
    level) is refused by node path, even with the user's overlay beside it, before QEMU starts."""
    guest, backend = described
    tree = read_dtb(guest.read_bytes())
    target = tree.root.get_node(NODE)
    assert target is not None
    target.set_property(prop, value.encode() + b"\0")
    hostile = tmp_path / "hostile.dtb"
    hostile.write_bytes(write_dtb(tree))
    err = _refused(_dtvm("dtb2qemu", str(hostile), "-b", str(backend), "--offline"))
    assert err.startswith(f"dtvm dtb2qemu: {NODE}: ") and words in err, err


def test_without_overlay_it_matches_nothing(described: tuple[Path, Path]) -> None:
    """No overlay, no host device: a guest tree with a usb-host gets the selection no host device
    matches (never QEMU's empty one, which takes any), and stderr says so."""
    guest, _ = described
    res = _dtvm("dtb2qemu", str(guest), "--offline")
    assert res.returncode == 0, res.stderr
    assert "usb-host,id=usb-host,bus=qemu-xhci.0,hostbus=256" in json.loads(res.stdout)
    assert f"{NODE}: the back-end overlay selects no host device for this usb-host: it is given hostbus=256" \
        in res.stderr, res.stderr


@pytest.mark.parametrize("facts", [{"hostdevice": "/nonexistent/usb/001/002"}, {"hostbus": "3", "hostaddr": "7"}])
def test_check_start_opens_no_host_device(described: tuple[Path, Path], tmp_path: Path,
                                          facts: dict[str, str]) -> None:
    """The overlay's selection reaches the argv, never the check start (QEMU opens a hostdevice
    file, and the device at hostbus/hostaddr alone, when it makes the usb-host, and refuses it
    when absent, as both are here): the check passes on the selection that matches nothing."""
    from dtvm.vm import codec

    guest, _ = described
    overlay = tmp_path / "o.dtbo"
    overlay.write_bytes(write_dtb(codec.encode_overlay([(NODE, codec.host_props(facts))], [], {})))
    res = _dtvm("dtb2qemu", str(guest), "-b", str(overlay))
    assert res.returncode == 0, res.stderr
    spelled = ",".join(f"{k}={v}" for k, v in sorted(facts.items()))
    assert f"usb-host,id=usb-host,bus=qemu-xhci.0,{spelled}" in json.loads(res.stdout)
    assert f"QEMU will open the host device {spelled} selects (usb-host at {NODE})" in res.stderr, res.stderr


#: offline against online (one QEMU start each)
OFFLINE = {
    "q35-forms": [*Q35, *HOSTS],
    "pc-uhci": ["qemu-system-x86_64", "-M", "pc-i440fx-7.2", "-nodefaults", "-device", "piix3-usb-uhci,id=u",
                "-device", "usb-tablet", "-device", "usb-host,productid=2,suppress-remote-wake=off"],
    "aarch64-virt": ["qemu-system-aarch64", "-M", "virt-7.2", "-nodefaults", "-device", "qemu-xhci",
                     "-device", "usb-host,hostport=2,pipeline=off"],
    # QEMU opens the device at hostbus/hostaddr alone when it makes it (absent here: refused);
    # offline cannot know the host's devices: refused by name
    "q35-opened-when-made": [*Q35, "-device", "qemu-xhci", "-device", "usb-host,hostbus=3,hostaddr=7"],
}


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_offline_matches_online(name: str, tmp_path: Path) -> None:
    """qemu2dtb --offline writes the guest tree and overlay online reads, from the usb-host
    profiles recorded from QEMU (probed with the selection that matches nothing)."""
    assert_offline_matches_online(OFFLINE[name], tmp_path)
