#!/usr/bin/env python3
"""dt-validate's verdict on every board of an architecture, kept on disk, and dtvm compared to it.

dt-validate costs 10 to 16 s of CPU a board: all 766 arm64 boards of Linux 6.1 are 130 to 200
CPU-minutes, more than one sitting on a shared machine gives. So the oracle side is resumable:

    python scripts/kernel_oracle_cache.py fill    [--arch arm64] [--limit N] [--stop-at HH:MM] [--shard K/N] [--nice N]
    python scripts/kernel_oracle_cache.py compare [--arch arm64] [--jobs J] [--show N]
    python scripts/kernel_oracle_cache.py status  [--arch arm64]

``fill`` runs dt-validate board by board, one at a time, at nice 19 (it only takes CPU nobody
else wants), and stores each board's exit status and stderr under
``ORACLE/dt-validate/KEY/ARCH/BOARD.json``, KEY naming the oracle's version (dtschema, jsonschema
and ruamel.yaml versions and a digest of processed-schema.json): the next run continues where this
one stopped and never re-runs a board, and a different oracle starts a cache of its own. Boards go
in a fixed seeded order, so whatever prefix is done is a sample of all vendors. Each entry records
the digest of the DTB it judged; an entry whose DTB has changed since counts as not done.

``compare`` runs ``dtvm validate --schemas --format json`` once over every cached board and prints
boards compared / identical / dt-validate crashed / remaining, and the boards that differ (exit 1
if any). The cache is the oracle's own output, produced by dt-validate on this machine: it is the
expected output of the comparison, never a hand-written fixture.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests import kernel_corpus as kc  # noqa: E402


def fill(arch: str, limit: int, stop_at: str | None, shard: tuple[int, int] = (0, 1), nice: int = 19) -> int:
    os.nice(max(0, nice - os.nice(0)))  # by default the oracle only takes CPU nobody else wants
    top = kc.cache_dir(arch)
    done = 0
    k, n = shard
    for i, board in enumerate(kc.ordered(arch)):
        if i % n != k:
            continue
        if limit and done >= limit:
            break
        if stop_at and time.strftime("%H:%M", time.gmtime()) >= stop_at:
            print(f"stop: {stop_at} UTC reached", flush=True)
            break
        if kc.load_entry(top, arch, board) is not None:
            continue
        entry = kc.run_and_store(top, arch, board)
        if entry["status"] == "not-compiled":
            continue
        done += 1
        print(f"{time.strftime('%H:%M:%S')} {board}: {entry['status']}, {entry['cpu_s']} s CPU", flush=True)
    return 0


def _cached(arch: str) -> tuple[list[dict], int]:
    top = kc.cache_dir(arch)
    every = kc.ordered(arch)
    got = [e for e in (kc.load_entry(top, arch, b) for b in every) if e is not None]
    return got, len(every) - len(got)


def status(arch: str) -> int:
    got, remaining = _cached(arch)
    ok = [e for e in got if e["status"] == "ok"]
    cpu = sum(e.get("cpu_s", 0) for e in got)
    print(f"{arch}: {len(got)} boards cached ({len(ok)} processed, "
          f"{sum(e['status'] == 'crashed' for e in got)} dt-validate crashed, "
          f"{sum(e['status'] == 'not-compiled' for e in got)} not compiled), {remaining} remaining; "
          f"dt-validate CPU so far {cpu / 60:.1f} min ({cpu / max(1, len(ok)):.1f} s a board)")
    return 0


def compare(arch: str, jobs: int, show: int) -> int:
    got, remaining = _cached(arch)
    judged = [e for e in got if e["status"] != "not-compiled"]
    dtbs = [e["dtb"] for e in judged]
    reports: dict[str, dict] = {}
    if dtbs:
        res = subprocess.run(
            [sys.executable, "-m", "dtvm", "validate", "--schemas", kc.PROCESSED, "--format", "json", "--jobs", str(jobs), *dtbs],
            capture_output=True, text=True,
        )
        if res.returncode not in (0, 1, 2):
            print(f"dtvm validate failed (exit {res.returncode}): {res.stderr.strip()}", file=sys.stderr)
            return 2
        reports = {r["file"]: r for r in json.loads(res.stdout)["files"]}
    same, crashes, differ = 0, [], []
    for e in judged:
        if e["status"] == "crashed":
            crashes.append(e["board"])
            continue
        rep = reports[e["dtb"]]
        out = "".join(line + "\n" for line in rep["dt_validate"])
        if rep["error"] is None and kc.normalise(out) == kc.normalise(e["stderr"]):
            same += 1
        else:
            differ.append((e["board"], e["dtb"]))
    compared = len(judged) - len(crashes)
    print(f"{arch}: {compared} boards compared, {same} identical, {len(crashes)} where dt-validate crashed, "
          f"{len(got) - len(judged)} not compiled by cpp+dtc, {remaining} remaining (oracle {kc.oracle_key()})")
    for b in crashes:
        print(f"  dt-validate crashed: {b}")
    for b, dtb in differ[: show or len(differ)]:
        print(f"  DIFFERENT: {b} ({dtb})")
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("fill", "compare", "status"))
    ap.add_argument("--arch", default="arm64")
    ap.add_argument("--limit", type=int, default=0, help="fill: at most N new boards")
    ap.add_argument("--stop-at", help="fill: start no board after HH:MM UTC")
    ap.add_argument("--shard", default="1/1", metavar="K/N",
                    help="fill: only every N-th board, starting at the K-th (run N fills side by side, one per core)")
    ap.add_argument("--nice", type=int, default=19, help="fill: the niceness to run at (default 19)")
    ap.add_argument("--jobs", type=int, default=1, help="compare: dtvm's --jobs")
    ap.add_argument("--show", type=int, default=0, help="compare: list at most N differing boards")
    a = ap.parse_args(argv)
    if not kc.available():
        print(kc.MISSING, file=sys.stderr)
        return 2
    if a.action == "fill":
        try:
            k, n = (int(x) for x in a.shard.split("/"))
        except ValueError:
            k = n = 0
        if not 1 <= k <= n:
            print(f"--shard {a.shard}: want K/N with 1 <= K <= N", file=sys.stderr)
            return 2
        return fill(a.arch, a.limit, a.stop_at, (k - 1, n), a.nice)
    if a.action == "status":
        return status(a.arch)
    return compare(a.arch, a.jobs, a.show)


if __name__ == "__main__":
    sys.exit(main())
