"""Firmware in flash, offline: ``-drive if=pflash`` and ``-machine pflashN=NODE``.

The flash devices are the machine's own (data/devices.yaml ``machine-drives``): pc makes one per
drive, as large as its image and stacked down from 4 GiB (pc_sysfw.c pc_system_flash_map: flash0
on top, 4 KiB sectors, width 1, the images together no larger than ``max-fw-size``); virt makes
both whatever the command line says, and a drive only fills one (its image exactly the flash's
size). The drive's name goes to the description's inputs (``pflashN``), as QEMU's machine
property reports it; the device's drive link to the overlay, as for any drive.

On virt a firmware (a drive in pflash0, or ``-bios``) changes more than the flash: QEMU builds
other hardware when it loads one (hw/arm/virt.c ``firmware_loaded``: a 32-bit CPU's PCIe ECAM
below 4 GiB, an acpi-ged instead of the PL061 GPIO and gpio-keys with an AArch64 CPU and ACPI,
no PSCI with secure=on).  The models record it as one more DT-changing condition (``FIRMWARE``
in ``option-variants``, composed by offline_dt.py as the options are), from QEMU with a null drive
of the flash's size in pflash0, the drive left out of the recording (the user's drive is attached
here, as on a machine without that effect).
"""

from __future__ import annotations

from typing import Any

from dtvm.qemu.models import OfflineError
from dtvm.qemu.offline_argv import Args
from dtvm.vm.buses import device_facts
from dtvm.vm.model import Config, Device

__all__ = ["FIRMWARE", "RECORDED_FIRMWARE", "attach_flash", "firmware_options", "without_recorded_firmware"]

#: the name of the firmware condition among a DT machine's option variants
FIRMWARE = "firmware"
#: how the recorder loads firmware: a null drive of virt's flash size (64 MiB) in pflash0
_NODE = "dtvmfw"
RECORDED_FIRMWARE = ["-blockdev", f"driver=null-co,node-name={_NODE},size={64 << 20}", "-machine", f"pflash0={_NODE}"]

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


def firmware_options(args: Args, machine_type: str, model: dict[str, Any]) -> list[str]:
    """``[FIRMWARE]`` where the command line loads firmware on a machine whose hardware depends on
    it (data/machines.yaml ``firmware-shapes-devices``), for offline_dt to compose; OfflineError
    where the model has no recording of it (an older model file)."""
    from dtvm.qemu.config import firmware_shapes_devices

    loaded = 0 in args.pflash or "firmware" in args.inputs
    if not loaded or machine_type not in firmware_shapes_devices():
        return []
    if FIRMWARE not in (model.get("option-variants") or {}) or not isinstance(model.get("dt-smp"), dict):
        what = "pflash0" if 0 in args.pflash else "-bios"
        raise OfflineError(f"{what}: with firmware {machine_type} makes other hardware (ACPI devices, or a 32-bit CPU's "
                           "ECAM below 4 GiB); not in this offline model (use online mode)")
    return [FIRMWARE]


def without_recorded_firmware(variant: dict[str, Any]) -> dict[str, Any]:
    """A recording made with RECORDED_FIRMWARE as the machine without its drive: the flash keeps
    no drive, the description no ``pflash0`` input, the back-ends no null node (what
    attach_flash gives the user's drive back)."""
    variant["backends"] = [b for b in variant["backends"] if not (b["kind"] == "drive" and b["id"] == _NODE)]
    if variant["inputs"].get("pflash0") == _NODE:
        del variant["inputs"]["pflash0"]
    for dev in variant["root"]["devices"]:
        if dev["backends"].get("drive") == _NODE:
            del dev["backends"]["drive"]
    return variant


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
