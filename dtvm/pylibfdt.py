"""A pure-Python stand-in for pylibfdt: ``import dtvm.pylibfdt as libfdt``.

pylibfdt is libfdt (C) wrapped by SWIG; installing it needs SWIG and a C
compiler, which is where many projects' CI breaks.  This module offers the
same API (``Fdt``, ``FdtRo``, ``FdtSw``, ``Property``, ``FdtException``, the
error numbers and ``QUIET_*`` tuples, and the ``fdt_*`` functions the classes
are built from) on dtvm's libfdt model (:mod:`dtvm.dt.libfdt`), which runs
libfdt's own algorithms on the raw blob.  So the same calls give the same
return values, the same exceptions and the same blob bytes; the tests hold it
to the real pylibfdt on generated operation sequences and run pylibfdt's own
test suite against it.

What differs, on purpose: where the C library would read outside its buffer
(a blob whose header lies about its sizes), this raises
``FdtException(-FDT_ERR_TRUNCATED)`` instead of reading stray memory; and the
module-level ``fdt_*`` functions cover what the classes need (plus a few
common ones), not all of SWIG's low-level wrappers.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

from dtvm.dt import fdt_sw
from dtvm.pylibfdt_c import (
    BADLAYOUT,
    BADMAGIC,
    BADNCELLS,
    BADOFFSET,
    BADOVERLAY,
    BADPATH,
    BADPHANDLE,
    BADSTATE,
    BADSTRUCTURE,
    BADVALUE,
    BADVERSION,
    EXISTS,
    FDT_BEGIN_NODE,
    FDT_CREATE_FLAG_NO_NAME_DEDUP,
    FDT_CREATE_FLAGS_ALL,
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
    FDT_ERR_MAX,
    FDT_ERR_NOPHANDLES,
    FDT_ERR_NOSPACE,
    FDT_ERR_NOTFOUND,
    FDT_ERR_TRUNCATED,
    FDT_FIRST_SUPPORTED_VERSION,
    FDT_LAST_COMPATIBLE_VERSION,
    FDT_LAST_SUPPORTED_VERSION,
    FDT_MAGIC,
    FDT_MAX_NCELLS,
    FDT_MAX_PHANDLE,
    FDT_NOP,
    FDT_PROP,
    INTERNAL,
    NOPHANDLES,
    NOSPACE,
    NOTFOUND,
    QUIET_ALL,
    QUIET_NOSPACE,
    QUIET_NOTFOUND,
    TRUNCATED,
    FdtException,
    _cstr,
    _guard,
    _u32,
    _u64,
    check_err,
    check_err_null,
    fdt_add_subnode,
    fdt_boot_cpuid_phys,
    fdt_check_header,
    fdt_create_empty_tree,
    fdt_del_node,
    fdt_delprop,
    fdt_first_property_offset,
    fdt_first_subnode,
    fdt_get_alias,
    fdt_get_mem_rsv,
    fdt_get_name,
    fdt_get_path,
    fdt_get_phandle,
    fdt_get_property_by_offset,
    fdt_getprop,
    fdt_header_size,
    fdt_header_size_,
    fdt_last_comp_version,
    fdt_magic,
    fdt_next_node,
    fdt_next_property_offset,
    fdt_next_subnode,
    fdt_node_offset_by_phandle,
    fdt_num_mem_rsv,
    fdt_off_dt_strings,
    fdt_off_dt_struct,
    fdt_off_mem_rsvmap,
    fdt_open_into,
    fdt_pack,
    fdt_parent_offset,
    fdt_path_offset,
    fdt_set_name,
    fdt_setprop,
    fdt_setprop_u32,
    fdt_setprop_u64,
    fdt_size_dt_strings,
    fdt_size_dt_struct,
    fdt_strerror,
    fdt_subnode_offset,
    fdt_totalsize,
    fdt_version,
    strerror,
)
from dtvm.pylibfdt_more import (
    fdt_add_mem_rsv,
    fdt_add_reservemap_entry,
    fdt_address_cells,
    fdt_appendprop,
    fdt_appendprop_cell,
    fdt_appendprop_u32,
    fdt_appendprop_u64,
    fdt_begin_node,
    fdt_create,
    fdt_create_with_flags,
    fdt_del_mem_rsv,
    fdt_end_node,
    fdt_finish,
    fdt_finish_reservemap,
    fdt_get_max_phandle,
    fdt_get_property,
    fdt_get_string,
    fdt_get_symbol,
    fdt_node_check_compatible,
    fdt_node_depth,
    fdt_node_offset_by_compatible,
    fdt_nop_node,
    fdt_nop_property,
    fdt_overlay_apply,
    fdt_property_cell,
    fdt_property_string,
    fdt_property_stub,
    fdt_property_u32,
    fdt_property_u64,
    fdt_resize,
    fdt_setprop_cell,
    fdt_setprop_inplace_cell,
    fdt_setprop_inplace_u32,
    fdt_setprop_inplace_u64,
    fdt_size_cells,
    fdt_string,
    fdt_stringlist_count,
    fdt_stringlist_get,
    fdt_stringlist_search,
)

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
    "Fdt",
    "FdtException",
    "FdtRo",
    "FdtSw",
    "NodeAdder",
    "Property",
    "check_err",
    "check_err_null",
    "fdt_add_mem_rsv",
    "fdt_add_reservemap_entry",
    "fdt_add_subnode",
    "fdt_address_cells",
    "fdt_appendprop",
    "fdt_appendprop_cell",
    "fdt_appendprop_u32",
    "fdt_appendprop_u64",
    "fdt_begin_node",
    "fdt_boot_cpuid_phys",
    "fdt_check_header",
    "fdt_create",
    "fdt_create_empty_tree",
    "fdt_create_with_flags",
    "fdt_del_mem_rsv",
    "fdt_del_node",
    "fdt_delprop",
    "fdt_end_node",
    "fdt_finish",
    "fdt_finish_reservemap",
    "fdt_first_property_offset",
    "fdt_first_subnode",
    "fdt_get_alias",
    "fdt_get_max_phandle",
    "fdt_get_mem_rsv",
    "fdt_get_name",
    "fdt_get_path",
    "fdt_get_phandle",
    "fdt_get_property",
    "fdt_get_property_by_offset",
    "fdt_get_string",
    "fdt_get_symbol",
    "fdt_getprop",
    "fdt_header_size",
    "fdt_header_size_",
    "fdt_last_comp_version",
    "fdt_magic",
    "fdt_next_node",
    "fdt_next_property_offset",
    "fdt_next_subnode",
    "fdt_node_check_compatible",
    "fdt_node_depth",
    "fdt_node_offset_by_compatible",
    "fdt_node_offset_by_phandle",
    "fdt_nop_node",
    "fdt_nop_property",
    "fdt_num_mem_rsv",
    "fdt_off_dt_strings",
    "fdt_off_dt_struct",
    "fdt_off_mem_rsvmap",
    "fdt_open_into",
    "fdt_overlay_apply",
    "fdt_pack",
    "fdt_parent_offset",
    "fdt_path_offset",
    "fdt_property_cell",
    "fdt_property_string",
    "fdt_property_stub",
    "fdt_property_u32",
    "fdt_property_u64",
    "fdt_resize",
    "fdt_set_name",
    "fdt_setprop",
    "fdt_setprop_cell",
    "fdt_setprop_inplace_cell",
    "fdt_setprop_inplace_u32",
    "fdt_setprop_inplace_u64",
    "fdt_setprop_u32",
    "fdt_setprop_u64",
    "fdt_size_cells",
    "fdt_size_dt_strings",
    "fdt_size_dt_struct",
    "fdt_strerror",
    "fdt_string",
    "fdt_stringlist_count",
    "fdt_stringlist_get",
    "fdt_stringlist_search",
    "fdt_subnode_offset",
    "fdt_totalsize",
    "fdt_version",
    "strerror",
]


# -- the classes ----------------------------------------------------------------


class FdtRo:
    """Read-only access to a blob (the base of :class:`Fdt` and :class:`FdtSw`).

    The blob is copied into ``_fdt`` (a bytearray) and its header checked, as
    pylibfdt does; every method runs libfdt's function of the same name on it.
    A method with a ``quiet`` argument returns the negative error instead of
    raising when the error's number is in ``quiet``.
    """

    _fdt: bytearray

    def __init__(self, data: bytes | bytearray) -> None:
        self._fdt = bytearray(data)
        check_err(fdt_check_header(self._fdt))

    def as_bytearray(self) -> bytearray:
        """A copy of the whole buffer (free space included)."""
        return bytearray(self._fdt)

    def next_node(self, nodeoffset: int, depth: int, quiet: Sequence[int] = ()) -> list[int]:
        """[offset of the next node in depth-first order, its depth] (errors come back in the list)."""
        return check_err(fdt_next_node(self._fdt, nodeoffset, depth), quiet)  # type: ignore[no-any-return]

    def first_subnode(self, nodeoffset: int, quiet: Sequence[int] = ()) -> int:
        return check_err(fdt_first_subnode(self._fdt, nodeoffset), quiet)  # type: ignore[no-any-return]

    def next_subnode(self, nodeoffset: int, quiet: Sequence[int] = ()) -> int:
        return check_err(fdt_next_subnode(self._fdt, nodeoffset), quiet)  # type: ignore[no-any-return]

    def magic(self) -> int:
        return fdt_magic(self._fdt)

    def totalsize(self) -> int:
        return fdt_totalsize(self._fdt)

    def off_dt_struct(self) -> int:
        return fdt_off_dt_struct(self._fdt)

    def off_dt_strings(self) -> int:
        return fdt_off_dt_strings(self._fdt)

    def off_mem_rsvmap(self) -> int:
        return fdt_off_mem_rsvmap(self._fdt)

    def version(self) -> int:
        return fdt_version(self._fdt)

    def last_comp_version(self) -> int:
        return fdt_last_comp_version(self._fdt)

    def boot_cpuid_phys(self) -> int:
        return fdt_boot_cpuid_phys(self._fdt)

    def size_dt_strings(self) -> int:
        return fdt_size_dt_strings(self._fdt)

    def size_dt_struct(self) -> int:
        return fdt_size_dt_struct(self._fdt)

    def num_mem_rsv(self, quiet: Sequence[int] = ()) -> int:
        return check_err(fdt_num_mem_rsv(self._fdt), quiet)  # type: ignore[no-any-return]

    def get_mem_rsv(self, index: int, quiet: Sequence[int] = ()) -> list[int]:
        """[address, size] of reservation entry ``index``."""
        val = fdt_get_mem_rsv(self._fdt, index)
        check_err(val[0], quiet)
        return val[1:]

    def subnode_offset(self, parentoffset: int, name: str, quiet: Sequence[int] = ()) -> int:
        return check_err(fdt_subnode_offset(self._fdt, parentoffset, name), quiet)  # type: ignore[no-any-return]

    def path_offset(self, path: str, quiet: Sequence[int] = ()) -> int:
        return check_err(fdt_path_offset(self._fdt, path), quiet)  # type: ignore[no-any-return]

    def get_name(self, nodeoffset: int) -> str:
        """The node's name (with its unit address); raises on a bad offset (no ``quiet`` here)."""
        return check_err_null(fdt_get_name(self._fdt, nodeoffset))[0]  # type: ignore[no-any-return]

    def first_property_offset(self, nodeoffset: int, quiet: Sequence[int] = ()) -> int:
        return check_err(fdt_first_property_offset(self._fdt, nodeoffset), quiet)  # type: ignore[no-any-return]

    def next_property_offset(self, prop_offset: int, quiet: Sequence[int] = ()) -> int:
        return check_err(fdt_next_property_offset(self._fdt, prop_offset), quiet)  # type: ignore[no-any-return]

    def get_property_by_offset(self, prop_offset: int, quiet: Sequence[int] = ()) -> Property | int:
        pdata = check_err_null(fdt_get_property_by_offset(self._fdt, prop_offset), quiet)
        if pdata[0] is None:
            return pdata[1]  # type: ignore[no-any-return]
        return Property(pdata[0], pdata[1])

    def getprop(self, nodeoffset: int, prop_name: str, quiet: Sequence[int] = ()) -> Property | int:
        """The property's value as a :class:`Property`, or the error if quietened."""
        pdata = check_err_null(fdt_getprop(self._fdt, nodeoffset, prop_name), quiet)
        if pdata[0] is None:
            return pdata[1]  # type: ignore[no-any-return]
        return Property(prop_name, bytearray(pdata[0]))

    def hasprop(self, nodeoffset: int, prop_name: str, quiet: Sequence[int] = ()) -> bool | int:
        """True if the node has the property, False if not; another error raises (or returns)."""
        pdata = check_err_null(fdt_getprop(self._fdt, nodeoffset, prop_name), quiet + (NOTFOUND,))  # type: ignore[operator]  # noqa: RUF005 (pylibfdt concatenates: a list or range quiet fails there too)
        if pdata[0] is None:
            if pdata[1] == -NOTFOUND:
                return False
            return pdata[1]  # type: ignore[no-any-return]
        return True

    def get_phandle(self, nodeoffset: int) -> int:
        """The node's phandle, 0 if it has none (or on any error)."""
        return fdt_get_phandle(self._fdt, nodeoffset)

    def get_alias(self, name: str) -> str | None:
        return fdt_get_alias(self._fdt, name)

    def get_path(self, nodeoffset: int, size_hint: int = 1024, quiet: Sequence[int] = ()) -> str | int:
        """The node's full path (the buffer is grown until it fits)."""
        while True:
            ret, path = fdt_get_path(self._fdt, nodeoffset, size_hint)
            if ret == -NOSPACE:
                size_hint *= 2
                continue
            err = check_err(ret, quiet)
            if err:
                return err  # type: ignore[no-any-return]
            return path  # type: ignore[no-any-return]

    def parent_offset(self, nodeoffset: int, quiet: Sequence[int] = ()) -> int:
        return check_err(fdt_parent_offset(self._fdt, nodeoffset), quiet)  # type: ignore[no-any-return]

    def node_offset_by_phandle(self, phandle: int, quiet: Sequence[int] = ()) -> int:
        return check_err(fdt_node_offset_by_phandle(self._fdt, phandle), quiet)  # type: ignore[no-any-return]


