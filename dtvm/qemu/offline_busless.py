"""Offline: the devices ``-device`` makes on no bus (vmcoreinfo, vmgenid, nvme-subsys, the clock
models npcm7xx-clock-* and bcm2835-cprman-*), and the system-bus devices the machine maps at
their own base (intel-iommu on q35: its profile's address).

``info qtree`` never shows them; the online reader takes them from QOM (``config._busless``) and
describes each as a device of the machine's root, numbered per type in the order QMP lists the
peripherals.  Their profiles are recorded from QEMU like any other (``System`` context of
``scripts/gen_offline_models.py``); what offline adds is the place and the values QEMU draws.
"""

from __future__ import annotations

import re
from typing import Any

from dtvm.qemu.models import OfflineError
from dtvm.vm.buses import device_facts
from dtvm.vm.model import Bus, Config, Device

__all__ = ["BUSLESS", "busless_place", "busless_values", "number_busless"]

#: the profiles' kind of a device on no bus (the recorder's KIND of the root bus, "System")
BUSLESS = "busless"


def busless_place(config: Config, driver: str, profile: dict[str, Any],
                  where: str) -> tuple[Bus, tuple[str, tuple[int, ...]]]:
    """The machine's root; numbered once every device is made (``number_busless``).  A second of
    a type QEMU takes once (vmcoreinfo, vmgenid: "at most one ... is permitted"; the profile's
    ``several``, recorded from QEMU) is refused, as QEMU refuses it."""
    if not profile.get("several") and any(d.driver == driver for d in config.root.devices):
        raise OfflineError(f"{where}: a second {driver}: QEMU makes one of this type (it refuses another)")
    kind, values = profile["device"]["address"]
    if kind == "mmio":  # a self-placed device (intel-iommu: q35 maps it at its own base)
        return config.root, (str(kind), tuple(int(v) for v in values))
    return config.root, ("nth", (0,))


def number_busless(config: Config, made: list[Device]) -> None:
    """``made`` (the devices on no bus, in creation order) numbered per type as the online reader
    numbers them: in the order QMP lists the peripherals (qmp.py: /machine/peripheral by id, in
    natural order, then /machine/peripheral-anon's device[N], N counting the id-less in creation
    order), after any the machine's root holds of that type."""
    ours = {id(d) for d in made}
    counts: dict[str, int] = {}
    for dev in config.root.devices:
        if id(dev) not in ours:
            counts[dev.driver] = counts.get(dev.driver, 0) + 1
    made = [d for d in made if d.address[0] == "nth"]  # (not a self-placed one, at its base)
    listed = sorted((d for d in made if d.qdev_id), key=lambda d: _natural(d.qdev_id or ""))
    for dev in [*listed, *(d for d in made if not d.qdev_id)]:
        dev.address = ("nth", (counts.get(dev.driver, 0),))
        counts[dev.driver] = counts.get(dev.driver, 0) + 1


def _natural(text: str) -> tuple[Any, ...]:
    """qmp.py's sort key of a QOM child's name (device[2] before device[10])."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def busless_values(driver: str, user: dict[str, str], props: dict[str, str], profile: dict[str, Any],
                   where: str) -> None:
    """What QEMU draws for the device when it realizes it, as online reads it back from QOM:
    vmgenid's ``guid=auto`` (its default) is a fresh random GUID each start, which no offline
    answer can be; a GUID the user gives is reported as QEMU prints a UUID (lower case). So is
    ipmi-bmc-sim's ``guid=auto`` (its unset GUID is zeros); and a property its realize sets
    whatever -device says (devices.yaml ``realize-sets``) reads as the realize left it."""
    defaults = profile["defaults"].get(driver, {})
    for name, value in ((device_facts().get("realize-sets") or {}).get(driver) or {}).items():
        if name not in user:
            continue
        if str(value) == defaults.get(name):  # QEMU's realize sets it whatever -device says
            props.pop(name, None)
        else:
            props[name] = str(value)
    if driver == "ipmi-bmc-sim" and "guid" in user:
        # no GUID is zeros (the type's: versions.json device-neutral); guid=auto a random one each start
        if user["guid"].lower() == "auto":
            raise OfflineError(f"{where}: guid=auto: QEMU draws a random GUID each start (give guid=UUID; "
                               "use online mode)")
        if set(user["guid"]) <= {"0", "-"}:
            props.pop("guid", None)
        else:
            props["guid"] = user["guid"].lower()
    if driver == "vmgenid":
        given = user.get("guid", defaults.get("guid", "auto"))
        if given.lower() == "auto":
            raise OfflineError(f"{where}: without guid= QEMU draws a random GUID each start (give guid=UUID; "
                               "use online mode)")
        props["guid"] = given.lower()
