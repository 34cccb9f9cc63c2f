#!/usr/bin/env python3
"""Corpus parity of the other outputs: ``-O yaml``, ``-O asm`` and ``-T -O dts``, dtc against dtvm, byte for byte.

For every preprocessed kernel tree in the cache that ``scripts/parity.py``
fills (``CACHE/src__ARCH__board.dts.pp``), run dtc 1.6.1 (a process per run)
and dtvm (in this process, ``dtvm.cli.dtc.run``) with the same arguments,
``-i CORPUS/src/ARCH`` (and the board's own directory, as parity.py does),
and compare exit status and output. A run where dtc fails (exit status, or a
crash) must fail in dtvm too. Prints the figures per format and the first
difference of the first differing files; exits 1 if anything differs.

    python scripts/outputs_parity.py [--cache DIR] [--corpus DIR] [--format yaml --format asm ...]
                                     [--limit N] [--jobs N] [--show N]

Formats: yaml (-O yaml), asm (-O asm), T (-T -O dts), TT (-T -T -O dts).
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

DEFAULT_CORPUS = os.path.normpath(os.path.join(os.path.dirname(HERE), "..", "shared", "corpus", "linux-dts"))
DEFAULT_CACHE = os.path.join(tempfile.gettempdir(), "dtvm-parity-cache")

FORMATS: dict[str, list[str]] = {
    "yaml": ["-O", "yaml"],
    "asm": ["-O", "asm"],
    "T": ["-T", "-O", "dts"],
    "TT": ["-T", "-T", "-O", "dts"],
}


def dtc(args: list[str]) -> tuple[int, bytes]:
    p = subprocess.run(["dtc", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return p.returncode, p.stdout


def dtvm(args: list[str]) -> tuple[int, bytes]:
    from dtvm.cli.dtc import run

    out = io.BytesIO()
    code = run(args, out, io.StringIO())
    return code, out.getvalue()


def first_difference(ref: bytes, me: bytes) -> str:
    """Where two outputs part: the line number and both lines."""
    a = ref.decode("latin-1").split("\n")
    b = me.decode("latin-1").split("\n")
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"line {i + 1}: dtc {x[:100]!r} / dtvm {y[:100]!r}"
    return f"dtc has {len(a)} lines, dtvm {len(b)}"


def include_args(pp: str, corpus: str) -> list[str]:
    """``-i src/ARCH`` from the cache name ``src__ARCH__...``, plus the board's directory."""
    parts = os.path.basename(pp).split("__")
    args: list[str] = []
    if len(parts) >= 3 and parts[0] == "src":
        arch_dir = os.path.join(corpus, "src", parts[1])
        args += ["-i", arch_dir]
        board_dir = os.path.join(corpus, *parts[:-1])
        if board_dir != arch_dir and os.path.isdir(board_dir):
            args += ["-i", board_dir]
    return args


def check_one(job: tuple[str, str, tuple[str, ...]]) -> tuple[str, dict[str, str]]:
    """(file, {format: 'ok' | 'rejected-both' | 'diff: ...'})."""
    pp, corpus, formats = job
    inc = include_args(pp, corpus)
    result: dict[str, str] = {}
    for fmt in formats:
        args = [*inc, "-I", "dts", *FORMATS[fmt], pp]
        rc_ref, out_ref = dtc(args)
        try:
            rc_me, out_me = dtvm(args)
        except Exception as exc:  # a crash is a finding, not the end of the run
            result[fmt] = f"diff: dtvm crashed: {type(exc).__name__}: {exc}"
            continue
        if rc_ref != 0:
            result[fmt] = "rejected-both" if rc_me != 0 else f"diff: dtc fails (exit {rc_ref}), dtvm accepts"
        elif rc_me != 0:
            result[fmt] = f"diff: dtc accepts, dtvm fails (exit {rc_me})"
        elif out_ref != out_me:
            result[fmt] = "diff: " + first_difference(out_ref, out_me)
        else:
            result[fmt] = "ok"
    return os.path.basename(pp), result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=DEFAULT_CACHE, help="directory of preprocessed trees (*.pp)")
    ap.add_argument("--corpus", default=DEFAULT_CORPUS)
    ap.add_argument("--format", action="append", choices=sorted(FORMATS), help="default: yaml, asm, T")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--show", type=int, default=20, help="how many differences to list per format")
    args = ap.parse_args()
    formats = tuple(args.format or ["yaml", "asm", "T"])
    files = sorted(glob.glob(os.path.join(args.cache, "*.pp")))
    if args.limit:
        files = files[: args.limit]
    if not files:
        print(f"no *.pp files in {args.cache} (scripts/parity.py makes them)")
        return 1
    corpus = os.path.abspath(args.corpus)
    counts = {fmt: {"ok": 0, "rejected-both": 0, "diff": 0} for fmt in formats}
    diffs: dict[str, list[str]] = {fmt: [] for fmt in formats}
    identical = 0
    jobs = [(pp, corpus, formats) for pp in files]
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        for name, result in ex.map(check_one, jobs, chunksize=2):
            all_same = True
            for fmt, status in result.items():
                if status.startswith("diff"):
                    counts[fmt]["diff"] += 1
                    diffs[fmt].append(f"{name}: {status[6:]}")
                    all_same = False
                else:
                    counts[fmt][status] += 1
            identical += all_same
    print(f"files: {len(files)}  (formats: {', '.join(formats)})")
    print(f"  all formats identical (or rejected by both): {identical}")
    print(f"  differing in some format: {len(files) - identical}")
    for fmt in formats:
        c = counts[fmt]
        print(
            f"  {' '.join(FORMATS[fmt]):<16} identical {c['ok']}, rejected by both {c['rejected-both']}, differ {c['diff']}"
        )
        for line in diffs[fmt][: args.show]:
            print(f"    DIFF {line}")
    return 1 if identical != len(files) else 0


if __name__ == "__main__":
    sys.exit(main())
