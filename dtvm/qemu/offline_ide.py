"""Offline: the disks the machine's own IDE takes and what QEMU derives for a disk.

The machine attaches ``-cdrom``/``-hda``.. itself and adds the default CD-ROM drive where vl.c's
default-drive rule leaves room for it; a disk's geometry and its IDE serial are what QEMU computes
from the image and the disk's position.  Kept apart from ``offline.py``, which composes the rest.
"""

from __future__ import annotations

import re
from typing import Any

from dtvm.qemu.models import OfflineError, config_from_dict, device_from_dict
from dtvm.qemu.offline_argv import Args, Drive, image_size, probed_format
from dtvm.vm.model import Backend, Bus, Config, Device

__all__ = ["all_buses", "disk_facts", "drop_default_cdrom", "ide_place", "ide_serials", "legacy_ide"]


def all_buses(config: Config) -> list[Bus]:
    out = [config.root]
    for dev in config.devices():
        out.extend(dev.buses)
    return out


def geometry(size: int) -> tuple[int, int, int]:
    """QEMU's guess for a disk without a partition table (hd-geometry.c guess_chs_for_size)."""
    cyls = (size // 512) // (16 * 63)
    return max(2, min(cyls, 16383)), 16, 63


def disk_facts(targets: list[Device], drive: Drive, dev: Device, profile: dict[str, Any]) -> None:
    """What the guest sees of the drive behind a disk: its geometry, and what QEMU derives from
    the drive's name and position (scsi device_id, IDE serial)."""
    cyls, heads, secs = geometry(drive.size)
    disk = next((t for t in reversed(targets) if "cyls" in t.props), None)
    if disk is None:
        return
    disk.props.update(cyls=str(cyls), heads=str(heads), secs=str(secs))
    disk.backends["drive"] = drive.name
    if disk.driver == "ide-hd":
        disk.props["bios-chs-trans"] = "none" if cyls <= 1024 else "lba"
        if "serial" not in disk.props or disk.props["serial"].startswith("QM"):
            bus_index, unit = dev.address[1]
            disk.props["serial"] = f"QM{2 * bus_index + unit + 1:05d}"
    if disk.driver == "scsi-hd":
        if drive.blk_name:
            disk.props["device_id"] = drive.blk_name
        else:
            disk.props.pop("device_id", None)


def ide_place(config: Config, buses: dict[str, list[Bus]], user: dict[str, str], where: str) -> tuple[Bus, tuple[str, tuple[int, ...]]]:
    """IDE: the bus given (ide.N), the unit given or the lowest free (AHCI ports have one)."""
    name = user.get("bus")
    named = buses.get(name or "", [])
    if name is None or len(named) != 1 or named[0].type != "IDE":
        raise OfflineError(f"{where}: give bus=ide.N (an IDE bus of this machine) in the offline model")
    bus = named[0]
    units = 1 if bus.parent is not None and "ahci" in bus.parent.driver else 2
    used = {d.address[1][1] for d in bus.devices if d.address[0] == "ide"}
    if "unit" in user:
        unit = int(user["unit"], 0)
        if unit in used or unit >= units:
            raise OfflineError(f"{where}: unit {unit} on {name} is taken or does not exist")
    else:
        free = [u for u in range(units) if u not in used]
        if not free:
            raise OfflineError(f"{where}: {name} is full")
        unit = free[0]
    index = bus.index
    return bus, ("ide", (index, unit))


def drop_default_cdrom(config: Config, only: str | None = None) -> None:
    """The default CD-ROM (an ide-cd on its default drive ideN-cd0) and that drive, also where
    the machine made no device for the drive (q35 with ``sata=off``; riscv64 virt, whose
    default drive is ``none2``: vl.c adds it at index 2 of the machine's default interface, so a
    third -drive if=none, which takes unit 2, leaves it out too: ``only`` names that drive)."""
    config.backends = [b for b in config.backends
                       if not (b.kind == "drive" and re.fullmatch(only or r"ide\d-cd\d|scsi\d-cd\d|none2", b.id)
                               and "file" not in b.options)]
    for bus in [] if only else all_buses(config):
        for dev in list(bus.devices):
            ref = dev.backends.get("drive", "")
            if dev.driver == "ide-cd" and re.fullmatch(r"ide\d-cd\d", ref):
                bus.devices.remove(dev)
                config.backends = [b for b in config.backends if not (b.kind == "drive" and b.id == ref)]


def ide_serials(config: Config, explicit: dict[int, set[str]]) -> None:
    """IDE default serials (``QM<n>``) come from one counter over every IDE bus in creation order (two
    per bus, hw/ide/core.c ide_init1): the machine's buses first, then those of the controllers
    the command line adds, in its order (``explicit`` holds its devices in that order): a second
    AHCI's ports continue after the machine's, an isa-ide's bus after piix's and AHCI's although
    the ISA bridge comes first in the tree."""
    made = {dev: n for n, dev in enumerate(explicit)}

    def created(bus: Bus) -> tuple[int, int]:
        owner = bus.parent
        while owner is not None and id(owner) not in made:
            owner = owner.parent.parent if owner.parent is not None else None
        return (1, made[id(owner)]) if owner is not None else (0, 0)

    ordinal = 0
    for bus in sorted((b for b in all_buses(config) if b.type == "IDE"), key=created):
        for dev in bus.devices:
            serial = dev.props.get("serial", "")
            if dev.driver in ("ide-hd", "ide-cd") and serial.startswith("QM") and "serial" not in explicit.get(id(dev), ()):
                dev.props["serial"] = f"QM{2 * ordinal + dev.address[1][-1] + 1:05d}"
        ordinal += 1


def legacy_ide(config: Config, model: dict[str, Any], args: Args) -> dict[str, str]:
    """-cdrom and -hda: IDE drives the machine itself attaches (index 2 and 0), defaults or not.
    Returns the names of their BlockBackends ("cdrom", "hd:N": the name)."""
    names: dict[str, str] = {}
    buses = {b.name: b for b in all_buses(config)}
    if args.cdrom is not None:
        cd_fmt = probed_format(args.cdrom, "-cdrom")  # QEMU probes it
        image_size(args.cdrom, "-cdrom", cd_fmt)  # refuses what QEMU would read otherwise (a partition table)
        default = config_from_dict(model["variants"]["defaults"])
        cd = next((d for d in default.devices() if d.driver == "ide-cd"), None)
        if cd is None or cd.parent is None or cd.parent.name not in buses:
            raise OfflineError("-cdrom: this machine has no default CD-ROM slot in the offline model (use online mode)")
        bus = buses[cd.parent.name]
        if not any(d.driver == "ide-cd" and d.address == cd.address for d in bus.devices):
            cd.parent = bus
            bus.devices.append(cd)
        ref = cd.backends.get("drive", "")
        config.backends = [b for b in config.backends if not (b.kind == "drive" and b.id == ref)]
        config.backends.append(Backend("drive", ref, {"file": args.cdrom, "drv": cd_fmt, "ro": "on", "removable": "on"}))
        names["cdrom"] = ref
    if 2 in args.hd:
        drop_default_cdrom(config)  # vl.c makes the default CD-ROM only where index 2 is free
    for index, image in sorted(args.hd.items()):
        what = args.hd_what.get(index, f"-hd{'abcd'[index % 4]}")
        is_cd = index in args.hd_cdrom
        profile = model["profiles"].get("ide-cd@IDE" if is_cd else "ide-hd@IDE")
        ahci = any(d.driver == "ich9-ahci" for d in config.devices())
        bus_no, unit = (index, 0) if ahci else divmod(index, 2)
        target = buses.get(f"ide.{bus_no}")
        if profile is None or target is None:
            raise OfflineError(f"{what}: no IDE disk slot for it in the offline model of this machine (use online mode)")
        if any(d.address == ("ide", (target.index, unit)) for d in target.devices):
            raise OfflineError(f"{what}: IDE bus {bus_no} unit {unit} is taken (the CD-ROM?)")
        kind = "cd" if is_cd else "hd"
        name = f"ide{index}-{kind}0" if ahci else f"ide{bus_no}-{kind}{unit}"
        fmt = probed_format(image, what)  # QEMU probes the format of -hdX
        drive = Drive(name, image_size(image, what, fmt), image, fmt, is_cd, name)
        dev = device_from_dict(profile["device"], target)
        dev.address = ("ide", (target.index, unit))
        if is_cd:
            dev.backends["drive"] = name
        else:
            disk_facts([dev], drive, dev, profile)
        target.devices.append(dev)
        config.backends.append(Backend("drive", name, {"file": image, "drv": fmt, "ro": "on" if is_cd else "off",
                                                       "removable": "on" if is_cd else "off"}))
        names[f"hd:{index}"] = name
    return names
