#!/usr/bin/env python3
"""Read the kernel's blobs: ``dtvm.dt.dtb.read_dtb`` vs pylibfdt walking every node and property.

Every board of the corpus is preprocessed (the kernel's cpp step) and compiled
by dtc once into the cache (``...dts.dtb`` next to the ``.pp`` files); the blobs
are then loaded into memory and, in this process, each is

  dtvm      read into a tree: ``dtvm.dt.dtb.read_dtb(data)`` (names, values,
            reservations; the tree a caller then works on);
  pylibfdt  ``libfdt.Fdt(data)`` (header check), then every node visited with
            first_subnode/next_subnode and its name read (get_name), every
            property with first_property_offset/next_property_offset/
            get_property_by_offset (name and value copied out).

Before timing, both results are compared for every blob (same node names,
property names and values in the same order); any difference aborts. With
``--repeat N`` the lowest total per tool is reported, with every sample.

    python bench/bench_dtb_read.py [--corpus DIR] [--arch arm --arch arm64] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict

from _common import add_common_args, arches_of, boards, dtc_version, fmt_samples, goal, machine_line

GOAL_DTVM_OVER_LIBFDT = 2.0


def ensure_blobs(files: list) -> tuple[list[tuple[str, bytes]], int]:
    """(name, blob) for every board dtc compiles, compiling into the cache where missing."""
    blobs: list[tuple[str, bytes]] = []
    rejected = 0
    for b in files:
        dtb = b.pp[: -len(".pp")] + ".dtb"
        if not os.path.exists(dtb):
            tmp = f"{dtb}.tmp{os.getpid()}"
            p = subprocess.run(
                ["dtc", *b.inc_args(), "-I", "dts", "-O", "dtb", "-o", tmp, b.pp],
                capture_output=True,
            )
            if p.returncode != 0:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                rejected += 1
                continue
            os.replace(tmp, dtb)
        with open(dtb, "rb") as f:
            blobs.append((b.rel, f.read()))
    return blobs, rejected


def read_dtvm(blobs: list[tuple[str, bytes]]) -> None:
    from dtvm.dt.dtb import read_dtb

    for _name, data in blobs:
        read_dtb(data)


def _libfdt_walk(fdt, libfdt, visit_node, visit_prop) -> None:  # type: ignore[no-untyped-def]
    """The walk of read_libfdt, with callbacks (for the untimed comparison)."""
    quiet = (libfdt.NOTFOUND,)
    first_subnode = fdt.first_subnode
    next_subnode = fdt.next_subnode
    first_prop = fdt.first_property_offset
    next_prop = fdt.next_property_offset
    get_prop = fdt.get_property_by_offset
    get_name = fdt.get_name
    stack = [0]
    while stack:
        node = stack.pop()
        visit_node(get_name(node))
        off = first_prop(node, quiet)
        while off >= 0:
            visit_prop(get_prop(off))
            off = next_prop(off, quiet)
        kids = []
        child = first_subnode(node, quiet)
        while child >= 0:
            kids.append(child)
            child = next_subnode(child, quiet)
        stack.extend(reversed(kids))


def read_libfdt(blobs: list[tuple[str, bytes]]) -> int:
    """Walk every blob, reading each node's name and each property; returns how many were read."""
    import libfdt

    quiet = (libfdt.NOTFOUND,)
    count = 0
    for _name, data in blobs:
        fdt = libfdt.Fdt(data)
        first_subnode = fdt.first_subnode
        next_subnode = fdt.next_subnode
        first_prop = fdt.first_property_offset
        next_prop = fdt.next_property_offset
        get_prop = fdt.get_property_by_offset
        get_name = fdt.get_name
        stack = [0]
        while stack:
            node = stack.pop()
            get_name(node)
            count += 1
            off = first_prop(node, quiet)
            while off >= 0:
                get_prop(off)
                count += 1
                off = next_prop(off, quiet)
            kids = []
            child = first_subnode(node, quiet)
            while child >= 0:
                kids.append(child)
                child = next_subnode(child, quiet)
            stack.extend(reversed(kids))
    return count


def check_same(blobs: list[tuple[str, bytes]]) -> tuple[int, int]:
    """Both readers see the same nodes and properties, in the same order; returns (nodes, props)."""
    import libfdt

    from dtvm.dt.dtb import read_dtb

    n_nodes = n_props = 0
    for name, data in blobs:
        mine: list[tuple] = []
        for node in read_dtb(data).root.walk():
            mine.append(("node", node.name))
            mine.extend(("prop", p.name, bytes(p.value)) for p in node.properties)
        theirs: list[tuple] = []
        _libfdt_walk(
            libfdt.Fdt(data),
            libfdt,
            lambda n, t=theirs: t.append(("node", n)),
            lambda p, t=theirs: t.append(("prop", p.name, bytes(p))),
        )
        if mine != theirs:
            raise SystemExit(f"ABORT: dtvm and pylibfdt read {name} differently")
        n_nodes += sum(1 for x in mine if x[0] == "node")
        n_props += sum(1 for x in mine if x[0] == "prop")
    return n_nodes, n_props


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap)
    ap.add_argument(
        "--repeat", type=int, default=5, help="timed rounds; the lowest total per tool is reported"
    )
    args = ap.parse_args()

    files, cpp_failed = boards(args.corpus, arches_of(args), args.cache, args.limit)
    print(f"# bench_dtb_read  {machine_line()}")
    print(
        f"# blobs by {dtc_version()}; corpus {os.path.abspath(args.corpus)}; arch {', '.join(arches_of(args))}"
    )
    blobs, rejected = ensure_blobs(files)
    n_nodes, n_props = check_same(blobs)
    if read_libfdt(blobs) != n_nodes + n_props:
        raise SystemExit("ABORT: the timed pylibfdt walk does not visit every node and property")
    size = sum(len(d) for _n, d in blobs) / 1e6
    print(
        f"blobs: {len(blobs)} ({size:.1f} MB, {n_nodes} nodes, {n_props} properties);"
        f" skipped: {len(cpp_failed)} cpp failed, {rejected} dtc rejected; verified: same content both ways"
    )

    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        read_dtvm(blobs)
        samples["dtvm"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        read_libfdt(blobs)
        samples["pylibfdt"].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in samples.items()}
    labels = {
        "dtvm": "dtvm read_dtb -> tree",
        "pylibfdt": "pylibfdt walk (nodes + props)",
    }
    print(f"{'tool':<32} {'best total':>10} {'per blob':>9}   all rounds (s)")
    for tool in ("dtvm", "pylibfdt"):
        print(
            f"{labels[tool]:<32} {best[tool]:>9.3f}s {1000 * best[tool] / len(blobs):>7.2f}ms"
            f"   {fmt_samples(samples[tool], 3)}"
        )
    r = best["dtvm"] / best["pylibfdt"]
    print(
        f"\ndtvm/pylibfdt = {r:.2f}   (goal <= {GOAL_DTVM_OVER_LIBFDT}: {goal(r <= GOAL_DTVM_OVER_LIBFDT)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