class Fdt(FdtRo):
    """Read-write access to a blob: every edit is libfdt's, in place in ``_fdt``.

    The buffer does not grow by itself: an edit that needs room fails with
    NOSPACE until :meth:`resize` gives the tree more space.
    """

    def __init__(self, data: bytes | bytearray) -> None:
        FdtRo.__init__(self, data)

    @staticmethod
    def create_empty_tree(size: int, quiet: Sequence[int] = ()) -> Fdt | int:
        """A tree with only a root node in ``size`` bytes."""
        data = bytearray(size)
        err = check_err(fdt_create_empty_tree(data, size), quiet)
        if err:
            return err  # type: ignore[no-any-return]
        return Fdt(data)

    def resize(self, size: int, quiet: Sequence[int] = ()) -> int | None:
        """Move the tree into a new buffer of ``size`` bytes (``fdt_open_into``)."""
        fdt = bytearray(size)
        err = check_err(fdt_open_into(self._fdt, fdt, size), quiet)
        if err:
            return err  # type: ignore[no-any-return]
        self._fdt = fdt
        return None

    def pack(self, quiet: Sequence[int] = ()) -> int:
        """Close up the free space; the buffer shrinks to ``totalsize``."""
        err = check_err(fdt_pack(self._fdt), quiet)
        if err:
            return err  # type: ignore[no-any-return]
        del self._fdt[self.totalsize() :]
        return err  # type: ignore[no-any-return]

    def set_name(self, nodeoffset: int, name: str, quiet: Sequence[int] = ()) -> int:
        if chr(0) in name:
            raise ValueError("Property contains embedded nul characters")
        return check_err(fdt_set_name(self._fdt, nodeoffset, name), quiet)  # type: ignore[no-any-return]

    def setprop(self, nodeoffset: int, prop_name: str, val: bytes, quiet: Sequence[int] = ()) -> int:
        return check_err(fdt_setprop(self._fdt, nodeoffset, prop_name, val, len(val)), quiet)  # type: ignore[no-any-return]

    def setprop_bool(self, nodeoffset: int, prop_name: str, val: bool, quiet: Sequence[int] = ()) -> int | None:
        """Add the empty property for True, delete it for False (nothing if already so)."""
        exists = self.hasprop(nodeoffset, prop_name, quiet)
        if val != exists:
            if val:
                return self.setprop(nodeoffset, prop_name, b"", quiet=quiet)
            return self.delprop(nodeoffset, prop_name, quiet=quiet)
        return None

    def setprop_u32(self, nodeoffset: int, prop_name: str, val: int, quiet: Sequence[int] = ()) -> int:
        return check_err(fdt_setprop_u32(self._fdt, nodeoffset, prop_name, val), quiet)  # type: ignore[no-any-return]

    def setprop_u64(self, nodeoffset: int, prop_name: str, val: int, quiet: Sequence[int] = ()) -> int:
        return check_err(fdt_setprop_u64(self._fdt, nodeoffset, prop_name, val), quiet)  # type: ignore[no-any-return]

    def setprop_str(self, nodeoffset: int, prop_name: str, val: str, quiet: Sequence[int] = ()) -> int:
        """Set a NUL-terminated UTF-8 string."""
        data = val.encode("utf-8") + b"\0"
        return check_err(fdt_setprop(self._fdt, nodeoffset, prop_name, data, len(data)), quiet)  # type: ignore[no-any-return]

    def delprop(self, nodeoffset: int, prop_name: str, quiet: Sequence[int] = ()) -> int:
        return check_err(fdt_delprop(self._fdt, nodeoffset, prop_name), quiet)  # type: ignore[no-any-return]

    def add_subnode(self, parentoffset: int, name: str, quiet: Sequence[int] = ()) -> int:
        """Add a child after the parent's properties (before its other children); its offset."""
        return check_err(fdt_add_subnode(self._fdt, parentoffset, name), quiet)  # type: ignore[no-any-return]

    def del_node(self, nodeoffset: int, quiet: Sequence[int] = ()) -> int:
        return check_err(fdt_del_node(self._fdt, nodeoffset), quiet)  # type: ignore[no-any-return]


