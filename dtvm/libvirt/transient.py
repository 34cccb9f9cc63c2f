"""Loose domain XML to a precise description: libvirt builds it, dtvm reads what it built.

libvirt fills in what the XML leaves loose (controllers, addresses, MACs, the machine version)
only when it starts the domain, so the domain is started as a *transient* one, paused, read and
destroyed.  Nothing may outlive the call: the domain is created with ``START_AUTODESTROY`` (libvirtd
destroys it when dtvm's connection closes, so even a SIGKILL of dtvm leaves nothing running),
destroyed explicitly in every case (errors, timeouts, Ctrl-C, SIGTERM), under a name of its own
(``dtvm-NAME-XXXXXXXX``, a new UUID) so it never collides with the user's domain of that name, and
a UEFI variable store libvirt created for it (``<nvram>``) is removed with it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

from dtvm.libvirt.connect import LibvirtError, binding, message
from dtvm.libvirt.describe import describe_domain
from dtvm.libvirt.facts import DOMAIN_NODE, parse_xml
from dtvm.libvirt.read import domain_xml
from dtvm.vm.codec import overlay_target, strings
from dtvm.vm.translate import Description

__all__ = ["describe_xml", "transient_domain"]


def _renamed(root: ET.Element) -> tuple[str, str | None, str]:
    """(original name, original UUID, the XML to start): a private name, no UUID."""
    name_elem = root.find("name")
    if name_elem is None or not (name_elem.text or "").strip():
        raise LibvirtError("the domain XML has no <name>")
    name = (name_elem.text or "").strip()
    uuid_elem = root.find("uuid")
    uuid = (uuid_elem.text or "").strip() if uuid_elem is not None else None
    if uuid_elem is not None:
        root.remove(uuid_elem)
    name_elem.text = f"dtvm-{name[:40]}-{secrets.token_hex(4)}"
    return name, uuid or None, ET.tostring(root, encoding="unicode")


@contextlib.contextmanager
def transient_domain(conn: Any, xml_text: str, where: str) -> Iterator[Any]:
    """A transient domain started paused from ``xml_text``; destroyed (and its new NVRAM removed) on leaving."""
    from dtvm.qemu.process import signals_as_interrupt, signals_blocked

    libvirt, _ = binding()
    root = parse_xml(xml_text, where)
    _name, _uuid, started_xml = _renamed(root)
    flags = libvirt.VIR_DOMAIN_START_PAUSED | libvirt.VIR_DOMAIN_START_AUTODESTROY
    with signals_as_interrupt():
        nvram_before = _nvram_paths(root)
        existed = {p for p in nvram_before if os.path.lexists(p)}
        domain = None
        try:
            with signals_blocked():  # a signal between create and the assignment would orphan it
                try:
                    domain = conn.createXML(started_xml, flags)
                except libvirt.libvirtError as exc:
                    raise LibvirtError(f"{where}: libvirt refused the domain: {message(exc)}") from None
            yield domain
        finally:
            with signals_blocked():
                if domain is not None:
                    nvram = set(nvram_before)
                    with contextlib.suppress(LibvirtError):  # the path libvirt chose for it
                        nvram |= _nvram_paths(parse_xml(domain_xml(domain), where))
                    with contextlib.suppress(libvirt.libvirtError):
                        domain.destroy()
                    # a variable store that existed before is the user's; one libvirt made for us is not
                    for path in nvram - existed:
                        with contextlib.suppress(OSError):
                            os.unlink(path)


def _nvram_paths(root: ET.Element) -> set[str]:
    elem = root.find("os/nvram")
    return {elem.text.strip()} if elem is not None and elem.text and elem.text.strip() else set()


def describe_xml(conn: Any, xml_text: str, where: str, *, timeout: float = 20.0,
                 compat: dict[str, list[str]] | None = None) -> Description:
    """The precise description of the loose domain XML ``xml_text`` (``where`` names it in errors)."""
    name, uuid, _ = _renamed(parse_xml(xml_text, where))
    with transient_domain(conn, xml_text, where) as domain:
        desc = describe_domain(domain, timeout=timeout, compat=compat)
    # the overlay names the user's domain, not the private transient name it ran under
    node = overlay_target(desc.backend, "/").get_child(DOMAIN_NODE)
    if node is not None:
        node.set_property("name", strings(name))
        if uuid:
            node.set_property("uuid", strings(uuid))
        elif node.get_property("uuid") is not None:
            node.delete_property("uuid")
    return desc
