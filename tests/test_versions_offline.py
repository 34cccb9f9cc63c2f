"""Offline models per QEMU version: ``--offline`` answers for the version of the binary it is given
(or ``--qemu-version X.Y``) from the models recorded from that QEMU (dtvm/qemu/machines/10.0/),
and says so in the description; held to QEMU 10.0 itself, online, for the offline test
configurations (pinned 7.2 types and unpinned, what 10.0 builds) and for the rebuild.

The default run keeps a few of each; the rest is the ``versions_full`` marker (``make
test-versions``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.qemu_helpers import needs_qemu10, qemu10
from tests.test_offline import CASES as OFFLINE_CASES

X86 = "qemu-system-x86_64"
UNPINNED = {"pc-q35-7.2": "q35", "pc-i440fx-7.2": "pc", "virt-7.2": "virt", "pseries-7.2": "pseries"}
#: the default run's configurations (the rest: -m versions_full)
QUICK = {"q35@pinned", "q35-netdev@unpinned", "pc@unpinned", "virt-nics@unpinned", "virt-gicv3-smp-sockets@unpinned"}


def _on10(argv: list[str], pinned: bool) -> list[str]:
    out = [qemu10(argv[0]), *argv[1:]]
    if not pinned:
        i = out.index("-M") + 1
        head, sep, rest = out[i].partition(",")
        out[i] = UNPINNED.get(head, head) + sep + rest
    return out


def _qemu2dtb(tmp: Path, argv: list[str], tag: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", *flags, "-o", str(tmp / f"{tag}.dtb"), "--", *argv],
                          capture_output=True, text=True, timeout=180)


def _params() -> list[Any]:
    out = []
    for name in sorted(OFFLINE_CASES):
        for how in ("pinned", "unpinned"):
            ident = f"{name}@{how}"
            out.append(pytest.param(name, how == "pinned", id=ident,
                                    marks=() if ident in QUICK else pytest.mark.versions_full))
    return out


@pytest.mark.parametrize("name,pinned", _params())
def test_offline_equals_online_on_10_0(name: str, pinned: bool, tmp_path: Path) -> None:
    """qemu2dtb --offline with QEMU 10.0's binary by path: the guest tree 10.0 builds (its models),
    the overlay saying qemu-version 10.0, as online qemu2dtb with that binary reads them."""
    argv = _on10(OFFLINE_CASES[name], pinned)
    if not Path(argv[0]).exists():
        pytest.skip(f"QEMU 10.0's {Path(argv[0]).name} is not installed ({argv[0]}; scripts/install-qemu10 installs it)")
    online = _qemu2dtb(tmp_path, argv, "on")
    assert online.returncode == 0, online.stderr
    offline = _qemu2dtb(tmp_path, argv, "off", "--offline")
    assert offline.returncode == 0, offline.stderr
    assert (tmp_path / "off.dtb").read_bytes() == (tmp_path / "on.dtb").read_bytes()
    from dtvm.dt.dtb import read_dtb

    qemu = read_dtb((tmp_path / "off.backend.dtbo").read_bytes()).root.walk()
    versions = {bytes(p.value) for n in qemu for p in n.properties if p.name == "qemu-version"}
    assert versions == {b"10.0\0"}


@needs_qemu10(X86)
def test_offline_version_by_option() -> None:
    """--qemu-version names the models without a binary path; a version without models is refused
    in one line naming the versions there are; --qemu-version without --offline is a usage error."""
    argv = [X86, "-M", "q35", "-nodefaults"]
    res = subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", "--offline", "--qemu-version", "10.0", "--format",
                          "dts", "--", *argv], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert 'model = "QEMU pc-q35-10.0"' in res.stdout  # the alias as 10.0 means it
    res = subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", "--offline", "--qemu-version", "8.2", "--", *argv],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == ("dtvm qemu2dtb: no offline models for QEMU 8.2 (dtvm has them for QEMU 7.2, 10.0): "
                          "leave out --offline to ask that QEMU\n")
    res = subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", "--qemu-version", "10.0", "--", *argv],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--qemu-version goes with --offline" in res.stderr


def _rebuild_params() -> list[Any]:
    from tests.test_dtb2qemu import CASES

    quick = {"q35-blk-net", "aarch64-virt-pcie"}
    return [pytest.param(n, marks=() if n in quick else pytest.mark.versions_full) for n in sorted(CASES)]


@pytest.mark.parametrize("name", _rebuild_params())
def test_offline_rebuild_equals_online_on_10_0(name: str, vm_factory: Any, tmp_path: Path) -> None:
    """dtb2qemu --offline --binary QEMU-10.0 (the machine's own devices from 10.0's models) gives
    the argv dtb2qemu --binary gives by probing QEMU 10.0, for a VM described on 10.0 (unpinned)."""
    from tests.test_dtb2qemu import CASES, rebuild_online_and_offline

    argv, hotplug = CASES[name]
    argv = _on10(argv, False)
    if not Path(argv[0]).exists():
        pytest.skip(f"QEMU 10.0's {Path(argv[0]).name} is not installed ({argv[0]}; scripts/install-qemu10 installs it)")
    online, offline = rebuild_online_and_offline(vm_factory, argv, hotplug, tmp_path, ["--binary", argv[0]])
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout) == json.loads(online.stdout)
