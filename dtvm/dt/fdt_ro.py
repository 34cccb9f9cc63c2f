"""libfdt's read-only half (fdt.c, fdt_ro.c, fdt_wip.c of dtc 1.6.1), on the raw blob, byte for byte.

The read-write half is :mod:`dtvm.dt.fdt_rw`, sequential write :mod:`dtvm.dt.fdt_sw`;
:mod:`dtvm.dt.libfdt` gathers the three.  What follows holds for all of them.


The C tools ``fdtget``, ``fdtput`` and ``fdtoverlay`` do not rebuild a tree:
they edit the blob where it lies with libfdt, and their output is whatever
those edits leave in memory.  To give the same bytes, this module keeps the
blob as the C program keeps it, a ``bytearray`` standing for the whole C
buffer (header, memory reservation block, structure block, strings block and
the free space between and after them), and runs libfdt's algorithms on it:
the same checks in the same order with the same 32-bit arithmetic, the same
error codes, the same ``memmove`` splices.  That reproduces the visible
details that a tree model cannot:

* a new property is inserted before the node's first property and a new node
  after the last property of its parent (so libfdt reverses the order of added
  properties), strings are looked up with ``fdt_find_string_`` (a byte search
  that also finds a name as the tail of a longer one) and appended otherwise;
* the padding bytes of a property value are not cleared: they keep whatever
  the splice left at that place (stale bytes of the previous value or of the
  following data), exactly as in the C buffer;
* ``fdt_open_into`` and ``fdt_pack`` move the blocks as libfdt moves them.

The functions keep libfdt's names (without the ``fdt_`` prefix) and its
conventions: node and property offsets are offsets into the structure block,
an error is a negative ``-FDT_ERR_*`` code, and where C returns a pointer this
returns an absolute position in :attr:`Fdt.buf` (``-1`` for ``NULL``) with the
length or error in a second value.  Names and values are ``bytes``.

Memory the C program would read without having written it (the part of a
``malloc``'d buffer past the file's bytes) is modelled as zeros, which is what
glibc hands out for fresh memory.  Reading past the end of the modelled buffer
(undefined behaviour in C, the blob lies about its own size) raises
:class:`~dtvm.errors.BlobError` instead.
"""

from __future__ import annotations

import struct

from dtvm.errors import BlobError

__all__ = [
    "FDT_BEGIN_NODE",
    "FDT_END",
    "FDT_END_NODE",
    "FDT_MAGIC",
    "FDT_NOP",
    "FDT_PROP",
    "FdtRo",
    "bufsize_for",
    "read_buffer",
    "strerror",
]

FDT_MAGIC = 0xD00DFEED
FDT_SW_MAGIC = (~FDT_MAGIC) & 0xFFFFFFFF
FDT_BEGIN_NODE = 0x1
FDT_END_NODE = 0x2
FDT_PROP = 0x3
FDT_NOP = 0x4
FDT_END = 0x9
FDT_TAGSIZE = 4
FDT_FIRST_SUPPORTED_VERSION = 0x02
FDT_LAST_SUPPORTED_VERSION = 0x11
HEADER_SIZE = 40  # sizeof(struct fdt_header)
RSV_ENTRY_SIZE = 16  # sizeof(struct fdt_reserve_entry)
PROP_HEADER_SIZE = 12  # sizeof(struct fdt_property)
INT32_MAX = 0x7FFFFFFF

FDT_ERR_NOTFOUND = 1
FDT_ERR_EXISTS = 2
FDT_ERR_NOSPACE = 3
FDT_ERR_BADOFFSET = 4
FDT_ERR_BADPATH = 5
FDT_ERR_BADPHANDLE = 6
FDT_ERR_BADSTATE = 7
FDT_ERR_TRUNCATED = 8
FDT_ERR_BADMAGIC = 9
FDT_ERR_BADVERSION = 10
FDT_ERR_BADSTRUCTURE = 11
FDT_ERR_BADLAYOUT = 12
FDT_ERR_INTERNAL = 13
FDT_ERR_BADNCELLS = 14
FDT_ERR_BADVALUE = 15
FDT_ERR_BADOVERLAY = 16
FDT_ERR_NOPHANDLES = 17
FDT_ERR_BADFLAGS = 18
FDT_ERR_ALIGNMENT = 19

