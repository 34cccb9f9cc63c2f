"""dtvm validate vs dtschema's dt-validate on QEMU 7.2's DTBs, with the same bindings.

dt-validate gets dtvm's bindings exported (``dtvm bindings export``) and processed by
``dt-mk-schema`` together with dtschema's core schemas. Measured in one run:

* whole process, per blob: ``dtvm validate BLOB`` vs ``dt-validate -s SCHEMA BLOB``, dtvm
  with a warm binding cache (the normal case, and the one the goal is for: dtvm at least
  20x faster) and with a cold one (every run builds the cache: YAML, validator code, write);
  ``python -c pass`` too, the floor no Python tool gets under;
* in process: loading all bindings from YAML (goal < 200 ms) and from the cache, the first
  validation of the aarch64 virt DT (its checks generated, or read from the cache),
  then later validations (goal < 20 ms).

Both tools run with the same interpreter (the scripts next to ``sys.executable``, not shell
shims) and the same environment, with Python's bytecode cache on (an installed package has
its ``.pyc`` files; ``PYTHONDONTWRITEBYTECODE`` would make every dtvm run compile dtvm's
sources), in a private ``PYTHONPYCACHEPREFIX``; one untimed warm-up run of each first.

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
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from _common import machine_line  # noqa: E402

FIXTURES = os.path.join(REPO, "fixtures", "qemu-dt")
BINDINGS = os.path.join(REPO, "bindings")
VIRT = os.path.join(FIXTURES, "aarch64-virt-default.dtb")
GOAL_RATIO = 20.0


def script(name: str) -> str | None:
    """The console script ``name`` of this interpreter's environment (else on PATH)."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.access(here, os.X_OK) else shutil.which(name)


