"""dtschema 2022.12's second decoding pass: cells split by ``#*-cells`` (see kdecode.py for why).

One function per dtschema function, same order of operations and same failures (a ``KeyError``
on a phandle that names no node is dt-validate crashing; the caller turns it into a DecodeCrash).
"""

from __future__ import annotations

from typing import Any

from dtvm.bindings.kdecode import DecodeCrash, Decoded, SizedInt, TypeTable, scan_tree

__all__ = ["decode_tree", "fixup_addresses", "fixup_gpios", "fixup_interrupts", "fixup_phandles"]

PHANDLE_ARGS: dict[str, str | int | None] = {
    "assigned-clocks": "#clock-cells",
    "assigned-clock-parents": "#clock-cells",
    "cooling-device": "#cooling-cells",
    "interrupts-extended": "#interrupt-cells",
    "interconnects": "#interconnect-cells",
    "mboxes": "#mbox-cells",
    "sound-dai": "#sound-dai-cells",
    "msi-parent": "#msi-cells",
    "msi-ranges": "#interrupt-cells",
    "gpio-ranges": 3,
    "nvmem-cells": None,
    "memory-region": None,
}


def _cells(node: dict[str, Any], cellname: str | int) -> int:
    if isinstance(cellname, int):
        return cellname
    if cellname in node:
        return int(node[cellname][0][0])
    return 0


def _is_phandle(out: Decoded, prop_path: str, cell: int) -> bool:
    return f"{prop_path}:{cell * 4}" in out.phandle_loc


def _arg_size(out: Decoded, prop_path: str, idx: int, cells: list[int], cellname: str | int | None) -> int:
    if not cells:
        return 0
    phandle = cells[0]
    if phandle == 0 or not cellname:
        return 1
    if phandle == 0xFFFFFFFF:
        if _is_phandle(out, prop_path, idx):
            count = 1
            while count < len(cells) and not _is_phandle(out, prop_path, idx + count):
                count += 1
            return count
        return 0
    if phandle not in out.phandles:
        return 0
    return _cells(out.phandles[phandle], cellname) + 1


def fixup_phandles(out: Decoded, types: TypeTable, dt: dict[str, Any], path: str = "") -> None:
    for k, v in list(dt.items()):
        if isinstance(v, dict):
            fixup_phandles(out, types, v, path + "/" + k)
            continue
        if "phandle-array" not in types.get_type(k):
            continue
        if types.has_fixed_dimensions(k):
            continue
        if not isinstance(v, list) or (len(v) > 1 or not isinstance(v[0], list)):
            continue
        if k in PHANDLE_ARGS:
            cellname = PHANDLE_ARGS[k]
        elif k.endswith("s") and "gpio" not in k:
            cellname = "#" + k[:-1] + "-cells"
            if _arg_size(out, path + ":" + k, 0, v[0], cellname) == 0:
                continue
        else:
            continue
        i = 0
        dt[k] = []
        val = v[0]
        while i < len(val):
            cells = _arg_size(out, path + ":" + k, i, val[i:], cellname)
            if cells == 0:
                break
            if k == "msi-ranges":
                cells += 1
            if k == "interconnects":
                cells += _arg_size(out, path + ":" + k, i + cells, val[i + cells :], cellname)
            val[i] = SizedInt(val[i], 32, phandle=True)
            dt[k] += [val[i : i + cells]]
            i += cells


def fixup_gpios(out: Decoded, dt: dict[str, Any]) -> None:
    if "gpio-hog" in dt:
        return
    for k, v in list(dt.items()):
        if isinstance(v, dict):
            fixup_gpios(out, v)
        elif (k.endswith("-gpios") or k.endswith("-gpio") or k in ("gpio", "gpios")) and not k.endswith(",nr-gpios"):
            i = 0
            dt[k] = []
            val = v[0]
            while i < len(val):
                phandle = val[i]
                if phandle == 0:
                    cells = 0
                elif phandle == 0xFFFFFFFF:
                    try:
                        cells = _index(val, 0xFFFFFFFF, i + 1, -1)
                    except ValueError:
                        cells = len(val)
                    cells -= i + 1
                else:
                    cells = _cells(out.phandles[phandle], "#gpio-cells")
                dt[k] += [val[i : i + cells + 1]]
                i += cells + 1


