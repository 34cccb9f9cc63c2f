"""More of pylibfdt's module-level functions (SWIG level), for :mod:`dtvm.pylibfdt`.

The ones pylibfdt's classes do not use but programs call directly: string
lists and compatibles, cell counts, in-place edits, NOPs, reservation map
edits, appending, overlays, and sequential write on a caller's bytearray.
Each runs libfdt's function of the same name on the dtvm model; see
:mod:`dtvm.pylibfdt_c` for the conventions.
"""

from __future__ import annotations

import struct
from typing import Any

from dtvm.dt import fdt_sw
from dtvm.dt.libfdt import (
    FDT_ERR_BADNCELLS,
    FDT_ERR_BADVALUE,
    FDT_ERR_NOTFOUND,
    FDT_ERR_TRUNCATED,
    HEADER_SIZE,
)
from dtvm.dt.libfdt import (
    Fdt as _ModelFdt,
)
from dtvm.dt.libfdt import (
    FdtRo as _ModelRo,
)
from dtvm.pylibfdt_c import (
    FDT_MAX_NCELLS,
    FdtException,
    _buf,
    _c_int,
    _cstr,
    _decode,
    _guard,
    _model,
    _rw,
    _u32,
    _u64,
    fdt_setprop,
)

__all__ = [
    "fdt_add_mem_rsv",
    "fdt_add_reservemap_entry",
    "fdt_address_cells",
    "fdt_appendprop",
    "fdt_appendprop_cell",
    "fdt_appendprop_u32",
    "fdt_appendprop_u64",
    "fdt_begin_node",
    "fdt_create",
    "fdt_create_with_flags",
    "fdt_del_mem_rsv",
    "fdt_end_node",
    "fdt_finish",
    "fdt_finish_reservemap",
    "fdt_get_max_phandle",
    "fdt_get_property",
    "fdt_get_string",
    "fdt_get_symbol",
    "fdt_node_check_compatible",
    "fdt_node_depth",
    "fdt_node_offset_by_compatible",
    "fdt_nop_node",
    "fdt_nop_property",
    "fdt_overlay_apply",
    "fdt_property_cell",
    "fdt_property_string",
    "fdt_property_stub",
    "fdt_property_u32",
    "fdt_property_u64",
    "fdt_resize",
    "fdt_setprop_cell",
    "fdt_setprop_inplace_cell",
    "fdt_setprop_inplace_u32",
    "fdt_setprop_inplace_u64",
    "fdt_size_cells",
    "fdt_string",
    "fdt_stringlist_count",
    "fdt_stringlist_get",
    "fdt_stringlist_search",
]

# -- the rest of pylibfdt's module-level functions that Python can call ------------------------
# (those taking C pointers, such as fdt_next_tag or fdt_find_max_phandle, cannot be called from
# Python with the real module either, and are left out)


def fdt_get_string(fdt: bytearray, stroffset: int) -> list[Any]:
    """``fdt_get_string``: [string, length] or [None, error]."""
    m = _model("fdt_get_string", fdt)
    stroffset = _c_int(stroffset, "fdt_get_string", 2)

    def call() -> list[Any]:
        pos, ln = m.get_string(stroffset)
        return [None, ln] if pos < 0 else [_decode(m.read(pos, ln)), ln]

    return _guard(call)


def fdt_string(fdt: bytearray, stroffset: int) -> str | None:
    return fdt_get_string(fdt, stroffset)[0]  # type: ignore[no-any-return]


def fdt_get_max_phandle(fdt: bytearray) -> int:
    """The largest phandle in the tree (0 if none; 0xffffffff on an error), as libfdt.h's inline."""
    m = _model("fdt_get_max_phandle", fdt)
    err, phandle = _guard(m.find_max_phandle)
    return 0xFFFFFFFF if err < 0 else phandle


