"""QEMU's answers (a Snapshot) to the qdev Config (:mod:`dtvm.vm.model`).

``info qtree`` gives the device tree with every property; ``device-list-properties`` the type
defaults, so that only what differs is kept; the QOM peripherals say which devices the user made
and which were hot-plugged.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from dtvm.errors import DtvmError
from dtvm.fileio import load_yaml, package_text
from dtvm.qemu.fsdev import fsdevs_of_argv
from dtvm.qemu.qom_links import describe_links
from dtvm.qemu.qtree import UNMAPPED, QBus, QDev, bus_index, parse_qtree, prop_text
from dtvm.qemu.snapshot import Snapshot, version_of
from dtvm.qemu.trust import split_host_facts
from dtvm.qemu.versions import version_text, versions
from dtvm.vm.buses import device_facts, device_links_of, link_machine_chardevs, link_mates
from dtvm.vm.model import (
    ADDRESS_PROPS,
    BACKEND_PROPS,
    MACHINE_DEVICE_OPTIONS,
    MACHINE_HOST_PROPS,
    MACHINE_INPUT_PROPS,
    PCI_BUSES,
    Backend,
    Bus,
    Config,
    Device,
    Machine,
    address_text,
)

__all__ = [
    "BACKEND_PROPS",
    "Backend",
    "Bus",
    "Config",
    "Device",
    "Machine",
    "from_snapshot",
]


@functools.cache
def _machines_data() -> dict[str, Any]:

    text = package_text("dtvm.qemu", "data/machines.yaml")
    data = load_yaml(text)
    return data if isinstance(data, dict) else {}


@functools.cache
def guest_state() -> dict[str, frozenset[str]]:
    """driver -> qdev properties the guest programs (``guest-state`` in data/machines.yaml)."""
    section = _machines_data().get("guest-state", {})
    return {str(driver): frozenset(str(p) for p in props) for driver, props in section.items()}


@functools.cache
def _schema_option_defaults(arch: str, machine_type: str) -> dict[str, str]:
    """The option values the machine type takes when not told (``defaults: options`` of its
    checked-in schema, measured by starting it without options): QEMU does not report a default
    for many machine options (graphics, highmem, its, sata, ...)."""

    from dtvm.qemu.schemafiles import schema_text

    text = schema_text(f"{arch}-{machine_type}.yaml")
    if text is None:
        return {}
    data = load_yaml(text)
    options = data.get("defaults", {}).get("options", {}) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in options.items()} if isinstance(options, dict) else {}


def firmware_shapes_devices() -> frozenset[str]:
    """Machine types whose devices depend on loaded firmware (data/machines.yaml)."""
    return frozenset(str(t) for t in _machines_data().get("firmware-shapes-devices", []))


def dt_built_at_reset(machine_type: str) -> bool:
    """Whether the machine type's own DT shows a hot-plugged device only after the next reset
    (``dt-built-at-reset`` in data/machines.yaml)."""
    family = re.sub(r"-\d+\.\d+$", "", machine_type)
    return family in {str(t) for t in _machines_data().get("dt-built-at-reset", [])}


def cpu_device_type(arch: str, model: str) -> str | None:
    """The qdev type of a CPU of ``model`` made as a device on ``arch`` (``cpu-device-types`` in
    data/machines.yaml), None where dtvm knows none."""
    pattern = _machines_data().get("cpu-device-types", {}).get(arch)
    return str(pattern).format(model=model) if pattern else None


@functools.cache
def _on_off_auto() -> frozenset[str]:
    """Machine options of type OnOffAuto (``on-off-auto`` in data/machines.yaml)."""
    return frozenset(str(n) for n in _machines_data().get("on-off-auto", []))


def _json_text(value: Any) -> str:
    """A QMP JSON value as option text, the way ``prop_text`` spells qtree values."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _defaults(snapshot: Snapshot, driver: str) -> dict[str, str] | None:
    """What a device of this type is without being told: the type's defaults as changed by the
    machine type's compat properties (QEMU >= 9.1 reports them), so that ``pc-q35-7.2`` on a newer
    QEMU, which sets ``x-pcie-ext-tag=off`` on every PCI device, describes no such property."""
    entries = snapshot.type_props.get(driver)
    if entries is None:
        return None
    out = {e["name"]: _json_text(e["default-value"]) for e in entries if "default-value" in e}
    rules = versions()
    for e in entries:
        real = rules.instance_default(driver, e["name"])
        if real is not None:
            out[e["name"]] = real
    if snapshot.compat_props:
        known = {e["name"] for e in entries}
        lineage = {driver, *snapshot.type_ancestors.get(driver, ())}
        for prop in snapshot.compat_props:  # in QEMU's order: a later one wins, as it does in QEMU
            name = prop.get("property")
            if prop.get("qom-type") in lineage and name in known:
                out[str(name)] = _compat_text(str(prop.get("value", "")))
    return out


