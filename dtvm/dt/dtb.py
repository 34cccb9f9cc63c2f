"""The flattened blob: read and write, byte-identical to dtc 1.6.1's ``flattree.c``.

``read_dtb`` is dtc's ``dt_from_blob`` (``dtc -I dtb``) and ``write_dtb`` is its
``dt_to_blob`` (``dtc -O dtb``).  Both follow dtc rather than the devicetree
specification where the two differ, because dtvm promises dtc's output byte
for byte and dtc's acceptance decision for every input:

* dtc accepts blobs of any version: versions below 16 keep full paths as node
  names in the structure block, align property values of 8 bytes or more to 8
  ("VARALIGN"), and may lack ``size_dt_strings``; ``size_dt_struct`` is only
  checked against ``totalsize``, never used as a limit; the reservation map
  ends at the first entry whose *size* is zero; alignment in the structure
  block is counted from ``off_dt_struct`` (which need not be aligned);
  anything after ``FDT_END`` or after ``totalsize`` is ignored.
* Where dtc's behaviour is undefined (it reads uninitialised or freed memory,
  or crashes), dtvm rejects the blob: a header field that lies beyond
  ``totalsize``, a property length of 2 GiB or more, a full-path node name
  shorter than its parent's path plus the separator.

Reading is bounded and checked: every error is a :class:`~dtvm.errors.BlobError`
naming the byte offset, the walk is iterative (any nesting depth), and time and
memory stay linear in the blob size.

Names.  dtc treats node and property names as bytes; the tree model holds them
as ``str``.  dtvm maps them byte for character with latin-1, as the DTS front
end maps source text (``dtvm.dt.dts.source``) and as the DTS writer maps it back:
every byte string round-trips exactly, ``len(name)`` is dtc's ``strlen``, and
comparing two names as ``str`` gives C's ``strcmp`` order.  (A UTF-8 name
shows as mojibake in Python, and is written back as the same bytes.)  Use
:func:`encode_name` / :func:`decode_name` rather than spelling the codec out.
"""

from __future__ import annotations

import errno
import gc
import struct
import sys
from collections.abc import Callable

from dtvm.dt.tree import DeviceTree, Node, Property, ReserveEntry
from dtvm.errors import BlobError, DtvmError
from dtvm.fileio import MAX_BLOB, InputFileError, read_blob

__all__ = [
    "FDT_BEGIN_NODE",
    "FDT_END",
    "FDT_END_NODE",
    "FDT_MAGIC",
    "FDT_NOP",
    "FDT_PROP",
    "VERSIONS",
    "BlobFileError",
    "decode_name",
    "encode_name",
    "read_dtb",
    "read_dtb_file",
    "write_dtb",
]

FDT_MAGIC = 0xD00DFEED
FDT_BEGIN_NODE = 0x1
FDT_END_NODE = 0x2
FDT_PROP = 0x3
FDT_NOP = 0x4
FDT_END = 0x9

# Header sizes (fdt.h): v1 has seven fields, v2 adds boot_cpuid_phys,
# v3 size_dt_strings, v17 size_dt_struct.
FDT_V1_SIZE = 7 * 4
FDT_V2_SIZE = FDT_V1_SIZE + 4
FDT_V3_SIZE = FDT_V2_SIZE + 4
FDT_V16_SIZE = FDT_V3_SIZE
FDT_V17_SIZE = FDT_V16_SIZE + 4

# flattree.c's format flags.
FTF_FULLPATH = 0x1
FTF_VARALIGN = 0x2
FTF_NAMEPROPS = 0x4
FTF_BOOTCPUID = 0x8
FTF_STRTABSIZE = 0x10
FTF_STRUCTSIZE = 0x20
FTF_NOPS = 0x40

