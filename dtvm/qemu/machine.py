"""Machine types made discoverable: what a machine type creates, adds by default, and why.

QEMU builds three layers of devices without being asked: the essential devices of the versioned
machine type, devices that machine options create (``usb=on``, ``sata=on``), and defaults that
``-nodefaults`` (or a narrower option such as ``-vga none``) removes.  None of this is written
down anywhere a program can read, so ``explain`` asks QEMU itself: it starts the machine with
each option varied and compares the device models.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from dtvm.errors import DtvmError
from dtvm.fileio import load_yaml
from dtvm.qemu.config import from_snapshot
from dtvm.qemu.snapshot import Snapshot
from dtvm.vm.model import MACHINE_HOST_PROPS, Config, Device

__all__ = ["DeviceOrigin", "MachineInfo", "MachineReport", "explain", "find_machine", "load_machines"]


@dataclass(frozen=True)
class MachineInfo:
    """One machine type dtvm supports (``dtvm/qemu/data/machines.yaml``)."""

    type: str
    alias: str
    arch: str
    binary: str
    package: str
    dt: bool

    def installed(self) -> bool:
        return shutil.which(self.binary) is not None


@dataclass
class DeviceOrigin:
    """Why a device exists: ``essential``, ``option`` (a machine option creates it) or ``default``."""

    key: str
    driver: str
    origin: str
    removed_by: list[str] = field(default_factory=list)
    props: dict[str, str] = field(default_factory=dict)


@dataclass
class MachineReport:
    machine: MachineInfo
    argv: list[str]
    devices: list[DeviceOrigin]
    adds: dict[str, list[str]] = field(default_factory=dict)
    #: what the type picks when not told: cpu-type, cpus, max-cpus, memory, firmware, options
    defaults: dict[str, Any] = field(default_factory=dict)
    #: the QEMU that answered (query-version), for schemas generated from it
    qemu_version: str = ""
    #: what the versioned type changes in device defaults, in QEMU's order (query-machines
    #: compat-props: QEMU >= 9.1 reports them; empty before)
    compat: list[dict[str, str]] = field(default_factory=list)


def _data() -> dict[str, Any]:

    text = resources.files("dtvm.qemu").joinpath("data/machines.yaml").read_text(encoding="utf-8")
    data = load_yaml(text)
    if not isinstance(data, dict):
        raise DtvmError("dtvm/qemu/data/machines.yaml: not a mapping")
    return data


def load_machines() -> list[MachineInfo]:
    """The supported machine types, in the data file's order."""
    return [MachineInfo(**entry) for entry in _data()["machines"]]


def probe_options() -> list[list[str]]:
    return [list(p) for p in _data()["probe"]]


def find_machine(name: str, binary: str | None = None) -> MachineInfo:
    """The machine called ``name`` (versioned type or alias), on ``binary`` when several match."""
    matches = [m for m in load_machines() if name in (m.type, m.alias)]
    if not matches:
        # another version of a supported type (pc-q35-10.0 on QEMU 10.0): the same family
        import re

        family = re.sub(r"-\d+\.\d+$", "", name)
        if family != name:
            matches = [MachineInfo(name, m.alias, m.arch, m.binary, m.package, m.dt) for m in load_machines()
                       if m.type != m.alias and re.sub(r"-\d+\.\d+$", "", m.type) == family]
    if binary is not None:
        base = binary.rsplit("/", 1)[-1]
        matches = [m for m in matches if m.binary == base] or matches
    if not matches:
        known = ", ".join(sorted({m.type for m in load_machines()}))
        raise DtvmError(f"unknown machine type {name!r} (dtvm describes: {known})")
    return matches[0]


def _drivers(config: Config) -> Counter[str]:
    return Counter(d.driver for d in config.devices())


def _last_of(devices: list[Device], removed: Counter[str]) -> list[Device]:
    """The devices a run lacks: per driver, the most recently created ones (defaults come last)."""
    out: list[Device] = []
    for driver, count in removed.items():
        same = [d for d in devices if d.driver == driver]
        out.extend(same[-count:])
    return out


def _switchable(snapshot: Snapshot) -> list[tuple[str, str]]:
    """Machine options that may create or remove devices: the boolean and on/off/auto ones."""
    out: list[tuple[str, str]] = []
    for name, value in sorted(snapshot.machine_props.items()):
        if name in MACHINE_HOST_PROPS or name.startswith("x-") or name in ("dump-guest-core", "mem-merge", "suppress-vmdesc"):
            continue
        if isinstance(value, bool):
            out.append((name, "off" if value else "on"))
        elif value in ("on", "auto"):
            out.append((name, "off"))
    return out


