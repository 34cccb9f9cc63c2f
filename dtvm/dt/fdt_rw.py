"""libfdt's read-write half (fdt_rw.c of dtc 1.6.1): splices on the raw blob, byte for byte.

Kept apart from the read-only half (:mod:`dtvm.dt.fdt_ro`) as libfdt keeps them
apart: everything here first passes ``fdt_rw_probe_`` (a version 17 blob with
its blocks in libfdt's order) and then edits the buffer with ``memmove``
splices, so a property or node added here lands exactly where libfdt puts it.
"""

from __future__ import annotations

from dtvm.dt.fdt_ro import (
    _BOOT_CPUID,
    _LAST_COMP,
    _M,
    _OFF_RSVMAP,
    _OFF_STRINGS,
    _OFF_STRUCT,
    _SIZE_STRINGS,
    _SIZE_STRUCT,
    _TOTALSIZE,
    _U32,
    _U64,
    _VERSION,
    FDT_BEGIN_NODE,
    FDT_END,
    FDT_END_NODE,
    FDT_ERR_BADLAYOUT,
    FDT_ERR_BADOFFSET,
    FDT_ERR_BADVERSION,
    FDT_ERR_EXISTS,
    FDT_ERR_INTERNAL,
    FDT_ERR_NOSPACE,
    FDT_ERR_NOTFOUND,
    FDT_LAST_SUPPORTED_VERSION,
    FDT_MAGIC,
    FDT_NOP,
    FDT_PROP,
    HEADER_SIZE,
    PROP_HEADER_SIZE,
    RSV_ENTRY_SIZE,
    FdtRo,
    _i32,
    _tagalign,
    _u32_from,
    _u32_into,
)
from dtvm.errors import BlobError

__all__ = ["Fdt", "open_into"]

_M64 = (1 << 64) - 1