#: dtc's version_table: version -> (last_comp_version, header size, flags).
VERSIONS: dict[int, tuple[int, int, int]] = {
    1: (1, FDT_V1_SIZE, FTF_FULLPATH | FTF_VARALIGN | FTF_NAMEPROPS),
    2: (1, FDT_V2_SIZE, FTF_FULLPATH | FTF_VARALIGN | FTF_NAMEPROPS | FTF_BOOTCPUID),
    3: (1, FDT_V3_SIZE, FTF_FULLPATH | FTF_VARALIGN | FTF_NAMEPROPS | FTF_BOOTCPUID | FTF_STRTABSIZE),
    16: (16, FDT_V3_SIZE, FTF_BOOTCPUID | FTF_STRTABSIZE | FTF_NOPS),
    17: (16, FDT_V17_SIZE, FTF_BOOTCPUID | FTF_STRTABSIZE | FTF_STRUCTSIZE | FTF_NOPS),
}

_U32 = struct.Struct(">I")
_U32X2 = struct.Struct(">II")
_U64X2 = struct.Struct(">QQ")
_HEADER = struct.Struct(">7I")
_PROP_HEAD = struct.Struct(">III")
_BEGIN_CELL = _U32.pack(FDT_BEGIN_NODE)
_END_NODE_CELL = _U32.pack(FDT_END_NODE)
_END_CELL = _U32.pack(FDT_END)
_PADS = (b"", b"\0\0\0", b"\0\0", b"\0")  # padding after len bytes, by len % 4
_NUL_PADS = (b"\0\0\0\0", b"\0\0\0", b"\0\0", b"\0")  # a NUL, then padding

Warn = Callable[[str], None]


def _stderr_warn(message: str) -> None:
    print(message, file=sys.stderr)


def decode_name(raw: bytes) -> str:
    """Bytes of a node or property name -> str (latin-1: one character per byte, lossless)."""
    return raw.decode("latin-1")


def encode_name(name: str) -> bytes:
    """The inverse of :func:`decode_name`: the exact bytes dtc would see.

    A character above U+00FF cannot come from a blob or from DTS source; it
    is encoded as UTF-8 rather than failing.
    """
    try:
        return name.encode("latin-1")
    except UnicodeEncodeError:
        try:
            return name.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return name.encode("utf-8", "surrogatepass")


def _c_string(name: str) -> bytes:
    """A name as a C string: dtc stops at the first NUL (strlen)."""
    raw = encode_name(name)
    nul = raw.find(b"\0")
    return raw if nul < 0 else raw[:nul]


def _join_path(path: bytes, name: bytes) -> bytes:
    """dtc's join_path: no second slash after a path that ends in one."""
    if path.endswith(b"/"):
        return path + name
    return path + b"/" + name


# ---------------------------------------------------------------------------
# reading


def _fail(name: str, offset: int | None, message: str) -> BlobError:
    return BlobError(message, offset, name)


