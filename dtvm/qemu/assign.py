"""Where QEMU 7.2 puts a new device: which bus, which address.

dtvm assigns addresses once, with the rules QEMU itself follows, so that a device can be created
with its address stated (``device_add ...,bus=B,addr=A``) and the description written before and
after agree with what QEMU would have done on its own.  The functions here are pure: they read a
:class:`~dtvm.qemu.config.Config` (from a running VM, or built offline) and never talk to QEMU, so
the hot-plug tracker (``dtvm.qemu.hotplug``) and the offline model of issue 7 share them.

The rules, from QEMU 7.2's sources and checked against ``qemu-system-*`` 7.2 (tests/test_hotplug.py):

- **Bus** (``qdev_device_add_from_qdict``): with ``bus=NAME``, the first bus of that name depth
  first; with no bus, the first bus of the device's bus type depth first
  (``qbus_find_recursive``), preferring one that is not full.  The walk starts at the system bus,
  checks a bus before the buses below it, and visits a bus's devices and a device's child buses
  newest first (QEMU inserts both at the head of their lists).  So a PCI device without ``bus``
  goes to the root bus, never to a root port or bridge (on q35 and virt that bus cannot take
  hot-plugged devices, and QEMU says so), and a USB device to the most recently created USB bus.
- **PCI** (``do_pci_register_device``): the lowest slot whose function 0 is free; a function above
  0 is never chosen.  A given address must be free; a hot-plugged function goes into a slot only
  while its function 0 is empty (the guest scans a slot when function 0 appears), and below a PCIe
  root or downstream port only while 00.0 is empty (the guest looks at that one slot only);
  function 0 of a slot that has other functions needs ``multifunction=on``.  QEMU applies the two
  hot-plug rules only to an address given explicitly, so where its own choice breaks them (a
  second device below a port goes to 01.0) dtvm refuses rather than place a device the guest
  cannot see.
- **USB** (``usb_claim_port``): the first port of the bus's free list.  In a VM that never lost a
  USB device that is the lowest free port of the controller, then the ports of its hubs in the
  order the hubs came.  When only one port is left QEMU plugs an automatic ``usb-hub`` into it
  and the device behind that hub: dtvm refuses that case (an automatic hub is not a device dtvm
  can add with an explicit address) and says how to get the same result.
- **SCSI** (``scsi_qdev_realize``): channel 0 (or the given one), lun 0 (or the given one), the
  lowest scsi-id with nothing at that channel/id/lun; with a scsi-id but no lun, the lowest free
  lun.  Limits are the HBA's (virtio-scsi: id <= 255, lun <= 16383).
- **virtio-serial** (``virtser_port_device_realize``): a ``virtconsole`` takes port 0 if it is
  free; otherwise (and for every ``virtserialport``) the lowest free port from 1, below the
  device's ``max_ports`` (31).  Port 0 is reserved for consoles.
- **HDA** (``hda_codec_dev_realize``): a codec without ``cad`` takes the bus's next codec address,
  one above the codec realized last (not the lowest free: ``cad=2`` after ``cad=5`` gives the next
  one 3); addresses stop at 14 ("HDA audio codec address is full").  QEMU 7.2 and 10.0 take a
  ``cad`` in use without a word (both codecs are described, one node named ``-1``), so does dtvm.
  Codecs are never hot-plugged (HDA buses take none), so the creation order is the bus's list.

Known difference: after a USB device was unplugged, QEMU puts the freed port at the *end* of its
free list, so QEMU's own next choice depends on history that no description holds; dtvm chooses
the lowest free port (what QEMU chooses in a VM built from the description) and states it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dtvm.errors import DtvmError
from dtvm.vm.model import Bus, Config, Device

__all__ = [
    "BUS_PARENTS",
    "EXPANDER_BUSES",
    "HDA",
    "KIND_BUS_TYPE",
    "PCI",
    "PCIE_SLOT_DRIVERS",
    "SCSI",
    "USB",
    "VSERIAL",
    "AssignError",
    "Placement",
    "address_keys",
    "assign",
    "bus_search_order",
    "find_bus",
    "is_bus_type",
    "parse_pci_addr",
    "qemu_int",
    "usb_port_order",
]

PCI = "pci"
USB = "usb"
SCSI = "scsi"
VSERIAL = "virtio-serial"
HDA = "hda"

#: The bus type each kind of device plugs into (QEMU's ``DeviceClass.bus_type``).
KIND_BUS_TYPE = {PCI: "PCI", USB: "usb-bus", SCSI: "SCSI", VSERIAL: "virtio-serial-bus", HDA: "HDA"}

#: The device options that state an address, per kind (what ``device_add`` gets from dtvm).
_ADDRESS_KEYS = {PCI: ("addr",), USB: ("port",), SCSI: ("channel", "scsi-id", "lun"), VSERIAL: ("nr",), HDA: ("cad",)}

#: QOM parents of QEMU 7.2's bus types below ``PCI`` (``qom-list-types implements=bus``, the same
#: on x86_64, aarch64, ppc64 and riscv64): a device that needs a ``PCI`` bus goes on all of them.
BUS_PARENTS: Mapping[str, str] = {
    "PCIE": "PCI", "CXL": "PCIE", "pxb-bus": "PCI", "pxb-pcie-bus": "PCIE", "pxb-cxl-bus": "CXL",
    "pnv-phb3-root": "PCIE", "pnv-phb4-root": "PCIE",
}

#: ``BusClass.max_dev`` of bus types that have one (a transport's virtio bus holds one device):
#: a bus holding that many devices is full, and the bus search prefers another one.
_BUS_MAX_DEV = {"pnv-phb3-root": 1, "virtio-pci-bus": 1, "virtio-mmio-bus": 1, "virtio-ccw-bus": 1}

#: PCI devices whose secondary bus sits below a PCIe root or downstream port (QEMU 7.2's types
#: implementing ``pcie-slot``): such a bus has one slot that the guest looks at, and QEMU refuses a
#: hot-plugged device given any other address there while 00.0 is taken (``pci_get_function_0``).
PCIE_SLOT_DRIVERS = frozenset({"pcie-root-port", "ioh3420", "xio3130-downstream", "cxl-rp", "cxl-downstream",
                               "pnv-phb-root-port"})

#: Ports of USB host controllers and hubs in QEMU 7.2: (property, default) or a fixed number.
#: xHCI registers max(p2, p3) ports (each port serves both speeds when p2 == p3), EHCI 6, UHCI 2.
_USB_PORTS: Mapping[str, tuple[tuple[str, ...], int]] = {
    "qemu-xhci": (("p2", "p3"), 4), "nec-usb-xhci": (("p2", "p3"), 4),
    "usb-ehci": ((), 6), "ich9-usb-ehci1": ((), 6), "ich9-usb-ehci2": ((), 6),
    "platform-ehci-usb": ((), 6), "exynos4210-ehci-usb": ((), 6),
    "piix3-usb-uhci": ((), 2), "piix4-usb-uhci": ((), 2), "vt82c686b-usb-uhci": ((), 2),
    **{f"ich9-usb-uhci{i}": ((), 2) for i in range(1, 7)},
    "pci-ohci": (("num-ports",), 3), "sysbus-ohci": (("num-ports",), 3),
    "usb-hub": (("ports",), 8),
}

#: SCSI address limits of host adapters in QEMU 7.2, by the driver that owns the bus:
#: (max channel, max scsi-id, max lun), each inclusive (``SCSIBusInfo``).
_SCSI_LIMITS: Mapping[str, tuple[int, int, int]] = {
    "virtio-scsi-device": (0, 255, 16383),
    "lsi53c895a": (0, 7, 0), "lsi53c810": (0, 7, 0),
    "spapr-vscsi": (7, 63, 31),
    # measured on QEMU 7.2 ("bad scsi device id/lun/channel id" past each)
    "megasas": (0, 64, 255), "megasas-gen2": (0, 64, 255), "mptsas1068": (0, 8, 1),
    "am53c974": (0, 7, 7), "dc390": (0, 7, 7), "pvscsi": (0, 64, 0),
}

#: virtio-serial's ``max_ports`` default in QEMU 7.2.
_VSERIAL_MAX_PORTS = 31


class AssignError(DtvmError):
    """A device that cannot go where it was asked to (or anywhere): names the bus and address."""


@dataclass(frozen=True)
class Placement:
    """Where a new device goes: its bus, its address in Config form, and the options that state both.

    ``options`` are what ``device_add`` / ``-device`` needs so that QEMU makes no choice of its own
    (``{"bus": "rp1", "addr": "00.0"}``); ``bus_chosen`` says the bus came from QEMU's search rule
    (no ``bus=`` was given), which error messages mention because the user did not name it.
    """

    kind: str
    bus: Bus
    address: tuple[str, tuple[int, ...]]
    options: dict[str, str] = field(default_factory=dict)
    bus_chosen: bool = False

    def text(self) -> str:
        """``bus rp1, addr 00.0`` — the placement in the option words a user would write."""
        return ", ".join(f"{key} {value}" for key, value in self.options.items())


def address_keys(kind: str) -> tuple[str, ...]:
    """The device options that state an address for this kind of device."""
    return _ADDRESS_KEYS[kind]


# ---------------------------------------------------------------------------------------- numbers


_INT = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\s*\Z")


def qemu_int(text: str, what: str) -> int:
    """An integer property value as QEMU reads it from option text (``strtoll`` base 0:
    ``0x10`` is hex, ``010`` is octal 8, ``10`` decimal)."""
    m = _INT.match(text)
    if m is None:
        raise AssignError(f"{what}: {text!r} is not a number")
    sign, digits = m.groups()
    if digits.lower().startswith("0x"):
        value = int(digits, 16)
    elif len(digits) > 1 and digits.startswith("0"):
        value = int(digits, 8)
    else:
        value = int(digits)
    return -value if sign == "-" else value


_DEVFN = re.compile(r"\s*(?:0[xX])?([0-9a-fA-F]+)(?:\.\s*(?:0[xX])?([0-9a-fA-F]+))?\Z")


def parse_pci_addr(text: str) -> tuple[int, int]:
    """``SLOT[.FN]`` in hex as QEMU's ``addr`` property reads it (``sscanf("%x.%x")``): ``3``,
    ``03.1``, ``0x3.0x1``; slot <= 0x1f, function <= 7."""
    m = _DEVFN.match(text)
    if m is None:
        raise AssignError(f"addr: {text!r} is not a PCI address (SLOT[.FUNCTION], hex)")
    slot = int(m.group(1), 16)
    fn = int(m.group(2), 16) if m.group(2) is not None else 0
    if slot > 31 or fn > 7:
        raise AssignError(f"addr: {text!r} is out of range (slot 0 to 1f, function 0 to 7)")
    return slot, fn


def _on(value: str) -> bool:
    """A QEMU boolean property from option text (``qapi_bool_parse``)."""
    return value.lower() in ("on", "yes", "true", "y")


# ------------------------------------------------------------------------------------------- buses


def is_bus_type(bus_type: str, wanted: str, parents: Mapping[str, str] = BUS_PARENTS) -> bool:
    """Whether a bus of QOM type ``bus_type`` is a ``wanted`` (``object_dynamic_cast``)."""
    seen = 0
    current: str | None = bus_type
    while current is not None and seen < 32:
        if current == wanted:
            return True
        current = parents.get(current)
        seen += 1
    return False


#: the root buses of PCI expanders (pxb, pxb-pcie, pxb-cxl), which QEMU hangs on a pxb-host it makes on the
#: system bus and the description folds into the expander (dtvm/vm/data/devices.yaml made-by-other)
EXPANDER_BUSES = frozenset({"pxb-bus", "pxb-pcie-bus", "pxb-cxl-bus"})


def bus_search_order(config: Config) -> Iterator[Bus]:
    """Every bus in the order QEMU's ``qbus_find_recursive`` looks at them: a bus, then for each of
    its devices newest first, that device's child buses newest first, recursively.

    An expander's root bus sits on its pxb-host, the newest devices of the system bus: those come
    right after the system bus, newest first (a PCI device given without bus= after an expander
    lands there, and QEMU refuses it unless it is a bridge)."""
    expanders = [b for d in config.devices() for b in d.buses if b.type in EXPANDER_BUSES]
    yield config.root
    for start in [*reversed(expanders), config.root]:
        stack: list[Bus] = [start]
        while stack:
            bus = stack.pop()
            if bus is not start or start is not config.root:
                yield bus
            below: list[Bus] = []
            for dev in reversed(bus.devices):
                below.extend(b for b in reversed(dev.buses) if start is not config.root or b.type not in EXPANDER_BUSES)
            stack.extend(reversed(below))


def _full(bus: Bus) -> bool:
    limit = _BUS_MAX_DEV.get(bus.type)
    return limit is not None and len(bus.devices) >= limit


def find_bus(config: Config, *, name: str | None = None, bus_type: str | None = None,
             parents: Mapping[str, str] = BUS_PARENTS) -> Bus | None:
    """The bus QEMU finds by ``name`` or, without one, by ``bus_type``: the first match depth first
    that is not full, else the first match (``qbus_find_recursive``)."""
    pick: Bus | None = None
    for bus in bus_search_order(config):
        match = bus.name == name if name is not None else bus_type is not None and is_bus_type(bus.type, bus_type, parents)
        if not match:
            continue
        if not _full(bus):
            return bus
        if pick is None:
            pick = bus
    return pick


def _owner(bus: Bus) -> str:
    """The device a bus belongs to, for messages (``qemu-xhci id xhci``)."""
    dev = bus.parent
    if dev is None:
        return "the machine"
    return dev.driver + (f" id {dev.qdev_id}" if dev.qdev_id else "")


def _who(dev: Device) -> str:
    return dev.driver + (f" (id {dev.qdev_id})" if dev.qdev_id else "")


def _select_bus(config: Config, kind: str, driver: str, requested: Mapping[str, str],
                parents: Mapping[str, str], named: Mapping[str, list[Bus]] | None = None) -> tuple[Bus, bool]:
    wanted = KIND_BUS_TYPE[kind]
    name = requested.get("bus")
    if name is None:
        bus = find_bus(config, bus_type=wanted, parents=parents)
        if bus is None or _full(bus):
            raise AssignError(f"no '{wanted}' bus for {driver}: this VM has none that can take it")
        return bus, True
    if "/" in name:
        raise AssignError(f"bus {name!r}: give the bus by its name (e.g. bus=rp1), not a path")
    if named is not None:  # the caller keeps an index of bus names (offline: linear in devices)
        same = list(named.get(name, ()))
        bus = same[0] if same else None
    else:
        bus = find_bus(config, name=name, parents=parents)
        same = [b for b in bus_search_order(config) if b.name == name]
    if bus is None:
        raise AssignError(f"bus {name!r} not found")
    if len(same) > 1:
        raise AssignError(f"bus name {name!r} is not unique in this VM ({len(same)} buses have it)")
    if _full(bus):
        raise AssignError(f"bus {name!r} is full")
    if not is_bus_type(bus.type, wanted, parents):
        raise AssignError(f"{driver} cannot go on bus {name!r}: it is a {bus.type} bus of {_owner(bus)}, "
                          f"{driver} needs a bus of type {wanted}")
    return bus, False


# ---------------------------------------------------------------------------------------- assigning


def assign(config: Config, driver: str, kind: str, requested: Mapping[str, str], *, hotplug: bool = True,
           console: bool = False, parents: Mapping[str, str] = BUS_PARENTS,
           named: Mapping[str, list[Bus]] | None = None) -> Placement:
    """Where ``driver`` (a device of ``kind``: PCI, USB, SCSI, VSERIAL) goes in ``config``.

    ``requested`` holds the device options the user gave (``bus``, and the address keys of the
    kind: ``addr``/``multifunction``, ``port``, ``channel``/``scsi-id``/``lun``, ``nr``); what is
    missing is chosen as QEMU 7.2 would choose it, what is given is checked.  ``hotplug`` applies
    the rules QEMU has only for devices added to a running machine; ``console`` marks a
    ``virtconsole`` (port 0 is its).  Raises :class:`AssignError` naming the bus and address.
    """
    if kind not in KIND_BUS_TYPE:
        raise AssignError(f"dtvm assigns addresses on PCI, USB, SCSI and virtio-serial buses (and offline on HDA), not for {driver}")
    bus, chosen = _select_bus(config, kind, driver, requested, parents, named)
    where = f"bus {bus.name}" + (f" (QEMU's choice for {driver} without bus=)" if chosen else "")
    if kind == PCI:
        address, opts = _assign_pci(bus, driver, requested, hotplug, where)
    elif kind == USB:
        address, opts = _assign_usb(bus, driver, requested, where)
    elif kind == SCSI:
        address, opts = _assign_scsi(bus, driver, requested, where)
    elif kind == HDA:
        address, opts = _assign_hda(bus, requested, where)
    else:
        address, opts = _assign_vserial(bus, driver, requested, console, where)
    return Placement(kind, bus, address, {"bus": bus.name, **opts}, chosen)


def _assign_pci(bus: Bus, driver: str, requested: Mapping[str, str], hotplug: bool,
                where: str) -> tuple[tuple[str, tuple[int, ...]], dict[str, str]]:
    taken: dict[tuple[int, int], Device] = {}
    for dev in bus.devices:
        if dev.address[0] == "pci":
            slot, fn = dev.address[1]
            taken[(slot, fn)] = dev
    multifunction = _on(requested.get("multifunction", "off"))
    if "addr" in requested:
        slot, fn = parse_pci_addr(requested["addr"])
        if (slot, fn) in taken:
            raise AssignError(f"{where}: PCI slot {slot:02x} function {fn} is in use by {_who(taken[(slot, fn)])}")
    else:
        free = [s for s in range(32) if (s, 0) not in taken]
        if not free:
            raise AssignError(f"{where}: no PCI slot with a free function 0 (all 32 in use)")
        slot, fn = free[0], 0
    if hotplug:
        # QEMU checks this only for a hot-plugged device with an explicit address, which is what
        # dtvm always gives: below a PCIe port it looks at 00.0 whatever the slot
        below_port = bus.parent is not None and bus.parent.driver in PCIE_SLOT_DRIVERS
        first = (0, 0) if below_port else (slot, 0)
        if (slot, fn) != first and first in taken:
            if below_port:
                raise AssignError(
                    f"{where}: the PCIe port's one slot (00.0) is taken by {_who(taken[first])}; the guest "
                    f"does not look at {slot:02x}.{fn} below a port, and QEMU refuses that address for a "
                    "hot-plugged device: use another port")
            raise AssignError(f"{where}: PCI slot {slot:02x} already has function 0 ({_who(taken[first])}); "
                              "a function hot-plugged into it would not be seen by the guest")
    others = sorted(f for (s, f) in taken if s == slot and f != fn)
    if fn == 0 and others and not multifunction:
        raise AssignError(f"{where}: PCI slot {slot:02x} already has function(s) {', '.join(map(str, others))}: "
                          f"function 0 there needs multifunction=on")
    if fn != 0 and (slot, 0) in taken and taken[(slot, 0)].props.get("multifunction") != "on":
        raise AssignError(f"{where}: PCI slot {slot:02x} function 0 ({_who(taken[(slot, 0)])}) is a single-function device")
    return ("pci", (slot, fn)), {"addr": f"{slot:02x}.{fn}"}


def usb_port_order(bus: Bus) -> list[tuple[int, ...]] | None:
    """Every port of a USB bus in the order QEMU registers them (controller ports, then each hub's
    ports in the order the hubs came), or None when the controller's port count is unknown."""
    owner = bus.parent
    count = _port_count(owner) if owner is not None else None
    if count is None:
        return None
    ports: list[tuple[int, ...]] = [(i,) for i in range(1, count + 1)]
    for dev in bus.devices:
        if dev.driver == "usb-hub" and dev.address[0] == "usb":
            hub_ports = _port_count(dev)
            if hub_ports is None:
                return None
            ports.extend((*dev.address[1], i) for i in range(1, hub_ports + 1))
    return ports


