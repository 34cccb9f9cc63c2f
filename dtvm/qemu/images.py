"""Disk images as QEMU 7.2 reads them, for the offline model: what the guest sees of an image is
its size (raw: the file's; qcow2: the header's) and, for the geometry QEMU guesses, whether its
first sector holds a partition table.  Anything else QEMU would read is refused by name."""

from __future__ import annotations

import os
import struct

from dtvm.errors import DtvmError

__all__ = ["ImageError", "guest_size", "is_qcow2"]


class ImageError(DtvmError):
    """An image the offline model cannot read as QEMU does (names the file and why)."""


_QCOW2_MAGIC = b"QFI\xfb"
_QCOW2_OFFSET = 0x00FFFFFFFFFFFE00  # the host offset bits of an L1/L2 entry


def is_qcow2(path: str, what: str) -> bool:
    """Whether QEMU's format probe would take the image for qcow2 (its magic)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == _QCOW2_MAGIC
    except OSError as exc:
        raise ImageError(f"{what}: {path}: {exc.strerror or exc}: the offline model needs the image (use online mode)") from None


def _qcow2_facts(path: str, what: str) -> tuple[int, bytes]:
    """A qcow2 image's virtual size (its header, as QEMU reads it) and the guest's first sector
    (through L1 and L2; zeros where unallocated).  Backing files, encryption, compressed or
    external data clusters are refused by name."""
    try:
        with open(path, "rb") as f:
            header = f.read(104)
            if len(header) < 72 or header[:4] != _QCOW2_MAGIC:
                raise ImageError(f"{what}: {path}: not a qcow2 image")
            version, backing, _, cluster_bits, size, crypt, l1_size, l1_offset = struct.unpack(">IQIIQIIQ", header[4:48])
            if version not in (2, 3) or not 9 <= cluster_bits <= 21:
                raise ImageError(f"{what}: {path}: qcow2 version {version}, cluster bits {cluster_bits}: not in the offline model (use online mode)")
            if backing:
                raise ImageError(f"{what}: {path}: a qcow2 image with a backing file is not in the offline model (use online mode)")
            if crypt:
                raise ImageError(f"{what}: {path}: an encrypted qcow2 image is not in the offline model (use online mode)")
            if version == 3 and len(header) >= 80 and struct.unpack(">Q", header[72:80])[0] & ~1:
                raise ImageError(f"{what}: {path}: qcow2 incompatible features are not in the offline model (use online mode)")
            first = bytes(512)
            if l1_size:
                f.seek(l1_offset)
                l2_offset = struct.unpack(">Q", f.read(8).ljust(8, b"\0"))[0] & _QCOW2_OFFSET
                if l2_offset:
                    f.seek(l2_offset)
                    entry = struct.unpack(">Q", f.read(8).ljust(8, b"\0"))[0]
                    if entry & (1 << 62):
                        raise ImageError(f"{what}: {path}: a compressed first cluster is not in the offline model (use online mode)")
                    if entry & _QCOW2_OFFSET and not (version == 3 and entry & 1):
                        f.seek(entry & _QCOW2_OFFSET)
                        first = f.read(512).ljust(512, b"\0")
    except OSError as exc:
        raise ImageError(f"{what}: {path}: {exc.strerror or exc}: the offline model needs the image (use online mode)") from None
    return size, first


def guest_size(path: str, what: str, fmt: str = "raw") -> int:
    """The size the guest sees of an image (raw: the file; qcow2: its header), and a refusal when
    the guest would see more than the size (an MBR whose partitions QEMU reads to guess the disk
    geometry)."""
    if fmt == "qcow2":
        size, first = _qcow2_facts(path, what)
    else:
        try:
            size = os.stat(path).st_size
            with open(path, "rb") as f:
                first = f.read(512)
        except OSError as exc:
            raise ImageError(f"{what}: {path}: {exc.strerror or exc}: the offline model needs the image's size (use online mode)") from None
    if len(first) == 512 and first[510:512] == b"\x55\xaa" and any(first[446 + 16 * k + 4] for k in range(4)):
        raise ImageError(f"{what}: {path} has a partition table: QEMU guesses the disk geometry from it (use online mode)")
    return size
