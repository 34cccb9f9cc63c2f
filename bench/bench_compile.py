#!/usr/bin/env python3
"""Compile the kernel's trees: dtc (a process per file) vs dtvm (one process) vs Zephyr's dtlib.

All three run in the same invocation on the same preprocessed files (the
kernel's cpp step, done once into a cache and not timed):

  dtc          ``dtc -i src/ARCH -i DIR -I dts -O dtb -o SCRATCH FILE.pp``, one
               process per file (as ``make dtbs`` runs it);
  dtvm         ``dtvm.cli.dtc.run([...same args, -o -...], BytesIO(), StringIO())``
               for every file in this process (what ``dtvm compile --jobs 1`` does
               per file);
  dtvm compile ``dtvm compile --jobs 1 -o TMPDIR -i ... FILES`` as subprocesses, one
               per include-path group (src/ARCH plus the file's directory);
               start-up included (``--no-subprocess`` skips it);
  dtlib        ``devicetree.dtlib.DT(FILE.pp, include_path=[...])`` for every
               file in this process: parsing only, no checks, no blob.

Each loop is timed as a whole, with a timestamp between files (so that the
garbage collector's passes between files are counted; subsets are summed from
these per-file spans); checks on the results run after the loop.

Files cpp or dtc reject are skipped. Files dtlib raises on (its stricter alias
name rules) are excluded from the headline totals of all three tools; a second
line gives the totals over every file dtc accepts, with dtlib's time up to its
error. Every blob dtvm produces (in process and via ``dtvm compile``) is
compared with dtc's, outside the timed sections; any difference aborts.

Each round times every tool once; with ``--repeat N`` the lowest total per tool
is reported (the least disturbed by other load) together with every sample.

    python bench/bench_compile.py [--corpus DIR] [--arch arm --arch arm64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

from _common import (
    Board,
    add_common_args,
    arches_of,
    boards,
    dtc_version,
    fmt_samples,
    goal,
    machine_line,
    ratio,
)

GOAL_DTVM_OVER_DTC = 2.5
GOAL_DTLIB_OVER_DTVM = 3.5


def dtc_reference(files: list[Board]) -> tuple[dict[str, bytes], list[str]]:
    """dtc's blob for every file (untimed; also warms the page cache) and the files dtc rejects."""
    blobs: dict[str, bytes] = {}
    rejected: list[str] = []
    for b in files:
        p = subprocess.run(
            ["dtc", *b.inc_args(), "-I", "dts", "-O", "dtb", "-o", "-", b.pp],
            capture_output=True,
        )
        if p.returncode == 0:
            blobs[b.pp] = p.stdout
        else:
            rejected.append(b.rel)
    return blobs, rejected


def per_file(files: list[Board], marks: list[float]) -> dict[str, float]:
    """Per-file times from contiguous timestamps (one before each file and one after the last).

    Everything between two files counts for the first: in particular the cyclic
    garbage collector's passes over the previous file's tree, which dtvm defers
    until its run returns (a timer around each call alone would miss them).
    """
    return {b.pp: marks[i + 1] - marks[i] for i, b in enumerate(files)}


def time_dtc(files: list[Board], scratch: str) -> dict[str, float]:
    """One dtc process per file. Output goes to a scratch file, stderr (warnings) to a sink file.

    Not /dev/null: on this machine it may be a regular file (see the README).
    """
    out = os.path.join(scratch, "dtc-out.dtb")
    clock = time.perf_counter
    with open(os.path.join(scratch, "dtc-stderr.txt"), "wb") as sink:
        marks = [clock()]
        for b in files:
            argv = ["dtc", *b.inc_args(), "-I", "dts", "-O", "dtb", "-o", out, b.pp]
            rc = subprocess.run(argv, stdout=sink, stderr=sink).returncode
            marks.append(clock())
            if rc != 0:
                raise SystemExit(f"dtc failed on {b.rel} during timing (exit {rc})")
    return per_file(files, marks)