def _port_count(dev: Device) -> int | None:
    entry = _USB_PORTS.get(dev.driver)
    if entry is None:
        return None
    props, default = entry
    if not props:
        return default
    return max(qemu_int(dev.props.get(p, str(default)), f"{dev.driver} {p}") for p in props)


def _port_text(port: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in port)


def _assign_usb(bus: Bus, driver: str, requested: Mapping[str, str],
                where: str) -> tuple[tuple[str, tuple[int, ...]], dict[str, str]]:
    used = {dev.address[1]: dev for dev in bus.devices if dev.address[0] == "usb"}
    ports = usb_port_order(bus)
    if "port" in requested:
        text = requested["port"]
        if not re.fullmatch(r"[1-9][0-9]{0,2}(\.[1-9][0-9]{0,2}){0,4}", text):
            raise AssignError(f"port: {text!r} is not a USB port path (1, 2.1, ...)")
        port = tuple(int(p) for p in text.split("."))
        if port in used:
            raise AssignError(f"{where}: USB port {text} is in use by {_who(used[port])}")
        if ports is not None and port not in ports:
            raise AssignError(f"{where}: has no USB port {text} (ports: {', '.join(map(_port_text, ports))})")
        return ("usb", port), {"port": text}
    if ports is None:
        owner = bus.parent.driver if bus.parent is not None else bus.name
        raise AssignError(f"{where}: dtvm does not know how many ports a {owner} has; give port=")
    free = [p for p in ports if p not in used]
    if not free:
        raise AssignError(f"{where}: no free USB port")
    if len(free) == 1 and driver != "usb-hub":
        raise AssignError(
            f"{where}: only port {_port_text(free[0])} is free, and QEMU would plug an automatic usb-hub "
            f"into it and {driver} behind that hub; add a usb-hub there first (usb-hub,bus={bus.name},"
            f"port={_port_text(free[0])}) or give port={_port_text(free[0])} to use the port itself")
    return ("usb", free[0]), {"port": _port_text(free[0])}


