"""The SWIG level of :mod:`dtvm.pylibfdt`: pylibfdt's ``fdt_*`` functions, error numbers and checks.

pylibfdt's classes call SWIG wrappers that take the blob as a bytearray and
return plain values or ``[value, length]`` lists; this module is those
wrappers, each running libfdt's function of the same name on the dtvm model
(:mod:`dtvm.dt.libfdt`) over that very bytearray, with SWIG's argument checks
(TypeError, OverflowError) and SWIG's return shapes.  Import it through
:mod:`dtvm.pylibfdt`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from dtvm.dt import fdt_sw
from dtvm.dt.fdt_sw import (
    FDT_CREATE_FLAG_NO_NAME_DEDUP,
    FDT_CREATE_FLAGS_ALL,
    FDT_LAST_COMPATIBLE_VERSION,
)
from dtvm.dt.libfdt import (
    FDT_BEGIN_NODE,
    FDT_END,
    FDT_END_NODE,
    FDT_ERR_ALIGNMENT,
    FDT_ERR_BADFLAGS,
    FDT_ERR_BADLAYOUT,
    FDT_ERR_BADMAGIC,
    FDT_ERR_BADNCELLS,
    FDT_ERR_BADOFFSET,
    FDT_ERR_BADOVERLAY,
    FDT_ERR_BADPATH,
    FDT_ERR_BADPHANDLE,
    FDT_ERR_BADSTATE,
    FDT_ERR_BADSTRUCTURE,
    FDT_ERR_BADVALUE,
    FDT_ERR_BADVERSION,
    FDT_ERR_EXISTS,
    FDT_ERR_INTERNAL,
    FDT_ERR_NOPHANDLES,
    FDT_ERR_NOSPACE,
    FDT_ERR_NOTFOUND,
    FDT_ERR_TRUNCATED,
    FDT_FIRST_SUPPORTED_VERSION,
    FDT_LAST_SUPPORTED_VERSION,
    FDT_NOP,
    FDT_PROP,
    HEADER_SIZE,
    INT32_MAX,
)
from dtvm.dt.libfdt import FDT_MAGIC as _FDT_MAGIC
from dtvm.dt.libfdt import (
    Fdt as _ModelFdt,
)
from dtvm.dt.libfdt import (
    FdtRo as _ModelRo,
)
from dtvm.dt.libfdt import (
    open_into as _open_into,
)
from dtvm.dt.libfdt import (
    strerror as _strerror,
)
from dtvm.errors import BlobError

__all__ = [
    "BADLAYOUT",
    "BADMAGIC",
    "BADNCELLS",
    "BADOFFSET",
    "BADOVERLAY",
    "BADPATH",
    "BADPHANDLE",
    "BADSTATE",
    "BADSTRUCTURE",
    "BADVALUE",
    "BADVERSION",
    "EXISTS",
    "FDT_BEGIN_NODE",
    "FDT_CREATE_FLAGS_ALL",
    "FDT_CREATE_FLAG_NO_NAME_DEDUP",
    "FDT_END",
    "FDT_END_NODE",
    "FDT_ERR_ALIGNMENT",
    "FDT_ERR_BADFLAGS",
    "FDT_ERR_BADLAYOUT",
    "FDT_ERR_BADMAGIC",
    "FDT_ERR_BADNCELLS",
    "FDT_ERR_BADOFFSET",
    "FDT_ERR_BADOVERLAY",
    "FDT_ERR_BADPATH",
    "FDT_ERR_BADPHANDLE",
    "FDT_ERR_BADSTATE",
    "FDT_ERR_BADSTRUCTURE",
    "FDT_ERR_BADVALUE",
    "FDT_ERR_BADVERSION",
    "FDT_ERR_EXISTS",
    "FDT_ERR_INTERNAL",
    "FDT_ERR_MAX",
    "FDT_ERR_NOPHANDLES",
    "FDT_ERR_NOSPACE",
    "FDT_ERR_NOTFOUND",
    "FDT_ERR_TRUNCATED",
    "FDT_FIRST_SUPPORTED_VERSION",
    "FDT_LAST_COMPATIBLE_VERSION",
    "FDT_LAST_SUPPORTED_VERSION",
    "FDT_MAGIC",
    "FDT_MAX_NCELLS",
    "FDT_MAX_PHANDLE",
    "FDT_NOP",
    "FDT_PROP",
    "INTERNAL",
    "NOPHANDLES",
    "NOSPACE",
    "NOTFOUND",
    "QUIET_ALL",
    "QUIET_NOSPACE",
    "QUIET_NOTFOUND",
    "TRUNCATED",
    "FdtException",
    "check_err",
    "check_err_null",
    "fdt_add_subnode",
    "fdt_boot_cpuid_phys",
    "fdt_check_header",
    "fdt_create_empty_tree",
    "fdt_del_node",
    "fdt_delprop",
    "fdt_first_property_offset",
    "fdt_first_subnode",
    "fdt_get_alias",
    "fdt_get_mem_rsv",
    "fdt_get_name",
    "fdt_get_path",
    "fdt_get_phandle",
    "fdt_get_property_by_offset",
    "fdt_getprop",
    "fdt_header_size",
    "fdt_header_size_",
    "fdt_last_comp_version",
    "fdt_magic",
    "fdt_next_node",
    "fdt_next_property_offset",
    "fdt_next_subnode",
    "fdt_node_offset_by_phandle",
    "fdt_num_mem_rsv",
    "fdt_off_dt_strings",
    "fdt_off_dt_struct",
    "fdt_off_mem_rsvmap",
    "fdt_open_into",
    "fdt_pack",
    "fdt_parent_offset",
    "fdt_path_offset",
    "fdt_set_name",
    "fdt_setprop",
    "fdt_setprop_u32",
    "fdt_setprop_u64",
    "fdt_size_dt_strings",
    "fdt_size_dt_struct",
    "fdt_strerror",
    "fdt_subnode_offset",
    "fdt_totalsize",
    "fdt_version",
    "strerror",
]

# The error numbers under their short names, as pylibfdt exports them; QUIET_ALL is a range,
# as in pylibfdt (so ``QUIET_ALL + (NOTFOUND,)`` fails there as it does here).
(
    NOTFOUND,
    EXISTS,
    NOSPACE,
    BADOFFSET,
    BADPATH,
    BADPHANDLE,
    BADSTATE,
    TRUNCATED,
    BADMAGIC,
    BADVERSION,
    BADSTRUCTURE,
    BADLAYOUT,
    INTERNAL,
    BADNCELLS,
    BADVALUE,
    BADOVERLAY,
    NOPHANDLES,
) = QUIET_ALL = range(1, 18)
QUIET_NOTFOUND = (NOTFOUND,)
QUIET_NOSPACE = (NOSPACE,)

FDT_ERR_MAX = FDT_ERR_ALIGNMENT
# SWIG exports the C macro as a signed int: pylibfdt's FDT_MAGIC is negative (fdt.magic() is not)
FDT_MAGIC = _FDT_MAGIC - (1 << 32)
FDT_MAX_PHANDLE = -2  # 0xfffffffe, signed as SWIG exports it
FDT_MAX_NCELLS = 4

_INT_MIN = -(2**31)
_T = TypeVar("_T")


class FdtException(Exception):
    """A libfdt error; ``err`` is the negative ``-FDT_ERR_*`` code."""

    def __init__(self, err: int) -> None:
        self.err = err

    def __str__(self) -> str:
        return f"pylibfdt error {self.err}: {fdt_strerror(self.err)}"


def fdt_strerror(errval: int) -> str:
    """``fdt_strerror``: the name of an error code (negative), or a placeholder text."""
    return _strerror(_c_int(errval, "fdt_strerror", 1))


def strerror(fdt_err: int) -> str:
    """The text of a (negative) error number."""
    return fdt_strerror(fdt_err)


def check_err(val: Any, quiet: Sequence[int] = ()) -> Any:
    """Raise FdtException for a negative integer unless its error is in ``quiet``."""
    if isinstance(val, int) and val < 0 and -val not in quiet:
        raise FdtException(val)
    return val


def check_err_null(val: Any, quiet: Sequence[int] = ()) -> list[Any]:
    """For the calls that return [value, length]: raise when the value is None (an error)."""
    if not isinstance(val, list):
        val = [None, val]
    if val[0] is None and -val[1] not in quiet:
        raise FdtException(val[1])
    return val


# -- argument conversion, with the errors SWIG gives for the wrong types ---------


def _c_int(v: object, fn: str, argn: int, lo: int = _INT_MIN, hi: int = INT32_MAX) -> int:
    if not isinstance(v, int):
        raise TypeError(f"in method '{fn}', argument {argn} of type 'int'")
    if not lo <= v <= hi:
        raise OverflowError(f"in method '{fn}', argument {argn} of type 'int'")
    return int(v)


def _u32(v: object, fn: str, argn: int) -> int:
    if not isinstance(v, int):
        raise TypeError(f"in method '{fn}', argument {argn} of type 'uint32_t'")
    if not 0 <= v <= 0xFFFFFFFF:
        raise OverflowError(f"in method '{fn}', argument {argn} of type 'uint32_t'")
    return int(v)


def _u64(v: object, fn: str, argn: int) -> int:
    if not isinstance(v, int):
        raise TypeError(f"in method '{fn}', argument {argn} of type 'uint64_t'")
    if not 0 <= v <= 0xFFFFFFFFFFFFFFFF:
        raise OverflowError(f"in method '{fn}', argument {argn} of type 'uint64_t'")
    return int(v)


def _cstr(v: object, fn: str, argn: int) -> bytes:
    """A ``const char *`` argument: a str, UTF-8 encoded, cut at its first NUL as C sees it."""
    if not isinstance(v, str):
        raise TypeError(f"in method '{fn}', argument {argn} of type 'char const *'")
    return v.encode("utf-8").split(b"\0", 1)[0]


def _buf(v: object, fn: str) -> bytearray:
    """The blob argument: pylibfdt's classes pass their bytearray, which libfdt reads in place."""
    if not isinstance(v, bytearray):
        raise TypeError(f"in method '{fn}', argument 1 of type 'void const *'")
    return v


