"""The proof that a VM moves to a newer QEMU: described on one version, rebuilt for the other with
``dtb2qemu --binary``, and live-migrated into it.

Across versions (q35 and pc, pinned 7.2 machine types, both ways): VM A runs on one QEMU, dtvm
describes it, ``dtb2qemu --binary OTHER`` writes the argv (its argv[0] is the other QEMU), VM B
starts from it with ``-incoming defer``, A migrates into B and both sides must say ``completed``,
and B's description must be byte-identical to A's.  On 10.0 alone, the round-trip suite's
configurations with unpinned machine types (what 10.0 builds: ``pc-q35-10.0``, ``virt-10.0``,
``pseries-10.0``, riscv64 ``virt``) go through the same.

The whole set is the ``versions_full`` marker (``make test-versions``, about 3 minutes); the default
run keeps a few configurations of each kind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.qemu_helpers import needs_qemu10, qemu10

pytest.importorskip("qemu.qmp")

from tests.test_dtb2qemu import CASES, FORBIDDEN, _describe, _migrate, _start

#: configurations of the default run (the rest: -m versions_full)
QUICK = {"q35-defaults", "q35-blk-net", "pc-defaults", "q35-hotplug", "aarch64-virt-pcie", "pseries-nodefaults",
         "riscv64-virt-devices"}

#: the machine type 10.0 builds for each pinned 7.2 type (unpinned: its alias)
UNPINNED = {"pc-q35-7.2": "q35", "pc-i440fx-7.2": "pc", "virt-7.2": "virt", "pseries-7.2": "pseries"}


def _cases(names: list[str]) -> list[Any]:
    return [pytest.param(n, marks=() if n in QUICK else pytest.mark.versions_full) for n in sorted(names)]


X86 = [n for n, (argv, _) in CASES.items() if argv[0] == "qemu-system-x86_64"]


def _unpinned(argv: list[str]) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "-M":
            head, _, rest = out[i + 1].partition(",")
            out[i + 1] = UNPINNED.get(head, head) + ("," + rest if rest else "")
    return out


def _dtb2qemu(tmp: Path, guest: bytes, backend: bytes, binary: str) -> list[str]:
    gpath, bpath = tmp / "a.dtb", tmp / "a.backend.dtbo"
    gpath.write_bytes(guest)
    bpath.write_bytes(backend)
    res = subprocess.run([sys.executable, "-m", "dtvm", "dtb2qemu", str(gpath), "-b", str(bpath), "--binary", binary,
                          "--format", "json"], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    argv = json.loads(res.stdout)
    assert argv[0] == binary
    assert not FORBIDDEN & set(argv)
    return list(argv)


def _move(vm_factory: Any, tmp: Path, argv: list[str], hotplug: list[dict[str, Any]], target: str) -> None:
    a = _start(vm_factory, argv, hotplug)
    _, guest_a, backend_a = _describe(a)
    rebuilt = _dtb2qemu(tmp, guest_a, backend_a, target)
    b = vm_factory([*rebuilt, "-incoming", "defer"])
    # pseries: QEMU 7.2 crashes on dumpdtb after an incoming migration, so B is described before
    before = _describe(b) if "pseries" in " ".join(rebuilt) else None
    status = _migrate(a, b, tmp)
    assert status.get("status") == "completed", (status, rebuilt)
    _, guest_b, _ = before if before is not None else _describe(b)
    assert guest_b == guest_a, rebuilt


@needs_qemu10("qemu-system-x86_64")
@pytest.mark.parametrize("name", _cases(X86))
@pytest.mark.parametrize("way", ["7.2->10.0", "10.0->7.2"])
def test_moves_across_versions(name: str, way: str, vm_factory: Any, tmp_path: Path) -> None:
    argv, hotplug = CASES[name]
    old, new = argv[0], qemu10(argv[0])
    source, target = (old, new) if way == "7.2->10.0" else (new, old)
    _move(vm_factory, tmp_path, [source, *argv[1:]], hotplug, target)


@pytest.mark.parametrize("name", _cases(list(CASES)))
def test_round_trip_on_10_0(name: str, vm_factory: Any, tmp_path: Path) -> None:
    argv, hotplug = CASES[name]
    binary = qemu10(argv[0])
    if not Path(binary).exists():
        pytest.skip(f"QEMU 10.0's {argv[0]} is not installed ({binary}; scripts/install-qemu10 installs it)")
    _move(vm_factory, tmp_path, [binary, *_unpinned(argv)[1:]], hotplug, binary)


# ---------------------------------------------------------- what QEMU cannot migrate across versions

#: (name, command line, direction): QEMU itself fails these with identical command lines
BLOCKED = [
    ("aarch64-virt", ["qemu-system-aarch64", "-M", "virt-7.2"], "7.2->10.0"),
    ("arm-virt", ["qemu-system-arm", "-M", "virt-7.2"], "10.0->7.2"),
    ("pseries", ["qemu-system-ppc64", "-M", "pseries-7.2"], "10.0->7.2"),
    ("riscv64-virt", ["qemu-system-riscv64", "-M", "virt"], "7.2->10.0"),
    # XICS (ic-mode dual, pseries' default): 10.0 has no icp/server to load into
    ("pseries-xics", ["qemu-system-ppc64", "-M", "pseries-7.2", "-cpu", "power10"], "7.2->10.0"),
    # XIVE with a POWER9 7.2 has and 10.0 has too: the SLB, 10.0 -> 7.2
    pytest.param("pseries-xive", ["qemu-system-ppc64", "-M", "pseries-7.2,ic-mode=xive", "-cpu", "power9"], "10.0->7.2",
                 marks=pytest.mark.versions_full),
    ("esp-pci", ["qemu-system-x86_64", "-M", "pc-i440fx-7.2", "-nodefaults", "-device", "dc390,addr=6"],
     "7.2->10.0"),
    ("two-slirp", ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults", "-netdev", "user,id=a",
                   "-netdev", "user,id=b"], "10.0->7.2"),
]


def _rebuild_on(vm_factory: Any, argv: list[str], target: str, tmp_path: Path) -> tuple[Any, bytes, Any]:
    """Start ARGV, describe it, and ask ``dtb2qemu --binary TARGET`` for its rebuild: (the VM,
    its guest tree, dtb2qemu's completed process)."""
    a = vm_factory(argv)
    _, guest, backend = _describe(a)
    (tmp_path / "a.dtb").write_bytes(guest)
    (tmp_path / "a.backend.dtbo").write_bytes(backend)
    res = subprocess.run([sys.executable, "-m", "dtvm", "dtb2qemu", str(tmp_path / "a.dtb"), "-b",
                          str(tmp_path / "a.backend.dtbo"), "--binary", target], capture_output=True, text=True,
                         timeout=120)
    return a, guest, res


@pytest.mark.parametrize("name,argv,way", BLOCKED, ids=[getattr(b, "values", b)[0] for b in BLOCKED])
def test_refuses_what_qemu_cannot_migrate(name: str, argv: list[str], way: str, vm_factory: Any, tmp_path: Path) -> None:
    """dtb2qemu --binary refuses, naming /qemu and quoting QEMU; and QEMU itself, given the
    identical command line on the other version, does fail to receive, in those words."""
    import re

    if not Path(qemu10(argv[0])).exists():
        pytest.skip(f"QEMU 10.0's {argv[0]} is not installed (scripts/install-qemu10 installs it)")
    old, new = argv[0], qemu10(argv[0])
    source, target = (old, new) if way == "7.2->10.0" else (new, old)
    a, _, res = _rebuild_on(vm_factory, [source, *argv[1:]], target, tmp_path)
    assert res.returncode == 1 and res.stdout == "", res
    assert res.stderr.startswith("dtvm dtb2qemu: /qemu: QEMU cannot migrate this VM from "), res.stderr
    assert len(res.stderr.splitlines()) == 1
    # the oracle: QEMU, given the identical command line, cannot receive it
    b = vm_factory([target, *argv[1:], "-incoming", "defer"])
    status = _migrate(a, b, tmp_path)
    assert status.get("status") == "failed", status
    b.stop()
    said = b.proc.stderr.read().decode(errors="replace") if b.proc.stderr else ""
    data = json.loads((Path(__file__).parent.parent / "dtvm/qemu/data/versions.json").read_text())
    rule = next(r for r in data["no-migration"] if r["qemu"] in res.stderr)
    words = [w for w in re.split(r"; | \(|\)$", rule["qemu"]) if len(w) > 20]
    # a PCI slot QEMU names is the example's: any slot matches
    assert any(re.search(re.sub(r"0000:00:[0-9a-f]{2}\\\.\d", r"[0-9a-f:.]+", re.escape(w.split(": ", 1)[-1])), said)
               for w in words), (words, said)


#: (name, command line, direction, node): QEMU can migrate these, but the target version builds
#: the same versioned machine type as other hardware for the guest at ``node``
OTHER = [
    ("pseries-power10-xive", ["qemu-system-ppc64", "-M", "pseries-7.2,ic-mode=xive,cap-dfp=off,vsmt=2", "-cpu",
                              "power10"], "7.2->10.0", "/cpus", True),
    # (without -cpu, 10.0's pseries-7.2 takes POWER9 v2.2, and the identical command line does not migrate)
    pytest.param("pseries-power9-xive", ["qemu-system-ppc64", "-M", "pseries-7.2,ic-mode=xive", "-cpu", "power9_v2.0"],
                 "7.2->10.0", "/cpus", True, marks=pytest.mark.versions_full),
    ("usb-storage-4k", ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults", "-device", "qemu-xhci,addr=3",
                        "-drive", "if=none,id=d0,file=@IMG@,format=raw", "-device",
                        "usb-storage,drive=d0,logical_block_size=4096,physical_block_size=4096"], "10.0->7.2",
     "/pcie/usb@3/storage@1/disk@0,0,0", False),
]