def time_dtvm(files: list[Board], reference: dict[str, bytes]) -> dict[str, float]:
    """Every file through ``dtvm.cli.dtc.run`` in this process; then each blob checked against dtc's."""
    from dtvm.cli.dtc import run

    clock = time.perf_counter
    results: list[tuple[int, io.BytesIO, io.StringIO]] = []
    marks = [clock()]
    for b in files:
        out = io.BytesIO()
        err = io.StringIO()
        rc = run([*b.inc_args(), "-I", "dts", "-O", "dtb", "-o", "-", b.pp], out, err)
        results.append((rc, out, err))
        marks.append(clock())
    for b, (rc, out, err) in zip(files, results, strict=True):
        if rc != 0:
            raise SystemExit(f"ABORT: dtvm rejects {b.rel} (exit {rc}) but dtc accepts it:\n{err.getvalue()}")
        if out.getvalue() != reference[b.pp]:
            raise SystemExit(f"ABORT: dtvm's blob for {b.rel} differs from dtc's")
    return per_file(files, marks)


def time_dtlib(files: list[Board]) -> tuple[dict[str, float], dict[str, str]]:
    """dtlib parsing every file; times (up to the error for files it raises on) and its errors."""
    from devicetree import dtlib

    clock = time.perf_counter
    errors: dict[str, str] = {}
    marks = [clock()]
    for b in files:
        try:
            dtlib.DT(b.pp, include_path=list(b.include_dirs))
        except Exception as exc:  # dtlib.DTError and whatever else: a finding, not a crash
            # only the text: the exception's traceback would keep the half-built tree alive
            errors[b.pp] = f"{type(exc).__name__}: {exc}"
        marks.append(clock())
    return per_file(files, marks), errors


def dtvm_command() -> list[str]:
    exe = shutil.which("dtvm")
    return [exe] if exe else [sys.executable, "-m", "dtvm"]