def read_dtb(data: bytes, name: str = "<dtb>", warn: Warn | None = None) -> DeviceTree:
    """Parse a flattened blob as dtc 1.6.1's ``dt_from_blob`` does.

    Accepts and rejects what dtc accepts and rejects (see the module doc);
    property values are plain bytes without markers (dtc guesses types when
    it writes DTS), ``Node.phandle`` stays 0 (a later check sets it).
    ``warn`` receives dtc's non-fatal messages (a property after a subnode, a
    NOP in a blob older than v16); by default they go to stderr, as dtc's do.

    Raises BlobError (with the byte offset) for any corrupt blob, and nothing
    else: the work is iterative and bounded by ``len(data)``.
    """
    if warn is None:
        warn = _stderr_warn
    if not isinstance(data, bytes):
        data = bytes(data)
    size = len(data)
    if size < 4:
        raise _fail(name, size, "EOF reading DT blob magic number")
    if _U32.unpack_from(data, 0)[0] != FDT_MAGIC:
        raise _fail(name, 0, "Blob has incorrect magic number")
    if size < 8:
        raise _fail(name, size, "EOF reading DT blob size")
    totalsize = _U32.unpack_from(data, 4)[0]
    if totalsize < FDT_V1_SIZE:
        raise _fail(name, 4, f"DT blob size ({totalsize}) is too small")
    if size < totalsize:
        raise _fail(name, size, f"EOF before reading {totalsize} bytes of DT blob")
    (_, _, off_dt, off_str, off_rsv, version, _last_comp) = _HEADER.unpack_from(data, 0)

    # dtc reads boot_cpuid_phys always, size_dt_strings from v3 and
    # size_dt_struct from v17; a field past totalsize is uninitialised memory
    # in dtc (undefined behaviour), so such a blob is rejected here.
    need = FDT_V2_SIZE if version < 3 else FDT_V3_SIZE if version < 17 else FDT_V17_SIZE
    if totalsize < need:
        raise _fail(
            name,
            totalsize,
            f"header of a version {version} blob extends past total size {totalsize} (undefined in dtc)",
        )
    boot_cpuid = _U32.unpack_from(data, 28)[0]

    if off_rsv >= totalsize:
        raise _fail(name, 16, "Mem Reserve structure offset exceeds total size")
    if off_dt >= totalsize:
        raise _fail(name, 8, "DT structure offset exceeds total size")
    if off_str > totalsize:
        raise _fail(name, 12, "String table offset exceeds total size")
    if version >= 3:
        size_str = _U32.unpack_from(data, 32)[0]
        if off_str + size_str > totalsize:
            raise _fail(name, 32, "String table extends past total size")
        str_end = off_str + size_str
    else:
        str_end = totalsize
    if version >= 17:
        size_dt = _U32.unpack_from(data, 36)[0]
        if off_dt + size_dt > totalsize:
            raise _fail(name, 36, "Structure block extends past total size")
    if version < 16:
        flags = FTF_FULLPATH | FTF_NAMEPROPS | FTF_VARALIGN
    else:
        flags = FTF_NOPS

    # Memory reservation map: entries up to the first with size zero.
    reservations: list[ReserveEntry] = []
    pos = off_rsv
    unpack_rsv = _U64X2.unpack_from
    while True:
        if pos + 16 > totalsize:
            raise _fail(name, pos, "Premature end of data parsing flat device tree (memory reservation map)")
        address, rsize = unpack_rsv(data, pos)
        pos += 16
        if rsize == 0:
            break
        reservations.append(ReserveEntry(address, rsize))

    strtab = data[off_str:str_end]
    # A large blob becomes tens of thousands of small objects; the cyclic
    # collector would scan them again and again while they are being made
    # (measured on the kernel corpus: reading is 1.3x slower with it on).
    # None of them can be garbage before the tree is complete.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        root = _read_struct(data, off_dt, totalsize, strtab, flags, name, warn)
    finally:
        if gc_was_enabled:
            gc.enable()
    dt = DeviceTree(root, reservations, boot_cpuid)
    dt.source_name = name
    return dt


