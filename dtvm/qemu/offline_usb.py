"""Offline: the USB devices QEMU does not attach, and smart cards on a usb-ccid's card bus.

usb-redir claims its port (``usb_claim_port`` in realize: the next device takes the next port)
but is never attached before its chardev's peer offers a device (``auto_attach`` off), so ``info
qtree`` gives it no address: the online reader numbers it per type on its bus in creation order
(it turns the qtree's newest-first listing of a bus's children around).  The recorder's profile says so itself: it recorded such a device
without a USB address although its probe had free ports.  A ccid-card-* sits in the one slot of
the card bus its usb-ccid makes.
"""

from __future__ import annotations

from typing import Any

from dtvm.qemu.models import OfflineError
from dtvm.vm.model import Bus, Config, Device

__all__ = ["CCID", "ccid_place", "never_attached", "number_unattached"]

#: the profiles' kind of a smart card (its bus, "ccid-bus")
CCID = "ccid"


def never_attached(profile: dict[str, Any]) -> bool:
    """A USB device QEMU recorded unattached on a bus with free ports: it claims a port, no address."""
    return profile["kind"] == "usb" and profile["device"]["address"][0] == "nth"


def number_unattached(devices: list[Device]) -> None:
    """``devices`` (in creation order, each placed on the port it claimed) as the reader numbers
    them: per bus and type, in creation order."""
    counts: dict[tuple[int, str], int] = {}
    for dev in devices:
        key = (id(dev.parent), dev.driver)
        dev.address = ("nth", (counts.get(key, 0),))
        counts[key] = counts.get(key, 0) + 1


def ccid_place(config: Config, buses: dict[str, list[Bus]], user: dict[str, str],
               where: str) -> tuple[Bus, tuple[str, tuple[int, ...]]]:
    """The card bus given (bus=ID.0), else the only one of the machine; QEMU's usb-ccid has one slot."""
    name = user.get("bus")
    found = buses.get(name, []) if name is not None else \
        [b for d in config.devices() for b in d.buses if b.type == "ccid-bus"]
    if len(found) != 1 or found[0].type != "ccid-bus":
        raise OfflineError(f"{where}: give bus=ID.0 of a usb-ccid (one card bus) in the offline model")
    if found[0].devices:
        raise OfflineError(f"{where}: the card slot of {found[0].name} is taken (QEMU's usb-ccid has one)")
    return found[0], ("nth", (0,))
