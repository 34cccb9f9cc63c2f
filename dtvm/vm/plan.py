"""A description read back: the devices, machine and back-ends a guest tree and overlay state.

This is ``translate`` in reverse, and it trusts nothing: the DTB may come from anyone.  Every
node that describes a qdev device is recognised by dtvm's own conventions (a ``qemu,<driver>``
first compatible on the nodes dtvm adds, ``qemu,driver`` on QEMU's own nodes), its bus address is
decoded from ``reg`` by the kind of bus its parent is, and everything else stays data.  Nothing
here builds a command line; ``argv`` does, and checks every value on the way.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from dtvm.dt.tree import DeviceTree, Node
from dtvm.errors import DtvmError

__all__ = ["DescDevice", "DescMachine", "Plan", "PlanError", "read_plan"]

MAX_DEVICES = 20_000
MAX_DEPTH = 64


class PlanError(DtvmError):
    """A description that cannot be read back (names the node)."""

    exit_code = 2


@dataclass
class DescDevice:
    """One device as the description states it."""

    path: str
    driver: str
    #: kind of the parent's bus address decoded from reg: pci (slot, fn), isa (iobase,),
    #: ide (bus, unit), scsi (channel, id, lun), usb (port path), nr (n,), i2c (addr,), vio (reg,),
    #: virtio (), mmio (base,), none ()
    address: tuple[str, tuple[int, ...]]
    props: dict[str, str] = field(default_factory=dict)
    host: dict[str, str] = field(default_factory=dict)
    parent: str | None = None
    #: the node is QEMU's own (its DT), not one dtvm added
    qemu_node: bool = False


@dataclass
class DescMachine:
    type: str
    arch: str
    options: dict[str, str]
    cpu_type: str | None
    cpus: int
    max_cpus: int
    topology: dict[str, int]
    memory: int


@dataclass
class Plan:
    machine: DescMachine
    devices: list[DescDevice]
    backends: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)

    def by_path(self) -> dict[str, DescDevice]:
        return {d.path: d for d in self.devices}


def _cells(node: Node, name: str) -> list[int] | None:
    prop = node.get_property(name)
    if prop is None or len(prop.value) % 4:
        return None
    return [v for (v,) in struct.iter_unpack(">I", prop.value)]


def _string(node: Node, name: str) -> str | None:
    prop = node.get_property(name)
    if prop is None:
        return None
    try:
        strings = prop.as_strings()
    except Exception:
        return None
    return strings[0] if len(strings) == 1 else None


def _u(node: Node, name: str, where: str) -> int:
    cells = _cells(node, name)
    if cells is None or not 1 <= len(cells) <= 2:
        raise PlanError(f"{where}: {name}: expected one or two cells")
    return cells[0] if len(cells) == 1 else (cells[0] << 32) | cells[1]


def _driver(node: Node) -> tuple[str | None, bool]:
    """A node describes a qdev device exactly when it has ``qemu,driver``; the second value says
    whether the node is QEMU's own (from its DT) rather than one dtvm added."""
    driver = _string(node, "qemu,driver")
    if not driver:
        return None, False
    compat = node.get_property("compatible")
    first = ""
    if compat is not None:
        try:
            first = compat.as_strings()[0]
        except Exception:
            first = ""
    return driver, first != f"qemu,{driver}"


def _address(node: Node, parent_driver_kind: str, where: str) -> tuple[str, tuple[int, ...]]:
    reg = _cells(node, "reg")
    unit = node.unit_address
    if node.name == "virtio" or node.basename == "virtio":
        return ("virtio", ())
    if reg is None:
        return ("none", ())
    parent = node.parent
    acells = _cells(parent, "#address-cells") if parent is not None else None
    a = acells[0] if acells and len(acells) == 1 else 2
    if a == 3 and len(reg) % 5 == 0 and len(reg) >= 5:
        hi = reg[0]
        return ("pci", ((hi >> 11) & 0x1F, (hi >> 8) & 0x7))
    if parent_driver_kind == "usb":
        return ("usb", (reg[0],))
    if a == 2 and unit is not None and unit.startswith("i") and len(reg) >= 2 and reg[0] == 1:
        return ("isa", (reg[1],))
    if a == 3 and len(reg) == 3:
        return ("scsi", tuple(reg))
    if a == 2 and len(reg) == 2 and unit is not None and "," in unit:
        return ("ide", tuple(reg))
    if a == 1 and len(reg) >= 1 and parent is not None and parent.parent is not None:
        return ("cell", (reg[0],))
    if len(reg) >= 2 and a == 2:
        return ("mmio", ((reg[0] << 32) | reg[1],))
    return ("cell", (reg[0],))