def _read_struct(
    data: bytes, base: int, limit: int, strtab: bytes, flags: int, name: str, warn: Warn
) -> Node:
    """dtc's unflatten_tree, as one loop with an explicit stack (any depth).

    Offsets inside the structure block are relative to ``base``
    (off_dt_struct), because dtc aligns relative to it; errors add ``base``
    back to name the absolute offset.  The block is copied with 16 zero bytes
    after its end, so that every token can be read as three words at once
    without a bounds check: a read that strays into the padding finds tag 0
    (invalid) or a property whose value ends past ``end``; both are caught
    on the slow path and reported as dtc's "Premature end of data".
    """
    data = data[base:limit] + bytes(16)
    end = limit - base
    unpack3 = _PROP_HEAD.unpack_from
    find = data.find
    strfind = strtab.find
    strsize = len(strtab)
    names: dict[int, str] = {}
    fullpath = bool(flags & FTF_FULLPATH)
    varalign = bool(flags & FTF_VARALIGN)
    nops_ok = bool(flags & FTF_NOPS)

    def premature(at: int, what: str) -> BlobError:
        return _fail(name, base + at, f"Premature end of data parsing flat device tree ({what})")

    if end < 4:
        raise premature(0, "first token")
    tag = unpack3(data, 0)[0]
    if tag != FDT_BEGIN_NODE:
        raise _fail(
            name, base, f"Device tree blob doesn't begin with FDT_BEGIN_NODE (begins with 0x{tag:08x})"
        )

    stack: list[tuple[Node, bytes]] = []  # (parent, parent's flat name)
    parent_flat = b""
    node: Node | None = None
    had_children = False
    pos = 0  # at a FDT_BEGIN_NODE token
    while True:
        # --- FDT_BEGIN_NODE at pos: the name ---------------------------------
        start = pos + 4
        nul = find(b"\0", start, end)
        if nul < 0:
            raise premature(start, "node name")
        raw = data[start:nul]
        pos = (nul + 4) & ~3
        if fullpath:
            if not raw.startswith(parent_flat):
                raise _fail(
                    name,
                    base + start,
                    f'Path "{decode_name(raw)}" is not valid as a child of "{decode_name(parent_flat)}"',
                )
            cut = len(parent_flat) + (0 if parent_flat == b"/" else 1)
            if len(raw) < cut:
                # dtc reads past the end of its copy of the name here.
                raise _fail(
                    name,
                    base + start,
                    f'Path "{decode_name(raw)}" has no node name after "{decode_name(parent_flat)}" (undefined in dtc)',
                )
            child = Node(decode_name(raw[cut:]))
        else:
            child = Node(decode_name(raw))
        if node is not None:
            child.parent = node
            node.children.append(child)
            stack.append((node, parent_flat))
        node = child
        parent_flat = raw
        had_children = False
        add_prop = node.props.append

        # --- the node's body, up to its FDT_END_NODE ---------------------------
        while True:
            tag, vlen, stroff = unpack3(data, pos)
            if tag == FDT_PROP:
                if had_children:
                    warn("Warning: Flat tree input has subnodes preceding a property.")
                pname = names.get(stroff)
                if pname is None:
                    if pos + 12 > end:
                        raise premature(pos + 4, "property header")
                    if stroff >= strsize:
                        # dtc passes the offset as a C int: 2 GiB and up is negative.
                        soff = stroff - (1 << 32) if stroff >= 0x80000000 else stroff
                        raise _fail(name, base + pos + 8, f"String offset {soff} overruns string table")
                    snul = strfind(b"\0", stroff)
                    if snul < 0:
                        raise _fail(name, base + pos + 8, f"String offset {stroff} overruns string table")
                    pname = names[stroff] = decode_name(strtab[stroff:snul])
                start = pos + 12
                if varalign and vlen >= 8:
                    start = (start + 7) & ~7
                pos = start + vlen
                if pos > end or vlen > 0x7FFFFFFF:
                    # dtc crashes on a length of 2 GiB or more.
                    raise premature(start if start <= end else end, f"property value of {vlen} bytes")
                add_prop(Property(pname, data[start:pos]))
                pos = (pos + 3) & ~3
            elif tag == FDT_BEGIN_NODE:
                break  # descend: the outer loop reads the child's name
            elif tag == FDT_END_NODE:
                pos += 4
                if not stack:
                    # The root is complete: the next word must be FDT_END.
                    if pos + 4 > end:
                        raise premature(pos, "FDT_END")
                    if unpack3(data, pos)[0] != FDT_END:
                        raise _fail(name, base + pos, "Device tree blob doesn't end with FDT_END")
                    return node
                node, parent_flat = stack.pop()
                had_children = True
                add_prop = node.props.append
            elif pos + 4 > end:
                # Past the end the tag's low byte is padding (zero), so it can
                # be none of the valid tags: all of them end here.
                raise premature(pos, "token")
            elif tag == FDT_NOP:
                if not nops_ok:
                    warn("Warning: NOP tag found in flat tree version <16")
                pos += 4
            elif tag == FDT_END:
                raise _fail(name, base + pos, "Premature FDT_END in device tree blob")
            else:
                raise _fail(name, base + pos, f"Invalid opcode word {tag:08x} in device tree blob")


# ---------------------------------------------------------------------------
# writing


