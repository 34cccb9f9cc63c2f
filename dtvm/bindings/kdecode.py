"""A tree as dt-validate sees it: nested dicts of typed values, decoded by dtschema 2022.12's rules.

dt-validate does not validate bytes: ``dtschema/dtb.py`` first turns each property into a value
whose shape depends on the types the schemas declare for its name (``generated-types`` in the
processed schemas): a list of strings, a matrix of sized integers, ``True`` for an empty property,
the raw bytes when nothing fits. Then it splits ``reg``/``ranges`` by the parent's
``#address-cells``/``#size-cells``, ``interrupts`` by the interrupt parent's ``#interrupt-cells``,
``*-gpios`` and the phandle-arrays by the provider's ``#*-cells``. Every finding it prints is about
those values (``[[0, 4096, 0, 256]] is too short``), so this module repeats those rules one for one,
including where they fail: a blob on which dtschema's decoder raises is a :class:`DecodeCrash`,
which the caller reports as dt-validate crashing, not as a finding.

The input is a :class:`dtvm.dt.tree.DeviceTree` (from a DTB, or compiled from DTS), so that every
dict can be mapped back to its node (and so to its DTS line).
"""

from __future__ import annotations

import re
import struct
from typing import Any

__all__ = ["DecodeCrash", "Decoded", "SizedInt", "TypeTable", "scan_tree"]


class DecodeCrash(Exception):
    """dtschema's decoder raises on this blob (dt-validate stops with a traceback)."""


class SizedInt(int):
    """dtschema's ``sized_int``: an integer that remembers its cell size (for ``typeSize``)."""

    size: int
    phandle: bool

    def __new__(cls, value: int, size: int = 32, phandle: bool = False) -> SizedInt:
        obj = int.__new__(cls, value)
        obj.size = size
        obj.phandle = phandle
        return obj


_FORMATS = {
    "int8": struct.Struct("b"),
    "uint8": struct.Struct("B"),
    "int16": struct.Struct(">h"),
    "uint16": struct.Struct(">H"),
    "int32": struct.Struct(">l"),
    "uint32": struct.Struct(">L"),
    "int64": struct.Struct(">q"),
    "uint64": struct.Struct(">Q"),
    "phandle": struct.Struct(">L"),
}
_U32 = _FORMATS["uint32"]


class TypeTable:
    """``property_get_type`` and ``property_get_type_dim`` over the processed schemas' type tables."""

    def __init__(self, props: dict[str, list[dict[str, Any]]], pat_props: dict[str, list[dict[str, Any]]]) -> None:
        self.props = props
        self.pat = [(re.compile(k), v[0]) for k, v in pat_props.items()]
        self._types: dict[str, frozenset[str]] = {}
        self._dims: dict[str, Any] = {}

    def get_type(self, name: str) -> frozenset[str]:
        hit = self._types.get(name)
        if hit is not None:
            return hit
        types: set[str] = set()
        for v in self.props.get(name, ()):
            if v.get("type"):
                types.add(v["type"])
        if not types:
            for rx, v in self.pat:
                if v.get("type") and v["type"] not in types and rx.search(name):
                    types.add(v["type"])
        if len(types) > 1 and "node" in types:
            types.discard("node")
        res = self._types[name] = frozenset(types)
        return res

    def get_dim(self, name: str) -> Any:
        if name in self._dims:
            return self._dims[name]
        dim = None
        found = False
        for v in self.props.get(name, ()):
            if "dim" in v:
                dim, found = v["dim"], True
                break
        if not found:
            for rx, v in self.pat:
                if v.get("type") and "dim" in v and rx.search(name):
                    dim = v["dim"]
                    break
        self._dims[name] = dim
        return dim

    def has_fixed_dimensions(self, name: str) -> bool:
        dim = self.get_dim(name)
        # dtschema's precedence, kept: with no dimensions this raises TypeError, as there
        return bool((dim and dim[0][0] == dim[0][1]) or dim[1][0] == dim[1][1])  # type: ignore[index]


def _bytes_to_string(b: bytes) -> list[str] | None:
    try:
        strings = b.decode("ascii").split("\0")
    except UnicodeDecodeError:
        return None
    if len(strings) - 1 > 0 and not strings[-1]:
        for s in strings[:-1]:
            if s and not s.isprintable():
                return None
        return strings[:-1]
    return None


def _get_stride(n: int, dim: list[int]) -> int:
    match = 0
    stride = 0
    if min(dim) == 0:
        return 0
    for d in range(dim[0], dim[1] + 1):
        if not n % d:
            match += 1
            stride = d
    return stride if match == 1 else 0


class Decoded:
    """The decoded tree, the decoder's messages (dt-validate's stderr lines) and dict -> node."""

    def __init__(self) -> None:
        self.root: dict[str, Any] = {}
        self.notes: list[str] = []
        self.nodes: dict[int, Any] = {}  # id(dict) -> dtvm Node
        self.phandles: dict[int, dict[str, Any]] = {}
        self.phandle_loc: list[str] = []


