#!/usr/bin/env python3
"""dtvm.pylibfdt against pylibfdt (the C libfdt) on the kernel's blobs: the same walk, both modules.

Every board of the corpus is preprocessed and compiled by dtc once into the cache
(as bench_dtb_read does); then, in this process, each blob is walked with the
same code and each module in turn: ``Fdt(data)``, every node by ``next_node``
with ``get_name``, every property by ``first_property_offset`` /
``next_property_offset`` / ``get_property_by_offset``.  Before timing, the two
walks' results are compared for every blob; any difference aborts.  A pure-Python
libfdt is slower than C by nature: the ratio says by how much.

    python bench/bench_pylibfdt.py [--corpus DIR] [--arch arm] [--limit N] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from typing import Any

from _common import add_common_args, arches_of, boards, dtc_version, fmt_samples, machine_line
from bench_dtb_read import ensure_blobs

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import libfdt

import dtvm.pylibfdt


def walk(lib: Any, blobs: list[tuple[str, bytes]]) -> list[Any]:
    out: list[Any] = []
    for _name, data in blobs:
        fdt = lib.Fdt(data)
        quiet = (lib.NOTFOUND,)
        node, depth = 0, 0
        while depth >= 0 and node >= 0:
            out.append(fdt.get_name(node))
            prop = fdt.first_property_offset(node, quiet)
            while prop >= 0:
                p = fdt.get_property_by_offset(prop)
                out.append((p.name, bytes(p)))
                prop = fdt.next_property_offset(prop, quiet)
            node, depth = fdt.next_node(node, depth, quiet)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap)
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds; the lowest total per module is reported")
    args = ap.parse_args()
    files, cpp_failed = boards(args.corpus, arches_of(args), args.cache, args.limit)
    print(f"# bench_pylibfdt  {machine_line()}")
    print(f"# blobs by {dtc_version()}; corpus {os.path.abspath(args.corpus)}; arch {', '.join(arches_of(args))}")
    blobs, rejected = ensure_blobs(files)
    ref = walk(libfdt, blobs)
    if walk(dtvm.pylibfdt, blobs) != ref:
        raise SystemExit("ABORT: dtvm.pylibfdt and pylibfdt walk the blobs differently")
    print(f"blobs: {len(blobs)}; {len(ref)} names and properties; skipped: {len(cpp_failed)} cpp failed, {rejected} dtc rejected")
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(max(1, args.repeat)):
        for label, lib in (("pylibfdt", libfdt), ("dtvm.pylibfdt", dtvm.pylibfdt)):
            t0 = time.perf_counter()
            walk(lib, blobs)
            samples[label].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in samples.items()}
    for label in ("pylibfdt", "dtvm.pylibfdt"):
        print(f"{label:<16} {best[label]:>8.3f}s   {fmt_samples(samples[label], 3)}")
    print(f"\ndtvm.pylibfdt/pylibfdt = {best['dtvm.pylibfdt'] / best['pylibfdt']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
