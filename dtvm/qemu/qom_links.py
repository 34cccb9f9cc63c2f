"""The QOM links of the user's devices to objects of their own (``-object``), as the description states them.

``info qtree`` shows qdev properties, never links: a CAN card's ``canbus`` (which ``can-bus``
object its controller sends on) and acpi-erst's ``memdev`` (the RAM that holds its records) are
read from QOM (``qom-get``, in ``qmp``) and would otherwise be lost, so the rebuilt card is
refused ("can_sja_connect_to_bus failed", "'memdev' property is not set").  Which links a guest
tree may carry, and which objects, is the trust model's ``guest-links`` (``data/trust.json``):
the link's value becomes the object in ``-object`` syntax (``can-bus,id=can0``), so that the guest
tree alone rebuilds it and ``dtvm dtb2qemu`` creates nothing a rule does not allow.

Ids: a CAN bus's id is seen by neither the guest nor migration, so the buses are numbered
``can0``, ``can1``... in the order of the positions of the devices that link them (two readings
of one VM, and the VM rebuilt from its description, read the same); a RAM back-end keeps its id,
because migration names its RAM block by it.
"""

from __future__ import annotations

from typing import Any

from dtvm.errors import DtvmError
from dtvm.qemu.snapshot import Snapshot
from dtvm.qemu.trust import GuestLink, trust
from dtvm.vm.model import Config

__all__ = ["HOST_OBJECTS", "describe_links", "link_value"]

#: the option under which a memory back-end's host side keeps its QOM type in the overlay
QOM_TYPE = "qom-type"

#: QOM types under /objects that connect a VM's devices to the host and that no description holds yet
HOST_OBJECTS = {"can-host-socketcan": "connects a CAN bus to a host CAN interface"}


def describe_links(config: Config, snapshot: Snapshot) -> None:
    """Set each user device's described links (``dev.props[link] = "-object options"``); DtvmError
    naming the device for a link to an object the trust model keeps for the host."""
    for name, held in sorted(snapshot.objects.items()):
        qom_type = str(held.get("type", ""))
        if qom_type in HOST_OBJECTS:
            raise DtvmError(f"-object {qom_type},id={name}: {HOST_OBJECTS[qom_type]}; dtvm does not describe "
                            "host CAN interfaces yet")
    by_path = {p.qom_path: p for p in snapshot.peripherals}
    memdevs = {str(m.get("id")): m for m in snapshot.memdevs}
    rules = trust()
    numbered: dict[str, str] = {}
    for dev in sorted(config.devices(), key=lambda d: d.key()):
        per = by_path.get(dev.qom_path or "")
        if per is None:
            continue
        for name, link in sorted(per.links.items()):
            target = link.get("target", "")
            rule = rules.guest_link(dev.driver, link.get("type", ""))
            if rule is None or not target:
                continue  # a link the description does not hold (an unset one: QEMU refused no device)
            where = f"{dev.driver} at {dev.key()}: {name}"
            ident = target.removeprefix("/objects/")
            info = snapshot.objects.get(ident)
            if not target.startswith("/objects/") or info is None:
                raise DtvmError(f"{where}: links {target!r}, not an object of -object")
            found = str(info.get("type", ""))
            if found in rule.host_objects:
                _host_side(config, ident, info)
            elif found != rule.object:
                known = " or ".join((rule.object, *rule.host_objects))
                raise DtvmError(f"{where}: links a {found} ({ident}); only a {known} is described here "
                                "(dtvm/qemu/data/trust.json guest-links says why)")
            dev.props[name] = link_value(rule, ident, numbered, memdevs.get(ident, {}), where)
            dev.backends.pop(name, None)


def link_value(rule: GuestLink, ident: str, numbered: dict[str, str], memdev: dict[str, Any], where: str) -> str:
    """A link's described value (offline describes its links with it too): a CAN bus numbered
    by the order ``numbered`` has met them in (the devices' positions), a RAM back-end under its
    own id with what query-memdev reports of it (``memdev``); DtvmError naming ``where`` for what
    dtb2qemu would refuse."""
    options: dict[str, str] = {}
    if rule.id == "numbered":
        ident = numbered.setdefault(ident, f"can{len(numbered)}")
    else:
        options = {k: str(memdev[k]) for k in rule.options if k in memdev}
        missing = [k for k in rule.options if k not in options]
        if missing:
            raise DtvmError(f"{where}: query-memdev does not report {missing[0]} of {ident}")
    value = rule.value(ident, options)
    rule.parse(value, where)  # what dtb2qemu would refuse is refused here, by name
    return value


def _host_side(config: Config, ident: str, info: dict[str, Any]) -> None:
    """A back-end whose host side (a file) the guest does not see: the overlay's memory back-end of
    that id gets its QOM type and own settings (mem-path, ...), the guest tree keeps what the guest
    sees (the rule's object, RAM of that size)."""
    backend = next((b for b in config.backends if b.kind == "memdev" and b.id == ident), None)
    if backend is None:
        raise DtvmError(f"-object {info.get('type')},id={ident}: query-memdev does not list it")
    backend.options[QOM_TYPE] = str(info.get("type"))
    for key, value in info.items():
        if key != "type":
            backend.options[key] = ("on" if value else "off") if isinstance(value, bool) else str(value)
