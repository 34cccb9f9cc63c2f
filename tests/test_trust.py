"""The trust model of ``dtb2qemu``: a guest tree is data, never host configuration.

Each case starts a real QEMU 7.2 (the source VM), describes it, then edits the description the
way an attacker would (a host-facing device type, a host-facing property, a ``-cpu`` with
options, a ROM path on a machine-made device, ...) and holds ``dtb2qemu`` to refusing it in one
line naming the node, with nothing written and no host file touched.  Then the host side:
the back-end overlay is taken only when named, and the check start opens none of its files or
sockets (a FIFO as disk image would block QEMU if it were opened; a regular file as socket path
would be replaced by a socket).  The catalog itself is held to QEMU's own answers.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dtvm.dt.dtb import read_dtb, write_dtb
from dtvm.dt.tree import DeviceTree
from dtvm.qemu.trust import TrustError, trust

pytest.importorskip("qemu.qmp")

from tests.test_dtb2qemu import Q35, _describe, _device_nodes, _edit, _migrate

SOURCE = [*Q35, "-blockdev", "driver=null-co,node-name=disk0", "-device", "virtio-blk-pci,drive=disk0,addr=4.0",
          "-device", "qemu-xhci,id=xhci,addr=5.0", "-device", "usb-tablet,bus=xhci.0,port=1"]


def _needs_x86() -> None:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (its oracle cannot run)")


def _dtb2qemu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", "dtb2qemu", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """The description of SOURCE (a q35 VM with its defaults, a disk, xHCI and a tablet)."""
    _needs_x86()
    from tests.conftest import VM

    vm = VM(SOURCE)
    try:
        _, guest, backend = _describe(vm)
    finally:
        vm.stop()
    return guest, backend


def _set(driver: str, name: str, value: bytes) -> Callable[[DeviceTree], None]:
    def change(dt: DeviceTree) -> None:
        node = _device_nodes(dt, driver)[0] if driver else dt.root.get_node("/qemu")
        assert node is not None
        node.set_property(name, value)
    return change


def _retype(driver: str, new: str) -> Callable[[DeviceTree], None]:
    """The node of ``driver`` claims to be ``new`` (compatible and qemu,driver)."""
    def change(dt: DeviceTree) -> None:
        node = _device_nodes(dt, driver)[0]
        node.set_property("qemu,driver", new.encode() + b"\0")
        node.set_property("compatible", f"qemu,{new}".encode() + b"\0")
    return change


def _both(*changes: Callable[[DeviceTree], None]) -> Callable[[DeviceTree], None]:
    def change(dt: DeviceTree) -> None:
        for c in changes:
            c(dt)
    return change


CRAFTED = {
    # host-facing device types, whatever their properties
    "usb-mtp": (_both(_retype("usb-tablet", "usb-mtp"), _set("usb-mtp", "qemu,rootdir", b"/\0")), "usb-mtp"),
    # a usb-host is the guest tree's, which host device it takes the overlay's (tests/test_usb_host.py)
    "usb-host-selecting": (_both(_retype("usb-tablet", "usb-host"), _set("usb-host", "qemu,vendorid", b"1133\0")),
                           "qemu,vendorid selects the host USB device"),
    "vfio-pci": (_retype("virtio-blk-pci", "vfio-pci"), "passes a host device through"),
    "vhost-vsock": (_retype("virtio-blk-pci", "vhost-vsock-pci"), "host kernel or a host process"),
    "ivshmem": (_retype("virtio-blk-pci", "ivshmem-plain"), "shares host memory"),
    "unknown-type": (_retype("virtio-blk-pci", "no-such-device"), "not one QEMU"),
    # host-facing properties on allowed types, machine-made devices included (-global)
    "romfile-path": (_set("virtio-blk-pci", "qemu,romfile", b"/etc/passwd\0"), "qemu,romfile names a host file"),
    "romfile-name": (_set("virtio-blk-pci", "qemu,romfile", b"passwd\0"), "qemu,romfile names a host file"),
    "romfile-global": (_set("ICH9-LPC", "qemu,romfile", b"/etc/passwd\0"), "qemu,romfile names a host file"),
    "rootdir": (_set("usb-tablet", "qemu,rootdir", b"/\0"), "qemu,rootdir"),
    "hostdevice": (_set("usb-tablet", "qemu,hostdevice", b"/dev/bus/usb/001/001\0"), "host device"),
    "sysfsdev": (_set("virtio-blk-pci", "qemu,sysfsdev", b"/sys/bus/pci\0"), "host device"),
    "pcap": (_set("usb-tablet", "qemu,pcap", b"/tmp/dtvm-trust-pcap\0"), "names a host file"),
    "drive-in-guest": (_set("virtio-blk-pci", "qemu,drive", b"disk0\0"), "names a host back-end"),
    "chardev-global": (_set("ICH9-LPC", "qemu,chardev", b"x\0"), "names a host back-end"),
    "unknown-prop": (_set("virtio-blk-pci", "qemu,no-such-prop", b"1\0"), "no such property"),
    "injected-key": (_set("virtio-blk-pci", "qemu,serial,file", b"x\0"), "no such property"),
    # -cpu is not QemuOpts: a comma starts a feature list, so only a bare model is taken
    "cpu-options": (_set("", "cpu-type", b"qemu64,model-id=PWNED,+vmx\0"), "cpu-type"),
    "cpu-spaces": (_set("", "cpu-type", b"qemu64 -device x\0"), "cpu-type"),
    # machine options naming host files
    "machine-kernel": (_set("", "qemu,kernel", b"/etc/passwd\0"), "qemu,kernel"),
    "machine-dumpdtb": (_set("", "qemu,dumpdtb", b"/tmp/dtvm-trust-dumpdtb\0"), "qemu,dumpdtb"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_guest_trees_are_refused(case: str, source: tuple[bytes, bytes], tmp_path: Path) -> None:
    change, needle = CRAFTED[case]
    guest, backend = source
    gpath, bpath = tmp_path / "c.dtb", tmp_path / "c.backend.dtbo"
    gpath.write_bytes(_edit(guest, change))
    bpath.write_bytes(backend)
    res = _dtb2qemu(str(gpath), "-b", str(bpath))
    assert res.returncode != 0 and res.stdout == "", res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert needle in lines[0], lines[0]
    assert not os.path.exists("/tmp/dtvm-trust-pcap") and not os.path.exists("/tmp/dtvm-trust-dumpdtb")


def test_untouched_description_is_accepted(source: tuple[bytes, bytes], tmp_path: Path) -> None:
    """The control: the same description unedited rebuilds (so each refusal above is the edit's)."""
    guest, backend = source
    gpath, bpath = tmp_path / "c.dtb", tmp_path / "c.backend.dtbo"
    gpath.write_bytes(guest)
    bpath.write_bytes(backend)
    res = _dtb2qemu(str(gpath), "-b", str(bpath))
    assert res.returncode == 0, res.stderr
    assert "-device" in json.loads(res.stdout)


def _random_edit(rnd: random.Random, dt: DeviceTree, names: list[str]) -> str:
    """Set a random catalog property of a random device node to a random value; the property."""
    nodes = [n for n in dt.root.walk() if n.get_property("qemu,driver") is not None]
    node = rnd.choice(nodes)
    prop = rnd.choice(names)
    value = rnd.choice(["/etc/passwd", "on", "1", "x,file=/etc/passwd", "../../etc/shadow", ""])
    node.set_property(f"qemu,{prop}", value.encode() + b"\0")
    return f"{node['qemu,driver'].as_string()}.{prop}"


def test_random_host_properties_never_reach_qemu(source: tuple[bytes, bytes]) -> None:
    """Seeded: 300 descriptions, each with one host-facing property of QEMU's catalog set on a
    random device node: every one refused before any argv exists (in process; the machine is
    probed once, with the real QEMU, and the probe reused)."""
    from dtvm.qemu.argv import ArgvError, Probe, build_argv, live_prober
    from dtvm.qemu.live import read_argv
    from dtvm.vm.readback import read_config

    guest, backend = source
    host_props = sorted({p for t, props in trust().types.items() for p in props
                         if trust().host_reason(t, p) is not None and "<" not in props[p]})
    assert len(host_props) > 20
    live = live_prober(read_argv)
    probes: dict[tuple[str, ...], Probe] = {}

    def prober(argv: list[str]) -> Probe:
        if tuple(argv) not in probes:
            probes[tuple(argv)] = live(argv)
        return probes[tuple(argv)]

    overlay = read_dtb(backend)
    build_argv(read_config(read_dtb(guest), overlay), prober=prober, check=False)  # the control
    rnd = random.Random(int(os.environ.get("DTVM_TRUST_SEED", "19")))
    for _ in range(300):
        dt = read_dtb(guest)
        what = _random_edit(rnd, dt, host_props)
        with pytest.raises(ArgvError) as caught:
            build_argv(read_config(dt, overlay), prober=prober, check=False)
        assert "only the back-end overlay may state it" in str(caught.value), (what, str(caught.value))
    assert len(probes) <= 2


def _chardev_vm_overlay(tmp_path: Path, vm_factory: Any) -> tuple[Any, Path, Path, Path]:
    """A VM whose virtio console has a socket chardev; its description, with the overlay's socket
    path and disk image changed to a regular file and a FIFO of ours."""
    sock = tmp_path / "serial.sock"
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(1 << 20))
    a = vm_factory([*Q35, "-nodefaults", "-chardev", f"socket,id=s0,path={sock},server=on,wait=off",
                    "-device", "virtio-serial-pci,addr=5.0", "-device", "virtconsole,chardev=s0", "-drive", f"if=none,id=hd,file={image},format=raw",
                    "-device", "virtio-blk-pci,drive=hd,addr=4.0"])
    _, guest, backend = _describe(a)
    gpath, bpath = tmp_path / "vm.dtb", tmp_path / "vm.backend.dtbo"
    gpath.write_bytes(guest)
    victim = tmp_path / "victim.txt"
    victim.write_text("user data\n")
    fifo = tmp_path / "fifo.img"
    os.mkfifo(fifo)
    tree = read_dtb(backend)
    changed = 0
    for node in tree.root.walk():
        filename = node.get_property("filename")
        if filename is not None and "unix:" in filename.as_string():
            node.set_property("filename", f"unix:{victim},server=on".encode() + b"\0")
            changed += 1
        file = node.get_property("file")
        if file is not None and file.as_string() == str(image):
            node.set_property("file", str(fifo).encode() + b"\0")
            changed += 1
    assert changed == 2
    bpath.write_bytes(write_dtb(tree))
    return a, gpath, bpath, victim