class Property(bytearray):
    """A property's value (a copy: it stays valid whatever happens to the tree) and its ``name``."""

    def __init__(self, name: str, value: Iterable[int] | bytes) -> None:
        bytearray.__init__(self, value)
        self.name = name

    def as_cell(self, fmt: str) -> Any:
        return struct.unpack(">" + fmt, self)[0]

    def as_uint32(self) -> int:
        return self.as_cell("L")  # type: ignore[no-any-return]

    def as_int32(self) -> int:
        return self.as_cell("l")  # type: ignore[no-any-return]

    def as_uint64(self) -> int:
        return self.as_cell("Q")  # type: ignore[no-any-return]

    def as_int64(self) -> int:
        return self.as_cell("q")  # type: ignore[no-any-return]

    def as_list(self, fmt: str) -> list[Any]:
        return [x[0] for x in struct.iter_unpack(">" + fmt, self)]

    def as_uint32_list(self) -> list[int]:
        return self.as_list("L")

    def as_int32_list(self) -> list[int]:
        return self.as_list("l")

    def as_uint64_list(self) -> list[int]:
        return self.as_list("Q")

    def as_int64_list(self) -> list[int]:
        return self.as_list("q")

    def as_str(self) -> str:
        """The value as one NUL-terminated UTF-8 string (ValueError otherwise)."""
        if self[-1] != 0:
            raise ValueError("Property lacks nul termination")
        if 0 in self[:-1]:
            raise ValueError("Property contains embedded nul characters")
        return self[:-1].decode("utf-8")

    def as_stringlist(self) -> list[str]:
        """The value as a list of NUL-terminated UTF-8 strings."""
        if self[-1] != 0:
            raise ValueError("Property lacks nul termination")
        return [part.decode("utf-8") for part in self[:-1].split(b"\x00")]


