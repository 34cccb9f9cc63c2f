"""The dependency rules a VM description must satisfy: ``dtvm check``.

A guest DTB (and its back-end overlay) can be edited by hand, merged by tools or written by
someone else; ``dtb2qemu`` only learns what is wrong when QEMU refuses the result, and some
mistakes QEMU accepts (a root port behind a PCI bridge, function 1 without function 0) only show
up inside the guest.  This module states the rules once and reports every place a description
breaks one, by node path and rule name; it never changes the description.

The description is read as ``dtb2qemu`` reads it (``qemu.plan.read_plan``: driver, decoded bus
address, parent device, properties, host facts), so a finding is about what would be rebuilt.
Which bus each device needs, which bus each controller gives, and which buses take hot-plug is
data (``qemu/data/buses.yaml``), measured on QEMU 7.2.

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
  drive (``qemu/data/devices.yaml``) has one, and that drive has a medium.
- ``backend-target``: every fragment of the back-end overlay targets a device of the guest tree
  (else its host facts silently reach nothing, e.g. after a device was moved).

The back-end rules and ``hotplug-bus`` need the overlay; without one they are not checked.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dtvm.dt.tree import DeviceTree
from dtvm.errors import DtvmError
from dtvm.vm.plan import DescDevice, Plan, read_plan

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
_PCI_KINDS = frozenset({"pcie-root", "pci-root", "pcie-port", "pcie-switch", "pci"})
#: address forms (plan's decoded kinds) each bus kind's devices may have; unlisted kinds: any
_FORMS: dict[str, frozenset[str]] = {
    **{k: frozenset({"pci"}) for k in _PCI_KINDS},
    "isa": frozenset({"isa", "none"}),  # i8042, port92, ...: fixed ports, no reg
    "ide": frozenset({"ide"}),
    "scsi": frozenset({"scsi", "ide"}),  # pseries' v-scsi: <id lun> under #address-cells = 2
    "usb": frozenset({"usb"}),
    "virtio-serial": frozenset({"cell"}),
    "vio": frozenset({"cell"}),
    "i2c": frozenset({"cell"}),
    "floppy": frozenset({"cell"}),
    "virtio": frozenset({"virtio"}),
}


class CheckDataError(DtvmError):
    """dtvm's own bus table is broken (a packaging or editing mistake, not the user's input)."""

    exit_code = 2


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


@dataclass(frozen=True)
class Kind:
    """A bus kind: what a controller node gives the device nodes below it."""

    name: str
    words: str
    qemu: tuple[str, ...]
    takes: frozenset[str]
    hotplug: bool
    slots: frozenset[int] | None


@dataclass(frozen=True)
class BusTable:
    """``qemu/data/buses.yaml``, checked and indexed."""

    kinds: dict[str, Kind]
    provides: dict[str, str]
    patterns: tuple[tuple[re.Pattern[str], str], ...]
    placement: dict[str, frozenset[str]]
    hotplug_self: dict[str, str]
    hotplug_root: dict[str, tuple[str, str]]
    ide_units: dict[str, tuple[int, int]]
    #: device type -> QEMU bus type it needs (``-device help`` plus the machine-made ones)
    needs: dict[str, str]
    user_creatable: dict[str, str]

    def gives(self, driver: str) -> str | None:
        """The bus kind a controller of this type gives its child nodes, or None."""
        kind = self.provides.get(driver)
        if kind is not None:
            return kind
        for pattern, pkind in self.patterns:
            if pattern.search(driver):
                return pkind
        return None

    def allowed(self, driver: str, bus_type: str) -> frozenset[str]:
        """The bus kinds a device of this type (needing ``bus_type``) may sit on."""
        placed = self.placement.get(driver)
        if placed is not None:
            return placed
        return frozenset(k.name for k in self.kinds.values() if bus_type in k.takes)


def _strs(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CheckDataError(f"buses.yaml: {where}: expected a list of strings")
    return value


def _map(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise CheckDataError(f"buses.yaml: {where}: expected a mapping")
    return value


def load_bus_table(data: Any) -> BusTable:
    """The table from the YAML document's data; CheckDataError naming the key when malformed."""
    top = _map(data, "top level")
    kinds: dict[str, Kind] = {}
    for name, spec in _map(top.get("kinds"), "kinds").items():
        spec = _map(spec, f"kinds.{name}")
        slots = spec.get("slots")
        if slots is not None and (not isinstance(slots, list) or not all(isinstance(s, int) for s in slots)):
            raise CheckDataError(f"buses.yaml: kinds.{name}.slots: expected a list of numbers")
        if not isinstance(spec.get("hotplug"), bool) or not isinstance(spec.get("words"), str):
            raise CheckDataError(f"buses.yaml: kinds.{name}: words (string) and hotplug (bool) are required")
        kinds[name] = Kind(name, spec["words"], tuple(_strs(spec.get("qemu"), f"kinds.{name}.qemu")),
                           frozenset(_strs(spec.get("takes"), f"kinds.{name}.takes")), spec["hotplug"],
                           frozenset(slots) if slots is not None else None)

    def kind(value: Any, where: str) -> str:
        if value not in kinds:
            raise CheckDataError(f"buses.yaml: {where}: {value!r} is not a bus kind")
        return str(value)

    provides = {d: kind(k, f"provides.{d}") for d, k in _map(top.get("provides"), "provides").items()}
    patterns: list[tuple[re.Pattern[str], str]] = []
    for i, item in enumerate(top.get("provides-patterns") or []):
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str):
            raise CheckDataError(f"buses.yaml: provides-patterns[{i}]: expected [pattern, kind]")
        try:
            pattern = re.compile(item[0])
        except re.error as exc:
            raise CheckDataError(f"buses.yaml: provides-patterns[{i}]: {exc}") from None
        patterns.append((pattern, kind(item[1], f"provides-patterns[{i}]")))
    placement = {d: frozenset(kind(k, f"placement.{d}") for k in _strs(ks, f"placement.{d}"))
                 for d, ks in _map(top.get("placement"), "placement").items()}
    off = _map(top.get("hotplug-off"), "hotplug-off")
    hotplug_self = {d: str(p) for d, p in _map(off.get("self"), "hotplug-off.self").items()}
    hotplug_root: dict[str, tuple[str, str]] = {}
    for d, pair in _map(off.get("root"), "hotplug-off.root").items():
        items = _strs(pair, f"hotplug-off.root.{d}")
        if len(items) != 2:
            raise CheckDataError(f"buses.yaml: hotplug-off.root.{d}: expected [device type, property]")
        hotplug_root[d] = (items[0], items[1])
    ide_units: dict[str, tuple[int, int]] = {}
    for d, pair in _map(top.get("ide-units"), "ide-units").items():
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(n, int) for n in pair):
            raise CheckDataError(f"buses.yaml: ide-units.{d}: expected [buses, units]")
        ide_units[d] = (pair[0], pair[1])
    user: dict[str, str] = {}
    for bus, names in _map(top.get("devices"), "devices").items():
        for n in _strs(names, f"devices.{bus}"):
            user[n] = bus
    needs = dict(user)
    for bus, names in _map(top.get("machine-made"), "machine-made").items():
        for n in _strs(names, f"machine-made.{bus}"):
            needs.setdefault(n, bus)
    return BusTable(kinds, provides, tuple(patterns), placement, hotplug_self, hotplug_root, ide_units, needs, user)


