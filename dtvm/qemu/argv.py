"""A description back to a precise QEMU command line: ``dtvm dtb2qemu``.

The machine type is asked once what it creates by itself (a probe: the same versioned type,
options, CPUs and memory, ``-nodefaults``, started paused and read like any VM), so that exactly
the devices the machine does not make are given with ``-device``, each with an id, its bus and
its address; properties of machine-made devices that differ go through ``-global``.  Every value
that reaches an option is checked by ``opts`` (commas doubled, control characters refused), and
nothing here is ever run through a shell.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dtvm.errors import DtvmError, first_line
from dtvm.qemu.argv_objects import link_object, self_placed, self_placed_first
from dtvm.qemu.config import from_snapshot
from dtvm.qemu.fsdev import fsdev_args
from dtvm.qemu.made import (
    MadeError,
    device_links,
    link_targets_first,
    own_child_bus,
    own_children,
    own_children_made,
)
from dtvm.qemu.snapshot import Snapshot, version_of
from dtvm.qemu.trust import Trust, TrustError, trust
from dtvm.qemu.versions import (
    catalog_version,
    known_versions,
    migration_blocker,
    other_hardware,
    version_text,
    versions,
)
from dtvm.vm.buses import device_facts, device_links_of, needs_backend
from dtvm.vm.model import MACHINE_DEVICE_OPTIONS, Config, Device

__all__ = ["ArgvError", "Probe", "Prober", "Rebuild", "build_argv", "live_prober"]

#: qemu-system binary per target architecture
BINARIES = {
    "x86_64": "qemu-system-x86_64", "i386": "qemu-system-i386", "aarch64": "qemu-system-aarch64",
    "arm": "qemu-system-arm", "riscv64": "qemu-system-riscv64", "riscv32": "qemu-system-riscv32",
    "ppc64": "qemu-system-ppc64", "ppc": "qemu-system-ppc",
}

#: device properties that are addresses or bus links: set by dtvm, never copied from the tree
RESERVED = frozenset({"id", "bus", "addr", "unit", "scsi-id", "lun", "channel", "port", "nr", "cad", "reg",
                      "iobase", "address", "driver", "drive", "netdev", "chardev", "audiodev",
                      "memdev", "iothread", "hotplugged", "unplug-pending", "masterbus", "fsdev"})

BACKEND_REFS = ("drive", "netdev", "chardev", "fsdev")


def _ref_kind(key: str) -> str | None:
    """The back-end kind a device property refers to (``chardev1``..``chardev4`` of pci-serial-2x/4x
    are chardevs too), or None for a host setting that is not a reference."""
    if key in BACKEND_REFS or key == "audiodev":
        return key
    return "chardev" if re.fullmatch(r"chardev[0-9]+", key) else None


class ArgvError(DtvmError):
    """A description that cannot be rebuilt (unknown device, version, conflict, missing back-end)."""

    exit_code = 1


@dataclass
class Rebuild:
    """The argv and what dtvm learnt making it."""

    argv: list[str]
    ids: dict[str, str] = field(default_factory=dict)  # node path -> qdev id given
    #: what the argv makes QEMU open on the host, in words ("file /img (drive for /pci/disk@3)"):
    #: all of it comes from the back-end overlay, none from the guest tree
    host: list[str] = field(default_factory=list)
    #: what the user should know and dtvm could not decide (one line each)
    notes: list[str] = field(default_factory=list)


def _esc(value: str, where: str) -> str:
    from dtvm.qemu.opts import escape

    return escape(value, where)


def _render(head: str | None, pairs: list[tuple[str, str]], where: str, implied: str | None = None) -> str:
    from dtvm.qemu.opts import render

    return render(head, pairs, where, implied=implied)


def _global(driver: str, prop: str, value: str, where: str) -> str:
    """-global in its long form (driver=,property=,value=): the short D.P=V form takes V verbatim
    and cuts the driver at its first dot."""
    from dtvm.qemu.opts import render_global

    return render_global(driver, prop, value, where)


def _machine_base(plan: Config, binary: str) -> list[str]:
    m = plan.machine
    args = [binary, "-nodefaults"]
    if m.cpu_type:
        trust().cpu_model(m.cpu_type, "/qemu")
        args += ["-cpu", _esc(m.cpu_type, "/qemu: cpu-type")]
    cold = m.cpus - len(m.device_cpus)  # CPUs made as devices come as -device (_cpu_devices)
    smp = [f"cpus={cold}"]
    if m.max_cpus and m.max_cpus != cold:
        smp.append(f"maxcpus={m.max_cpus}")
    for key in ("sockets", "dies", "clusters", "cores", "threads"):
        if key in m.topology:
            smp.append(f"{key}={m.topology[key]}")
    args += ["-smp", ",".join(smp)]
    memory = f"{m.memory}B"
    if m.max_memory:
        memory += f",slots={m.memory_slots},maxmem={m.max_memory}B"
    args += ["-m", memory]
    return args


def _cpu_devices(plan: Config) -> list[str]:
    """``-device`` for each CPU the description says was made as a device (hot-plugged or given
    with -device), so that the rebuilt VM can unplug it as the original could."""
    m = plan.machine
    if not m.device_cpus:
        return []
    from dtvm.qemu.config import cpu_device_type

    if not m.cpu_type:
        raise ArgvError("/qemu: device-cpus needs a cpu-type")
    driver = cpu_device_type(m.arch, m.cpu_type)
    if driver is None:
        raise ArgvError(f"/qemu: device-cpus: arch {m.arch} has no CPU devices dtvm knows")
    args: list[str] = []
    for n, ids in enumerate(m.device_cpus):
        args += ["-device", _render(driver, [("id", f"cpu-dev{n}"), *((k, str(v)) for k, v in ids.items())],
                                    "/qemu: device-cpus", implied="driver")]
    return args


def _machine_arg(plan: Config, options: dict[str, str]) -> str:
    pairs = sorted(options.items())
    return _render(plan.machine.type, pairs, "/qemu")


@dataclass
class Probe:
    """What a machine type makes by itself for given options: its devices (``config``) and its
    machine properties with their values (``machine_props``: option text or QMP JSON values)."""

    config: Config
    machine_props: dict[str, Any]
    #: whether ``machine_props`` has every machine property (a live QEMU's answer) or only those
    #: a model knows (offline: the type's defaults and the options given)
    complete: bool = True
    #: the QEMU version that answered (None: the offline models', QEMU 7.2)
    version: tuple[int, int, int] | None = None


Prober = Callable[[list[str]], Probe]


def live_prober(read: Callable[[list[str]], Snapshot]) -> Prober:
    """Probes by starting the QEMU of the argv (paused) and reading it."""
    def probe(argv: list[str]) -> Probe:
        snapshot = read(argv)
        return Probe(from_snapshot(snapshot), dict(snapshot.machine_props), version=version_of(snapshot))
    return probe


def _probe(plan: Config, binary: str, options: dict[str, str], prober: Prober, extra: list[str] | None = None) -> Probe:
    return prober([*_machine_base(plan, binary), "-machine", _machine_arg(plan, options), *(extra or [])])


@contextlib.contextmanager
def _stand_in_firmware(plan: Config) -> Iterator[list[str]]:
    """``-bios EMPTY`` for probes and the check start where loading firmware changes what the
    machine makes (``firmware-shapes-devices`` in data/machines.yaml) and the description has
    firmware: an empty file of dtvm's own in a private directory, never the host's file."""
    from dtvm.qemu.config import firmware_shapes_devices

    if "firmware" not in plan.inputs or plan.machine.type not in firmware_shapes_devices():
        yield []
        return
    directory = tempfile.mkdtemp(prefix="dtvm-fw-")
    try:
        os.chmod(directory, 0o755)  # QEMU may run as another user (-runas)
        path = os.path.join(directory, "stand-in.fd")
        with open(path, "wb"):
            pass
        os.chmod(path, 0o644)
        yield ["-bios", path]
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _machine_options(plan: Config, baseline: Probe) -> dict[str, str]:
    """The options to give: those the description states that differ from what the type does.

    Machine properties that name host files or objects (dumpdtb, kernel, firmware,
    memory-backend, ...) are never taken from a guest tree: a DTB from anyone must not make QEMU
    read or write a host path.  Those come only from the back-end overlay (inputs).
    """
    from dtvm.qemu.config import _json_text
    from dtvm.vm.model import MACHINE_HOST_PROPS, MACHINE_INPUT_PROPS

    out: dict[str, str] = {}
    for key, value in plan.machine.options.items():
        if versions().machine_ignored(key, value):
            continue  # derived (a description made before dtvm knew), or a newer option at its neutral value
        if not baseline.complete and key not in baseline.machine_props and key not in MACHINE_HOST_PROPS \
                and key not in MACHINE_INPUT_PROPS:
            raise ArgvError(f"/qemu: qemu,{key}: a machine option the offline model of {plan.machine.type} does not "
                            "cover (rebuild without --offline)")
        if key in MACHINE_HOST_PROPS or key in MACHINE_INPUT_PROPS or key not in baseline.machine_props:
            raise ArgvError(f"/qemu: qemu,{key}: not a guest-visible option of machine {plan.machine.type}")
        current = baseline.machine_props.get(key)
        if current is not None and _json_text(current) == value:
            continue
        out[key] = value
    for key in MACHINE_DEVICE_OPTIONS:
        if key in baseline.machine_props:
            out[key] = "off"
    return out


class _Ids:
    """qdev ids for the devices, unique, from their host ids or drivers; the next number per base
    is remembered, so that thousands of devices of one type cost linear time."""

    def __init__(self) -> None:
        self.taken: set[str] = set()
        self.next: dict[str, int] = {}

    def give(self, text: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", text)
        if not base or not base[0].isalpha():
            base = "d" + base
        ident = base[:60]
        n = self.next.get(base[:55], 1)
        while ident in self.taken:
            ident = f"{base[:55]}_{n}"
            n += 1
        self.next[base[:55]] = n
        self.taken.add(ident)
        return ident


@dataclass
class _Node:
    """A device in the rebuilt machine: either made by the machine (probe) or by -device."""

    desc: Device | None
    probe: Device | None
    qid: str | None = None


def build_argv(plan: Config, *, binary: str | None = None, read: Callable[[list[str]], Snapshot] | None = None,
               prober: Prober | None = None, check: bool = True,
               target_version: Callable[[str], tuple[int, int, int] | None] | None = None,
               verify: Callable[[list[str]], Snapshot] | None = None) -> Rebuild:
    """The precise argv that rebuilds the described VM; ArgvError naming the node when it cannot.

    What the machine makes by itself comes from ``prober`` (default: starting the QEMU with
    ``read``; ``offline.offline_prober`` answers from the machine models without QEMU).  With
    ``check``, the result is started once with ``read``, paused, on null back-ends (no host file,
    socket or device is opened), so that what QEMU refuses is reported now and by the node.  It
    starts as a migration destination does (``verify``, default ``read_argv(..., incoming=True)``:
    ``-incoming defer``, no block device activated, no image lock), so checking works while the
    VM being rebuilt runs on this host and holds its images.
    """
    with _stand_in_firmware(plan) as firmware:
        return _build_argv(plan, binary, read, prober, check, verify, firmware, target_version)


def _build_argv(plan: Config, binary: str | None, read: Callable[[list[str]], Snapshot] | None,
                prober: Prober | None, check: bool, verify: Callable[[list[str]], Snapshot] | None,
                firmware: list[str],
                target_version: Callable[[str], tuple[int, int, int] | None] | None) -> Rebuild:
    if plan.machine.cpu_type:
        try:
            trust().cpu_model(plan.machine.cpu_type, "/qemu")
        except TrustError as exc:
            raise ArgvError(str(exc)) from None
    if read is None:
        from dtvm.qemu.live import read_argv

        read = read_argv
    if prober is None:
        prober = live_prober(read)
    from dtvm.vm.translate import describe

    exe = binary or BINARIES.get(plan.machine.arch)
    if exe is None:
        raise ArgvError(f"/qemu: arch {plan.machine.arch!r}: no QEMU binary known for it")
    user_netdevs = sum(1 for b in plan.backends if b.kind == "netdev" and b.options.get("type") == "user")
    drivers = frozenset(d.driver for d in plan.devices())

    def blocked(source: str, target: tuple[int, int, int] | None) -> str | None:
        why = migration_blocker(plan.machine.arch, plan.machine.type, user_netdevs, source, target,
                                plan.machine.options, plan.machine.cpu_type, drivers)
        if why is not None:
            return f"/qemu: {why}"
        return other_hardware(plan.machine.arch, plan.machine.type, source, target, plan.machine.options,
                              plan.machine.cpu_type)

    if plan.qemu_version and target_version is not None:
        # before anything starts: a VM that could not receive the migration is not worth probing
        blocker = blocked(plan.qemu_version, target_version(exe))
        if blocker is not None:
            raise ArgvError(blocker)
    try:
        baseline = _probe(plan, exe, {}, prober, firmware)
    except DtvmError as exc:
        raise ArgvError(f"/qemu: machine {plan.machine.type!r} cannot be started with {exe}: {exc}") from None
    blocker = blocked(plan.qemu_version, baseline.version)
    if blocker is not None:
        raise ArgvError(blocker)
    notes: list[str] = []
    if not plan.qemu_version and baseline.version is not None:
        # the overlay says which QEMU described the VM; without it, say what would hold if another
        for other in known_versions():
            maybe = blocked(f"{other}.0", baseline.version)
            if maybe is not None:
                notes.append(f"/qemu: the description does not say which QEMU described it (its back-end "
                             f"overlay does); if it was QEMU {other}: {maybe.removeprefix('/qemu: ')}")
                break
    # held to the catalog of the QEMU that will run it: what that version lacks is refused by node
    rules = trust(catalog_version(baseline.version))
    options = _machine_options(plan, baseline)
    flash_host: list[str] = []
    flash_real, flash_null = _flash_drives(plan, baseline, flash_host)
    try:
        probed = _probe(plan, exe, options, prober, [*firmware, *flash_null]) if options or flash_null else baseline
    except DtvmError as exc:
        raise ArgvError(f"/qemu: machine options {options} rejected: {exc}") from None
    from dtvm.vm.translate import driver_compat

    probe = probed.config
    probe_desc = describe(probe, driver_compat())
    probe_by_path: dict[str, Device] = {}
    for pdev in probe.devices():
        path = probe_desc.nodes.get(pdev.key())
        if path is not None:
            probe_by_path.setdefault(path, pdev)

    argv = [*_machine_base(plan, exe), "-machine", _machine_arg(plan, options), *_cpu_devices(plan)]
    host: list[str] = []
    checked = list(argv)  # the same command line on null back-ends, without host settings
    taken = _Ids()
    ids: dict[str, str] = {}
    devices = plan.devices()
    by_path = {_path(d): d for d in devices}
    backends = plan.backend_map()
    made: dict[str, _Node] = {}
    backends_used: list[tuple[str, str]] = []
    named: set[str] = set()  # drives whose BlockBackend name the guest sees (a made child's device_id)
    objects: dict[str, tuple[str, str]] = {}  # -object of the guest tree's links: id -> (to run, to check)
    globals_: list[tuple[str, bool]] = []  # (-global value, whether it is a host setting)
    own_made: list[Device] = []  # the children makers make themselves (makes-own-child), held to QEMU's
    linked_once: dict[int, str] = {}  # devices on no bus a link names (an IPMI BMC): the node linking each

    # machine-made devices the description has at another address than the probe (pseries' NVRAM
    # takes the next free VIO reg, which depends on the devices before it): same device, and its
    # address goes through -global
    moved: dict[str, Device] = {}
    loose = {p: d for p, d in probe_by_path.items() if p not in by_path or by_path[p].driver != d.driver}
    for dev in devices:
        if dev.node not in probe_by_path and dev.address[0] in ("cell", "vio"):
            for path, cand in list(loose.items()):
                if cand.driver == dev.driver and cand.address[0] == "vio":
                    moved[_path(dev)] = cand
                    del loose[path]
                    globals_.append((_global(dev.driver, "reg", f"{dev.address[1][0]:#x}", _path(dev)), False))
                    break

    for dev in self_placed_first(link_targets_first(_masters_first(devices))):
        where = _path(dev)
        parent_path = _parent_path(dev)
        essential = moved.get(where) or probe_by_path.get(where)
        if essential is not None and essential.driver == dev.driver:
            made[where] = _Node(dev, essential)
            for key, value in sorted(dev.props.items()):
                _not_host(rules, dev.driver, key, where)
                if key in RESERVED:
                    continue
                if essential.props.get(key) != value:
                    _trusted(rules, dev.driver, key, where)
                    globals_.append((_global(dev.driver, key, value, where), False))
            for key, value in sorted(_host_settings(dev).items()):
                if essential.props.get(key) != value and essential.backends.get(key) != value:
                    globals_.append((_global(dev.driver, key, value, where), True))
                    host.append(f"{key} {value!r} ({dev.driver} at {where})")
            continue
        if dev.address[0] == "virtio" and parent_path in made \
                and made[parent_path].desc is not None and made[parent_path].probe is None:
            # the virtio device inside a virtio-pci proxy: created by the proxy's -device (the
            # proxy's child on its virtio bus; virtio-mem's and virtio-pmem's have no "-device" suffix)
            made[where] = _Node(dev, None, made[parent_path].qid)
            continue
        parent_dev = dev.parent_device
        named_bus = own_child_bus(parent_dev.driver) if parent_dev is not None else None
        if named_bus is not None and parent_dev is not None and not _made_there(dev, named_bus[1]):
            # the user's device on a maker's named bus (an i2c-ddc beside ati-vga's own DDC)
            makers = [d for d in devices if d.driver == parent_dev.driver]
            if len(makers) > 1:
                raise ArgvError(f"{where}: {dev.driver} on the bus of one of {len(makers)} {parent_dev.driver}, "
                                f"whose buses QEMU names alike ({named_bus[0]}): no -device can name it")
        elif parent_dev is not None and dev.driver in own_children().get(parent_dev.driver, ()) \
                and parent_path in made and made[parent_path].probe is None:
            # the disk a usb-storage makes on its own SCSI bus from its drive, the bridge a pxb
            # makes on its root bus: the parent's -device makes it (and a bridge's bus is named
            # after the parent's id, which QEMU gives the bridge it makes)
            siblings = [c for c in dev.parent.devices if c.driver == dev.driver
                        and (named_bus is None or _made_there(c, named_bus[1]))] if dev.parent is not None else []
            times = own_children()[parent_dev.driver].count(dev.driver)
            if len(siblings) > times:
                raise ArgvError(f"{where}: a {parent_dev.driver} makes {'one' if times == 1 else times} "
                                f"{dev.driver} on its bus; another one there cannot be given")
            made[where] = _Node(dev, None, made[parent_path].qid)
            own_made.append(dev)
            continue
        if dev.in_dt and essential is None and dev.address[0] in ("mmio", "none"):
            raise ArgvError(f"{where}: {dev.driver} is described in QEMU's own tree but this machine does not create it")
        maker = device_facts().get("made-by-other", {}).get(dev.driver)
        if maker is not None:
            raise ArgvError(f"{where}: {dev.driver} is made by a {' or '.join(maker.get('makers', ()))}, never "
                            "given alone: its bus's devices belong inside the node of the device that makes it")
        try:
            rules.device(dev.driver, where)
        except TrustError as exc:
            raise ArgvError(str(exc)) from None
        qid_source = dev.qdev_id or dev.driver
        qid = taken.give(qid_source)
        ids[where] = qid
        pairs: list[tuple[str, str]] = [("id", qid)]
        pairs += _bus_and_address(dev, made, where)
        try:
            pairs += device_links(dev, ids, set(made), where, plan.root, linked_once)
        except MadeError as exc:
            raise ArgvError(str(exc)) from None
        proxy_children = [c for b in dev.buses for c in b.devices if c.address[0] == "virtio"]
        props = dict(dev.props)
        refs = {k: v for k, v in dev.backends.items() if _ref_kind(k)}
        origin: dict[str, str] = {}  # a property the proxy takes from its virtio device: that node
        for child in proxy_children:
            for key, value in child.props.items():
                if key not in props:
                    props[key] = value
                    origin[key] = _path(child)
            for k in BACKEND_REFS:
                if k in child.backends:
                    refs.setdefault(k, child.backends[k])
        own = own_children().get(dev.driver, ())
        for child in (c for b in dev.buses for c in b.devices if c.driver in own):
            # its properties follow from the drive, and from those the parent passes on (on the
            # target's version); only the drive and those go to the parent's -device
            for k in BACKEND_REFS:
                if k in child.backends:
                    refs.setdefault(k, child.backends[k])
            for key, fixed in versions().passed_to_child(dev.driver, child.driver, baseline.version).items():
                if key not in child.props:
                    continue
                value = child.props[key]
                if fixed is None:
                    props[key] = value
                elif value != fixed:
                    raise ArgvError(f"{_path(child)}: QEMU {version_text(baseline.version or (0, 0, 0))} builds "
                                    f"the {child.driver} of a {dev.driver} other than described: qemu,{key} {value}: "
                                    f"its {dev.driver} gives it what the back-end has ({fixed} for an image "
                                    "file), not its own")
            if "drive" in child.backends and child.props.get("device_id") == child.backends["drive"]:
                named.add(child.backends["drive"])  # scsi-hd's device_id is its drive's name
        linked = device_links_of(dev.driver)  # given as the target's QOM path (device_links above)
        for key, value in sorted(props.items()):
            if key in linked:
                continue
            link = rules.link_of(dev.driver, key)
            if link is not None:
                try:
                    pairs.append((key, link_object(link, value, f"{where}: qemu,{key}", objects, backends, host)))
                except DtvmError as exc:
                    raise ArgvError(str(exc)) from None
                continue
            _not_host(rules, dev.driver, key, origin.get(key, where))
            if key in RESERVED:
                continue
            _trusted(rules, dev.driver, key, origin.get(key, where))
            pairs.append((key, value))
        settings = sorted(_host_settings(dev).items())
        selection = rules.host_selections.get(dev.driver)
        chosen = [(k, v) for k, v in settings if selection is not None and k in selection.props]
        for key, value in settings:
            if (key, value) not in chosen:
                host.append(f"{key} {value!r} ({dev.driver} at {where})")
        if chosen:
            host.append(f"the host device {','.join(f'{k}={v}' for k, v in chosen)} selects ({dev.driver} at {where})")
        unselected: list[tuple[str, str]] = []  # the check start's selection (never a host device)
        if selection is not None:
            unselected = list(selection.none)
            if not chosen:
                settings = sorted([*settings, *unselected])
                notes.append(f"{where}: the back-end overlay selects no host device for this {dev.driver}: it is "
                             f"given {','.join(f'{k}={v}' for k, v in unselected)}, which no host device matches "
                             "(an empty port for the guest)")
        if "masterbus" in dev.backends:
            pairs.append(("masterbus", _companion_master(dev, ids, where)))
        needed = needs_backend().get(dev.driver) or next((needs_backend()[c.driver] for c in proxy_children if c.driver in needs_backend()), None)
        if needed is not None and needed not in refs:
            raise ArgvError(f"{where}: {dev.driver} needs a {needed} back-end; the back-end overlay gives it none")
        for key, ref in sorted(refs.items()):
            kind = _ref_kind(key) or key
            empty = kind == "drive" and not backends.get((kind, ref), {}).get("drv")
            if (empty or (kind, ref) not in backends) and dev.driver in ("ide-cd", "scsi-cd", "floppy"):
                continue  # an empty CD-ROM: QEMU makes its anonymous empty drive again
            if (kind, ref) not in backends and kind != "audiodev":
                hint = " (QEMU reports no fsdev over QMP: give it with dtvm backend --fsdev)" if kind == "fsdev" else ""
                raise ArgvError(f"{where}: {key} {ref!r} is not in the back-end overlay{hint}")
            pairs.append((key, _backend_id(kind, ref)))
            backends_used.append((kind, ref))
        argv += ["-device", _render(dev.driver, [*pairs, *settings], where, implied="driver")]
        checked += ["-device", _render(dev.driver, [*pairs, *unselected], where, implied="driver")]
        made[where] = _Node(dev, None, qid)

    missing = [p for p, d in probe_by_path.items() if p not in by_path and d not in moved.values()]
    if missing:
        raise ArgvError(f"{missing[0]}: the machine creates a {probe_by_path[missing[0]].driver} here that the description does not list")
    for item, setting in globals_:
        argv += ["-global", item]
        if not setting:
            checked += ["-global", item]
    real, null = _backend_args(plan, backends_used, host, named)
    host += flash_host
    nets = _netdev_args(plan)
    argv[1:1] = [*real, *flash_real, *nets, *(a for run, _ in objects.values() for a in ("-object", run))]
    checked[1:1] = [*null, *flash_null, *nets, *(a for _, check in objects.values() for a in ("-object", check))]
    argv += _input_args(plan, probed, host)
    checked += firmware
    if check:
        if verify is None:
            from dtvm.qemu.live import read_argv

            def verify(argv: list[str]) -> Snapshot:
                return read_argv(argv, incoming=True)
        _verify(checked, ids, verify, plan, own_made)
    return Rebuild(argv, ids, host, notes)


def _verify(argv: list[str], ids: dict[str, str], read: Callable[[list[str]], Snapshot],
            plan: Config | None = None, own_made: list[Device] | None = None) -> None:
    """Start the result once, paused, so that what QEMU refuses (a device type this QEMU lacks, an
    address conflict, a bad property) is reported now and by the node, not at migration time; and
    hold the children makers make themselves to what QEMU made (dtvm.qemu.made)."""
    try:
        snapshot = read(argv)
    except DtvmError as exc:
        message = first_line(exc)
        # QEMU names the option it was creating ("-device DRIVER,id=X,...: ..."): that device is
        # the one refused, even when the message also names another one (the slot's holder)
        creating = re.search(r"-device (\S*?): ", message)
        if creating is not None:
            for path, qid in ids.items():
                if re.search(rf"(^|,)id={re.escape(qid)}(,|$)", creating.group(1)):
                    raise ArgvError(f"{path}: QEMU refuses this device: {message}") from None
        for path, qid in ids.items():
            if re.search(rf"[,=]id={re.escape(qid)}(,|:|\s|$)", message) or f"'{qid}'" in message:
                raise ArgvError(f"{path}: QEMU refuses this device: {message}") from None
        raise ArgvError(f"QEMU refuses the rebuilt command line: {message}") from None
    if plan is not None and own_made:
        try:
            own_children_made(plan, own_made, snapshot)
        except MadeError as exc:
            raise ArgvError(str(exc)) from None


#: host facts of a device that are not settings of it: its id, history flags, back-end references
#: (which become -blockdev/-netdev/-chardev) and the companion's bus name (rebuilt from ids)
_NOT_SETTINGS = frozenset({"masterbus", "audiodev", *BACKEND_REFS})


def _host_settings(dev: Device) -> dict[str, str]:
    """qdev properties the back-end overlay sets on a device (a ROM file, say): host
    configuration, trusted because the user named the overlay, and reported as such."""
    return {k: v for k, v in dev.backends.items() if k not in _NOT_SETTINGS and not _ref_kind(k)}


def _trusted(rules: Trust, driver: str, prop: str, where: str) -> None:
    try:
        rules.prop(driver, prop, where)
    except TrustError as exc:
        raise ArgvError(str(exc)) from None


def _not_host(rules: Trust, driver: str, prop: str, where: str) -> None:
    """A guest tree never states a host fact, not even one dtvm would ignore (``qemu,drive``)."""
    why = rules.host_reason(driver, prop)
    if why is not None:
        raise ArgvError(f"{where}: qemu,{prop} {why}: only the back-end overlay may state it")


def _path(dev: Device) -> str:
    """The node that describes a device read back from a description."""
    if dev.node is None:
        raise ArgvError(f"{dev.key()}: a device without a description node")
    return dev.node


def _parent_path(dev: Device) -> str | None:
    parent = dev.parent_device
    return parent.node if parent is not None else None


def _slot(dev: Device) -> tuple[int, int] | None:
    """(the bus it is on, slot) of a PCI function, to find the functions of one slot."""
    if dev.address[0] != "pci" or dev.parent is None:
        return None
    return (id(dev.parent), dev.address[1][0])


def _masters_first(devices: list[Device]) -> list[Device]:
    """An EHCI controller before the UHCI companions of its slot: they name its bus (masterbus)."""
    first_in_slot: dict[tuple[int, int], int] = {}
    for i, d in enumerate(devices):
        slot = _slot(d)
        if slot is not None:
            first_in_slot.setdefault(slot, i)

    def key(item: tuple[int, Device]) -> tuple[int, int]:
        i, dev = item
        slot = _slot(dev)
        if slot is not None and "ehci" in dev.driver:
            return (first_in_slot[slot], -1)
        return (i, 0)

    return [d for _, d in sorted(enumerate(devices), key=key)]


def _companion_master(dev: Device, ids: dict[str, str], where: str) -> str:
    """A UHCI companion's masterbus is the bus of the EHCI in its slot; bus names follow ids."""
    slot = _slot(dev)
    if slot is not None and dev.parent is not None:
        for other in dev.parent.devices:
            if _slot(other) == slot and "ehci" in other.driver and other.node in ids:
                return f"{ids[_path(other)]}.0"
    raise ArgvError(f"{where}: masterbus: no EHCI controller in this slot to be the companion of")