class Fdt(FdtRo):
    """A blob in a C buffer with libfdt's read-only and read-write functions."""

    __slots__ = ()

    def rw_probe(self) -> int:
        """``fdt_rw_probe_``: read-write functions need a version 17 blob in libfdt's block order."""
        err = self.ro_probe()
        if err < 0:
            return err
        if self._get(_VERSION) < 17:
            return -FDT_ERR_BADVERSION
        if self._blocks_misordered(RSV_ENTRY_SIZE, self._get(_SIZE_STRUCT)):
            return -FDT_ERR_BADLAYOUT
        if self._get(_VERSION) > FDT_LAST_SUPPORTED_VERSION:
            self.set_version(FDT_LAST_SUPPORTED_VERSION)
        return 0

    def _data_size(self) -> int:
        return (self._get(_OFF_STRINGS) + self._get(_SIZE_STRINGS)) & _M

    def _splice(self, p: int, oldlen: int, newlen: int) -> int:
        """``fdt_splice_``: ``memmove`` the data after ``p + oldlen`` to ``p + newlen``."""
        dsize = self._data_size()
        if oldlen < 0 or p + oldlen > dsize:
            return -FDT_ERR_BADOFFSET
        if p < 0 or ((dsize + newlen) & _M) < (oldlen & _M):
            return -FDT_ERR_BADOFFSET
        if ((dsize - oldlen + newlen) & _M) > self._get(_TOTALSIZE):
            return -FDT_ERR_NOSPACE
        n = dsize - (p + oldlen)
        if p + max(oldlen, newlen) + n > len(self.buf):
            raise self._overrun(p, max(oldlen, newlen) + n)
        buf = self.buf
        buf[p + newlen : p + newlen + n] = buf[p + oldlen : p + oldlen + n]
        return 0

    def _splice_struct(self, p: int, oldlen: int, newlen: int) -> int:
        delta = newlen - oldlen
        err = self._splice(p, oldlen, newlen)
        if err:
            return err
        self.set_size_dt_struct(self._get(_SIZE_STRUCT) + delta)
        self.set_off_dt_strings(self._get(_OFF_STRINGS) + delta)
        return 0

    def _splice_string(self, newlen: int) -> int:
        p = self._get(_OFF_STRINGS) + self._get(_SIZE_STRINGS)
        err = self._splice(p, 0, newlen)
        if err:
            return err
        self.set_size_dt_strings(self._get(_SIZE_STRINGS) + newlen)
        return 0

    def find_string(self, s: bytes) -> int:
        """``fdt_find_string_`` in the strings block: offset of the first ``s\\0``, or -1."""
        strtab = self._get(_OFF_STRINGS)
        tabsize = _i32(self._get(_SIZE_STRINGS))
        needle = s + b"\0"
        if tabsize < len(needle):
            return -1
        if strtab + tabsize > len(self.buf):
            raise self._overrun(strtab, tabsize)
        pos = self.buf.find(needle, strtab, strtab + tabsize)
        return pos - strtab if pos >= 0 else -1

    def _find_add_string(self, s: bytes) -> tuple[int, bool]:
        found = self.find_string(s)
        if found >= 0:
            return found, False
        strtab = self._get(_OFF_STRINGS)
        new = strtab + self._get(_SIZE_STRINGS)
        err = self._splice_string(len(s) + 1)
        if err:
            return err, False
        self.write(new, s + b"\0")
        return new - strtab, True

    def _del_last_string(self, s: bytes) -> None:
        self.set_size_dt_strings(self._get(_SIZE_STRINGS) - (len(s) + 1))

    def _resize_property(self, nodeoffset: int, name: bytes, ln: int) -> tuple[int, int]:
        prop, oldlen = self.get_property_namelen(nodeoffset, name)
        if prop < 0:
            return oldlen, -1
        err = self._splice_struct(prop + PROP_HEADER_SIZE, _tagalign(oldlen), _tagalign(ln))
        if err:
            return err, -1
        _u32_into(self.buf, prop + 4, ln & _M)
        return 0, prop

    def _add_property(self, nodeoffset: int, name: bytes, ln: int) -> tuple[int, int]:
        nextoffset = self.check_node_offset(nodeoffset)
        if nextoffset < 0:
            return nextoffset, -1
        namestroff, allocated = self._find_add_string(name)
        if namestroff < 0:
            return namestroff, -1
        prop = self._so + nextoffset
        proplen = PROP_HEADER_SIZE + _tagalign(ln)
        err = self._splice_struct(prop, 0, proplen)
        if err:
            if allocated:
                self._del_last_string(name)
            return err, -1
        buf = self.buf
        _u32_into(buf, prop, FDT_PROP)
        _u32_into(buf, prop + 4, ln & _M)
        _u32_into(buf, prop + 8, namestroff & _M)
        return 0, prop

    def setprop_placeholder(self, nodeoffset: int, name: bytes, ln: int) -> tuple[int, int]:
        """``fdt_setprop_placeholder``: (error, absolute position of the value)."""
        err = self.rw_probe()
        if err:
            return err, -1
        err, prop = self._resize_property(nodeoffset, name, ln)
        if err == -FDT_ERR_NOTFOUND:
            err, prop = self._add_property(nodeoffset, name, ln)
        if err:
            return err, -1
        return 0, prop + PROP_HEADER_SIZE

    def setprop(self, nodeoffset: int, name: bytes, val: bytes) -> int:
        """``fdt_setprop``."""
        err, pos = self.setprop_placeholder(nodeoffset, name, len(val))
        if err:
            return err
        if val:
            self.write(pos, val)
        return 0

    def appendprop(self, nodeoffset: int, name: bytes, val: bytes) -> int:
        """``fdt_appendprop``."""
        err = self.rw_probe()
        if err:
            return err
        prop, oldlen = self.get_property_namelen(nodeoffset, name)
        if prop >= 0:
            newlen = len(val) + oldlen
            err = self._splice_struct(prop + PROP_HEADER_SIZE, _tagalign(oldlen), _tagalign(newlen))
            if err:
                return err
            _u32_into(self.buf, prop + 4, newlen & _M)
            self.write(prop + PROP_HEADER_SIZE + oldlen, val)
        else:
            err, prop = self._add_property(nodeoffset, name, len(val))
            if err:
                return err
            self.write(prop + PROP_HEADER_SIZE, val)
        return 0

    def delprop(self, nodeoffset: int, name: bytes) -> int:
        """``fdt_delprop``."""
        err = self.rw_probe()
        if err:
            return err
        prop, ln = self.get_property_namelen(nodeoffset, name)
        if prop < 0:
            return ln
        return self._splice_struct(prop, PROP_HEADER_SIZE + _tagalign(ln), 0)

    def add_subnode_namelen(self, parentoffset: int, name: bytes) -> int:
        """``fdt_add_subnode_namelen``: the new node goes after the parent's properties."""
        err = self.rw_probe()
        if err:
            return err
        offset = self.subnode_offset_namelen(parentoffset, name)
        if offset >= 0:
            return -FDT_ERR_EXISTS
        if offset != -FDT_ERR_NOTFOUND:
            return offset
        tag, nextoffset = self.next_tag(parentoffset)
        if tag != FDT_BEGIN_NODE:
            return -FDT_ERR_INTERNAL
        while True:
            offset = nextoffset
            tag, nextoffset = self.next_tag(offset)
            if tag not in (FDT_PROP, FDT_NOP):
                break
        nh = self._so + offset
        namelen = len(name)
        padded = _tagalign(namelen + 1)
        nodelen = 4 + padded + 4
        err = self._splice_struct(nh, 0, nodelen)
        if err:
            return err
        self.write(nh, _U32.pack(FDT_BEGIN_NODE) + name + bytes(padded - namelen) + _U32.pack(FDT_END_NODE))
        return offset

    def add_subnode(self, parentoffset: int, name: bytes) -> int:
        return self.add_subnode_namelen(parentoffset, name)

    def node_end_offset(self, offset: int) -> int:
        """``fdt_node_end_offset_``: the offset just after the node's FDT_END_NODE."""
        depth: int | None = 0
        assert depth is not None
        while offset >= 0 and depth >= 0:
            offset, depth = self.next_node(offset, depth)
            assert depth is not None
        return offset

    def del_node(self, nodeoffset: int) -> int:
        """``fdt_del_node``."""
        err = self.rw_probe()
        if err:
            return err
        endoffset = self.node_end_offset(nodeoffset)
        if endoffset < 0:
            return endoffset
        return self._splice_struct(self._so + nodeoffset, endoffset - nodeoffset, 0)

    def set_name(self, nodeoffset: int, name: bytes) -> int:
        """``fdt_set_name``: the name is spliced in place, the node keeps its offset."""
        err = self.rw_probe()
        if err:
            return err
        old, oldlen = self.get_name(nodeoffset)
        if old is None:
            return oldlen
        namep = self._so + nodeoffset + 4
        err = self._splice_struct(namep, _tagalign(oldlen + 1), _tagalign(len(name) + 1))
        if err:
            return err
        self.write(namep, name + b"\0")
        return 0

    def _splice_mem_rsv(self, pos: int, oldn: int, newn: int) -> int:
        delta = (newn - oldn) * RSV_ENTRY_SIZE
        err = self._splice(pos, oldn * RSV_ENTRY_SIZE, newn * RSV_ENTRY_SIZE)
        if err:
            return err
        self.set_off_dt_struct(self._get(_OFF_STRUCT) + delta)
        self.set_off_dt_strings(self._get(_OFF_STRINGS) + delta)
        return 0

    def add_mem_rsv(self, address: int, size: int) -> int:
        """``fdt_add_mem_rsv``: a new entry before the terminating one."""
        err = self.rw_probe()
        if err:
            return err
        pos = self._get(_OFF_RSVMAP) + self.num_mem_rsv() * RSV_ENTRY_SIZE
        err = self._splice_mem_rsv(pos, 0, 1)
        if err:
            return err
        self.write(pos, _U64.pack(address & _M64) + _U64.pack(size & _M64))
        return 0

    def del_mem_rsv(self, n: int) -> int:
        """``fdt_del_mem_rsv``."""
        pos = self._get(_OFF_RSVMAP) + n * RSV_ENTRY_SIZE
        err = self.rw_probe()
        if err:
            return err
        if n >= self.num_mem_rsv():
            return -FDT_ERR_NOTFOUND
        return self._splice_mem_rsv(pos, 1, 0)

    def nop_property(self, nodeoffset: int, name: bytes) -> int:
        """``fdt_nop_property`` (fdt_wip.c): the property's bytes become FDT_NOP tags."""
        prop, ln = self.get_property_namelen(nodeoffset, name)
        if prop < 0:
            return ln
        self.write(prop, _U32.pack(FDT_NOP) * ((PROP_HEADER_SIZE + _tagalign(ln)) // 4))
        return 0

    def nop_node(self, nodeoffset: int) -> int:
        """``fdt_nop_node`` (fdt_wip.c)."""
        endoffset = self.node_end_offset(nodeoffset)
        if endoffset < 0:
            return endoffset
        self.write(self._so + nodeoffset, _U32.pack(FDT_NOP) * ((endoffset - nodeoffset) // 4))
        return 0

    def pack(self) -> int:
        """``fdt_pack``: move the blocks together after the header; totalsize shrinks to fit."""
        err = self.rw_probe()
        if err:
            return err
        n = self.num_mem_rsv()
        if n < 0:
            return n
        _packblocks(
            self.buf,
            0,
            self.buf,
            0,
            (n + 1) * RSV_ENTRY_SIZE,
            self._get(_SIZE_STRUCT),
            self._get(_SIZE_STRINGS),
        )
        self._refresh()
        self.set_totalsize(self._data_size())
        return 0

    def data(self) -> bytes:
        """The blob as ``utilfdt_write`` writes it: the first ``totalsize`` bytes."""
        return self.read(0, self.totalsize())


def _packblocks(
    old: bytearray,
    obase: int,
    new: bytearray,
    nbase: int,
    mem_rsv_size: int,
    struct_size: int,
    strings_size: int,
) -> None:
    """``fdt_packblocks_`` from the blob at ``old[obase:]`` to ``new[nbase:]`` (possibly the same memory)."""

    def get(buf: bytearray, base: int, field: int) -> int:
        return int(_u32_from(buf, base + field)[0])

    def put(buf: bytearray, base: int, field: int, value: int) -> None:
        _u32_into(buf, base + field, value & _M)

    def move(dst: int, src: int, n: int) -> None:
        if n < 0 or nbase + dst + n > len(new) or src + n > len(old) or src < 0:
            raise BlobError(f"blob block at {src:#x} (+{n:#x}) lies outside the buffer", src)
        new[nbase + dst : nbase + dst + n] = old[src : src + n]

    mem_rsv_off = HEADER_SIZE
    struct_off = mem_rsv_off + mem_rsv_size
    strings_off = struct_off + struct_size
    move(mem_rsv_off, obase + get(old, obase, _OFF_RSVMAP), mem_rsv_size)
    put(new, nbase, _OFF_RSVMAP, mem_rsv_off)
    move(struct_off, obase + get(old, obase, _OFF_STRUCT), struct_size)
    put(new, nbase, _OFF_STRUCT, struct_off)
    put(new, nbase, _SIZE_STRUCT, struct_size)
    move(strings_off, obase + get(old, obase, _OFF_STRINGS), strings_size)
    put(new, nbase, _OFF_STRINGS, strings_off)
    put(new, nbase, _SIZE_STRINGS, get(old, obase, _SIZE_STRINGS))


def open_into(src: FdtRo, dst: FdtRo, bufsize: int) -> int:
    """``fdt_open_into(src, dst, bufsize)``; ``dst`` may be ``src`` itself (in-place, as fdtput does).

    ``dst.buf`` must already be ``bufsize`` bytes long (the caller ``realloc``'d it).
    """
    err = src.ro_probe()
    if err < 0:
        return err
    n = src.num_mem_rsv()
    if n < 0:
        return n
    mem_rsv_size = (n + 1) * RSV_ENTRY_SIZE
    version = src.version()
    if version >= 17:
        struct_size = src.size_dt_struct()
    elif version == 16:
        struct_size = 0
        while True:
            tag, struct_size = src.next_tag(struct_size)
            if tag == FDT_END:
                break
        if struct_size < 0:
            return struct_size
    else:
        return -FDT_ERR_BADVERSION
    bufsize = _i32(bufsize)
    if not src._blocks_misordered(mem_rsv_size, struct_size):
        # fdt_move
        if bufsize < 0:
            return -FDT_ERR_NOSPACE
        err = src.ro_probe()
        if err < 0:
            return err
        total = src.totalsize()
        if total > bufsize:
            return -FDT_ERR_NOSPACE
        if dst is not src:
            if total > len(src.buf) or total > len(dst.buf):
                raise src._overrun(0, total)
            dst.buf[:total] = src.buf[:total]
            dst._refresh()
        dst.set_version(17)
        dst.set_size_dt_struct(struct_size)
        dst.set_totalsize(bufsize)
        return 0
    newsize = HEADER_SIZE + mem_rsv_size + struct_size + src.size_dt_strings()
    if bufsize < newsize:
        return -FDT_ERR_NOSPACE
    tmp = 0
    if dst is src:
        # building at the start of the buffer would overlap the old tree: use the space after it
        tmp = src.totalsize()
        if tmp + newsize > bufsize:
            return -FDT_ERR_NOSPACE
    boot_cpuid_src = src
    _packblocks(src.buf, 0, dst.buf, tmp, mem_rsv_size, struct_size, src.size_dt_strings())
    if tmp:
        dst.buf[0:newsize] = dst.buf[tmp : tmp + newsize]
    dst._refresh()
    dst.set_magic(FDT_MAGIC)
    dst.set_totalsize(bufsize)
    dst.set_version(17)
    _u32_into(dst.buf, _LAST_COMP, 16)
    _u32_into(dst.buf, _BOOT_CPUID, boot_cpuid_src.boot_cpuid_phys())
    dst._refresh()
    return 0
