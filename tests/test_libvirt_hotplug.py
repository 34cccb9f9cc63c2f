"""Hot-plug through libvirt: the address dtvm assigns is the one libvirt's XML and QEMU show, and a
device attached behind dtvm's back appears in the next description, marked hot-plugged.

Oracles: libvirt's live domain XML (where libvirt says the device is), the description of the
domain read again afterwards, and QOM's hotplugged flag as QEMU reports it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from tests.libvirt_helpers import PREFIX, defined_domain, dtvm_cmd, leftover_domains, libvirt_uri

__all__ = ["libvirt_uri"]

DOMAIN = f"""<domain type='qemu'><name>{PREFIX}hotplug</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='q35'>hvm</type></os>
<devices><interface type='user'><model type='virtio'/></interface><memballoon model='none'/></devices></domain>"""

TABLET = "<input type='tablet' bus='usb'/>"


def _live(dom: Any) -> ET.Element:
    return ET.fromstring(dom.XMLDesc(0))


def _free_root_port(root: ET.Element) -> int:
    """The index of a pcie-root-port nothing sits behind (libvirt keeps one for hot-plug)."""
    ports = {int(c.get("index", "0")) for c in root.iterfind("devices/controller")
             if c.get("model") == "pcie-root-port"}
    used = {int(a.get("bus", "0"), 16) for a in root.iter("address") if a.get("type") == "pci"}
    free = sorted(ports - used)
    assert free, "libvirt kept no root port free"
    return free[0]


def _facts(overlay: Path) -> dict[str, set[str]]:
    """qdev id -> the names of the properties of its overlay fragment."""
    from dtvm.dt.dtb import read_dtb
    from dtvm.vm.codec import fragments, read_string

    tree = read_dtb(overlay.read_bytes(), str(overlay))
    out: dict[str, set[str]] = {}
    for _frag, _target, over in fragments(tree):
        ident = read_string(over, "qemu,id")
        if ident:
            out[ident] = {p.name for p in over.live_props()}
    return out


def _node_of(overlay: Path, ident: str) -> str:
    """The guest node the overlay's fragment for qdev id ``ident`` targets."""
    from dtvm.dt.dtb import read_dtb
    from dtvm.vm.codec import fragments, read_string

    tree = read_dtb(overlay.read_bytes(), str(overlay))
    return next(str(target) for _f, target, over in fragments(tree) if read_string(over, "qemu,id") == ident)


def _machine_node(dom: Any, driver: str) -> str:
    """The node path of a device of ``driver`` the machine made (QOM: not under /machine/peripheral)."""
    from dtvm.libvirt.read import read_domain
    from dtvm.qemu.config import from_snapshot
    from dtvm.qemu.describe import describe_snapshot

    snapshot = read_domain(dom)
    desc = describe_snapshot(snapshot)
    dev = next(d for d in from_snapshot(snapshot).devices() if d.driver == driver and not d.user)
    return desc.nodes[dev.key()]