def _backend_id(kind: str, ref: str) -> str:
    """QEMU-internal ids (``#net123``) are not valid option ids: give them a stable spelling."""
    from dtvm.qemu.opts import check_id

    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", ref):
        return check_id(ref, f"{kind} {ref}")
    return check_id("x" + re.sub(r"[^A-Za-z0-9_.-]", "_", ref), f"{kind} {ref}")


def _made_there(dev: Device, made_at: dict[str, list[int]]) -> bool:
    """Whether ``dev`` is at an address where its maker makes one of its type (own-child-buses)."""
    return dev.driver in made_at and bool(dev.address[1]) and dev.address[1][0] in made_at[dev.driver]


def _bus_name(parent: _Node, child: Device, where: str) -> str:
    if parent.probe is not None:
        buses = parent.probe.buses
        if not buses:
            raise ArgvError(f"{where}: its parent {parent.probe.driver} has no bus")
        if child.address[0] == "ide" and buses[0].type == "IDE":
            for bus in buses:
                if bus.index == child.address[1][0]:
                    return bus.name
            raise ArgvError(f"{where}: no IDE bus {child.address[1][0]} on {parent.probe.driver}")
        return buses[0].name
    assert parent.qid is not None
    pdesc = parent.desc
    fixed = own_child_bus(pdesc.driver) if pdesc is not None else None
    if fixed is not None:
        return fixed[0]  # QEMU names the bus itself (argv's loop refused two such makers)
    if pdesc is not None and pdesc.address[0] == "pci" and child.address[0] == "pci":
        return parent.qid  # a bridge's secondary bus is named after the bridge
    index = child.address[1][0] if child.address[0] == "ide" else 0
    return f"{parent.qid}.{index}"


