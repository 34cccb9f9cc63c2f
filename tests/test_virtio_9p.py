"""virtio-9p: the guest's 9p transport in the guest tree, the host directory it exports in the
back-end overlay, held to QEMU 7.2.

The guest sees a 9p device (virtio-9p-pci and its transitional variants, virtio-9p-device on a
virtio-mmio transport) and its ``mount_tag``; the fsdev behind it (``-fsdev local,path=DIR,...``
or ``-virtfs``) is a host back-end, as a disk image is. QEMU 7.2 reports an fsdev only by its id,
so the reader takes its options from the command line (dtvm's own start, or the QMP peer's /proc
cmdline). A VM with both forms is described over QMP, rebuilt, and live-migrates into the rebuild,
whose description is the same; offline answers the same bytes; a guest tree that states the
fsdev itself, or no overlay at all, is refused naming the node.
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
from dtvm.qemu.fsdev import fsdevs_of_argv
from tests.qemu_helpers import assert_offline_matches_online

Q35 = ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults"]


def _share(tmp_path: Path, name: str = "share") -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / "hello.txt").write_text("from the host\n")
    return path


def _dtvm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", *args], capture_output=True, text=True, timeout=120)


def _fsdevs(overlay: bytes) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for frag in read_dtb(overlay).root.live_children():
        node = frag.get_child("__overlay__")
        holder = node.get_child("qemu-backends") if node is not None else None
        for child in holder.live_children() if holder is not None else []:
            if child.name.startswith("fsdev-"):
                props = {p.name: p.as_string() for p in child.live_props() if p.name != "compatible"}
                out[props.pop("id")] = props
    return out


def test_fsdev_and_virtfs_read_alike() -> None:
    """-virtfs is -fsdev plus a virtio-9p-pci: its fsdev reads as the same back-end (id: the
    mount tag unless id=; readonly spelled on/off; options sorted), so a VM given either and its
    rebuild (always -fsdev) describe one overlay."""
    one = fsdevs_of_argv(["q", "-fsdev", "local,id=tag,security_model=none,path=/srv/x,readonly"])
    two = fsdevs_of_argv(["q", "-virtfs", "local,path=/srv/x,mount_tag=tag,security_model=none,readonly=yes"])
    assert one == two
    assert one[0].options == {"driver": "local", "path": "/srv/x", "readonly": "on", "security_model": "none"}
    assert fsdevs_of_argv(["q", "--virtfs", "local,path=/a,,b,mount_tag=t,id=f1,security_model=mapped-xattr"])[0].id == "f1"


def test_round_trip_over_qmp(vm_factory: Any, tmp_path: Path) -> None:
    """Both forms users write (-fsdev with -device, -virtfs), read over QMP (the fsdev options from
    the QMP peer's command line), rebuilt by dtb2qemu (its check start on -fsdev synth), and the
    original live-migrates into the rebuild: one QEMU pair, one migration."""
    from tests.test_dtb2qemu import _describe, _rebuild_and_migrate, _start

    if shutil.which(Q35[0]) is None:
        pytest.skip(f"{Q35[0]} is not installed (its oracle cannot run)")
    one, two = _share(tmp_path, "one"), _share(tmp_path, "two")
    argv = [*Q35, "-fsdev", f"local,id=fs0,path={one},security_model=mapped-xattr,readonly=on",
            "-device", "virtio-9p-pci,fsdev=fs0,mount_tag=hostshare",
            "-virtfs", f"local,path={two},mount_tag=second,security_model=none",
            "-device", "virtio-9p-pci-transitional,fsdev=fs0,mount_tag=again"]
    a = _start(vm_factory, argv, [])
    _snap_a, guest_a, backend_a = _describe(a)
    text = guest_a.decode("latin-1")
    assert "hostshare" in text and "second" in text and str(one) not in text and str(two) not in text
    assert _fsdevs(backend_a) == {
        "fs0": {"driver": "local", "path": str(one), "readonly": "on", "security_model": "mapped-xattr"},
        "second": {"driver": "local", "path": str(two), "security_model": "none"}}
    rebuilt, b, status, _ = _rebuild_and_migrate(vm_factory, tmp_path, a, guest_a, backend_a)
    assert status.get("status") == "completed", (status, rebuilt)
    assert f"local,id=fs0,path={one},security_model=mapped-xattr,readonly=on" in rebuilt, rebuilt
    _snap_b, guest_b, backend_b = _describe(b)
    assert guest_b == guest_a, rebuilt
    assert _fsdevs(backend_b) == _fsdevs(backend_a)


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """qemu2dtb --offline of a q35 with one 9p device (no QEMU): the guest tree and overlay to edit."""
    tmp = tmp_path_factory.mktemp("9p")
    share = _share(tmp)
    out = tmp / "vm.dtb"
    res = _dtvm("qemu2dtb", "--offline", "-o", str(out), "--", *Q35, "-fsdev",
                f"local,id=fs0,path={share},security_model=none", "-device", "virtio-9p-pci,fsdev=fs0,mount_tag=t")
    assert res.returncode == 0, res.stderr
    return out, tmp / "vm.backend.dtbo"


def _refused(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    return res.stderr.strip()


def _edit(guest: Path, node: str, prop: str, value: str, tmp_path: Path) -> Path:
    tree = read_dtb(guest.read_bytes())
    target = tree.root.get_node(node)
    assert target is not None, node
    target.set_property(prop, value.encode() + b"\0")
    out = tmp_path / "hostile.dtb"
    out.write_bytes(write_dtb(tree))
    return out


@pytest.mark.parametrize("prop, value, words", [
    ("qemu,fsdev", "fs0", "qemu,fsdev names a host back-end"),                   # the fsdev itself
    ("qemu,fsdev", "local,path=/etc,security_model=none", "qemu,fsdev names a host back-end"),
    ("qemu,path", "/etc", "qemu,path: virtio-9p-pci has no such property"),      # a directory of its own
])
def test_guest_tree_stating_the_fsdev_is_refused(described: tuple[Path, Path], tmp_path: Path, prop: str, value: str,
                                                words: str) -> None:
    """A guest tree is data from anyone: one that names the fsdev (or a path) on the 9p device
    is refused by node path, even with the user's overlay beside it, before any QEMU starts."""
    guest, backend = described
    hostile = _edit(guest, "/pcie/pci-device@1/virtio", prop, value, tmp_path)
    err = _refused(_dtvm("dtb2qemu", str(hostile), "-b", str(backend), "--offline"))
    assert err.startswith("dtvm dtb2qemu: /pcie/pci-device@1/virtio: ") and words in err, err


def test_without_overlay_or_its_fsdev_the_device_is_refused(described: tuple[Path, Path], tmp_path: Path) -> None:
    """As a disk without its image: no overlay, or one that names an fsdev it does not hold (a
    VM read over QMP whose command line dtvm could not read), refuses the device by node; the
    overlay ``dtvm backend --fsdev`` writes (another host's directory) completes it."""
    guest, _ = described
    err = _refused(_dtvm("dtb2qemu", str(guest), "--offline"))
    assert "/pcie/pci-device@1: virtio-9p-pci needs a fsdev back-end; the back-end overlay gives it none" in err, err
    from dtvm.vm import codec

    unread = tmp_path / "unread.dtbo"  # the reference alone, as --qmp writes it when /proc is not readable
    unread.write_bytes(write_dtb(codec.encode_overlay(
        [("/pcie/pci-device@1/virtio", codec.host_props({"fsdev": "fs0"}))], [], {})))
    err = _refused(_dtvm("dtb2qemu", str(guest), "-b", str(unread), "--offline"))
    assert "/pcie/pci-device@1: fsdev 'fs0' is not in the back-end overlay (QEMU reports no fsdev over QMP: " \
           "give it with dtvm backend --fsdev)" in err, err
    # the overlay of another host, made by dtvm backend: the directory is this host's
    other = tmp_path / "other.dtbo"
    made = _dtvm("backend", str(guest), "-o", str(other), "--fsdev", "/pcie/pci-device@1=/srv/share,readonly")
    assert made.returncode == 0, made.stderr
    res = _dtvm("dtb2qemu", str(guest), "-b", str(other), "--offline")
    assert res.returncode == 0, res.stderr
    argv = json.loads(res.stdout)
    assert "local,id=fsdev0,path=/srv/share,security_model=none,readonly=on" in argv, argv
    assert "QEMU will open directory '/srv/share' (fsdev fsdev0, read-only)" in res.stderr, res.stderr
    bad = _dtvm("backend", str(guest), "-o", str(other), "--fsdev", "/pcie/pci-device@1=/srv/share,mode=0777")
    assert "unknown option 'mode=0777'" in _refused(bad)


def test_check_start_opens_no_host_directory(described: tuple[Path, Path], tmp_path: Path) -> None:
    """dtb2qemu's check start stands in -fsdev synth for the overlay's directory (QEMU's in-memory
    file system): a directory that does not exist on this host passes the check, and is listed on
    stderr as what the argv will make QEMU open; the argv itself exports it."""
    guest, _ = described
    other = tmp_path / "other.dtbo"
    gone = tmp_path / "not-here"
    made = _dtvm("backend", str(guest), "-o", str(other), "--fsdev", f"/pcie/pci-device@1/virtio={gone}")
    assert made.returncode == 0, made.stderr
    res = _dtvm("dtb2qemu", str(guest), "-b", str(other))
    assert res.returncode == 0, res.stderr
    assert f"local,id=fsdev0,path={gone},security_model=none" in json.loads(res.stdout)
    assert f"QEMU will open directory '{gone}' (fsdev fsdev0)" in res.stderr, res.stderr
    assert not gone.exists()


#: offline against online (one QEMU start each): name -> argv after the binary's machine, with
#: @DIR@ for a directory of the test's own
OFFLINE = {
    "q35-fsdev-virtfs": [*Q35, "-device", "virtio-rng-pci", "-virtfs", "local,path=@DIR@,mount_tag=tg,security_model=none,readonly",
                         "-fsdev", "local,id=f2,path=@DIR@,security_model=mapped-file",
                         "-device", "virtio-9p-pci-transitional,fsdev=f2,mount_tag=two"],
    "pc-non-transitional-on-bridge": ["qemu-system-x86_64", "-M", "pc-i440fx-7.2", "-nodefaults",
                                      "-device", "pci-bridge,id=br,chassis_nr=3",
                                      "-fsdev", "local,id=f,path=@DIR@,security_model=passthrough",
                                      "-device", "virtio-9p-pci-non-transitional,fsdev=f,mount_tag=t,bus=br,addr=2"],
    "aarch64-virt-mmio": ["qemu-system-aarch64", "-M", "virt-7.2", "-nodefaults", "-fsdev",
                          "local,id=f,path=@DIR@,security_model=none", "-device", "virtio-9p-device,fsdev=f,mount_tag=m"],
    # QEMU refuses a 9p device whose fsdev the command line lacks: offline too, in one line
    "q35-no-such-fsdev": [*Q35, "-device", "virtio-9p-pci,fsdev=nope,mount_tag=t"],
}


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_offline_matches_online(name: str, tmp_path: Path) -> None:
    """qemu2dtb --offline writes the guest tree and overlay online reads (the fsdev from the
    command line in both), from the 9p profiles recorded from QEMU."""
    share = _share(tmp_path)
    assert_offline_matches_online([a.replace("@DIR@", str(share)) for a in OFFLINE[name]], tmp_path)


@pytest.mark.parametrize("options, words", [
    ({"driver": "proxy", "sock_fd": "3"}, "fsdev option 'sock_fd' is not one dtvm gives back for proxy"),
    ({"driver": "handle", "path": "/srv"}, "fsdev driver 'handle' is not one dtvm gives back"),
    ({"driver": "local", "path": "/srv", "security_model": "none", "throttling.bps-total": "1000000"}, ""),
])
def test_overlay_fsdev_options(described: tuple[Path, Path], tmp_path: Path, options: dict[str, str], words: str) -> None:
    """What the overlay's fsdev says is given back only where dtb2qemu knows it (an inherited
    file descriptor cannot be; another driver is named); throttling passes through."""
    from dtvm.vm import codec
    from dtvm.vm.model import Backend

    guest, _ = described
    overlay = tmp_path / "o.dtbo"
    overlay.write_bytes(write_dtb(codec.encode_overlay(
        [("/pcie/pci-device@1/virtio", codec.host_props({"fsdev": "f"}))], [Backend("fsdev", "f", options)], {})))
    res = _dtvm("dtb2qemu", str(guest), "-b", str(overlay), "--offline")
    if words:
        err = _refused(res)
        assert err.startswith("dtvm dtb2qemu: /qemu-backends fsdev f: ") and words in err, err
    else:
        assert res.returncode == 0, res.stderr
        assert "local,id=f,path=/srv,security_model=none,throttling.bps-total=1000000" in json.loads(res.stdout)
