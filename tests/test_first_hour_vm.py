"""Friction a new user met in the VM commands (issue 17), each fixed and held here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dtvm.dt.dtb import read_dtb

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "diff"


def _dtvm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", *args], capture_output=True, text=True, timeout=60)


def test_show_prints_node_paths() -> None:
    """``dtvm backend --drive /NODE=...`` wants node paths: ``show --paths`` gives each device's,
    and every one is a node of the tree."""
    blob = FIXTURES / "q35.dtb"
    res = _dtvm("show", "--paths", "--no-color", str(blob))
    assert res.returncode == 0, res.stderr
    tree = read_dtb(blob.read_bytes())
    paths = [line.rsplit("  ", 1)[-1] for line in res.stdout.splitlines() if line.rstrip().endswith(tuple("0123456789abcdefghijklmnopqrstuvwxyz"))
             and "  /" in line]
    assert len(paths) > 10
    for path in paths:
        assert path.startswith("/") and tree.get_node(path) is not None, path
    plain = _dtvm("show", "--no-color", str(blob))
    assert "  /pcie" not in plain.stdout  # only when asked


def test_mistyped_option_is_named_with_a_suggestion() -> None:
    res = _dtvm("qemu2dtb", "--ofline", "--", "qemu-system-x86_64")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip() == "dtvm qemu2dtb: no such option --ofline (did you mean --offline?)"


def test_hotplug_help_needs_no_socket() -> None:
    res = _dtvm("hotplug", "add", "--help")
    assert res.returncode == 0 and "DEVICE-OPTS" in res.stdout, res.stderr
    res = _dtvm("hotplug", "add", "virtio-net-pci")
    assert res.returncode == 2 and "--qmp unix:PATH is required" in res.stderr and "Traceback" not in res.stderr