class _StringTable:
    """dtc 1.6.1's stringtable_insert, with a cache.

    dtc returns the first offset ``i`` at which the table holds ``name``
    followed by NUL, so a name can share the tail of an earlier one
    ("phandle" inside "linux,phandle"); otherwise it appends.  Because names
    hold no NUL and every entry ends in one, a first occurrence never moves
    when the table grows, so the answer can be cached per name.
    """

    __slots__ = ("cache", "table")

    def __init__(self) -> None:
        self.table = bytearray()
        self.cache: dict[str, int] = {}

    def insert(self, name: str) -> int:
        off = self.cache.get(name)
        if off is None:
            needle = _c_string(name) + b"\0"
            table = self.table
            off = table.find(needle)
            if off < 0:
                off = len(table)
                table += needle
            self.cache[name] = off
        return off


def _align(value: int, alignment: int) -> int:
    """C's ALIGN(x, a) on 32-bit unsigned values, as dtc computes it."""
    return ((value + alignment - 1) & ~(alignment - 1)) & 0xFFFFFFFF


def _flatten(root: Node, flags: int, strings: _StringTable) -> list[bytes]:
    """dtc's flatten_tree with the binary emitter, iterative (any depth)."""
    out: list[bytes] = []
    emit = out.append
    if root.deleted:
        return out
    insert = strings.insert
    cached = strings.cache.get
    pack_prop = _PROP_HEAD.pack
    pads = _PADS
    nul_pads = _NUL_PADS
    fullpath = bool(flags & FTF_FULLPATH)
    varalign = bool(flags & FTF_VARALIGN)
    nameprops = bool(flags & FTF_NAMEPROPS)
    begin = _BEGIN_CELL
    end_node = _END_NODE_CELL
    olen = 0  # bytes emitted so far, tracked only where VARALIGN needs it
    # Stack items: a Node to open, or None to close the current one.  The
    # parallel path stack holds dtc's fullpath for versions < 16.
    stack: list[Node | None] = [root]
    paths: list[bytes] = [b""]
    while stack:
        node = stack.pop()
        if node is None:
            emit(end_node)
            olen += 4
            continue
        raw = _c_string(node.name)
        flat = _join_path(paths.pop(), raw) if fullpath else raw
        emit(begin)
        emit(flat + nul_pads[len(flat) & 3])
        if varalign:
            olen += 4 + ((len(flat) + 4) & ~3)
        seen_name = False
        for prop in node.props:
            if prop.deleted:
                continue
            pname = prop.name
            if pname == "name":
                seen_name = True
            value = prop.value
            vlen = len(value)
            nameoff = cached(pname)
            if nameoff is None:
                nameoff = insert(pname)
            emit(pack_prop(FDT_PROP, vlen, nameoff))
            if varalign:
                olen += 12
                if vlen >= 8 and olen & 7:
                    emit(b"\0\0\0\0")
                    olen += 4
                olen += (vlen + 3) & ~3
            emit(value)
            emit(pads[vlen & 3])
        if nameprops and not seen_name:
            at = raw.find(b"@")
            basenamelen = len(raw) if at < 0 else at
            emit(pack_prop(FDT_PROP, basenamelen + 1, insert("name")))
            olen += 12
            if basenamelen + 1 >= 8 and olen & 7:
                emit(b"\0\0\0\0")
                olen += 4
            # bin_emit_string with len 0 means strlen: a node whose basename
            # is empty ("@1") gets its whole name, though the length cell
            # says 1; dtc writes it so.
            sval = raw[:basenamelen] if basenamelen else raw
            emit(sval + nul_pads[len(sval) & 3])
            olen += (len(sval) + 4) & ~3
        stack.append(None)
        kids = [c for c in node.children if not c.deleted]
        kids.reverse()
        stack.extend(kids)
        if fullpath:
            paths.extend([flat] * len(kids))
    return out


