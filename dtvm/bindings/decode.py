"""Property bytes -> JSON values by declared type, cell-aware.

``reg`` entries are split by the parent's ``#address-cells``/``#size-cells``,
``ranges`` by the node's and the parent's, ``interrupts`` by the interrupt
parent's ``#interrupt-cells``, and phandle-array entries by each provider's
``#...-cells``. A value that cannot be decoded gives a :class:`DecodeError`.
"""

from __future__ import annotations

import struct
from typing import Any

from dtvm.dt.tree import DeviceTree, Node, Property

__all__ = ["DecodeError", "TreeIndex", "cells_property_for", "decode"]


class DecodeError(Exception):
    def __init__(self, message: str, rule: str = "type") -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule


class TreeIndex:
    """What decoding needs from the whole tree: phandle targets, cell counts."""

    def __init__(self, dt: DeviceTree) -> None:
        self.dt = dt
        self.phandles: dict[int, Node] = {}
        for node in dt.root.walk():
            for name in ("phandle", "linux,phandle"):
                p = node.get_property(name)
                if p is not None and len(p.value) == 4:
                    self.phandles.setdefault(int.from_bytes(p.value, "big"), node)
            if node.phandle and node.phandle != 0xFFFFFFFF:
                self.phandles.setdefault(node.phandle, node)

    @staticmethod
    def cells(node: Node | None, name: str, default: int | None) -> int | None:
        if node is None:
            return default
        p = node.get_property(name)
        if p is None or len(p.value) != 4:
            return default
        return int.from_bytes(p.value, "big")

    def interrupt_parent(self, node: Node) -> Node | None:
        cur: Node | None = node
        while cur is not None:
            p = cur.get_property("interrupt-parent")
            if p is not None and len(p.value) == 4:
                return self.phandles.get(int.from_bytes(p.value, "big"))
            cur = cur.parent
            if cur is not None and (cur.get_property("interrupt-controller") is not None or cur.get_property("interrupt-map") is not None):
                return cur
        return None


_INT_FORMATS = {
    "uint8": ("B", 1, False),
    "uint8-array": ("B", 1, True),
    "uint16": ("H", 2, False),
    "uint16-array": ("H", 2, True),
    "uint32": ("I", 4, False),
    "uint32-array": ("I", 4, True),
    "int32": ("i", 4, False),
    "int32-array": ("i", 4, True),
    "uint64": ("Q", 8, False),
    "uint64-array": ("Q", 8, True),
    "phandle": ("I", 4, False),
}

# provider cell properties whose absence means 0 cells
_OPTIONAL_CELLS = {"#msi-cells", "#iommu-cells", "#dma-cells"}


def cells_property_for(name: str) -> str:
    """The provider property that sizes the entries of a phandle-array (dtc's convention)."""
    if name == "interrupts-extended":
        return "#interrupt-cells"
    if name == "msi-parent":
        return "#msi-cells"
    base = name.rsplit("-", 1)[-1] if name.endswith(("-gpios", "-gpio")) else name
    if base in ("gpios", "gpio"):
        return "#gpio-cells"
    if base.endswith("es") and base[:-2].endswith(("x", "ss", "sh")):
        base = base[:-2]
    elif base.endswith("s"):
        base = base[:-1]
    return f"#{base}-cells"


def _cells(data: bytes, name: str) -> list[int]:
    n, rem = divmod(len(data), 4)
    if rem:
        raise DecodeError(f"length {len(data)} is not a multiple of 4 (cells)")
    return list(struct.unpack(f">{n}I", data))


def _join(cells: list[int]) -> int:
    v = 0
    for c in cells:
        v = (v << 32) | c
    return v


def _split(cells: list[int], widths: tuple[int, ...], what: str) -> list[list[int]]:
    step = sum(widths)
    if step == 0:
        if cells:
            raise DecodeError(f"{len(cells)} cells, but {what} gives 0 cells per entry", "cells")
        return []
    if len(cells) % step:
        raise DecodeError(f"{len(cells)} cells is not a multiple of {step} ({what})", "cells")
    out = []
    for i in range(0, len(cells), step):
        entry = []
        j = i
        for w in widths:
            entry.append(_join(cells[j : j + w]))
            j += w
        out.append(entry)
    return out


