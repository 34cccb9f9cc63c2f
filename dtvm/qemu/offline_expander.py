"""PCI expanders (pxb, pxb-pcie) offline: what QEMU 7.2 builds for them beyond their profile.

An expander's profile (recorded by scripts/gen_offline_models.py on the root bus, the pxb-host
QEMU makes for it folded in: dtvm/vm/data/devices.yaml ``made-by-other``) holds its new root bus
and, for a pxb, the pci-bridge it makes there.  What follows from the user's options is set here:
the made bridge's chassis number, the names QEMU gives those buses, and QEMU's refusal of anything
but a bridge on an expander's root bus (where it also puts a PCI device given without ``bus=``).
"""

from __future__ import annotations

from dtvm.qemu.assign import EXPANDER_BUSES
from dtvm.qemu.models import OfflineError
from dtvm.vm.buses import device_facts
from dtvm.vm.model import Bus, Device

__all__ = ["EXPANDER_BUS_NAMES", "bridges_only", "own_child_follows"]


def bridges_only(bus: Bus, dev: Device, where: str, named: bool) -> None:
    """QEMU 7.2 takes only bridges on an expander's root bus: its words for anything else."""
    if bus.type in EXPANDER_BUSES and dev.pci_class != "PCI bridge" and bus.parent is not None:
        raise OfflineError(f"{where}: QEMU 7.2 refuses it on {bus.parent.driver}'s root bus"
                           f"{'' if named else ' (where it puts a PCI device given without bus=)'}: "
                           f"'PCI: Only PCI/PCIe bridges can be plugged into {bus.parent.driver}'")


def own_child_follows(dev: Device, defaults: dict[str, dict[str, str]], where: str) -> None:
    """The child a device makes itself takes these properties from it (``own-child-follows`` in
    dtvm/vm/data/devices.yaml: a pxb's pci-bridge has the pxb's bus_nr as its chassis_nr); the
    profile was recorded with one value."""
    rules = (device_facts().get("own-child-follows") or {}).get(dev.driver) or {}
    for child in (c for b in dev.buses for c in b.devices if c.driver in rules):
        for prop, source in rules[child.driver].items():
            value = dev.props.get(source, defaults.get(dev.driver, {}).get(source, ""))
            if prop == "chassis_nr" and value in ("", "0"):
                raise OfflineError(f"{where}: QEMU 7.2: 'Bridge chassis not specified. Each bridge is required to be "
                                   f"assigned a unique chassis id > 0.' (the {child.driver} it makes takes {source})")
            child.props[prop] = value


#: the name QEMU 7.2 gives a pxb's root bus (hw/pci-bridge/pci_expander_bridge.c): the same for
#: every pxb; the devices behind it sit on the bridge the pxb makes there, whose bus has the pxb's id
EXPANDER_BUS_NAMES = {"pxb-bus": "pxb-internal"}
