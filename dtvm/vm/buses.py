"""Bus kinds and device facts as data: what each controller gives, what each device needs.

``data/buses.yaml`` says which bus kind each controller gives the device nodes below it, which
QEMU bus types each kind takes, which take hot-plug, how many slots or units they have;
``data/devices.yaml`` which back-end a device cannot be created without, which defaults a
``-device`` turns off, the ISA port tables.  Both are measured on QEMU 7.2 (tests/test_check.py
holds them to ``-device help``, ``info qtree`` and ``device_add``).  The description codec, the
checks, the way back to a command line and the offline model read them here, once.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dtvm.errors import DtvmError, first_line
from dtvm.fileio import is_data_error, load_yaml, package_text
from dtvm.vm.translators import Translator, translators

if TYPE_CHECKING:
    from dtvm.vm.model import Bus, Config, Device

__all__ = ["BusTable", "CheckDataError", "DeviceLink", "Kind", "bus_table", "device_facts", "device_links_of",
           "link_mates", "load_bus_table", "needs_backend"]


class CheckDataError(DtvmError):
    """dtvm's own bus table is broken (a packaging or editing mistake, not the user's input)."""

    exit_code = 2


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
    """``vm/data/buses.yaml``, checked and indexed."""

    kinds: dict[str, Kind]
    provides: dict[str, str]
    patterns: tuple[tuple[re.Pattern[str], str], ...]
    placement: dict[str, frozenset[str]]
    hotplug_self: dict[str, str]
    hotplug_root: dict[str, tuple[str, str]]
    #: maker -> the bridge it makes itself, whose bus takes no hot-plug (a pxb's pci-bridge)
    hotplug_made: dict[str, str]
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


def load_bus_table(data: Any, translators: dict[str, Translator] | None = None) -> BusTable:
    """The table from the YAML document's data and the bindings' translators (what each
    controller provides); CheckDataError naming the key or binding when malformed."""
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

    provides = {d: kind(k, f"provides.{d}") for d, k in _map(top.get("provides") or {}, "provides").items()}
    for t in (translators or {}).values():
        if t.provides is not None:
            provides.setdefault(t.driver, kind(t.provides, f"{t.files[0]}: qemu: provides"))
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
    hotplug_made = {d: str(m) for d, m in _map(off.get("made") or {}, "hotplug-off.made").items()}
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
    return BusTable(kinds, provides, tuple(patterns), placement, hotplug_self, hotplug_root, hotplug_made, ide_units,
                    needs, user)


@functools.lru_cache(maxsize=1)
def bus_table() -> BusTable:
    """dtvm's bus table (``vm/data/buses.yaml``), read once."""
    try:
        data = load_yaml(package_text("dtvm.vm", "data/buses.yaml"))
    except Exception as exc:
        if not is_data_error(exc):
            raise
        raise CheckDataError(f"buses.yaml: {first_line(exc)}") from None
    return load_bus_table(data, translators())


def needs_backend() -> dict[str, str]:
    """Device type -> the back-end QEMU cannot create it without (the bindings' ``qemu: needs``)."""
    return {d: t.needs for d, t in translators().items() if t.needs is not None}


@dataclass(frozen=True)
class DeviceLink:
    """One link a type's -device must be given to another device (``device-links`` in
    data/devices.yaml): the types it may name, and whether they sit on no bus (an IPMI interface's
    BMC) or on the linking device's own bus (a vmmouse's i8042)."""

    types: tuple[str, ...]
    no_bus: bool

    def describe(self) -> str:
        """The target's kind in words, for messages."""
        return " or ".join(self.types)


def device_links_of(driver: str) -> dict[str, DeviceLink]:
    """Link property -> its rule, for a -device of ``driver`` (empty when it takes none)."""
    section = (device_facts().get("device-links") or {}).get(driver) or {}
    out: dict[str, DeviceLink] = {}
    for name, rule in section.items() if isinstance(section, dict) else ():
        if isinstance(rule, str):
            out[str(name)] = DeviceLink((rule,), False)
        elif isinstance(rule, dict) and isinstance(rule.get("no-bus"), list):
            out[str(name)] = DeviceLink(tuple(str(t) for t in rule["no-bus"]), True)
        else:
            raise CheckDataError(f"devices.yaml: device-links: {driver}.{name}: expected a type or {{no-bus: [types]}}")
    return out


def link_mates(dev: Device, rule: DeviceLink, root: Bus) -> list[Device]:
    """The devices a link of ``dev`` may name, in the description's order (the position a
    description states counts in it): of the rule's types on ``dev``'s bus, or on no bus (devices
    of the machine's root without an address: by type, then creation order, as their nodes)."""
    if not rule.no_bus:
        return [d for d in (dev.parent.devices if dev.parent is not None else []) if d.driver in rule.types]
    # read from QEMU they are numbered ("nth"); read back from a tree, in node order ("none")
    found = [d for d in root.devices if d.driver in rule.types and d.address[0] in ("nth", "none")]
    return sorted(found, key=lambda d: (d.driver, d.address[1]))


def link_machine_chardevs(config: Config) -> None:
    """Give a machine-made port the chardev QEMU attached to it (data/devices.yaml
    ``machine-chardevs``), when that chardev exists: neither qtree nor the offline profiles show
    the link, and without it ``show`` called the console unused and ``dtb2qemu`` dropped it."""
    rules = device_facts().get("machine-chardevs") or {}
    labels = {b.id for b in config.backends if b.kind == "chardev"}
    for dev in config.devices():
        rule = rules.get(dev.driver)
        if rule is None or dev.user or "chardev" in dev.backends or "index" not in dev.props:
            continue
        label = str(rule).format(index=dev.props["index"])
        if label in labels:
            dev.backends["chardev"] = label


@functools.lru_cache(maxsize=1)
def device_facts() -> dict[str, Any]:
    """``data/devices.yaml`` as data (needs, turns-off-default, isa-ports), read once per process."""
    try:
        data = load_yaml(package_text("dtvm.vm", "data/devices.yaml"))
    except Exception as exc:
        if not is_data_error(exc):
            raise
        raise CheckDataError(f"devices.yaml: {first_line(exc)}") from None
    if not isinstance(data, dict):
        raise CheckDataError("devices.yaml: expected a mapping")
    return data