def _compat_text(value: str) -> str:
    """A compat property's value (QEMU's -global text) as ``prop_text`` spells values."""
    return {"true": "on", "false": "off", "yes": "on", "no": "off"}.get(value, value)


def _int(text: str) -> int:
    value = prop_text(text)
    try:
        return int(value, 0)
    except ValueError as exc:
        raise DtvmError(f"info qtree: expected a number, got {text!r}") from exc


def _pci_addr(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"([0-9a-f]{1,2})\.([0-7])", text)
    if not m:
        raise DtvmError(f"info qtree: bad PCI address {text!r}")
    return int(m.group(1), 16), int(m.group(2))


def _address(qdev: QDev, bus: QBus, nth: int) -> tuple[str, tuple[int, ...]]:
    kind = bus.type
    p = qdev.props
    if kind in PCI_BUSES and "addr" in p:
        return ("pci", _pci_addr(p["addr"]))
    if kind == "IDE" and "unit" in p:
        return ("ide", (bus_index(bus), _int(p["unit"])))
    if kind == "floppy-bus" and "unit" in p:
        return ("floppy", (_int(p["unit"]),))
    if kind == "SCSI" and "scsi-id" in p:
        return ("scsi", (_int(p.get("channel", "0")), _int(p["scsi-id"]), _int(p.get("lun", "0"))))
    if kind == "usb-bus" and qdev.usb is not None:
        return ("usb", tuple(int(x) for x in qdev.usb[0].split(".")))
    if kind == "virtio-serial-bus" and "nr" in p:
        return ("nr", (_int(p["nr"]),))
    if kind == "HDA" and "cad" in p:
        return ("cad", (_int(p["cad"]),))
    if kind == "spapr-vio-bus" and "reg" in p:
        return ("vio", (_int(p["reg"]),))
    if kind == "i2c-bus" and "address" in p:
        return ("i2c", (_int(p["address"]),))
    if kind == "ISA":
        for name in ("iobase", "base"):
            if name in p and _int(p[name]) >= 0:
                return ("isa", (_int(p[name]),))
    if kind.startswith("virtio-") and kind.endswith("-bus") and kind not in ("virtio-serial-bus",):
        return ("virtio", ())
    if kind == "System" and qdev.mmio and qdev.mmio[0][0] != UNMAPPED:
        return ("mmio", (qdev.mmio[0][0],))
    return ("nth", (nth,))


#: the PCI classes whose functions have a type 1 or 2 header (info qtree's class names)
_BRIDGE_CLASSES = frozenset({"PCI bridge", "CardBus bridge"})


def _device(snapshot: Snapshot, qdev: QDev, bus: QBus, nth: int) -> Device:
    address = _address(qdev, bus, nth)
    defaults = _defaults(snapshot, qdev.type)
    skip = set(ADDRESS_PROPS.get(bus.type, ())) | guest_state().get(qdev.type, frozenset())
    if address[0] == "isa":
        skip |= {"iobase", "base"}
    props: dict[str, str] = {}
    backends: dict[str, str] = {}
    rules = versions()
    for name, raw in qdev.props.items():
        if name in skip or rules.is_derived(qdev.type, name):
            continue
        value = prop_text(raw)
        if name in BACKEND_PROPS:
            if value:
                backends[name] = value
            continue
        if rules.is_neutral(qdev.type, name, value):
            continue
        if defaults is not None:
            if name in defaults:
                if defaults[name] == value or (value == "<null>" and defaults[name] in ("None", "[]")):
                    continue  # (an unset list or object: QEMU 10.0's qtree says <null>)
            elif value in ("", "<null>"):
                continue  # unset string or list without a declared default
        props[name] = value
    dev = Device(qdev.type, address, props, backends, qdev_id=qdev.id or None, mmio=list(qdev.mmio))
    if qdev.pci is not None:
        dev.pci_class = qdev.pci[0]
        dev.pci_ids = qdev.pci[4:8]
        if dev.pci_class in _BRIDGE_CLASSES:
            # a bridge's header (type 1) has no subsystem ids where info qtree reads them: those
            # bytes (0x2c-0x2f) are the prefetchable window's upper half, which UEFI programs
            dev.pci_ids = (qdev.pci[4], qdev.pci[5], 0, 0)
    return dev


