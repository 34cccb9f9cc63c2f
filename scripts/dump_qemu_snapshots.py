#!/usr/bin/env python3
"""Save what QEMU answers about a few machines as JSON snapshots, so tests can replay them offline.

Each snapshot is ``dtvm.qemu.live.read_argv(ARGV).to_json()``: QEMU's raw answers (``info qtree``,
QOM values, device-list-properties, CPUs, back-ends, its own DT), nothing dropped or normalised;
``Snapshot.from_json`` reads one back.  Written:

* ``fixtures/qemu-snapshots/<name>.json``, one per entry of :data:`SNAPSHOTS`;
* ``fixtures/qemu-snapshots/README.md``: the command behind each file and the QEMU version.

Regenerating changes a few values that differ on every QEMU run, even for the same command line:
``cpus[].thread-id`` (a host thread id), the auto-generated ids in ``network`` (``#net161``) and
block node names (``#block038``), and in the DTs of arm/aarch64 virt and riscv64 virt the random
``/chosen/rng-seed`` and ``kaslr-seed`` values (and stale heap bytes in alignment padding).

    python scripts/dump_qemu_snapshots.py [--out DIR] [--only NAME ...] [--list] [--timeout S]

Needs qemu-system-x86, -arm, -misc and -ppc (Debian); a machine whose binary is missing is skipped
with a message.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from dtvm.errors import DtvmError  # noqa: E402
from dtvm.qemu.live import debian_package, read_argv  # noqa: E402

DEFAULT_OUT = os.path.join(ROOT, "fixtures", "qemu-snapshots")

# back-ends that need no host files, so the snapshot holds no host path
_Q35_DEVICES = [
    "-drive", "if=none,id=d0,driver=null-co",
    "-netdev", "user,id=n0",
    "-chardev", "null,id=c0",
    "-device", "virtio-net-pci,netdev=n0,id=net0",
    "-device", "pcie-root-port,id=rp1,chassis=1",
    "-device", "virtio-blk-pci,drive=d0,bus=rp1,id=blk0",
    "-device", "qemu-xhci,id=xhci",
    "-device", "usb-tablet,id=tablet",
    "-device", "ich9-ahci,id=ahci",
    "-device", "ide-cd,bus=ahci.0,id=cd0",
    "-device", "virtio-serial-pci,id=vser",
    "-device", "virtconsole,chardev=c0,id=con0",
    "-device", "e1000",
]

SNAPSHOTS: dict[str, list[str]] = {
    "x86_64-q35-default": ["qemu-system-x86_64", "-M", "q35"],
    "x86_64-q35-nodefaults-devices": ["qemu-system-x86_64", "-M", "q35", "-nodefaults", *_Q35_DEVICES],
    "x86_64-pc-default": ["qemu-system-x86_64", "-M", "pc"],
    "aarch64-virt-default": ["qemu-system-aarch64", "-M", "virt"],
    "arm-virt-default": ["qemu-system-arm", "-M", "virt"],
    "riscv64-virt-default": ["qemu-system-riscv64", "-M", "virt"],
    "ppc64-pseries-default": ["qemu-system-ppc64", "-M", "pseries"],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only these snapshots")
    ap.add_argument("--list", action="store_true", help="list the snapshots and their command lines")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per QEMU (default: %(default)s)")
    args = ap.parse_args(argv)

    if args.list:
        for name, cmd in SNAPSHOTS.items():
            print(f"{name}: {' '.join(cmd)}")
        return 0
    names = args.only or list(SNAPSHOTS)
    unknown = [n for n in names if n not in SNAPSHOTS]
    if unknown:
        print(f"unknown snapshot(s): {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2

    os.makedirs(args.out, exist_ok=True)
    version = ""
    failed = 0
    for name in names:
        cmd = SNAPSHOTS[name]
        if shutil.which(cmd[0]) is None:
            print(f"skip {name}: {cmd[0]} is not installed (Debian package {debian_package(cmd[0])})",
                  file=sys.stderr)
            continue
        try:
            snap = read_argv(cmd, timeout=args.timeout)
        except DtvmError as err:
            print(f"{name}: {err}", file=sys.stderr)
            failed += 1
            continue
        qemu = snap.version.get("qemu", {})
        version = f"{qemu.get('major')}.{qemu.get('minor')}.{qemu.get('micro')} ({snap.version.get('package', '').strip()})"
        path = os.path.join(args.out, f"{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(snap.to_json())
        print(f"{path}: {len(snap.peripherals)} peripherals, {len(snap.type_props)} device types, "
              f"dtb {'none' if snap.dtb is None else len(snap.dtb)}")
    _write_readme(args.out, version)
    return 1 if failed else 0


def _write_readme(out: str, version: str) -> None:
    lines = [
        "# QEMU snapshots",
        "",
        "What `dtvm.qemu.live.read_argv` read from QEMU for each command line below, saved with",
        "`Snapshot.to_json()` by `scripts/dump_qemu_snapshots.py`; `Snapshot.from_json` replays one",
        "without QEMU. Raw answers: run-specific values (CPU thread ids, `#netN`/`#blockN` ids, DT",
        "random seeds) change when the files are regenerated.",
        "",
        f"QEMU {version}, written {datetime.date.today().isoformat()}.",
        "",
        "| file | command line |",
        "| --- | --- |",
    ]
    for name, cmd in SNAPSHOTS.items():
        if os.path.exists(os.path.join(out, f"{name}.json")):
            lines.append(f"| `{name}.json` | `{' '.join(cmd)}` |")
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
