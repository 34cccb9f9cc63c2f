#!/usr/bin/env python3
"""Offline qemu2dtb of big q35 configurations: time, scaling, and the online peer.

Issue 7's goals: offline ``qemu2dtb`` of a q35 configuration with 200 devices (root ports and
endpoints) in under 1 s; address assignment scales linearly (2,000 devices under 10x the time
of 200). The peer is online qemu2dtb of the same command line (QEMU builds it), measured in the
same run where QEMU accepts the configuration. "model in-process" is the median of the reps in
one process: the model file is parsed by the first only (dtvm.qemu.models.MODELS), so it is the
answer's own time; "offline qemu2dtb" starts a process each time and parses it every time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def config(devices: int) -> list[str]:
    """Root ports (8 functions per slot) each with a PCIe-PCI bridge, and e1000s behind them."""
    argv = ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults"]
    n = 0
    bridge = 0
    while n < devices:
        slot, fn = 2 + bridge // 8, bridge % 8
        mf = ",multifunction=on" if fn == 0 else ""
        argv += ["-device", f"pcie-root-port,id=rp{bridge},chassis={bridge + 1},addr={slot:#x}.{fn}{mf}",
                 "-device", f"pcie-pci-bridge,id=pb{bridge},bus=rp{bridge}"]
        n += 2
        for s in range(1, 32):
            if n >= devices:
                break
            argv += ["-device", f"e1000,bus=pb{bridge},addr={s:#x}"]
            n += 1
        bridge += 1
    return argv


def run(argv: list[str], offline: bool) -> float:
    flags = ["--offline"] if offline else []
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", *flags, "--format", "dts", "--", *argv],
                         capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{'offline' if offline else 'online'} failed: {res.stderr.strip()}")
    return elapsed


def in_process(argv: list[str]) -> float:
    from dtvm.qemu.offline import offline_config

    t0 = time.perf_counter()
    offline_config(argv)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    small, big = config(200), config(2000)
    rows = []
    for name, argv in (("200 devices", small), ("2000 devices", big)):
        off = statistics.median(run(argv, True) for _ in range(args.reps))
        assign = statistics.median(in_process(argv) for _ in range(args.reps))
        try:
            on = statistics.median(run(argv, False) for _ in range(args.reps))
        except SystemExit as exc:
            on = float("nan")
            print(f"{name}: online peer unavailable: {exc}", file=sys.stderr)
        rows.append((name, off, assign, on))
    print(f"{'configuration':<14} {'offline qemu2dtb':>17} {'model in-process':>17} {'online (QEMU)':>14} {'offline/online':>15}")
    for name, off, assign, on in rows:
        print(f"{name:<14} {off * 1000:>14.0f} ms {assign * 1000:>14.0f} ms {on * 1000:>11.0f} ms {off / on:>14.2f}x")
    scale = rows[1][2] / rows[0][2]
    print(f"goal: 200 devices offline < 1 s: {rows[0][1]:.2f} s {'MET' if rows[0][1] < 1 else 'MISSED'}")
    print(f"goal: model time 2000/200 < 10x: {scale:.1f}x {'MET' if scale < 10 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