_ERRNAMES = [
    None,
    "FDT_ERR_NOTFOUND",
    "FDT_ERR_EXISTS",
    "FDT_ERR_NOSPACE",
    "FDT_ERR_BADOFFSET",
    "FDT_ERR_BADPATH",
    "FDT_ERR_BADPHANDLE",
    "FDT_ERR_BADSTATE",
    "FDT_ERR_TRUNCATED",
    "FDT_ERR_BADMAGIC",
    "FDT_ERR_BADVERSION",
    "FDT_ERR_BADSTRUCTURE",
    "FDT_ERR_BADLAYOUT",
    "FDT_ERR_INTERNAL",
    "FDT_ERR_BADNCELLS",
    "FDT_ERR_BADVALUE",
    "FDT_ERR_BADOVERLAY",
    "FDT_ERR_NOPHANDLES",
    "FDT_ERR_BADFLAGS",
    "FDT_ERR_ALIGNMENT",
]

_M = 0xFFFFFFFF
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_u32_from = _U32.unpack_from
_u32_into = _U32.pack_into

# header field offsets
_MAGIC, _TOTALSIZE, _OFF_STRUCT, _OFF_STRINGS, _OFF_RSVMAP = 0, 4, 8, 12, 16
_VERSION, _LAST_COMP, _BOOT_CPUID, _SIZE_STRINGS, _SIZE_STRUCT = 20, 24, 28, 32, 36


def strerror(err: int) -> str:
    """``fdt_strerror``."""
    if err > 0:
        return "<valid offset/length>"
    if err == 0:
        return "<no error>"
    if -err < len(_ERRNAMES):
        name = _ERRNAMES[-err]
        if name:
            return name
    return "<unknown error>"


def _i32(x: int) -> int:
    """C conversion of an integer to ``int`` (two's complement, 32 bits)."""
    x &= _M
    return x - 0x100000000 if x & 0x80000000 else x


def _tagalign(x: int) -> int:
    """``FDT_TAGALIGN`` on a C ``int``."""
    return _i32((x + 3) & ~3)


def bufsize_for(size: int) -> int:
    """The size of the buffer ``utilfdt_read`` ends up with for a file of ``size`` bytes.

    It starts at 1 KiB and doubles whenever a read fills it, so it is always
    larger than the file; the tools report *this* number as the length read.
    """
    bufsize = 1024
    while bufsize <= size:
        bufsize *= 2
    return bufsize


def read_buffer(data: bytes) -> bytearray:
    """The C buffer ``utilfdt_read`` returns for a file holding ``data``.

    The bytes past the file's end are uninitialised ``malloc`` memory in C;
    they are modelled as zeros.
    """
    buf = bytearray(bufsize_for(len(data)))
    buf[: len(data)] = data
    return buf