def _index(seq: Any, value: Any, start: int, stop: int | None = None) -> int:
    return int(seq.index(value, start) if stop is None else seq.index(value, start, stop))


def fixup_interrupts(out: Decoded, dt: dict[str, Any], icells: int) -> None:
    if "interrupt-parent" in dt and isinstance(dt["interrupt-parent"], list):
        phandle = dt["interrupt-parent"][0][0]
        if phandle == 0xFFFFFFFF:
            del dt["interrupt-parent"]
        else:
            icells = _cells(out.phandles[phandle], "#interrupt-cells")
    for k, v in list(dt.items()):
        if k not in dt:
            continue
        if isinstance(v, dict):
            if "#interrupt-cells" in dt:
                icells = _cells(dt, "#interrupt-cells")
            fixup_interrupts(out, v, icells)
        elif k == "interrupts" and not isinstance(v, bytes):
            i = 0
            dt[k] = []
            val = v[0]
            while i < len(val):
                dt[k] += [val[i : i + icells]]
                i += icells
                if icells <= 0:
                    raise ValueError("interrupts: #interrupt-cells is 0")
        elif k == "interrupt-map" and not isinstance(v, bytes):
            icells = _cells(dt, "#interrupt-cells")
            ac = _cells(dt, "#address-cells")
            i = 0
            dt[k] = []
            val = v[0]
            phandle = val[ac + icells]
            if phandle == 0xFFFFFFFF:
                try:
                    cells = _index(val, 0xFFFFFFFF, ac + icells + 1) - (ac + icells)
                    while i < len(val):
                        dt[k] += [val[i : i + cells]]
                        i += cells
                except ValueError:
                    pass
            else:
                while i < len(val):
                    parent = out.phandles[phandle]
                    p_icells = _cells(parent, "#interrupt-cells")
                    p_ac = _cells(parent, "#address-cells") if "#address-cells" in parent else 0
                    cells = ac + icells + 1 + p_ac + p_icells
                    dt[k] += [val[i : i + cells]]
                    i += cells


def fixup_addresses(dt: dict[str, Any], ac: int, sc: int) -> None:
    for k, v in list(dt.items()):
        if isinstance(v, dict):
            if "#address-cells" in dt:
                ac = _cells(dt, "#address-cells")
            if "#size-cells" in dt:
                sc = _cells(dt, "#size-cells")
            fixup_addresses(v, ac, sc)
        elif k == "reg":
            i = 0
            dt[k] = []
            val = v[0]
            while i < len(val):
                dt[k] += [val[i : i + ac + sc]]
                i += ac + sc
                if ac + sc <= 0:
                    raise ValueError("reg: no cells")
        elif k in ("ranges", "dma-ranges") and not isinstance(v, bool):
            child = _cells(dt, "#address-cells") + _cells(dt, "#size-cells")
            i = 0
            dt[k] = []
            val = v[0]
            while i < len(val):
                dt[k] += [val[i : i + ac + child]]
                i += ac + child
                if ac + child <= 0:
                    raise ValueError("ranges: no cells")


def decode_tree(dt: Any, types: TypeTable) -> Decoded:
    """dtschema's ``fdt_unflatten`` on a dtvm tree; DecodeCrash where dtschema raises."""
    try:
        out = scan_tree(dt, types)
        root = out.root
        fixup_gpios(out, root)
        fixup_interrupts(out, root, 1)
        fixup_addresses(root, 2, 1)
        fixup_phandles(out, types, root)
    except DecodeCrash:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
        raise DecodeCrash(f"{type(exc).__name__}: {exc}") from None
    except RecursionError:
        raise DecodeCrash("RecursionError") from None
    return out
