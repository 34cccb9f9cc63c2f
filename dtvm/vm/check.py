"""The dependency rules a VM description must satisfy: ``dtvm check``.

A guest DTB (and its back-end overlay) can be edited by hand, merged by tools or written by
someone else; ``dtb2qemu`` only learns what is wrong when QEMU refuses the result, and some
mistakes QEMU accepts (a root port behind a PCI bridge, function 1 without function 0) only show
up inside the guest.  This module states the rules once and reports every place a description
breaks one, by node path and rule name; it never changes the description.

The description is read as ``dtb2qemu`` reads it (``vm.readback.read_config``: driver, decoded bus
address, parent device, properties, host facts), so a finding is about what would be rebuilt.
Which bus each device needs, which bus each controller gives, and which buses take hot-plug is
data (``vm/data/buses.yaml``), measured on QEMU 7.2.

Rules (``RULES``), each a finding of severity ``error`` unless said:

- ``bus-kind``: a device sits below a controller giving the bus kind it needs (a PCI function on
  a PCI bus, ``ide-hd`` on an IDE controller, a virtio device in a virtio transport, ...), and PCI
  Express ports where PCI Express puts them (a root port on a root bus, not behind a bridge).
- ``address-form``: its ``reg`` is an address of the form its bus uses (a PCI function has a
  PCI ``reg``), else nothing can say where it is.
- ``address-conflict``: no two devices at one address of one bus (PCI slot.fn, IDE bus/unit,
  SCSI channel/id/lun, USB port, virtio-serial nr, ISA I/O base, VIO reg, I2C address, floppy
  unit, the one device of a virtio transport).
- ``address-range``: the address exists on that bus (IDE units per controller; behind a PCI
  Express port only slot 0, the only one the guest scans).
- ``multifunction``: a slot with a function above 0 has function 0, and function 0 says
  ``qemu,multifunction = "on"`` (QEMU refuses the slot otherwise).
- ``multifunction-all`` (warning): on q35, every function of a slot holding ICH9 USB
  controllers says ``multifunction`` on, as the machine's own (``usb=on``) do: QEMU accepts the
  other spelling, but a VM built one way cannot be migrated into one built the other way.
- ``hotplug-bus``: a device the back-end overlay marks ``qemu,hotplugged`` sits on a bus that
  takes hot-plug (not q35's or virt's PCI Express root bus, IDE, ISA, VIO, ...).
- ``backend-ref``: every ``qemu,drive``/``qemu,netdev``/``qemu,chardev`` names an entry of
  ``/qemu-backends`` (an empty CD-ROM or floppy needs none), a device QEMU cannot create without a
  drive (``vm/data/devices.yaml``) has one, and that drive has a medium.
- ``backend-target``: every fragment of the back-end overlay targets a device of the guest tree
  (else its host facts silently reach nothing, e.g. after a device was moved).

The back-end rules and ``hotplug-bus`` need the overlay; without one they are not checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dtvm.dt.tree import DeviceTree
from dtvm.vm.buses import BusTable, CheckDataError, Kind, bus_table, load_bus_table, needs_backend
from dtvm.vm.model import Config, Device
from dtvm.vm.readback import read_config

__all__ = ["RULES", "BusTable", "CheckDataError", "Finding", "bus_table", "check", "check_plan", "clean",
           "load_bus_table"]

#: rule name -> what it asks of a description (``dtvm check --help`` and the README list these)
RULES: dict[str, str] = {
    "bus-kind": "every device below a controller that gives the kind of bus it needs",
    "address-form": "every device on a bus has an address (reg) of that bus's form",
    "address-conflict": "no two devices at one address of one bus",
    "address-range": "every address exists on its bus",
    "multifunction": "a slot's functions above 0 need function 0 with multifunction on",
    "multifunction-all": "q35 ICH9 USB companion slots: multifunction on every function (warning)",
    "hotplug-bus": "hot-plugged devices only on buses that take hot-plug",
    "backend-ref": "every back-end reference resolved, every needed drive given",
    "backend-target": "every back-end overlay fragment targets a device of the guest tree",
}

#: QEMU's words for a true boolean property (qapi_bool_parse)
_ON = frozenset({"on", "yes", "true", "y"})
#: devices that may name an empty (or no) drive: QEMU makes an empty one
_REMOVABLE = frozenset({"ide-cd", "scsi-cd", "floppy"})
_REFS = ("drive", "netdev", "chardev")
#: the PCI bus kinds (their devices have PCI addresses)
_PCI_KINDS = frozenset({"pcie-root", "pci-root", "pcie-port", "pcie-switch", "pci", "pxb-pcie-root", "pxb-root"})
#: address forms (plan's decoded kinds) each bus kind's devices may have; unlisted kinds: any
_FORMS: dict[str, frozenset[str]] = {
    **{k: frozenset({"pci"}) for k in _PCI_KINDS},
    "isa": frozenset({"isa", "none"}),  # i8042, port92, ...: fixed ports, no reg
    "ide": frozenset({"ide"}),
    "scsi": frozenset({"scsi"}),  # pseries' v-scsi's <id lun> reads as channel 0
    "usb": frozenset({"usb"}),
    "virtio-serial": frozenset({"nr"}),
    "hda": frozenset({"cad"}),
    "vio": frozenset({"vio"}),
    "i2c": frozenset({"i2c"}),
    "floppy": frozenset({"floppy"}),
    "virtio": frozenset({"virtio"}),
}


@dataclass(frozen=True)
class Finding:
    """One broken rule at one node: ``source`` is ``"guest"`` or ``"backend"`` (which file the
    path is in), ``severity`` ``"error"`` or ``"warning"``."""

    path: str
    rule: str
    message: str
    severity: str = "error"
    source: str = "guest"

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "rule": self.rule, "severity": self.severity,
                "source": self.source, "message": self.message}


def check(guest: DeviceTree, backend: DeviceTree | None = None) -> list[Finding]:
    """Every rule a description breaks, in tree order; PlanError (exit 2) when it cannot be read.

    Without ``backend``, ``hotplug-bus``, ``backend-ref`` and ``backend-target`` are not checked:
    the hot-plug marks and the back-ends are in the overlay.
    """
    plan = read_config(guest, backend)
    return check_plan(plan, guest, backend)


def check_plan(plan: Config, guest: DeviceTree, backend: DeviceTree | None = None) -> list[Finding]:
    """``check`` on a plan already read from ``guest`` (and ``backend``)."""
    ctx = _Context(plan, guest, bus_table())
    findings: list[Finding] = list(ctx.bus_kinds())
    misplaced = {f.path for f in findings}
    findings += ctx.addresses(misplaced)
    findings += ctx.multifunction()
    if backend is not None:
        findings += ctx.hotplug()
        findings += ctx.backend_refs()
    order = {d.node: i for i, d in enumerate(plan.devices())}
    rank = {r: i for i, r in enumerate(RULES)}
    findings.sort(key=lambda f: (f.source != "guest", order.get(f.path, len(order)), rank.get(f.rule, 99)))
    if backend is not None:
        findings += _backend_targets(plan, backend)
    return findings


def clean(text: str, limit: int = 200) -> str:
    """``text`` safe for one line of a terminal: non-printable characters escaped, cut at ``limit``."""
    cut = len(text) > limit
    text = text[:limit]
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else
                       (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}" if ord(ch) < 0x10000
                        else f"\\U{ord(ch):08x}") for ch in text)
    return text + ("..." if cut else "")


class _Context:
    """One description being checked: the plan, its tree, the table, and indexes over them."""

    def __init__(self, plan: Config, guest: DeviceTree, table: BusTable) -> None:
        self.plan = plan
        self.devices = plan.devices()
        self.backends = plan.backend_map()
        self.guest = guest
        self.table = table
        self.takes = {t for k in table.kinds.values() for t in k.takes}

    # -- helpers ---------------------------------------------------------------------------

    def parent(self, dev: Device) -> Device | None:
        """The device whose bus this one sits on (None at the root or below a non-device node)."""
        return dev.parent_device

    def bus_of(self, dev: Device) -> Kind | None:
        """The kind of bus a device sits on (what its parent device gives), or None."""
        parent = self.parent(dev)
        if parent is None:
            return None
        name = self.table.gives(parent.driver)
        return self.table.kinds.get(name) if name is not None else None

    def need(self, dev: Device) -> str | None:
        """The QEMU bus type the device needs: the table's, else PCI for a node that carries a
        PCI identity (a machine-made function the table does not list), else unknown."""
        bus = self.table.needs.get(dev.driver)
        if bus is not None:
            return bus
        node = self.guest.get_node(_path(dev))
        if node is not None and node.get_property("vendor-id") is not None and node.get_property("device-id") is not None:
            return "PCI"
        return None

    def where(self, dev: Device) -> str:
        """The parent device, by path and driver, for messages."""
        parent = self.parent(dev)
        return f"{clean(_path(parent))} ({clean(parent.driver)})" if parent is not None else "the root"

    def address_text(self, dev: Device) -> str:
        """A bus address in the words of its bus (``05.1``, ``IDE bus 0 unit 1``, ``nr 3``)."""
        kind, values = dev.address
        if kind == "pci":
            return f"{values[0]:02x}.{values[1]}"
        if kind == "isa":
            return f"I/O port {values[0]:#x}"
        if kind == "ide":
            return f"IDE bus {values[0]} unit {values[1]}"
        if kind == "scsi":
            return f"SCSI channel {values[0]} id {values[1]} lun {values[2]}"
        if kind == "usb":
            return f"USB port {values[0]}"
        if kind in ("nr", "cad", "vio", "i2c", "floppy", "cell") and values:
            label = {"nr": "nr {}", "cad": "codec {}", "vio": "reg {:#x}", "i2c": "address {:#x}", "floppy": "unit {}"}
            return label.get(kind, "reg {:#x}").format(values[0])
        return "/".join(str(v) for v in values) or kind

    # -- bus-kind --------------------------------------------------------------------------

    def bus_kinds(self) -> Iterable[Finding]:
        """A device below the wrong controller is rebuilt on the wrong bus or not at all: QEMU
        refuses most (``can't go on SCSI bus``), and PCIe topology QEMU accepts confuses guests."""
        for dev in self.devices:
            need = self.need(dev)
            if need is None or (need not in self.takes and dev.driver not in self.table.placement):
                continue  # a system-bus device, or one the table does not know: nothing to say
            allowed = self.table.allowed(dev.driver, need)
            parent = self.parent(dev)
            want = self._wanted(dev.driver, need, allowed)
            if parent is None:
                node = self.guest.get_node(_path(dev))
                up = node.parent if node is not None else None
                what = "it is at the root" if up is None or up.parent is None else \
                    f"its parent node {clean(up.path)} is not a device"
                yield Finding(_path(dev), "bus-kind", f"{clean(dev.driver)} needs {want}; {what}")
                continue
            gives = self.table.gives(parent.driver)
            if gives is None:
                yield Finding(_path(dev), "bus-kind",
                              f"{clean(dev.driver)} needs {want}; {self.where(dev)} gives no bus for devices")
            elif gives not in allowed:
                yield Finding(_path(dev), "bus-kind", f"{clean(dev.driver)} needs {want}; "
                              f"{self.where(dev)} gives {self.table.kinds[gives].words}")

    def _wanted(self, driver: str, need: str, allowed: frozenset[str]) -> str:
        """What a device needs, in words: the kinds its placement names, the one kind taking its
        bus type, or (PCI: several kinds) the bus type itself."""
        if driver not in self.table.placement and len(allowed) != 1:
            return f"a {need} bus"
        return " or ".join(sorted(self.table.kinds[k].words for k in allowed)) or f"a {need} bus"

    # -- address-form, address-conflict, address-range --------------------------------------

    def addresses(self, misplaced: set[str]) -> Iterable[Finding]:
        """Form, conflicts and range of bus addresses; a device on the wrong kind of bus
        (``misplaced``) has no meaningful address there and is left to ``bus-kind``."""
        taken: dict[tuple[str, tuple[int, ...]], Device] = {}
        for dev in self.devices:
            bus = self.bus_of(dev)
            parent = self.parent(dev)
            if bus is None or parent is None or dev.node in misplaced:
                continue
            kind, values = dev.address
            forms = _FORMS.get(bus.name)
            if forms is not None and kind not in forms:
                yield Finding(_path(dev), "address-form", f"{clean(dev.driver)} on {bus.words} has no address of "
                              f"that bus's form (reg decodes as {kind}); nothing says where it is")
                continue
            if kind == "none":
                continue
            key = (f"{parent.node}\0{kind}", tuple(values))
            first = taken.get(key)
            if first is not None and kind == "virtio":
                yield Finding(_path(dev), "address-conflict", f"{self.where(dev)} already holds {clean(_path(first))} "
                              f"({clean(first.driver)}): a virtio transport holds one device")
            elif first is not None:
                yield Finding(_path(dev), "address-conflict", f"{self.address_text(dev)} on {clean(_path(parent))} is "
                              f"already the address of {clean(_path(first))} ({clean(first.driver)})")
            else:
                taken[key] = dev
            yield from self._range(dev, bus, parent)

    def _range(self, dev: Device, bus: Kind, parent: Device) -> Iterable[Finding]:
        kind, values = dev.address
        if kind == "pci" and bus.slots is not None and values[0] not in bus.slots:
            yield Finding(_path(dev), "address-range", f"slot {values[0]:02x} below {self.where(dev)}: {bus.words} "
                          f"has slot {', '.join(str(s) for s in sorted(bus.slots))} only; the guest does not scan "
                          "the others (QEMU 7.2 accepts it)")
        units = self.table.ide_units.get(parent.driver)
        if kind == "ide" and bus.name == "ide" and units is not None:
            buses, per_bus = units
            if values[0] >= buses or values[1] >= per_bus:
                yield Finding(_path(dev), "address-range", f"IDE bus {values[0]} unit {values[1]} on "
                              f"{self.where(dev)}: it has {buses} bus{'es' if buses != 1 else ''} of "
                              f"{per_bus} unit{'s' if per_bus != 1 else ''}")

    # -- multifunction ---------------------------------------------------------------------

    def multifunction(self) -> Iterable[Finding]:
        """QEMU refuses a slot whose function 0 is single-function once another function exists,
        and a guest scanning a slot looks at function 0 first: without it the slot is empty."""
        slots: dict[tuple[str, int], dict[int, Device]] = {}
        for dev in self.devices:
            up = self.parent(dev)
            if dev.address[0] == "pci" and up is not None:
                slot, fn = dev.address[1]
                slots.setdefault((_path(up), slot), {}).setdefault(fn, dev)
        q35 = self.plan.machine.type.startswith("pc-q35-")
        for (parent, slot), fns in slots.items():
            others = sorted(fn for fn in fns if fn)
            if others:
                listed = ", ".join(f"{slot:02x}.{fn}" for fn in others)
                f0 = fns.get(0)
                if f0 is None:
                    first = fns[others[0]]
                    yield Finding(_path(first), "multifunction", f"slot {slot:02x} on {clean(parent)} has function "
                                  f"{listed} but no function 0: the guest looks for function 0 first and does "
                                  "not see the others")
                elif f0.props.get("multifunction", "").lower() not in _ON:
                    yield Finding(_path(f0), "multifunction", f"{clean(f0.driver)} at {slot:02x}.0 is single-function "
                                  f"(no qemu,multifunction = \"on\") but the slot also has {listed}: QEMU refuses it")
            if q35 and any(d.driver.startswith("ich9-usb-") for d in fns.values()) and len(fns) > 1:
                for fn in sorted(fns):
                    dev = fns[fn]
                    if dev.props.get("multifunction", "").lower() not in _ON:
                        yield Finding(_path(dev), "multifunction-all", f"{clean(dev.driver)} at {slot:02x}.{fn}: "
                                      "no qemu,multifunction = \"on\"; q35's own USB controllers (usb=on) have it on "
                                      "every function, and a VM built the other way cannot migrate into this one",
                                      severity="warning")

    # -- hotplug-bus -----------------------------------------------------------------------

    def hotplug(self) -> Iterable[Finding]:
        """A hot-plug mark is history (``device_add``): on a bus that takes no hot-plug it cannot be
        true, so the description was edited or merged wrongly."""
        for dev in self.devices:
            if not dev.hotplugged:
                continue
            parent = self.parent(dev)
            bus = self.bus_of(dev)
            if parent is None or bus is None:
                continue  # bus-kind says what is wrong with its place
            if bus.name == "virtio" and parent.hotplugged:
                continue  # created with its hot-plugged transport
            why = None
            if not bus.hotplug:
                why = f"{bus.words} takes no hot-plug"
            elif self.table.hotplug_self.get(parent.driver) is not None and \
                    parent.props.get(self.table.hotplug_self[parent.driver], "").lower() in ("off", "no", "false", "n"):
                why = f"its qemu,{self.table.hotplug_self[parent.driver]} is off"
            elif (maker := self.parent(parent)) is not None and self.table.hotplug_made.get(maker.driver) == parent.driver:
                why = f"the {parent.driver} a {maker.driver} makes takes none"
            else:
                root = self.table.hotplug_root.get(parent.driver)
                if root is not None:
                    for other in self.devices:
                        if other.driver == root[0] and other.props.get(root[1], "").lower() in ("off", "no", "false", "n"):
                            why = f"{clean(_path(other))} has qemu,{root[1]} off"
                            break
            if why is not None:
                yield Finding(_path(dev), "hotplug-bus", f"{clean(dev.driver)} is marked hot-plugged (qemu,hotplugged in "
                              f"the back-end overlay) on {self.where(dev)}, but {why}")

    # -- backend-ref -----------------------------------------------------------------------

    def backend_refs(self) -> Iterable[Finding]:
        """What ``dtb2qemu`` would refuse for lack of a back-end, said for every device at once."""
        needs = needs_backend()
        backends = self.backends
        for dev in self.devices:
            for key in _REFS:
                ref = dev.backends.get(key)
                if ref is None:
                    continue
                if (key, ref) not in backends:
                    if key == "drive" and dev.driver in _REMOVABLE:
                        continue  # an empty CD-ROM or floppy: QEMU makes its empty drive again
                    yield Finding(_path(dev), "backend-ref", f"qemu,{key} = \"{clean(ref)}\": no such {key} in "
                                  "/qemu-backends of the back-end overlay")
            parent = self.parent(dev)
            if dev.address[0] == "virtio" and parent is not None and parent.address[0] == "pci":
                continue  # a virtio-pci proxy's device: the proxy is created with it and checked for it
            kids = [c for b in dev.buses for c in b.devices if c.address[0] == "virtio"]
            needed = needs.get(dev.driver) or next((needs[c.driver] for c in kids if c.driver in needs), None)
            if needed is None:
                continue
            refs = [d.backends[needed] for d in (dev, *kids) if needed in d.backends]
            if not refs:
                yield Finding(_path(dev), "backend-ref", f"{clean(dev.driver)} needs a {needed} back-end; the back-end "
                              "overlay gives it none")
            elif needed == "drive" and dev.driver not in _REMOVABLE:
                opts = backends.get(("drive", refs[0]))
                if opts is not None and not opts.get("drv"):
                    yield Finding(_path(dev), "backend-ref", f"drive \"{clean(refs[0])}\" has no medium; "
                                  f"{clean(dev.driver)} cannot be created on an empty drive")


def _path(dev: Device) -> str:
    return dev.node or dev.key()


def _backend_targets(plan: Config, backend: DeviceTree) -> list[Finding]:
    """Overlay fragments whose target is no device node of the guest tree."""
    devices = {d.node for d in plan.devices()}
    out: list[Finding] = []
    for frag in backend.root.live_children():
        over = frag.get_child("__overlay__")
        prop = frag.get_property("target-path")
        if over is None or prop is None:
            continue
        try:
            target = prop.as_string()
        except Exception:
            out.append(Finding(frag.path, "backend-target", "target-path is not one string", source="backend"))
            continue
        if target == "/":
            continue
        facts = sorted(p.name for p in over.live_props() if p.name.startswith("qemu,"))
        if target not in devices and facts:
            out.append(Finding(frag.path, "backend-target", f"target-path {clean(target)} is no device node of the "
                               f"guest tree: its host facts ({', '.join(clean(f) for f in facts)}) reach nothing",
                               source="backend"))
    return out

