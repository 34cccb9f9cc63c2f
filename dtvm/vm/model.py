"""The qdev Config: a VM's device model as dtvm understands it, keyed by guest-visible position.

A device is identified by where the guest finds it (the chain of bus addresses from the system
bus down), never by its QOM path (``device[N]`` numbers shift with options) or its qdev id (the
guest cannot see it).  Properties are kept only where they differ from the device type's default,
so that a description states what is particular about this VM and nothing more; back-end
references (drive, netdev, chardev, ...) are split off because they are facts of the host.

This is the model every reader and writer meets in: QEMU (``dtvm.qemu.config`` reads a running
QEMU into it, ``dtvm.qemu.offline`` builds it from a command line, ``dtvm.qemu.argv`` writes it
as a command line) and the description (``dtvm.vm.translate`` writes it as trees).  It knows no
QEMU process and no tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ADDRESS_PROPS",
    "BACKEND_PROPS",
    "MACHINE_DEVICE_OPTIONS",
    "MACHINE_HOST_PROPS",
    "MACHINE_INPUT_PROPS",
    "PCI_BUSES",
    "Backend",
    "Bus",
    "Config",
    "Device",
    "Machine",
    "address_text",
]

#: qdev properties that name a host back-end rather than describe the device.
BACKEND_PROPS = frozenset({"drive", "netdev", "chardev", "audiodev", "memdev", "iothread", "drive-id", "fsdev",
                           # a bus name (named after a qdev id): a UHCI companion's EHCI, host-side naming
                           "masterbus"})

#: Properties that are the device's address on its bus (kept in ``Device.address``, not in props).
ADDRESS_PROPS = {
    "PCI": ("addr",),
    "PCIE": ("addr",),
    "pxb-bus": ("addr",),
    "pxb-pcie-bus": ("addr",),
    "pxb-cxl-bus": ("addr",),
    "IDE": ("unit",),
    "floppy-bus": ("unit",),
    "SCSI": ("scsi-id", "lun", "channel"),
    "usb-bus": ("port",),
    "virtio-serial-bus": ("nr",),
    "HDA": ("cad",),
    "spapr-vio-bus": ("reg",),
    "i2c-bus": ("address",),
}

#: QEMU bus types that are PCI buses, and the plain kind each is: a PCI expander's new root bus
#: (QEMU 7.2's pxb-bus, pxb-pcie-bus, pxb-cxl-bus) holds PCI functions as PCI and PCIE buses do.
PCI_BUSES = {"PCI": "PCI", "PCIE": "PCIE", "pxb-bus": "PCI", "pxb-pcie-bus": "PCIE", "pxb-cxl-bus": "PCIE"}

#: Machine properties that are host inputs, not guest hardware: they go to the back-end overlay.
MACHINE_HOST_PROPS = frozenset({
    "kernel", "initrd", "append", "dtb", "firmware", "dumpdtb", "memory-backend", "mem-merge",
    "dump-guest-core", "suppress-vmdesc", "phandle-start", "dt-compatible", "type", "memory-encryption",
    "confidential-guest-support", "accel", "kvm-type", "x-oem-id", "x-oem-table-id",
})

#: Machine options whose whole effect is to create devices: the description lists those devices
#: instead (and dtb2qemu turns the option off and creates them with -device), so a VM rebuilt
#: that way reads the same as the original.
MACHINE_DEVICE_OPTIONS = frozenset({"usb"})

#: Machine properties that carry the VM's inputs from the host (kernel, firmware...).
MACHINE_INPUT_PROPS = ("kernel", "initrd", "append", "dtb", "firmware", "pflash0", "pflash1")


@dataclass
class Device:
    """One qdev device at one guest-visible position."""

    driver: str
    #: (kind, values): ``("pci", (slot, fn))``, ``("mmio", (base,))``, ``("isa", (iobase,))``,
    #: ``("ide", (bus, unit))``, ``("scsi", (channel, id, lun))``, ``("usb", (port, ...))``,
    #: ``("nr", (n,))``, ``("cad", (n,))``, ``("vio", (reg,))``, ``("i2c", (addr,))``, ``("virtio", ())``,
    #: ``("nth", (n,))`` for a device found only by its creation order among its kind.
    address: tuple[str, tuple[int, ...]]
    props: dict[str, str] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)
    qdev_id: str | None = None
    hotplugged: bool = False
    user: bool = False
    buses: list[Bus] = field(default_factory=list)
    mmio: list[tuple[int, int]] = field(default_factory=list)
    pci_ids: tuple[int, int, int, int] | None = None
    pci_class: str | None = None
    parent: Bus | None = field(default=None, repr=False, compare=False)
    #: read back from a description: the node that describes the device, whether that node is
    #: QEMU's own (from its DT, so dtvm added only ``qemu,*`` facts), and a pending unplug
    node: str | None = None
    in_dt: bool = False
    unplug_pending: bool = False
    #: read from a running QEMU: the QOM path of a -device/device_add device (what device_del
    #: takes for one created without an id); a fact of that process, never described
    qom_path: str | None = field(default=None, compare=False, repr=False)

    @property
    def parent_device(self) -> Device | None:
        """The device whose bus this one sits on (None on the system bus)."""
        return self.parent.parent if self.parent is not None else None

    def key(self) -> str:
        """The guest-visible position: bus addresses from the system bus down, joined by '/'."""
        parts: list[str] = []
        dev: Device | None = self
        while dev is not None:
            bus = dev.parent
            several = bus is not None and bus.parent is not None and len(bus.parent.buses) > 1
            prefix = f"{bus.index}:" if several and bus is not None and dev.address[0] != "ide" else ""
            text = address_text(dev.address)
            if dev.address[0] == "nth":
                text = f"{dev.driver}#{dev.address[1][0]}"
            parts.append(prefix + text)
            dev = bus.parent if bus is not None else None
        return "/" + "/".join(reversed(parts))


@dataclass
class Bus:
    """A qdev bus. ``name`` is QEMU's (derived from ids, so host-side); ``index`` its position."""

    name: str
    type: str
    index: int = 0
    devices: list[Device] = field(default_factory=list)
    parent: Device | None = field(default=None, repr=False, compare=False)


