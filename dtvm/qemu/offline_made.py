"""Offline: a -device's link to another device given with -device (devices.yaml ``device-links``:
a vmmouse's i8042), worded as the online reader words it.

Online (config._read_device_links) describes such a link as the position of its target among the
devices of the target's type on the linking device's bus (``0`` the first: the machine's own
i8042 on a PC); offline the target is the user's device of that id, already placed (QEMU resolves
the link when the -device is parsed, so the target comes first), and its position is counted the
same way.  A target the machine made, one of another type or on another bus is refused by name, as
online refuses it.
"""

from __future__ import annotations

from dtvm.qemu.models import OfflineError
from dtvm.vm.buses import device_facts
from dtvm.vm.model import Bus, Config, Device

__all__ = ["check_device_links", "device_link_names", "device_link_value"]

#: the machine-made device a linking type's realize looks for (QEMU 7.2's vmmouse_realizefn:
#: "vmmouse needs a machine with vmport"; a PC makes none with vmport=off or i8042=off), and QEMU's words
_NEEDS = {"vmmouse": ("vmport", "vmmouse needs a machine with vmport")}
#: the vIOMMUs of a PC, of which QEMU 7.2 plugs one (pc.c's pre-plug handlers, measured in either
#: order: "QEMU does not support multiple vIOMMUs for x86 yet.")
_X86_VIOMMUS = frozenset({"intel-iommu", "virtio-iommu-pci"})


def device_link_names(driver: str) -> dict[str, str]:
    """The links a type's -device takes to another device: {property: target type}."""
    return dict((device_facts().get("device-links") or {}).get(driver) or {})


def check_device_links(config: Config, driver: str, user: dict[str, str], where: str) -> None:
    """A linking -device QEMU refuses: without its links (QEMU: "'i8042' link is not set"), or
    on a machine without the device its realize needs."""
    for name in sorted(device_link_names(driver)):
        if name not in user:
            raise OfflineError(f"{where}: no {name}= (QEMU refuses it: its {name!r} link is not set)")
    if driver in _X86_VIOMMUS and config.machine.arch == "x86_64" and \
            any(d.driver in _X86_VIOMMUS for d in config.devices()):
        raise OfflineError(f"{where}: QEMU does not support multiple vIOMMUs for x86 yet (QEMU refuses it)")
    need = _NEEDS.get(driver)
    if need is not None and not any(d.driver == need[0] for d in config.devices()):
        raise OfflineError(f"{where}: {need[1]} (QEMU refuses it)")


def device_link_value(bus: Bus, driver: str, name: str, target_id: str, ids: dict[str, Device], where: str) -> str:
    """The described value of ``name=target_id`` on a device of ``driver`` placed on ``bus``."""
    target_type = device_link_names(driver)[name]
    target = ids.get(target_id)
    if target is None or target.driver != target_type or target.parent is not bus:
        raise OfflineError(f"{where}: {name}={target_id}: not a {target_type} given with -device on its bus, which "
                           "alone a -device can name (dtvm cannot describe it)")
    mates = [d for d in bus.devices if d.driver == target_type]
    return str(mates.index(target))
