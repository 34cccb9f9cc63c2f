#!/usr/bin/env python3
"""dtb2qemu of big q35 descriptions: linear in devices, against QEMU building the same VM.

Issue 19's finding: dtb2qemu assigned ids in quadratic time (6,000 devices: 7.5 s). The
descriptions are made offline (``qemu2dtb --offline``, root ports with PCIe-PCI bridges full of
e1000s, as bench_offline.py builds them); ``dtb2qemu --offline`` rebuilds them. Printed: the time
for 600 and 6,000 devices and their ratio (linear: about 10x), and the peer measured in the same
run: QEMU starting the 600-device argv to its first QMP answer.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_offline import config


def _dtvm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", *args], capture_output=True, text=True, timeout=600)


def describe(devices: int, where: str) -> str:
    out = os.path.join(where, f"vm{devices}.dtb")
    res = _dtvm("qemu2dtb", "--offline", "-o", out, "--", *config(devices))
    if res.returncode != 0:
        raise SystemExit(res.stderr)
    return out


def rebuild(dtb: str) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    res = _dtvm("dtb2qemu", dtb, "-b", dtb[:-4] + ".backend.dtbo", "--offline")
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(res.stderr)
    return elapsed, json.loads(res.stdout)


def qemu_start(argv: list[str], where: str) -> float:
    sock = os.path.join(where, "qmp.sock")
    t0 = time.perf_counter()
    proc = subprocess.Popen([*argv, "-S", "-display", "none", "-qmp", f"unix:{sock},server=on,wait=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit("QEMU exited")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(sock)
                    reader = s.makefile("rb")
                    reader.readline()  # the greeting
                    s.sendall(b'{"execute": "qmp_capabilities"}\n{"execute": "query-status"}\n')
                    reader.readline()
                    if b"return" in reader.readline():  # answered from the main loop: the VM is built
                        return time.perf_counter() - t0
            except OSError:
                time.sleep(0.005)
    finally:
        proc.kill()
        proc.wait()
        if os.path.exists(sock):
            os.unlink(sock)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as where:
        small, big = describe(600, where), describe(6000, where)
        t_small = statistics.median(rebuild(small)[0] for _ in range(args.repeat))
        t_big = statistics.median(rebuild(big)[0] for _ in range(args.repeat))
        argv = rebuild(small)[1]
        peer = statistics.median(qemu_start(argv, where) for _ in range(args.repeat))
    print(f"dtb2qemu --offline, 600 devices:   {t_small * 1000:8.0f} ms")
    print(f"dtb2qemu --offline, 6,000 devices: {t_big * 1000:8.0f} ms   ratio {t_big / t_small:.1f}x (linear: ~10x)")
    print(f"peer: QEMU 7.2 starting the 600-device argv to its first QMP answer: {peer * 1000:.0f} ms "
          f"(dtb2qemu is {t_small / peer:.1f}x of it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
