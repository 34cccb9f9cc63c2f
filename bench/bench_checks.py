#!/usr/bin/env python3
"""What dtc's checks cost: the arm corpus compiled with every check (dtc's defaults) vs with the
warning-level checks switched off (the error-level checks and fixups must run: they resolve
references). Peer: dtvm itself without its warnings; goal: checks add at most 30%.

    python bench/bench_checks.py [--arch arm] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import sys

from _common import add_common_args, best_of, boards, dtvm_revision, fmt_samples, goal, machine_line

from dtvm.cli.dtc import run
from dtvm.dt.checks import WARNING_CHECKS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not args.arch:
        args.arch = ["arm"]
    boards_list, _failed = boards(args.corpus, args.arch, args.cache, args.limit)
    off: list[str] = []
    for name in WARNING_CHECKS:
        off += ["-W", f"no-{name}"]

    def loop(extra: list[str]) -> None:
        for b in boards_list:
            run([*extra, *b.inc_args(), "-I", "dts", "-O", "dtb", "-o", "-", b.pp], io.BytesIO(), io.StringIO())

    print(f"# bench_checks  {machine_line()} | dtvm at {dtvm_revision()}")
    print(f"boards: {len(boards_list)} ({', '.join(args.arch)})")
    t_all, s_all = best_of(args.repeat, lambda: loop([]))
    t_err, s_err = best_of(args.repeat, lambda: loop(off))
    added = t_all / t_err - 1
    print(f"all checks (dtc defaults)        {t_all:7.2f}s   ({fmt_samples(s_all)})")
    print(f"warning-level checks off         {t_err:7.2f}s   ({fmt_samples(s_err)})")
    print(f"warnings add {added * 100:.1f}% to compile time (goal <= 30%: {goal(added <= 0.30)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
