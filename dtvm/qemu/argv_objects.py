"""What the rebuild adds for devices tied to more than a bus address: the ``-object`` a described
QOM link names, and the devices that place themselves.

Kept beside ``argv`` (which calls it) so that the argv builder stays one job: a link's value in
the guest tree is the object in ``-object`` syntax, held here to its ``guest-links`` rule of the
trust model before anything is made of it; a self-placed system-bus device (intel-iommu on q35)
needs no address but must precede the devices whose DMA it translates.
"""

from __future__ import annotations

from dtvm.errors import DtvmError
from dtvm.qemu.opts import render
from dtvm.qemu.trust import GuestLink
from dtvm.vm.buses import device_facts
from dtvm.vm.model import Device

__all__ = ["link_object", "self_placed", "self_placed_first"]


#: a memory back-end's host settings the back-end overlay gives back with its host side (a file)
_HOST_MEMORY_OPTIONS = ("mem-path", "share", "readonly", "pmem", "discard-data", "align", "prealloc", "dump",
                        "merge", "reserve")


#: what the check start maps for a memory back-end whose host side is a file: anonymous memory
#: with a file's page alignment (a memory-backend-ram is aligned to 2 MiB on x86_64, so QEMU refuses
#: a virtio-pmem or DIMM address a 4 KiB-aligned file back-end was given: "address must be aligned
#: to 0x200000 bytes", measured on QEMU 7.2), opening no host file
_FILE_STAND_IN = "memory-backend-memfd"


def link_object(link: GuestLink, value: str, where: str, objects: dict[str, tuple[str, str]],
                backends: dict[tuple[str, str], dict[str, str]], host: list[str]) -> str:
    """The id a described link names, its object added to ``objects`` (id -> the -object text to
    run, and the one to check with): only what the trust model's rule allows, one object per id.
    Where the back-end overlay (the host's own configuration) gives that memory back-end a host
    side of a type the rule names (``host-objects``: a file), the object to run is that, with its
    host settings (listed in ``host``); the check start opens no host file: it makes the guest
    tree's RAM, or for a file an anonymous memfd of its size (``_FILE_STAND_IN``).  DtvmError
    naming ``where`` otherwise."""
    ident, options = link.parse(value, where)
    checked = render(link.object, [("id", ident), *options], where, implied="qom-type")
    real = check = checked
    side = backends.get(("memdev", ident), {})
    qom_type = side.get("qom-type")
    if qom_type is not None and qom_type in link.host_objects:
        settings = [(k, side[k]) for k in _HOST_MEMORY_OPTIONS if k in side]
        real = render(qom_type, [("id", ident), *options, *settings], where, implied="qom-type")
        check = render(_FILE_STAND_IN, [("id", ident), *options], where, implied="qom-type")
        if "mem-path" in side:
            host.append(f"mem-path {side['mem-path']!r} ({qom_type} {ident})")
    if objects.setdefault(ident, (real, check)) != (real, check):
        raise DtvmError(f"{where}: object {ident!r} is described twice, differently ({objects[ident][1]!r} and "
                        f"{check!r})")
    return ident


def self_placed() -> dict[str, str]:
    """System-bus types a -device makes at an MMIO base the machine gives (``self-placed`` in
    dtvm/vm/data/devices.yaml): no address to give, and given before every other device."""
    section = device_facts().get("self-placed", {})
    return {str(k): str(v) for k, v in section.items()} if isinstance(section, dict) else {}


def self_placed_first(devices: list[Device]) -> list[Device]:
    """An IOMMU before the PCI devices whose DMA it translates: each takes its DMA address space
    when it is realized (hw/pci/pci.c do_pci_register_device)."""
    placed = self_placed()
    return sorted(devices, key=lambda d: 0 if d.driver in placed and d.parent_device is None else 1)
