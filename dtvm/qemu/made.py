"""The rebuild of devices that other devices make (dtvm/vm/data/devices.yaml): which children a
maker makes on its own buses (``makes-own-child``), the links to other devices a ``-device`` must
be given (``device-links``), and the check of the children a rebuilt maker made against the
described ones. :mod:`dtvm.qemu.argv` asks these while it builds the argv; the reading side (the
folding of made devices into their makers) is :mod:`dtvm.qemu.config`'s.
"""

from __future__ import annotations

from dtvm.errors import DtvmError
from dtvm.qemu.config import from_snapshot
from dtvm.qemu.snapshot import Snapshot
from dtvm.vm.buses import device_facts, device_links_of, link_mates
from dtvm.vm.model import Bus, Config, Device

__all__ = ["MadeError", "device_links", "link_targets_first", "own_child_bus", "own_children", "own_children_made"]


class MadeError(DtvmError):
    """A made device or a device link the rebuild cannot give: the message names the node."""


def _node_path(dev: Device) -> str:
    if dev.node is None:
        raise MadeError(f"{dev.key()}: a device without a description node")
    return dev.node


def own_children() -> dict[str, list[str]]:
    """Device type -> the device types it creates itself on its child bus (``makes-own-child`` in
    dtvm/vm/data/devices.yaml): described as nodes, rebuilt by the parent's ``-device``."""
    section = device_facts().get("makes-own-child", {})
    return {str(k): [str(x) for x in v] for k, v in section.items()} if isinstance(section, dict) else {}


def own_child_bus(driver: str) -> tuple[str, dict[str, list[int]]] | None:
    """The fixed name of the child bus a maker of ``driver`` makes, and the addresses of the
    children it makes there, by type (``own-child-buses`` in dtvm/vm/data/devices.yaml); None
    for a maker whose bus is named after its id."""
    entry = (device_facts().get("own-child-buses") or {}).get(driver)
    if not isinstance(entry, dict):
        return None
    made_at = {str(k): [int(a) for a in v] for k, v in (entry.get("made-at") or {}).items()}
    return str(entry["bus"]), made_at


def link_targets_first(devices: list[Device]) -> list[Device]:
    """The devices on no bus that a link may name (an IPMI BMC) before every other: QEMU resolves
    a link when it creates the linking device, and the description's walk may reach an interface
    first (pc's i440FX-pcihost node sorts before the BMC's)."""
    wanted = {t for d in devices for rule in device_links_of(d.driver).values() if rule.no_bus for t in rule.types}
    if not wanted:
        return devices
    return sorted(devices, key=lambda d: 0 if d.driver in wanted and d.parent is not None
                  and d.parent.parent is None else 1)


def device_links(dev: Device, ids: dict[str, str], made: set[str], where: str, root: Bus,
                 linked: dict[int, str] | None = None) -> list[tuple[str, str]]:
    """The links a -device must be given (a vmmouse's i8042, an IPMI interface's BMC): the id of
    the device at the described position among those the link may name, which must be given with
    -device before it (QEMU resolves the link when it creates the device). ``linked`` holds the
    devices on no bus already linked (QEMU links a BMC to one interface: "BMC object is already in
    use"), by the node that links each."""
    out: list[tuple[str, str]] = []
    for name, rule in sorted(device_links_of(dev.driver).items()):
        value = dev.props.get(name)
        among = "among those on no bus" if rule.no_bus else "among those on its bus"
        if value is None:
            raise MadeError(f"{where}: a {dev.driver} needs its {name}: qemu,{name} (the position of its "
                            f"{rule.describe()} {among}) is missing")
        mates = link_mates(dev, rule, root)
        # a position, from an untrusted tree: ASCII digits, bounded (int() refuses '²' and 5,000 digits)
        index = int(value) if value.isascii() and value.isdigit() and len(value) <= 6 else -1
        mate = mates[index] if 0 <= index < len(mates) else None
        if mate is None or mate.node not in ids:
            what = "no such device" if mate is None else "the machine's own, which no -device can name" \
                if mate.node in made else "given with -device after it"
            raise MadeError(f"{where}: qemu,{name} {value!r}: the {rule.describe()} it names is {what}")
        if rule.no_bus and linked is not None:
            if id(mate) in linked:
                raise MadeError(f"{where}: qemu,{name} {value!r}: the {mate.driver} it names is linked by "
                                f"{linked[id(mate)]} already (QEMU links it to one device)")
            linked[id(mate)] = where
        # by its absolute QOM path: a bare id is a partial path, which another object's child of
        # that name makes ambiguous (QEMU: "Path 'i8042' does not uniquely identify an object")
        out.append((name, f"/machine/peripheral/{ids[mate.node]}"))
    return out


def own_children_made(plan: Config, own_made: list[Device], snapshot: Snapshot) -> None:
    """The described children a maker makes itself against those the rebuilt maker made (QEMU's
    answer on the checked command line): a child it does not make, one it makes that is not
    described, or one with another property is refused by node, since the maker's -device cannot
    say it. A child that holds a back-end (usb-storage's disk) follows the drive, which the check
    replaces by a null one: its maker's rules say what it takes (``passed_to_child``)."""
    from dtvm.vm.translate import describe, driver_compat  # as argv.py: only when a rebuild is checked

    try:
        rebuilt = from_snapshot(snapshot)
    except DtvmError:
        return  # what the rebuilt VM reads as is qemu2dtb's to say, on the running VM
    nodes = describe(rebuilt, driver_compat()).nodes
    got = {nodes[d.key()]: d for d in rebuilt.devices() if d.key() in nodes}
    makers = {_node_path(p) for p in (d.parent_device for d in own_made) if p is not None}
    for dev in own_made:
        if dev.backends:
            continue
        where = _node_path(dev)
        other = got.get(where)
        if other is None or other.driver != dev.driver:
            raise MadeError(f"{where}: its {dev.parent_device.driver if dev.parent_device else 'maker'} makes "
                            f"no {dev.driver} here (QEMU made {other.driver if other else 'nothing'})")
        for key in sorted(set(dev.props) | set(other.props)):
            if dev.props.get(key) != other.props.get(key):
                raise MadeError(f"{where}: qemu,{key} {dev.props.get(key, '(the default)')!r}: its maker "
                                f"makes it with {other.props.get(key, '(the default)')!r}, and its -device "
                                "cannot say otherwise")
    described = {_node_path(d) for d in plan.devices() if d.node is not None}
    for path, other in sorted(got.items()):
        parent = other.parent_device
        if parent is not None and parent.key() in nodes and nodes[parent.key()] in makers and path not in described \
                and other.driver in own_children().get(parent.driver, ()):
            raise MadeError(f"{path}: the {parent.driver} makes a {other.driver} here that the description "
                            "does not list")
