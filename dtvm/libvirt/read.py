"""A running libvirt domain to a Snapshot, through libvirt's QEMU passthrough.

The same reader as ``qemu2dtb --qmp`` (``dtvm.qemu.qmp.read_snapshot``) on a different transport
(``dtvm.libvirt.monitor``), so the Config and the guest tree are the ones ``qemu2dtb`` makes of the
same hardware.  What differs is only what is libvirt's own: its monitor chardev (``charmonitor``,
the socket libvirt talks QMP on) is not part of the VM's hardware and is left out, as dtvm leaves
out the QMP socket it adds itself.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from typing import Any, cast

from dtvm.libvirt.connect import LibvirtError, binding, message
from dtvm.libvirt.monitor import LibvirtSession
from dtvm.qemu.errors import QemuTimeoutError
from dtvm.qemu.snapshot import Snapshot

__all__ = ["LIBVIRT_MONITOR", "domain_xml", "read_domain"]

#: The chardev id of libvirt's own QMP monitor (libvirt's qemuBuildMonitorCommandLine).
LIBVIRT_MONITOR = "charmonitor"

#: Where the system daemon keeps a running domain's pid file.
LIBVIRT_RUN = "/run/libvirt/qemu"

#: The largest domain XML read from libvirt (a domain with hundreds of devices is about 200 KB).
MAX_XML_BYTES = 16 << 20


def domain_xml(domain: Any, flags: int = 0) -> str:
    """The domain's live XML as libvirt states it (aliases and addresses included), bounded."""
    libvirt, _ = binding()
    try:
        text = domain.XMLDesc(flags)
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"domain {domain.name()!r}: {message(exc)}") from None
    if not isinstance(text, str) or len(text) > MAX_XML_BYTES:
        raise LibvirtError(f"domain {domain.name()!r}: its XML is larger than {MAX_XML_BYTES >> 20} MiB")
    return text


def _hand_to_qemu(tmp: str, name: str) -> None:
    """Give the private directory to the user QEMU runs as (libvirt's ``user`` in qemu.conf, often
    libvirt-qemu), so that its ``dumpdtb`` can write there; only for a local domain libvirt started
    (its pid file) and only as root. Elsewhere the directory stays ours and a DT machine's
    ``dumpdtb`` fails with QEMU's own words."""
    if os.geteuid() != 0:
        return
    try:
        with open(os.path.join(LIBVIRT_RUN, f"{os.path.basename(name)}.pid")) as f:
            pid = int(f.read(32).strip())
        uid = os.stat(f"/proc/{pid}").st_uid
    except (OSError, ValueError):
        return
    if uid != 0:
        os.chown(tmp, uid, -1)


def read_domain(domain: Any, *, timeout: float = 20.0, timings: dict[str, float] | None = None) -> Snapshot:
    """What QEMU says about the running ``domain`` (queries only: its run state is untouched).

    ``timeout`` bounds the whole read; ``timings`` receives milliseconds per command group as
    ``dtvm.qemu.live.read_argv`` does.
    """
    libvirt, _ = binding()
    name = domain.name()
    where = f"libvirt domain {name!r}"
    try:
        active = domain.isActive()
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"{where}: {message(exc)}") from None
    if not active:
        raise LibvirtError(f"{where} is not running (start it, or describe its XML with dtvm libvirt2dtb)")
    from dtvm.qemu import qmp
    from dtvm.qemu.process import signals_as_interrupt, signals_blocked

    t = timings if timings is not None else {}
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    session = LibvirtSession(domain, where)

    async def run() -> Snapshot:
        try:
            async with asyncio.timeout_at(deadline):
                # LibvirtSession has QmpSession's interface (where, commands, execute)
                return await qmp.read_snapshot(cast(Any, session), tmp, t)
        except TimeoutError:
            raise QemuTimeoutError(f"{where}: QEMU did not answer within {timeout:g} s") from None

    with signals_as_interrupt():
        # dumpdtb writes QEMU's DT here; the QEMU libvirt runs must be able to write into it
        tmp = tempfile.mkdtemp(prefix="dtvm-libvirt-")
        _hand_to_qemu(tmp, name)
        try:
            snap: Snapshot = qmp.run(run)
        finally:
            with signals_blocked():
                session.close()
                shutil.rmtree(tmp, ignore_errors=True)
    snap.chardevs = [c for c in snap.chardevs if not (isinstance(c, dict) and c.get("label") == LIBVIRT_MONITOR)]
    t["total"] = round((time.perf_counter() - t0) * 1e3, 3)
    return snap