def decode(prop: Property, ptype: str, cells_spec: str | int | None, node: Node, idx: TreeIndex) -> Any:
    """The JSON value of ``prop`` read as ``ptype``; DecodeError if it does not fit."""
    data = prop.value
    fmt = _INT_FORMATS.get(ptype)
    if fmt is not None:
        code, size, is_array = fmt
        n, rem = divmod(len(data), size)
        if rem or (not is_array and n != 1) or (is_array and n == 0):
            want = f"a multiple of {size}" if is_array else f"{size}"
            raise DecodeError(f"length {len(data)} bytes, expected {want} ({ptype})")
        values = list(struct.unpack(f">{n}{code}", data))
        if ptype == "phandle":
            if values[0] not in idx.phandles:
                raise DecodeError(f"phandle {values[0]:#x} does not point to a node", "phandle")
        return values if is_array else values[0]
    if ptype in ("string", "string-array"):
        if not data or data[-1] != 0:
            raise DecodeError(f"not a NUL-terminated string ({ptype})")
        try:
            strings = data[:-1].decode("utf-8").split("\0")
        except UnicodeDecodeError:
            raise DecodeError(f"not UTF-8 text ({ptype})") from None
        if ptype == "string":
            if len(strings) != 1:
                raise DecodeError(f"{len(strings)} strings, expected one (string)")
            return strings[0]
        return strings
    if ptype in ("flag", "boolean"):
        if data:
            raise DecodeError(f"length {len(data)} bytes, expected none (flag)")
        return True
    if ptype == "address":
        parent = node.parent
        ac = idx.cells(parent, "#address-cells", 2)
        sc = idx.cells(parent, "#size-cells", 1)
        assert ac is not None and sc is not None
        return _split(_cells(data, prop.name), (ac, sc) if sc else (ac,), f"#address-cells = {ac}, #size-cells = {sc} in the parent")
    if ptype == "ranges":
        if not data:
            return []
        cac = idx.cells(node, "#address-cells", 2)
        csc = idx.cells(node, "#size-cells", 1)
        pac = idx.cells(node.parent, "#address-cells", 2)
        assert cac is not None and csc is not None and pac is not None
        return _split(_cells(data, prop.name), (cac, pac, csc), f"child #address-cells = {cac}, parent #address-cells = {pac}, #size-cells = {csc}")
    if ptype == "interrupts":
        ip = idx.interrupt_parent(node)
        if ip is None:
            raise DecodeError("no interrupt parent (interrupt-parent or an interrupt-controller ancestor)", "cells")
        ic = idx.cells(ip, "#interrupt-cells", None)
        if ic is None:
            raise DecodeError(f"interrupt parent {ip.path} has no #interrupt-cells", "cells")
        return _split(_cells(data, prop.name), (1,) * ic, f"#interrupt-cells = {ic} in {ip.path}")
    if ptype == "phandle-array":
        cells = _cells(data, prop.name)
        cname = cells_spec if cells_spec is not None else cells_property_for(prop.name)
        out: list[list[int]] = []
        i = 0
        while i < len(cells):
            ph = cells[i]
            if isinstance(cname, int):
                n = cname
            elif ph == 0:
                n = 0  # an empty slot
            else:
                provider = idx.phandles.get(ph)
                if provider is None:
                    raise DecodeError(f"entry {len(out)}: phandle {ph:#x} does not point to a node", "phandle")
                got = idx.cells(provider, cname, 0 if cname in _OPTIONAL_CELLS else None)
                if got is None:
                    raise DecodeError(f"entry {len(out)}: provider {provider.path} has no {cname}", "cells")
                n = got
            if i + 1 + n > len(cells):
                raise DecodeError(f"entry {len(out)}: {len(cells) - i - 1} cells left, {cname} says {n}", "cells")
            out.append(cells[i : i + 1 + n])
            i += 1 + n
        return out
    if ptype == "any":
        return None
    raise DecodeError(f"unknown type {ptype}")  # the format check keeps this out