def time_dtvm_compile(files: list[Board], reference: dict[str, bytes], scratch: str) -> float:
    """``dtvm compile --jobs 1`` as subprocesses, one per include-path group; blobs checked afterwards."""
    groups: dict[tuple[str, ...], list[Board]] = defaultdict(list)
    for b in files:
        groups[b.include_dirs].append(b)
    outdir = tempfile.mkdtemp(prefix="compile-", dir=scratch)
    total = 0.0
    with open(os.path.join(scratch, "compile-stderr.txt"), "wb") as sink:
        for inc, members in groups.items():
            argv = [*dtvm_command(), "compile", "--jobs", "1", "-o", outdir]
            for d in inc:
                argv += ["-i", d]
            argv += [b.pp for b in members]
            t0 = time.perf_counter()
            rc = subprocess.run(argv, stdout=sink, stderr=sink).returncode
            total += time.perf_counter() - t0
            if rc != 0:
                raise SystemExit(f"ABORT: dtvm compile failed (exit {rc}); see {sink.name}")
    for b in files:
        with open(os.path.join(outdir, os.path.basename(b.pp) + ".dtb"), "rb") as f:
            if f.read() != reference[b.pp]:
                raise SystemExit(f"ABORT: dtvm compile's blob for {b.rel} differs from dtc's")
    shutil.rmtree(outdir)
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap)
    ap.add_argument(
        "--repeat", type=int, default=1, help="timed rounds; the lowest total per tool is reported"
    )
    ap.add_argument("--no-subprocess", action="store_true", help="skip timing `dtvm compile` as a subprocess")
    ap.add_argument("--no-dtlib", action="store_true", help="skip dtlib")
    args = ap.parse_args()

    files, cpp_failed = boards(args.corpus, arches_of(args), args.cache, args.limit)
    print(f"# bench_compile  {machine_line()}")
    print(f"# dtc: {dtc_version()}; corpus {os.path.abspath(args.corpus)}; arch {', '.join(arches_of(args))}")
    print("# dtc reference pass (untimed) ...", flush=True)
    reference, dtc_rejected = dtc_reference(files)
    files = [b for b in files if b.pp in reference]
    print(
        f"boards: {len(files)} compiled by dtc; skipped: {len(cpp_failed)} cpp failed, {len(dtc_rejected)} dtc rejected"
    )

    totals: dict[str, list[float]] = defaultdict(list)  # tool -> per-round total over the common set
    totals_all: dict[str, list[float]] = defaultdict(list)  # tool -> per-round total over every file
    dtlib_errors: dict[str, str] = {}
    common = files
    with tempfile.TemporaryDirectory(prefix="dtvm-bench-") as scratch:
        for rnd in range(1, max(1, args.repeat) + 1):
            print(f"# round {rnd}: dtc ...", end="", flush=True)
            t_dtc = time_dtc(files, scratch)
            print(" dtvm ...", end="", flush=True)
            t_dtvm = time_dtvm(files, reference)
            t_lib: dict[str, float] = {}
            if not args.no_dtlib:
                print(" dtlib ...", end="", flush=True)
                t_lib, dtlib_errors = time_dtlib(files)
            common = [b for b in files if b.pp not in dtlib_errors]
            t_sub = None
            if not args.no_subprocess:
                print(" dtvm compile ...", end="", flush=True)
                t_sub = time_dtvm_compile(common, reference, scratch)
            print(" done", flush=True)
            for tool, t in (("dtc", t_dtc), ("dtvm", t_dtvm), ("dtlib", t_lib)):
                if t:
                    totals[tool].append(sum(t[b.pp] for b in common))
                    totals_all[tool].append(sum(t.values()))
            if t_sub is not None:
                totals["dtvm compile"].append(t_sub)

    mb = sum(os.path.getsize(b.pp) for b in common) / 1e6
    mb_all = sum(os.path.getsize(b.pp) for b in files) / 1e6
    best = {tool: min(v) for tool, v in totals.items()}
    best_all = {tool: min(v) for tool, v in totals_all.items()}
    print()
    if dtlib_errors:
        print(
            f"dtlib raised on {len(dtlib_errors)} of {len(files)} files (excluded from the headline totals), e.g.:"
        )
        for pp in list(dtlib_errors)[:3]:
            print(f"  {os.path.basename(pp)}: {dtlib_errors[pp][:110]}")
    print(f"files: {len(common)}   preprocessed input: {mb:.1f} MB   verified: every dtvm blob == dtc's")
    print(f"{'tool':<40} {'best total':>10} {'per file':>9}   all rounds (s)")
    labels = {
        "dtc": "dtc, one process per file",
        "dtvm": "dtvm, one process, jobs=1 (in-process)",
        "dtvm compile": "dtvm compile --jobs 1 (subprocesses)",
        "dtlib": "dtlib, parse only (in-process)",
    }
    for tool in ("dtc", "dtvm", "dtvm compile", "dtlib"):
        if tool in totals:
            print(
                f"{labels[tool]:<40} {best[tool]:>9.2f}s {1000 * best[tool] / len(common):>7.1f}ms"
                f"   {fmt_samples(totals[tool])}"
            )
    dtvm_dtc = best["dtvm"] / best["dtc"]
    print()
    print(
        f"dtvm/dtc     = {dtvm_dtc:.2f}   (goal <= {GOAL_DTVM_OVER_DTC}: {goal(dtvm_dtc <= GOAL_DTVM_OVER_DTC)})"
    )
    if "dtvm compile" in best:
        print(
            f"dtvm compile/dtc = {ratio(best['dtvm compile'], best['dtc'])}   (subprocess, start-up included)"
        )
    if "dtlib" in best:
        lib_dtvm = best["dtlib"] / best["dtvm"]
        print(
            f"dtlib/dtvm   = {lib_dtvm:.2f}   (goal >= {GOAL_DTLIB_OVER_DTVM}: {goal(lib_dtvm >= GOAL_DTLIB_OVER_DTVM)})"
        )
    if dtlib_errors:
        line = (
            f"all {len(files)} files ({mb_all:.1f} MB; dtlib timed up to its error): "
            f"dtc {best_all['dtc']:.2f}s, dtvm {best_all['dtvm']:.2f}s"
        )
        if "dtlib" in best_all:
            line += f", dtlib {best_all['dtlib']:.2f}s"
        line += f"; dtvm/dtc = {ratio(best_all['dtvm'], best_all['dtc'])}"
        if "dtlib" in best_all:
            line += f", dtlib/dtvm = {ratio(best_all['dtlib'], best_all['dtvm'])}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
