"""libvirt's host facts in the back-end overlay: the domain's identity and each device's alias and source.

They are the host's, never the guest's: the domain's name, UUID, emulator and type, and per device
libvirt's ``alias`` (the qdev id libvirt chose, the key ``virsh`` uses), the disk's source, the
interface's type and source, the character device's type and path.  They go into the overlay the
description already has (a fragment per device, found by its qdev id ``qemu,id``) as ``libvirt,*``
properties, which ``dtb2qemu`` ignores (they are not QEMU's) and ``dtb2libvirt`` reads, plus a node
``/libvirt-domain`` in the root fragment.

The XML comes from libvirt (``virDomainGetXMLDesc``) or from the user (``libvirt2dtb``) and is
bounded: size by its reader; ``xml.etree`` resolves no external entity and Python's expat (2.4 or
newer) refuses entity expansion bombs; the walk below reads fixed paths, never recursing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from dtvm.dt.tree import DeviceTree, Node
from dtvm.libvirt.connect import LibvirtError
from dtvm.vm.codec import fragments, overlay_target, read_string, strings

__all__ = ["DOMAIN_NODE", "add_facts", "device_facts", "device_order", "parse_xml"]

#: The node of the domain's own facts in the overlay's root fragment.
DOMAIN_NODE = "libvirt-domain"

#: The attributes of a device's <source> that are host facts (image, network, bridge, socket, ...).
_SOURCE_ATTRS = ("file", "dev", "path", "network", "bridge", "name", "mode", "host", "service", "dir")


def parse_xml(text: str, where: str) -> ET.Element:
    """The root element of a domain XML, or a one-line error naming ``where`` and the line."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 0
        raise LibvirtError(f"{where}:{line}: not well-formed XML: {str(exc).split(':')[0]}") from None
    if root.tag != "domain":
        raise LibvirtError(f"{where}: the root element is <{root.tag}>, not <domain>")
    return root


#: element attributes whose spelling the overlay keeps (see device_facts)
_SPELLED = {"memballoon": ("autodeflate", "freePageReporting")}


def _source(elem: ET.Element) -> str | None:
    src = elem.find("source")
    if src is None:
        return None
    parts = [f"{k}={src.get(k)}" for k in _SOURCE_ATTRS if src.get(k) is not None]
    return ",".join(parts) or None


def device_facts(root: ET.Element) -> dict[str, dict[str, str]]:
    """qdev id (libvirt's alias) -> the host facts libvirt holds for that device."""
    out: dict[str, dict[str, str]] = {}
    devices = root.find("devices")
    if devices is None:
        return out
    for elem in devices:
        alias = elem.find("alias")
        name = alias.get("name") if alias is not None else None
        if not name:
            continue
        facts = {"alias": name, "element": elem.tag}
        if elem.get("type"):
            facts["type"] = str(elem.get("type"))
        source = _source(elem)
        if source:
            facts["source"] = source
        target = elem.find("target")
        if elem.tag == "disk" and target is not None and target.get("dev"):
            facts["target"] = str(target.get("dev"))
        if elem.tag == "disk" and elem.get("device"):
            facts["device"] = str(elem.get("device"))
        # how the XML spells a switch at QEMU's default ("off" stated or left out): no hardware,
        # but libvirt's ABI check of a migration compares the spelling ("default" is not "off")
        for attr in _SPELLED.get(elem.tag, ()):
            if elem.get(attr) is not None:
                facts[attr] = str(elem.get(attr))
        out[name] = facts
    return out


def domain_facts(root: ET.Element) -> dict[str, str]:
    """The domain's identity as libvirt states it."""
    facts = {"type": root.get("type") or ""}
    for key in ("name", "uuid"):
        elem = root.find(key)
        if elem is not None and elem.text:
            facts[key] = elem.text
    emulator = root.find("devices/emulator")
    if emulator is not None and emulator.text:
        facts["emulator"] = emulator.text
    return {k: v for k, v in facts.items() if v}


def add_facts(backend: DeviceTree, root: ET.Element) -> None:
    """Write libvirt's facts into ``backend`` (the description's overlay), in place."""
    per_device = device_facts(root)
    for _frag, _target, over in fragments(backend):
        ident = read_string(over, "qemu,id")
        facts = per_device.get(ident or "")
        if facts is None:
            continue
        for key, value in facts.items():
            over.set_property(f"libvirt,{key}", strings(value))
    over = overlay_target(backend, "/")
    node = over.get_child(DOMAIN_NODE)
    if node is None:
        node = Node(DOMAIN_NODE)
        over.add_child(node)
    node.set_property("compatible", strings("libvirt,domain"))
    for key, value in domain_facts(root).items():
        node.set_property(key, strings(value))
    order = device_order(root)
    if order:
        node.set_property("device-order", strings(*order))


def device_order(root: ET.Element) -> list[str]:
    """The aliases of the domain's devices in the order of its XML. libvirt's ABI check of a
    migration compares the destination's disks, controllers, ... with the source's one by one in
    that order, so a rebuild for a migration must list them in it (``dtb2libvirt`` does)."""
    devices = root.find("devices")
    if devices is None:
        return []
    out = []
    for elem in devices:
        alias = elem.find("alias")
        name = alias.get("name") if alias is not None else None
        if name:
            out.append(name)
    return out
