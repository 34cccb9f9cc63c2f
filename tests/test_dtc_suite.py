"""dtc's own test suite (v1.6.1's tests/run_tests.sh) with dtvm as dtc, fdtget, fdtput, fdtdump and fdtoverlay.

The suite is material nobody on this project wrote: 2,039 cases that compile,
dump, edit and overlay trees and grep dtc's stderr for its check lines
(``dtc-checkfails.sh`` looks for ``ERROR (name):``/``Warning (name):``). Its C
test programs (built here with ``make tests``, libfdt's own code) read what the
tools write. dtc's source tree comes from the shared suites directory beside
the repository (see its README); without it the test is skipped with the
reason, since there is no other copy to run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARBALL = "dtc-1.6.1.tar.gz"
TOOLS = ("dtc", "fdtget", "fdtput", "fdtdump", "fdtoverlay")


def find_suite() -> Path | None:
    """``shared/suites/dtc-1.6.1.tar.gz`` beside the repository, or beside a parent (a git worktree's)."""
    env = os.environ.get("DTVM_SHARED_DIR")
    candidates = [Path(env)] if env else []
    candidates += [p / "shared" for p in ROOT.parents]
    for shared in candidates:
        path = shared / "suites" / TARBALL
        if path.is_file():
            return path
    return None


SUITE = find_suite()


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if SUITE is None:
        pytest.skip(f"no shared/suites/{TARBALL} beside the repository (CI puts shared/ next to the clone)")
    for prog in ("make", "cc"):
        if shutil.which(prog) is None:
            pytest.skip(f"building dtc's C test programs needs {prog}")
    base = tmp_path_factory.mktemp("dtc-suite")
    with tarfile.open(SUITE) as tar:
        tar.extractall(base, filter="data")
    tops = [p for p in base.iterdir() if p.is_dir()]
    assert len(tops) == 1, tops
    src = tops[0]
    p = subprocess.run(["make", "-j2", "tests"], cwd=src, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"make tests failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    return src


def make_wrappers(bindir: Path) -> None:
    """One script per tool that runs this checkout's dtvm with the same Python."""
    bindir.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        script = bindir / tool
        script.write_text(
            f'#!/bin/sh\nPYTHONPATH="{ROOT}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" -m dtvm {tool} "$@"\n'
        )
        script.chmod(0o755)


def test_run_tests_sh_all_pass(suite_dir: Path, tmp_path: Path) -> None:
    """Every case of dtc's run_tests.sh passes with dtvm's tools (Debian's C tools pass 2,039 of 2,039)."""
    bindir = tmp_path / "bin"
    make_wrappers(bindir)
    env = dict(os.environ, TEST_BINDIR=str(bindir), NO_PYTHON="1")
    start = time.monotonic()
    p = subprocess.run(
        ["./run_tests.sh"], cwd=suite_dir / "tests", env=env, capture_output=True, text=True, errors="replace", timeout=1800
    )
    elapsed = time.monotonic() - start
    out = p.stdout + p.stderr
    total = re.search(r"Total testcases:\s*(\d+)", out)
    passed = re.search(r"PASS:\s*(\d+)", out)
    assert total and passed, f"no summary from run_tests.sh:\n{out[-3000:]}"
    failures = [line for line in out.splitlines() if re.search(r"\t(FAIL|Bad configuration|Strange)", line)]
    print(f"dtc's run_tests.sh with dtvm: {passed.group(1)}/{total.group(1)} in {elapsed:.0f} s")
    assert int(total.group(1)) == 2039, f"expected dtc 1.6.1's 2,039 cases, the suite ran {total.group(1)}"
    assert passed.group(1) == total.group(1), "failing cases:\n" + "\n".join(failures[:40])