@pytest.mark.parametrize("name,argv,way,node,migrates", OTHER,
                         ids=[getattr(o, "values", o)[0] for o in OTHER])
def test_refuses_what_the_target_builds_otherwise(name: str, argv: list[str], way: str, node: str, migrates: bool,
                                                  vm_factory: Any, tmp_path: Path) -> None:
    """dtb2qemu --binary refuses, naming the node; the oracle: the identical command line,
    described on the target QEMU, differs from the source's description at that node (and where
    said, QEMU does migrate it: the refusal is for the guest, not for QEMU)."""
    from tests.qemu_random import _first_difference

    if not Path(qemu10(argv[0])).exists():
        pytest.skip(f"QEMU 10.0's {argv[0]} is not installed (scripts/install-qemu10 installs it)")
    image = tmp_path / "img.raw"
    image.write_bytes(b"\0" * (1 << 20))
    args = [a.replace("@IMG@", str(image)) for a in argv[1:]]
    old, new = argv[0], qemu10(argv[0])
    source, target = (old, new) if way == "7.2->10.0" else (new, old)
    a, guest, res = _rebuild_on(vm_factory, [source, *args], target, tmp_path)
    assert res.returncode == 1 and res.stdout == "", res
    assert res.stderr.startswith(f"dtvm dtb2qemu: {node}: QEMU "), res.stderr
    assert len(res.stderr.splitlines()) == 1
    copy = tmp_path / "img2.raw"  # A holds its image's lock
    copy.write_bytes(image.read_bytes())
    same = vm_factory([target, *(x.replace(str(image), str(copy)) for x in args)])
    _, other, _ = _describe(same)
    diff = _first_difference(other, guest)
    assert f"{node}:" in diff or f"{node}/" in diff, diff
    if migrates:
        b = vm_factory([target, *args, "-incoming", "defer"])
        status = _migrate(a, b, tmp_path)
        assert status.get("status") == "completed", status