def test_check_start_opens_no_host_file(tmp_path: Path, vm_factory: Any) -> None:
    """dtb2qemu's check start runs on null back-ends: the FIFO image is never opened (QEMU would
    block on it), the regular file at the socket path is not replaced by a socket, and stderr
    names both as what the argv makes QEMU open."""
    _needs_x86()
    _, gpath, bpath, victim = _chardev_vm_overlay(tmp_path, vm_factory)
    res = _dtb2qemu(str(gpath), "-b", str(bpath))
    assert res.returncode == 0, res.stderr
    assert victim.read_text() == "user data\n" and victim.is_file()
    notes = [line for line in res.stderr.splitlines() if line.startswith("dtvm dtb2qemu: QEMU will open")]
    assert any(str(victim) in line and "socket" in line for line in notes), res.stderr
    assert any("fifo.img" in line and "file" in line for line in notes), res.stderr
    argv = json.loads(res.stdout)
    assert any(str(victim) in a for a in argv)


def test_overlay_is_never_picked_up_unasked(tmp_path: Path, vm_factory: Any) -> None:
    """vm.backend.dtbo next to vm.dtb is not read unless named: no host path reaches the argv."""
    _needs_x86()
    _, gpath, bpath, victim = _chardev_vm_overlay(tmp_path, vm_factory)
    assert bpath.name == gpath.name.replace(".dtb", ".backend.dtbo")
    res = _dtb2qemu(str(gpath), "--no-check")
    # the disk has no back-end without the overlay: refused by name, nothing of the overlay used
    assert res.returncode != 0 and "back-end" in res.stderr and str(victim) not in res.stderr + res.stdout
    assert victim.read_text() == "user data\n"