def write_dtb(
    dt: DeviceTree,
    version: int = 17,
    minsize: int = 0,
    padsize: int = 0,
    alignsize: int = 0,
    quiet: int = 0,
    warn: Warn | None = None,
    reservenum: int = 0,
) -> bytes:
    """Flatten ``dt`` exactly as dtc 1.6.1's ``dt_to_blob`` does.

    ``version`` is one of 1, 2, 3, 16, 17 (``-V``); ``minsize``, ``padsize``,
    ``alignsize`` and ``reservenum`` are dtc's ``-S``, ``-p``, ``-a`` and
    ``-R``; ``quiet`` is the number of ``-q``.  ``warn`` receives the "blob
    size >= minimum size" warning (default: stderr, as dtc).  Deleted nodes
    and properties are skipped.  The boot CPU comes from ``dt.boot_cpuid``
    (set it first for ``-b``).
    """
    vi = VERSIONS.get(version)
    if vi is None:
        raise BlobError(f"Unknown device tree blob version {version}")
    last_comp, hdr_size, flags = vi

    strings = _StringTable()
    chunks = _flatten(dt.root, flags, strings)
    chunks.append(_END_CELL)
    dtbuf = b"".join(chunks)
    strbuf = bytes(strings.table)

    rsv = [_U64X2.pack(r.address & 0xFFFFFFFFFFFFFFFF, r.size & 0xFFFFFFFFFFFFFFFF) for r in dt.reservations]
    rsv.extend([bytes(16)] * max(reservenum, 0))
    rsv.append(bytes(16))  # the terminating entry
    rsvbuf = b"".join(rsv)

    reserve_off = _align(hdr_size, 8)
    off_dt = reserve_off + len(rsvbuf)
    off_str = off_dt + len(dtbuf)
    totalsize = (off_str + len(strbuf)) & 0xFFFFFFFF

    padlen = 0
    if minsize > 0:
        padlen = minsize - totalsize
        if padlen < 0:
            padlen = 0
            if quiet < 1:
                (warn or _stderr_warn)(f"Warning: blob size {totalsize} >= minimum size {minsize}")
    if padsize > 0:
        padlen = padsize
    if alignsize > 0:
        padlen = (_align((totalsize + padlen) & 0xFFFFFFFF, alignsize) - totalsize) & 0xFFFFFFFF
        if padlen >= 0x80000000:  # an int in dtc
            padlen -= 1 << 32
    if padlen > 0:
        totalsize = (totalsize + padlen) & 0xFFFFFFFF

    fields = [FDT_MAGIC, totalsize, off_dt, off_str, reserve_off, version, last_comp]
    if flags & FTF_BOOTCPUID:
        fields.append(dt.boot_cpuid & 0xFFFFFFFF)
    if flags & FTF_STRTABSIZE:
        fields.append(len(strbuf))
    if flags & FTF_STRUCTSIZE:
        fields.append(len(dtbuf))
    header = struct.pack(f">{len(fields)}I", *(f & 0xFFFFFFFF for f in fields))
    header += b"\xff" * (hdr_size - len(header))  # dtc memsets the header to 0xff
    header += bytes(reserve_off - hdr_size)
    parts = [header, rsvbuf, dtbuf, strbuf]
    if padlen > 0:
        parts.append(bytes(padlen))
    return b"".join(parts)


class BlobFileError(InputFileError):
    """A DTB file that cannot be read: ``file`` and a one-line ``message`` without the file name."""

    def __init__(self, file: str, message: str) -> None:
        super().__init__(file, message, errno.EINVAL)


def read_dtb_file(path: str, limit: int = MAX_BLOB, warn: Warn | None = None) -> DeviceTree:
    """The tree in a DTB file, for tools reading blobs from anyone: the header is read first and
    the size capped at ``limit`` before the body is read (:func:`dtvm.fileio.read_blob`), and
    every failure is one BlobFileError line."""
    try:
        data = read_blob(path, limit)
    except InputFileError as exc:
        raise BlobFileError(path, exc.message) from None
    try:
        return read_dtb(data, path, warn=warn)
    except BlobError as exc:
        where = "" if exc.offset is None else f"offset {exc.offset:#x}: "
        raise BlobFileError(path, f"{where}{exc.message}") from None
    except DtvmError as exc:
        lines = str(exc).splitlines()
        raise BlobFileError(path, lines[0] if lines else "unusable input") from None