@needs_qemu10("qemu-system-x86_64")
def test_refuses_a_property_the_older_version_lacks(vm_factory: Any, tmp_path: Path) -> None:
    new = qemu10("qemu-system-x86_64")
    a = vm_factory([new, "-M", "pc-q35-7.2", "-nodefaults", "-device", "virtio-net-pci,guest_uso4=on,addr=3"])
    _, guest, backend = _describe(a)
    (tmp_path / "a.dtb").write_bytes(guest)
    (tmp_path / "a.backend.dtbo").write_bytes(backend)
    res = subprocess.run([sys.executable, "-m", "dtvm", "dtb2qemu", str(tmp_path / "a.dtb"), "-b",
                          str(tmp_path / "a.backend.dtbo"), "--binary", "qemu-system-x86_64"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 1 and res.stdout == ""
    # named at the node that holds it (the proxy's virtio device), as every property a proxy takes from it
    assert res.stderr == ("dtvm dtb2qemu: /pcie/ethernet@3/virtio: qemu,guest_uso4: virtio-net-pci has no such property "
                          "in QEMU 7.2\n")
    # QEMU 7.2 itself has no such property (the oracle of the catalog)
    oracle = subprocess.run(["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults", "-S", "-display", "none",
                             "-device", "virtio-net-pci,guest_uso4=on"], capture_output=True, text=True, timeout=60)
    assert oracle.returncode != 0 and "guest_uso4" in oracle.stderr, oracle


def test_refuses_a_migration_that_changes_the_hardware(vm_factory: Any, tmp_path: Path) -> None:
    """sb16 from 10.0 to 7.2: QEMU's identical migration completes, and the 7.2 guest then has
    its sb16 at I/O port 0 with other DMA channels and version (its migration state holds the
    properties). dtb2qemu --binary refuses it by /qemu; the oracle is QEMU doing exactly that.
    Found by tests/qemugen.py's second stream (seed 7506)."""
    argv = ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults", "-audiodev", "none,id=snd", "-device",
            "sb16,audiodev=snd"]
    if not Path(qemu10(argv[0])).exists():
        pytest.skip(f"QEMU 10.0's {argv[0]} is not installed (scripts/install-qemu10 installs it)")
    a, guest, res = _rebuild_on(vm_factory, [qemu10(argv[0]), *argv[1:]], argv[0], tmp_path)
    assert res.returncode == 1 and res.stderr.startswith("dtvm dtb2qemu: /qemu: QEMU cannot migrate this VM from "), res
    b = vm_factory([argv[0], *argv[1:], "-incoming", "defer"])
    assert _migrate(a, b, tmp_path).get("status") == "completed"
    _, after, _ = _describe(b)
    assert after != guest and b"sb16@i220" in guest and b"sb16@i220" not in after
