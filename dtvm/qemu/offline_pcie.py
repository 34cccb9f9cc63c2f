"""Offline: what QEMU refuses of PCI Express slots, so offline refuses it too.

Every PCIe slot (a root port, a switch's downstream port, their CXL kinds) registers its
``chassis``/``slot`` pair with QEMU's chassis list (hw/pci/pcie.c pcie_chassis_add_slot): a
second slot with the same pair fails realize ("Can't add chassis slot, error -16").  Two ports
given no chassis (both 0, slot 0) are the common case.  The types with both properties are the
slots (their profiles list them); the values are the device's or its type's defaults.
"""

from __future__ import annotations

from typing import Any

from dtvm.qemu.models import OfflineError
from dtvm.vm.model import Config

__all__ = ["check_pcie_slots"]


def check_pcie_slots(config: Config, profiles: dict[str, Any]) -> None:
    by_type = {key.split("@", 1)[0]: p for key, p in profiles.items()}
    taken: dict[tuple[str, str], str] = {}
    for dev in config.devices():
        profile = by_type.get(dev.driver)
        if profile is None or not {"chassis", "slot"} <= set(profile["props-of"].get(dev.driver, ())):
            continue
        defaults = profile["defaults"].get(dev.driver, {})
        pair = (dev.props.get("chassis", defaults.get("chassis", "0")), dev.props.get("slot", defaults.get("slot", "0")))
        if pair in taken:
            raise OfflineError(f"-device {dev.driver}: chassis {pair[0]} slot {pair[1]} is taken by {taken[pair]}: QEMU "
                               "refuses it (\"Can't add chassis slot, error -16\")")
        taken[pair] = dev.qdev_id or dev.driver
