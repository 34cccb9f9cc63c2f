"""dtvm validate vs dtschema's dt-validate on QEMU 7.2's DTBs, with the same bindings.

dt-validate gets dtvm's bindings exported (``dtvm bindings export``) and processed by
``dt-mk-schema`` together with dtschema's core schemas. Measured:

* whole process, per blob: ``dtvm validate BLOB`` vs ``dt-validate -s SCHEMA BLOB``
  (goal: dtvm at least 20x faster);
* in process: loading all bindings (goal < 200 ms), the first validation of the
  aarch64 virt DT (compiles its schemas), then later validations (goal < 20 ms).

Usage: python bench/bench_validate.py [--reps N] [--blobs GLOB]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

FIXTURES = os.path.join(REPO, "fixtures", "qemu-dt")
BINDINGS = os.path.join(REPO, "bindings")
VIRT = os.path.join(FIXTURES, "aarch64-virt-default.dtb")


def wall(cmd: list[str], reps: int) -> tuple[float, int]:
    """Median wall time of ``cmd`` (s) and its exit status."""
    times, rc = [], 0
    for _ in range(reps):
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        times.append(time.perf_counter() - t0)
    return statistics.median(times), rc


def in_process(reps: int) -> None:
    t0 = time.perf_counter()
    from dtvm.bindings import load_bindings, validate_tree
    from dtvm.cli.validate import load_input

    t_import = time.perf_counter() - t0
    loads = []
    for _ in range(max(reps, 5)):
        t0 = time.perf_counter()
        bset = load_bindings([BINDINGS])
        loads.append(time.perf_counter() - t0)
    dt = load_input(VIRT)
    t0 = time.perf_counter()
    validate_tree(dt, bset, VIRT)
    first = time.perf_counter() - t0
    later = []
    for _ in range(max(reps * 10, 20)):
        t0 = time.perf_counter()
        res = validate_tree(dt, bset, VIRT)
        later.append(time.perf_counter() - t0)
    n = len(bset)
    print(f"in process ({n} bindings; importing the validator {t_import * 1e3:.1f} ms):")
    print(
        f"  load all bindings      {statistics.median(loads) * 1e3:8.1f} ms   (goal < 200 ms; first load {loads[0] * 1e3:.1f} ms)"
    )
    print(f"  aarch64 virt, first    {first * 1e3:8.1f} ms   (compiles the schemas it uses)")
    print(
        f"  aarch64 virt, later    {statistics.median(later) * 1e3:8.2f} ms   (goal < 20 ms; {res.checked} nodes checked, {len(res.findings)} findings)"
    )
    print(
        f"  ratio to the goals     load {0.200 / statistics.median(loads):.1f}x under, validate {0.020 / statistics.median(later):.1f}x under"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="runs per blob and tool (median)")
    ap.add_argument("--blobs", default=os.path.join(FIXTURES, "*.dtb"))
    args = ap.parse_args()
    in_process(args.reps)
    if shutil.which("dt-validate") is None or shutil.which("dt-mk-schema") is None:
        print("dt-validate not installed (pip install dtschema): whole-process comparison skipped")
        return 0
    blobs = sorted(glob.glob(args.blobs))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "schemas")
        dtvm = [sys.executable, "-m", "dtvm"]
        subprocess.run(
            [*dtvm, "bindings", "export", "-q", "--bindings", BINDINGS, out],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        processed = os.path.join(tmp, "processed.json")
        t0 = time.perf_counter()
        subprocess.run(["dt-mk-schema", "-j", "-o", processed, out], check=True, stderr=subprocess.DEVNULL)
        print(f"\ndt-mk-schema (once, not counted per blob): {time.perf_counter() - t0:.2f} s")
        print(
            f"\nwhole process, median of {args.reps} (dtvm: {' '.join(os.path.basename(a) for a in dtvm)} validate):"
        )
        print(f"  {'blob':40} {'dtvm':>8} {'dt-validate':>12} {'ratio':>7}")
        ratios, tot_d, tot_s = [], 0.0, 0.0
        for blob in blobs:
            td, rcd = wall([*dtvm, "validate", "--bindings", BINDINGS, blob], args.reps)
            ts, _rcs = wall(["dt-validate", "-s", processed, blob], args.reps)
            ratios.append(ts / td)
            tot_d, tot_s = tot_d + td, tot_s + ts
            flag = "" if rcd == 0 else f"  (dtvm exit {rcd})"
            print(f"  {os.path.basename(blob):40} {td * 1e3:6.0f}ms {ts * 1e3:10.0f}ms {ts / td:6.1f}x{flag}")
        print(f"  {'total':40} {tot_d:7.2f}s {tot_s:11.2f}s {tot_s / tot_d:6.1f}x")
        print(
            f"  per-blob ratio: median {statistics.median(ratios):.1f}x, min {min(ratios):.1f}x (goal >= 20x)"
        )
        # the same blobs in one process each: how much of each side is start-up
        td, _ = wall([*dtvm, "validate", "--bindings", BINDINGS, *blobs], 1)
        ts, _ = wall(["dt-validate", "-s", processed, *blobs], 1)
        print(
            f"  all {len(blobs)} blobs in one invocation: dtvm {td:.2f} s, dt-validate {ts:.2f} s, ratio {ts / td:.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