class FdtSw(FdtRo):
    """Build a tree front to back (libfdt's sequential write), growing the buffer as needed.

    Reserve-map entries first, then ``finish_reservemap()``, then nodes
    (``begin_node``/``end_node`` or ``with sw.add_node(name):``) and their
    properties; :meth:`as_fdt` finishes a copy into an :class:`Fdt`.
    """

    INC_SIZE = 1024  # Expand size by this much when out of space

    def __init__(self, size_hint: int | None = None) -> None:
        if not size_hint:
            size_hint = self.INC_SIZE
        fdtsw = bytearray(size_hint)
        check_err(_guard(lambda: fdt_sw.create(fdtsw, size_hint)))
        self._fdt = fdtsw

    def as_fdt(self) -> Fdt:
        """A finished copy of the tree so far (this object can go on adding)."""
        fdtsw = bytearray(self._fdt)
        check_err(_guard(lambda: fdt_sw.finish(fdtsw)))
        return Fdt(fdtsw)

    def check_space(self, val: int) -> bool:
        """Grow the buffer and say so (True) if ``val`` is NOSPACE; raise on any other error."""
        if check_err(val, QUIET_NOSPACE) < 0:
            self.resize(len(self._fdt) + self.INC_SIZE)
            return True
        return False

    def resize(self, size: int) -> None:
        fdt = bytearray(size)
        check_err(_guard(lambda: fdt_sw.resize(self._fdt, fdt, size)))
        self._fdt = fdt

    def _retry(self, op: Callable[[], int]) -> None:
        while self.check_space(_guard(op)):
            pass

    def add_reservemap_entry(self, addr: int, size: int) -> None:
        a = _u64(addr, "fdt_add_reservemap_entry", 2)
        s = _u64(size, "fdt_add_reservemap_entry", 3)
        self._retry(lambda: fdt_sw.add_reservemap_entry(self._fdt, a, s))

    def finish_reservemap(self) -> None:
        self._retry(lambda: fdt_sw.finish_reservemap(self._fdt))

    def begin_node(self, name: str) -> None:
        bname = _cstr(name, "fdt_begin_node", 2)
        self._retry(lambda: fdt_sw.begin_node(self._fdt, bname))

    def property_string(self, name: str, string: str) -> None:
        bname = _cstr(name, "fdt_property_string", 2)
        val = _cstr(string, "fdt_property_string", 3) + b"\0"
        self._retry(lambda: fdt_sw.property(self._fdt, bname, val))

    def property_u32(self, name: str, val: int) -> None:
        bname = _cstr(name, "fdt_property_u32", 2)
        data = struct.pack(">I", _u32(val, "fdt_property_u32", 3))
        self._retry(lambda: fdt_sw.property(self._fdt, bname, data))

    def property_u64(self, name: str, val: int) -> None:
        bname = _cstr(name, "fdt_property_u64", 2)
        data = struct.pack(">Q", _u64(val, "fdt_property_u64", 3))
        self._retry(lambda: fdt_sw.property(self._fdt, bname, data))

    def property_cell(self, name: str, val: int) -> None:
        bname = _cstr(name, "fdt_property_cell", 2)
        data = struct.pack(">I", _u32(val, "fdt_property_cell", 3))
        self._retry(lambda: fdt_sw.property(self._fdt, bname, data))

    def property(self, name: str, val: bytes) -> None:
        bname = _cstr(name, "fdt_property_stub", 2)
        if not isinstance(val, bytes):
            raise TypeError("bytes expected in method 'fdt_property_stub', argument 3 of type 'void const *'")
        data = bytes(val)
        self._retry(lambda: fdt_sw.property(self._fdt, bname, data))

    def end_node(self) -> None:
        self._retry(lambda: fdt_sw.end_node(self._fdt))

    def add_node(self, name: str) -> NodeAdder:
        """A context manager: ``begin_node(name)`` on entry, ``end_node()`` on exit."""
        return NodeAdder(self, name)


class NodeAdder:
    """``with sw.add_node(name):`` begins the node and ends it on leaving the block."""

    def __init__(self, fdtsw: FdtSw, name: str) -> None:
        self._fdt = fdtsw
        self._name = name

    def __enter__(self) -> None:
        self._fdt.begin_node(self._name)

    def __exit__(
        self,
        type: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._fdt.end_node()