def _usb_port(dev: Device, made: dict[str, _Node]) -> tuple[str, _Node | None]:
    ports = [dev.address[1][0]]
    parent = dev.parent_device
    while parent is not None and parent.address[0] == "usb":
        ports.append(parent.address[1][0])
        parent = parent.parent_device
    controller = made.get(parent.node) if parent is not None and parent.node is not None else None
    return ".".join(str(p) for p in reversed(ports)), controller


#: address form -> the qdev property that carries a one-cell address (``bus`` given as well, but
#: for VIO whose bus is the machine's one)
_CELL_PROPS = {"nr": "nr", "cad": "cad", "floppy": "unit", "i2c": "address", "cell": "address"}


def _bus_and_address(dev: Device, made: dict[str, _Node], where: str) -> list[tuple[str, str]]:
    kind, values = dev.address
    parent_path = _parent_path(dev)
    parent = made.get(parent_path) if parent_path is not None else None
    if kind == "usb":
        port, controller = _usb_port(dev, made)
        if controller is None:
            raise ArgvError(f"{where}: a USB device without its controller")
        return [("bus", _bus_name(controller, dev, where)), ("port", port)]
    if parent is None and parent_path is None and kind == "none":
        # a device on no bus (vmcoreinfo, vmgenid) or a system-bus device without MMIO (ramfb):
        # nothing to address; QEMU refuses a type that cannot be created this way
        return []
    if parent is None and parent_path is None and kind == "mmio" and dev.driver in self_placed():
        return []  # the machine's plug handler maps it at its own base (intel-iommu on q35)
    if parent is None:
        if kind in ("none", "mmio"):
            raise ArgvError(f"{where}: {dev.driver} is a system-bus device this machine does not create")
        raise ArgvError(f"{where}: its parent is not a device")
    if kind == "virtio" and parent.probe is not None:
        return [("bus", _bus_name(parent, dev, where))]
    if kind == "vio":
        return [("reg", hex(values[0]))]
    bus = _bus_name(parent, dev, where)
    if kind == "pci":
        slot, fn = values
        return [("bus", bus), ("addr", f"{slot:02x}.{fn}")]
    if kind == "isa":
        return [("iobase", hex(values[0]))]
    if kind == "ide":
        return [("bus", bus), ("unit", str(values[1]))]
    if kind == "scsi":
        channel, sid, lun = values
        return [("bus", bus), ("channel", str(channel)), ("scsi-id", str(sid)), ("lun", str(lun))]
    if kind in _CELL_PROPS:
        return [("bus", bus), (_CELL_PROPS[kind], str(values[0]))]
    if kind == "none" and (parent.probe is None or bus.startswith("isa.")):
        # an ISA device with no I/O base property (sga; pvpanic's port is its ioport default), a
        # USB device QEMU never attached (usb-redir waits for its chardev's peer: no port), a
        # smart card on a usb-ccid: the bus alone, QEMU builds it the same (the check start and
        # the description of the rebuild hold it to that)
        return [("bus", bus)]
    raise ArgvError(f"{where}: cannot give {dev.driver} an address ({kind})")


