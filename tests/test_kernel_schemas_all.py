"""Every arm64 board of Linux 6.1 (``make test-kernel-schemas``): dtvm against dt-validate.

Output is compared byte for byte except for the addresses of Python objects that three of
dt-validate's messages print (kc.normalise). Deselected by default (marker ``kernel_all``): dt-validate takes about 10 s of CPU a board, 748
boards. DTVM_KERNEL_BOARDS=N runs a seeded sample of N instead (DTVM_KERNEL_SEED), DTVM_KERNEL_ARCH
another architecture, DTVM_KERNEL_JOBS the dt-validate processes run at once. Prints the figures:
boards compared, identical, dt-validate crashes, boards the kernel build itself cannot compile.
dt-validate's verdicts go through the on-disk cache of scripts/kernel_oracle_cache.py (a board
already judged by this oracle version is not run again; one judged now is kept).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import kernel_corpus as kc

pytestmark = [pytest.mark.kernel_all, pytest.mark.skipif(not kc.available(), reason=kc.MISSING)]


def test_every_board_identical_to_dt_validate() -> None:
    arch = os.environ.get("DTVM_KERNEL_ARCH", "arm64")
    n = int(os.environ.get("DTVM_KERNEL_BOARDS", "0"))
    seed = int(os.environ.get("DTVM_KERNEL_SEED", "20"))
    jobs = max(1, int(os.environ.get("DTVM_KERNEL_JOBS", "2")))
    chosen = kc.sample(arch, n, seed)
    with ThreadPoolExecutor(jobs) as pool:
        dtbs = list(pool.map(lambda b: kc.build(arch, b), chosen))
    built = [(b, d) for b, d in zip(chosen, dtbs, strict=True) if d is not None]
    res = subprocess.run(
        [sys.executable, "-m", "dtvm", "validate", "--schemas", kc.PROCESSED, "--format", "json", "--jobs", str(jobs), *(d for _, d in built)],
        capture_output=True,
        text=True,
    )
    assert res.returncode in (0, 1, 2), res.stderr
    reports = {r["file"]: r for r in json.loads(res.stdout)["files"]}
    with ThreadPoolExecutor(jobs) as pool:
        oracle = list(pool.map(lambda bd: kc.dt_validate_cached(arch, bd[0]), built))
    same, crashes, differ = 0, [], []
    for (board, dtb), entry in zip(built, oracle, strict=True):
        rep = reports[dtb]
        if entry["status"] in ("crashed", "timeout"):  # a timeout: dt-validate did not finish either
            crashes.append(board)
            continue
        want = entry["stderr"]
        got = "".join(line + "\n" for line in rep["dt_validate"])
        if rep["error"] is None and kc.normalise(got) == kc.normalise(want):
            same += 1
        else:
            differ.append(board)
    print(
        f"\n{arch}: {len(chosen)} boards, {len(chosen) - len(built)} not compiled by cpp+dtc, "
        f"{len(crashes)} where dt-validate crashes, {same}/{len(built) - len(crashes)} identical"
    )
    for b in crashes:
        print(f"  dt-validate crashes: {b}")
    for b in differ:
        print(f"  DIFFERENT: {b}")
    assert not differ
