"""Offline: pc-dimm and virtio-mem-pci, where QEMU 7.2 plugs them in the machine's device-memory region.

A pc-dimm is on no bus (offline_busless.py places it); what QEMU works out for it is its slot
(the first free of ``-m slots=``) and its guest-physical ``addr`` (memory_device_get_free_addr:
the first gap of the region, from its base, aligned to its RAM back-end's alignment, 2 MiB for
anonymous RAM on this host), both described online; a virtio-mem-pci's ``memaddr`` (its virtio-mem's) is placed the same,
in the same region, without a slot (aligned to its block size: the host's THP size, 2 MiB here);
a virtio-mem on a virtio-mmio transport takes none of it (its memaddr stays 0, measured).  The region's base on q35 and pc is the
first GiB boundary at or above the end of RAM above 4 GiB (pc_memory_init).  Measured: two dimms
of 128 MiB and 64 MiB at 4 GiB and 4 GiB + 128 MiB, slots 0 and 1.  What it does not model (an
``addr=``/``slot=``/``node=`` of the user's, another machine's region, a size not whole 2 MiB)
is refused by name.
"""

from __future__ import annotations

from dtvm.qemu.models import OfflineError
from dtvm.qemu.offline_memhp import MemoryOption, size_bytes
from dtvm.qemu.trust import trust
from dtvm.vm.model import Config, Device

__all__ = ["check_memory_options", "place_memory_devices", "requested_sizes"]

DIMM = "pc-dimm"
VIRTIO_MEM_PCI = "virtio-mem-pci"
VIRTIO_MEM = "virtio-mem"  # on a virtio-mmio transport, or the child of a virtio-mem-pci
GiB = 1 << 30
_ALIGN = 2 << 20  # QEMU_VMALLOC_ALIGN: the alignment of an anonymous RAM block on x86_64/aarch64 hosts
_MACHINES = ("q35-pcihost", "i440FX-pcihost")


def check_memory_options(driver: str, user: dict[str, str], where: str) -> None:
    """A memory device's own options the model takes: memdev (and id, a virtio-mem-pci's PCI
    place, virtio-mem's requested-size); QEMU's choice of the rest."""
    if driver not in (DIMM, VIRTIO_MEM_PCI, VIRTIO_MEM):
        return
    allowed = {"memdev", "id", "driver"} | {VIRTIO_MEM_PCI: {"bus", "addr", "requested-size"},
                                            VIRTIO_MEM: {"bus", "requested-size"}}.get(driver, set())
    extra = sorted(set(user) - allowed)
    if extra:
        raise OfflineError(f"{where}: {extra[0]}=: not in the offline model of {driver} (use online mode)")


def place_memory_devices(config: Config, made: list[Device], option: MemoryOption | None) -> None:
    """Each pc-dimm's slot and addr and each virtio-mem-pci's memaddr, in the order they were made
    (``made``: the command line's); OfflineError as QEMU refuses (no hot-plug memory, no free
    slot, not enough space) or naming what is not modelled."""
    # a virtio-mem on virtio-mmio is no memory device of the machine in 7.2 (measured: its
    # memaddr stays 0, none of the region taken, with or without -m slots=): its profile's values stand
    devices = [d for d in made if d.driver in (DIMM, VIRTIO_MEM_PCI)]
    if not devices:
        return
    where = f"-device {devices[0].driver}"
    if option is None or option.slots is None or option.maxmem is None:
        raise OfflineError(f"{where}: no -m slots=,maxmem=: QEMU refuses a memory device without them")
    base = _region_base(config, where)
    rule = trust().guest_link(DIMM, "link<memory-backend>")
    if rule is None:
        raise OfflineError(f"{where}: the trust model describes no memdev (use online mode)")
    used, at, slot = 0, base, 0
    for dev in devices:
        where = f"-device {dev.driver}"
        _, options = rule.parse(dev.props.get("memdev", ""), where)
        size = int(dict(options).get("size", "0"))
        if size <= 0 or size % _ALIGN:
            raise OfflineError(f"{where}: a back-end of {size} bytes: only whole 2 MiB are in the offline model "
                               "(use online mode)")
        if used + size > option.maxmem - config.machine.memory:
            raise OfflineError(f"{where}: not enough space below -m maxmem (QEMU refuses it)")
        at = -(-at // _ALIGN) * _ALIGN
        if dev.driver == DIMM:
            if slot >= option.slots:
                raise OfflineError(f"{where}: no free slot of the {option.slots} of -m (QEMU refuses it)")
            dev.props["addr"], dev.props["slot"] = str(at), str(slot)
            slot += 1
        else:
            child = next((c for b in dev.buses for c in b.devices if c.driver == VIRTIO_MEM), None)
            if child is None:
                raise OfflineError(f"{where}: its profile has no virtio-mem (use online mode)")
            child.props["memaddr"] = str(at)
        at, used = at + size, used + size


def _region_base(config: Config, where: str) -> int:
    """Where the device-memory region starts: q35/pc at the first GiB boundary at or above the
    end of RAM above 4 GiB (pc_memory_init), arm/aarch64 virt at the first after RAM's end (RAM
    from 1 GiB; virt_set_memmap)."""
    if config.machine.arch in ("aarch64", "arm") and config.machine.type.startswith("virt"):
        return -(-(GiB + config.machine.memory) // GiB) * GiB
    host = next((d for d in config.devices() if d.driver in _MACHINES), None)
    if host is None:
        raise OfflineError(f"{where}: the device-memory region of {config.machine.type} is not in the offline model "
                           "(use online mode)")
    above = int(host.props.get("above-4g-mem-size", "0"))
    return -(-(4 * GiB + above) // GiB) * GiB


def requested_sizes(config: Config) -> None:
    """Each virtio-mem's requested-size as online reads it (QOM's byte count, left out at 0, the
    default: devices.yaml qom-settings); OfflineError where QEMU 7.2 refuses it
    (virtio_mem_device_realize: not a multiple of the block size, 2 MiB for anonymous RAM on this
    host as ``_ALIGN``) or the size is not a plain one.  One past the memdev's size is taken as
    QEMU takes it at realize (measured: 1G on a 512M back-end is kept and read back as given)."""
    for dev in config.devices():
        raw = dev.props.get("requested-size")
        if dev.driver != VIRTIO_MEM or raw is None:
            continue
        proxy = dev.parent.parent if dev.parent is not None and dev.parent.parent is not None else dev
        where = f"-device {proxy.driver},requested-size={raw}"
        size = size_bytes(raw, where)
        if size % _ALIGN:
            raise OfflineError(f"{where}: not a multiple of the 2 MiB block size (QEMU refuses it)")
        if size:
            dev.props["requested-size"] = str(size)
        else:
            dev.props.pop("requested-size")