def _flash_drives(plan: Config, baseline: Probe, host: list[str]) -> tuple[list[str], list[str]]:
    """``-drive if=pflash,unit=N`` for the flash drives the overlay's inputs name (``pflashN``): the
    real ones, and their null stand-ins for probes and the check start, each as large as its flash
    (pc sizes its flash device from the drive; virt requires the drive to match). The described
    device states the size, or the machine's own where the description folds two into one node."""
    table: dict[str, dict[str, int]] = device_facts()["machine-drives"]
    units = {f"pflash{unit}": unit for names in table.values() for unit in names.values()}
    wanted = sorted(k for k in plan.inputs if k in units)
    if not wanted:
        return [], []
    flash: dict[int, Device] = {}
    for config in (plan, baseline.config):
        for dev in config.devices():
            unit = table.get(dev.driver, {}).get(dev.props.get("name", ""))
            if unit is not None:
                flash.setdefault(unit, dev)
    real: list[str] = []
    null: list[str] = []
    backends = plan.backend_map()
    for key in wanted:
        ref, unit = plan.inputs[key], units[key]
        where = f"/qemu-backends inputs: {key}"
        opts = backends.get(("drive", ref))
        if opts is None or not opts.get("drv"):
            raise ArgvError(f"{where}: drive {ref!r} is not in the back-end overlay (or has no medium)")
        made = flash.get(unit)
        try:
            size = int(made.props["num-blocks"], 0) * int(made.props["sector-length"], 0) if made is not None else 0
        except (KeyError, ValueError):
            size = 0
        if size <= 0:
            raise ArgvError(f"{where}: the description has no flash device of {plan.machine.type} with its size for it")
        head = [("if", "pflash"), ("unit", str(unit)), ("id", _backend_id("drive", ref))]
        ro = [("read-only", "on")] if opts.get("ro") == "on" else []
        drv = opts["drv"]
        if drv in ("null-co", "null-aio"):
            real += ["-drive", _render(None, [*head, ("driver", drv), ("size", str(size)), *ro], where)]
        else:
            real += ["-drive", _render(None, [*head, ("driver", drv), ("file.driver", "file"),
                                              ("file.filename", opts.get("file", "")), *ro], where)]
            host.append(f"file {opts.get('file', '')!r} (drive {ref})")
        null += ["-drive", _render(None, [*head, ("driver", "null-co"), ("size", str(size)), *ro], where)]
    return real, null


