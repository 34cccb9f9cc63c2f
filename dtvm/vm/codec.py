"""The description format, one owner: how a VM description spells things in a devicetree.

Every writer (``translate``, ``backend``, ``qemu.hotplug``) and every reader (``readback``,
``check``, ``show``, ``diff``) of a description goes through this module for:

- **values**: cells, 64-bit numbers and string lists, as dtc's ``data.c`` builds them, and the
  strict readers that trust nothing (one string, a cell list);
- **bus addresses**: the unit address and ``reg`` of a device per address form (PCI phys.hi,
  ISA ``<1 iobase>``, IDE ``<bus unit>``, SCSI ``<channel id lun>``, USB ``<port>``, ...), and back:
  the form is the one of the bus kind the parent controller gives (``data/buses.yaml``), so that
  a bus kind is added as data and its spelling here, once;
- **the machine node** ``/qemu`` (``compatible = "qemu,machine"``);
- **the back-end overlay**: one fragment per device with host facts (``target-path``), and a
  fragment adding ``/qemu-backends`` (one node per back-end, and ``inputs``).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from dtvm.dt.tree import DeviceTree, Node
from dtvm.errors import DtvmError
from dtvm.vm.model import Backend, Machine

__all__ = [
    "BUS_CELLS",
    "FLAGS",
    "MACHINE_NODE",
    "Address",
    "CodecError",
    "HostOverlay",
    "cells",
    "decode_address",
    "decode_machine",
    "decode_overlay",
    "encode_address",
    "encode_machine",
    "encode_overlay",
    "fragments",
    "host_props",
    "overlay_target",
    "prop_name",
    "read_cells",
    "read_string",
    "strings",
    "u64",
]

#: (form, values): ``("pci", (slot, fn))``, ``("isa", (iobase,))``, ``("ide", (bus, unit))``,
#: ``("scsi", (channel, id, lun))``, ``("usb", (port, ...))``, ``("nr", (n,))``, ``("cad", (n,))``, ``("i2c", (a,))``,
#: ``("vio", (reg,))``, ``("floppy", (unit,))``, ``("mmio", (base,))``, ``("virtio", ())``,
#: ``("nth", (n,))``; read back also ``("cell", (n,))`` (one cell, bus unknown) and ``("none", ())``.
Address = tuple[str, tuple[int, ...]]

#: The node of the machine and its compatible.
MACHINE_NODE = "qemu"
MACHINE_COMPATIBLE = "qemu,machine"

#: QEMU bus types whose devices are addressed by cells, and the cells their controller declares.
BUS_CELLS = {"floppy-bus": (1, 0), "PCI": (3, 2), "PCIE": (3, 2), "pxb-bus": (3, 2), "pxb-pcie-bus": (3, 2), "pxb-cxl-bus": (3, 2),
             "ISA": (2, 0), "IDE": (2, 0), "SCSI": (3, 0),
             "usb-bus": (1, 0), "virtio-serial-bus": (1, 0), "i2c-bus": (1, 0), "HDA": (1, 0)}

#: Host facts that are flags (history of a device, not hardware): present or absent.
FLAGS = ("hotplugged", "unplug-pending")

#: Machine node properties that are topology counts (``-smp``), in ``-smp``'s order.
TOPOLOGY = ("sockets", "dies", "clusters", "cores", "threads")


class CodecError(DtvmError):
    """A description that does not follow the format (names the node)."""

    exit_code = 2


# -- values (dtc's data.c) ---------------------------------------------------------------------------
def cells(*values: int) -> bytes:
    """32-bit big-endian cells (values wrap to 32 bits, as dtc's ``<>`` does)."""
    return b"".join(struct.pack(">I", v & 0xFFFFFFFF) for v in values)


def u64(value: int) -> bytes:
    """One 64-bit number as two cells."""
    return struct.pack(">Q", value & 0xFFFFFFFFFFFFFFFF)


def strings(*values: str) -> bytes:
    """A string list; names and values are latin-1 throughout (one character per byte)."""
    return b"".join(v.encode("latin-1", "replace") + b"\0" for v in values)


def read_cells(node: Node, name: str) -> list[int] | None:
    """The property as cells, or None when absent or not a whole number of cells."""
    prop = node.get_property(name)
    if prop is None or len(prop.value) % 4:
        return None
    return [v for (v,) in struct.iter_unpack(">I", prop.value)]


def read_string(node: Node | None, name: str) -> str | None:
    """The property when it is exactly one string, else None."""
    if node is None:
        return None
    prop = node.get_property(name)
    if prop is None:
        return None
    try:
        values = prop.as_strings()
    except Exception:
        return None
    return values[0] if len(values) == 1 else None


def read_number(node: Node, name: str, where: str) -> int:
    """One or two cells as a number; CodecError naming the node otherwise."""
    values = read_cells(node, name)
    if values is None or not 1 <= len(values) <= 2:
        raise CodecError(f"{where}: {name}: expected one or two cells")
    return values[0] if len(values) == 1 else (values[0] << 32) | values[1]


def prop_name(name: str) -> str:
    """The FDT property of a qdev property or machine option: ``qemu,<name>``, DT-safe."""
    return "qemu," + re.sub(r"[^a-zA-Z0-9,._+?#-]", "-", name)


# -- bus addresses --------------------------------------------------------------------------------
def encode_address(address: Address, parent: Node, mmio: list[tuple[int, int]] | None = None) -> tuple[str, bytes | None]:
    """The unit address and ``reg`` of a device at ``address`` below ``parent``.

    QEMU's own SCSI node (pseries' v-scsi) declares 2 address cells (``<id lun>``); a SCSI address
    on channel 0 below it drops the channel, as QEMU's tree does.
    """
    kind, values = address
    if kind == "pci":
        slot, fn = values
        return (f"{slot:x}" if fn == 0 else f"{slot:x},{fn:x}"), cells((slot << 11) | (fn << 8), 0, 0, 0, 0)
    if kind == "isa":
        return f"i{values[0]:x}", cells(1, values[0])
    if kind in ("ide", "scsi"):
        vals = values
        declared = parent.get_property("#address-cells")
        if kind == "scsi" and declared is not None and declared.value == cells(2) and values[0] == 0:
            vals = values[1:]
        return ",".join(f"{v:x}" for v in vals), cells(*vals)
    if kind == "usb":
        return f"{values[-1]:x}", cells(values[-1])
    if kind in ("nr", "cad", "i2c", "vio", "floppy"):
        return f"{values[0]:x}", cells(values[0])
    if kind == "mmio":
        reg = b"".join(u64(base) + u64(size) for base, size in (mmio or []) if base != 0xFFFFFFFFFFFFFFFF)
        return f"{values[0]:x}", reg
    return "", None


#: the address form of the devices on each bus kind (``data/buses.yaml``'s kinds)
FORMS = {"pcie-root": "pci", "pci-root": "pci", "pxb-pcie-root": "pci", "pxb-root": "pci", "pcie-port": "pci", "pcie-switch": "pci", "pci": "pci",
         "isa": "isa", "ide": "ide", "scsi": "scsi", "usb": "usb", "virtio-serial": "nr", "virtio": "virtio",
         "vio": "vio", "i2c": "i2c", "floppy": "floppy", "hda": "cad"}


def decode_address(node: Node, bus_kind: str | None) -> Address:
    """The bus address a device node states, read by the form of the bus it sits on.

    ``bus_kind`` is what the parent controller gives (None: the system bus, or a parent the bus
    table does not know); a ``reg`` that does not have the bus's form is returned in the form it
    has, for ``check`` to name (``address-form``).
    """
    if node.name == "virtio" or node.basename == "virtio":
        return ("virtio", ())
    reg = read_cells(node, "reg")
    if reg is None:
        return ("none", ())
    parent = node.parent
    acells = read_cells(parent, "#address-cells") if parent is not None else None
    a = acells[0] if acells and len(acells) == 1 else 2
    unit = node.unit_address
    if a == 3 and len(reg) % 5 == 0 and len(reg) >= 5:
        hi = reg[0]
        return ("pci", ((hi >> 11) & 0x1F, (hi >> 8) & 0x7))
    form = FORMS.get(bus_kind) if bus_kind is not None else None
    if form == "usb":
        return ("usb", (reg[0],))
    if a == 2 and unit is not None and unit.startswith("i") and len(reg) >= 2 and reg[0] == 1:
        return ("isa", (reg[1],))
    if a == 3 and len(reg) == 3:
        return ("scsi", (reg[0], reg[1], reg[2]))
    if form == "scsi" and a == 2 and len(reg) == 2:
        return ("scsi", (0, reg[0], reg[1]))  # QEMU's own <id lun> SCSI node (pseries v-scsi)
    if a == 2 and len(reg) == 2 and unit is not None and "," in unit:
        return ("ide", (reg[0], reg[1]))
    if a == 1 and len(reg) >= 1 and parent is not None and parent.parent is not None:
        if form in ("nr", "cad", "vio", "i2c", "floppy"):
            return (form, (reg[0],))
        return ("cell", (reg[0],))
    if len(reg) >= 2 and a == 2:
        return ("mmio", ((reg[0] << 32) | reg[1],))
    return ("cell", (reg[0],))


# -- the machine node ------------------------------------------------------------------------------
def encode_machine(root: Node, machine: Machine) -> Node:
    """``/qemu``: the versioned type, arch, CPU model and counts, memory, and the machine options
    that differ from the type's defaults (``qemu,<option>``)."""
    node = Node(MACHINE_NODE)
    root.add_child(node)
    node.set_property("compatible", strings(MACHINE_COMPATIBLE))
    node.set_property("machine", strings(machine.type))
    node.set_property("arch", strings(machine.arch))
    if machine.cpu_type:
        node.set_property("cpu-type", strings(machine.cpu_type))
    node.set_property("cpus", cells(machine.cpus))
    if machine.max_cpus and machine.max_cpus != machine.cpus:
        node.set_property("max-cpus", cells(machine.max_cpus))
    for key in ("socket-id", "die-id", "cluster-id", "core-id", "thread-id"):
        if key in machine.topology:
            node.set_property(key[:-3] + "s", cells(machine.topology[key]))
    node.set_property("memory-size", u64(machine.memory))
    if machine.max_memory:
        node.set_property("memory-slots", cells(machine.memory_slots))
        node.set_property("max-memory-size", u64(machine.max_memory))
    if machine.device_cpus:
        # CPUs made as devices: one string of topology ids each (QEMU's -device spelling)
        node.set_property("device-cpus", strings(*(",".join(f"{k}={v}" for k, v in ids.items())
                                                   for ids in machine.device_cpus)))
    for key, value in sorted(machine.options.items()):
        node.set_property(prop_name(key), strings(value))
    return node


def decode_machine(root: Node) -> Machine:
    """The machine a description states; CodecError naming ``/qemu`` when it cannot be read."""
    node = root.get_child(MACHINE_NODE)
    if node is None or read_string(node, "compatible") != MACHINE_COMPATIBLE:
        raise CodecError(f"/{MACHINE_NODE}: no machine node (compatible \"{MACHINE_COMPATIBLE}\"): "
                         "not a dtvm description")
    where = f"/{MACHINE_NODE}"
    mtype = read_string(node, "machine")
    arch = read_string(node, "arch")
    if not mtype or not arch:
        raise CodecError(f"{where}: machine and arch are required strings")
    options: dict[str, str] = {}
    for prop in node.live_props():
        if prop.name.startswith("qemu,"):
            value = read_string(node, prop.name)
            if value is None:
                raise CodecError(f"{where}: {prop.name}: expected one string")
            options[prop.name[5:]] = value
    topology = {key: read_number(node, key, where) for key in TOPOLOGY if node.get_property(key) is not None}
    cpus = read_number(node, "cpus", where)
    max_cpus = read_number(node, "max-cpus", where) if node.get_property("max-cpus") is not None else cpus
    memory = read_number(node, "memory-size", where)
    slots = max_memory = 0
    if node.get_property("max-memory-size") is not None or node.get_property("memory-slots") is not None:
        slots = read_number(node, "memory-slots", where)
        max_memory = read_number(node, "max-memory-size", where)
        if max_memory <= memory:
            raise CodecError(f"{where}: max-memory-size {max_memory} is not above memory-size {memory}")
    return Machine(type=mtype, arch=arch, options=options, cpu_type=read_string(node, "cpu-type"), cpus=cpus,
                   max_cpus=max_cpus, topology=topology, memory=memory, memory_slots=slots, max_memory=max_memory,
                   device_cpus=_device_cpus(node, where, cpus))


_CPU_IDS = re.compile(r"(node|socket|die|cluster|core|thread)-id=(\d{1,6})")


def _device_cpus(node: Node, where: str, cpus: int) -> list[dict[str, int]]:
    """``device-cpus``: strings of ``KEY-id=N`` pairs (node, socket, die, cluster, core, thread)."""
    prop = node.get_property("device-cpus")
    if prop is None:
        return []
    raw = bytes(prop.value)
    if not raw.endswith(b"\0"):
        raise CodecError(f"{where}: device-cpus: expected strings")
    out: list[dict[str, int]] = []
    for text in raw[:-1].split(b"\0"):
        ids: dict[str, int] = {}
        for pair in text.decode("ascii", "replace").split(","):
            m = _CPU_IDS.fullmatch(pair)
            if m is None or f"{m.group(1)}-id" in ids:
                raise CodecError(f"{where}: device-cpus: {pair!r} is not a topology id (socket-id=N, core-id=N, ...)")
            ids[f"{m.group(1)}-id"] = int(m.group(2))
        out.append(ids)
    if len(out) >= max(cpus, 1):
        raise CodecError(f"{where}: device-cpus: {len(out)} CPUs made as devices, but only {cpus} CPUs in all")
    return out


# -- the back-end overlay --------------------------------------------------------------------------
@dataclass
class HostOverlay:
    """What a back-end overlay states: host facts per device node, the back-ends, the inputs.

    Facts are qdev names without ``qemu,`` (``id``, ``drive``, ``netdev``, ``masterbus``, ...);
    a flag (``hotplugged``, ``unplug-pending``) reads ``"on"``.
    """

    targets: dict[str, dict[str, str]] = field(default_factory=dict)
    backends: list[Backend] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    qemu_version: str = ""


def _child(parent: Node, name: str) -> Node:
    node = Node(name)
    parent.add_child(node)
    return node


def host_props(facts: dict[str, str], flags: tuple[str, ...] = ()) -> dict[str, bytes]:
    """A device's host facts as overlay properties (flags first, as QEMU's history reads)."""
    out: dict[str, bytes] = {f"qemu,{f}": b"" for f in flags}
    for key, value in facts.items():
        out[prop_name(key)] = strings(value)
    return out


def encode_overlay(targets: list[tuple[str, dict[str, bytes]]], backends: list[Backend],
                   inputs: dict[str, str], qemu_version: str = "") -> DeviceTree:
    """The overlay: a fragment per target node with its facts, then ``/qemu-backends``."""
    root = Node("")
    count = 0
    for path, props in targets:
        frag = _child(root, f"fragment@{count}")
        count += 1
        frag.set_property("target-path", strings(path))
        over = _child(frag, "__overlay__")
        for key, value in props.items():
            over.set_property(key, value)
    frag = _child(root, f"fragment@{count}")
    frag.set_property("target-path", strings("/"))
    over = _child(frag, "__overlay__")
    holder = _child(over, "qemu-backends")
    holder.set_property("compatible", strings("qemu,backends"))
    if qemu_version:
        holder.set_property("qemu-version", strings(qemu_version))
    counters: dict[str, int] = {}
    for backend in backends:
        n = counters.get(backend.kind, 0)
        counters[backend.kind] = n + 1
        node = _child(holder, f"{backend.kind}-{n}")
        node.set_property("compatible", strings(f"qemu,{backend.kind}"))
        node.set_property("id", strings(backend.id))
        for key, text in sorted(backend.options.items()):
            node.set_property(prop_name(key).removeprefix("qemu,"), strings(text))
    if inputs:
        node = _child(holder, "inputs")
        for key, text in sorted(inputs.items()):
            node.set_property(key, strings(text))
    dt = DeviceTree(root)
    dt.plugin = True
    return dt


def fragments(overlay: DeviceTree) -> list[tuple[Node, str | None, Node]]:
    """(fragment, target-path or None, ``__overlay__``) of every fragment, in order."""
    out: list[tuple[Node, str | None, Node]] = []
    for frag in overlay.root.live_children():
        over = frag.get_child("__overlay__")
        if over is not None:
            out.append((frag, read_string(frag, "target-path"), over))
    return out


def overlay_target(overlay: DeviceTree, path: str) -> Node:
    """The ``__overlay__`` of the fragment aimed at ``path``, added (before the ``/qemu-backends``
    fragment's number, with the next free number) when there is none."""
    for _frag, target, over in fragments(overlay):
        if target == path:
            return over
    names = {c.name for c in overlay.root.children}
    n = len(names)
    while f"fragment@{n}" in names:
        n += 1
    frag = _child(overlay.root, f"fragment@{n}")
    frag.set_property("target-path", strings(path))
    return _child(frag, "__overlay__")


def decode_overlay(overlay: DeviceTree | None) -> HostOverlay:
    """What an overlay states; CodecError naming the fragment when a fact is not one string."""
    out = HostOverlay()
    if overlay is None:
        return out
    for frag, target, over in fragments(overlay):
        if target is None:
            continue
        facts: dict[str, str] = {}
        for prop in over.live_props():
            if prop.name[5:] in FLAGS and prop.name.startswith("qemu,"):
                facts[prop.name[5:]] = "on"
                continue
            if prop.name.startswith("qemu,"):
                value = read_string(over, prop.name)
                if value is None:
                    raise CodecError(f"back-end overlay {frag.name}: {prop.name}: expected one string")
                facts[prop.name[5:]] = value
        if facts:
            out.targets.setdefault(target, {}).update(facts)
        holder = over.get_child("qemu-backends")
        if holder is None:
            continue
        out.qemu_version = read_string(holder, "qemu-version") or out.qemu_version
        for child in holder.live_children():
            if child.name == "inputs":
                for prop in child.live_props():
                    value = read_string(child, prop.name)
                    if value is not None:
                        out.inputs[prop.name] = value
                continue
            compat = read_string(child, "compatible") or ""
            kind = compat[5:] if compat.startswith("qemu,") else child.basename.rsplit("-", 1)[0]
            ident = read_string(child, "id")
            if not ident:
                raise CodecError(f"back-end overlay /qemu-backends/{child.name}: no id")
            opts: dict[str, str] = {}
            for prop in child.live_props():
                if prop.name in ("compatible", "id"):
                    continue
                value = read_string(child, prop.name)
                if value is not None:
                    opts[prop.name] = value
            out.backends = [b for b in out.backends if (b.kind, b.id) != (kind, ident)]
            out.backends.append(Backend(kind, ident, opts))
    return out