@functools.lru_cache(maxsize=1)
def bus_table() -> BusTable:
    """dtvm's bus table (``qemu/data/buses.yaml``), read once."""
    from importlib import resources

    import yaml

    try:
        text = resources.files("dtvm.qemu").joinpath("data/buses.yaml").read_text(encoding="utf-8")
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # C loader when built: 4x faster
    except (OSError, yaml.YAMLError) as exc:
        raise CheckDataError(f"buses.yaml: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return load_bus_table(data)


@functools.lru_cache(maxsize=1)
def _needs_backend() -> dict[str, str]:
    """Device type -> the back-end QEMU cannot create it without (``qemu/data/devices.yaml``,
    the same data ``dtb2qemu`` uses)."""
    from importlib import resources

    import yaml

    try:
        data = yaml.safe_load(resources.files("dtvm.qemu").joinpath("data/devices.yaml").read_text(encoding="utf-8"))
        needs = data.get("needs") if isinstance(data, dict) else None
        if not isinstance(needs, dict):
            raise CheckDataError("devices.yaml: needs: expected a mapping")
        return {str(k): str(v) for k, v in needs.items()}
    except (OSError, yaml.YAMLError) as exc:
        raise CheckDataError(f"devices.yaml: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def check(guest: DeviceTree, backend: DeviceTree | None = None) -> list[Finding]:
    """Every rule a description breaks, in tree order; PlanError (exit 2) when it cannot be read.

    Without ``backend``, ``hotplug-bus``, ``backend-ref`` and ``backend-target`` are not checked:
    the hot-plug marks and the back-ends are in the overlay.
    """
    plan = read_plan(guest, backend)
    return check_plan(plan, guest, backend)


def check_plan(plan: Plan, guest: DeviceTree, backend: DeviceTree | None = None) -> list[Finding]:
    """``check`` on a plan already read from ``guest`` (and ``backend``)."""
    ctx = _Context(plan, guest, bus_table())
    findings: list[Finding] = list(ctx.bus_kinds())
    misplaced = {f.path for f in findings}
    findings += ctx.addresses(misplaced)
    findings += ctx.multifunction()
    if backend is not None:
        findings += ctx.hotplug()
        findings += ctx.backend_refs()
    order = {d.path: i for i, d in enumerate(plan.devices)}
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

    def __init__(self, plan: Plan, guest: DeviceTree, table: BusTable) -> None:
        self.plan = plan
        self.guest = guest
        self.table = table
        self.by_path = plan.by_path()
        self.takes = {t for k in table.kinds.values() for t in k.takes}
        self.children: dict[str, list[DescDevice]] = {}
        for dev in plan.devices:
            if dev.parent is not None:
                self.children.setdefault(dev.parent, []).append(dev)

    # -- helpers ---------------------------------------------------------------------------

    def parent(self, dev: DescDevice) -> DescDevice | None:
        """The device whose bus this one sits on (None at the root or below a non-device node)."""
        return self.by_path.get(dev.parent) if dev.parent is not None else None

    def bus_of(self, dev: DescDevice) -> Kind | None:
        """The kind of bus a device sits on (what its parent device gives), or None."""
        parent = self.parent(dev)
        if parent is None:
            return None
        name = self.table.gives(parent.driver)
        return self.table.kinds.get(name) if name is not None else None

    def need(self, dev: DescDevice) -> str | None:
        """The QEMU bus type the device needs: the table's, else PCI for a node that carries a
        PCI identity (a machine-made function the table does not list), else unknown."""
        bus = self.table.needs.get(dev.driver)
        if bus is not None:
            return bus
        node = self.guest.get_node(dev.path)
        if node is not None and node.get_property("vendor-id") is not None and node.get_property("device-id") is not None:
            return "PCI"
        return None

    def where(self, dev: DescDevice) -> str:
        """The parent device, by path and driver, for messages."""
        parent = self.parent(dev)
        return f"{clean(parent.path)} ({clean(parent.driver)})" if parent is not None else "the root"

    def address_text(self, dev: DescDevice) -> str:
        """A bus address in the words of its bus (``05.1``, ``IDE bus 0 unit 1``, ``nr 3``)."""
        kind, values = dev.address
        bus = self.bus_of(dev)
        if kind == "pci":
            return f"{values[0]:02x}.{values[1]}"
        if kind == "isa":
            return f"I/O port {values[0]:#x}"
        if kind == "ide" and bus is not None and bus.name == "scsi":
            return f"SCSI id {values[0]} lun {values[1]}"
        if kind == "ide":
            return f"IDE bus {values[0]} unit {values[1]}"
        if kind == "scsi":
            return f"SCSI channel {values[0]} id {values[1]} lun {values[2]}"
        if kind == "usb":
            return f"USB port {values[0]}"
        if kind == "cell" and values:
            name = bus.name if bus is not None else ""
            label = {"virtio-serial": "nr {}", "vio": "reg {:#x}", "i2c": "address {:#x}", "floppy": "unit {}"}
            return label.get(name, "reg {:#x}").format(values[0])
        return "/".join(str(v) for v in values) or kind

    # -- bus-kind --------------------------------------------------------------------------

    def bus_kinds(self) -> Iterable[Finding]:
        """A device below the wrong controller is rebuilt on the wrong bus or not at all: QEMU
        refuses most (``can't go on SCSI bus``), and PCIe topology QEMU accepts confuses guests."""
        for dev in self.plan.devices:
            need = self.need(dev)
            if need is None or (need not in self.takes and dev.driver not in self.table.placement):
                continue  # a system-bus device, or one the table does not know: nothing to say
            allowed = self.table.allowed(dev.driver, need)
            parent = self.parent(dev)
            want = self._wanted(dev.driver, need, allowed)
            if parent is None:
                node = self.guest.get_node(dev.path)
                up = node.parent if node is not None else None
                what = "it is at the root" if up is None or up.parent is None else \
                    f"its parent node {clean(up.path)} is not a device"
                yield Finding(dev.path, "bus-kind", f"{clean(dev.driver)} needs {want}; {what}")
                continue
            gives = self.table.gives(parent.driver)
            if gives is None:
                yield Finding(dev.path, "bus-kind",
                              f"{clean(dev.driver)} needs {want}; {self.where(dev)} gives no bus for devices")
            elif gives not in allowed:
                yield Finding(dev.path, "bus-kind", f"{clean(dev.driver)} needs {want}; "
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
        taken: dict[tuple[str, tuple[int, ...]], DescDevice] = {}
        for dev in self.plan.devices:
            bus = self.bus_of(dev)
            parent = self.parent(dev)
            if bus is None or parent is None or dev.path in misplaced:
                continue
            kind, values = dev.address
            forms = _FORMS.get(bus.name)
            if forms is not None and kind not in forms:
                yield Finding(dev.path, "address-form", f"{clean(dev.driver)} on {bus.words} has no address of "
                              f"that bus's form (reg decodes as {kind}); nothing says where it is")
                continue
            if kind == "none":
                continue
            norm = (0, *values) if (kind == "ide" and bus.name == "scsi") else values
            key = (f"{parent.path}\0{'scsi' if bus.name == 'scsi' else kind}", tuple(norm))
            first = taken.get(key)
            if first is not None and kind == "virtio":
                yield Finding(dev.path, "address-conflict", f"{self.where(dev)} already holds {clean(first.path)} "
                              f"({clean(first.driver)}): a virtio transport holds one device")
            elif first is not None:
                yield Finding(dev.path, "address-conflict", f"{self.address_text(dev)} on {clean(parent.path)} is "
                              f"already the address of {clean(first.path)} ({clean(first.driver)})")
            else:
                taken[key] = dev
            yield from self._range(dev, bus, parent)

    def _range(self, dev: DescDevice, bus: Kind, parent: DescDevice) -> Iterable[Finding]:
        kind, values = dev.address
        if kind == "pci" and bus.slots is not None and values[0] not in bus.slots:
            yield Finding(dev.path, "address-range", f"slot {values[0]:02x} below {self.where(dev)}: {bus.words} "
                          f"has slot {', '.join(str(s) for s in sorted(bus.slots))} only; the guest does not scan "
                          "the others (QEMU 7.2 accepts it)")
        units = self.table.ide_units.get(parent.driver)
        if kind == "ide" and bus.name == "ide" and units is not None:
            buses, per_bus = units
            if values[0] >= buses or values[1] >= per_bus:
                yield Finding(dev.path, "address-range", f"IDE bus {values[0]} unit {values[1]} on "
                              f"{self.where(dev)}: it has {buses} bus{'es' if buses != 1 else ''} of "
                              f"{per_bus} unit{'s' if per_bus != 1 else ''}")

    # -- multifunction ---------------------------------------------------------------------

    def multifunction(self) -> Iterable[Finding]:
        """QEMU refuses a slot whose function 0 is single-function once another function exists,
        and a guest scanning a slot looks at function 0 first: without it the slot is empty."""
        slots: dict[tuple[str, int], dict[int, DescDevice]] = {}
        for dev in self.plan.devices:
            if dev.address[0] == "pci" and dev.parent is not None:
                slot, fn = dev.address[1]
                slots.setdefault((dev.parent, slot), {}).setdefault(fn, dev)
        q35 = self.plan.machine.type.startswith("pc-q35-")
        for (parent, slot), fns in slots.items():
            others = sorted(fn for fn in fns if fn)
            if others:
                listed = ", ".join(f"{slot:02x}.{fn}" for fn in others)
                f0 = fns.get(0)
                if f0 is None:
                    first = fns[others[0]]
                    yield Finding(first.path, "multifunction", f"slot {slot:02x} on {clean(parent)} has function "
                                  f"{listed} but no function 0: the guest looks for function 0 first and does "
                                  "not see the others")
                elif f0.props.get("multifunction", "").lower() not in _ON:
                    yield Finding(f0.path, "multifunction", f"{clean(f0.driver)} at {slot:02x}.0 is single-function "
                                  f"(no qemu,multifunction = \"on\") but the slot also has {listed}: QEMU refuses it")
            if q35 and any(d.driver.startswith("ich9-usb-") for d in fns.values()) and len(fns) > 1:
                for fn in sorted(fns):
                    dev = fns[fn]
                    if dev.props.get("multifunction", "").lower() not in _ON:
                        yield Finding(dev.path, "multifunction-all", f"{clean(dev.driver)} at {slot:02x}.{fn}: "
                                      "no qemu,multifunction = \"on\"; q35's own USB controllers (usb=on) have it on "
                                      "every function, and a VM built the other way cannot migrate into this one",
                                      severity="warning")

    # -- hotplug-bus -----------------------------------------------------------------------

    def hotplug(self) -> Iterable[Finding]:
        """A hot-plug mark is history (``device_add``): on a bus that takes no hot-plug it cannot be
        true, so the description was edited or merged wrongly."""
        for dev in self.plan.devices:
            if dev.host.get("hotplugged") != "on":
                continue
            parent = self.parent(dev)
            bus = self.bus_of(dev)
            if parent is None or bus is None:
                continue  # bus-kind says what is wrong with its place
            if bus.name == "virtio" and parent.host.get("hotplugged") == "on":
                continue  # created with its hot-plugged transport
            why = None
            if not bus.hotplug:
                why = f"{bus.words} takes no hot-plug"
            elif self.table.hotplug_self.get(parent.driver) is not None and \
                    parent.props.get(self.table.hotplug_self[parent.driver], "").lower() in ("off", "no", "false", "n"):
                why = f"its qemu,{self.table.hotplug_self[parent.driver]} is off"
            else:
                root = self.table.hotplug_root.get(parent.driver)
                if root is not None:
                    for other in self.plan.devices:
                        if other.driver == root[0] and other.props.get(root[1], "").lower() in ("off", "no", "false", "n"):
                            why = f"{clean(other.path)} has qemu,{root[1]} off"
                            break
            if why is not None:
                yield Finding(dev.path, "hotplug-bus", f"{clean(dev.driver)} is marked hot-plugged (qemu,hotplugged in "
                              f"the back-end overlay) on {self.where(dev)}, but {why}")

    # -- backend-ref -----------------------------------------------------------------------

    def backend_refs(self) -> Iterable[Finding]:
        """What ``dtb2qemu`` would refuse for lack of a back-end, said for every device at once."""
        needs = _needs_backend()
        backends = self.plan.backends
        for dev in self.plan.devices:
            for key in _REFS:
                ref = dev.host.get(key)
                if ref is None:
                    continue
                if (key, ref) not in backends:
                    if key == "drive" and dev.driver in _REMOVABLE:
                        continue  # an empty CD-ROM or floppy: QEMU makes its empty drive again
                    yield Finding(dev.path, "backend-ref", f"qemu,{key} = \"{clean(ref)}\": no such {key} in "
                                  "/qemu-backends of the back-end overlay")
            parent = self.parent(dev)
            if dev.address[0] == "virtio" and parent is not None and parent.address[0] == "pci":
                continue  # a virtio-pci proxy's device: the proxy is created with it and checked for it
            kids = [c for c in self.children.get(dev.path, []) if c.address[0] == "virtio"]
            needed = needs.get(dev.driver) or next((needs[c.driver] for c in kids if c.driver in needs), None)
            if needed is None:
                continue
            refs = [d.host[needed] for d in (dev, *kids) if needed in d.host]
            if not refs:
                yield Finding(dev.path, "backend-ref", f"{clean(dev.driver)} needs a {needed} back-end; the back-end "
                              "overlay gives it none")
            elif needed == "drive" and dev.driver not in _REMOVABLE:
                opts = backends.get(("drive", refs[0]))
                if opts is not None and not opts.get("drv"):
                    yield Finding(dev.path, "backend-ref", f"drive \"{clean(refs[0])}\" has no medium; "
                                  f"{clean(dev.driver)} cannot be created on an empty drive")


def _backend_targets(plan: Plan, backend: DeviceTree) -> list[Finding]:
    """Overlay fragments whose target is no device node of the guest tree."""
    devices = plan.by_path()
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