class _Decoder:
    def __init__(self, types: TypeTable, out: Decoded) -> None:
        self.t = types
        self.out = out

    def prop_value(self, nodename: str, name: str, data: bytes) -> Any:
        if not data:
            return True
        if nodename in ("__fixups__", "aliases"):
            return self._ascii(data[:-1]).split("\0")
        n = len(data)
        prop_types = set(self.t.get_type(name)) - {"node"}
        if len(prop_types) > 1:
            if n > 4:
                prop_types -= {"int32", "uint32"}
            else:
                prop_types -= {"int64", "uint64", "int64-array", "uint64-array"}
            if n > 2:
                prop_types -= {"int16", "uint16"}
            else:
                prop_types -= {"int32", "uint32", "int32-array", "uint32-array"}
            if n > 1:
                prop_types -= {"int8", "uint8"}
            else:
                prop_types -= {"int16", "uint16", "int16-array", "uint16-array"}
            prop_types -= {"flag"}
        fmt: str | None = None
        if len(prop_types) > 1:
            if {"string", "string-array"} & prop_types:
                s = _bytes_to_string(data)
                if s:
                    return s
                rest = prop_types - {"string", "string-array"}
                if not rest:
                    return data
                fmt = rest.pop()  # dtschema takes whichever set.pop() gives: one type in practice
        elif len(prop_types) == 1:
            fmt = next(iter(prop_types))
        if not fmt:
            try:
                text = data.decode("ascii")
                if text.endswith("\0"):
                    text = text[:-1]
                    if text.isprintable():
                        return [text]
            except UnicodeDecodeError:
                pass
            if not n % 4:
                fmt = "uint32-array"
            else:
                return data
        if fmt.startswith("string"):
            return self._ascii(data[:-1]).split("\0")
        if "flag" in prop_types and fmt == "flag":
            self.out.notes.append(f"{name}: boolean property with value {data!r}")
            return data
        st = _FORMATS[fmt.split("-", 1)[0]]
        if n % st.size:
            self.out.notes.append(f"{name}: size ({n}) error for type {fmt}")
            if n == 4:
                st = _FORMATS["uint32"]
            elif n == 2:
                st = _FORMATS["uint16"]
            elif n == 1:
                st = _FORMATS["uint8"]
            else:
                return data
        bits = st.size * 8
        if bits == 32:
            vals: list[int] = [v for (v,) in st.iter_unpack(data)]
        else:
            vals = [SizedInt(v, bits) for (v,) in st.iter_unpack(data)]
        if "matrix" in fmt or "phandle-array" in fmt:
            dim = self.t.get_dim(name)
            if dim:
                if max(dim[1]) and dim[1][0] == dim[1][1]:
                    stride = dim[1][1]
                elif max(dim[0]) and dim[0][0] == dim[0][1]:
                    stride, rem = divmod(len(vals), dim[0][1])
                    if rem:
                        stride = len(vals)
                else:
                    stride = _get_stride(len(vals), dim[1]) or len(vals)
                if stride <= 0:
                    raise DecodeCrash(f"{name}: range() arg 3 must not be zero")
                return [vals[i : i + stride] for i in range(0, len(vals), stride)]
        return [vals]

    @staticmethod
    def _ascii(b: bytes) -> str:
        try:
            return b.decode("ascii")
        except UnicodeDecodeError as exc:
            raise DecodeCrash(f"'ascii' codec can't decode byte {b[exc.start]:#x} in position {exc.start}") from None

    def node_props(self, nodename: str, node: Any) -> dict[str, Any]:
        return {p.name: self.prop_value(nodename, p.name, p.value) for p in node.live_props()}

    def scan(self, node: Any, nodename: str) -> dict[str, Any] | None:
        if nodename == "__fixups__":
            props = self.node_props(nodename, node)
            self.out.phandle_loc += [s for v in props.values() for s in v]
            return None
        if nodename == "__local_fixups__":
            self._local_fixups(node, "", "")
            return None
        if nodename.startswith("__"):
            return None
        d = self.node_props(nodename, node)
        self.out.nodes[id(d)] = node
        if "phandle" in d:
            try:
                self.out.phandles[d["phandle"][0][0]] = d
            except (TypeError, IndexError, KeyError):
                raise DecodeCrash("phandle: unusable value") from None
        for child in node.live_children():
            sub = self.scan(child, child.name)
            if sub is not None:
                d[child.name] = sub
        return d

    def _local_fixups(self, node: Any, nodename: str, path: str) -> None:
        if nodename:
            path += "/" + nodename
        for p in node.live_props():
            try:
                self.out.phandle_loc += [f"{path}:{p.name}:{v}" for (v,) in _U32.iter_unpack(p.value)]
            except struct.error:
                raise DecodeCrash(f"{p.name}: unpack requires a multiple of 4") from None
        for child in node.live_children():
            self._local_fixups(child, child.name, path)


def scan_tree(dt: Any, types: TypeTable) -> Decoded:
    """dtschema's ``fdt_scan_node`` from the root: the first pass of ``fdt_unflatten`` (kfixup.py
    has the whole of it)."""
    out = Decoded()
    root = _Decoder(types, out).scan(dt.root, "/")
    assert root is not None
    out.root = root
    return out