def _build_bus(snapshot: Snapshot, qbus: QBus, index: int, parent: Device | None, depth: int) -> Bus:
    if depth > 64:
        raise DtvmError("qdev tree nested deeper than 64 buses")
    bus = Bus(qbus.name, qbus.type, index, parent=parent)
    seen: dict[tuple[str, str], int] = {}
    for qdev in qbus.devices:
        kind = (qdev.type, "")
        nth = seen.get(kind, 0)
        seen[kind] = nth + 1
        dev = _device(snapshot, qdev, qbus, nth)
        dev.parent = bus
        for child in qdev.buses:
            dev.buses.append(_build_bus(snapshot, child, bus_index(child), dev, depth + 1))
        bus.devices.append(dev)
    keys = [address_text(d.address) for d in bus.devices]
    if len(set(keys)) != len(keys):
        # two devices the bus does not address (same driver twice without an address): number them
        _renumber_duplicates(bus)
    return bus


def _renumber_duplicates(bus: Bus) -> None:
    counts: dict[str, int] = {}
    for dev in bus.devices:
        if dev.address[0] != "nth":
            continue
        n = counts.get(dev.driver, 0)
        counts[dev.driver] = n + 1
        dev.address = ("nth", (n,))


#: Machine properties QEMU lists without a default whose "off" is not their default (OnOffAuto,
#: default auto): ``-no-acpi`` (libvirt's default) gives the guest no ACPI tables (and pc no PIIX4_PM).
_OFF_IS_NOT_DEFAULT = frozenset({"acpi"})


def _machine(snapshot: Snapshot) -> tuple[Machine, dict[str, str]]:
    if snapshot.machine_props.get("cxl-fmw"):
        # a list option (-M cxl-fmw.N.targets.M=...,cxl-fmw.N.size=...) the guest sees in its ACPI
        # CEDT: a rebuild without it would lose the windows, and dtvm does not describe them yet
        raise DtvmError("/qemu: machine option cxl-fmw (CXL fixed memory windows): dtvm does not describe it")
    options: dict[str, str] = {}
    inputs: dict[str, str] = {}
    for name, value in sorted(snapshot.machine_props.items()):
        if isinstance(value, (dict, list)) or value is None:
            continue
        text = _json_text(value)
        if name in MACHINE_INPUT_PROPS:
            if text:
                inputs[name] = text
            continue
        if name in MACHINE_HOST_PROPS or name in MACHINE_DEVICE_OPTIONS or versions().machine_ignored(name, text):
            continue
        default = snapshot.machine_prop_defaults.get(name)
        if default is not None and _json_text(default) == text:
            continue
        if default is None and text in ("", "off", "auto"):
            # QEMU reports no default: the type's measured one decides (highmem=off, graphics=off
            # differ from it and must be kept); unknown, an empty/off/auto value is taken as it
            known = _schema_option_defaults(snapshot.arch, snapshot.machine_type).get(name)
            if known is None and name in _on_off_auto():
                known = "auto"
            if (known is None or known == text) and not (text == "off" and name in _OFF_IS_NOT_DEFAULT):
                continue
        options[name] = text
    scalars = {k: _json_text(v) for k, v in snapshot.machine_props.items() if not isinstance(v, (dict, list)) and v is not None}
    for name in versions().machine_moot_props(scalars):
        options.pop(name, None)
    cpu_type = None
    for path in sorted(snapshot.cpu_types):
        cpu_type = snapshot.cpu_types[path]
        break
    if cpu_type is not None:
        cpu_type = re.sub(r"-(x86_64|i386|arm|aarch64|riscv64|riscv32|riscv|powerpc64|powerpc|spapr)-cpu(-core)?$", "", cpu_type)
    topology: dict[str, int] = {}
    device_cpus: list[dict[str, int]] = []
    for slot in snapshot.hotpluggable_cpus:
        ids = {k: v for k, v in slot.get("props", {}).items() if isinstance(v, int) and k.endswith("-id")}
        for key, value in ids.items():
            topology[key] = max(topology.get(key, 0), value + 1)
        if str(slot.get("qom-path", "")).startswith("/machine/peripheral"):
            # made by -device or device_add, not by -smp: a device the guest may unplug
            device_cpus.append(dict(sorted(ids.items())))
    device_cpus.sort(key=lambda ids: sorted(ids.items()))
    smp = snapshot.machine_props.get("smp")
    if "socket-id" not in topology and isinstance(smp, dict):
        # no CPU hot-plug (virt), or slots that show cores only (pseries): the smp property says
        # how many sockets and threads (pseries' ibm,chip-id follows the socket)
        topology = _smp_topology(smp) or topology
    machine = Machine(
        type=snapshot.machine_type,
        arch=snapshot.arch,
        options=options,
        cpu_type=cpu_type,
        cpus=len(snapshot.cpus),
        max_cpus=max(len(snapshot.hotpluggable_cpus), len(snapshot.cpus),
                     smp["maxcpus"] if isinstance(smp, dict) and isinstance(smp.get("maxcpus"), int) else 0),
        topology=topology,
        memory=int(snapshot.memory.get("base-memory", 0)),
        device_cpus=device_cpus,
    )
    sizes = snapshot.machine_props.get("memory")
    if isinstance(sizes, dict) and isinstance(sizes.get("max-size"), int) and sizes["max-size"] > machine.memory:
        # maxmem equal to the RAM (QEMU's default when -m has no maxmem) gives no hot-plug range
        slots = sizes.get("slots", 0)
        machine.memory_slots, machine.max_memory = slots if isinstance(slots, int) else 0, sizes["max-size"]
    _no_user_numa(snapshot, machine)
    return machine, inputs


