#!/usr/bin/env python3
"""Two dtvm trees running ``dtvm qemu2dtb -o`` of bench_qemu2dtb's q35 VM, alternately: wall and CPU.

Each run is a fresh process (``python -m dtvm`` with the tree first on ``PYTHONPATH``, as a user
runs it, with .pyc files written: ``PYTHONDONTWRITEBYTECODE`` is dropped), old and new one after
the other, the order flipped every round. Besides the wall time, the process reports its own CPU
time at exit (``getrusage(RUSAGE_SELF)``: Python's start-up, imports and dtvm's work, without
QEMU's), which a loaded machine disturbs far less than the wall time. The peer is the old tree
(``git worktree add /tmp/OLD COMMIT``); medians are printed with new / old, and the median
and quartiles of the per-round ratios (each run next to its partner: less moved by a drifting load).

``--regular`` runs each as from a regular (not editable) install: ``python -S`` with the tree and
this interpreter's site-packages on ``PYTHONPATH``, so no ``.pth`` file runs (an editable install's
finder imports pathlib and more, about 12 ms of every start here, paid by both sides alike).

    python bench/ab_qemu2dtb.py /tmp/OLD . [--runs 11] [--binary qemu-system-x86_64] [--regular]
"""

from __future__ import annotations

import argparse
import os
import re
import site
import statistics
import subprocess
import sys
import tempfile
import time

from _common import machine_line
from bench_qemu2dtb import q35_argv, set_binary

#: runs dtvm's command line in this process and reports the process's own CPU time at exit
_WRAP = """
import atexit, os, resource, runpy, sys
def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    os.write(2, f"\\nSELFCPU {1e3 * (r.ru_utime + r.ru_stime):.2f}\\n".encode())
atexit.register(_cpu)
sys.argv = ["dtvm", *sys.argv[1:]]
runpy.run_module("dtvm", run_name="__main__")
"""


def one(root: str, argv: list[str], out: str, regular: bool = False) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, *site.getsitepackages()]) if regular else root)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, *(["-S"] if regular else []), "-c", _WRAP, "qemu2dtb", "-o", out, "--", *argv],
                       env=env, capture_output=True, cwd=tempfile.gettempdir())
    wall = (time.perf_counter() - t0) * 1e3
    m = re.search(rb"SELFCPU ([0-9.]+)", p.stderr)
    if p.returncode != 0 or m is None:
        raise SystemExit(f"ABORT: {root}: dtvm qemu2dtb exited {p.returncode}:\n{p.stderr.decode(errors='replace')}")
    return wall, float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("old", help="the peer: an older dtvm tree (its repository root)")
    ap.add_argument("new", help="the tree measured against it")
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--binary", default="qemu-system-x86_64")
    ap.add_argument("--regular", action="store_true", help="as from a regular install: no .pth file runs")
    args = ap.parse_args()
    set_binary(args.binary)
    roots = [os.path.abspath(args.old), os.path.abspath(args.new)]
    with tempfile.TemporaryDirectory(prefix="dtvm-ab-qemu-") as tmp:
        images = []
        for i in range(4):
            path = os.path.join(tmp, f"disk{i}.raw")
            with open(path, "wb") as f:
                f.truncate(1 << 20)
            images.append(path)
        argv = q35_argv(images)
        out = os.path.join(tmp, "out.dtb")
        print(machine_line())
        for root in roots:  # warm-up: page cache, .pyc files, dtvm's caches
            one(root, argv, out, args.regular)
        wall: dict[str, list[float]] = {r: [] for r in roots}
        cpu: dict[str, list[float]] = {r: [] for r in roots}
        for k in range(args.runs):
            for root in roots if k % 2 == 0 else roots[::-1]:
                w, c = one(root, argv, out, args.regular)
                wall[root].append(w)
                cpu[root].append(c)
    for label, root in zip(("old", "new"), roots, strict=True):
        print(f"{label} {root}: wall median {statistics.median(wall[root]):.0f} ms, own CPU median "
              f"{statistics.median(cpu[root]):.0f} ms (min {min(cpu[root]):.0f})")
    old, new = roots
    print(f"new/old: wall {statistics.median(wall[new]) / statistics.median(wall[old]):.3f}, own CPU "
          f"{statistics.median(cpu[new]) / statistics.median(cpu[old]):.3f} "
          f"(load average {os.getloadavg()[0]:.1f} at the end)")
    # each run next to its partner of the same round: a ratio per pair, which the load's drift
    # between rounds moves much less than it moves either median
    for name, series in (("wall", wall), ("own CPU", cpu)):
        pairs = sorted(n / o for n, o in zip(series[new], series[old], strict=True))
        q1, med, q3 = statistics.quantiles(pairs, n=4) if len(pairs) > 1 else (pairs[0],) * 3
        print(f"new/old per pair, {name}: median {med:.3f} (quartiles {q1:.3f}-{q3:.3f}, {len(pairs)} pairs)")


if __name__ == "__main__":
    main()