def _decode(b: bytes) -> str:
    return b.decode("utf-8", errors="surrogateescape")


# The model object of the buffer used last (one read-only, one read-write).  A model caches
# what it derives from the header and the buffer's length, so it is reused only for the same
# bytearray with the same length and header bytes; anything else gets a fresh one.  This saves
# the header decoding on every call of a loop over a tree (about half the cost of a call).
_LAST: dict[bool, tuple[bytearray, bytes, _ModelRo]] = {}


def _model(fn: str, fdt: object, rw: bool = False) -> _ModelRo:
    buf = _buf(fdt, fn)
    n = len(buf)
    if n < HEADER_SIZE:
        # libfdt would read a header past the end of a short buffer; the model refuses
        raise FdtException(-FDT_ERR_TRUNCATED)
    key = bytes(buf[:HEADER_SIZE]) + n.to_bytes(8, "little")
    last = _LAST.get(rw)
    if last is not None and last[0] is buf and last[1] == key:
        return last[2]
    m = _ModelFdt(buf) if rw else _ModelRo(buf)
    _LAST[rw] = (buf, key, m)
    return m


def _guard(call: Callable[[], _T]) -> _T:
    """Run a model call; where C would read outside the buffer, report a truncated blob."""
    try:
        return call()
    except BlobError:
        raise FdtException(-FDT_ERR_TRUNCATED) from None
    except RecursionError:
        raise FdtException(-FDT_ERR_BADSTRUCTURE) from None