def read_plan(guest: DeviceTree, backend: DeviceTree | None = None) -> Plan:
    """The rebuild plan a description states; PlanError naming the node when it cannot."""
    root = guest.root
    mnode = root.get_child("qemu")
    if mnode is None or _string(mnode, "compatible") != "qemu,machine":
        raise PlanError("/qemu: no machine node (compatible \"qemu,machine\"): not a dtvm description")
    mtype = _string(mnode, "machine")
    arch = _string(mnode, "arch")
    if not mtype or not arch:
        raise PlanError("/qemu: machine and arch are required strings")
    options: dict[str, str] = {}
    for prop in mnode.live_props():
        if prop.name.startswith("qemu,"):
            value = _string(mnode, prop.name)
            if value is None:
                raise PlanError(f"/qemu: {prop.name}: expected one string")
            options[prop.name[5:]] = value
    topology: dict[str, int] = {}
    for key in ("sockets", "dies", "clusters", "cores", "threads"):
        if mnode.get_property(key) is not None:
            topology[key] = _u(mnode, key, "/qemu")
    cpus = _u(mnode, "cpus", "/qemu")
    machine = DescMachine(
        type=mtype, arch=arch, options=options, cpu_type=_string(mnode, "cpu-type"), cpus=cpus,
        max_cpus=_u(mnode, "max-cpus", "/qemu") if mnode.get_property("max-cpus") is not None else cpus,
        topology=topology, memory=_u(mnode, "memory-size", "/qemu"),
    )
    host_by_path, backends, inputs = _read_backend(backend)
    devices: list[DescDevice] = []
    # depth-first in node order (= creation order within a bus), parents before children
    stack: list[tuple[Node, str | None, str, int]] = [(c, None, "", 1) for c in reversed(list(root.live_children()))]
    while stack:
        node, parent_dev, parent_kind, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PlanError(f"{node.path}: nested deeper than {MAX_DEPTH}")
        if node is mnode or _string(node, "device_type") in ("cpu", "memory"):
            continue  # the machine node, CPUs and RAM: -machine, -cpu, -smp and -m say those
        driver, qemu_node = _driver(node)
        here = parent_dev
        kind = parent_kind
        if driver is not None:
            path = node.path
            props: dict[str, str] = {}
            for prop in node.live_props():
                if prop.name.startswith("qemu,") and prop.name not in ("qemu,driver",):
                    value = _string(node, prop.name)
                    if value is None and qemu_node:
                        continue  # QEMU's own qemu,* property (pseries' qemu,phb-enumerated), not dtvm's
                    if value is None:
                        raise PlanError(f"{path}: {prop.name}: expected one string")
                    props[prop.name[5:]] = value
            if not qemu_node:
                mac = node.get_property("local-mac-address")
                if mac is not None:
                    if len(mac.value) != 6:
                        raise PlanError(f"{path}: local-mac-address: expected 6 bytes")
                    props["mac"] = ":".join(f"{b:02x}" for b in mac.value)
            dev = DescDevice(path, driver, _address(node, parent_kind, path), props,
                             host_by_path.get(path, {}), parent_dev, qemu_node)
            devices.append(dev)
            if len(devices) > MAX_DEVICES:
                raise PlanError(f"more than {MAX_DEVICES} devices")
            here = path
            kind = "usb" if _is_usb(driver, node) else ""
        for child in reversed(list(node.live_children())):
            stack.append((child, here, kind, depth + 1))
    return Plan(machine, devices, backends, inputs)


def _is_usb(driver: str, node: Node) -> bool:
    """USB host controllers and hubs: their children are addressed by port (not AHCI!)."""
    return re.search(r"xhci|ehci|uhci|ohci", driver) is not None or driver == "usb-hub"


def _read_backend(
    backend: DeviceTree | None,
) -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], dict[str, str]], dict[str, str]]:
    host: dict[str, dict[str, str]] = {}
    backends: dict[tuple[str, str], dict[str, str]] = {}
    inputs: dict[str, str] = {}
    if backend is None:
        return host, backends, inputs
    for frag in backend.root.live_children():
        over = frag.get_child("__overlay__")
        target = _string(frag, "target-path")
        if over is None or target is None:
            continue
        props: dict[str, str] = {}
        for prop in over.live_props():
            if prop.name in ("qemu,hotplugged", "qemu,unplug-pending"):
                props[prop.name[5:]] = "on"  # flags: history of the device, it still exists
                continue
            if prop.name.startswith("qemu,"):
                value = _string(over, prop.name)
                if value is None:
                    raise PlanError(f"back-end overlay {frag.name}: {prop.name}: expected one string")
                props[prop.name[5:]] = value
        if props:
            host.setdefault(target, {}).update(props)
        cat = over.get_child("qemu-backends")
        if cat is None:
            continue
        for child in cat.live_children():
            if child.name == "inputs":
                for prop in child.live_props():
                    value = _string(child, prop.name)
                    if value is not None:
                        inputs[prop.name] = value
                continue
            compat = _string(child, "compatible") or ""
            kind = compat[5:] if compat.startswith("qemu,") else child.basename.rsplit("-", 1)[0]
            ident = _string(child, "id")
            if not ident:
                raise PlanError(f"back-end overlay /qemu-backends/{child.name}: no id")
            opts: dict[str, str] = {}
            for prop in child.live_props():
                if prop.name in ("compatible", "id"):
                    continue
                value = _string(child, prop.name)
                if value is not None:
                    opts[prop.name] = value
            backends[(kind, ident)] = opts
    return host, backends, inputs
