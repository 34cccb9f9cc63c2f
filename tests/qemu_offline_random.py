"""The offline stage alone, guest tree and back-end overlay: ``qemu2dtb --offline`` of each
generated configuration (tests/qemugen.py, cases without hot-plug) against online ``qemu2dtb``
of the same command line, QEMU started paused.

Faster than the whole round trip (one QEMU start a case, no migration), so it can run many
cases: ``python -m tests.qemu_offline_random N SEED [MACHINES] [--refusals-first]`` (``make
check-qemu-offline N= SEED= [MACHINES=] [FIRST=1]``) prints per machine how many cases offline
gives online's guest tree and overlay for, how many it refuses (grouped by what it names) and
every difference. ``--refusals-first`` asks offline before QEMU and starts QEMU only where
offline answers (cheaper; its refusals may include configurations QEMU would not start).
"""

from __future__ import annotations

import re
import signal
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from dtvm.dt.dtb import write_dtb
from dtvm.errors import DtvmError

from .qemu_helpers import QmpFailed, start_vm, stop_vm
from .qemu_random import MACHINE_ORDER, _describe, _first_difference
from .qemugen import MACHINES, Case, generate

__all__ = ["OfflineOutcome", "offline_both", "run_offline_case"]


@dataclass
class OfflineOutcome:
    case: Case
    result: str  # "same", "refused", "guest-differs", "overlay-differs", "error", "discarded"
    detail: str = ""


def offline_both(argv: list[str]) -> tuple[bytes, bytes]:
    """``qemu2dtb --offline``'s guest tree and back-end overlay for ``argv``."""
    from dtvm.qemu.offline import offline_config
    from dtvm.vm.translate import describe, driver_compat

    desc = describe(offline_config(argv), driver_compat())
    return write_dtb(desc.guest), write_dtb(desc.backend)


def run_offline_case(case: Case, directory: Path, refusals_first: bool = False) -> OfflineOutcome:
    """One case's offline outcome against QEMU's own reading of the same command line.

    ``refusals_first`` asks offline first and starts QEMU only where offline answers: cheap for
    measuring how far offline reaches, but a refusal then counts a configuration QEMU itself might
    not start (the default starts QEMU first, so refusals are of valid configurations only)."""
    from dtvm.qemu.offline import OfflineError

    directory.mkdir(parents=True, exist_ok=True)
    argv = case.materialize(directory)

    def offline() -> tuple[bytes, bytes] | OfflineOutcome:
        try:
            return offline_both(argv)
        except OfflineError as exc:
            text = str(exc)
            return OfflineOutcome(case, "refused" if text and "\n" not in text.strip() else "error", text)
        except DtvmError as exc:
            return OfflineOutcome(case, "error", f"{type(exc).__name__}: {exc}")

    got = offline() if refusals_first else None
    if isinstance(got, OfflineOutcome):
        return got
    try:
        vm = start_vm(argv, directory / "a", timeout=20)
    except (RuntimeError, QmpFailed) as exc:
        return OfflineOutcome(case, "discarded", str(exc).strip().splitlines()[-1] if str(exc).strip() else "")
    try:
        guest, overlay = _describe(vm)
    except DtvmError as exc:
        return OfflineOutcome(case, "error", f"online: {type(exc).__name__}: {exc}")
    finally:
        stop_vm(vm)
    if got is None:
        got = offline()
        if isinstance(got, OfflineOutcome):
            return got
    got_guest, got_overlay = got
    if got_guest != guest:
        return OfflineOutcome(case, "guest-differs", _first_difference(got_guest, guest))
    if got_overlay != overlay:
        return OfflineOutcome(case, "overlay-differs", _first_difference(got_overlay, overlay))
    return OfflineOutcome(case, "same")


def _class(detail: str) -> str:
    """A refusal's class: its message with paths, numbers and ids made generic."""
    text = re.sub(r"/\S+", "PATH", detail)
    text = re.sub(r"\b\d+\b", "N", text)
    return text[:160]


def report(outcomes: list[OfflineOutcome]) -> str:
    lines = [f"{'machine':14} {'cases':>5} {'valid':>5} {'same':>5} {'refused':>7} {'guest≠':>6} {'overlay≠':>8} {'error':>5}"]
    by: dict[str, list[OfflineOutcome]] = defaultdict(list)
    for o in outcomes:
        by[o.case.machine].append(o)
    for machine in [*MACHINE_ORDER, "all"]:
        group = outcomes if machine == "all" else by.get(machine, [])
        if not group:
            continue
        c = Counter(o.result for o in group)
        valid = len(group) - c["discarded"]
        lines.append(f"{machine:14} {len(group):5} {valid:5} {c['same']:5} {c['refused']:7} {c['guest-differs']:6} "
                     f"{c['overlay-differs']:8} {c['error']:5}")
    refusals = Counter(_class(o.detail) for o in outcomes if o.result == "refused")
    if refusals:
        lines.append("offline refusals:")
        lines += [f"  {n:3}  {why}" for why, n in refusals.most_common()]
    for o in outcomes:
        if o.result in ("guest-differs", "overlay-differs", "error"):
            lines.append(f"  {o.case.name} [{o.result}] {o.detail[:400]}\n      {' '.join(o.case.argv)}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    refusals_first = "--refusals-first" in argv
    argv = [a for a in argv if a != "--refusals-first"]
    count = int(argv[0]) if argv else 300
    seed = int(argv[1]) if len(argv) > 1 else 0
    machines = argv[2].split(",") if len(argv) > 2 and argv[2] else None
    outcomes: list[OfflineOutcome] = []
    with tempfile.TemporaryDirectory(prefix="dtvm-offline-") as tmp:
        for i in range(count):
            case = generate(seed * 100000 + i, machines[i % len(machines)] if machines else None)
            if case.machine not in MACHINES or case.hotplug:
                continue
            o = run_offline_case(case, Path(tmp) / case.name, refusals_first)
            outcomes.append(o)
            print(f"{i + 1}/{count} {case.name}: {o.result} {o.detail}"[:300], flush=True)
    print(report(outcomes))
    return 0 if not any(o.result in ("guest-differs", "overlay-differs", "error") for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
