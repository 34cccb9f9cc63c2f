"""``make dtbs_check``'s validation step: dtvm validate --schemas against dt-validate, same run.

Peer: dt-validate of dtschema 2022.12 (jsonschema 4.17.3), with Linux 6.1's processed schemas, one
process per board with JOBS at a time, as the kernel's build runs it. dtvm: one
``dtvm validate --schemas processed-schema.json --jobs JOBS`` over the same DTBs, with a cold cache
(a fresh, empty cache directory) and warm (the same again). The DTBs are built first (cpp + dtc,
not timed: both tools read the same blobs). Prints wall and CPU time of each and the ratios.
dt-validate's verdict on each board is also kept in the oracle cache of
scripts/kernel_oracle_cache.py (where it has none), so a whole-architecture bench run is also the
oracle side of ``make kernel-schemas-compare``.

    python bench/bench_dtbs_check.py --boards 0 --jobs 2      # every arm64 board (about 130 CPU-min)
    python bench/bench_dtbs_check.py --boards 24 --seed 5     # a seeded subset

Needs the oracle: scripts/kernel_schemas_oracle.sh (make kernel-schemas-oracle).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests import kernel_corpus as kc  # noqa: E402


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def timed(fn: object) -> tuple[float, float, object]:
    cpu0, t0 = _children_cpu(), time.perf_counter()
    res = fn()  # type: ignore[operator]
    return time.perf_counter() - t0, _children_cpu() - cpu0, res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="arm64")
    ap.add_argument("--boards", type=int, default=0, help="a seeded sample of N boards (0: all)")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    if not kc.available():
        print(kc.MISSING, file=sys.stderr)
        return 2
    chosen = kc.sample(args.arch, args.boards, args.seed)
    with ThreadPoolExecutor(args.jobs) as pool:
        pairs = [(b, d) for b, d in zip(chosen, pool.map(lambda b: kc.build(args.arch, b), chosen), strict=True) if d is not None]
    built = [d for _, d in pairs]
    top = kc.cache_dir(args.arch)
    print(f"{args.arch}: {len(built)} boards of {len(kc.boards(args.arch))} (seed {args.seed}), --jobs {args.jobs}, "
          f"{os.cpu_count()} CPUs")

    def judge(pair: tuple[str, str]) -> tuple[int | None, str]:
        board, dtb = pair
        t0 = time.perf_counter()
        rc, err = kc.dt_validate(dtb)
        if kc.load_entry(top, args.arch, board) is None:  # the oracle's verdict, kept for kernel-schemas-compare
            kc.store_verdict(top, args.arch, board, dtb, rc, err, wall_s=time.perf_counter() - t0)
        return rc, err

    def peer() -> list[tuple[int | None, str]]:
        with ThreadPoolExecutor(args.jobs) as pool:
            return list(pool.map(judge, pairs))

    def dtvm(cache: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        cmd = [sys.executable, "-m", "dtvm", "validate", "--schemas", kc.PROCESSED, "--format", "dt-validate", "--jobs", str(args.jobs), *built]
        return subprocess.run(cmd, capture_output=True, text=True, env=env)

    with tempfile.TemporaryDirectory() as cache:
        cold_wall, cold_cpu, cold = timed(lambda: dtvm(cache))
        warm_wall, warm_cpu, warm = timed(lambda: dtvm(cache))
    peer_wall, peer_cpu, oracle = timed(peer)
    crashes = sum(1 for rc, err in oracle if kc.crashed(rc, err))  # type: ignore[union-attr]
    want = "".join(err for rc, err in oracle if not kc.crashed(rc, err))  # type: ignore[union-attr]
    assert isinstance(warm, subprocess.CompletedProcess) and isinstance(cold, subprocess.CompletedProcess)
    same = kc.normalise(warm.stdout) == kc.normalise(cold.stdout)  # object addresses vary per run, as in dt-validate
    print(f"dt-validate       {peer_wall:8.1f} s wall {peer_cpu:8.1f} s CPU  ({peer_cpu / max(1, len(built)):.2f} s CPU a board; crashes on {crashes})")
    print(f"dtvm cold cache   {cold_wall:8.1f} s wall {cold_cpu:8.1f} s CPU")
    print(f"dtvm warm cache   {warm_wall:8.1f} s wall {warm_cpu:8.1f} s CPU")
    print(f"ratio warm: {peer_wall / warm_wall:.1f}x wall, {peer_cpu / max(warm_cpu, 1e-9):.1f}x CPU (goal >= 50x)")
    print(f"ratio cold: {peer_wall / cold_wall:.1f}x wall, {peer_cpu / max(cold_cpu, 1e-9):.1f}x CPU (goal >= 10x)")
    print(f"outputs: cold and warm {'identical' if same else 'DIFFER'}; "
          f"dtvm prints dt-validate's lines {'exactly' if (not crashes and kc.normalise(warm.stdout) == kc.normalise(want)) else 'see test-kernel-schemas'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
