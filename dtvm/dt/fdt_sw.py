"""libfdt's sequential-write half (fdt_sw.c and fdt_empty_tree.c of dtc 1.6.1), byte for byte.

A tree built front to back, as firmware builds one: the structure block grows
up from the reservation map while the strings block grows *down* from the end
of the buffer (with negative name offsets), and ``finish`` moves the strings
down behind the structure and rewrites every name offset.  The intermediate
state lives in the header exactly as libfdt keeps it (``FDT_SW_MAGIC``, the
creation flags in ``last_comp_version``, ``off_dt_strings`` as the phase
marker), so a half-built buffer has the same bytes as libfdt's.
"""

from __future__ import annotations

import struct

from dtvm.dt.fdt_ro import (
    _LAST_COMP,
    _M,
    _MAGIC,
    _OFF_RSVMAP,
    _OFF_STRINGS,
    _OFF_STRUCT,
    _SIZE_STRINGS,
    _SIZE_STRUCT,
    _TOTALSIZE,
    _VERSION,
    FDT_BEGIN_NODE,
    FDT_END,
    FDT_END_NODE,
    FDT_ERR_BADFLAGS,
    FDT_ERR_BADMAGIC,
    FDT_ERR_BADSTATE,
    FDT_ERR_INTERNAL,
    FDT_ERR_NOSPACE,
    FDT_LAST_SUPPORTED_VERSION,
    FDT_MAGIC,
    FDT_PROP,
    FDT_SW_MAGIC,
    FDT_TAGSIZE,
    PROP_HEADER_SIZE,
    RSV_ENTRY_SIZE,
    FdtRo,
    _i32,
    _tagalign,
    _u32_from,
    _u32_into,
)
from dtvm.dt.fdt_rw import Fdt, open_into

__all__ = [
    "FDT_CREATE_FLAGS_ALL",
    "FDT_CREATE_FLAG_NO_NAME_DEDUP",
    "FDT_LAST_COMPATIBLE_VERSION",
    "add_reservemap_entry",
    "begin_node",
    "create",
    "create_empty_tree",
    "end_node",
    "finish",
    "finish_reservemap",
    "property",
    "property_placeholder",
    "resize",
]

FDT_CREATE_FLAG_NO_NAME_DEDUP = 0x1
FDT_CREATE_FLAGS_ALL = FDT_CREATE_FLAG_NO_NAME_DEDUP
FDT_LAST_COMPATIBLE_VERSION = 0x10
_HDRSIZE = 48  # FDT_ALIGN(sizeof(struct fdt_header), sizeof(struct fdt_reserve_entry))


def _get(buf: bytearray, field: int) -> int:
    return int(_u32_from(buf, field)[0])


def _set(buf: bytearray, field: int, value: int) -> None:
    _u32_into(buf, field, value & _M)


def _probe(buf: bytearray) -> int:
    magic = _get(buf, _MAGIC)
    if magic == FDT_MAGIC:
        return -FDT_ERR_BADSTATE
    if magic != FDT_SW_MAGIC:
        return -FDT_ERR_BADMAGIC
    return 0


def _probe_memrsv(buf: bytearray) -> int:
    err = _probe(buf)
    if err:
        return err
    return -FDT_ERR_BADSTATE if _get(buf, _OFF_STRINGS) != 0 else 0


def _probe_struct(buf: bytearray) -> int:
    err = _probe(buf)
    if err:
        return err
    return -FDT_ERR_BADSTATE if _get(buf, _OFF_STRINGS) != _get(buf, _TOTALSIZE) else 0


def _grab_space(buf: bytearray, ln: int) -> int:
    """``fdt_grab_space_``: absolute position of ``ln`` new structure bytes, or -1."""
    offset = _get(buf, _SIZE_STRUCT)
    spaceleft = (_get(buf, _TOTALSIZE) - _get(buf, _OFF_STRUCT) - _get(buf, _SIZE_STRINGS)) & _M
    if offset + ln > _M or offset + ln > spaceleft:
        return -1
    _set(buf, _SIZE_STRUCT, offset + ln)
    pos = _get(buf, _OFF_STRUCT) + offset
    _need(buf, pos, ln)
    return pos


