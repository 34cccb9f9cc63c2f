"""Shared by the benchmarks: the corpus, the kernel's cpp step, a cache of its output, timing helpers.

Not a test module and not part of the package; the ``bench_*.py`` scripts import it
from their own directory.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_CORPUS = os.path.normpath(os.path.join(REPO, "..", "shared", "corpus", "linux-dts"))
DEFAULT_ARCHES = ("arm", "arm64")
DEFAULT_CACHE = os.path.join(tempfile.gettempdir(), "dtvm-bench-cache")
FAILED_LIST = "cpp-failed.txt"

if REPO not in sys.path:
    sys.path.insert(0, REPO)
if os.path.join(REPO, "scripts") not in sys.path:
    sys.path.insert(0, os.path.join(REPO, "scripts"))

from parity import cpp_command  # noqa: E402  (the one copy of the kernel's cpp command)


@dataclass(frozen=True)
class Board:
    """One board .dts of the corpus and its preprocessed form in the cache."""

    arch: str
    dts: str  # absolute path of the original .dts
    pp: str  # absolute path of the preprocessed file (src__ARCH__...dts.pp)
    include_dirs: tuple[str, ...]  # what dtc gets as -i: src/ARCH, then the file's directory

    def inc_args(self) -> list[str]:
        args: list[str] = []
        for d in self.include_dirs:
            args += ["-i", d]
        return args

    @property
    def rel(self) -> str:
        return os.path.basename(self.pp)[: -len(".pp")].replace("__", "/")


def add_common_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--corpus", default=DEFAULT_CORPUS, help="linux-dts corpus (default: %(default)s)")
    ap.add_argument(
        "--arch",
        action="append",
        help="architecture under CORPUS/src, repeatable (default: arm and arm64)",
    )
    ap.add_argument("--cache", default=DEFAULT_CACHE, help="preprocessed-file cache (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N boards (0: all)")


def _preprocess(job: tuple[str, str, str, str]) -> bool:
    corpus, arch, dts, pp = job
    tmp = f"{pp}.tmp{os.getpid()}"
    ok = (
        subprocess.run(
            cpp_command(corpus, arch, dts, tmp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ).returncode
        == 0
    )
    if ok:
        os.replace(tmp, pp)  # only complete output ever carries the final name
    elif os.path.exists(tmp):
        os.unlink(tmp)
    return ok


def boards(corpus: str, arches: Iterable[str], cache: str, limit: int = 0) -> tuple[list[Board], list[str]]:
    """Every board .dts of ``arches``, preprocessed once into ``cache`` (reused when present).

    Returns the boards cpp accepted and the corpus-relative names of those it failed on.
    """
    corpus = os.path.abspath(corpus)
    os.makedirs(cache, exist_ok=True)
    failed_path = os.path.join(cache, FAILED_LIST)
    known_failed: set[str] = set()
    if os.path.exists(failed_path):
        with open(failed_path) as f:
            known_failed = {line.strip() for line in f if line.strip()}
    found: list[Board] = []
    for arch in arches:
        base = os.path.join(corpus, "src", arch)
        if not os.path.isdir(base):
            raise SystemExit(f"no such architecture in the corpus: {base}")
        for dirpath, _dirs, files in os.walk(base):
            for fn in files:
                if fn.endswith(".dts"):
                    dts = os.path.join(dirpath, fn)
                    rel = os.path.relpath(dts, corpus)
                    pp = os.path.join(cache, rel.replace("/", "__") + ".pp")
                    found.append(Board(arch, dts, pp, (base, dirpath)))
    found.sort(key=lambda b: b.dts)
    if limit:
        found = found[:limit]
    todo = [
        (corpus, b.arch, b.dts, b.pp)
        for b in found
        if not os.path.exists(b.pp) and os.path.relpath(b.dts, corpus) not in known_failed
    ]
    if todo:
        print(f"preprocessing {len(todo)} files into {cache} ...", file=sys.stderr, flush=True)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as ex:
            results = list(ex.map(_preprocess, todo))
        newly = [
            os.path.relpath(dts, corpus)
            for (_c, _a, dts, _p), ok in zip(todo, results, strict=True)
            if not ok
        ]
        if newly:
            known_failed.update(newly)
            with open(failed_path, "w") as f:
                f.writelines(name + "\n" for name in sorted(known_failed))
    ok = [b for b in found if os.path.exists(b.pp)]
    failed = sorted(os.path.relpath(b.dts, corpus) for b in found if not os.path.exists(b.pp))
    return ok, failed


def arches_of(args: argparse.Namespace) -> list[str]:
    return list(args.arch or DEFAULT_ARCHES)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, list[float]]:
    """Run ``fn`` ``repeat`` times; the minimum (least disturbed by other load) and every sample."""
    samples = [timed(fn) for _ in range(max(1, repeat))]
    return min(samples), samples


def fmt_samples(samples: list[float], digits: int = 2) -> str:
    return ", ".join(f"{s:.{digits}f}" for s in samples)


def dtvm_revision() -> str:
    """The commit dtvm runs from, and whether dtvm/ has uncommitted changes (read-only git calls)."""
    try:
        head = subprocess.run(
            ["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", REPO, "status", "--porcelain", "--", "dtvm"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted dtvm/ changes" if dirty else "")


def machine_line() -> str:
    load = ""
    try:
        load = " load avg {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        pass
    return (
        f"{time.strftime('%Y-%m-%d %H:%M')} | {platform.machine()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}{load} | dtvm at {dtvm_revision()}"
    )


def dtc_version() -> str:
    p = subprocess.run(["dtc", "--version"], capture_output=True, text=True)
    return p.stdout.strip() or p.stderr.strip()


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def goal(ok: bool) -> str:
    return "MET" if ok else "MISSED"