class FdtRo:
    """A blob in a C buffer, with libfdt's read-only functions (the read-write ones are on
    :class:`dtvm.dt.fdt_rw.Fdt`).

    ``buf`` is the whole buffer; its length is the allocation size and never
    changes except through :meth:`realloc`.  Header fields used on every tag
    are cached and refreshed whenever a header field is written.
    """

    __slots__ = ("_end", "_probe", "_safe", "_so", "_version", "buf")

    def __init__(self, buf: bytearray) -> None:
        if len(buf) < HEADER_SIZE:
            raise BlobError(f"blob buffer of {len(buf)} bytes is shorter than the {HEADER_SIZE}-byte header")
        self.buf = buf
        self._so = 0
        self._end = 0
        self._version = 0
        self._safe = True
        self._probe = 0
        self._refresh()

    # -- header ------------------------------------------------------------

    def _refresh(self) -> None:
        b = self.buf
        so = _u32_from(b, _OFF_STRUCT)[0]
        version = _u32_from(b, _VERSION)[0]
        end = _u32_from(b, _TOTALSIZE)[0] - so
        if version >= 0x11:
            end = min(end, _u32_from(b, _SIZE_STRUCT)[0])
        self._so = so
        self._version = version
        self._end = end  # a struct-relative read [o, o+n) is allowed iff 0 <= o and o + n <= end
        self._safe = so + end <= len(b)
        self._probe = self._ro_probe()

    def _get(self, field: int) -> int:
        return int(_u32_from(self.buf, field)[0])

    def _set(self, field: int, value: int) -> None:
        _u32_into(self.buf, field, value & _M)
        self._refresh()

    def magic(self) -> int:
        return self._get(_MAGIC)

    def totalsize(self) -> int:
        return self._get(_TOTALSIZE)

    def off_dt_struct(self) -> int:
        return self._get(_OFF_STRUCT)

    def off_dt_strings(self) -> int:
        return self._get(_OFF_STRINGS)

    def off_mem_rsvmap(self) -> int:
        return self._get(_OFF_RSVMAP)

    def version(self) -> int:
        return self._get(_VERSION)

    def last_comp_version(self) -> int:
        return self._get(_LAST_COMP)

    def boot_cpuid_phys(self) -> int:
        return self._get(_BOOT_CPUID)

    def size_dt_strings(self) -> int:
        return self._get(_SIZE_STRINGS)

    def size_dt_struct(self) -> int:
        return self._get(_SIZE_STRUCT)

    def set_magic(self, v: int) -> None:
        self._set(_MAGIC, v)

    def set_totalsize(self, v: int) -> None:
        self._set(_TOTALSIZE, v)

    def set_version(self, v: int) -> None:
        self._set(_VERSION, v)

    def set_size_dt_struct(self, v: int) -> None:
        self._set(_SIZE_STRUCT, v)

    def set_size_dt_strings(self, v: int) -> None:
        self._set(_SIZE_STRINGS, v)

    def set_off_dt_strings(self, v: int) -> None:
        self._set(_OFF_STRINGS, v)

    def set_off_dt_struct(self, v: int) -> None:
        self._set(_OFF_STRUCT, v)

    # -- raw memory ----------------------------------------------------------

    def _overrun(self, pos: int, n: int) -> BlobError:
        return BlobError(
            f"the blob's header promises data at {pos:#x}..{pos + n:#x}, past the end of the "
            f"{len(self.buf)}-byte buffer (truncated or corrupt blob)",
            pos,
        )

    def read(self, pos: int, n: int) -> bytes:
        """``n`` bytes at absolute position ``pos`` (checked against the buffer)."""
        if pos < 0 or n < 0 or pos + n > len(self.buf):
            raise self._overrun(pos, n)
        return bytes(self.buf[pos : pos + n])

    def u32(self, pos: int) -> int:
        if pos < 0 or pos + 4 > len(self.buf):
            raise self._overrun(pos, 4)
        return int(_u32_from(self.buf, pos)[0])

    def write(self, pos: int, data: bytes) -> None:
        """``memcpy`` into the buffer (never resizes it)."""
        if pos < 0 or pos + len(data) > len(self.buf):
            raise self._overrun(pos, len(data))
        self.buf[pos : pos + len(data)] = data
        if pos < HEADER_SIZE:
            self._refresh()

    def cstr(self, pos: int) -> bytes:
        """``strlen``-bounded string at ``pos`` (which must end inside the buffer)."""
        end = self.buf.find(b"\0", pos) if pos >= 0 else -1
        if end < 0:
            raise self._overrun(pos, len(self.buf) - pos)
        return bytes(self.buf[pos:end])

    def realloc(self, size: int) -> None:
        """``realloc``: keep the first ``size`` bytes, new memory reads as zeros."""
        if size < 0:
            raise BlobError(f"cannot allocate a buffer of {size} bytes")
        old = len(self.buf)
        if size < old:
            del self.buf[size:]
        elif size > old:
            self.buf.extend(bytes(size - old))
        if len(self.buf) < HEADER_SIZE:
            raise BlobError("blob buffer shorter than the header")
        self._refresh()

    # -- fdt.c ---------------------------------------------------------------

    def ro_probe(self) -> int:
        """``fdt_ro_probe_``: the total size, or an error (depends on the header only: cached)."""
        return self._probe

    def _ro_probe(self) -> int:
        totalsize = self._get(_TOTALSIZE)
        magic = self._get(_MAGIC)
        if magic == FDT_MAGIC:
            if self._get(_VERSION) < FDT_FIRST_SUPPORTED_VERSION:
                return -FDT_ERR_BADVERSION
            if self._get(_LAST_COMP) > FDT_LAST_SUPPORTED_VERSION:
                return -FDT_ERR_BADVERSION
        elif magic == FDT_SW_MAGIC:
            if self._get(_SIZE_STRUCT) == 0:
                return -FDT_ERR_BADSTATE
        else:
            return -FDT_ERR_BADMAGIC
        if totalsize < INT32_MAX:
            return totalsize
        return -FDT_ERR_TRUNCATED

    def offset_ptr(self, offset: int, n: int) -> int:
        """``fdt_offset_ptr``: absolute position of ``n`` bytes at struct offset ``offset``, or -1."""
        n &= _M
        if offset < 0 or offset + n > self._end:
            return -1
        pos = self._so + offset
        if not self._safe and pos + n > len(self.buf):
            raise self._overrun(pos, n)
        return pos

    def next_tag(self, startoffset: int) -> tuple[int, int]:
        """``fdt_next_tag``: (tag, next offset or error)."""
        end = self._end
        if startoffset < 0 or startoffset + 4 > end:
            return FDT_END, -FDT_ERR_TRUNCATED
        buf = self.buf
        so = self._so
        if not self._safe and so + startoffset + 4 > len(buf):
            raise self._overrun(so + startoffset, 4)
        tag = _u32_from(buf, so + startoffset)[0]
        offset = startoffset + 4
        if tag == FDT_PROP:
            if offset + 4 > end:
                return FDT_END, -FDT_ERR_BADSTRUCTURE
            if not self._safe and so + offset + 4 > len(buf):
                raise self._overrun(so + offset, 4)
            ln = _u32_from(buf, so + offset)[0]
            offset += 8 + ln
            if offset > INT32_MAX:
                offset = _i32(offset)
            if self._version < 0x10 and ln >= 8 and (offset - ln) % 8 != 0:
                offset += 4
        elif tag == FDT_BEGIN_NODE:
            # skip the name: bytes are readable up to struct offset end - 1
            if offset >= end:
                return FDT_END, -FDT_ERR_BADSTRUCTURE
            stop = so + end
            if not self._safe and stop > len(buf):
                q = buf.find(b"\0", so + offset)
                if q < 0:
                    raise self._overrun(so + offset, stop - so - offset)
            else:
                q = buf.find(b"\0", so + offset, stop)
                if q < 0:
                    return FDT_END, -FDT_ERR_BADSTRUCTURE
            offset = q - so + 1
        elif tag != FDT_END_NODE and tag != FDT_NOP and tag != FDT_END:
            return FDT_END, -FDT_ERR_BADSTRUCTURE
        if startoffset + ((offset - startoffset) & _M) > end:
            return FDT_END, -FDT_ERR_BADSTRUCTURE
        offset = (offset + 3) & ~3
        return tag, (offset if offset <= INT32_MAX else _i32(offset))

    def check_node_offset(self, offset: int) -> int:
        """``fdt_check_node_offset_``."""
        if offset < 0 or offset % FDT_TAGSIZE:
            return -FDT_ERR_BADOFFSET
        tag, offset = self.next_tag(offset)
        if tag != FDT_BEGIN_NODE:
            return -FDT_ERR_BADOFFSET
        return offset

    def check_prop_offset(self, offset: int) -> int:
        """``fdt_check_prop_offset_``."""
        if offset < 0 or offset % FDT_TAGSIZE:
            return -FDT_ERR_BADOFFSET
        tag, offset = self.next_tag(offset)
        if tag != FDT_PROP:
            return -FDT_ERR_BADOFFSET
        return offset

    def next_node(self, offset: int, depth: int | None) -> tuple[int, int | None]:
        """``fdt_next_node``: (offset or error, depth); ``depth=None`` is C's NULL."""
        nextoffset = 0
        if offset >= 0:
            nextoffset = self.check_node_offset(offset)
            if nextoffset < 0:
                return nextoffset, depth
        next_tag = self.next_tag
        # Fast path for the common tags (properties and NOPs well inside the
        # structure block): exactly what fdt_next_tag computes for them.
        fast = self._safe and self._version >= 0x10
        buf = self.buf
        so = self._so
        end = min(self._end, INT32_MAX - 3)
        while True:
            offset = nextoffset
            if fast and 0 <= offset and offset + 12 <= end:
                tag = _u32_from(buf, so + offset)[0]
                if tag == FDT_PROP:
                    nxt = offset + 12 + _u32_from(buf, so + offset + 4)[0]
                    if nxt <= end:
                        nextoffset = (nxt + 3) & ~3
                        continue
                elif tag == FDT_NOP:
                    nextoffset = offset + 4
                    continue
            tag, nextoffset = next_tag(offset)
            if tag == FDT_BEGIN_NODE:
                if depth is not None:
                    depth += 1
                return offset, depth
            if tag == FDT_END_NODE:
                if depth is not None:
                    depth -= 1
                    if depth < 0:
                        return nextoffset, depth
            elif tag == FDT_END:
                if nextoffset >= 0 or (nextoffset == -FDT_ERR_TRUNCATED and depth is None):
                    return -FDT_ERR_NOTFOUND, depth
                return nextoffset, depth

    def first_subnode(self, offset: int) -> int:
        offset, depth = self.next_node(offset, 0)
        if offset < 0 or depth != 1:
            return -FDT_ERR_NOTFOUND
        return offset

    def next_subnode(self, offset: int) -> int:
        depth: int | None = 1
        while True:
            offset, depth = self.next_node(offset, depth)
            assert depth is not None
            if offset < 0 or depth < 1:
                return -FDT_ERR_NOTFOUND
            if depth <= 1:
                return offset

    def subnodes(self, parent: int) -> list[int]:
        """``fdt_for_each_subnode`` offsets (computed up front: callers here do not edit ``self``)."""
        out = []
        node = self.first_subnode(parent)
        while node >= 0:
            out.append(node)
            node = self.next_subnode(node)
        return out

    def num_mem_rsv(self) -> int:
        """``fdt_num_mem_rsv``: entries up to the first one whose size is zero."""
        i = 0
        while True:
            pos = self._mem_rsv(i)
            if pos < 0:
                return -FDT_ERR_TRUNCATED
            if _U64.unpack_from(self.buf, pos + 8)[0] == 0:
                return i
            i += 1

    def _mem_rsv(self, n: int) -> int:
        off = self._get(_OFF_RSVMAP)
        absoffset = (off + n * RSV_ENTRY_SIZE) & _M
        if absoffset < off:
            return -1
        if absoffset > ((self._get(_TOTALSIZE) - RSV_ENTRY_SIZE) & _M):
            return -1
        if absoffset + RSV_ENTRY_SIZE > len(self.buf):
            raise self._overrun(absoffset, RSV_ENTRY_SIZE)
        return absoffset

    # -- fdt_ro.c ------------------------------------------------------------

    def get_string(self, stroffset: int) -> tuple[int, int]:
        """``fdt_get_string``: (absolute position or -1, length or error)."""
        totalsize = self.ro_probe()
        if totalsize < 0:
            return -1, totalsize
        off_strings = self._get(_OFF_STRINGS)
        absoffset = (stroffset + off_strings) & _M
        if absoffset >= totalsize:
            return -1, -FDT_ERR_BADOFFSET
        ln = totalsize - absoffset
        magic = self._get(_MAGIC)
        if magic == FDT_MAGIC:
            if stroffset < 0:
                return -1, -FDT_ERR_BADOFFSET
            if self._version >= 17:
                size = self._get(_SIZE_STRINGS)
                if stroffset >= size:
                    return -1, -FDT_ERR_BADOFFSET
                if size - stroffset < ln:
                    ln = size - stroffset
        elif magic == FDT_SW_MAGIC:
            sw = (-stroffset) & _M
            if stroffset >= 0 or sw > self._get(_SIZE_STRINGS):
                return -1, -FDT_ERR_BADOFFSET
            if sw < ln:
                ln = sw
        else:
            return -1, -FDT_ERR_INTERNAL
        buf = self.buf
        if absoffset + ln > len(buf):
            n = buf.find(b"\0", absoffset)
            if n < 0:
                raise self._overrun(absoffset, ln)
        else:
            n = buf.find(b"\0", absoffset, absoffset + ln)
        if n < 0 or n >= absoffset + ln:
            return -1, -FDT_ERR_TRUNCATED
        return absoffset, n - absoffset

    def string(self, stroffset: int) -> bytes | None:
        """``fdt_string``."""
        pos, ln = self.get_string(stroffset)
        if pos < 0:
            return None
        return bytes(self.buf[pos : pos + ln])

    def get_name(self, nodeoffset: int) -> tuple[bytes | None, int]:
        """``fdt_get_name``: (name, length) or (None, error)."""
        err = self.ro_probe()
        if err < 0:
            return None, err
        err = self.check_node_offset(nodeoffset)
        if err < 0:
            return None, err
        start = self._so + nodeoffset + 4
        end = self.buf.find(b"\0", start)
        name = bytes(self.buf[start:end])
        if self._version < 0x10:
            leaf = name.rfind(b"/")
            if leaf < 0:
                return None, -FDT_ERR_BADSTRUCTURE
            name = name[leaf + 1 :]
        return name, len(name)

    def _nodename_eq(self, offset: int, s: bytes) -> bool:
        p, olen = self.get_name(offset)
        n = len(s)
        if p is None or olen < n:
            return False
        if p[:n] != s:
            return False
        if olen == n:
            return True
        return b"@" not in s and p[n : n + 1] == b"@"

    def subnode_offset_namelen(self, offset: int, name: bytes) -> int:
        """``fdt_subnode_offset_namelen``: a child called ``name`` (or ``name@...``)."""
        err = self.ro_probe()
        if err < 0:
            return err
        depth: int | None = 0
        assert depth is not None
        while offset >= 0 and depth >= 0:
            if depth == 1 and self._nodename_eq(offset, name):
                return offset
            offset, depth = self.next_node(offset, depth)
            assert depth is not None
        if depth < 0:
            return -FDT_ERR_NOTFOUND
        return offset

    def subnode_offset(self, offset: int, name: bytes) -> int:
        return self.subnode_offset_namelen(offset, name)

    def path_offset_namelen(self, path: bytes, namelen: int, _depth: int = 0) -> int:
        """``fdt_path_offset_namelen``; ``path[0]`` is read even when ``namelen`` is 0, as in C."""
        end = namelen
        p = 0
        offset = 0
        err = self.ro_probe()
        if err < 0:
            return err
        if path[:1] != b"/":
            q = path.find(b"/", 0, end)
            if q < 0:
                q = end
            alias = self.get_alias_namelen(path[p:q])
            if alias < 0:
                return -FDT_ERR_BADPATH
            target = self.cstr(alias)
            if _depth > 64:
                raise BlobError(f"alias {path[p:q].decode('latin-1')!r} refers to itself (alias loop)")
            offset = self.path_offset_namelen(target, len(target), _depth + 1)
            p = q
        while p < end:
            while path[p : p + 1] == b"/":
                p += 1
                if p == end:
                    return offset
            q = path.find(b"/", p, end)
            if q < 0:
                q = end
            offset = self.subnode_offset_namelen(offset, path[p:q])
            if offset < 0:
                return offset
            p = q
        return offset

    def path_offset(self, path: bytes) -> int:
        """``fdt_path_offset``."""
        return self.path_offset_namelen(path, len(path))

    def get_alias_namelen(self, name: bytes) -> int:
        """``fdt_get_alias_namelen``: absolute position of the alias value, or -1."""
        aliasoffset = self.path_offset(b"/aliases")
        if aliasoffset < 0:
            return -1
        pos, _ = self.getprop_namelen(aliasoffset, name)
        return pos

    def _nextprop(self, offset: int) -> int:
        while True:
            tag, nextoffset = self.next_tag(offset)
            if tag == FDT_END:
                return -FDT_ERR_BADSTRUCTURE if nextoffset >= 0 else nextoffset
            if tag == FDT_PROP:
                return offset
            offset = nextoffset
            if tag != FDT_NOP:
                return -FDT_ERR_NOTFOUND

    def first_property_offset(self, nodeoffset: int) -> int:
        offset = self.check_node_offset(nodeoffset)
        if offset < 0:
            return offset
        return self._nextprop(offset)

    def next_property_offset(self, offset: int) -> int:
        offset = self.check_prop_offset(offset)
        if offset < 0:
            return offset
        return self._nextprop(offset)

    def property_offsets(self, nodeoffset: int) -> list[int]:
        """``fdt_for_each_property_offset`` (computed up front)."""
        out = []
        prop = self.first_property_offset(nodeoffset)
        while prop >= 0:
            out.append(prop)
            prop = self.next_property_offset(prop)
        return out

    def _get_property_by_offset(self, offset: int) -> tuple[int, int]:
        err = self.check_prop_offset(offset)
        if err < 0:
            return -1, err
        pos = self._so + offset
        return pos, _i32(_u32_from(self.buf, pos + 4)[0])

    def _get_property_namelen(self, offset: int, name: bytes) -> tuple[int, int, int]:
        """(property position or -1, length or error, property offset)."""
        n = len(name)
        offset = self.first_property_offset(offset)
        while offset >= 0:
            prop, lenp = self._get_property_by_offset(offset)
            if prop < 0:
                offset = -FDT_ERR_INTERNAL
                break
            spos, slen = self.get_string(_i32(_u32_from(self.buf, prop + 8)[0]))
            if spos >= 0 and slen == n and self.buf[spos : spos + n] == name:
                return prop, lenp, offset
            offset = self.next_property_offset(offset)
        return -1, offset, 0

    def get_property_namelen(self, nodeoffset: int, name: bytes) -> tuple[int, int]:
        """``fdt_get_property_namelen``: (property position or -1, length or error)."""
        if self._version < 0x10:
            return -1, -FDT_ERR_BADVERSION
        prop, lenp, _ = self._get_property_namelen(nodeoffset, name)
        return prop, lenp

    def getprop_namelen(self, nodeoffset: int, name: bytes) -> tuple[int, int]:
        """``fdt_getprop_namelen``: (value position or -1, length or error)."""
        prop, lenp, poffset = self._get_property_namelen(nodeoffset, name)
        if prop < 0:
            return -1, lenp
        if self._version < 0x10 and (poffset + PROP_HEADER_SIZE) % 8 and (lenp & _M) >= 8:
            return prop + 16, lenp
        return prop + 12, lenp

    def getprop(self, nodeoffset: int, name: bytes) -> tuple[int, int]:
        return self.getprop_namelen(nodeoffset, name)

    def getprop_value(self, nodeoffset: int, name: bytes) -> bytes | None:
        """The value of a property as bytes, or None."""
        pos, ln = self.getprop_namelen(nodeoffset, name)
        if pos < 0:
            return None
        return self.read(pos, ln)

    def getprop_by_offset(self, offset: int) -> tuple[int, bytes | None, int]:
        """``fdt_getprop_by_offset``: (value position or -1, name, length or error)."""
        prop, lenp = self._get_property_by_offset(offset)
        if prop < 0:
            return -1, None, lenp
        spos, slen = self.get_string(_i32(_u32_from(self.buf, prop + 8)[0]))
        if spos < 0:
            return -1, None, slen
        name = bytes(self.buf[spos : spos + slen])
        if self._version < 0x10 and (offset + PROP_HEADER_SIZE) % 8 and (lenp & _M) >= 8:
            return prop + 16, name, lenp
        return prop + 12, name, lenp

    def get_phandle(self, nodeoffset: int) -> int:
        pos, ln = self.getprop(nodeoffset, b"phandle")
        if pos < 0 or ln != 4:
            pos, ln = self.getprop(nodeoffset, b"linux,phandle")
            if pos < 0 or ln != 4:
                return 0
        return self.u32(pos)

    def find_max_phandle(self) -> tuple[int, int]:
        """``fdt_find_max_phandle``: (error, max phandle)."""
        best = 0
        offset = -1
        while True:
            offset, _ = self.next_node(offset, None)
            if offset < 0:
                if offset == -FDT_ERR_NOTFOUND:
                    break
                return offset, 0
            value = self.get_phandle(offset)
            if value > best:
                best = value
        return 0, best

    def node_offset_by_phandle(self, phandle: int) -> int:
        if phandle in (0, _M):
            return -FDT_ERR_BADPHANDLE
        err = self.ro_probe()
        if err < 0:
            return err
        offset, _ = self.next_node(-1, None)
        while offset >= 0:
            if self.get_phandle(offset) == phandle:
                return offset
            offset, _ = self.next_node(offset, None)
        return offset

    def get_path_into(self, nodeoffset: int, pos: int, buflen: int) -> int:
        """``fdt_get_path`` writing into this buffer at ``pos`` (``buflen`` bytes)."""
        err = self.ro_probe()
        if err < 0:
            return err
        if buflen < 2:
            return -FDT_ERR_NOSPACE
        if pos < 0 or pos + buflen > len(self.buf):
            raise self._overrun(pos, buflen)
        buf = self.buf
        pdepth = 0
        p = 0
        offset = 0
        depth: int | None = 0
        while offset >= 0 and offset <= nodeoffset:
            assert depth is not None
            while pdepth > depth:
                while True:
                    p -= 1
                    if p < 1 or buf[pos + p - 1] == 0x2F:
                        break
                pdepth -= 1
            if pdepth >= depth:
                name, namelen = self.get_name(offset)
                if name is None:
                    return namelen
                if p + namelen + 1 <= buflen:
                    buf[pos + p : pos + p + namelen] = name
                    p += namelen
                    buf[pos + p] = 0x2F
                    p += 1
                    pdepth += 1
            if offset == nodeoffset:
                if pdepth < depth + 1:
                    return -FDT_ERR_NOSPACE
                if p > 1:
                    p -= 1
                buf[pos + p] = 0
                return 0
            offset, depth = self.next_node(offset, depth)
        if offset == -FDT_ERR_NOTFOUND or offset >= 0:
            return -FDT_ERR_BADOFFSET
        if offset == -FDT_ERR_BADOFFSET:
            return -FDT_ERR_BADSTRUCTURE
        return offset

    def supernode_atdepth_offset(self, nodeoffset: int, supernodedepth: int) -> tuple[int, int]:
        """``fdt_supernode_atdepth_offset``: (offset or error, depth of ``nodeoffset``)."""
        err = self.ro_probe()
        if err < 0:
            return err, 0
        if supernodedepth < 0:
            return -FDT_ERR_NOTFOUND, 0
        supernodeoffset = -FDT_ERR_INTERNAL
        offset = 0
        depth: int | None = 0
        while offset >= 0 and offset <= nodeoffset:
            assert depth is not None
            if depth == supernodedepth:
                supernodeoffset = offset
            if offset == nodeoffset:
                if supernodedepth > depth:
                    return -FDT_ERR_NOTFOUND, depth
                return supernodeoffset, depth
            offset, depth = self.next_node(offset, depth)
        if offset == -FDT_ERR_NOTFOUND or offset >= 0:
            return -FDT_ERR_BADOFFSET, 0
        if offset == -FDT_ERR_BADOFFSET:
            return -FDT_ERR_BADSTRUCTURE, 0
        return offset, 0

    def node_depth(self, nodeoffset: int) -> int:
        err, depth = self.supernode_atdepth_offset(nodeoffset, 0)
        if err:
            return err if err < 0 else -FDT_ERR_INTERNAL
        return depth

    def parent_offset(self, nodeoffset: int) -> int:
        nodedepth = self.node_depth(nodeoffset)
        if nodedepth < 0:
            return nodedepth
        return self.supernode_atdepth_offset(nodeoffset, nodedepth - 1)[0]

    def _blocks_misordered(self, mem_rsv_size: int, struct_size: int) -> bool:
        off_rsv = self._get(_OFF_RSVMAP)
        off_struct = self._get(_OFF_STRUCT)
        off_strings = self._get(_OFF_STRINGS)
        return (
            off_rsv < HEADER_SIZE
            or off_struct < ((off_rsv + mem_rsv_size) & _M)
            or off_strings < ((off_struct + struct_size) & _M)
            or self._get(_TOTALSIZE) < ((off_strings + self._get(_SIZE_STRINGS)) & _M)
        )

    # -- fdt_wip.c -----------------------------------------------------------

    def setprop_inplace_namelen_partial(self, nodeoffset: int, name: bytes, idx: int, val: bytes) -> int:
        pos, proplen = self.getprop_namelen(nodeoffset, name)
        if pos < 0:
            return proplen
        if (proplen & _M) < ((len(val) + idx) & _M):
            return -FDT_ERR_NOSPACE
        self.write(pos + idx, val)
        return 0

    def setprop_inplace(self, nodeoffset: int, name: bytes, val: bytes) -> int:
        pos, proplen = self.getprop(nodeoffset, name)
        if pos < 0:
            return proplen
        if proplen != len(val):
            return -FDT_ERR_NOSPACE
        return self.setprop_inplace_namelen_partial(nodeoffset, name, 0, val)

