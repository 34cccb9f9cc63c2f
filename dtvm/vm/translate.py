"""qdev Config to the guest tree and the back-end overlay, through the bindings' ``qemu:`` sections.

The guest tree says what the guest can observe plus what migration needs to rebuild the same
device model; the back-end overlay says what only the host knows (qdev ids, drives, netdevs,
chardevs).  For machines that give the guest a devicetree, QEMU's own tree is the starting point
and stays as it is: the devices QEMU's tree describes are found in it through the bindings
(``qemu: driver``), and only what it lacks (PCI functions, devices on virtio and USB buses, ...)
is added.  For x86 the same conventions build the whole tree.

Conventions (README "The description"):

- every qdev device has one node; a node dtvm adds has ``compatible = "qemu,<driver>", ...``
  (PCI functions add ``"pciVVVV,DDDD"``), a unit address from its bus address, and its
  guest-visible qdev properties that differ from the type's defaults as ``qemu,<prop>`` strings
  in QEMU's option syntax (mapped to standard properties where the binding says so);
- PCI functions: ``reg`` phys.hi per the PCI bus binding (bus number 0: a paused VM has not
  numbered its buses), unit address ``slot[,fn]``; bridges are ``pci@...`` nodes with
  ``device_type = "pci"`` and ``ranges``;
- ISA devices: ``reg = <1 iobase>`` (I/O space; ``#size-cells = <0>`` because QEMU does not
  report port ranges); IDE ``reg = <bus unit>``; SCSI ``reg = <channel id lun>``; USB ``reg =
  <port>`` nested under hubs; virtio-serial ports ``reg = <nr>``; I2C ``reg = <address>``;
- the node ``/qemu`` (``compatible = "qemu,machine"``) holds the versioned machine type, the
  machine options that differ from the type's defaults, the CPU model and counts, memory size.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from dtvm.dt.dtb import read_dtb
from dtvm.dt.tree import DeviceTree, Node
from dtvm.errors import DtvmError
from dtvm.vm.codec import (
    BUS_CELLS,
    cells,
    encode_address,
    encode_machine,
    encode_overlay,
    host_props,
    prop_name,
    strings,
    u64,
)
from dtvm.vm.model import PCI_BUSES, Bus, Config, Device
from dtvm.vm.translators import qemu_sections, translators

__all__ = ["Description", "TranslateError", "describe", "driver_compat", "drop_seeds"]


class TranslateError(DtvmError):
    """A device model that cannot be described (names the device by its guest-visible key)."""


#: Generic node names for PCI class names as ``info qtree`` prints them (QEMU's pci class table).
PCI_CLASS_NAMES = {
    "Ethernet controller": "ethernet",
    "Network controller": "network",
    "SCSI controller": "scsi",
    "IDE controller": "ide",
    "SATA controller": "sata",
    "RAID controller": "raid",
    "Storage controller": "storage",
    "VGA controller": "display",
    "Display controller": "display",
    "USB controller": "usb",
    "ISA bridge": "isa",
    "PCI bridge": "pci",
    "Host bridge": "host",
    "SMBus": "smbus",
    "Audio controller": "sound",
    "Multimedia controller": "multimedia",
    "Serial port": "serial",
    "Communication controller": "communication",
    "Keyboard": "keyboard",
    "Input device controller": "input",
    "System peripheral": "system",
}


@dataclass
class Description:
    """The guest tree, the back-end overlay, and which node describes each device (by key)."""

    guest: DeviceTree
    backend: DeviceTree
    nodes: dict[str, str] = field(default_factory=dict)


def _sanitize(text: str) -> str:
    """A node name from a qdev driver name: DT names allow [a-zA-Z0-9,._+-]; keep it lowercase."""
    name = re.sub(r"[^a-z0-9,+-]+", "-", text.lower()).strip("-")
    return (name or "device")[:31]


def _set(node: Node, name: str, value: bytes) -> None:
    node.set_property(name, value)


def _child(parent: Node, name: str) -> Node:
    base = name
    n = 1
    while parent.get_child(name) is not None:
        name = f"{base}-{n}" if "@" not in base else base.replace("@", f"-{n}@", 1)
        n += 1
    node = Node(name)
    parent.add_child(node)
    return node


class _Builder:
    def __init__(self, config: Config, bindings: dict[str, list[str]] | None) -> None:
        self.config = config
        self.driver_compat = bindings or {}
        self.nodes: dict[str, str] = {}
        self.node_of: dict[int, Node] = {}
        self.backend_targets: list[tuple[Node, dict[str, bytes]]] = []

    # -- machine -------------------------------------------------------------------------------
    def machine_node(self, root: Node) -> None:
        encode_machine(root, self.config.machine)

    # -- devices -------------------------------------------------------------------------------
    def device_props(self, node: Node, dev: Device) -> None:
        for key, value in sorted(_described_props(dev).items()):
            if key == "mac" and re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", value):
                _set(node, "local-mac-address", bytes(int(x, 16) for x in value.split(":")))
                continue
            _set(node, prop_name(key), strings(value))
        self.host_facts(node, dev)

    def host_facts(self, node: Node, dev: Device) -> None:
        """What only the host knows about a device goes to the overlay, aimed at its node."""
        facts = {"id": dev.qdev_id} if dev.qdev_id else {}
        facts.update(sorted(dev.backends.items()))
        host = host_props(facts, ("hotplugged",) if dev.hotplugged else ())
        if host:
            self.backend_targets.append((node, host))

    def add_device(self, parent: Node, dev: Device) -> Node:
        name = self.node_name(dev)
        unit, reg = encode_address(dev.address, parent, dev.mmio) if not _unaddressed(dev) else ("", None)
        node = _child(parent, f"{name}@{unit}" if unit else name)
        compat = [f"qemu,{dev.driver}"]
        if dev.pci_ids is not None:
            vendor, device, subvendor, subdevice = dev.pci_ids
            compat.append(f"pci{vendor:x},{device:x}")
        _set(node, "compatible", strings(*compat))
        _set(node, "qemu,driver", strings(dev.driver))
        if reg is not None:
            _set(node, "reg", reg)
        if dev.pci_ids is not None:
            vendor, device, subvendor, subdevice = dev.pci_ids
            _set(node, "vendor-id", cells(vendor))
            _set(node, "device-id", cells(device))
            _set(node, "subsystem-vendor-id", cells(subvendor))
            _set(node, "subsystem-id", cells(subdevice))
        self.device_props(node, dev)
        self.place_buses(node, dev)
        return node

    def node_name(self, dev: Device) -> str:
        kinds = {PCI_BUSES.get(b.type) for b in dev.buses}
        if kinds & {"PCI", "PCIE"}:
            return "pcie" if "PCIE" in kinds else "pci"
        translator = translators().get(dev.driver)
        if translator is not None and translator.node_name:
            return translator.node_name
        if dev.address[0] == "pci":
            return PCI_CLASS_NAMES.get(dev.pci_class or "", "pci-device")
        if dev.address[0] == "usb":
            return "hub" if dev.driver.startswith("usb-hub") else "device"
        if dev.address[0] == "virtio":
            return "virtio"
        return _sanitize(dev.driver)

    def place_buses(self, node: Node, dev: Device) -> None:
        kinds = {b.type for b in dev.buses if b.devices or b.type in BUS_CELLS}
        declared = [BUS_CELLS[k] for k in kinds if k in BUS_CELLS]
        if declared:
            acells, scells = declared[0]
            if node.get_property("#address-cells") is None:
                _set(node, "#address-cells", cells(acells))
                _set(node, "#size-cells", cells(scells))
            if any(b.type in PCI_BUSES for b in dev.buses) and dev.address[0] == "pci":
                # a PCI-PCI bridge or a PCI expander (its new root bus shares the address space
                # of the bus it sits on): same address space on both sides (an x86 host
                # bridge's windows are not reported by QEMU, so it gets neither device_type nor ranges)
                if node.get_property("device_type") is None:
                    _set(node, "device_type", strings("pci"))
                if node.get_property("ranges") is None:
                    _set(node, "ranges", b"")
        for bus in dev.buses:
            self.place_bus(node, bus)

    def place_bus(self, node: Node, bus: Bus) -> None:
        if bus.type == "usb-bus":
            self.place_usb(node, bus)
            return
        for dev in _canonical(bus.devices):
            self.place(node, dev)

    def place_usb(self, node: Node, bus: Bus) -> None:
        """USB devices nest under the hubs their port path goes through (USB binding)."""
        by_port: dict[tuple[int, ...], Node] = {}
        for dev in sorted(bus.devices, key=lambda d: d.address[1]):
            port = dev.address[1]
            parent = by_port.get(port[:-1], node) if len(port) > 1 else node
            if parent is not node and parent.get_property("#address-cells") is None:
                _set(parent, "#address-cells", cells(1))
                _set(parent, "#size-cells", cells(0))
            child = self.place(parent, dev)
            by_port[port] = child

    def place(self, parent: Node, dev: Device) -> Node:
        existing = self.node_of.get(id(dev))
        if existing is not None:
            self.device_props_existing(existing, dev)
            return existing
        found = _existing_child(parent, dev)
        if found is not None:
            self.node_of[id(dev)] = found
            self.device_props_existing(found, dev)
            return found
        node = self.add_device(parent, dev)
        self.record(dev, node)
        return node

    def device_props_existing(self, node: Node, dev: Device) -> None:
        """A device QEMU's own tree describes: QEMU's properties stay as they are; dtvm adds only
        its own ``qemu,*`` facts and child nodes for devices QEMU's tree does not show."""
        self.record(dev, node)
        if node.get_property("qemu,driver") is None:
            _set(node, "qemu,driver", strings(dev.driver))
        for key, value in sorted(_described_props(dev).items()):
            name = prop_name(key)
            if node.get_property(name) is None:
                _set(node, name, strings(value))
        self.host_facts(node, dev)
        if _is_dt_bus_owner(node):
            self.place_children_only(node, dev)
        else:
            self.place_buses(node, dev)

    def place_children_only(self, node: Node, dev: Device) -> None:
        for bus in dev.buses:
            self.place_bus(node, bus)

    def record(self, dev: Device, node: Node) -> None:
        self.nodes.setdefault(dev.key(), node.path)