def _need(buf: bytearray, pos: int, n: int) -> None:
    if pos < 0 or pos + n > len(buf):
        from dtvm.errors import BlobError

        raise BlobError(f"sequential-write tree promises data at {pos:#x}..{pos + n:#x}, past its buffer", pos)


def create(buf: bytearray, bufsize: int, flags: int = 0) -> int:
    """``fdt_create_with_flags``: start a tree in the first ``bufsize`` bytes of ``buf``."""
    bufsize = _i32(bufsize)
    if bufsize < _HDRSIZE:
        return -FDT_ERR_NOSPACE
    if flags & ~FDT_CREATE_FLAGS_ALL:
        return -FDT_ERR_BADFLAGS
    _need(buf, 0, bufsize)
    buf[:bufsize] = bytes(bufsize)
    _set(buf, _MAGIC, FDT_SW_MAGIC)
    _set(buf, _VERSION, FDT_LAST_SUPPORTED_VERSION)
    _set(buf, _LAST_COMP, flags)
    _set(buf, _TOTALSIZE, bufsize)
    _set(buf, _OFF_RSVMAP, _HDRSIZE)
    _set(buf, _OFF_STRUCT, _HDRSIZE)
    _set(buf, _OFF_STRINGS, 0)
    return 0


def resize(old: bytearray, new: bytearray, bufsize: int) -> int:
    """``fdt_resize`` from ``old`` into the distinct buffer ``new``."""
    err = _probe(old)
    if err:
        return err
    bufsize = _i32(bufsize)
    if bufsize < 0:
        return -FDT_ERR_NOSPACE
    headsize = _get(old, _OFF_STRUCT) + _get(old, _SIZE_STRUCT)
    tailsize = _get(old, _SIZE_STRINGS)
    total = _get(old, _TOTALSIZE)
    if headsize + tailsize > total:
        return -FDT_ERR_INTERNAL
    if headsize + tailsize > bufsize:
        return -FDT_ERR_NOSPACE
    _need(old, 0, headsize)
    _need(old, total - tailsize, tailsize)
    _need(new, 0, bufsize)
    new[:headsize] = old[:headsize]
    new[bufsize - tailsize : bufsize] = old[total - tailsize : total]
    _set(new, _TOTALSIZE, bufsize)
    if _get(new, _OFF_STRINGS):
        _set(new, _OFF_STRINGS, bufsize)
    return 0


def add_reservemap_entry(buf: bytearray, addr: int, size: int) -> int:
    """``fdt_add_reservemap_entry`` (only before ``finish_reservemap``)."""
    err = _probe_memrsv(buf)
    if err:
        return err
    offset = _get(buf, _OFF_STRUCT)
    if offset + RSV_ENTRY_SIZE > _get(buf, _TOTALSIZE):
        return -FDT_ERR_NOSPACE
    _need(buf, offset, RSV_ENTRY_SIZE)
    buf[offset : offset + RSV_ENTRY_SIZE] = struct.pack(">QQ", addr & (2**64 - 1), size & (2**64 - 1))
    _set(buf, _OFF_STRUCT, offset + RSV_ENTRY_SIZE)
    return 0


def finish_reservemap(buf: bytearray) -> int:
    """``fdt_finish_reservemap``: the terminating entry; the structure phase begins."""
    err = add_reservemap_entry(buf, 0, 0)
    if err:
        return err
    _set(buf, _OFF_STRINGS, _get(buf, _TOTALSIZE))
    return 0


def begin_node(buf: bytearray, name: bytes) -> int:
    """``fdt_begin_node``."""
    err = _probe_struct(buf)
    if err:
        return err
    namelen = len(name) + 1
    pos = _grab_space(buf, 4 + _tagalign(namelen))
    if pos < 0:
        return -FDT_ERR_NOSPACE
    _set(buf, pos, FDT_BEGIN_NODE)
    buf[pos + 4 : pos + 4 + namelen] = name + b"\0"
    return 0


def end_node(buf: bytearray) -> int:
    """``fdt_end_node``."""
    err = _probe_struct(buf)
    if err:
        return err
    pos = _grab_space(buf, FDT_TAGSIZE)
    if pos < 0:
        return -FDT_ERR_NOSPACE
    _set(buf, pos, FDT_END_NODE)
    return 0


