"""Disk images as QEMU 7.2 reads them, for the offline model: what the guest sees of an image is
its size (raw: the file's; qcow2: the header's) and, for the geometry QEMU guesses, whether its
first sector holds a partition table.  Anything else QEMU would read is refused by name."""

from __future__ import annotations

import os
import struct
from typing import Any

from dtvm.errors import DtvmError

__all__ = ["FORMATS", "ImageError", "guest_size", "is_qcow2", "probe_format"]

#: the image formats whose virtual size and first sector the offline model reads as QEMU does
FORMATS = ("raw", "qcow2", "qed", "vdi")


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


#: magics of the formats QEMU's probe recognises that the offline model does not read (a file
#: of one of them, given without format=, is not taken for raw: QEMU would not)
_OTHER_MAGICS = ((0, b"KDMV", "vmdk"), (0, b"# Disk DescriptorFile", "vmdk"), (0, b"conectix", "vpc"),
                 (0, b"vhdxfile", "vhdx"), (0, b"LUKS\xba\xbe", "luks"), (0, b"WithoutFreeSpace", "parallels"),
                 (0, b"WithouFreSpacExt", "parallels"), (0, b"Bochs Virtual HD Image", "bochs"),
                 (0, b"#!/bin/sh\n#V2.0 Format", "cloop"))
_VDI_SIGNATURE = 0xBEDA107F


def probe_format(path: str, what: str) -> str:
    """The format QEMU's probe gives the image (block.c find_image_format: the drivers' magics,
    raw when none matches); a recognised format the offline model does not read is refused."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise ImageError(f"{what}: {path}: {exc.strerror or exc}: the offline model needs the image (use online mode)") from None
    if head[:4] == _QCOW2_MAGIC:
        return "qcow2"
    if head[:4] == b"QED\0":
        return "qed"
    if len(head) >= 0x48 and struct.unpack("<I", head[0x40:0x44])[0] == _VDI_SIGNATURE:
        return "vdi"
    for offset, magic, fmt in _OTHER_MAGICS:
        if head[offset:offset + len(magic)] == magic:
            raise ImageError(f"{what}: {path}: a {fmt} image: not in the offline model (raw, qcow2, qed, vdi; use online mode)")
    return "raw"


class _PastEnd(Exception):
    """A table entry points past the end of the image file (damaged or crafted)."""


def _read_at(f: Any, offset: int, size: int) -> bytes:
    """SIZE bytes at OFFSET (zeros past the end of a short read). Offsets come from the image's own
    tables, so one beyond the file is refused rather than given to seek (which cannot take a
    64-bit value above its range)."""
    if offset > os.fstat(f.fileno()).st_size:
        raise _PastEnd
    f.seek(offset)
    return f.read(size).ljust(size, b"\0")


def _qed_facts(path: str, what: str) -> tuple[int, bytes]:
    """A QED image's size (its header) and the guest's first sector through its L1 and L2 tables
    (block/qed.h: little-endian; an offset 0 is unallocated, 1 a zero cluster)."""
    try:
        with open(path, "rb") as f:
            header = _read_at(f, 0, 64)
            cluster, _, _, features, _, _, l1_offset, size, _, backing_size = struct.unpack("<IIIQQQQQII", header[4:64])
            if header[:4] != b"QED\0" or cluster < 4096 or cluster & (cluster - 1):
                raise ImageError(f"{what}: {path}: not a QED image the offline model reads")
            if features & 1 or backing_size:
                raise ImageError(f"{what}: {path}: a QED image with a backing file is not in the offline model (use online mode)")
            first = bytes(512)
            l2 = struct.unpack("<Q", _read_at(f, l1_offset, 8))[0]
            if l2 > 1:
                data = struct.unpack("<Q", _read_at(f, l2, 8))[0]
                if data > 1:
                    first = _read_at(f, data, 512)
    except OSError as exc:
        raise ImageError(f"{what}: {path}: {exc.strerror or exc}: the offline model needs the image (use online mode)") from None
    except struct.error:
        raise ImageError(f"{what}: {path}: a truncated QED header") from None
    return size, first


def _vdi_facts(path: str, what: str) -> tuple[int, bytes]:
    """A VDI image's disk size (its header; QEMU does not use the geometry stored there) and the
    guest's first sector through the block map (block/vdi.c: little-endian; 0xffffffff and
    0xfffffffe are blocks that read as zeros)."""
    try:
        with open(path, "rb") as f:
            header = _read_at(f, 0, 0x188)
            offset_bmap, offset_data = struct.unpack("<II", header[0x154:0x15C])
            size, block_size = struct.unpack("<QI", header[0x170:0x17C])
            if struct.unpack("<I", header[0x40:0x44])[0] != _VDI_SIGNATURE or not block_size:
                raise ImageError(f"{what}: {path}: not a VDI image the offline model reads")
            first = bytes(512)
            entry = struct.unpack("<I", _read_at(f, offset_bmap, 4))[0]
            if entry < 0xFFFFFFFE:
                first = _read_at(f, offset_data + entry * block_size, 512)
    except OSError as exc:
        raise ImageError(f"{what}: {path}: {exc.strerror or exc}: the offline model needs the image (use online mode)") from None
    return size, first


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
                l2_offset = struct.unpack(">Q", _read_at(f, l1_offset, 8))[0] & _QCOW2_OFFSET
                if l2_offset:
                    entry = struct.unpack(">Q", _read_at(f, l2_offset, 8))[0]
                    if entry & (1 << 62):
                        raise ImageError(f"{what}: {path}: a compressed first cluster is not in the offline model (use online mode)")
                    if entry & _QCOW2_OFFSET and not (version == 3 and entry & 1):
                        first = _read_at(f, entry & _QCOW2_OFFSET, 512)
    except OSError as exc:
        raise ImageError(f"{what}: {path}: {exc.strerror or exc}: the offline model needs the image (use online mode)") from None
    return size, first


def guest_size(path: str, what: str, fmt: str = "raw") -> int:
    """The size the guest sees of an image (raw: the file; qcow2: its header), and a refusal when
    the guest would see more than the size (an MBR whose partitions QEMU reads to guess the disk
    geometry)."""
    if fmt in ("qcow2", "qed", "vdi"):
        try:
            size, first = {"qcow2": _qcow2_facts, "qed": _qed_facts, "vdi": _vdi_facts}[fmt](path, what)
        except _PastEnd:
            raise ImageError(f"{what}: {path}: a {fmt} table points past the end of the image: "
                             "not an image the offline model reads (use online mode)") from None
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