# -- fdt.c / fdt_ro.c -------------------------------------------------------------


def _hdr(fdt: bytearray, field: int) -> int:
    head = bytes(fdt[: field + 4]).ljust(field + 4, b"\0")
    return int(struct.unpack_from(">I", head, field)[0])


def fdt_magic(fdt: bytearray) -> int:
    return _hdr(_buf(fdt, "fdt_magic"), 0)


def fdt_totalsize(fdt: bytearray) -> int:
    return _hdr(_buf(fdt, "fdt_totalsize"), 4)


def fdt_off_dt_struct(fdt: bytearray) -> int:
    return _hdr(_buf(fdt, "fdt_off_dt_struct"), 8)


def fdt_off_dt_strings(fdt: bytearray) -> int:
    return _hdr(_buf(fdt, "fdt_off_dt_strings"), 12)


def fdt_off_mem_rsvmap(fdt: bytearray) -> int:
    return _hdr(_buf(fdt, "fdt_off_mem_rsvmap"), 16)


def fdt_version(fdt: bytearray) -> int:
    return _hdr(_buf(fdt, "fdt_version"), 20)


def fdt_last_comp_version(fdt: bytearray) -> int:
    return _hdr(_buf(fdt, "fdt_last_comp_version"), 24)


def fdt_boot_cpuid_phys(fdt: bytearray) -> int:
    return _hdr(_buf(fdt, "fdt_boot_cpuid_phys"), 28)


