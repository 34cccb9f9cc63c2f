"""``dtvm qemu2dtb``'s command line read without click (cli/qemu2dtb.fast_args) against click.

The common form (-o/-b/--timeout, then QEMU's command line) is read without importing click; every
other form must be left to click (``None``).  Oracle: click itself, parsing the same arguments
for the real command (``qemu2dtb_cmd.make_context``): where ``fast_args`` answers, its values must
be click's, and the rest of click's parameters their defaults; where click refuses the arguments,
``fast_args`` must not answer.  Seeded random command lines over the options' spellings (attached
values, ``=``, ``--`` anywhere, unknown options, values that look like options).  Then the whole
command through both paths on a QEMU that refuses its arguments (no VM started): the same stderr
and exit status.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import click
import pytest

from dtvm.cli.qemu import qemu2dtb_cmd
from dtvm.cli.qemu2dtb import fast_args

SEED = int(os.environ.get("DTVM_GEN_SEED", "16017"))
ROOT = Path(__file__).resolve().parent.parent

_WORDS = ["-o", "--output", "-b", "--backend", "--timeout", "--qmp", "--offline", "--format", "--help", "-h",
          "--binary", "--bogus", "-x", "-", "--", "--output=a.dtb", "--timeout=3", "--timeout=x", "-oa.dtb",
          "-bb.dtbo", "--backend=", "-o=", "--out", "a.dtb", "b.dtbo", "5", "1e1", "nan", " 7 ", "abc", "",
          "qemu-system-x86_64", "-M", "q35", "-device", "virtio-rng-pci"]
_DEFAULTS = {"qmp": None, "libvirt_domain": None, "connect": None, "fmt": "text", "offline": False,
             "qemu_version": None, "binary": None}


def _click(args: list[str]) -> dict[str, object] | None:
    try:
        ctx = qemu2dtb_cmd.make_context("qemu2dtb", list(args))
    except click.exceptions.Exit:
        return None
    except click.ClickException:
        return None
    return dict(ctx.params)


def _case(rng: random.Random) -> list[str]:
    args = [rng.choice(_WORDS) for _ in range(rng.randrange(0, 7))]
    if rng.random() < 0.6:
        args += ["--", "qemu-system-x86_64", "-M", "q35"][rng.randrange(0, 2):]
    return args


@pytest.mark.parametrize("case", range(40))
def test_fast_args_are_clicks(case: int) -> None:
    rng = random.Random(SEED * 100 + case)
    answered = 0
    for _ in range(100):
        args = _case(rng)
        fast = fast_args(args)
        if fast is None:
            continue
        answered += 1
        ref = _click(args)
        assert ref is not None, f"{args}: click refuses what fast_args read as {fast}"
        argv = list(ref["qemu_argv"])  # type: ignore[call-overload]
        if argv and argv[0] == "--":
            argv = argv[1:]  # describe_vm's step, on either path
        assert (fast["output"], fast["backend"], fast["timeout"], fast["argv"]) == (
            ref["output"], ref["backend"], ref["timeout"], argv), args
        assert {k: ref[k] for k in _DEFAULTS} == _DEFAULTS, args
    assert answered or case % 10, "the generator never made the common form"


def test_common_forms_are_read() -> None:
    """The forms scripts use are the ones read without click (else the fast path never runs)."""
    argv = ["qemu-system-x86_64", "-M", "q35"]
    for args in (["-o", "a.dtb", "--", *argv], ["-o", "a.dtb", *argv], ["--output=a.dtb", "-b", "b.dtbo", "--", *argv],
                 ["-oa.dtb", "--timeout", "5", "--", *argv], ["-b", "b.dtbo", "--", *argv]):
        fast = fast_args(args)
        assert fast is not None and fast["argv"] == argv, args
    for args in (["--help"], ["-o", "a.dtb", "--qmp", "unix:/x"], ["-o", "a.dtb", "--offline", "--", *argv],
                 ["--", *argv], ["-o"], ["-o", "a.dtb", "--timeout", "x", *argv], ["-o", "a.dtb", "--bogus", *argv]):
        assert fast_args(args) is None, args


_VIA_CLICK = """
import sys
from dtvm.cli import qemu2dtb
qemu2dtb.fast_args = lambda args: None  # every form through click
from dtvm.cli import main
sys.argv = ["dtvm", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("args", [
    ["-o", "{tmp}/a.dtb", "--", "qemu-system-x86_64", "-M", "q35", "-device", "no-such-device"],
    ["-o", "{tmp}/a.dtb", "--timeout", "5", "{tmp}/no-such-qemu", "-M", "q35"],
    ["-b", "{tmp}/b.dtbo", "--", "qemu-system-x86_64", "-M", "no-such-machine"],
])
def test_both_paths_fail_alike(tmp_path: Path, args: list[str]) -> None:
    if "no-such-qemu" not in args[-3] and not any(
            os.access(os.path.join(d, "qemu-system-x86_64"), os.X_OK) for d in os.get_exec_path()):
        pytest.skip("qemu-system-x86_64 is not installed (its oracle cannot run)")
    args = [a.format(tmp=tmp_path) for a in args]
    assert fast_args(args) is not None
    fast = subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", *args], capture_output=True, text=True, cwd=ROOT)
    slow = subprocess.run([sys.executable, "-c", _VIA_CLICK, "qemu2dtb", *args], capture_output=True, text=True, cwd=ROOT)
    assert fast.returncode != 0 and (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)
    assert os.listdir(tmp_path) == []