def _no_user_numa(snapshot: Snapshot, machine: Machine) -> None:
    """Refuse NUMA nodes given with -numa: the guest sees them (ACPI SRAT/SLIT, the DT's
    numa-node-id), and the description does not hold them yet, so a rebuild would lose them. The
    one node a machine makes by itself (``auto-numa-node`` in data/machines.yaml) is the machine's,
    made again by the rebuild."""
    found = re.match(r"(\d{1,4}) nodes?\b", snapshot.numa)
    if not found:
        return
    nodes = int(found.group(1))
    auto = (_machines_data().get("auto-numa-node") or {}).get(snapshot.arch)
    own = 1 if auto == "always" or (auto == "memory-hotplug" and machine.max_memory) else 0
    if nodes == 1 and own == 0 and auto == "memory-hotplug":
        # QEMU 7.2 reports maxmem only with slots (-m 256M,slots=0,maxmem=1G answers {size} alone),
        # yet makes the node of memory hot-plug for it: the answers do not tell that from -numa
        raise DtvmError("/qemu: one NUMA node, from -numa or from a maxmem without memory slots (-m ...,slots=0,"
                        "maxmem=...): QEMU's answers do not tell them apart, and dtvm describes neither")
    if nodes != own:
        raise DtvmError(f"/qemu: NUMA nodes (-numa: {nodes} in 'info numa', where this machine makes {own}): "
                        "dtvm does not describe them yet")


def _smp_topology(smp: dict[str, Any]) -> dict[str, int]:
    """The -smp topology of a machine without CPU hot-plug (virt), where only the machine's ``smp``
    property shows it; empty when it is what ``-smp N[,maxcpus=M]`` alone gives (all cores)."""
    counts = {k: smp.get(k) for k in ("sockets", "dies", "clusters", "cores", "threads", "maxcpus")}
    if not all(isinstance(v, int) for v in counts.values()):
        return {}
    if counts["sockets"] == counts["dies"] == counts["clusters"] == counts["threads"] == 1 \
            and counts["cores"] == counts["maxcpus"]:
        return {}
    keys = {"sockets": "socket-id", "clusters": "cluster-id", "cores": "core-id", "threads": "thread-id"}
    return {key: int(counts[name] or 1) for name, key in keys.items() if name != "clusters" or counts[name] != 1}


def _backends(snapshot: Snapshot) -> list[Backend]:
    out: list[Backend] = []
    for blk in snapshot.block:
        opts: dict[str, str] = {}
        inserted = blk.get("inserted")
        if isinstance(inserted, dict):
            for key in ("file", "drv", "ro", "node-name", "cache", "backing_file"):
                if key in inserted and not isinstance(inserted[key], (dict, list)):
                    opts[key] = _json_text(inserted[key])
        name = str(blk.get("device") or (inserted or {}).get("node-name") or "")
        if not name or (not inserted and not blk.get("device")):
            continue  # an anonymous, empty BlockBackend: a device without a medium, no host fact
        if not inserted and name in ("floppy0", "sd0", "pflash0", "pflash1", "mtd0"):
            continue  # the empty default drives QEMU creates for every machine with such a slot
        opts["removable"] = _json_text(bool(blk.get("removable", False)))
        out.append(Backend("drive", name, opts))
    for chardev in snapshot.chardevs:
        label = str(chardev.get("label", ""))
        if label.startswith("compat_monitor") or label.startswith("dtvm-"):
            continue
        out.append(Backend("chardev", label, {"filename": str(chardev.get("filename", ""))}))
    out.extend(_netdevs(snapshot.network))
    for memdev in snapshot.memdevs:
        ident = str(memdev.get("id", ""))
        opts = {k: _json_text(v) for k, v in memdev.items() if k != "id" and not isinstance(v, (dict, list))}
        out.append(Backend("memdev", ident, opts))
    # QEMU reports an fsdev only by its id (the 9p device's fsdev property): its options are the
    # command line's, the one dtvm started or the QMP peer's (/proc); else the overlay names the id only
    out.extend(fsdevs_of_argv(snapshot.argv or snapshot.peer_argv))
    out.sort(key=lambda b: (b.kind, b.id))
    return out