def _backend_args(plan: Config, used: list[tuple[str, str]], host: list[str],
                  named: set[str] | frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
    """The -blockdev/-chardev options of the back-ends the devices use, and the same on null
    back-ends for the check start (a null-co drive, a null chardev: nothing of the host opened).

    A drive in ``named`` is a ``-drive if=none,id=REF`` instead: a BlockBackend of that name, which
    a disk made by its parent (usb-storage's scsi-hd) shows the guest as its device_id."""
    args: list[str] = []
    null: list[str] = []
    seen: set[tuple[str, str]] = set()
    backends = plan.backend_map()
    for kind, ref in used:
        if (kind, ref) in seen:
            continue
        seen.add((kind, ref))
        opts = backends.get((kind, ref), {})
        where = f"/qemu-backends {kind} {ref}"
        ident = _backend_id(kind, ref)
        if kind == "drive":
            drv = opts.get("drv", "")
            if not drv:
                raise ArgvError(f"{where}: a drive without a medium cannot back this device")
            pairs = [("driver", drv), ("node-name", ident)]
            if drv not in ("null-co", "null-aio"):
                pairs += [("file.driver", "file"), ("file.filename", opts.get("file", ""))]
                host.append(f"file {opts.get('file', '')!r} (drive {ref})")
            ro = [("read-only", "on")] if opts.get("ro") == "on" else []
            if ref in named:
                spelled = [("if", "none"), ("id", ident), *((k, v) for k, v in pairs if k != "node-name"), *ro]
                args += ["-drive", _render(None, spelled, where)]
                null += ["-drive", _render(None, [("if", "none"), ("id", ident), ("driver", "null-co"), *ro], where)]
                continue
            args += ["-blockdev", _render(None, [*pairs, *ro], where)]
            null += ["-blockdev", _render(None, [("driver", "null-co"), ("node-name", ident), *ro], where)]
        elif kind == "netdev":
            continue  # all of them, below
        elif kind == "fsdev":
            try:
                real, stand_in = fsdev_args(ident, opts, where, host)
            except DtvmError as exc:
                raise ArgvError(str(exc)) from None
            args += real
            null += stand_in
        elif kind == "audiodev":
            # QEMU 7.2 reports no audio back-end (no query-audiodevs): the guest's sound device is
            # the same with any; the rebuild plays to none, and says so
            args += ["-audiodev", _render("none", [("id", ident)], where)]
            null += ["-audiodev", _render("none", [("id", ident)], where)]
            host.append(f"audio back-end 'none' for audiodev {ref!r} (QEMU does not report the host's; give your own)")
        elif kind == "chardev":
            filename = opts.get("filename", "")
            null += ["-chardev", _render("null", [("id", ident)], where)]
            if filename in ("vc", "null") or filename.startswith("vc"):
                args += ["-chardev", _render("null", [("id", ident)], where)]
            elif filename.startswith("disconnected:unix:") or filename.startswith("unix:"):
                path = filename.split("unix:", 1)[1].split(",", 1)[0]
                args += ["-chardev", _render("socket", [("id", ident), ("path", path), ("server", "on"), ("wait", "off")], where)]
                host.append(f"socket {path!r} (chardev {ref})")
            else:
                raise ArgvError(f"{where}: chardev {filename!r} is host-specific: give this host's back-end overlay")
    return args, null


def _netdev_args(plan: Config) -> list[str]:
    """Every netdev of the overlay, not only those a NIC uses: a slirp (``user``) back-end is in
    the migration stream even with no NIC on it (riscv64 virt's default ``-net user``).

    Hub ports are re-created with their hub id, and ports whose peer is a netdev name it.
    """
    args: list[str] = []
    hubports: list[tuple[str, dict[str, str]]] = []
    backends = plan.backend_map()
    for (kind, ref), opts in sorted(backends.items()):
        if kind != "netdev":
            continue
        where = f"/qemu-backends netdev {ref}"
        ntype = opts.get("type", "")
        if ntype == "hubport":
            hubports.append((ref, opts))
        elif ntype == "user":
            args += ["-netdev", _render("user", [("id", _backend_id("netdev", ref))], where)]
        else:
            raise ArgvError(f"{where}: netdev type {ntype!r} is host-specific: give this host's back-end overlay")
    for ref, opts in hubports:
        where = f"/qemu-backends netdev {ref}"
        pairs = [("id", _backend_id("netdev", ref)), ("hubid", opts.get("hubid", "0"))]
        peer = opts.get("peer", "")
        if ("netdev", peer) in backends:
            pairs.append(("netdev", _backend_id("netdev", peer)))
        args += ["-netdev", _render("hubport", pairs, where)]
    return args


def _input_args(plan: Config, probe: Probe, host: list[str]) -> list[str]:
    """Kernel, initrd, command line, DTB and firmware from the overlay's inputs (host files:
    reported, and left out of the check start)."""
    from dtvm.qemu.config import _json_text

    args: list[str] = []
    flags = {"kernel": "-kernel", "initrd": "-initrd", "append": "-append", "dtb": "-dtb", "firmware": "-bios"}
    for key, value in sorted(plan.inputs.items()):
        current = probe.machine_props.get(key)
        if current is not None and _json_text(current) == value:
            continue
        if key in flags:
            args += [flags[key], value]
            if key != "append":
                host.append(f"file {value!r} ({key})")
    return args