def fdt_size_dt_strings(fdt: bytearray) -> int:
    return _hdr(_buf(fdt, "fdt_size_dt_strings"), 32)


def fdt_size_dt_struct(fdt: bytearray) -> int:
    return _hdr(_buf(fdt, "fdt_size_dt_struct"), 36)


def fdt_header_size_(version: int) -> int:
    """``fdt_header_size_``: how much of the header a blob of this version has."""
    if version <= 1:
        return 28
    if version <= 2:
        return 32
    if version <= 3:
        return 36
    if version <= 16:
        return 36
    return 40


def fdt_header_size(fdt: bytearray) -> int:
    return fdt_header_size_(fdt_version(fdt))


def fdt_check_header(fdt: bytearray) -> int:
    """``fdt_check_header``: magic, versions, and every block inside ``totalsize``."""
    fdt = _buf(fdt, "fdt_check_header")
    if fdt_magic(fdt) != _FDT_MAGIC:
        return -FDT_ERR_BADMAGIC
    version = fdt_version(fdt)
    last_comp = fdt_last_comp_version(fdt)
    if version < FDT_FIRST_SUPPORTED_VERSION or last_comp > FDT_LAST_SUPPORTED_VERSION:
        return -FDT_ERR_BADVERSION
    if version < last_comp:
        return -FDT_ERR_BADVERSION
    hdrsize = fdt_header_size_(version)
    total = fdt_totalsize(fdt)
    if total < hdrsize or total > INT32_MAX:
        return -FDT_ERR_TRUNCATED

    def off_ok(off: int) -> bool:
        return hdrsize <= off <= total

    def block_ok(base: int, size: int) -> bool:
        return off_ok(base) and base + size <= 0xFFFFFFFF and off_ok(base + size)

    if not off_ok(fdt_off_mem_rsvmap(fdt)):
        return -FDT_ERR_TRUNCATED
    if version < 17:
        if not off_ok(fdt_off_dt_struct(fdt)):
            return -FDT_ERR_TRUNCATED
    elif not block_ok(fdt_off_dt_struct(fdt), fdt_size_dt_struct(fdt)):
        return -FDT_ERR_TRUNCATED
    if not block_ok(fdt_off_dt_strings(fdt), fdt_size_dt_strings(fdt)):
        return -FDT_ERR_TRUNCATED
    return 0


def fdt_next_node(fdt: bytearray, offset: int, depth: int) -> list[int]:
    """``fdt_next_node``: [offset or error, depth] (a list, never raised on by the classes)."""
    m = _model("fdt_next_node", fdt)
    offset = _c_int(offset, "fdt_next_node", 2)
    depth = _c_int(depth, "fdt_next_node", 3)
    off, d = _guard(lambda: m.next_node(offset, depth))
    return [off, depth if d is None else d]


def fdt_first_subnode(fdt: bytearray, offset: int) -> int:
    m = _model("fdt_first_subnode", fdt)
    offset = _c_int(offset, "fdt_first_subnode", 2)
    return _guard(lambda: m.first_subnode(offset))


def fdt_next_subnode(fdt: bytearray, offset: int) -> int:
    m = _model("fdt_next_subnode", fdt)
    offset = _c_int(offset, "fdt_next_subnode", 2)
    return _guard(lambda: m.next_subnode(offset))


def fdt_num_mem_rsv(fdt: bytearray) -> int:
    m = _model("fdt_num_mem_rsv", fdt)
    return _guard(m.num_mem_rsv)


def fdt_get_mem_rsv(fdt: bytearray, n: int) -> list[int]:
    """``fdt_get_mem_rsv``: [error, address, size] (address and size are 0 on an error)."""
    m = _model("fdt_get_mem_rsv", fdt)
    n = _c_int(n, "fdt_get_mem_rsv", 2)

    def call() -> list[int]:
        err = m.ro_probe()
        if err < 0:
            return [err, 0, 0]
        pos = m._mem_rsv(n)
        if pos < 0:
            return [-FDT_ERR_BADOFFSET, 0, 0]
        addr, size = struct.unpack(">QQ", m.read(pos, 16))
        return [0, addr, size]

    return _guard(call)