def test_hotplug_through_libvirt(libvirt_uri: str, tmp_path: Path) -> None:
    vm = tmp_path / "vm.dtb"
    overlay = tmp_path / "vm.backend.dtbo"
    with defined_domain(libvirt_uri, DOMAIN) as dom:
        name = dom.name()
        common = ["hotplug", "--libvirt", name, "--connect", libvirt_uri, "-o", str(vm)]
        port = _free_root_port(_live(dom))
        out = dtvm_cmd(*common, "add", f"virtio-net-pci,bus=pci.{port}")
        assert out.returncode == 0, out.stderr
        # libvirt's XML says the NIC is where dtvm put it: slot 0 behind the free root port
        nics = [n for n in _live(dom).iterfind("devices/interface")]
        assert len(nics) == 2
        address = nics[1].find("address")
        assert address is not None and int(address.get("bus", "0"), 16) == port and address.get("slot") == "0x00"
        alias = nics[1].find("alias").get("name")  # type: ignore[union-attr]
        assert "qemu,hotplugged" in _facts(overlay)[alias]
        again = dtvm_cmd("qemu2dtb", "--libvirt", name, "--connect", libvirt_uri, "-o", str(tmp_path / "b.dtb"))
        assert again.returncode == 0, again.stderr
        assert (tmp_path / "b.dtb").read_bytes() == vm.read_bytes()

        # the same port again: dtvm's assignment refuses it in one line, libvirt is not asked
        out = dtvm_cmd(*common, "add", f"virtio-net-pci,bus=pci.{port}")
        assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert len(list(_live(dom).iterfind("devices/interface"))) == 2

        # behind dtvm's back: virsh attach-device; the next description has it, marked hot-plugged
        tablet = tmp_path / "tablet.xml"
        tablet.write_text(TABLET)
        import subprocess

        subprocess.run(["virsh", "-c", libvirt_uri, "attach-device", name, str(tablet), "--live"], check=True,
                       capture_output=True)
        out = dtvm_cmd("qemu2dtb", "--libvirt", name, "--connect", libvirt_uri, "-o", str(vm))
        assert out.returncode == 0, out.stderr
        tablets = [i for i in _live(dom).iterfind("devices/input") if i.get("type") == "tablet"]
        tablet_alias = tablets[0].find("alias").get("name")  # type: ignore[union-attr]
        facts = _facts(overlay)
        assert "qemu,hotplugged" in facts[tablet_alias] and "libvirt,alias" in facts[tablet_alias]
        assert b"usb-tablet" in vm.read_bytes()

        # del: USB lets go at once; the PCI NIC waits for a guest (ACPI hot-plug): pending, marked
        # the spelling: the options after the subcommand; the tablet named by its node path
        # in the description, as plain hotplug del takes it
        tablet_node = _node_of(overlay, tablet_alias)
        out = dtvm_cmd("hotplug", "del", "--libvirt", name, "--connect", libvirt_uri, "-o", str(vm), tablet_node)
        assert out.returncode == 0 and out.stdout.startswith("deleted"), out.stdout + out.stderr
        assert not [i for i in _live(dom).iterfind("devices/input") if i.get("type") == "tablet"]
        assert b"usb-tablet" not in vm.read_bytes()
        out = dtvm_cmd(*common, "del", alias, "--wait", "1")
        assert out.returncode == 0, out.stderr
        if out.stdout.startswith("pending"):
            assert "qemu,unplug-pending" in _facts(overlay)[alias]
        else:
            assert alias not in _facts(overlay)

        # an alias libvirt does not know, and a device libvirt will not detach: one line each
        for ident in (f"{PREFIX}nosuch", "input0"):
            out = dtvm_cmd(*common, "del", ident)
            assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        # node paths: the machine's own AHCI controller is refused (libvirt did not make it), as is a
        # node no device stands for; nothing is detached
        before = ET.tostring(_live(dom))
        for node, words in ((_machine_node(dom, "ich9-ahci"), "made by the machine"), ("/nosuch@0", "no device")):
            out = dtvm_cmd(*common, "del", node)
            assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1, out.stderr
            assert words in out.stderr and node in out.stderr, out.stderr
        assert ET.tostring(_live(dom)) == before
    assert leftover_domains(libvirt_uri) == []


def test_hotplug_libvirt_needs_a_domain(libvirt_uri: str, tmp_path: Path) -> None:
    out = dtvm_cmd("hotplug", "--libvirt", f"{PREFIX}nosuch", "--connect", libvirt_uri, "add", "usb-tablet")
    assert out.returncode != 0 and "no such domain" in out.stderr and len(out.stderr.strip().splitlines()) == 1



def test_watch_follows_libvirt_events(libvirt_uri: str, tmp_path: Path) -> None:
    """hotplug watch --libvirt rewrites the description when libvirt attaches a device for
    someone else, and stops cleanly on SIGINT."""
    import signal
    import subprocess
    import sys
    import time

    vm = tmp_path / "vm.dtb"
    with defined_domain(libvirt_uri, DOMAIN.replace("hotplug<", "watch<")) as dom:
        proc = subprocess.Popen([sys.executable, "-m", "dtvm", "hotplug", "--libvirt", dom.name(), "--connect",
                                 libvirt_uri, "-o", str(vm), "watch", "--interval", "60"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not vm.exists():
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.05)
            first = vm.read_bytes()
            assert b"usb-tablet" not in first
            tablet = tmp_path / "tablet.xml"
            tablet.write_text(TABLET)
            subprocess.run(["virsh", "-c", libvirt_uri, "attach-device", dom.name(), str(tablet), "--live"],
                           check=True, capture_output=True)
            # the interval is 60 s: only libvirt's DEVICE_ADDED event can make this rewrite in time
            while b"usb-tablet" not in vm.read_bytes():
                assert proc.poll() is None and time.monotonic() < deadline, "watch did not follow the event"
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        assert "libvirt: added input" in out, out
        assert "stopped watching: interrupted" in err and "Traceback" not in err, err
    assert leftover_domains(libvirt_uri) == []
