"""-serial and -parallel given several times, offline against online: the PC machines make an ISA
port of each at the next index (the first four serial ports, three parallel), their chardevs
named serial1, parallel2, ... as vl.c names them; -device isa-serial/isa-parallel take the indexes
after them. QEMU 7.2 is the oracle: online qemu2dtb reads what it built, offline must write the
same guest tree and back-end overlay, and where QEMU refuses (a fourth parallel port) offline
refuses too, in one line.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from .qemu_helpers import assert_offline_matches_online

X86 = "qemu-system-x86_64"
SEED = 2612
CASES = 8


def _case(n: int, directory: Path) -> list[str]:
    rng = random.Random(SEED * 1000 + n)
    argv = [X86, "-M", rng.choice(["pc-q35-7.2", "pc-i440fx-7.2", "q35", "pc"])]
    if rng.random() < 0.4:
        argv.append("-nodefaults")
    ports = [("serial", k) for k in range(rng.randint(1, 5))] + [("parallel", k) for k in range(rng.randint(0, 4))]
    rng.shuffle(ports)
    for port, k in ports:
        form = rng.choice(["null", "file", "msmouse"])
        argv += [f"-{port}", f"file:{directory / f'{port}{k}.out'}" if form == "file" else form]
    for i in range(rng.randint(0, 2)):
        # a parallel port without a chardev is refused by QEMU ("empty char device"), a serial one is not
        backend = rng.random() < 0.6
        if backend:
            argv += ["-chardev", f"null,id=cd{i}"]
        argv += ["-device", rng.choice(["isa-serial", "isa-parallel"]) + (f",chardev=cd{i}" if backend else "")]
    return argv


@pytest.mark.skipif(shutil.which(X86) is None, reason="qemu-system-x86_64 (the online oracle) is not installed")
@pytest.mark.parametrize("n", range(CASES))
def test_more_ports_offline_equal_online(n: int, tmp_path: Path) -> None:
    argv = _case(n, tmp_path)
    assert_offline_matches_online(argv, tmp_path)


def test_generated_cases_reach_the_corners() -> None:
    """The seed's cases include a fifth serial port (a chardev without a port), a fourth parallel
    port (QEMU refuses it) and a -device port after the command line's: the test is not vacuous."""
    cases = [_case(n, Path("/d")) for n in range(CASES)]
    assert any(a.count("-serial") >= 5 for a in cases)
    assert any(a.count("-parallel") == 4 for a in cases)
    assert any("-device" in a and (a.count("-serial") >= 2 or a.count("-parallel") >= 2) for a in cases)
