#!/usr/bin/env python3
"""Profile dtvm's in-process compile loop (what bench_compile.py times) with cProfile.

    python bench/profile_compile.py [--arch arm] [--limit 100] [--top 30] [--out prof.pstats]

Prints the top functions by cumulative and by own (tottime) time; ``--out``
keeps the raw stats for snakeviz/pstats. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time

from _common import add_common_args, arches_of, boards, machine_line


def compile_all(files: list) -> int:
    from dtvm.cli.dtc import run

    failed = 0
    for b in files:
        argv = [*b.inc_args(), "-I", "dts", "-O", "dtb", "-o", "-", b.pp]
        if run(argv, io.BytesIO(), io.StringIO()) != 0:
            failed += 1
    return failed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap)
    ap.set_defaults(limit=100)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", help="write the raw pstats here")
    args = ap.parse_args()
    files, _failed = boards(args.corpus, arches_of(args), args.cache, args.limit)
    print(f"# profile_compile  {machine_line()}; {len(files)} files of {', '.join(arches_of(args))}")
    compile_all(files[:5])  # imports and first-use caches outside the profile
    t0 = time.perf_counter()
    compile_all(files)
    plain = time.perf_counter() - t0
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    failed = compile_all(files)
    prof.disable()
    profiled = time.perf_counter() - t0
    print(
        f"unprofiled {plain:.2f}s ({1000 * plain / len(files):.1f} ms/file), profiled {profiled:.2f}s; {failed} rejected"
    )
    if args.out:
        prof.dump_stats(args.out)
    for key in ("cumulative", "tottime"):
        s = io.StringIO()
        pstats.Stats(prof, stream=s).strip_dirs().sort_stats(key).print_stats(args.top)
        text = s.getvalue()
        print(f"\n=== by {key} ===")
        print(text[text.find("   ncalls") :].rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