def test_rebuild_with_host_settings_migrates(tmp_path: Path, vm_factory: Any) -> None:
    """A NIC's option ROM (romfile, a file QEMU loads from the host) is kept through the overlay:
    the guest tree has no qemu,romfile, the overlay does, dtb2qemu reports it, and the rebuilt VM
    receives the original's migration (the ROM is part of the migrated RAM)."""
    _needs_x86()
    a = vm_factory([*Q35, "-nodefaults", "-device", "e1000,addr=3.0,mac=52:54:00:00:0c:01"])
    _, guest, backend = _describe(a)
    assert not any(n.get_property("qemu,romfile") is not None for n in read_dtb(guest).root.walk())
    assert any(n.get_property("qemu,romfile") is not None for n in read_dtb(backend).root.walk())
    gpath, bpath = tmp_path / "vm.dtb", tmp_path / "vm.backend.dtbo"
    gpath.write_bytes(guest)
    bpath.write_bytes(backend)
    res = _dtb2qemu(str(gpath), "-b", str(bpath))
    assert res.returncode == 0, res.stderr
    argv = json.loads(res.stdout)
    assert "QEMU will open romfile 'efi-e1000.rom'" in res.stderr, res.stderr
    b = vm_factory([*argv, "-incoming", "defer"])
    assert _migrate(a, b, tmp_path)["status"] == "completed"


