#!/usr/bin/env python3
"""`dtvm fdtget` of one property from a 1 MB blob vs the C fdtget, wall time with start-up (goal: 150 ms).

    python bench/bench_fdtget.py [--runs 20]
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


def make_blob(d: str) -> str:
    lines = ["/dts-v1/;", "/ {"]
    for i in range(2500):
        lines.append(f'  node{i}@{i:x} {{ compatible = "vendor,dev{i}", "generic"; reg = <{i} 0x100>;')
        lines.append("    data = [" + " ".join(f"{j & 255:02x}" for j in range(300)) + "];")
        lines.append(f'    child {{ a = <1 2 3>; b = "str{i}"; }};')
        lines.append("  };")
    lines.append('  last { target = "found"; };')
    lines.append("};")
    src = os.path.join(d, "big.dts")
    with open(src, "w") as f:
        f.write("\n".join(lines))
    out = os.path.join(d, "big.dtb")
    subprocess.run(["dtc", "-q", "-O", "dtb", "-o", out, src], check=True)
    return out


def median_ms(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True)
        times.append(time.perf_counter() - t0)
        if p.stdout != b"found\n":
            sys.exit(f"unexpected output from {cmd}: {p.stdout!r} {p.stderr!r}")
    return statistics.median(times) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    dtvm = shutil.which("dtvm") or sys.exit("dtvm is not on PATH")
    with tempfile.TemporaryDirectory() as d:
        blob = make_blob(d)
        size = os.path.getsize(blob)
        c = median_ms(["fdtget", blob, "/last", "target"], args.runs)
        me = median_ms([dtvm, "fdtget", blob, "/last", "target"], args.runs)
        direct = median_ms([sys.executable, "-m", "dtvm", "fdtget", blob, "/last", "target"], args.runs)
    print(f"blob: {size / 1e6:.2f} MB, median of {args.runs} runs, load avg {os.getloadavg()[0]:.2f}")
    print(f"fdtget (C)                {c:8.1f} ms")
    print(f"dtvm fdtget (console)     {me:8.1f} ms   ratio {me / c:.1f}x   goal <= 150 ms: {'MET' if me <= 150 else 'MISSED'}")
    print(f"python -m dtvm fdtget     {direct:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
