"""The round trip of one generated configuration (tests/qemugen.py), judged by real QEMU 7.2.

Stages, in order (the first that fails is the case's result):

- ``start``: QEMU starts the configuration (paused) and takes its hot-plugged devices and CPUs;
  a refusal discards the case with QEMU's words (it is not a configuration);
- ``describe-twice``: two readings of the paused VM give byte-identical guest trees and overlays;
- ``offline``: ``qemu2dtb --offline`` of the command line gives the same guest tree and back-end
  overlay (cases without hot-plug); a refusal must be one line naming what the model lacks and is
  counted, not failed;
- ``describe-after-run``: after the VM ran (firmware included) for ``DTVM_RANDOM_RUN`` seconds, its
  description equals the one read paused at start;
- ``dtb2qemu``: the rebuild (probe and check start included) succeeds while A runs and holds its
  images;
- ``b-start``: the rebuilt argv starts as a migration destination (``-incoming defer``) with the
  real images, which A holds open for writing;
- ``migrate``: A live-migrates into B, ``completed`` on both sides; when it does not, the same
  configuration is migrated into a copy of itself, and if QEMU cannot do that either the case is
  discarded with QEMU's words;
- ``b-equal``: B's description is byte-identical to A's.

``python -m tests.qemu_random N SEED`` runs N cases and prints pass rates per machine and stage
(``make check-qemu-random N=300 SEED=...``).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dtvm.dt.dtb import read_dtb, write_dtb
from dtvm.errors import DtvmError

from .qemu_helpers import VM, QmpFailed, start_vm, stop_vm
from .qemugen import MACHINES, Case, generate

__all__ = ["STAGES", "Outcome", "fixed_cases", "run_case"]

STAGES = ["start", "describe-twice", "offline", "describe-after-run", "dtb2qemu", "b-start", "migrate", "b-equal"]
MACHINE_ORDER = ["q35", "pc", "aarch64-virt", "arm-virt", "riscv64-virt", "pseries"]
RUN_SECONDS = float(os.environ.get("DTVM_RANDOM_RUN", "1.0"))


@dataclass
class Outcome:
    case: Case
    failed: str | None = None  # the stage that failed
    message: str = ""
    discarded: str | None = None  # QEMU's words when the case is no valid configuration
    offline: str = "skipped"  # "same", "refused: ...", or "skipped" (hot-plug)
    passed: list[str] = field(default_factory=list)


def fixed_cases(count: int = 60, base: int = 0) -> list[Case]:
    """The set ``make test`` runs: machines in turn, so each gets count/6 cases."""
    return [generate(base + i, MACHINE_ORDER[i % len(MACHINE_ORDER)]) for i in range(count)]


def _describe(vm: VM) -> tuple[bytes, bytes]:
    from dtvm.qemu.describe import describe_snapshot
    from dtvm.qemu.live import read_socket

    snapshot = read_socket(vm.address, timeout=30)
    snapshot.binary = vm.argv[0]  # the VM's own QEMU, as qemu2dtb --qmp --binary names it
    desc = describe_snapshot(snapshot)
    return write_dtb(desc.guest), write_dtb(desc.backend)


def _hotplug(vm: VM, items: list[dict[str, Any]]) -> list[list[str]]:
    """device_add each item; returns the same devices as -device options (for a copy of the VM)."""
    cold: list[list[str]] = []
    for item in items:
        args = dict(item)
        if args["driver"] == "cpu":
            slots = vm.qmp("query-hotpluggable-cpus")
            free = [s for s in slots if "qom-path" not in s]
            if not free:
                continue
            slot = free[-1]
            args = {"driver": slot["type"], "id": item["id"], **slot["props"]}
            args.pop("node-id", None)
        vm.qmp("device_add", args)
        cold.append(["-device", ",".join([str(args["driver"]), *(f"{k}={v}" for k, v in args.items() if k != "driver")])])
    return cold


def _migrate(a: VM, b: VM, sock: str) -> str:
    """'completed', or why not (QEMU's words where it gave some)."""
    uri = f"unix:{sock}"
    try:
        b.qmp("migrate-incoming", {"uri": uri})
        a.qmp("migrate", {"uri": uri})
    except QmpFailed as exc:  # a migration blocker (a device QEMU cannot migrate) refuses at once
        return exc.desc
    deadline = time.monotonic() + 60
    while True:
        try:
            st = a.qmp("query-migrate")
        except (OSError, ConnectionError, QmpFailed):  # the source died (7.2 crashes on some devices)
            code = a.proc.poll()
            return f"source lost its monitor (exit {code}): {_last_line(a)}".strip()
        if st.get("status") in ("completed", "failed", "cancelled"):
            break
        if time.monotonic() > deadline:
            return f"source still {st.get('status')} after 60 s"
        time.sleep(0.02)
    if st.get("status") != "completed":
        return f"source {st.get('status')}: {st.get('error-desc', '')} {_last_line(b)}".strip()
    while True:
        if b.proc.poll() is not None:
            return f"destination exited: {_last_line(b)}"
        try:
            dest = b.qmp("query-migrate")
        except (OSError, ConnectionError, QmpFailed):
            return f"destination lost its monitor: {_last_line(b)}"
        if dest.get("status") == "completed":
            return "completed"
        if dest.get("status") == "failed" or time.monotonic() > deadline:
            return f"destination {dest.get('status')}: {_last_line(b)}"
        time.sleep(0.02)


def _last_line(vm: VM) -> str:
    lines = [ln for ln in vm.stderr().splitlines() if ln.strip() and "terminating on signal" not in ln]
    if len(lines) > 1 and lines[-1].endswith("load of migration failed: Invalid argument"):
        return f"{lines[-2]} / {lines[-1]}"  # the generic last line: the one before says what failed
    return lines[-1] if lines else ""


def _oracle_self_migration(case: Case, argv: list[str], directory: Path, target: str | None = None) -> str:
    """Whether QEMU migrates this configuration into a copy of itself (on ``target``, another
    QEMU binary, when given): 'completed' or QEMU's words."""
    vms: list[VM] = []
    try:
        a = start_vm(argv, directory / "self-a")
        vms.append(a)
        cold = _hotplug(a, case.hotplug)
        copy = start_vm([target or argv[0], *argv[1:], *(x for c in cold for x in c), "-incoming", "defer"],
                        directory / "self-b")
        vms.append(copy)
        before = _describe(a)[0] if target else None
        a.qmp("cont")
        status = _migrate(a, copy, str(directory / "self.sock"))
        if status == "completed" and before is not None and case.machine != "pseries":
            # across versions QEMU may complete and still change what the guest has (a field of
            # the migration state that is also a property): that is QEMU's own failure too
            after = _describe(copy)[0]
            if after != before:
                return f"completed, but the target then has other hardware: {_first_difference(after, before)[:200]}"
        return status
    except (RuntimeError, QmpFailed) as exc:
        return str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
    finally:
        for vm in vms:
            stop_vm(vm)


def _offline(argv: list[str], guest: bytes, overlay: bytes | None = None) -> tuple[str, str]:
    """('same'|'refused'|'differs'|'error', detail): the guest tree, and the back-end overlay
    when given (what ``qemu2dtb --offline`` writes beside it)."""
    from dtvm.qemu.offline import OfflineError, offline_config
    from dtvm.vm.translate import describe, driver_compat

    try:
        desc = describe(offline_config(argv), driver_compat())
    except OfflineError as exc:
        text = str(exc)
        return ("refused" if "\n" not in text.strip() and text else "error"), text
    except DtvmError as exc:
        return "error", f"{type(exc).__name__}: {exc}"
    if write_dtb(desc.guest) != guest:
        return "differs", _first_difference(write_dtb(desc.guest), guest)
    if overlay is not None and write_dtb(desc.backend) != overlay:
        return "differs", "overlay: " + _first_difference(write_dtb(desc.backend), overlay)
    return "same", ""


def _first_difference(got: bytes, want: bytes) -> str:
    """The nodes and properties that differ (got vs want), for the report."""
    def flat(blob: bytes) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for node in read_dtb(blob).root.walk():
            out[node.path] = b""
            for prop in node.properties:
                out[f"{node.path}:{prop.name}"] = bytes(prop.value)
        return out

    fg, fw = flat(got), flat(want)
    diffs = [f"{k} {'missing' if k not in fg else 'added' if k not in fw else _show(fw[k]) + ' -> ' + _show(fg[k])}"
             for k in sorted(set(fg) | set(fw)) if fg.get(k) != fw.get(k)]
    return "; ".join(diffs)[:500] or "the same trees in another order"


def _show(value: bytes) -> str:
    if value and value.endswith(b"\0") and all(32 <= c < 127 for c in value[:-1].replace(b"\0", b" ")):
        return repr(value[:-1].decode())
    return value[:32].hex()


def _stop_and_ask_qemu(vms: list[Any], case: Case, argv: list[str], directory: Path, target: str | None) -> str:
    """Stop this case's VMs, then let QEMU judge the identical migration itself ('completed' or its words)."""
    for vm in vms:
        stop_vm(vm)
    vms.clear()
    return _oracle_self_migration(case, argv, directory, target)


#: dtb2qemu --binary's refusals of what the target QEMU itself cannot do (held to QEMU each time)
_TARGET_CANNOT = ("QEMU cannot migrate this VM", "is not one QEMU", "has no such property in QEMU",
                  "QEMU refuses this device")
#: its refusals of a machine type the target builds as other hardware (held to the identical
#: command line described on the target: it must differ from A at the node refused)
_TARGET_DIFFERS = re.compile(r"^(/\S*): QEMU \S+ builds .*? other than ")


def _differs_on_target(case: Case, argv: list[str], guest: bytes, node: str, directory: Path,
                       target: str) -> str | None:
    """What the identical configuration (command line and hot-plugs) described on ``target``
    shows other than ``guest`` at ``node`` (or below it), or None when it does not differ there."""
    vm = start_vm([target, *argv[1:]], directory / "target-a", timeout=20)
    try:
        _hotplug(vm, case.hotplug)
        other = _describe(vm)[0]
    finally:
        stop_vm(vm)

    def under(blob: bytes) -> dict[str, bytes]:
        return {f"{n.path}:{p.name}": bytes(p.value) for n in read_dtb(blob).root.walk()
                if n.path == node or n.path.startswith(node + "/") for p in n.properties}

    mine, theirs = under(other), under(guest)
    if mine == theirs:
        return None
    return "; ".join(f"{k} {_show(theirs[k]) if k in theirs else 'missing'} -> {_show(mine[k]) if k in mine else 'missing'}"
                     for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k))[:500]