def _canonical(devices: list[Device]) -> list[Device]:
    """Devices of one bus in address order, unaddressed ones after them in creation order.

    Creation order differs between a VM built by its machine type (defaults made during machine
    init) and the same VM rebuilt with explicit -device options; address order does not, so the
    two read the same.
    """
    def key(dev: Device) -> tuple[int, str, tuple[int, ...]]:
        kind, values = dev.address
        return (1, dev.driver, values) if kind == "nth" else (0, kind, values)

    return sorted(devices, key=key)


def _existing_child(parent: Node, dev: Device) -> Node | None:
    """QEMU's own node for a device on a bus it describes (pseries PCI functions, VIO devices)."""
    kind, values = dev.address
    for child in parent.live_children():
        reg = child.get_property("reg")
        if reg is None or len(reg.value) < 4 or (child.get_property("compatible") is not None and any(
            c.startswith("qemu,") for c in child["compatible"].as_strings()
        )):
            continue
        first = int.from_bytes(reg.value[:4], "big")
        if kind == "pci" and len(reg.value) % 20 == 0 and (first >> 8) & 0xFF == (values[0] << 3 | values[1]):
            return child
        if kind == "vio" and first == values[0]:
            return child
    return None


def _is_dt_bus_owner(node: Node) -> bool:
    """QEMU's node already declares its children's cells: keep it unchanged."""
    return node.get_property("#address-cells") is not None


