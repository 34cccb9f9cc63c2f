#!/usr/bin/env python3
"""Start-up: ``dtvm dtc --version`` and a one-file compile as fresh processes, against dtc.

Each command runs as a subprocess ``--runs`` times (default 20, interleaved so
that background load hits all of them alike, after one untimed warm-up each);
the median wall time is reported. Compared:

  dtvm dtc --version                     vs  dtc --version
  dtvm dtc -I dts -O dtb -o OUT FILE     vs  dtc -I dts -O dtb -o OUT FILE

FILE defaults to dtvm/examples/example.dts; OUT is a scratch file (not
/dev/null: see the README). The goal is that each dtvm command takes at most
150 ms; ``python -c pass`` and ``python -c "import dtvm.cli"`` are timed too as the
interpreter's floor. ``--importtime`` prints the slowest imports of the compile.

    python bench/bench_startup.py [--runs 20] [--file board.dts] [--importtime]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _common import REPO, dtc_version, goal, machine_line

GOAL_MS = 150.0


def dtvm_command() -> list[str]:
    exe = shutil.which("dtvm")
    return [exe] if exe else [sys.executable, "-m", "dtvm"]


def run_once(argv: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(
            f"ABORT: {' '.join(argv)} exited {p.returncode}:\n{p.stderr.decode(errors='replace')}"
        )
    return dt


def importtime(argv: list[str], top: int) -> None:
    """The slowest imports (cumulative) of ``argv`` run with ``python -X importtime``."""
    p = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True)
    rows = []
    for line in p.stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cum, name = (x.strip() for x in line[len("import time:") :].split("|"))
        rows.append((int(cum), name))
    rows.sort(reverse=True)
    print(f"\nslowest imports of `{' '.join(argv)}` (cumulative, us):")
    for cum, name in rows[:top]:
        print(f"  {cum:>8}  {name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="runs per command; the median is reported")
    ap.add_argument(
        "--file", default=os.path.join(REPO, "dtvm", "examples", "example.dts"), help="the DTS to compile"
    )
    ap.add_argument(
        "--importtime", action="store_true", help="also list the slowest imports of the dtvm compile"
    )
    args = ap.parse_args()

    dtvm = dtvm_command()
    with tempfile.TemporaryDirectory(prefix="dtvm-bench-") as scratch:
        out_dtc = os.path.join(scratch, "dtc.dtb")
        out_dtvm = os.path.join(scratch, "dtvm.dtb")
        commands = {
            "dtc --version": ["dtc", "--version"],
            "dtvm dtc --version": [*dtvm, "dtc", "--version"],
            "dtc -O dtb FILE": ["dtc", "-I", "dts", "-O", "dtb", "-o", out_dtc, args.file],
            "dtvm dtc -O dtb FILE": [*dtvm, "dtc", "-I", "dts", "-O", "dtb", "-o", out_dtvm, args.file],
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import dtvm.cli'": [sys.executable, "-c", "import dtvm.cli"],
        }
        for argv in commands.values():  # warm-up: page cache, .pyc files
            run_once(argv)
        with open(out_dtc, "rb") as f1, open(out_dtvm, "rb") as f2:
            if f1.read() != f2.read():
                raise SystemExit("ABORT: dtvm's blob differs from dtc's")
        samples: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(max(1, args.runs)):
            for name, argv in commands.items():
                samples[name].append(run_once(argv))

    med = {k: 1000 * statistics.median(v) for k, v in samples.items()}
    print(f"# bench_startup  {machine_line()}")
    print(
        f"# {dtc_version()}; dtvm: {' '.join(dtvm)}; FILE = {os.path.relpath(args.file)}; {args.runs} runs each"
    )
    print(f"{'command':<30} {'median':>9} {'min':>9} {'max':>9}")
    for name, v in samples.items():
        print(f"{name:<30} {med[name]:>7.1f}ms {1000 * min(v):>7.1f}ms {1000 * max(v):>7.1f}ms")
    print()
    for what, mine, theirs in (
        ("--version", "dtvm dtc --version", "dtc --version"),
        ("one-file compile", "dtvm dtc -O dtb FILE", "dtc -O dtb FILE"),
    ):
        print(
            f"{what:<17} dtvm/dtc = {med[mine] / med[theirs]:6.1f}x   dtvm {med[mine]:.1f} ms"
            f" (goal <= {GOAL_MS:.0f} ms: {goal(med[mine] <= GOAL_MS)})"
        )
    if args.importtime:
        with tempfile.TemporaryDirectory(prefix="dtvm-bench-") as scratch:
            out = os.path.join(scratch, "out.dtb")
            importtime(["-m", "dtvm", "dtc", "-I", "dts", "-O", "dtb", "-o", out, args.file], 15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
