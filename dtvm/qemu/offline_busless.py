"""Offline: the devices ``-device`` makes on no bus (vmcoreinfo, vmgenid, nvme-subsys, the clock
models npcm7xx-clock-* and bcm2835-cprman-*).

``info qtree`` never shows them; the online reader takes them from QOM (``config._busless``) and
describes each as a device of the machine's root, numbered per type in the order QMP lists the
peripherals.  Their profiles are recorded from QEMU like any other (``System`` context of
``scripts/gen_offline_models.py``); what offline adds is the place and the values QEMU draws.
"""

from __future__ import annotations

from typing import Any

from dtvm.qemu.models import OfflineError
from dtvm.vm.model import Bus, Config

__all__ = ["BUSLESS", "busless_place", "busless_values"]

#: the profiles' kind of a device on no bus (the recorder's KIND of the root bus, "System")
BUSLESS = "busless"


def busless_place(config: Config, driver: str, where: str) -> tuple[Bus, tuple[str, tuple[int, ...]]]:
    """The machine's root, numbered 0.  A second of the same type is refused: QEMU refuses a
    second vmcoreinfo or vmgenid ("at most one ... is permitted"), and where it takes more
    (nvme-subsys) their numbers follow QMP's listing (ids by name before the id-less), which the
    offline model does not hold."""
    if any(d.driver == driver for d in config.root.devices):
        raise OfflineError(f"{where}: a second {driver} on no bus is not in the offline model (use online mode)")
    return config.root, ("nth", (0,))


def busless_values(driver: str, user: dict[str, str], props: dict[str, str], profile: dict[str, Any],
                   where: str) -> None:
    """What QEMU draws for the device when it realizes it, as online reads it back from QOM:
    vmgenid's ``guid=auto`` (its default) is a fresh random GUID each start, which no offline
    answer can be; a GUID the user gives is reported as QEMU prints a UUID (lower case)."""
    defaults = profile["defaults"].get(driver, {})
    if driver == "vmgenid":
        given = user.get("guid", defaults.get("guid", "auto"))
        if given.lower() == "auto":
            raise OfflineError(f"{where}: without guid= QEMU draws a random GUID each start (give guid=UUID; "
                               "use online mode)")
        props["guid"] = given.lower()