_HUB = re.compile(r"^hub (\d+)$")


def _netdevs(text: str) -> list[Backend]:
    """The host side of ``info network``: netdevs and hub ports, without the NICs (guest side).

    Lines are ``NAME: index=N,type=T,...`` or, under ``hub N``, ``\\ PORT: PEER: index=...``
    where PORT is a hub port and PEER what it connects to (a NIC or a netdev).
    """
    out: list[Backend] = []
    hub: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        m = _HUB.match(line)
        if m:
            hub = m.group(1)
            continue
        in_hub = line.startswith("\\")
        line = line.lstrip("\\ ")
        parts = line.split(": ")
        if len(parts) < 2 or not parts[-1].startswith("index="):
            continue
        fields = dict(f.split("=", 1) for f in parts[-1].split(",") if "=" in f)
        kind = fields.pop("type", "")
        fields.pop("index", None)
        if len(parts) == 3 and in_hub and hub is not None:
            out.append(Backend("netdev", parts[0], {"type": "hubport", "hubid": hub, "peer": parts[1]}))
            name = parts[1]
        else:
            name = parts[0]
        if kind == "nic":
            continue
        out.append(Backend("netdev", name, {"type": kind, **fields}))
    return out


_GENERATED = re.compile(r"#net(\d+)")


def _stable_generated_ids(config: Config) -> None:
    """QEMU names a netdev made without an id (``-nic``, ``-net``, the default NIC's user
    network) from a counter whose value differs run to run (#net143, #net158 for one command
    line, measured): the description numbers them in that order from 0, in the back-ends and in
    the devices that use them, so one configuration gives one overlay."""
    found = sorted({b.id for b in config.backends if _GENERATED.fullmatch(b.id)},
                   key=lambda name: int(name[4:]))
    names = {old: f"#net{i}" for i, old in enumerate(found)}
    if not names:
        return
    for b in config.backends:
        b.id = names.get(b.id, b.id)
        if b.options.get("peer") in names:
            b.options["peer"] = names[b.options["peer"]]
    for dev in config.devices():
        if dev.backends.get("netdev") in names:
            dev.backends["netdev"] = names[dev.backends["netdev"]]
    config.backends.sort(key=lambda b: (b.kind, b.id))  # as _backends sorts them


def _stable_block_names(config: Config) -> None:
    """The same for the node names QEMU generates for a -drive's image (#block183): numbered
    from 0 in QEMU's order, where only the back-end overlay shows them."""
    found = sorted({b.options["node-name"] for b in config.backends
                    if b.kind == "drive" and re.fullmatch(r"#block\d+", b.options.get("node-name", ""))},
                   key=lambda name: int(name[6:]))
    names = {old: f"#block{i}" for i, old in enumerate(found)}
    for b in config.backends:
        if b.options.get("node-name") in names:
            b.options["node-name"] = names[b.options["node-name"]]


def _walk_qdevs(bus: QBus) -> list[QDev]:
    """Every device below a bus, depth first in creation order."""
    out: list[QDev] = []
    stack = list(reversed(bus.devices))
    while stack:
        dev = stack.pop()
        out.append(dev)
        for child in reversed(dev.buses):
            stack.extend(reversed(child.devices))
    return out


def _made_here(host: QDev, maker: QDev) -> bool:
    """Whether a made device's bus is its maker's: named after the maker's id (pxb-pcie), holding
    the bridge the maker made with the maker's id (pxb), or holding functions whose PCI bus number
    (info qtree's ``addr BB:DD.F``) is the maker's ``bus_nr``."""
    bus_nr = maker.props.get("bus_nr")
    for bus in host.buses:
        if maker.id and bus.name == maker.id:
            return True
        for dev in bus.devices:
            if maker.id and dev.id == maker.id:
                return True
            if bus_nr is not None and dev.pci is not None and str(dev.pci[1]) == prop_text(bus_nr):
                return True
    return False