def _assign_scsi(bus: Bus, driver: str, requested: Mapping[str, str],
                 where: str) -> tuple[tuple[str, tuple[int, ...]], dict[str, str]]:
    owner = bus.parent.driver if bus.parent is not None else ""
    limits = _SCSI_LIMITS.get(owner)
    used: dict[tuple[int, int, int], Device] = {}
    for dev in bus.devices:
        if dev.address[0] == "scsi":
            channel, ident, lun = dev.address[1]
            used[(channel, ident, lun)] = dev
    channel = qemu_int(requested["channel"], "channel") if "channel" in requested else 0
    ident = qemu_int(requested["scsi-id"], "scsi-id") if "scsi-id" in requested else -1
    lun = qemu_int(requested["lun"], "lun") if "lun" in requested else -1
    if channel < 0 or ident < -1 or lun < -1:
        raise AssignError(f"{where}: a SCSI channel, scsi-id or lun cannot be negative")
    if limits is None:
        if ident < 0 or lun < 0:
            raise AssignError(f"{where}: dtvm does not know the SCSI address range of {owner or 'this adapter'}; "
                              "give scsi-id= and lun=")
        max_channel, max_id, max_lun = channel, ident, lun
    else:
        max_channel, max_id, max_lun = limits
    if channel > max_channel:
        raise AssignError(f"{where}: SCSI channel {channel} is out of range (at most {max_channel} on {owner})")
    if ident > max_id:
        raise AssignError(f"{where}: scsi-id {ident} is out of range (at most {max_id} on {owner})")
    if lun > max_lun:
        raise AssignError(f"{where}: lun {lun} is out of range (at most {max_lun} on {owner})")
    if ident < 0:
        lun = max(lun, 0)
        free = [i for i in range(max_id + 1) if (channel, i, lun) not in used]
        if not free:
            raise AssignError(f"{where}: no free scsi-id for lun {lun} (ids 0 to {max_id} in use)")
        ident = free[0]
    elif lun < 0:
        luns = [n for n in range(max_lun + 1) if (channel, ident, n) not in used]
        if not luns:
            raise AssignError(f"{where}: no free lun at scsi-id {ident}")
        lun = luns[0]
    elif (channel, ident, lun) in used:
        raise AssignError(f"{where}: SCSI channel {channel} scsi-id {ident} lun {lun} is in use by "
                          f"{_who(used[(channel, ident, lun)])}")
    opts = {"channel": str(channel)} if channel else {}
    opts.update({"scsi-id": str(ident), "lun": str(lun)})
    return ("scsi", (channel, ident, lun)), opts