@dataclass
class Machine:
    """The machine: versioned type, guest-visible options, CPUs and memory."""

    type: str
    arch: str
    options: dict[str, str] = field(default_factory=dict)
    cpu_type: str | None = None
    cpus: int = 0
    max_cpus: int = 0
    topology: dict[str, int] = field(default_factory=dict)
    memory: int = 0
    #: ``-m slots=,maxmem=``: the memory hot-plug slots and the most RAM they may bring (0: none);
    #: guest-visible (the ACPI memory hot-plug range, the DIMM slots) and needed by pc-dimm and
    #: virtio-mem, which QEMU refuses without them
    memory_slots: int = 0
    max_memory: int = 0
    #: CPUs created as devices (``-device``/``device_add``): their topology ids.  Counted in
    #: ``cpus`` (the guest sees them) and rebuilt as devices, so they stay unpluggable.
    device_cpus: list[dict[str, int]] = field(default_factory=list)


@dataclass
class Backend:
    """A host back-end (drive, netdev, chardev, memory back-end) with its options as text."""

    kind: str
    id: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class Config:
    """A VM's device model, precise: everything needed to rebuild the same hardware."""

    machine: Machine
    root: Bus
    backends: list[Backend] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    dtb: bytes | None = None
    #: the QEMU version that built the VM ("10.0"; "" when unknown): a host fact, kept in the
    #: back-end overlay, that says whether a rebuild on another version can receive its migration
    qemu_version: str = ""

    def devices(self) -> list[Device]:
        """All devices, depth first in creation order."""
        out: list[Device] = []
        stack: list[Device] = list(reversed(self.root.devices))
        while stack:
            dev = stack.pop()
            out.append(dev)
            for bus in reversed(dev.buses):
                stack.extend(reversed(bus.devices))
        return out

    def backend_map(self) -> dict[tuple[str, str], dict[str, str]]:
        """(kind, id) -> options of every host back-end."""
        return {(b.kind, b.id): b.options for b in self.backends}


def address_text(address: tuple[str, tuple[int, ...]]) -> str:
    """A readable, stable spelling of an address, used in keys and messages."""
    kind, values = address
    if kind == "pci":
        return f"pci:{values[0]:02x}.{values[1]}"
    if kind in ("mmio", "isa", "vio"):
        return f"{kind}:{values[0]:x}"
    if kind == "usb":
        return "usb:" + ".".join(str(v) for v in values)
    if kind == "virtio":
        return "virtio"
    return f"{kind}:" + ",".join(str(v) for v in values)