def explain(
    machine: MachineInfo,
    extra: Sequence[str] = (),
    *,
    binary: str | None = None,
    read: Callable[[list[str]], Snapshot] | None = None,
) -> MachineReport:
    """Start the machine with each option varied and say where each device comes from."""
    if read is None:
        from dtvm.qemu.live import read_argv

        read = read_argv
    exe = binary or machine.binary
    base = [exe, "-M", machine.type, *extra]
    full_snap = read(base)
    full = from_snapshot(full_snap)
    bare_snap = read([*base, "-nodefaults"])
    bare = from_snapshot(bare_snap)
    devices = full.devices()
    origins = {id(d): DeviceOrigin(d.key(), d.driver, "essential", props=dict(d.props)) for d in devices}
    for dev in _last_of(devices, _drivers(full) - _drivers(bare)):
        origins[id(dev)].origin = "default"

    probes = [p for p in probe_options() if p != ["-nodefaults"]]
    switches = _switchable(bare_snap)
    jobs: list[tuple[str, list[str], bool]] = [(" ".join(p), [*base, *p], False) for p in probes]
    for name, value in switches:
        jobs.append((f"{name}={value}", [exe, "-M", f"{machine.type},{name}={value}", *extra, "-nodefaults"], True))

    def run(job: tuple[str, list[str], bool]) -> tuple[str, bool, Config | None]:
        try:
            return job[0], job[2], from_snapshot(read(job[1]))
        except DtvmError:
            return job[0], job[2], None  # QEMU refuses the combination: nothing to learn

    adds: dict[str, list[str]] = {}
    # The probes run in worker threads, where Python cannot handle signals: the main thread takes
    # SIGTERM/SIGHUP/SIGQUIT as Ctrl-C here, and no queued probe starts a QEMU after that.
    from dtvm.qemu.process import signals_as_interrupt

    pool = ThreadPoolExecutor(max_workers=2)
    try:
        with signals_as_interrupt():
            results = list(pool.map(run, jobs))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for label, is_switch, cfg in results:
        if cfg is None:
            continue
        reference = bare if is_switch else full
        removed = _drivers(reference) - _drivers(cfg)
        added = _drivers(cfg) - _drivers(reference)
        if is_switch and added:
            adds[label] = sorted(added.elements())
        for dev in _last_of(devices, removed):
            origin = origins[id(dev)]
            if is_switch and origin.origin == "essential":
                origin.origin = "option"
            origin.removed_by.append(f"-M {machine.type},{label}" if is_switch else label)
    for dev in devices:
        if origins[id(dev)].origin == "default":
            origins[id(dev)].removed_by.append("-nodefaults")
    m = full.machine
    defaults: dict[str, Any] = {
        "cpu-type": m.cpu_type, "cpus": m.cpus, "max-cpus": m.max_cpus, "memory": m.memory,
        "topology": dict(m.topology), "inputs": dict(full.inputs), "options": dict(m.options),
    }
    version = full_snap.version.get("qemu", {}) if isinstance(full_snap.version, dict) else {}
    text = f"{version.get('major')}.{version.get('minor')}.{version.get('micro')}" if version else ""
    compat = [{"qom-type": str(c.get("qom-type")), "property": str(c.get("property")), "value": str(c.get("value"))}
              for c in full_snap.compat_props]
    return MachineReport(machine, base, [origins[id(d)] for d in devices], adds, defaults,
                         f"{text} {full_snap.version.get('package', '')}".strip(), compat)


def render_report(report: MachineReport, source: str = "") -> str:
    """The report as text for a terminal."""
    m = report.machine
    lines = [f"{m.type} ({m.binary}, alias {m.alias}, {'has' if m.dt else 'no'} devicetree)",
             source or "started as: " + " ".join(report.argv)]
    dflt = report.defaults
    if dflt:
        mem = int(dflt.get("memory") or 0)
        firmware = (dflt.get("inputs") or {}).get("firmware")
        lines.append(f"defaults: cpu {dflt.get('cpu-type')}, {dflt.get('cpus')} cpu(s) (max {dflt.get('max-cpus')}), "
                     f"memory {mem >> 20} MiB" + (f", firmware {firmware}" if firmware else ""))
    groups = (("essential", "essential: created by the machine type itself"),
              ("option", "created by machine options (the option shown removes it)"),
              ("default", "defaults (removed by -nodefaults and the options shown)"))
    for origin, title in groups:
        entries = [d for d in report.devices if d.origin == origin]
        lines.append("")
        lines.append(f"{title}: {len(entries)}")
        for d in entries:
            why = f"  removed by: {', '.join(d.removed_by)}" if d.removed_by else ""
            lines.append(f"  {d.key:<40} {d.driver}{why}")
    if report.adds:
        lines.append("")
        lines.append("machine options that add devices (with -nodefaults):")
        for label, drivers in sorted(report.adds.items()):
            lines.append(f"  -M {m.type},{label}: {', '.join(drivers)}")
    if report.compat:
        lines.append("")
        lines.append(f"compat properties (what {m.type} changes in device defaults on this QEMU): {len(report.compat)}")
        for c in report.compat:
            lines.append(f"  {c['qom-type']}.{c['property']}={c['value']}")
    return "\n".join(lines) + "\n"