def run_case(case: Case, directory: Path, *, target: str | None = None) -> Outcome:
    """Run every stage on one case; A and B are stopped by pid whatever happens.  ``target`` is
    the QEMU binary B runs (``dtb2qemu --binary``; tests/qemu_random_versions.py), by default
    the description's own."""
    from dtvm.qemu.argv import build_argv
    from dtvm.qemu.live import binary_version
    from dtvm.vm.readback import read_config

    out = Outcome(case)
    directory.mkdir(parents=True, exist_ok=True)
    argv = case.materialize(directory)
    vms: list[VM] = []

    def fail(stage: str, message: str) -> Outcome:
        out.failed, out.message = stage, message.strip().splitlines()[0][:600] if message.strip() else stage
        return out

    try:
        try:
            a = start_vm(argv, directory / "a", timeout=20)
            vms.append(a)
            _hotplug(a, case.hotplug)
        except (RuntimeError, QmpFailed) as exc:
            out.discarded = f"start: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}"
            return out
        out.passed.append("start")
        try:
            first = _describe(a)
            second = _describe(a)
        except DtvmError as exc:
            return fail("describe-twice", f"{type(exc).__name__}: {exc}")
        if first != second:
            return fail("describe-twice", "guest tree differs" if first[0] != second[0] else "overlay differs")
        out.passed.append("describe-twice")
        if not case.hotplug:
            kind, detail = _offline(argv, first[0], first[1])
            if kind == "same":
                out.offline = "same"
            elif kind == "refused":
                out.offline = f"refused: {detail}"
            else:
                return fail("offline", f"{kind}: {detail}")
        out.passed.append("offline")
        a.qmp("cont")
        time.sleep(RUN_SECONDS)
        try:
            ran = _describe(a)
        except DtvmError as exc:
            return fail("describe-after-run", f"{type(exc).__name__}: {exc}")
        if ran[0] != first[0]:
            return fail("describe-after-run", _first_difference(ran[0], first[0]))
        out.passed.append("describe-after-run")
        try:
            rebuild = build_argv(read_config(read_dtb(first[0]), read_dtb(first[1])), binary=target,
                                 target_version=binary_version if target else None)
        except DtvmError as exc:
            differs = _TARGET_DIFFERS.match(str(exc)) if target else None
            if target and differs:
                for vm in vms:
                    stop_vm(vm)
                vms.clear()
                seen = _differs_on_target(case, argv, first[0], differs.group(1), directory, target)
                if seen is not None:
                    out.discarded = f"dtb2qemu --binary {target} refused; QEMU there builds other hardware: {seen}"
                    return out
            if target and any(w in str(exc) for w in _TARGET_CANNOT):
                # refused as the target QEMU cannot run or receive it: held to QEMU failing the
                # identical migration (or refusing the identical command line) itself
                self_status = _stop_and_ask_qemu(vms, case, argv, directory, target)
                if self_status != "completed":
                    out.discarded = f"dtb2qemu --binary {target} refused; so does QEMU: {self_status}"
                    return out
            return fail("dtb2qemu", str(exc))
        out.passed.append("dtb2qemu")
        try:
            b = start_vm([*rebuild.argv, "-incoming", "defer"], directory / "b", timeout=20)
            vms.append(b)
        except RuntimeError as exc:
            return fail("b-start", str(exc))
        out.passed.append("b-start")
        before = _describe(b) if case.machine == "pseries" else None  # 7.2 crashes on dumpdtb after migration
        status = _migrate(a, b, str(directory / "mig.sock"))
        if status != "completed":
            self_status = _stop_and_ask_qemu(vms, case, argv, directory, target)
            if self_status != "completed":
                out.discarded = f"migrate {'to ' + target if target else 'into itself'}: {self_status}"
                return out
            return fail("migrate", status)
        out.passed.append("migrate")
        got = before if before is not None else _describe(b)
        if got[0] != first[0]:
            return fail("b-equal", _first_difference(got[0], first[0]))
        out.passed.append("b-equal")
        return out
    except Exception as exc:  # a harness or dtvm crash is a failure of the stage it happened in
        stage = STAGES[len(out.passed)] if len(out.passed) < len(STAGES) else "b-equal"
        return fail(stage, "".join(traceback.format_exception_only(exc)).strip())
    finally:
        for vm in vms:
            stop_vm(vm)


