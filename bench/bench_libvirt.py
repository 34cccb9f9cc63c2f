#!/usr/bin/env python3
"""Describing a running libvirt domain against ``virsh dumpxml`` of it, measured in one run.

The peer is what a management host does today to record a domain: ``virsh dumpxml DOMAIN``.  dtvm
replaces that loose record with the precise one, so its cost is put next to it.  Timed, each
``--runs`` times (interleaved, after one untimed warm-up; medians reported), on one domain of the
tests' generator (``--seed``), defined and started paused for the bench and removed afterwards:

  (a) ``virsh dumpxml DOMAIN`` as a subprocess
  (b) ``dtvm qemu2dtb --libvirt DOMAIN -o OUT.dtb`` as a subprocess (end to end: start-up, the
      connection, every QMP command through libvirt's passthrough, the XML facts, both files)
  (c) ``describe_domain`` in this process on an open connection (the read and the translation)
  (d) ``virDomainGetXMLDesc`` in this process on the same connection (the API behind (a))

Needs root, libvirt 9.0 running (scripts/libvirtd.sh start) and libvirt-python.

    python bench/bench_libvirt.py [--runs 7] [--seed 1400]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def median_ms(fn: Callable[[], object], runs: int, results: dict[str, list[float]], name: str) -> None:
    t0 = time.perf_counter()
    fn()
    results.setdefault(name, []).append((time.perf_counter() - t0) * 1e3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1400)
    ap.add_argument("--connect", default="qemu:///system")
    args = ap.parse_args()

    import libvirt

    from dtvm.libvirt.describe import describe_domain
    from dtvm.vm.translate import driver_compat
    from tests.libvirt_helpers import defined_domain, generate

    out = tempfile.mkdtemp(prefix="dtvm-bench-libvirt-")
    dtvm = [sys.executable, "-m", "dtvm"]
    results: dict[str, list[float]] = {}
    conn = libvirt.open(args.connect)
    compat = driver_compat()
    with defined_domain(args.connect, generate(args.seed).xml) as dom:
        name = dom.name()
        steps: dict[str, Callable[[], object]] = {
            "(a) virsh dumpxml": lambda: subprocess.run(["virsh", "-c", args.connect, "dumpxml", name],
                                                        capture_output=True, check=True),
            "(b) dtvm qemu2dtb --libvirt": lambda: subprocess.run(
                [*dtvm, "qemu2dtb", "--libvirt", name, "--connect", args.connect, "-o", f"{out}/vm.dtb"],
                capture_output=True, check=True),
            "(c) describe_domain (in process)": lambda: describe_domain(conn.lookupByName(name), compat=compat),
            "(d) XMLDesc (in process)": lambda: conn.lookupByName(name).XMLDesc(0),
        }
        for fn in steps.values():
            fn()  # warm-up
        for _ in range(args.runs):
            for label, fn in steps.items():
                median_ms(fn, args.runs, results, label)
        timings: dict[str, float] = {}
        describe_domain(conn.lookupByName(name), compat=compat, timings=timings)
    conn.close()
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"domain: generated seed {args.seed}, {args.runs} runs, medians")
    for label, value in med.items():
        print(f"  {label:<36} {value:8.1f} ms")
    print(f"ratio (b)/(a), command against command:   {med['(b) dtvm qemu2dtb --libvirt'] / med['(a) virsh dumpxml']:.1f}x")
    print(f"ratio (c)/(d), API call against API call: {med['(c) describe_domain (in process)'] / med['(d) XMLDesc (in process)']:.1f}x")
    print(f"one read: {int(timings.get('commands', 0))} QMP commands through libvirt in {timings.get('read', 0):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