def fdt_node_depth(fdt: bytearray, nodeoffset: int) -> int:
    m = _model("fdt_node_depth", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_node_depth", 2)
    return _guard(lambda: m.node_depth(nodeoffset))


def fdt_get_property(fdt: bytearray, nodeoffset: int, name: str) -> list[Any] | int:
    """``fdt_get_property``: [name, value, length], or the bare error."""
    m = _model("fdt_get_property", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_get_property", 2)
    bname = _cstr(name, "fdt_get_property", 3)

    def call() -> list[Any] | int:
        prop, ln = m.get_property_namelen(nodeoffset, bname)
        if prop < 0:
            return ln
        return [_decode(bname), bytearray(m.read(prop + 12, ln)), ln]

    return _guard(call)


def fdt_get_symbol(fdt: bytearray, name: str) -> str | None:
    """The path a ``__symbols__`` entry names, or None (libfdt 1.7's ``fdt_get_symbol``)."""
    m = _model("fdt_get_symbol", fdt)
    bname = _cstr(name, "fdt_get_symbol", 2)

    def call() -> str | None:
        symoff = m.path_offset(b"/__symbols__")
        if symoff < 0:
            return None
        pos, _ = m.getprop(symoff, bname)
        return None if pos < 0 else _decode(m.cstr(pos))

    return _guard(call)


def _getprop_bytes(m: _ModelRo, nodeoffset: int, name: bytes) -> tuple[bytes | None, int]:
    pos, ln = m.getprop(nodeoffset, name)
    return (None, ln) if pos < 0 else (m.read(pos, ln), ln)


def _strings(value: bytes) -> list[bytes] | None:
    """The NUL-terminated strings of a list, or None when the last is not terminated."""
    if value and value[-1] != 0:
        return None
    return value[:-1].split(b"\0") if value else []


def fdt_stringlist_count(fdt: bytearray, nodeoffset: int, property: str) -> int:
    m = _model("fdt_stringlist_count", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_stringlist_count", 2)
    bname = _cstr(property, "fdt_stringlist_count", 3)
    value, ln = _guard(lambda: _getprop_bytes(m, nodeoffset, bname))
    if value is None:
        return ln
    parts = _strings(value)
    return -FDT_ERR_BADVALUE if parts is None else len(parts)


def fdt_stringlist_search(fdt: bytearray, nodeoffset: int, property: str, string: str) -> int:
    """The index of ``string`` in the list (found before a bad ending counts, as in C)."""
    m = _model("fdt_stringlist_search", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_stringlist_search", 2)
    bname = _cstr(property, "fdt_stringlist_search", 3)
    want = _cstr(string, "fdt_stringlist_search", 4)
    value, ln = _guard(lambda: _getprop_bytes(m, nodeoffset, bname))
    if value is None:
        return ln
    for idx, (s, terminated) in enumerate(_walk_strings(value)):
        if not terminated:
            return -FDT_ERR_BADVALUE
        if s == want:
            return idx
    return -FDT_ERR_NOTFOUND


def _walk_strings(value: bytes) -> list[tuple[bytes, bool]]:
    out = []
    i = 0
    while i < len(value):
        end = value.find(b"\0", i)
        if end < 0:
            out.append((value[i:], False))
            break
        out.append((value[i:end], True))
        i = end + 1
    return out


def fdt_stringlist_get(fdt: bytearray, nodeoffset: int, property: str, index: int) -> list[Any]:
    """``fdt_stringlist_get``: [string, length] or [None, error]."""
    m = _model("fdt_stringlist_get", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_stringlist_get", 2)
    bname = _cstr(property, "fdt_stringlist_get", 3)
    idx = _c_int(index, "fdt_stringlist_get", 4)
    value, ln = _guard(lambda: _getprop_bytes(m, nodeoffset, bname))
    if value is None:
        return [None, ln]
    for s, terminated in _walk_strings(value):
        if not terminated:
            return [None, -FDT_ERR_BADVALUE]
        if idx == 0:
            return [_decode(s), len(s)]
        idx -= 1
    return [None, -FDT_ERR_NOTFOUND]


def _stringlist_contains(m: _ModelRo, pos: int, listlen: int, s: bytes) -> bool:
    """``fdt_stringlist_contains`` on the list at ``pos`` in the buffer.

    Its ``memcmp`` compares ``len + 1`` bytes even when fewer of the list are
    left, so an empty ``compatible`` matches the empty string by reading the
    byte after it (the next tag's first byte, 0): the model reads the buffer too.
    """
    ln = len(s)
    needle = s + b"\0"
    buf = m.buf
    while listlen >= ln:
        if bytes(buf[pos : pos + ln + 1]) == needle:
            return True
        end = buf.find(b"\0", pos, pos + listlen)
        if end < 0:
            return False
        listlen -= end - pos + 1
        pos = end + 1
    return False


def _check_compatible(m: _ModelRo, nodeoffset: int, want: bytes) -> int:
    pos, ln = m.getprop(nodeoffset, b"compatible")
    if pos < 0:
        return ln
    return 0 if _stringlist_contains(m, pos, ln, want) else 1


def fdt_node_check_compatible(fdt: bytearray, nodeoffset: int, compatible: str) -> int:
    """0 if the node is compatible, 1 if not, or an error."""
    m = _model("fdt_node_check_compatible", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_node_check_compatible", 2)
    want = _cstr(compatible, "fdt_node_check_compatible", 3)
    return _guard(lambda: _check_compatible(m, nodeoffset, want))


def fdt_node_offset_by_compatible(fdt: bytearray, startoffset: int, compatible: str) -> int:
    """The first node after ``startoffset`` (-1: from the root) compatible with the string."""
    m = _model("fdt_node_offset_by_compatible", fdt)
    startoffset = _c_int(startoffset, "fdt_node_offset_by_compatible", 2)
    want = _cstr(compatible, "fdt_node_offset_by_compatible", 3)

    def call() -> int:
        err = m.ro_probe()
        if err < 0:
            return err
        offset, _ = m.next_node(startoffset, None)
        while offset >= 0:
            check = _check_compatible(m, offset, want)
            if check < 0 and check != -FDT_ERR_NOTFOUND:
                return check
            if check == 0:
                return offset
            offset, _ = m.next_node(offset, None)
        return offset

    return _guard(call)


def _cells(m: _ModelRo, nodeoffset: int, name: bytes) -> int:
    value, ln = _getprop_bytes(m, nodeoffset, name)
    if value is None:
        return ln
    if ln != 4:
        return -FDT_ERR_BADNCELLS
    val = int.from_bytes(value, "big")
    return -FDT_ERR_BADNCELLS if val > FDT_MAX_NCELLS else val


def fdt_address_cells(fdt: bytearray, nodeoffset: int) -> int:
    """``#address-cells`` of the node (2 when absent; 0 or more than 4 is BADNCELLS)."""
    m = _model("fdt_address_cells", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_address_cells", 2)
    val = _guard(lambda: _cells(m, nodeoffset, b"#address-cells"))
    if val == 0:
        return -FDT_ERR_BADNCELLS
    return 2 if val == -FDT_ERR_NOTFOUND else val


def fdt_size_cells(fdt: bytearray, nodeoffset: int) -> int:
    """``#size-cells`` of the node (1 when absent)."""
    m = _model("fdt_size_cells", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_size_cells", 2)
    val = _guard(lambda: _cells(m, nodeoffset, b"#size-cells"))
    return 1 if val == -FDT_ERR_NOTFOUND else val


def _setprop_inplace(fn: str, fdt: bytearray, nodeoffset: int, name: str, val: bytes) -> int:
    m = _rw(fn, fdt)
    nodeoffset = _c_int(nodeoffset, fn, 2)
    bname = _cstr(name, fn, 3)
    return _guard(lambda: m.setprop_inplace(nodeoffset, bname, val))


def fdt_setprop_inplace_u32(fdt: bytearray, nodeoffset: int, name: str, val: int) -> int:
    v = struct.pack(">I", _u32(val, "fdt_setprop_inplace_u32", 4))
    return _setprop_inplace("fdt_setprop_inplace_u32", fdt, nodeoffset, name, v)


def fdt_setprop_inplace_u64(fdt: bytearray, nodeoffset: int, name: str, val: int) -> int:
    v = struct.pack(">Q", _u64(val, "fdt_setprop_inplace_u64", 4))
    return _setprop_inplace("fdt_setprop_inplace_u64", fdt, nodeoffset, name, v)


def fdt_setprop_inplace_cell(fdt: bytearray, nodeoffset: int, name: str, val: int) -> int:
    v = struct.pack(">I", _u32(val, "fdt_setprop_inplace_cell", 4))
    return _setprop_inplace("fdt_setprop_inplace_cell", fdt, nodeoffset, name, v)


def fdt_nop_property(fdt: bytearray, nodeoffset: int, name: str) -> int:
    m = _rw("fdt_nop_property", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_nop_property", 2)
    bname = _cstr(name, "fdt_nop_property", 3)
    return _guard(lambda: m.nop_property(nodeoffset, bname))


def fdt_nop_node(fdt: bytearray, nodeoffset: int) -> int:
    m = _rw("fdt_nop_node", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_nop_node", 2)
    return _guard(lambda: m.nop_node(nodeoffset))


def fdt_add_mem_rsv(fdt: bytearray, address: int, size: int) -> int:
    m = _rw("fdt_add_mem_rsv", fdt)
    a = _u64(address, "fdt_add_mem_rsv", 2)
    s = _u64(size, "fdt_add_mem_rsv", 3)
    return _guard(lambda: m.add_mem_rsv(a, s))


def fdt_del_mem_rsv(fdt: bytearray, n: int) -> int:
    m = _rw("fdt_del_mem_rsv", fdt)
    n = _c_int(n, "fdt_del_mem_rsv", 2)
    return _guard(lambda: m.del_mem_rsv(n))


def fdt_setprop_cell(fdt: bytearray, nodeoffset: int, name: str, val: int) -> int:
    v = _u32(val, "fdt_setprop_cell", 4)
    return fdt_setprop(fdt, nodeoffset, name, struct.pack(">I", v), 4)


def fdt_appendprop(fdt: bytearray, nodeoffset: int, name: str, val: bytes, len: int) -> int:
    """``fdt_appendprop``: ``val`` must be ``bytes``, as for fdt_setprop."""
    m = _rw("fdt_appendprop", fdt)
    nodeoffset = _c_int(nodeoffset, "fdt_appendprop", 2)
    bname = _cstr(name, "fdt_appendprop", 3)
    if not isinstance(val, bytes):
        raise TypeError("bytes expected in method 'fdt_appendprop', argument 4 of type 'void const *'")
    n = _c_int(len, "fdt_appendprop", 5)
    data = bytes(val[:n]) if n >= 0 else b""
    return _guard(lambda: m.appendprop(nodeoffset, bname, data))


def fdt_appendprop_u32(fdt: bytearray, nodeoffset: int, name: str, val: int) -> int:
    v = _u32(val, "fdt_appendprop_u32", 4)
    return fdt_appendprop(fdt, nodeoffset, name, struct.pack(">I", v), 4)


def fdt_appendprop_u64(fdt: bytearray, nodeoffset: int, name: str, val: int) -> int:
    v = _u64(val, "fdt_appendprop_u64", 4)
    return fdt_appendprop(fdt, nodeoffset, name, struct.pack(">Q", v), 8)


def fdt_appendprop_cell(fdt: bytearray, nodeoffset: int, name: str, val: int) -> int:
    v = _u32(val, "fdt_appendprop_cell", 4)
    return fdt_appendprop(fdt, nodeoffset, name, struct.pack(">I", v), 4)


def fdt_overlay_apply(fdt: bytearray, fdto: bytearray) -> int:
    """``fdt_overlay_apply``: both buffers are changed in place, as libfdt changes them."""
    from dtvm.dt.apply import overlay_apply

    base = _rw("fdt_overlay_apply", fdt)
    ov = _buf(fdto, "fdt_overlay_apply")
    if len(ov) < HEADER_SIZE:
        raise FdtException(-FDT_ERR_TRUNCATED)
    return _guard(lambda: overlay_apply(base, _ModelFdt(ov))[0])


# sequential write on a bytearray (FdtSw does the same with growing buffers)


def fdt_create_with_flags(buf: bytearray, bufsize: int, flags: int) -> int:
    b = _buf(buf, "fdt_create_with_flags")
    size = _c_int(bufsize, "fdt_create_with_flags", 2)
    fl = _u32(flags, "fdt_create_with_flags", 3)
    return _guard(lambda: fdt_sw.create(b, size, fl))


def fdt_create(buf: bytearray, bufsize: int) -> int:
    return fdt_create_with_flags(buf, bufsize, 0)


def fdt_resize(fdt: bytearray, buf: bytearray, bufsize: int) -> int:
    old = _buf(fdt, "fdt_resize")
    new = _buf(buf, "fdt_resize")
    size = _c_int(bufsize, "fdt_resize", 3)
    return _guard(lambda: fdt_sw.resize(old, new, size))


def fdt_add_reservemap_entry(fdt: bytearray, addr: int, size: int) -> int:
    b = _buf(fdt, "fdt_add_reservemap_entry")
    a = _u64(addr, "fdt_add_reservemap_entry", 2)
    s = _u64(size, "fdt_add_reservemap_entry", 3)
    return _guard(lambda: fdt_sw.add_reservemap_entry(b, a, s))


def fdt_finish_reservemap(fdt: bytearray) -> int:
    b = _buf(fdt, "fdt_finish_reservemap")
    return _guard(lambda: fdt_sw.finish_reservemap(b))


def fdt_begin_node(fdt: bytearray, name: str) -> int:
    b = _buf(fdt, "fdt_begin_node")
    bname = _cstr(name, "fdt_begin_node", 2)
    return _guard(lambda: fdt_sw.begin_node(b, bname))


def fdt_end_node(fdt: bytearray) -> int:
    b = _buf(fdt, "fdt_end_node")
    return _guard(lambda: fdt_sw.end_node(b))


def _sw_property(fn: str, fdt: bytearray, name: str, data: bytes) -> int:
    b = _buf(fdt, fn)
    bname = _cstr(name, fn, 2)
    return _guard(lambda: fdt_sw.property(b, bname, data))


def fdt_property_string(fdt: bytearray, name: str, val: str) -> int:
    return _sw_property("fdt_property_string", fdt, name, _cstr(val, "fdt_property_string", 3) + b"\0")


def fdt_property_u32(fdt: bytearray, name: str, val: int) -> int:
    return _sw_property("fdt_property_u32", fdt, name, struct.pack(">I", _u32(val, "fdt_property_u32", 3)))


def fdt_property_u64(fdt: bytearray, name: str, val: int) -> int:
    return _sw_property("fdt_property_u64", fdt, name, struct.pack(">Q", _u64(val, "fdt_property_u64", 3)))


def fdt_property_cell(fdt: bytearray, name: str, val: int) -> int:
    return _sw_property("fdt_property_cell", fdt, name, struct.pack(">I", _u32(val, "fdt_property_cell", 3)))


def fdt_property_stub(fdt: bytearray, name: str, val: bytes, len: int) -> int:
    if not isinstance(val, bytes):
        raise TypeError("bytes expected in method 'fdt_property_stub', argument 3 of type 'void const *'")
    n = _c_int(len, "fdt_property_stub", 4)
    return _sw_property("fdt_property_stub", fdt, name, bytes(val[:n]) if n >= 0 else b"")


def fdt_finish(fdt: bytearray) -> int:
    b = _buf(fdt, "fdt_finish")
    return _guard(lambda: fdt_sw.finish(b))