def wall(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall time of one run of ``cmd`` (s) and its exit status."""
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO).returncode
    return time.perf_counter() - t0, rc


def in_process(reps: int, cache_dir: str) -> None:
    t0 = time.perf_counter()
    from dtvm.bindings import load_bindings, validate_tree
    from dtvm.cli.validate import load_input

    t_import = time.perf_counter() - t0
    dt = load_input(VIRT)

    def median_ms(fn: Callable[[], object], n: int) -> tuple[float, float]:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1e3, times[0] * 1e3

    yaml_ms, yaml_first = median_ms(lambda: load_bindings([BINDINGS]), max(reps, 5))
    os.environ["DTVM_CACHE_DIR"] = cache_dir
    load_bindings([BINDINGS], cache=True)  # make sure it is there
    cached_ms, _ = median_ms(lambda: load_bindings([BINDINGS], cache=True), max(reps, 5) * 4)

    bset = load_bindings([BINDINGS])
    t = time.perf_counter()
    validate_tree(dt, bset, VIRT)
    first_yaml = (time.perf_counter() - t) * 1e3
    cset = load_bindings([BINDINGS], cache=True)
    t = time.perf_counter()
    validate_tree(dt, cset, VIRT)
    first_cached = (time.perf_counter() - t) * 1e3
    later, _ = median_ms(lambda: validate_tree(dt, cset, VIRT), max(reps * 10, 20))
    res = validate_tree(dt, cset, VIRT)
    print(f"in process ({len(bset)} bindings; importing the validator {t_import * 1e3:.1f} ms):")
    print(f"  load all bindings, YAML     {yaml_ms:8.1f} ms   (goal < 200 ms; first load {yaml_first:.1f} ms)")
    print(f"  load all bindings, cache    {cached_ms:8.1f} ms   (index only; the checks' code is read when used)")
    print(f"  aarch64 virt, first         {first_yaml:8.1f} ms   (YAML set: generates and compiles its checks)")
    print(f"  aarch64 virt, first         {first_cached:8.1f} ms   (cached set: reads their code from the cache)")
    print(f"  aarch64 virt, later         {later:8.2f} ms   (goal < 20 ms; {res.checked} nodes checked, {len(res.findings)} findings)")
    print(f"  ratio to the goals          load {200 / yaml_ms:.1f}x under, validate {20 / later:.1f}x under")


def prime(cmd: list[str], env: dict[str, str], cache_dir: str) -> None:
    """One run that leaves a cache file (files changed in the last 2 s are not cached: wait them out)."""
    for _ in range(3):
        wall(cmd, env)
        if os.path.isdir(cache_dir) and any(n.endswith(".cache") for n in os.listdir(cache_dir)):
            return
        time.sleep(2.1)
    raise SystemExit(f"ABORT: {' '.join(cmd)} wrote no binding cache into {cache_dir}")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="runs per blob and tool (median)")
    ap.add_argument("--blobs", default=os.path.join(FIXTURES, "*.dtb"))
    args = ap.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("DTVM_NO_CACHE", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
        warm_dir = os.path.join(tmp, "cache-warm")
        in_process(args.reps, os.path.join(tmp, "cache-inproc"))
        dt_validate, dt_mk_schema = script("dt-validate"), script("dt-mk-schema")
        if dt_validate is None or dt_mk_schema is None:
            print("dt-validate not installed (pip install dtschema): whole-process comparison skipped")
            return 0
        blobs = sorted(glob.glob(args.blobs))
        out = os.path.join(tmp, "schemas")
        dtvm = [sys.executable, "-m", "dtvm"]
        subprocess.run([*dtvm, "bindings", "export", "-q", "--bindings", BINDINGS, out], check=True, stderr=subprocess.DEVNULL, cwd=REPO)
        processed = os.path.join(tmp, "processed.json")
        t0 = time.perf_counter()
        subprocess.run([dt_mk_schema, "-j", "-o", processed, out], check=True, stderr=subprocess.DEVNULL)
        print(f"\ndt-mk-schema (once, not counted per blob): {time.perf_counter() - t0:.2f} s")

        warm_env = {**env, "DTVM_CACHE_DIR": warm_dir}
        validate = [*dtvm, "validate", "--bindings", BINDINGS]
        floor = [sys.executable, "-c", "pass"]
        # warm-ups: bytecode for both tools, and dtvm's binding cache
        prime([*validate, VIRT], warm_env, warm_dir)
        wall([dt_validate, "-s", processed, VIRT], env)
        wall(floor, env)

        print(f"\nwhole process, median of {args.reps} (dtvm: python -m dtvm validate; dt-validate: {dt_validate}):")
        print(f"  {'blob':40} {'python':>7} {'dtvm warm':>10} {'dtvm cold':>10} {'dt-validate':>12} {'warm':>7} {'cold':>7}")
        rows = []
        for blob in blobs:
            t_floor, t_warm, t_cold, t_dtv = [], [], [], []
            rc_warm = rc_cold = 0
            for i in range(args.reps):  # interleaved, so that background load hits all alike
                t_floor.append(wall(floor, env)[0])
                t, rc_warm = wall([*validate, blob], warm_env)
                t_warm.append(t)
                cold_dir = os.path.join(tmp, f"cache-cold-{len(rows)}-{i}")  # empty: this run builds it
                t, rc_cold = wall([*validate, blob], {**env, "DTVM_CACHE_DIR": cold_dir})
                t_cold.append(t)
                shutil.rmtree(cold_dir, ignore_errors=True)
                t_dtv.append(wall([dt_validate, "-s", processed, blob], env)[0])
            row = tuple(statistics.median(x) for x in (t_floor, t_warm, t_cold, t_dtv))
            rows.append(row)
            fl, w, c, d = row
            flag = "" if rc_warm == rc_cold == 0 else f"  (dtvm exit {rc_warm}/{rc_cold})"
            print(f"  {os.path.basename(blob):40} {fl * 1e3:5.0f}ms {w * 1e3:8.0f}ms {c * 1e3:8.0f}ms {d * 1e3:10.0f}ms {d / w:6.1f}x {d / c:6.1f}x{flag}")
        tot = [sum(r[k] for r in rows) for k in range(4)]
        print(f"  {'total':40} {tot[0]:6.2f}s {tot[1]:9.2f}s {tot[2]:9.2f}s {tot[3]:11.2f}s {tot[3] / tot[1]:6.1f}x {tot[3] / tot[2]:6.1f}x")
        warm_ratios = [r[3] / r[1] for r in rows]
        cold_ratios = [r[3] / r[2] for r in rows]
        floor_ratios = [r[3] / r[0] for r in rows]
        met = sum(x >= GOAL_RATIO for x in warm_ratios)
        print(
            f"  warm cache (the goal's case): ratio median {statistics.median(warm_ratios):.1f}x, min {min(warm_ratios):.1f}x,"
            f" max {max(warm_ratios):.1f}x; {met} of {len(rows)} blobs at >= {GOAL_RATIO:.0f}x"
        )
        print(f"  cold cache (first run after a binding changed): ratio median {statistics.median(cold_ratios):.1f}x, min {min(cold_ratios):.1f}x")
        print(
            f"  python -c pass vs dt-validate: median {statistics.median(floor_ratios):.1f}x, min {min(floor_ratios):.1f}x"
            " (no Python program can beat these ratios)"
        )
        # the same blobs in one process each: how much of each side is start-up
        td, _ = wall([*validate, *blobs], warm_env)
        ts, _ = wall([dt_validate, "-s", processed, *blobs], env)
        print(f"  all {len(blobs)} blobs in one invocation: dtvm {td:.2f} s (warm), dt-validate {ts:.2f} s, ratio {ts / td:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
