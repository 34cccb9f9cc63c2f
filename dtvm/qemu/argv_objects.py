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


def link_object(link: GuestLink, value: str, where: str, objects: dict[str, str]) -> str:
    """The id a described link names, its object added to ``objects`` (id -> -object text): only
    what the trust model's rule allows, one object per id.  DtvmError naming ``where`` otherwise."""
    ident, options = link.parse(value, where)
    text = render(link.object, [("id", ident), *options], where, implied="qom-type")
    if objects.setdefault(ident, text) != text:
        raise DtvmError(f"{where}: object {ident!r} is described twice, differently ({objects[ident]!r} and {text!r})")
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
