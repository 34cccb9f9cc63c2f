"""``dtvm hotplug watch --libvirt``: keep a domain's description current from libvirt's device events.

libvirt reports every device it attaches or detaches (``DEVICE_ADDED``, ``DEVICE_REMOVED``, whoever
asked: dtvm, ``virsh attach-device``, a guest ejecting a PCI device) and the domain's end
(``LIFECYCLE`` stopped).  On each, and every ``interval`` seconds in case an event was missed, the
domain is described again and the files rewritten when they changed.  libvirt's default event loop
runs in this thread with a one-second timer, so Ctrl-C and SIGTERM are seen within a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dtvm.libvirt.connect import LibvirtError, binding, default_uri, lookup, message
from dtvm.libvirt.describe import describe_domain
from dtvm.qemu.hotplug import Outputs

__all__ = ["WatchEvent", "watch_domain"]


@dataclass
class WatchEvent:
    """What one round saw: libvirt's device events (``added ALIAS`` / ``removed ALIAS``) and the files written."""

    events: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    first: bool = False


def watch_domain(name: str, uri: str | None, outputs: Outputs, *, interval: float = 5.0, timeout: float = 20.0,
                 report: Callable[[WatchEvent], None] | None = None) -> str:
    """Follow the running domain ``name`` until it stops (returns why) or Ctrl-C (raises)."""
    libvirt, _ = binding()
    outputs.check()
    libvirt.virEventRegisterDefaultImpl()  # before the connection: its events go to this loop
    where = default_uri(uri)
    try:
        conn = libvirt.open(where)
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"{where}: cannot connect: {message(exc)}") from None
    seen: list[str] = []
    stopped: list[str] = []
    ids: list[int] = []
    timer = -1
    try:
        domain = lookup(conn, name)

        def added(_c: Any, _d: Any, alias: str, _o: Any) -> None:
            seen.append(f"added {alias}")

        def removed(_c: Any, _d: Any, alias: str, _o: Any) -> None:
            seen.append(f"removed {alias}")

        def lifecycle(_c: Any, _d: Any, event: int, _detail: int, _o: Any) -> None:
            if event in (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_UNDEFINED):
                stopped.append("the domain stopped")

        ids.append(conn.domainEventRegisterAny(domain, libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, added, None))
        ids.append(conn.domainEventRegisterAny(domain, libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, removed, None))
        ids.append(conn.domainEventRegisterAny(domain, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None))
        timer = libvirt.virEventAddTimeout(1000, lambda _t, _o: None, None)
        first = True
        last = 0.0
        while True:
            if stopped:
                return stopped[0]
            if seen or first or time.monotonic() - last >= interval:
                events, seen[:] = list(seen), []
                try:
                    desc = describe_domain(domain, timeout=timeout)
                except LibvirtError:
                    if not domain.isActive():
                        return "the domain stopped"
                    raise
                round_ = WatchEvent(events, outputs.write(desc), first)
                if report is not None:
                    report(round_)
                first = False
                last = time.monotonic()
            libvirt.virEventRunDefaultImpl()
    finally:
        for ident in ids:
            try:
                conn.domainEventDeregisterAny(ident)
            except libvirt.libvirtError:
                pass
        if timer >= 0:
            libvirt.virEventRemoveTimeout(timer)
        conn.close()
