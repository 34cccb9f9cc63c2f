#!/usr/bin/env python3
"""Two dtvm trees compiling the same kernel boards in one process, board by board: CPU time A/B.

A wall-time benchmark on a shared machine mostly measures the other load; this one loads both
code trees side by side (each tree's ``dtvm`` modules swapped into ``sys.modules`` before it
runs, so its lazy imports find its own), runs ``dtvm.cli.dtc.run(... -O dtb ...)`` on each
board with one tree then the other (the order flipped every round), and sums the CPU time
(``time.process_time``) per tree. The first round also checks that both trees give the same
blob. The peer is the old tree (typically an older commit checked out with ``git worktree add
/tmp/OLD COMMIT``); the ratio printed is new / old (below 1: the new tree is faster).

    python bench/ab_compile.py /tmp/OLD . [--boards 300] [--rounds 3] [--phases]

``--phases`` also sums load_tree (read, scan, parse), compile_tree (checks, and the text of the
findings) and render, and the steps inside them: ``read_source``, ``scan``, ``parse``,
``name_sources`` (the file names, where the tree has it), ``findings`` (their text, dtc's or
dtvm's form, as the tree's dtc prints them) and ``newlines`` (the tables of line starts behind
their positions).  ``--quiet`` passes dtc's ``-q`` (warnings not printed, so not formatted).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import io
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import DEFAULT_ARCHES, DEFAULT_CACHE, DEFAULT_CORPUS, boards, machine_line

PHASES = ("load_tree", "compile_tree", "render")
STEPS = ("read_source", "scan", "parse", "name_sources", "findings", "newlines")


def _is_dtvm(name: str) -> bool:
    return name == "dtvm" or name.startswith("dtvm.")


class Tree:
    """One code tree's dtvm modules, kept aside while the other tree runs."""

    current: Tree | None = None

    def __init__(self, root: str, base_path: list[str], phases: dict[tuple[str, str], float] | None) -> None:
        self.root = os.path.abspath(root)
        for name in [m for m in sys.modules if _is_dtvm(m)]:
            del sys.modules[name]
        sys.path[:] = [self.root, *base_path]
        mod = importlib.import_module("dtvm.cli.dtc")
        if not str(mod.__file__).startswith(self.root):
            raise SystemExit(f"ABORT: {root}: dtvm imported from {mod.__file__}")
        self.run: Callable[..., int] = mod.run
        if phases is not None:
            for name in PHASES:
                setattr(mod, name, self._timed(getattr(mod, name), name, phases))
        self.modules: dict[str, Any] = {}
        Tree.current = None

    def time_steps(self, phases: dict[tuple[str, str], float]) -> None:
        """Wrap the steps inside the phases, in the modules this tree keeps (after ``keep``)."""
        new_layout = os.path.isdir(os.path.join(self.root, "dtvm", "dt"))
        pfx = "dtvm.dt" if new_layout else "dtvm"
        scan = importlib.import_module(pfx + ".dts.scan")
        parse = importlib.import_module(pfx + ".dts.parse")
        source = importlib.import_module(pfx + ".dts.source")
        checks = importlib.import_module("dtvm.dt.checks.runner" if new_layout else "dtvm.checks")
        scan.Scanner.run = self._timed(scan.Scanner.run, "scan", phases)
        parse.Parser.parse = self._timed(parse.Parser.parse, "parse", phases)
        if hasattr(parse, "name_sources"):
            parse.name_sources = self._timed(parse.name_sources, "name_sources", phases)
        source.read_source = self._timed(source.read_source, "read_source", phases)
        source.SourceBuffer._nl = self._timed(source.SourceBuffer._nl, "newlines", phases)
        for method in ("format", "format_dtc"):
            if hasattr(checks.Finding, method):
                setattr(checks.Finding, method, self._timed(getattr(checks.Finding, method), "findings", phases))

    def _timed(self, fn: Callable[..., Any], name: str, acc: dict[tuple[str, str], float]) -> Callable[..., Any]:
        key = (self.root, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[key] = acc.get(key, 0.0) + time.process_time() - t0

        return timed

    def keep(self) -> None:
        self.modules = {m: v for m, v in sys.modules.items() if _is_dtvm(m)}

    def enter(self) -> None:
        if Tree.current is not self:
            for name in [m for m in sys.modules if _is_dtvm(m)]:
                del sys.modules[name]
            sys.modules.update(self.modules)
            sys.path[0] = self.root  # a module imported late comes from this tree too
            Tree.current = self

    def compile(self, argv: list[str]) -> tuple[float, bytes, str]:
        self.enter()
        out, err = io.BytesIO(), io.StringIO()
        t0 = time.process_time()
        self.run(argv, out, err)
        return time.process_time() - t0, out.getvalue(), err.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("old", help="the peer: an older dtvm tree (its repository root)")
    ap.add_argument("new", help="the tree measured against it")
    ap.add_argument("--boards", type=int, default=300, help="boards, spread evenly over the corpus")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--phases", action="store_true")
    ap.add_argument("--quiet", action="store_true", help="dtc's -q: warnings neither printed nor formatted")
    ap.add_argument("--corpus", default=DEFAULT_CORPUS)
    ap.add_argument("--cache", default=DEFAULT_CACHE)
    args = ap.parse_args()
    files, _ = boards(args.corpus, DEFAULT_ARCHES, args.cache)
    files = files[:: max(1, len(files) // args.boards)][: args.boards]
    quiet = ["-q"] if args.quiet else []
    argvs = [[*b.inc_args(), *quiet, "-I", "dts", "-O", "dtb", "-o", "-", b.pp] for b in files]
    here = os.path.dirname(os.path.abspath(__file__))
    base = [p for p in sys.path if os.path.abspath(p) not in (os.path.dirname(here),)]
    phases: dict[tuple[str, str], float] | None = {} if args.phases else None
    trees = []
    for root in (args.old, args.new):
        tree = Tree(root, base, phases)
        tree.compile(argvs[0])  # its lazy imports, before its modules are put aside
        tree.keep()
        if phases is not None:
            tree.time_steps(phases)
        trees.append(tree)
    old, new = trees
    print(machine_line())
    print(f"{len(argvs)} boards, {args.rounds} rounds; old {old.root}, new {new.root}")
    for argv in argvs[:5]:  # warm-up
        for tree in trees:
            tree.compile(argv)
    if phases is not None:
        phases.clear()
    totals = {old.root: 0.0, new.root: 0.0}
    gc.collect()
    for k in range(args.rounds):
        acc = {old.root: 0.0, new.root: 0.0}
        order = trees if k % 2 == 0 else trees[::-1]
        for argv in argvs:
            outs = {}
            for tree in order:
                dt, blob, err = tree.compile(argv)
                acc[tree.root] += dt
                outs[tree.root] = (blob, err)
            if k == 0 and outs[old.root][0] != outs[new.root][0]:
                raise SystemExit(f"ABORT: the two trees' blobs differ for {argv[-1]}")
        for root in acc:
            totals[root] += acc[root]
        print(f"round {k}: old {acc[old.root]:.2f} s, new {acc[new.root]:.2f} s CPU: new/old {acc[new.root] / acc[old.root]:.3f}",
              flush=True)
    print(f"all rounds: old {totals[old.root]:.2f} s, new {totals[new.root]:.2f} s CPU: new/old "
          f"{totals[new.root] / totals[old.root]:.3f} (load average {os.getloadavg()[0]:.1f} at the end)")
    if phases:
        for name in PHASES + STEPS:
            a, b = phases.get((old.root, name), 0.0), phases.get((new.root, name), 0.0)
            indent = "  " if name in PHASES else "    "
            if a:
                print(f"{indent}{name}: {a:.2f} -> {b:.2f} s ({b / a:.3f})")
            elif b:
                print(f"{indent}{name}: (none) -> {b:.2f} s")


if __name__ == "__main__":
    main()