def fold_made_devices(snapshot: Snapshot, qroot: QBus) -> None:
    """Fold each device another device made on the system bus (``made-by-other`` in
    dtvm/vm/data/devices.yaml: a PCI expander's pxb-host) into its maker, whose buses it takes.

    QEMU links the two only by names and numbers (the bus is named after the expander's id, its
    functions carry the expander's bus number); an expander with neither (no id, nothing on its
    bus) is paired in creation order, which QEMU keeps for both: such hosts differ in nothing.
    A made device with a property its maker does not explain is refused by name; one whose maker
    is not listed stays as it is, and dtb2qemu refuses it by node.
    """
    rules = {t: r for t, r in (device_facts().get("made-by-other") or {}).items()
             if isinstance(r, dict) and r.get("buses")}
    hosts = [d for d in qroot.devices if isinstance(rules.get(d.type), dict)]
    if not hosts:
        return
    free = [d for d in _walk_qdevs(qroot) if any(d.type in rules[h.type].get("makers", ()) for h in hosts)]
    pairs: dict[int, QDev] = {}
    for host in hosts:
        for maker in free:
            if maker.type in rules[host.type].get("makers", ()) and _made_here(host, maker):
                pairs[id(host)] = maker
                free.remove(maker)
                break
    for host in hosts:
        if id(host) not in pairs:
            left = next((m for m in free if m.type in rules[host.type].get("makers", ())), None)
            if left is not None:
                pairs[id(host)] = left
                free.remove(left)
    for host in hosts:
        if id(host) not in pairs:
            continue
        maker = pairs[id(host)]
        copies = rules[host.type].get("copies") or {}
        own = _defaults(snapshot, host.type) or {}
        for name, raw in host.props.items():
            value = prop_text(raw)
            source = copies.get(name)
            if source is not None and source in maker.props and prop_text(maker.props[source]) == value:
                continue
            if name in own and own[name] == value:
                continue
            raise DtvmError(f"{host.type} of {maker.type} {maker.id or '(no id)'}: {name}={value} is not what "
                            f"its {maker.type} makes (set with -global?): dtvm cannot describe it")
        for bus in host.buses:
            for dev in bus.devices:
                if maker.id and dev.id == maker.id:
                    dev.id = ""  # the bridge a pxb makes takes the pxb's id: one id, the maker's
        maker.buses = host.buses
        qroot.devices.remove(host)


def _users(dev: Device) -> bool:
    """Whether the user made this device: by -device or device_add, or its maker was so made."""
    each: Device | None = dev
    while each is not None:
        if each.user:
            return True
        each = each.parent_device
    return False


def fold_unlinked_made(config: Config) -> None:
    """Leave out the system-bus devices that devices the user made have made, and that nothing
    QEMU shows links to their maker (``made-by-other`` rules without ``buses`` in
    dtvm/vm/data/devices.yaml: an i8042's PS/2 keyboard and mouse): the maker's -device makes them
    again, so the description states them once, as its maker's node.

    They differ in nothing but the properties their maker gives them (``sets``), so which of a
    kind are the user's makers' is immaterial: as many as those makers made are left out, the last
    of that kind, and the rest (the machine's makers') keep their names and places. Any other
    property is one dtvm could not rebuild: refused by name.
    """
    rules = {t: r for t, r in (device_facts().get("made-by-other") or {}).items()
             if isinstance(r, dict) and not r.get("buses")}
    if not rules:
        return
    devices = config.devices()
    for made, rule in sorted(rules.items()):
        makers = [d for d in devices if d.driver in rule.get("makers", ()) and _users(d)]
        if not makers:
            continue
        found = [d for d in config.root.devices if d.driver == made]
        if len(found) < len(makers):
            raise DtvmError(f"{makers[0].key()}: a {makers[0].driver} makes a {made}, and QEMU shows "
                            f"{len(found)} {made} for {len(makers)} such makers: dtvm cannot describe it")
        sets = {str(k): str(v) for k, v in (rule.get("sets") or {}).items()}
        for dev in found[len(found) - len(makers):]:
            for name, value in sorted(dev.props.items()):
                if sets.get(name) != value:
                    raise DtvmError(f"{made} of {makers[0].driver} at {makers[0].key()}: {name}={value} is not "
                                    f"what its {makers[0].driver} makes (set with -global?): dtvm cannot describe it")
            for name, value in sets.items():
                if dev.props.get(name) != value:
                    raise DtvmError(f"{made} of {makers[0].driver} at {makers[0].key()}: {name} is not {value}, "
                                    f"what its {makers[0].driver} makes: dtvm cannot describe it")
            config.root.devices.remove(dev)