def fdt_subnode_offset(fdt: bytearray, parentoffset: int, name: str) -> int:
    m = _model("fdt_subnode_offset", fdt)
    parentoffset = _c_int(parentoffset, "fdt_subnode_offset", 2)
    bname = _cstr(name, "fdt_subnode_offset", 3)
    return _guard(lambda: m.subnode_offset(parentoffset, bname))


def fdt_path_offset(fdt: bytearray, path: str) -> int:
    m = _model("fdt_path_offset", fdt)
    bpath = _cstr(path, "fdt_path_offset", 2)
    return _guard(lambda: m.path_offset(bpath))


def fdt_get_name(fdt: bytearray, nodeoffset: int) -> list[Any]:
    """``fdt_get_name``: [name, length], or [None, error]."""
    m = _model("fdt_get_name", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_get_name", 2)
    name, ln = _guard(lambda: m.get_name(nodeoffset))
    return [None if name is None else _decode(name), ln]


def fdt_first_property_offset(fdt: bytearray, nodeoffset: int) -> int:
    m = _model("fdt_first_property_offset", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_first_property_offset", 2)
    return _guard(lambda: m.first_property_offset(nodeoffset))


def fdt_next_property_offset(fdt: bytearray, offset: int) -> int:
    m = _model("fdt_next_property_offset", fdt)
    offset = _c_int(offset, "fdt_next_property_offset", 2)
    return _guard(lambda: m.next_property_offset(offset))


def fdt_get_property_by_offset(fdt: bytearray, offset: int) -> list[Any] | int:
    """[name, value, length], or the bare error (as SWIG 4.2 returns it)."""
    m = _model("fdt_get_property_by_offset", fdt)
    offset = _c_int(offset, "fdt_get_property_by_offset", 2)

    def call() -> list[Any] | int:
        pos, name, ln = m.getprop_by_offset(offset)
        if pos < 0 or name is None:
            return ln
        return [_decode(name), bytearray(m.read(pos, ln)), ln]

    return _guard(call)


def fdt_getprop(fdt: bytearray, nodeoffset: int, name: str) -> list[Any]:
    """``fdt_getprop``: [value bytes, length] or [None, error]."""
    m = _model("fdt_getprop", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_getprop", 2)
    bname = _cstr(name, "fdt_getprop", 3)

    def call() -> list[Any]:
        pos, ln = m.getprop(nodeoffset, bname)
        if pos < 0:
            return [None, ln]
        return [m.read(pos, ln), ln]

    return _guard(call)


def fdt_get_phandle(fdt: bytearray, nodeoffset: int) -> int:
    m = _model("fdt_get_phandle", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_get_phandle", 2)
    return _guard(lambda: m.get_phandle(nodeoffset))


def fdt_get_alias(fdt: bytearray, name: str) -> str | None:
    """The path an alias names, or None."""
    m = _model("fdt_get_alias", fdt)
    bname = _cstr(name, "fdt_get_alias", 2)

    def call() -> str | None:
        pos = m.get_alias_namelen(bname)
        return None if pos < 0 else _decode(m.cstr(pos))

    return _guard(call)


def fdt_get_path(fdt: bytearray, nodeoffset: int, size: int) -> list[Any]:
    """``fdt_get_path`` into a fresh ``size``-byte buffer: [error, path so far]."""
    buf = _buf(fdt, "fdt_get_path")
    nodeoffset = _c_int(nodeoffset, "fdt_get_path", 2)
    size = _c_int(size, "fdt_get_path", 3)
    if len(buf) < HEADER_SIZE:
        raise FdtException(-FDT_ERR_TRUNCATED)
    # the model writes the path into its own buffer: give it the blob followed by the output space
    scratch = bytearray(buf) + bytearray(max(size, 0))
    m = _ModelRo(scratch)
    err = _guard(lambda: m.get_path_into(nodeoffset, len(buf), size))
    out = bytes(scratch[len(buf) :])
    return [err, _decode(out.split(b"\0", 1)[0])]


def fdt_parent_offset(fdt: bytearray, nodeoffset: int) -> int:
    m = _model("fdt_parent_offset", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_parent_offset", 2)
    return _guard(lambda: m.parent_offset(nodeoffset))


def fdt_node_offset_by_phandle(fdt: bytearray, phandle: int) -> int:
    m = _model("fdt_node_offset_by_phandle", fdt)
    phandle = _u32(phandle, "fdt_node_offset_by_phandle", 2)
    return _guard(lambda: m.node_offset_by_phandle(phandle))


# -- fdt_rw.c -------------------------------------------------------------------


def _rw(fn: str, fdt: bytearray) -> _ModelFdt:
    m = _model(fn, fdt, rw=True)
    assert isinstance(m, _ModelFdt)
    return m


def fdt_open_into(fdt: bytearray, buf: bytearray, bufsize: int) -> int:
    """``fdt_open_into`` from one bytearray into another of ``bufsize`` bytes."""
    src = _model("fdt_open_into", fdt)
    dst_buf = _buf(buf, "fdt_open_into")
    bufsize = _c_int(bufsize, "fdt_open_into", 3)
    # a buffer too short for a header cannot receive a tree: libfdt says NOSPACE before writing
    if dst_buf is src.buf:
        dst = src  # in place, as libfdt allows
    else:
        dst = _ModelRo(dst_buf if len(dst_buf) >= HEADER_SIZE else bytearray(HEADER_SIZE))
    return _guard(lambda: _open_into(src, dst, bufsize))


def fdt_pack(fdt: bytearray) -> int:
    m = _rw("fdt_pack", fdt)
    return _guard(m.pack)


def fdt_set_name(fdt: bytearray, nodeoffset: int, name: str) -> int:
    m = _rw("fdt_set_name", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_set_name", 2)
    bname = _cstr(name, "fdt_set_name", 3)
    return _guard(lambda: m.set_name(nodeoffset, bname))


def fdt_setprop(fdt: bytearray, nodeoffset: int, name: str, val: bytes, len: int) -> int:
    """``fdt_setprop``: ``val`` must be ``bytes`` (not a bytearray), as SWIG's typemap insists."""
    m = _rw("fdt_setprop", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_setprop", 2)
    bname = _cstr(name, "fdt_setprop", 3)
    if not isinstance(val, bytes):
        raise TypeError("bytes expected in method 'fdt_setprop', argument 4 of type 'void const *'")
    n = _c_int(len, "fdt_setprop", 5)
    data = bytes(val[:n]) if n >= 0 else b""
    return _guard(lambda: m.setprop(nodeoffset, bname, data))


def fdt_setprop_u32(fdt: bytearray, nodeoffset: int, name: str, val: int) -> int:
    v = _u32(val, "fdt_setprop_u32", 4)
    return fdt_setprop(fdt, nodeoffset, name, struct.pack(">I", v), 4)


def fdt_setprop_u64(fdt: bytearray, nodeoffset: int, name: str, val: int) -> int:
    v = _u64(val, "fdt_setprop_u64", 4)
    return fdt_setprop(fdt, nodeoffset, name, struct.pack(">Q", v), 8)


def fdt_delprop(fdt: bytearray, nodeoffset: int, name: str) -> int:
    m = _rw("fdt_delprop", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_delprop", 2)
    bname = _cstr(name, "fdt_delprop", 3)
    return _guard(lambda: m.delprop(nodeoffset, bname))


def fdt_add_subnode(fdt: bytearray, parentoffset: int, name: str) -> int:
    m = _rw("fdt_add_subnode", fdt)
    parentoffset = _c_int(parentoffset, "fdt_add_subnode", 2)
    bname = _cstr(name, "fdt_add_subnode", 3)
    return _guard(lambda: m.add_subnode(parentoffset, bname))


def fdt_del_node(fdt: bytearray, nodeoffset: int) -> int:
    m = _rw("fdt_del_node", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_del_node", 2)
    return _guard(lambda: m.del_node(nodeoffset))


def fdt_create_empty_tree(buf: bytearray, bufsize: int) -> int:
    b = _buf(buf, "fdt_create_empty_tree")
    bufsize = _c_int(bufsize, "fdt_create_empty_tree", 2)
    return _guard(lambda: fdt_sw.create_empty_tree(b, bufsize))
