#!/usr/bin/env python3
"""qemu2dtb against QEMU's own start-up: a q35 VM with 20 devices, measured in one run.

Issue 5's goals: the whole ``dtvm qemu2dtb`` of this VM at most 5x the time QEMU itself takes from
start to its first QMP answer, and reading the running VM in under 300 ms.  Timed, each ``--runs``
times (interleaved, after one untimed warm-up; medians reported):

  (a) QEMU start to first QMP answer: Popen of the same command line plus ``-S -display none -qmp``,
      connect, greeting, ``qmp_capabilities`` answered (a plain socket, no dtvm); then killed
  (b) ``dtvm.qemu.live.read_argv`` end to end (start, connect, read, kill, in this process)
  (c) ``dtvm.qemu.live.read_socket`` on an already running VM (started once, not paused)
  (d) ``dtvm qemu2dtb -o OUT.dtb -- ARGV`` as a subprocess (skipped with a message if the command
      does not exist yet), and ``dtvm qemu2dtb --qmp unix:PATH -o OUT.dtb`` on the running VM

(a), (b), (d) run while no other VM runs; (c) and (d') afterwards, next to the running VM, whose
firmware keeps a host CPU busy (on a 2-CPU host it would otherwise slow (a) to (d) down).

Then the breakdown of one ``read_argv`` (``timings``: start, connect, read, stop; each command group
when it completed, counted from the start of the read, groups overlapping) and QEMU's cost per
command group measured one group after another on a paused VM (the sum is what the concurrent read
pays, minus overlap with the client).

    python bench/bench_qemu2dtb.py [--runs 7] [--binary /opt/dtvm/qemu-10.0.2/bin/qemu-system-x86_64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from _common import REPO, goal, machine_line

from dtvm.qemu import live
from dtvm.qemu.qmp import QmpSession, read_snapshot

BINARY = "qemu-system-x86_64"
GOAL_RATIO = 5.0
GOAL_SOCKET_MS = 300.0


def set_binary(binary: str) -> None:
    global BINARY
    BINARY = binary


def q35_argv(images: list[str]) -> list[str]:
    """q35 with 20 -device (4 disks on raw images, 3 NICs on user netdevs)."""
    d = [f"if=none,id=d{i},file={img},format=raw" for i, img in enumerate(images)]
    devices = [
        "virtio-net-pci,netdev=n0,id=net0",
        "virtio-net-pci,netdev=n1,id=net1",
        "virtio-blk-pci,drive=d0,id=blk0",
        "pcie-root-port,id=rp1,chassis=1",
        "pcie-root-port,id=rp2,chassis=2",
        "pcie-root-port,id=rp3,chassis=3",
        "e1000e,bus=rp1,id=nic2",
        "virtio-blk-pci,drive=d1,bus=rp2,id=blk1",
        "virtio-net-pci,netdev=n2,bus=rp3,id=net3",
        "qemu-xhci,id=xhci",
        "usb-tablet,bus=xhci.0,id=tablet",
        "usb-kbd,bus=xhci.0,id=kbd",
        "ich9-ahci,id=ahci",
        "ide-hd,drive=d2,bus=ahci.0,id=hd0",
        "virtio-scsi-pci,id=scsi",
        "scsi-hd,drive=d3,bus=scsi.0,id=sd0",
        "virtio-serial-pci,id=vser",
        "virtconsole,chardev=c0,id=con0",
        "virtio-rng-pci,id=rng",
        "virtio-balloon-pci,id=balloon",
    ]
    argv = [BINARY, "-M", "q35", "-m", "512"]
    for i in range(3):
        argv += ["-netdev", f"user,id=n{i}"]
    for drive in d:
        argv += ["-drive", drive]
    argv += ["-chardev", "null,id=c0"]
    for dev in devices:
        argv += ["-device", dev]
    assert argv.count("-device") == 20
    return argv


def first_answer(argv: list[str], tmp: str) -> float:
    """Seconds from Popen to QEMU's answer to qmp_capabilities (plain socket), QEMU killed after."""
    sock_path = os.path.join(tmp, "a.sock")
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    t0 = time.perf_counter()
    proc = subprocess.Popen([*argv, "-S", "-display", "none", "-qmp", f"unix:{sock_path},server=on,wait=off"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"ABORT: QEMU exited: {proc.stderr.read().decode(errors='replace') if proc.stderr else ''}")
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(sock_path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                time.sleep(0.001)
        with s:
            f = s.makefile("rwb")
            f.readline()  # greeting (sent by the monitor thread, before the machine is built)
            f.write(b'{"execute": "qmp_capabilities"}\n')
            f.flush()
            reply = json.loads(f.readline())  # needs the main loop: the machine exists
            assert "return" in reply, reply
            return time.perf_counter() - t0
    finally:
        proc.kill()
        proc.wait()


def start_running_vm(argv: list[str], tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    sock_path = os.path.join(tmp, "running.sock")
    proc = subprocess.Popen([*argv, "-display", "none", "-qmp", f"unix:{sock_path},server=on,wait=off"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not os.path.exists(sock_path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("ABORT: the running VM did not start")
        time.sleep(0.01)
    time.sleep(0.3)
    return proc, sock_path


def dtvm_command() -> list[str]:
    exe = shutil.which("dtvm")
    return [exe] if exe else [sys.executable, "-m", "dtvm"]


def have_qemu2dtb() -> bool:
    p = subprocess.run([*dtvm_command(), "qemu2dtb", "--help"], capture_output=True, cwd=REPO)
    return p.returncode == 0


def run_cli(args: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run([*dtvm_command(), *args], capture_output=True, cwd=REPO)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"ABORT: dtvm {' '.join(args)} exited {p.returncode}:\n{p.stderr.decode(errors='replace')}")
    return dt


def sequential_breakdown(argv: list[str], tmp: str) -> tuple[dict[str, float], float]:
    """QEMU's cost per command group, one group after another, on a paused VM of our own."""
    proc, sock_path = start_paused(argv, tmp)
    timings: dict[str, float] = {}

    async def go() -> None:
        s = QmpSession("bench")
        await s.connect(sock_path)
        try:
            await read_snapshot(s, tmp, timings, concurrent=False)
        finally:
            await s.close()

    try:
        t0 = time.perf_counter()
        asyncio.run(go())
        total = (time.perf_counter() - t0) * 1e3
    finally:
        proc.kill()
        proc.wait()
    return timings, total


def start_paused(argv: list[str], tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    sock_path = os.path.join(tmp, "paused.sock")
    proc = subprocess.Popen([*argv, "-S", "-display", "none", "-qmp", f"unix:{sock_path},server=on,wait=off"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not os.path.exists(sock_path):
        time.sleep(0.005)
    time.sleep(0.2)
    return proc, sock_path


def measure(measures: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    """Each measurement ``runs`` times, interleaved, after one untimed warm-up each."""
    samples: dict[str, list[float]] = {k: [] for k in measures}
    for fn in measures.values():  # warm-up: page cache, Python's imports
        fn()
    for _ in range(runs):
        for name, fn in measures.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return samples


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="timed runs of each measurement (default: %(default)s)")
    ap.add_argument("--binary", default=BINARY,
                    help="the QEMU to describe and to time (QEMU 10.0: the wrapper of scripts/install-qemu10)")
    args = ap.parse_args()
    set_binary(args.binary)
    if shutil.which(BINARY) is None:
        print(f"{BINARY} is not installed (Debian package qemu-system-x86)", file=sys.stderr)
        return 2

    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="dtvm-bench-qemu-") as tmp:
        images = []
        for i in range(8):  # QEMU locks its images: the running VM gets its own four
            img = os.path.join(tmp, f"disk{i}.raw")
            with open(img, "wb") as f:
                f.truncate(16 << 20)
            images.append(img)
        argv = q35_argv(images[:4])
        print(f"VM: {' '.join(argv)}\n")
        cli = have_qemu2dtb()
        out_dtb = os.path.join(tmp, "out.dtb")
        # Phase 1, no other VM running: (a), (b), (d) interleaved.  Phase 2: a running VM (its
        # firmware keeps one CPU busy, as a real guest would), read through its socket: (c), (d').
        started: dict[str, Callable[[], object]] = {
            "(a) QEMU start to first QMP answer": lambda: first_answer(argv, tmp),
            "(b) read_argv end to end": lambda: live.read_argv(argv),
        }
        if cli:
            started["(d) dtvm qemu2dtb -o OUT -- ARGV"] = lambda: run_cli(["qemu2dtb", "-o", out_dtb, "--", *argv])
        samples = measure(started, args.runs)
        timings: dict[str, float] = {}
        live.read_argv(argv, timings=timings)
        running, running_sock = start_running_vm(q35_argv(images[4:]), tmp)
        try:
            online: dict[str, Callable[[], object]] = {
                "(c) read_socket, running VM": lambda: live.read_socket(f"unix:{running_sock}"),
            }
            if cli:
                online["(d') dtvm qemu2dtb --qmp -o OUT"] = lambda: run_cli(
                    ["qemu2dtb", "--qmp", f"unix:{running_sock}", "-o", out_dtb])
            samples.update(measure(online, args.runs))
        finally:
            running.kill()
            running.wait()
        seq, seq_total = sequential_breakdown(argv, tmp)

    base = median_ms(samples["(a) QEMU start to first QMP answer"])
    print(f"{'measurement':38} {'median ms':>10} {'x (a)':>7}   samples ms")
    for name, values in samples.items():
        ms = median_ms(values)
        print(f"{name:38} {ms:10.1f} {ms / base:7.2f}   {', '.join(f'{v * 1e3:.0f}' for v in values)}")
    if not cli:
        print("(d) skipped: `dtvm qemu2dtb` does not exist yet")
    print()
    print("goals:")
    if cli:
        d = median_ms(samples["(d) dtvm qemu2dtb -o OUT -- ARGV"])
        print(f"  qemu2dtb end to end <= {GOAL_RATIO:g}x (a): {d / base:.2f}x  {goal(d <= GOAL_RATIO * base)}")
    b = median_ms(samples["(b) read_argv end to end"])
    print(f"  (read_argv alone: {b / base:.2f}x (a))")
    c = median_ms(samples["(c) read_socket, running VM"])
    print(f"  read_socket of the running VM < {GOAL_SOCKET_MS:g} ms: {c:.1f} ms  {goal(c < GOAL_SOCKET_MS)}")
    if cli:
        dq = median_ms(samples["(d') dtvm qemu2dtb --qmp -o OUT"])
        print(f"  (dtvm qemu2dtb --qmp end to end: {dq:.1f} ms  {goal(dq < GOAL_SOCKET_MS)})")

    print("\none read_argv (ms; command groups: completed at, from the start of the read):")
    for key in ("start", "connect", "read", "stop", "total", "commands"):
        print(f"  {key:24} {timings.get(key, 0):8.1f}")
    groups = [k for k in timings if k not in ("start", "connect", "read", "stop", "total", "commands")]
    for key in sorted(groups, key=lambda k: timings[k]):
        print(f"    {key:22} {timings[key]:8.1f}")
    print(f"\nQEMU's cost per command group, one after another on a paused VM (ms; total {seq_total:.1f}, "
          f"{int(seq.get('commands', 0))} commands):")
    for key in sorted((k for k in seq if k not in ("read", "commands")), key=lambda k: -seq[k]):
        print(f"    {key:22} {seq[key]:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