def from_snapshot(snapshot: Snapshot) -> Config:
    """Understand what QEMU answered: the precise device model of that VM."""
    qroot = parse_qtree(snapshot.qtree)
    fold_made_devices(snapshot, qroot)
    qroot.devices += _busless(snapshot)
    root = _build_bus(snapshot, qroot, 0, None, 0)
    machine, inputs = _machine(snapshot)
    config = Config(machine, root, _backends(snapshot), inputs, snapshot.dtb)
    if snapshot.version:
        # major.minor: what migration compatibility goes by (a point release keeps it)
        config.qemu_version = version_text(version_of(snapshot)).rsplit(".", 1)[0]
    _mark_peripherals(config, snapshot)
    _read_qom_settings(config, snapshot)
    _read_device_links(config, snapshot)
    fold_unlinked_made(config)
    _stable_generated_ids(config)
    _stable_block_names(config)
    link_machine_chardevs(config)
    split_host_facts(config)
    describe_links(config, snapshot)
    return config


def _busless(snapshot: Snapshot) -> list[QDev]:
    """The user's devices on no bus (vmcoreinfo, vmgenid, an IPMI BMC simulator), which ``info
    qtree`` never shows, as devices of the machine's root: they hold guest-visible state (vmgenid's
    GUID) and migration sections of their own, so a rebuild without them cannot take the VM.
    Their values come from QOM, spelled as ``info qtree`` quotes a string. A hot-plugged CPU is on
    no bus too: the CPU reader has it (query-cpus-fast, query-hotpluggable-cpus name its path)."""
    cpus = {str(c.get("qom-path")) for c in snapshot.cpus} | {str(c.get("qom-path"))
                                                             for c in snapshot.hotpluggable_cpus}
    out: list[QDev] = []
    for per in snapshot.peripherals:
        if per.parent_bus is None and per.qom_path not in cpus:
            props = {k: '"' + _json_text(v) + '"' for k, v in sorted(per.props.items())}
            out.append(QDev(per.type, per.id or "", props))
    return out


def _mark_peripherals(config: Config, snapshot: Snapshot) -> None:
    """Flag devices created by -device/device_add (and hot-plugged ones) from the QOM walk.

    QOM knows which devices are the user's (under /machine/peripheral*) and which were
    hot-plugged; the qtree does not.  Devices are matched by id where there is one, else by
    type, bus name and address, which together are unique on a bus.
    """
    by_id: dict[str, Device] = {}
    for each in config.devices():
        if each.qdev_id:
            by_id[each.qdev_id] = each
    for per in snapshot.peripherals:
        dev: Device | None = by_id.get(per.id) if per.id else None
        if dev is None:
            bus = (per.parent_bus or config.root.name).rsplit("/", 1)[-1]
            for cand in config.devices():
                if cand.driver != per.type or cand.parent is None or cand.parent.name != bus or cand.user:
                    continue
                if _matches(cand, per.address):
                    dev = cand
                    break
        if dev is not None:
            dev.user = True
            dev.hotplugged = bool(per.hotplugged)
            dev.qom_path = per.qom_path
            chardev = per.address.get("chardev")
            if isinstance(chardev, str) and chardev and "chardev" not in dev.backends:
                dev.backends["chardev"] = chardev  # an alias qtree does not show (isa-serial)


def _read_qom_settings(config: Config, snapshot: Snapshot) -> None:
    """The settings of the user's devices that no qdev property holds (``qom-settings`` in
    dtvm/vm/data/devices.yaml: virtio-mem's requested-size), read from QOM, on the node of the type
    that has them: a virtio proxy's alias goes to its virtio device, where info qtree puts the
    proxy's other aliased properties (so offline, which sets them there, and the rebuild agree)."""
    rules = device_facts().get("qom-settings") or {}
    by_qom = {d.qom_path: d for d in config.devices() if d.qom_path}
    for per in snapshot.peripherals:
        dev = by_qom.get(per.qom_path)
        if dev is None or per.parent_bus is None:
            continue
        owners = [dev] + [c for b in dev.buses for c in b.devices if c.address[0] == "virtio"]
        for name, value in sorted(per.props.items()):
            owner = next((o for o in owners if name in (rules.get(o.driver) or {})), None)
            if owner is None:
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            if text != str(rules[owner.driver][name]):
                owner.props[name] = text


