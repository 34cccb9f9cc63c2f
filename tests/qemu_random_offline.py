"""The offline stage alone over generated configurations (tests/qemugen.py), judged by QEMU 7.2.

``tests/qemu_random.py`` runs every stage; measuring how wide ``qemu2dtb --offline`` reaches needs
only one of them, which is cheap: the command line offline, and, where offline answers, QEMU's own
description of the same command line read paused at start (byte-identical or it fails).  A case
offline refuses is classified by its one-line message without starting QEMU (so refusals count
configurations QEMU itself might not start: the full harness gives the valid-only figures); a case
QEMU refuses to start is discarded with its words.

``python -m tests.qemu_random_offline N SEED [MACHINES]`` prints, per machine, the cases offline
answered (same/differs), refused, and the refusals by class, largest first
(``make check-qemu-random-offline N= SEED= MACHINES=``).
"""

from __future__ import annotations

import re
import signal
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from .qemu_helpers import start_vm, stop_vm
from .qemu_random import _describe, _offline
from .qemugen import MACHINES, Case, generate

__all__ = ["offline_outcome"]


def offline_outcome(case: Case, directory: Path) -> tuple[str, str]:
    """('same'|'refused'|'differs'|'error'|'discarded', detail) for one case (hot-plug: 'skipped')."""
    if case.hotplug:
        return "skipped", "hot-plug"
    directory.mkdir(parents=True, exist_ok=True)
    argv = case.materialize(directory)
    from dtvm.errors import DtvmError
    from dtvm.qemu.offline import OfflineError, offline_config
    from dtvm.vm.translate import describe, driver_compat

    try:
        desc = describe(offline_config(argv), driver_compat())
    except OfflineError as exc:
        text = str(exc)
        return ("refused" if text and "\n" not in text.strip() else "error"), text
    except DtvmError as exc:
        return "error", f"{type(exc).__name__}: {exc}"
    try:
        vm = start_vm(argv, directory / "a", timeout=20)
    except RuntimeError as exc:
        return "discarded", str(exc).strip().splitlines()[-1] if str(exc).strip() else "start"
    try:
        guest = _describe(vm)[0]
    finally:
        stop_vm(vm)
    kind, detail = _offline(argv, guest)
    del desc
    return kind, detail if kind != "same" else ""


def _class(message: str) -> str:
    """A refusal's class: its message with the values that vary between cases folded."""
    head = message.split(": ", 1)
    text = head[1] if len(head) > 1 and head[0].startswith("-") else message
    option = head[0].split(" ", 1)[0] if head[0].startswith("-") else ""
    text = re.sub(r"\d+", "N", text)
    return f"{option} {text}"[:160].strip()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    count = int(argv[0]) if argv else 150
    seed = int(argv[1]) if len(argv) > 1 else 0
    machines = argv[2].split(",") if len(argv) > 2 else ["aarch64-virt", "arm-virt", "riscv64-virt"]
    verbose = len(argv) > 3
    results: dict[str, Counter[str]] = defaultdict(Counter)
    classes: dict[str, Counter[str]] = defaultdict(Counter)
    bad: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dtvm-offline-") as tmp:
        for i in range(count):
            machine = machines[i % len(machines)]
            case = generate(seed * 100000 + i, machine)
            if case.machine not in MACHINES:
                continue
            kind, detail = offline_outcome(case, Path(tmp) / case.name)
            results[machine][kind] += 1
            if kind == "refused":
                classes[machine][_class(detail)] += 1
            if verbose and kind != "skipped":
                print(f"{case.name}: {kind} {detail[:200]}\n    {' '.join(case.argv)}", flush=True)
            if kind in ("differs", "error"):
                bad.append(f"{case.name} [{kind}] {detail[:400]}\n    {' '.join(case.argv)}")
    kinds = ["same", "refused", "differs", "error", "discarded", "skipped"]
    print(f"{'machine':14} " + " ".join(f"{k:>9}" for k in kinds))
    for machine in machines:
        print(f"{machine:14} " + " ".join(f"{results[machine][k]:9}" for k in kinds))
    for machine in machines:
        if classes[machine]:
            print(f"refused on {machine}:")
            for why, n in classes[machine].most_common():
                print(f"  {n:3}  {why}")
    if bad:
        print("wrong (differs from QEMU, or not one line):")
        print("\n".join(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
