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


def _qemu(binary: str) -> None:
    import shutil

    import pytest

    if shutil.which(binary) is None:
        pytest.skip(f"{binary} is not installed (its oracle cannot run)")


def test_check_and_dtb2qemu_agree_on_a_parallel_port_without_chardev(tmp_path: Path) -> None:
    """A parallel port whose overlay lost its chardev: ``check`` passed it while QEMU refused the
    rebuild ("empty char device"); the binding's ``needs: chardev`` makes both say so, by node."""
    _qemu("qemu-system-x86_64")
    from dtvm.dt.dtb import write_dtb

    out = tmp_path / "p.dtb"
    res = _dtvm("qemu2dtb", "-o", str(out), "--", "qemu-system-x86_64", "-M", "pc-i440fx-7.2", "-nodefaults",
                "-chardev", "null,id=c", "-device", "isa-parallel,chardev=c")
    assert res.returncode == 0, res.stderr
    overlay = read_dtb(out.with_suffix(".backend.dtbo").read_bytes())
    for node in overlay.root.walk():
        if node.get_property("qemu,chardev") is not None:
            node.props = [p for p in node.props if p.name != "qemu,chardev"]
    lost = tmp_path / "lost.dtbo"
    lost.write_bytes(write_dtb(overlay))
    check = _dtvm("check", str(out), "-b", str(lost))
    assert check.returncode == 1 and "isa-parallel needs a chardev back-end" in check.stdout + check.stderr, check.stdout
    rebuild = _dtvm("dtb2qemu", str(out), "-b", str(lost))
    assert rebuild.returncode == 1 and "isa-parallel needs a chardev back-end" in rebuild.stderr, rebuild.stderr
    assert "QEMU refuses" not in rebuild.stderr  # said by dtvm before any QEMU start
    whole = _dtvm("dtb2qemu", str(out), "-b", str(out.with_suffix(".backend.dtbo")))
    assert whole.returncode == 0, whole.stderr


def test_a_moved_device_is_the_one_blamed(tmp_path: Path) -> None:
    """Moving /pcie/scsi@4 onto the e1000's slot: QEMU's refusal names both devices; dtb2qemu
    blames the one QEMU was creating (the moved one), not the slot's holder."""
    _qemu("qemu-system-x86_64")
    from dtvm.dt.dtb import write_dtb

    out = tmp_path / "m.dtb"
    res = _dtvm("qemu2dtb", "-o", str(out), "--", "qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults",
                "-device", "e1000,addr=3.0", "-device", "virtio-scsi-pci,addr=4.0")
    assert res.returncode == 0, res.stderr
    tree = read_dtb(out.read_bytes())
    node = tree.get_node("/pcie/scsi@4")
    assert node is not None
    node.name = "scsi@3"
    node.set_property("reg", (3 << 11).to_bytes(4, "big") + bytes(16))
    moved = tmp_path / "moved.dtb"
    moved.write_bytes(write_dtb(tree))
    rebuild = _dtvm("dtb2qemu", str(moved), "-b", str(out.with_suffix(".backend.dtbo")))
    assert rebuild.returncode == 1 and rebuild.stderr.startswith("dtvm dtb2qemu: /pcie/scsi@3: QEMU refuses"), rebuild.stderr


def test_mistyped_command_gets_a_suggestion() -> None:
    """Every command (and the subcommands of the groups) with one letter dropped: the error names
    the command meant, as click does for options; a word near nothing gets no guess."""
    from click.testing import CliRunner

    from dtvm.cli.group import cli

    runner = CliRunner()
    ctx = cli.make_context("dtvm", ["show", "x"], resilient_parsing=True)
    groups: list[tuple[list[str], list[str]]] = [([], cli.list_commands(ctx))]
    for name in ("machine", "hotplug"):
        sub = cli.get_command(ctx, name)
        groups.append(([name], sub.list_commands(ctx)))  # type: ignore[union-attr]
    tried = 0
    for prefix, names in groups:
        for name in names:
            typo = name[:-2] + name[-1] if len(name) > 4 else name + name[-1]
            if typo in names or len(name) < 3:
                continue
            res = runner.invoke(cli, [*prefix, typo])
            assert res.exit_code == 2
            assert f"Did you mean {name!r}?" in res.output, (typo, res.output)
            tried += 1
    assert tried > 15
    res = runner.invoke(cli, ["zzzzzz"])
    assert res.exit_code == 2 and "No such command 'zzzzzz'." in res.output and "Did you mean" not in res.output