def _read_device_links(config: Config, snapshot: Snapshot) -> None:
    """The link each -device was given to another device (``device-links`` in
    dtvm/vm/data/devices.yaml: a vmmouse's i8042, an IPMI interface's BMC), as a property of the
    linking device: the position of its target among the devices the link may name (``0`` the
    first), in the description's order (buses.link_mates), which are nodes of the description as
    well. A target elsewhere, or one the machine made (which no -device can name), is refused by name.

    Devices of one type without an id differ in nothing qtree shows, so QOM's paths are mapped to
    them by creation order, which qtree keeps: the machine's own first, then those given with
    -device (QOM numbers the anonymous ones in the order they were made)."""
    if not device_facts().get("device-links"):
        return
    by_qom = {d.qom_path: d for d in config.devices() if d.qom_path}
    for per in snapshot.peripherals:
        links = device_links_of(per.type)
        matched = by_qom.get(per.qom_path)  # on the right bus; which of identical ones, creation order says
        if not links or matched is None or matched.parent is None:
            continue
        dev = _link_target([d for d in matched.parent.devices if d.driver == per.type], snapshot, per.qom_path)
        if dev is None or dev.parent is None:
            raise DtvmError(f"{per.type} {per.id or per.qom_path}: not found among the {per.type} on its bus")
        for name, rule in sorted(links.items()):
            value = per.address.get(name)
            mates = link_mates(dev, rule, config.root)
            target = None
            for kind in rule.types if isinstance(value, str) else ():
                target = target or _link_target([d for d in mates if d.driver == kind], snapshot, str(value))
            if target is None:
                where = "on no bus" if rule.no_bus else "on its bus"
                raise DtvmError(f"{per.type} {per.id or per.qom_path}: its {name} link names {value!r}: not a "
                                f"{rule.describe()} given with -device {where}, which alone a -device can name: "
                                "dtvm cannot describe it")
            dev.props[name] = str(mates.index(target))


def _link_target(mates: list[Device], snapshot: Snapshot, path: str) -> Device | None:
    """Which of ``mates`` (devices of one type on one bus, in creation order) has QOM path ``path``,
    when it is one given with -device; None otherwise."""
    if path.startswith("/machine/peripheral/"):
        ident = path.removeprefix("/machine/peripheral/")
        return next((d for d in mates if d.qdev_id == ident), None)
    if not path.startswith("/machine/peripheral-anon/") or not mates:
        return None
    driver = mates[0].driver
    parent = mates[0].parent
    bus = parent.name if parent is not None else ""
    # a device on no bus has no parent_bus in QOM; the reader keeps it on the machine's root
    on_root = parent is not None and parent.parent is None
    anon = sorted((p.qom_path for p in snapshot.peripherals if p.type == driver and p.id is None
                   and ((p.parent_bus or "").rsplit("/", 1)[-1] == bus or (on_root and p.parent_bus is None))),
                  key=_natural_key)
    unnamed = [d for d in mates if not d.qdev_id]
    machine_made = len(unnamed) - len(anon)
    if path not in anon or machine_made < 0:
        return None
    return unnamed[machine_made + anon.index(path)]


def _natural_key(text: str) -> tuple[Any, ...]:
    """device[2] before device[10], as QEMU numbered them (by length, then digits: no int() of a
    number from QEMU's reply, however long)."""
    return tuple((0, len(part.lstrip("0")), part.lstrip("0")) if part.isdigit() else (1, 0, part)
                 for part in re.split(r"([0-9]+)", text))


def _matches(dev: Device, address: dict[str, Any]) -> bool:
    """Whether a QOM peripheral's raw address values (integers, or strings for USB ports, as the
    reply check lets through) name this device; a value that is not a number never matches."""
    try:
        return _matches_raw(dev, address)
    except (TypeError, ValueError):
        return False


def _matches_raw(dev: Device, address: dict[str, Any]) -> bool:
    kind, values = dev.address
    if kind == "pci" and "addr" in address:
        try:
            devfn = int(address["addr"])
        except (TypeError, ValueError):
            return False
        return (devfn >> 3, devfn & 7) == values
    if kind == "ide" and "unit" in address:
        return int(address["unit"]) == values[1]
    if kind == "scsi" and "scsi-id" in address:
        return (int(address["scsi-id"]), int(address.get("lun", 0))) == values[1:]
    if kind == "nr" and "nr" in address:
        return int(address["nr"]) == values[0]
    if kind == "cad" and "cad" in address:
        return int(address["cad"]) == values[0]
    if kind == "vio" and "reg" in address:
        return int(address["reg"]) == values[0]
    if kind == "isa" and "iobase" in address:
        return int(address["iobase"]) == values[0]
    return True