def test_catalog_is_qemus() -> None:
    """The catalog equals what the installed QEMU says for a sample of types (regenerate with
    scripts/gen_qdev_catalog.py after a QEMU update)."""
    _needs_x86()
    import tempfile

    out = Path(tempfile.mkdtemp()) / "qdev.json"
    res = subprocess.run([sys.executable, "scripts/gen_qdev_catalog.py", "--out", str(out)], capture_output=True,
                         text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    if res.returncode != 0 and "No such file" in res.stderr:
        pytest.skip("a QEMU binary of the catalog is not installed")
    assert res.returncode == 0, res.stderr
    fresh = json.loads(out.read_text())
    stored = json.loads((Path(__file__).resolve().parent.parent / "dtvm/qemu/data/qdev-7.2.json").read_text())
    assert fresh == stored
    shutil.rmtree(out.parent)


def test_trust_rules_reasons() -> None:
    """Every rule of trust.json matches something of the catalog (no dead rule) and the catalog's
    link properties are host-side whatever their name, but those whose object guest-links lets a
    guest tree describe (tests/test_qom_links.py holds those values to their rule)."""
    t = trust()
    for rule in t.deny_types:
        assert any(rule.pattern.search(name) for name in t.types), rule.pattern.pattern
    for rule in t.host_props:
        assert any(rule.pattern.search(p) for props in t.types.values() for p in props), rule.pattern.pattern
    links = [(d, p) for d, props in t.types.items() for p, k in props.items() if k.startswith("link<")]
    # a link is host-side unless a guest-links rule names the object a guest tree may make for it
    guest = [(d, p) for d, p in links if t.link_of(d, p) is not None]
    assert links and all(t.host_reason(d, p) is not None for d, p in links if (d, p) not in guest)
    assert all(t.host_reason(d, p) is None for d, p in guest)
    for rule in t.guest_links:  # no dead rule
        assert any(t.link_of(d, p) is rule for d, p in guest), rule.link
    with pytest.raises(TrustError):
        t.device("vfio-pci", "/x")
    t.device("virtio-net-pci", "/x")
