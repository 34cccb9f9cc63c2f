"""Let libvirt judge a domain XML dtvm wrote: start it once, describe it, compare with the description.

The check domain is transient, paused and private (``dtvm.libvirt.transient``), and it must not
touch the VM's real disks (the running original holds their locks, and a check must never write
them): each disk image is replaced by a sparse stand-in of the same virtual size in a private
directory, which is what the guest can see of an image (its geometry and size).  The stand-ins and
the domain are gone when the check returns, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import xml.etree.ElementTree as ET
from typing import Any

from dtvm.libvirt.connect import LibvirtError
from dtvm.libvirt.describe import describe_domain
from dtvm.libvirt.facts import parse_xml
from dtvm.libvirt.transient import transient_domain

__all__ = ["CheckError", "check_domain_xml"]


class CheckError(LibvirtError):
    """libvirt built other hardware than the description states (names the first difference)."""


def _virtual_size(path: str, fmt: str) -> int:
    """The size the guest sees: a raw file's length, a qcow2 header's virtual size."""
    try:
        if fmt == "qcow2":
            with open(path, "rb") as f:
                header = f.read(32)
            if len(header) < 32 or header[:4] != b"QFI\xfb":
                raise LibvirtError(f"{path}: not a qcow2 image")
            return int(struct.unpack(">Q", header[24:32])[0])
        return os.stat(path).st_size
    except OSError as exc:
        raise LibvirtError(f"{path}: {exc.strerror or exc}") from None


def _with_standins(xml: str, where: str, tmp: str) -> str:
    root = parse_xml(xml, where)
    for n, disk in enumerate(root.iterfind("devices/disk")):
        source, driver = disk.find("source"), disk.find("driver")
        if source is None or source.get("file") is None:
            continue
        fmt = driver.get("type", "raw") if driver is not None else "raw"
        size = _virtual_size(str(source.get("file")), fmt)
        stand_in = os.path.join(tmp, f"disk{n}.img")
        with open(stand_in, "wb") as f:
            f.truncate(size)
        os.chmod(stand_in, 0o644)
        source.set("file", stand_in)
        if driver is not None:
            driver.set("type", "raw")
    return ET.tostring(root, encoding="unicode")


def check_domain_xml(conn: Any, xml: str, guest_blob: bytes, where: str, *, timeout: float = 20.0) -> None:
    """Nothing when libvirt builds exactly the described hardware; one-line errors otherwise."""
    from dtvm.dt.dtb import read_dtb, write_dtb

    tmp = tempfile.mkdtemp(prefix="dtvm-check-")
    try:
        os.chmod(tmp, 0o755)  # the QEMU libvirt runs may be another user
        checked = _with_standins(xml, where, tmp)
        with transient_domain(conn, checked, where) as domain:
            desc = describe_domain(domain, timeout=timeout)
        got = write_dtb(desc.guest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if got != guest_blob:
        from dtvm.dt.dts.write import write_dts

        want_lines = write_dts(read_dtb(guest_blob, "description")).splitlines()
        got_lines = write_dts(desc.guest).splitlines()
        first = next((i for i, (a, b) in enumerate(zip(want_lines, got_lines, strict=False)) if a != b),
                     min(len(want_lines), len(got_lines)))
        want = want_lines[first].strip() if first < len(want_lines) else "(end)"
        have = got_lines[first].strip() if first < len(got_lines) else "(end)"
        raise CheckError(f"{where}: libvirt builds other hardware: line {first + 1} of the guest tree reads "
                         f"{have!r} where the description has {want!r}")
