"""A description read back into the qdev Config: ``translate`` in reverse, trusting nothing.

The guest DTB and the overlay may come from anyone.  A node describes a qdev device exactly when
it has ``qemu,driver``; its bus address is decoded (``codec``) by the form of the bus its parent
controller gives (``buses``); its ``qemu,*`` strings are its properties; the overlay's facts for
its path (id, back-end references, hot-plug history) are host facts.  Everything else stays
data.  Nothing here builds a command line or judges what may reach QEMU: ``qemu.argv`` does.
"""

from __future__ import annotations

from dtvm.dt.tree import DeviceTree, Node
from dtvm.errors import DtvmError
from dtvm.vm import codec
from dtvm.vm.buses import bus_table
from dtvm.vm.model import Bus, Config, Device

__all__ = ["MAX_DEPTH", "MAX_DEVICES", "ReadbackError", "read_config"]

MAX_DEVICES = 20_000
MAX_DEPTH = 64


class ReadbackError(DtvmError):
    """A description that cannot be read back (names the node)."""

    exit_code = 2


def _driver(node: Node) -> tuple[str | None, bool]:
    """The node's qdev driver, and whether the node is QEMU's own (from its DT) rather than one
    dtvm added (those have ``qemu,<driver>`` as their first compatible)."""
    driver = codec.read_string(node, "qemu,driver")
    if not driver:
        return None, False
    first = ""
    compat = node.get_property("compatible")
    if compat is not None:
        try:
            first = compat.as_strings()[0]
        except Exception:
            first = ""
    return driver, first != f"qemu,{driver}"


def _props(node: Node, in_dt: bool, path: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for prop in node.live_props():
        if prop.name.startswith("qemu,") and prop.name != "qemu,driver":
            value = codec.read_string(node, prop.name)
            if value is None and in_dt:
                continue  # QEMU's own qemu,* property (pseries' qemu,phb-enumerated), not dtvm's
            if value is None:
                raise ReadbackError(f"{path}: {prop.name}: expected one string")
            props[prop.name[5:]] = value
    if not in_dt:
        mac = node.get_property("local-mac-address")
        if mac is not None:
            if len(mac.value) != 6:
                raise ReadbackError(f"{path}: local-mac-address: expected 6 bytes")
            props["mac"] = ":".join(f"{b:02x}" for b in mac.value)
    return props


def _host(dev: Device, facts: dict[str, str]) -> None:
    for key, value in facts.items():
        if key == "id":
            dev.qdev_id = value
        elif key == "hotplugged":
            dev.hotplugged = True
        elif key == "unplug-pending":
            dev.unplug_pending = True
        else:
            dev.backends[key] = value


def read_config(guest: DeviceTree, overlay: DeviceTree | None = None) -> Config:
    """The device model a description states; CodecError/ReadbackError naming the node otherwise.

    Devices are nested as their nodes are (a device's children sit on one bus of it), in node
    order, which is creation order within a bus.
    """
    try:
        machine = codec.decode_machine(guest.root)
        host = codec.decode_overlay(overlay)
    except codec.CodecError as exc:
        raise ReadbackError(str(exc)) from None
    table = bus_table()
    root = Bus("main-system-bus", "System")
    config = Config(machine, root, backends=list(host.backends), inputs=dict(host.inputs),
                    qemu_version=host.qemu_version)
    count = 0
    mnode = guest.root.get_child(codec.MACHINE_NODE)
    # (node, the bus its devices go on, the bus kind that bus is, depth)
    stack: list[tuple[Node, Bus, str | None, int]] = [(c, root, None, 1) for c in reversed(list(guest.root.live_children()))]
    while stack:
        node, bus, kind, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ReadbackError(f"{node.path}: nested deeper than {MAX_DEPTH}")
        if node is mnode or codec.read_string(node, "device_type") in ("cpu", "memory"):
            continue  # the machine node, CPUs and RAM: -machine, -cpu, -smp and -m say those
        driver, in_dt = _driver(node)
        here, here_kind = bus, kind
        if driver is not None:
            path = node.path
            dev = Device(driver, codec.decode_address(node, kind), _props(node, in_dt, path), parent=bus,
                         node=path, in_dt=in_dt)
            _host(dev, host.targets.get(path, {}))
            bus.devices.append(dev)
            count += 1
            if count > MAX_DEVICES:
                raise ReadbackError(f"more than {MAX_DEVICES} devices")
            here_kind = table.gives(driver)
            here = Bus(here_kind or "", here_kind or "", parent=dev)
            dev.buses.append(here)
        for child in reversed(list(node.live_children())):
            stack.append((child, here, here_kind, depth + 1))
    return config
