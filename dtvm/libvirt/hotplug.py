"""Hot-plug through libvirt with the address dtvm assigns: one address assignment, one tracker.

libvirt keeps its own record of a domain's devices and QEMU its own; hot-plugging with QMP behind
libvirt's back would make them disagree.  So ``add`` asks libvirt (``virDomainAttachDeviceFlags``,
live) for the device, as the element ``dtb2libvirt`` writes for it, with the address dtvm chose by
QEMU's own rules (``dtvm.qemu.assign``, the same as ``dtvm hotplug --qmp``): libvirt's XML, QEMU
and the description then agree.  ``del`` asks libvirt to detach the device named by its alias (the
qdev id) or by its node path in the description (as plain ``hotplug del``; machine-made devices are
refused) and follows it until QEMU lets it go, or records the unplug as pending.  A device libvirt
attached for someone else (``virsh attach-device``) shows up in the next description with QOM's
``hotplugged`` flag, marked ``qemu,hotplugged`` in the overlay like every hot-plugged device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

from dtvm.libvirt.connect import binding, message
from dtvm.libvirt.describe import describe_domain
from dtvm.libvirt.domxml import device_table, device_xml, host_facts
from dtvm.libvirt.facts import parse_xml
from dtvm.libvirt.monitor import LibvirtSession
from dtvm.libvirt.read import domain_xml, read_domain
from dtvm.qemu.assign import AssignError, address_keys, assign
from dtvm.qemu.config import from_snapshot
from dtvm.qemu.describe import describe_snapshot
from dtvm.qemu.hotplug import (
    DeviceTypes,
    HotplugError,
    Outputs,
    _bus_parents,
    _ident_of_node,
    mark_pending,
    parse_device,
)
from dtvm.vm.model import Config, Device
from dtvm.vm.readback import read_config

__all__ = ["LibvirtAdd", "LibvirtDel", "attach", "detach"]

#: where QOM keeps the devices made with an id (libvirt names every device it makes)
_PERIPHERAL = "/machine/peripheral/"


@dataclass
class LibvirtAdd:
    id: str
    driver: str
    key: str
    xml: str
    written: list[str] = field(default_factory=list)


@dataclass
class LibvirtDel:
    id: str
    state: str  # "deleted" or "pending"
    written: list[str] = field(default_factory=list)


def _types(domain: Any, timeout: float) -> DeviceTypes:
    from dtvm.qemu import qmp

    session = LibvirtSession(domain, f"libvirt domain {domain.name()!r}")
    try:
        return qmp.run(lambda: DeviceTypes.read(cast(Any, session), timeout))
    finally:
        session.close()


def _below_root(key: str) -> str:
    """A position without its first step: the system-bus device is named by driver and instance in
    a Config read from QEMU (``/q35-pcihost#0``) and by its missing address in one read back from a
    description (``/none:``); below it the steps are bus addresses in both."""
    parts = key.split("/", 2)
    return parts[2] if len(parts) > 2 else ""


def _by_key(config: Config) -> dict[str, Device]:
    return {_below_root(dev.key()): dev for dev in config.devices() if _below_root(dev.key())}


def attach(domain: Any, device: str, outputs: Outputs, *, timeout: float = 20.0) -> LibvirtAdd:
    """Hot-plug ``device`` (``-device`` syntax: driver, ``bus=`` a libvirt controller's qdev id,
    optional address keys and ``mac=``) into the running ``domain`` at the address dtvm assigns."""
    libvirt, _ = binding()
    outputs.check()
    request = parse_device(device)
    types = _types(domain, timeout)
    driver = types.resolve(request.driver)
    kind, console = types.kind(driver)
    if driver not in device_table():
        raise HotplugError(f"{driver}: no libvirt element dtvm knows for it (data/devices.yaml)")
    live = from_snapshot(read_domain(domain, timeout=timeout))
    requested = {k: v for k, v in request.options.items() if k == "bus" or k in address_keys(kind)}
    try:
        placement = assign(live, driver, kind, requested, hotplug=True, console=console, parents=_bus_parents(types))
    except AssignError as err:
        raise HotplugError(str(err)) from None
    # the same VM as its description reads back (node paths and libvirt's facts), the new device
    # added at the bus the placement names
    desc = describe_domain(domain, timeout=timeout)
    config = read_config(desc.guest, desc.backend)
    owner = placement.bus.parent
    if owner is None:
        raise HotplugError(f"{driver}: dtvm hot-plugs onto controllers, not the system bus")
    parent = _by_key(config).get(_below_root(owner.key()))
    if parent is None or len(parent.buses) != 1:
        raise HotplugError(f"bus {placement.bus.name}: its controller is not in the description")
    if kind == "virtio-serial" and parent.parent is not None and parent.parent.type != "virtio":
        raise HotplugError(f"bus {placement.bus.name}: not a virtio-serial bus")
    props = {k: v for k, v in request.options.items() if k not in ("bus", *address_keys(kind))}
    if driver in ("virtio-net-pci", "e1000", "e1000e", "rtl8139") and "mac" not in props:
        import secrets

        props["mac"] = "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))
    new = Device(driver, placement.address, props, parent=parent.buses[0], hotplugged=True)
    parent.buses[0].devices.append(new)
    xml = device_xml(config, new, host_facts(desc.backend), desc.guest)
    try:
        domain.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError as exc:
        raise HotplugError(f"libvirt refused the device: {message(exc)}") from None
    after = describe_domain(domain, timeout=timeout)
    got = read_config(after.guest, after.backend)
    mine = _by_key(got).get(_below_root(new.key()))
    if mine is None or mine.driver != driver:
        raise HotplugError(f"libvirt attached {driver} elsewhere than {new.key()}, where dtvm assigned it")
    written = outputs.write(after)
    return LibvirtAdd(mine.qdev_id or "", driver, new.key(), xml, written)


def _alias_of(domain: Any, ident: str, timeout: float) -> str:
    """libvirt's alias of the device ``ident`` names: itself, a QOM path ``/machine/peripheral/ID``
    or the node path of the domain's description (what ``dtvm show --paths`` prints), as plain
    ``hotplug del`` takes them; a device the machine made is refused (libvirt did not make it)."""
    if not ident.startswith("/"):
        return ident
    if ident.startswith("/machine/"):
        if ident.startswith(_PERIPHERAL) and "/" not in ident[len(_PERIPHERAL):]:
            return ident[len(_PERIPHERAL):]
        raise HotplugError(f"{ident}: not a device libvirt made (libvirt's devices are /machine/peripheral/ALIAS)")
    snapshot = read_domain(domain, timeout=timeout)
    found = _ident_of_node(from_snapshot(snapshot), describe_snapshot(snapshot), ident)
    if found.startswith("/"):
        raise HotplugError(f"{ident}: a device without a qdev id: libvirt did not make it")
    return found


def detach(domain: Any, ident: str, outputs: Outputs, *, timeout: float = 20.0, wait: float = 5.0) -> LibvirtDel:
    """Detach the device ``ident`` names (libvirt's alias, which is its qdev id, or its node path in
    the description); follow it for ``wait`` seconds."""
    import xml.etree.ElementTree as ET

    libvirt, _ = binding()
    outputs.check()
    ident = _alias_of(domain, ident, timeout)
    root = parse_xml(domain_xml(domain), f"domain {domain.name()!r}")
    devices = root.find("devices")
    elem = next((e for e in (devices if devices is not None else []) if (a := e.find("alias")) is not None
                 and a.get("name") == ident), None)
    if elem is None:
        raise HotplugError(f"domain {domain.name()!r} has no device with alias {ident!r}")
    try:
        domain.detachDeviceFlags(ET.tostring(elem, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError as exc:
        raise HotplugError(f"libvirt refused to detach {ident}: {message(exc)}") from None
    deadline = time.monotonic() + wait
    while True:
        desc = describe_domain(domain, timeout=timeout)
        config = read_config(desc.guest, desc.backend)
        present = any(d.qdev_id == ident for d in config.devices())
        if not present or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if present:  # QEMU waits for the guest (ACPI hot-plug): the description keeps it, marked
        mark_pending(desc, from_snapshot(read_domain(domain, timeout=timeout)), [ident])
    return LibvirtDel(ident, "pending" if present else "deleted", outputs.write(desc))