def _walk(node: Node) -> Iterable[Node]:
    stack = [node]
    while stack:
        cur = stack.pop()
        yield cur
        stack.extend(reversed(list(cur.live_children())))


def _first_reg_address(node: Node) -> int | None:
    reg = node.get_property("reg")
    parent = node.parent
    if reg is None or parent is None:
        return None
    acells_prop = parent.get_property("#address-cells")
    acells = struct.unpack(">I", acells_prop.value)[0] if acells_prop is not None and len(acells_prop.value) == 4 else 2
    if acells not in (1, 2) or len(reg.value) < 4 * acells:
        return None
    return int.from_bytes(reg.value[: 4 * acells], "big")


def _match_dt_nodes(builder: _Builder, config: Config, dt: DeviceTree) -> None:
    """Find the QEMU DT node of each device QEMU's tree describes, through the bindings."""
    by_compat: dict[str, list[Node]] = {}
    for node in _walk(dt.root):
        compat = node.get_property("compatible")
        if compat is None:
            continue
        for c in compat.as_strings():
            by_compat.setdefault(c, []).append(node)
    used: set[int] = set()
    for dev in config.devices():
        compats = builder.driver_compat.get(dev.driver, [])
        candidates = [n for c in compats for n in by_compat.get(c, [])]
        if not candidates:
            continue
        chosen: Node | None = None
        base = dev.address[1][0] if dev.address[0] in ("mmio", "vio") else None
        if base is not None:
            for n in candidates:
                if _first_reg_address(n) == base:
                    chosen = n
                    break
        if chosen is None:
            free = [n for n in candidates if id(n) not in used]
            if len(free) == 1 or (free and base is None):
                chosen = free[0]
            elif not free and len(candidates) == 1:
                chosen = candidates[0]  # one node for several devices (two flash banks in one reg)
        if chosen is not None:
            used.add(id(chosen))
            builder.node_of[id(dev)] = chosen
    # devices no binding names: QEMU's node at the device's MMIO base, if there is exactly one
    by_base: dict[int, list[Node]] = {}
    for nodes in by_compat.values():
        for n in nodes:
            base = _first_reg_address(n)
            if base is not None and id(n) not in used and n not in by_base.get(base, []):
                by_base.setdefault(base, []).append(n)
    for dev in config.root.devices:
        if id(dev) in builder.node_of or dev.address[0] != "mmio":
            continue
        found = by_base.get(dev.address[1][0], [])
        if len(found) == 1 and id(found[0]) not in used:
            used.add(id(found[0]))
            builder.node_of[id(dev)] = found[0]


