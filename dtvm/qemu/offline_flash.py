"""Firmware in flash, offline: ``-drive if=pflash`` and ``-machine pflashN=NODE``.

The flash devices are the machine's own (data/devices.yaml ``machine-drives``): pc makes one per
drive, as large as its image and stacked down from 4 GiB (pc_sysfw.c pc_system_flash_map: flash0
on top, 4 KiB sectors, width 1, the images together no larger than ``max-fw-size``); virt makes
both whatever the command line says, and a drive only fills one (its image exactly the flash's
size). The drive's name goes to the description's inputs (``pflashN``), as QEMU's machine
property reports it; the device's drive link to the overlay, as for any drive.
"""

from __future__ import annotations

from dtvm.qemu.models import OfflineError
from dtvm.qemu.offline_argv import Args
from dtvm.vm.buses import device_facts
from dtvm.vm.model import Config, Device

__all__ = ["attach_flash"]

_SECTOR = 4096  # pc_sysfw.c FLASH_SECTOR_SIZE
_TOP = 1 << 32


def attach_flash(config: Config, args: Args, x86: bool, attached: dict[str, Device]) -> None:
    """The flash devices of the drives given, or refused as QEMU refuses them."""
    if not args.pflash:
        return
    names: dict[str, int] = device_facts()["machine-drives"]["cfi.pflash01"]
    if x86:
        _pc_flash(config, args, names, attached)
        return
    for unit, drive in sorted(args.pflash.items()):
        where = f"pflash{unit} ({drive.file})"
        dev = next((d for d in config.root.devices if d.driver == "cfi.pflash01"
                    and names.get(d.props.get("name", "")) == unit), None)
        if dev is None:
            raise OfflineError(f"{where}: no flash unit {unit} in the offline model of {config.machine.type} (use online mode)")
        size = int(dev.props.get("num-blocks", "0"), 0) * int(dev.props.get("sector-length", "0"), 0)
        if drive.size != size:
            raise OfflineError(f"{where}: the image has {drive.size} bytes, the flash {size} (QEMU refuses it)")
        dev.backends["drive"] = drive.name
        attached[drive.name] = dev
        config.inputs[f"pflash{unit}"] = drive.name


def _pc_flash(config: Config, args: Args, names: dict[str, int], attached: dict[str, Device]) -> None:
    if 1 in args.pflash and 0 not in args.pflash:
        raise OfflineError("pflash1 requires pflash0 (QEMU refuses it)")
    limit = int(config.machine.options.get("max-fw-size", str(8 << 20)), 0)
    total = 0
    for unit, drive in sorted(args.pflash.items()):
        where = f"pflash{unit} ({drive.file})"
        if drive.size <= 0 or drive.size % _SECTOR:
            raise OfflineError(f"{where}: the image's size must be a multiple of {_SECTOR} bytes (QEMU refuses it)")
        total += drive.size
        if total > limit:
            raise OfflineError(f"{where}: the firmware images together exceed max-fw-size ({limit} bytes; QEMU refuses it)")
        base = _TOP - total
        name = next(n for n, u in names.items() if u == unit and n.startswith("system."))
        dev = Device("cfi.pflash01", ("mmio", (base,)),
                     {"name": name, "num-blocks": str(drive.size // _SECTOR), "sector-length": str(_SECTOR), "width": "1"},
                     {"drive": drive.name}, mmio=[(base, drive.size)], parent=config.root)
        config.root.devices.append(dev)
        attached[drive.name] = dev
        config.inputs[f"pflash{unit}"] = drive.name
