"""The round trip of generated configurations (tests/qemu_random.py) on QEMU 10.0 and across
7.2 and 10.0: what a user upgrading the host's QEMU meets.

Modes (each case of tests/qemugen.py is turned into one by :func:`for_mode`):

- ``10.0``: the whole round trip on 10.0 alone, machine types unpinned (``-M q35`` where the
  generator wrote ``pc-q35-7.2``: what 10.0 builds, pc-q35-10.0), the offline stage against 10.0's
  own models;
- ``7.2-10.0`` / ``10.0-7.2``: A runs on one version with the pinned 7.2 machine type (an alias the
  generator wrote is pinned), dtb2qemu rebuilds it for the other (``--binary``), A live-migrates
  into B and B's guest tree must be byte-identical to A's.  A migration QEMU itself cannot make
  with the identical command line on both versions (``virt-7.2``, ``pseries-7.2``, two ``-netdev
  user`` from 10.0: dtb2qemu refuses those) is discarded with QEMU's words, and counted.

``python -m tests.qemu_random_versions N SEED MODE [MACHINES]`` runs N cases and prints the pass
rates per machine and stage (``make check-qemu-random-versions N=... SEED=... MODE=...``).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from .qemu_helpers import qemu10
from .qemu_random import MACHINE_ORDER, Outcome, report, run_case
from .qemugen import _ALIASES, MACHINES, Case, generate

__all__ = ["MODES", "for_mode", "missing", "run_versioned"]

MODES = ("10.0", "7.2-10.0", "10.0-7.2")


def _machine_arg(argv: list[str], pinned: bool, machine: str) -> list[str]:
    """The argv with its -M type pinned to the 7.2 type, or unpinned to the alias."""
    out = list(argv)
    i = out.index("-M") + 1
    head, sep, rest = out[i].partition(",")
    spec_type, alias = MACHINES[machine].type, _ALIASES.get(machine, MACHINES[machine].type)
    if pinned and head == alias:
        head = spec_type
    elif not pinned and head == spec_type:
        head = alias
    out[i] = head + sep + rest
    return out


def for_mode(case: Case, mode: str) -> tuple[Case, str | None, str]:
    """The case as ``mode`` runs it: (case with its source binary, the target binary or None for
    the source's own, the source's QEMU version for the offline models)."""
    name = case.argv[0]
    if mode == "10.0":
        argv = _machine_arg(case.argv, False, case.machine)
        return dataclasses.replace(case, name=f"{case.name}@10.0", argv=[qemu10(name), *argv[1:]]), qemu10(name), "10.0"
    argv = _machine_arg(case.argv, True, case.machine)
    if mode == "7.2-10.0":
        return dataclasses.replace(case, name=f"{case.name}@7.2-10.0", argv=argv), qemu10(name), "7.2"
    if mode == "10.0-7.2":
        return dataclasses.replace(case, name=f"{case.name}@10.0-7.2", argv=[qemu10(name), *argv[1:]]), name, "10.0"
    raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")


def missing(case: Case, mode: str) -> str | None:
    """Why the oracle of ``case`` in ``mode`` cannot run here (a QEMU binary absent), else None."""
    source, target, _ = for_mode(case, mode)
    for exe in (source.argv[0], target or source.argv[0]):
        if (os.sep in exe and not os.access(exe, os.X_OK)) or (os.sep not in exe and shutil.which(exe) is None):
            return f"{exe} is not installed (its oracle cannot run; scripts/install-qemu10 installs QEMU 10.0)"
    return None


def run_versioned(case: Case, mode: str, directory: Path) -> Outcome:
    """The round trip of ``case`` in ``mode``; the offline stage answers with the source's models."""
    from dtvm.qemu.models import use_version

    source, target, version = for_mode(case, mode)
    with use_version(version):
        return run_case(source, directory, target=target)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds: the running case's VMs are stopped
    count = int(argv[0]) if argv else 100
    seed = int(argv[1]) if len(argv) > 1 else int(os.environ.get("DTVM_GEN_SEED", "0"))
    mode = argv[2] if len(argv) > 2 else "10.0"
    machines = argv[3].split(",") if len(argv) > 3 and argv[3] else None
    if mode not in MODES:
        print(f"mode {mode!r}: one of {', '.join(MODES)}", file=sys.stderr)
        return 2
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="dtvm-random-v-") as tmp:
        for i in range(count):
            machine = machines[i % len(machines)] if machines else MACHINE_ORDER[i % len(MACHINE_ORDER)]
            case = generate(seed * 100000 + i, machine)
            why = missing(case, mode)
            if why is not None:
                print(f"{i + 1}/{count} {case.name}: skipped: {why}", flush=True)
                continue
            o = run_versioned(case, mode, Path(tmp) / case.name)
            outcomes.append(o)
            state = "discarded" if o.discarded else ("pass" if o.failed is None else f"FAIL {o.failed}")
            print(f"{i + 1}/{count} {o.case.name}: {state} {o.message or o.discarded or ''}"[:300], flush=True)
    print(f"mode {mode} (QEMU 10.0: {qemu10('qemu-system-x86_64')})")
    print(report(outcomes))
    valid = [o for o in outcomes if not o.discarded]
    return 0 if all(o.failed is None for o in valid) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