def report(outcomes: list[Outcome]) -> str:
    """Pass rates per machine and per stage, the discarded with QEMU's words, the failures."""
    lines = []
    by_machine: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_machine[o.case.machine].append(o)
    lines.append(f"{'machine':14} {'cases':>5} {'valid':>5} {'pass':>5} {'rate':>6}  " + " ".join(f"{s[:10]:>10}" for s in STAGES) + "  offline-same/refused")
    for machine in [*MACHINE_ORDER, "all"]:
        group = outcomes if machine == "all" else by_machine.get(machine, [])
        if not group:
            continue
        valid = [o for o in group if o.discarded is None]
        ok = [o for o in valid if o.failed is None]
        cells = []
        for stage in STAGES:
            reached = [o for o in valid if stage in o.passed or o.failed == stage]
            passed = [o for o in reached if stage in o.passed]
            cells.append(f"{len(passed)}/{len(reached)}".rjust(10))
        same = sum(o.offline == "same" for o in valid)
        refused = sum(o.offline.startswith("refused") for o in valid)
        rate = f"{100 * len(ok) / len(valid):.0f}%" if valid else "-"
        lines.append(f"{machine:14} {len(group):5} {len(valid):5} {len(ok):5} {rate:>6}  " + " ".join(cells) + f"  {same}/{refused}")
    discarded = Counter(o.discarded for o in outcomes if o.discarded)
    if discarded:
        lines.append("discarded (QEMU's words):")
        lines += [f"  {n:3}  {why}" for why, n in discarded.most_common()]
    refusals = Counter(o.offline.split(": ", 1)[1].split(":")[0] if ": " in o.offline else o.offline
                       for o in outcomes if o.offline.startswith("refused"))
    if refusals:
        lines.append("offline refusals (what the model does not cover):")
        lines += [f"  {n:3}  {why}" for why, n in refusals.most_common()]
    failures = [o for o in outcomes if o.failed]
    if failures:
        lines.append("failures:")
        lines += [f"  {o.case.name} [{o.failed}] {o.message}\n      {' '.join(o.case.argv)} hotplug={o.case.hotplug}" for o in failures]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    # a SIGTERM unwinds like Ctrl-C, so the finally blocks stop the VMs of the running case
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    count = int(argv[0]) if argv else 300
    seed = int(argv[1]) if len(argv) > 1 else int(os.environ.get("DTVM_GEN_SEED", "0"))
    machines = [m for m in argv[2].split(",")] if len(argv) > 2 else None
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="dtvm-random-") as tmp:
        for i in range(count):
            machine = machines[i % len(machines)] if machines else None
            case = generate(seed * 100000 + i, machine)
            if case.machine not in MACHINES:
                continue
            o = run_case(case, Path(tmp) / case.name)
            outcomes.append(o)
            state = "discarded" if o.discarded else ("pass" if o.failed is None else f"FAIL {o.failed}")
            print(f"{i + 1}/{count} {case.name}: {state} {o.message or o.discarded or ''}"[:300], flush=True)
    print(report(outcomes))
    valid = [o for o in outcomes if not o.discarded]
    return 0 if all(o.failed is None for o in valid) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