def _assign_vserial(bus: Bus, driver: str, requested: Mapping[str, str], console: bool,
                    where: str) -> tuple[tuple[str, tuple[int, ...]], dict[str, str]]:
    owner = bus.parent
    max_ports = qemu_int(owner.props.get("max_ports", str(_VSERIAL_MAX_PORTS)), "max_ports") \
        if owner is not None else _VSERIAL_MAX_PORTS
    used = {dev.address[1][0]: dev for dev in bus.devices if dev.address[0] == "nr"}
    if "nr" in requested:
        nr = qemu_int(requested["nr"], "nr")
        if nr < 0:
            raise AssignError(f"{where}: port number {nr} cannot be negative")
        if nr in used:
            raise AssignError(f"{where}: virtio-serial port {nr} is in use by {_who(used[nr])}")
        if nr == 0 and not console:
            raise AssignError(f"{where}: virtio-serial port 0 is reserved for a virtconsole")
        if nr >= max_ports:
            raise AssignError(f"{where}: virtio-serial port {nr} is out of range (max_ports {max_ports}: 0 to {max_ports - 1})")
    elif console and 0 not in used:
        nr = 0
    else:
        free = [n for n in range(1, max_ports) if n not in used]
        if not free:
            raise AssignError(f"{where}: no free virtio-serial port (max_ports {max_ports})")
        nr = free[0]
    return ("nr", (nr,)), {"nr": str(nr)}


#: HDA codec addresses QEMU takes: 0 to 14 (``hda_codec_dev_realize``: 15 and up are "full")
_HDA_CADS = 15


def _assign_hda(bus: Bus, requested: Mapping[str, str], where: str) -> tuple[tuple[str, tuple[int, ...]], dict[str, str]]:
    if "cad" in requested:
        cad = qemu_int(requested["cad"], "cad")  # one in use too: QEMU takes it without a word
    else:
        last = [dev.address[1][0] for dev in bus.devices if dev.address[0] == "cad"]
        cad = last[-1] + 1 if last else 0
    if not 0 <= cad < _HDA_CADS:
        raise AssignError(f"{where}: HDA audio codec address is full (cad {cad}: QEMU takes 0 to {_HDA_CADS - 1})")
    return ("cad", (cad,)), {"cad": str(cad)}
