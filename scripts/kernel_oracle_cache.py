#!/usr/bin/env python3
"""dt-validate's verdict on every board of an architecture, kept on disk, and dtvm compared to it.

dt-validate costs 10 to 16 s of CPU a board: all 766 arm64 boards of Linux 6.1 are 130 to 200
CPU-minutes, more than one sitting on a shared machine gives. So the oracle side is resumable:

    python scripts/kernel_oracle_cache.py fill    [--arch arm64] [--limit N] [--stop-at HH:MM]
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
import glob
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests import kernel_corpus as kc  # noqa: E402

ORDER_SEED = 20  # the fixed order boards are filled in (any prefix is a sample)


def _sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dist_version(name: str) -> str:
    """A package's version in the oracle's venv, from its dist-info directory's name."""
    venv = os.path.dirname(os.path.dirname(kc.DT_VALIDATE))
    found = glob.glob(os.path.join(venv, "lib", "python*", "site-packages", f"{name}-*.dist-info"))
    if not found:
        return "unknown"
    return os.path.basename(found[0])[len(name) + 1 : -len(".dist-info")]


def oracle_key() -> str:
    """The oracle's version: what dt-validate's output depends on besides the board."""
    parts = [f"dtschema-{_dist_version('dtschema')}", f"jsonschema-{_dist_version('jsonschema')}", f"ruamel.yaml-{_dist_version('ruamel.yaml')}"]
    return "_".join(parts) + "_schemas-" + _sha(kc.PROCESSED)[:12]


def cache_dir(arch: str) -> str:
    return os.path.join(kc.ORACLE, "dt-validate", oracle_key(), arch)


def ordered(arch: str) -> list[str]:
    every = kc.boards(arch)
    random.Random(ORDER_SEED).shuffle(every)
    return every


def entry_path(top: str, board: str) -> str:
    return os.path.join(top, board[:-4].replace("/", "__") + ".json")


def load_entry(top: str, board: str) -> dict | None:
    """The cached verdict on BOARD, or None if there is none for the board's current DTB."""
    p = entry_path(top, board)
    try:
        with open(p, encoding="utf-8") as f:
            e = json.load(f)
    except (OSError, ValueError):
        return None
    if e.get("status") == "not-compiled":
        return e
    dtb = kc.build(e.get("arch", ""), board) if e.get("arch") else None
    if dtb is None or _sha(dtb) != e.get("dtb_sha256"):
        return None
    e["dtb"] = dtb
    return e


def _store(top: str, board: str, entry: dict) -> None:
    p = entry_path(top, board)
    tmp = p + f".tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(entry, f, indent=1)
        f.write("\n")
    os.replace(tmp, p)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def fill(arch: str, limit: int, stop_at: str | None) -> int:
    os.nice(19 - os.nice(0))  # whoever started us: the oracle only takes idle CPU
    top = cache_dir(arch)
    os.makedirs(top, exist_ok=True)
    done = 0
    for board in ordered(arch):
        if limit and done >= limit:
            break
        if stop_at and time.strftime("%H:%M", time.gmtime()) >= stop_at:
            print(f"stop: {stop_at} UTC reached", flush=True)
            break
        if load_entry(top, board) is not None:
            continue
        dtb = kc.build(arch, board)
        if dtb is None:
            _store(top, board, {"arch": arch, "board": board, "status": "not-compiled"})
            continue
        sha = _sha(dtb)
        cpu0, t0 = _children_cpu(), time.time()
        rc, stderr = kc.dt_validate(dtb, timeout=3600)
        entry = {
            "arch": arch,
            "board": board,
            "status": "crashed" if kc.crashed(rc, stderr) else "ok",
            "dtb_sha256": sha,
            "rc": rc,
            "stderr": stderr,
            "cpu_s": round(_children_cpu() - cpu0, 2),
            "wall_s": round(time.time() - t0, 2),
            "oracle": oracle_key(),
        }
        _store(top, board, entry)
        done += 1
        print(f"{time.strftime('%H:%M:%S')} {board}: {entry['status']}, {entry['cpu_s']} s CPU", flush=True)
    return 0


def _cached(arch: str) -> tuple[list[dict], int]:
    top = cache_dir(arch)
    every = ordered(arch)
    got = [e for e in (load_entry(top, b) for b in every) if e is not None]
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
          f"{len(got) - len(judged)} not compiled by cpp+dtc, {remaining} remaining (oracle {oracle_key()})")
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
    ap.add_argument("--jobs", type=int, default=1, help="compare: dtvm's --jobs")
    ap.add_argument("--show", type=int, default=0, help="compare: list at most N differing boards")
    a = ap.parse_args(argv)
    if not kc.available():
        print(kc.MISSING, file=sys.stderr)
        return 2
    if a.action == "fill":
        return fill(a.arch, a.limit, a.stop_at)
    if a.action == "status":
        return status(a.arch)
    return compare(a.arch, a.jobs, a.show)


if __name__ == "__main__":
    sys.exit(main())
