"""Offline: the devices the user adds on a PC's legacy buses beside ISA: a floppy drive on an
isa-fdc of the command line, a device on the I2C bus of the machine's SMBus controller.

Each is at a place its type or its bus decides (a floppy controller has two units, the lowest
free first, as QEMU's floppy_drive_realize takes them; an I2C device at its type's default
address, recorded in its profile); what the user would move is refused by name.
"""

from __future__ import annotations

from typing import Any

from dtvm.qemu.models import OfflineError
from dtvm.qemu.offline_argv import Args
from dtvm.vm.model import Bus, Config

__all__ = ["FLOPPY", "I2C", "drop_default_floppy", "floppy_place", "i2c_place"]

#: the profiles' kinds (the recorder's KIND of "floppy-bus" and "i2c-bus")
FLOPPY = "floppy"
I2C = "i2c"


def _buses(config: Config, bus_type: str) -> list[Bus]:
    return [b for d in config.devices() for b in d.buses if b.type == bus_type]


def floppy_place(config: Config, buses: dict[str, list[Bus]], user: dict[str, str],
                 where: str) -> tuple[Bus, tuple[str, tuple[int, ...]]]:
    """An empty floppy drive (no drive=: QEMU gives it the 2.88 MB type its profile holds) on the
    floppy bus given, else the machine's only one, at the unit given or the lowest free."""
    if "drive" in user:
        raise OfflineError(f"{where}: a -device floppy with drive= is not in the offline model (use -drive if=floppy "
                           "or online mode)")
    name = user.get("bus")
    found = buses.get(name, []) if name is not None else _buses(config, "floppy-bus")
    if len(found) != 1 or found[0].type != "floppy-bus":
        raise OfflineError(f"{where}: give bus=ID.0 of an isa-fdc (one floppy bus) in the offline model")
    used = {d.address[1][0] for d in found[0].devices if d.address[0] == "floppy"}
    unit = int(user["unit"], 0) if "unit" in user else min({0, 1} - used, default=2)
    if unit in used or unit not in (0, 1):
        raise OfflineError(f"{where}: unit {unit} of {found[0].name} is taken or does not exist (an isa-fdc has two)")
    return found[0], ("floppy", (unit,))


def i2c_place(config: Config, profile: dict[str, Any], user: dict[str, str],
              where: str) -> tuple[Bus, tuple[str, tuple[int, ...]]]:
    """The machine's one I2C bus, at the type's default address (its profile's)."""
    found = _buses(config, "i2c-bus")
    moved = sorted(set(user) & {"bus", "address"})
    if len(found) != 1 or moved:
        raise OfflineError(f"{where}: {moved[0] + '=' if moved else 'a machine without one I2C bus'}: "
                           "not in the offline model (use online mode)")
    kind, values = profile["device"]["address"]
    address = (str(kind), tuple(int(v) for v in values))
    if any(d.address == address for d in found[0].devices):
        raise OfflineError(f"{where}: I2C address {address[1][0]} of {found[0].name} is taken")
    return found[0], address


def drop_default_floppy(config: Config, args: Args) -> None:
    """A -device isa-fdc or floppy turns the default floppy drive off (vl.c's default_list), so
    the machine's isa-fdc (pc's) has no floppy device for an empty floppy0 then."""
    if args.floppies:
        raise OfflineError("-drive if=floppy beside -device isa-fdc/floppy: not in the offline model (use online mode)")
    for bus in _buses(config, "floppy-bus"):
        bus.devices = [d for d in bus.devices if d.backends.get("drive") != "floppy0"]
