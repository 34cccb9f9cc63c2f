"""Offline: a -device's link to another device given with -device (devices.yaml ``device-links``:
a vmmouse's i8042, an IPMI interface's BMC), worded as the online reader words it.

Online (config._read_device_links) describes such a link as the position of its target among the
devices of the target's type on the linking device's bus (``0`` the first: the machine's own
i8042 on a PC); offline the target is the user's device of that id, already placed (QEMU resolves
the link when the -device is parsed, so the target comes first), and its position is counted the
same way.  A target the machine made, one of another type or on another bus is refused by name, as
online refuses it.
"""

from __future__ import annotations

from dtvm.qemu.models import OfflineError
from dtvm.vm.buses import device_links_of, link_mates
from dtvm.vm.model import Bus, Config, Device

__all__ = ["Pending", "check_device_links", "device_link_names", "device_link_value", "resolve_device_links"]

#: the machine-made device a linking type's realize looks for (QEMU 7.2's vmmouse_realizefn:
#: "vmmouse needs a machine with vmport"; a PC makes none with vmport=off or i8042=off), and QEMU's words
_NEEDS = {"vmmouse": ("vmport", "vmmouse needs a machine with vmport")}
#: the vIOMMUs of a PC, of which QEMU 7.2 plugs one (pc.c's pre-plug handlers, measured in either
#: order: "QEMU does not support multiple vIOMMUs for x86 yet.")
_X86_VIOMMUS = frozenset({"intel-iommu", "virtio-iommu-pci"})


def device_link_names(driver: str) -> dict[str, str]:
    """The links a type's -device takes to another device: {property: the target type(s), in words}."""
    return {name: rule.describe() for name, rule in device_links_of(driver).items()}


def check_device_links(config: Config, driver: str, user: dict[str, str], where: str) -> None:
    """A linking -device QEMU refuses: without its links (QEMU: "'i8042' link is not set", "IPMI
    device requires a bmc attribute to be set"), or on a machine without the device its realize needs."""
    for name in sorted(device_link_names(driver)):
        if name not in user:
            raise OfflineError(f"{where}: no {name}= (QEMU refuses it: its {name!r} link is not set)")
    if driver in _X86_VIOMMUS and config.machine.arch == "x86_64" and \
            any(d.driver in _X86_VIOMMUS for d in config.devices()):
        raise OfflineError(f"{where}: QEMU does not support multiple vIOMMUs for x86 yet (QEMU refuses it)")
    need = _NEEDS.get(driver)
    if need is not None and not any(d.driver == need[0] for d in config.devices()):
        raise OfflineError(f"{where}: {need[1]} (QEMU refuses it)")


#: links to devices on no bus whose position is counted once every device is made (an IPMI
#: interface's BMC: the BMCs are numbered per type at the end, as online numbers them)
Pending = list[tuple[Device, str, Device]]


def device_link_value(bus: Bus, dev: Device, name: str, target_id: str, ids: dict[str, Device], where: str,
                      pending: Pending) -> str:
    """The described value of ``name=target_id`` on ``dev`` placed on ``bus`` (a link to a device
    on no bus: noted in ``pending``, counted by ``resolve_device_links``)."""
    rule = device_links_of(dev.driver)[name]
    ident = target_id.removeprefix("/machine/peripheral/") if rule.no_bus else target_id
    if rule.no_bus and target_id.startswith("/") and "/" in ident:
        # an anonymous device's QOM path counts every id-less -device QEMU made before (use online mode)
        raise OfflineError(f"{where}: {name}={target_id}: a QOM path other than /machine/peripheral/ID is not "
                           "in the offline model (use online mode)")
    target = ids.get(ident)
    if not rule.no_bus:
        if target is None or target.driver not in rule.types or target.parent is not bus:
            raise OfflineError(f"{where}: {name}={target_id}: not a {rule.describe()} given with -device on its bus, "
                               "which alone a -device can name (dtvm cannot describe it)")
        return str([d for d in bus.devices if d.driver in rule.types].index(target))
    if target is None or target.driver not in rule.types:
        raise OfflineError(f"{where}: {name}={target_id}: not a {rule.describe()} given with -device (QEMU refuses it)")
    if ident == name and not target_id.startswith("/") and any(n == name for _, n, _ in pending):
        # a bare id is a partial QOM path: an earlier interface's own bmc link matches it too
        raise OfflineError(f"{where}: {name}={target_id}: QEMU refuses it (\"Path '{ident}' does not uniquely identify "
                           "an object\": an earlier device's link has that name)")
    if any(t is target for _, _, t in pending):
        raise OfflineError(f"{where}: {name}={target_id}: that BMC is linked by an earlier device (QEMU refuses it: "
                           "\"BMC object is already in use\")")
    pending.append((dev, name, target))
    return ""


def resolve_device_links(config: Config, pending: Pending) -> None:
    """The positions of the links to devices on no bus, once they are numbered (number_busless)."""
    for dev, name, target in pending:
        dev.props[name] = str(link_mates(dev, device_links_of(dev.driver)[name], config.root).index(target))
