"""Offline: the QOM links of the user's devices to objects of their own (``-object can-bus``,
``-object memory-backend-ram``), described as online describes them.

The devices' profiles are recorded like any other (their links taken out: the recorder's own
objects); what the guest tree states of a link is the object in -object syntax, worked out by
the online reader's own code (qom_links.link_value: CAN buses numbered in the order of the
positions of the devices that link them, a RAM back-end under its id with its size) under the
same trust rules, so that offline and online cannot word a link differently.
"""

from __future__ import annotations

from dtvm.qemu.models import OfflineError
from dtvm.qemu.qom_links import HOST_OBJECTS, link_value
from dtvm.qemu.trust import trust
from dtvm.vm.model import Config, Device

__all__ = ["LinkNotes", "check_object", "describe_offline_links", "note_links"]

#: id(device) -> (device, {property: (link type, the user's object id, where)})
LinkNotes = dict[int, tuple[Device, dict[str, tuple[str, str, str]]]]


def note_links(notes: LinkNotes, dev: Device, types: dict[str, dict[str, str]], where: str) -> None:
    """A user's device with guest links (its profile's link properties a trust rule describes;
    online reads those of the user's device, a virtio proxy's too) noted, given or not: QEMU 7.2
    refuses the CAN cards, acpi-erst and the memory devices without every one of them (measured:
    "can_sja_connect_to_bus failed", "'memdev' property is not set")."""
    rules = trust()
    for name, ptype in types.get(dev.driver, {}).items():
        if ptype.startswith("link<") and rules.guest_link(dev.driver, ptype) is not None:
            notes.setdefault(id(dev), (dev, {}))[1].setdefault(name, (ptype, "", where))


def check_object(qom_type: str, ident: str, objects: dict[str, str]) -> None:
    """An ``-object`` the links may name: kept by id (``objects``); a host CAN interface refused
    by name, as online refuses it."""
    if qom_type in HOST_OBJECTS:
        raise OfflineError(f"-object {qom_type},id={ident}: {HOST_OBJECTS[qom_type]}; dtvm does not describe "
                           "host CAN interfaces yet")
    if ident in objects:
        raise OfflineError(f"-object {qom_type},id={ident}: an object of that id is given twice (QEMU refuses it)")
    objects[ident] = qom_type


def describe_offline_links(config: Config, notes: LinkNotes, objects: dict[str, str]) -> None:
    """Each noted link's described value, in the order online meets them (devices by position,
    a device's links by name); OfflineError naming the device for a link the model cannot word."""
    rules = trust()
    numbered: dict[str, str] = {}
    memdevs = {b.id: b.options for b in config.backends if b.kind == "memdev"}
    placed = sorted((dev for dev, _ in notes.values()), key=lambda d: d.key())
    for dev in placed:
        for name, (link_type, ident, where) in sorted(notes[id(dev)][1].items()):
            rule = rules.guest_link(dev.driver, link_type)
            if rule is None:
                continue  # a link online does not describe either (rng=, iothread=)
            if not ident:
                raise OfflineError(f"{where}: no {name}= (QEMU refuses the device without it)")
            found = objects.get(ident)
            if found is None:
                raise OfflineError(f"{where}: {name}={ident}: no -object of that id (QEMU refuses it)")
            if found != rule.object:
                raise OfflineError(f"{where}: {name}={ident}: links a {found}; only a {rule.object} is in the "
                                   "offline model (use online mode)")
            dev.props[name] = link_value(rule, ident, numbered, memdevs.get(ident, {}), f"{where}: {name}")