def _x86_root(builder: _Builder, config: Config) -> DeviceTree:
    root = Node("")
    _set(root, "#address-cells", cells(2))
    _set(root, "#size-cells", cells(2))
    _set(root, "compatible", strings(f"qemu,{config.machine.type}"))
    _set(root, "model", strings(f"QEMU {config.machine.type}"))
    cpus = _child(root, "cpus")
    _set(cpus, "#address-cells", cells(1))
    _set(cpus, "#size-cells", cells(0))
    for index in range(config.machine.cpus):
        cpu = _child(cpus, f"cpu@{index:x}")
        _set(cpu, "device_type", strings("cpu"))
        _set(cpu, "reg", cells(index))
        if config.machine.cpu_type:
            _set(cpu, "compatible", strings(f"qemu,{config.machine.cpu_type}"))
    below, above = _x86_memory(config)
    mem = _child(root, "memory@0")
    _set(mem, "device_type", strings("memory"))
    reg = u64(0) + u64(below)
    if above:
        reg += u64(1 << 32) + u64(above)
    _set(mem, "reg", reg)
    return DeviceTree(root)


def _x86_memory(config: Config) -> tuple[int, int]:
    for dev in config.root.devices:
        if dev.driver.endswith("-pcihost") and "below-4g-mem-size" in dev.props:
            return int(dev.props["below-4g-mem-size"]), int(dev.props.get("above-4g-mem-size", "0"))
    return config.machine.memory, 0


def drop_seeds(dt: DeviceTree) -> None:
    """QEMU writes fresh random seeds on every start into /chosen and, with the arm virt
    ``secure=on``, into /secure-chosen: per-run values, never part of the description."""
    for node_name in ("chosen", "secure-chosen"):
        chosen = dt.root.get_child(node_name)
        if chosen is None:
            continue
        for name in ("rng-seed", "kaslr-seed"):
            if chosen.get_property(name) is not None:
                chosen.props = [p for p in chosen.props if p.name != name]


def _backend_overlay(builder: _Builder, config: Config) -> DeviceTree:
    return encode_overlay([(node.path, props) for node, props in builder.backend_targets], config.backends,
                          config.inputs, config.qemu_version)


def _described_props(dev: Device) -> dict[str, str]:
    """The device's properties but those the machine places itself that some QEMU versions no
    longer have (``undescribed`` in data/devices.yaml), and fixed-size strings cut to the bytes
    the guest sees (``fixed-length-strings``: read back, they run on into memory)."""
    if not dev.props:
        return dev.props
    from dtvm.vm.buses import device_facts

    facts = device_facts()
    drop = (facts.get("undescribed") or {}).get(dev.driver)
    props = {k: v for k, v in dev.props.items() if k not in drop} if drop else dev.props
    fixed = (facts.get("fixed-length-strings") or {}).get(dev.driver)
    if fixed:
        props = {k: v[:fixed[k]] if k in fixed else v for k, v in props.items()}
    return props


def _unaddressed(dev: Device) -> bool:
    """A system-bus device whose MMIO regions some QEMU versions do not report as its own
    (``unaddressed`` in data/devices.yaml): described without them, so it reads the same on each."""
    if dev.address[0] != "mmio":
        return False
    from dtvm.vm.buses import device_facts

    return dev.driver in (device_facts().get("unaddressed") or {})


def driver_compat() -> dict[str, list[str]]:
    """qdev driver -> the compatibles of the bindings whose ``qemu: driver`` names it."""
    out: dict[str, list[str]] = {}
    for compatible, _file, qemu in qemu_sections():
        driver = qemu.get("driver")
        if isinstance(driver, str) and compatible:
            out.setdefault(driver, []).append(compatible[0])
    return out


def describe(config: Config, driver_compat: dict[str, list[str]] | None = None) -> Description:
    """The guest tree and back-end overlay of a VM (``driver_compat``: qdev driver -> compatibles).

    ``driver_compat`` comes from the bindings' ``qemu: driver`` entries; without it nothing in
    QEMU's own tree is matched and every device gets a node of its own.
    """
    builder = _Builder(config, driver_compat)
    if config.dtb is not None:
        dt = read_dtb(config.dtb, "QEMU's dumpdtb")
        drop_seeds(dt)
        _match_dt_nodes(builder, config, dt)
    else:
        dt = _x86_root(builder, config)
    root = dt.root
    builder.machine_node(root)
    for dev in _canonical(config.root.devices):
        builder.place(root, dev)
    backend = _backend_overlay(builder, config)
    return Description(dt, backend, builder.nodes)