def _add_string(buf: bytearray, s: bytes) -> int:
    """``fdt_add_string_``: the (negative) offset from the buffer's end, or 0 when full."""
    total = _get(buf, _TOTALSIZE)
    strtabsize = _get(buf, _SIZE_STRINGS)
    ln = len(s) + 1
    offset = strtabsize + ln
    struct_top = _get(buf, _OFF_STRUCT) + _get(buf, _SIZE_STRUCT)
    if ((total - offset) & _M) < struct_top:
        return 0
    _need(buf, total - offset, ln)
    buf[total - offset : total - offset + ln] = s + b"\0"
    _set(buf, _SIZE_STRINGS, strtabsize + ln)
    return -offset


def _find_add_string(buf: bytearray, s: bytes) -> tuple[int, bool]:
    total = _get(buf, _TOTALSIZE)
    strtabsize = _i32(_get(buf, _SIZE_STRINGS))
    needle = s + b"\0"
    if strtabsize >= len(needle):
        _need(buf, total - strtabsize, strtabsize)
        p = buf.find(needle, total - strtabsize, total)
        if p >= 0:
            return p - total, False
    return _add_string(buf, s), True


def property_placeholder(buf: bytearray, name: bytes, ln: int) -> tuple[int, int]:
    """``fdt_property_placeholder``: (error, absolute position of the value)."""
    err = _probe_struct(buf)
    if err:
        return err, -1
    if _get(buf, _LAST_COMP) & FDT_CREATE_FLAG_NO_NAME_DEDUP:
        allocated = True
        nameoff = _add_string(buf, name)
    else:
        nameoff, allocated = _find_add_string(buf, name)
    if nameoff == 0:
        return -FDT_ERR_NOSPACE, -1
    pos = _grab_space(buf, PROP_HEADER_SIZE + _tagalign(ln))
    if pos < 0:
        if allocated:
            _set(buf, _SIZE_STRINGS, _get(buf, _SIZE_STRINGS) - (len(name) + 1))
        return -FDT_ERR_NOSPACE, -1
    _set(buf, pos, FDT_PROP)
    _set(buf, pos + 8, nameoff)
    _set(buf, pos + 4, ln)
    return 0, pos + PROP_HEADER_SIZE


def property(buf: bytearray, name: bytes, val: bytes) -> int:
    """``fdt_property``."""
    err, pos = property_placeholder(buf, name, len(val))
    if err:
        return err
    buf[pos : pos + len(val)] = val
    return 0


def finish(buf: bytearray) -> int:
    """``fdt_finish``: terminate, move the strings behind the structure, fix the name offsets."""
    err = _probe_struct(buf)
    if err:
        return err
    pos = _grab_space(buf, 4)
    if pos < 0:
        return -FDT_ERR_NOSPACE
    _set(buf, pos, FDT_END)
    size_strings = _get(buf, _SIZE_STRINGS)
    oldstroffset = _get(buf, _TOTALSIZE) - size_strings
    newstroffset = _get(buf, _OFF_STRUCT) + _get(buf, _SIZE_STRUCT)
    _need(buf, oldstroffset, size_strings)
    buf[newstroffset : newstroffset + size_strings] = buf[oldstroffset : oldstroffset + size_strings]
    _set(buf, _OFF_STRINGS, newstroffset)
    ro = FdtRo(buf)
    offset = 0
    while True:
        tag, nextoffset = ro.next_tag(offset)
        if tag == FDT_END:
            break
        if tag == FDT_PROP:
            p = _get(buf, _OFF_STRUCT) + offset + 8
            _set(buf, p, _get(buf, p) + size_strings)
        offset = nextoffset
    if nextoffset < 0:
        return nextoffset
    _set(buf, _TOTALSIZE, newstroffset + size_strings)
    _set(buf, _LAST_COMP, FDT_LAST_COMPATIBLE_VERSION)
    _set(buf, _MAGIC, FDT_MAGIC)
    return 0


def create_empty_tree(buf: bytearray, bufsize: int) -> int:
    """``fdt_create_empty_tree``: a root node alone, opened into the whole ``bufsize``."""
    for step in (
        lambda: create(buf, bufsize),
        lambda: finish_reservemap(buf),
        lambda: begin_node(buf, b""),
        lambda: end_node(buf),
        lambda: finish(buf),
    ):
        err = step()
        if err:
            return err
    fdt = Fdt(buf)
    return open_into(fdt, fdt, bufsize)

