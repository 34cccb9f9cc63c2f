"""A libvirt domain to a description: ``qemu2dtb``'s guest tree, plus libvirt's host facts in the overlay."""

from __future__ import annotations

from typing import Any

from dtvm.libvirt.facts import add_facts, parse_xml
from dtvm.libvirt.read import domain_xml, read_domain
from dtvm.qemu.describe import describe_snapshot
from dtvm.vm.translate import Description

__all__ = ["describe_domain"]


def describe_domain(domain: Any, *, timeout: float = 20.0, compat: dict[str, list[str]] | None = None,
                    timings: dict[str, float] | None = None) -> Description:
    """The description of the running ``domain``: the guest tree is what QEMU built (the same
    bytes ``qemu2dtb`` makes of the same hardware); libvirt's XML adds host facts only."""
    snapshot = read_domain(domain, timeout=timeout, timings=timings)
    desc = describe_snapshot(snapshot, compat)
    add_facts(desc.backend, parse_xml(domain_xml(domain), f"domain {domain.name()!r}"))
    return desc
