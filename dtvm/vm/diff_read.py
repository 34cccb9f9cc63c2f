"""The inputs of dtvm diff: descriptions read (bounded), each side indexed, and its back-ends.\n\nSplit from :mod:`dtvm.vm.diff` (the comparison) so each stays one job: this module reads and\nindexes, diff compares and reports."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dtvm.dt.tree import DeviceTree, Node, Property
from dtvm.errors import DtvmError
from dtvm.vm import codec

#: A DTB's header says how long it is; more than this is refused before reading.
MAX_BLOB = 256 << 20

if TYPE_CHECKING:
    from dtvm.bindings.decode import TreeIndex
    from dtvm.bindings.load import BindingSet, NodeSpec


#: Characters of one shown value or name before it is cut with "...".
MAX_VALUE = 160


#: Levels of a shown path (a deeper path keeps its last levels, prefixed with "...").
MAX_PATH_LEVELS = 64


#: Back-end facts on a device node (the overlay's per-device fragments; a merged tree has them too).
BACKEND_FACTS = frozenset({
    "qemu,id", "qemu,hotplugged", "qemu,drive", "qemu,netdev", "qemu,chardev", "qemu,audiodev",
    "qemu,memdev", "qemu,iothread", "qemu,drive-id", "qemu,fsdev", "qemu,blockdev", "qemu,unplug-pending",
    "qemu,masterbus",
})


#: Standard properties holding one phandle (devicetree specification and common bindings).
STANDARD_PHANDLE = frozenset({
    "interrupt-parent", "next-level-cache", "l2-cache", "cpu", "remote-endpoint", "phy-handle",
    "phy", "operating-points-v2", "ddc-i2c-bus", "i2c-bus",
})


#: Standard phandle-arrays and the provider property (or fixed count) that sizes each entry.
STANDARD_PHANDLE_ARRAYS: dict[str, str | int] = {
    "clocks": "#clock-cells", "assigned-clocks": "#clock-cells",
    "assigned-clock-parents": "#clock-cells", "resets": "#reset-cells",
    "power-domains": "#power-domain-cells", "dmas": "#dma-cells", "phys": "#phy-cells",
    "iommus": "#iommu-cells", "pwms": "#pwm-cells", "mboxes": "#mbox-cells",
    "interconnects": "#interconnect-cells", "io-channels": "#io-channel-cells",
    "thermal-sensors": "#thermal-sensor-cells", "sound-dai": "#sound-dai-cells",
    "hwlocks": "#hwlock-cells", "mux-controls": "#mux-control-cells",
    "interrupts-extended": "#interrupt-cells", "msi-parent": "#msi-cells",
    "cooling-device": "#cooling-cells", "nvmem-cells": 0, "nvmem": 0, "memory-region": 0,
    "cpu-idle-states": 0, "interrupt-affinity": 0, "gpio-ranges": 3,
}


#: ``<id-base phandle out-base length>`` maps (Linux ``of_map_id``).
ID_MAPS = frozenset({"iommu-map", "msi-map"})


_PINCTRL = re.compile(r"^pinctrl-[0-9]+$")


class DiffInputError(DtvmError):
    """A file that cannot be compared: ``FILE: message`` for one line on stderr, exit status 2."""

    exit_code = 2

    def __init__(self, file: str, message: str) -> None:
        self.file = file
        self.message = message
        super().__init__(f"{file}: {message}")


def read_description(path: str, *, overlay: bool = False, warn: Callable[[str], None] | None = None) -> DeviceTree:
    """The tree in a guest DTB (``overlay=False``) or a back-end overlay; DiffInputError if unusable.

    Bounded: the header's size is checked before the blob is read, ``read_dtb`` is iterative
    and linear.  A guest tree with two children or two properties of one name cannot be
    compared by path and is refused; so is a guest DTB that is an overlay (swapped arguments)
    and an overlay without fragments.
    """
    from dtvm.dt.dtb import BlobFileError, read_dtb_file

    warnings: list[str] = []
    try:
        dt = read_dtb_file(path, MAX_BLOB, warnings.append)
    except BlobFileError as exc:
        raise DiffInputError(path, exc.message) from None
    if warn is not None:
        for w in warnings[:3]:
            text = w.strip().splitlines()
            warn(f"{path}: warning: {_clean(text[0]) if text else ''}")
    fragments = _fragments(dt)
    if overlay:
        if not fragments:
            raise DiffInputError(path, "not a DT overlay (no fragment with __overlay__): give the back-end overlay that qemu2dtb -b wrote")
    else:
        if fragments and all(c.name.startswith("fragment") for c in dt.root.live_children()):
            raise DiffInputError(path, "is a DT overlay, not a guest DTB (a back-end overlay goes after -b)")
        problem = _duplicate_names(dt)
        if problem is not None:
            raise DiffInputError(path, problem)
    return dt


def _fragments(dt: DeviceTree) -> list[tuple[Node, Node]]:
    """(fragment, __overlay__) pairs of an overlay (the codec's reading of fragments)."""
    return [(frag, over) for frag, _target, over in codec.fragments(dt)]


def _duplicate_names(dt: DeviceTree) -> str | None:
    """A node with two children or two properties of the same name, described; else None."""
    for node in dt.root.walk():
        seen: set[str] = set()
        for c in node.live_children():
            if c.name in seen:
                return f"{_path(node)} has two child nodes named {_quote(c.name)}"
            seen.add(c.name)
        seen = set()
        for p in node.live_props():
            if p.name in seen:
                return f"{_path(node)} has two properties named {_quote(p.name)}"
            seen.add(p.name)
    return None


def _clean(text: str, limit: int = MAX_VALUE) -> str:
    """``text`` safe for a terminal (show.clean: control characters escaped, length bounded)."""
    from dtvm.vm.show import clean

    return clean(text, limit)


def _quote(text: str) -> str:
    return '"' + _clean(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _strings(value: bytes) -> list[str] | None:
    """A value as strings if it is NUL-terminated UTF-8 without empty parts (show's reading)."""
    from dtvm.vm.show import _strings as strings

    return strings(value)


def _path(node: Node) -> str:
    """The node's path for a report: at most ``MAX_PATH_LEVELS`` levels walked, names escaped."""
    parts: list[str] = []
    cur: Node | None = node
    while cur is not None and cur.parent is not None and len(parts) < MAX_PATH_LEVELS:
        parts.append(_clean(cur.name, 64))
        cur = cur.parent
    text = "/" + "/".join(reversed(parts))
    if cur is not None and cur.parent is not None:
        text = "..." + text
    return text


def _compatibles(node: Node) -> list[str] | None:
    prop = node.get_property("compatible")
    if prop is None:
        return None
    return _strings(prop.value) or ["?"]


class _Ref:
    """A phandle cell that points to a node (compared by where that node is, not by number)."""

    __slots__ = ("node",)

    def __init__(self, node: Node) -> None:
        self.node = node


Norm = bytes | tuple[Any, ...]


class _Side:
    """One guest tree with what comparing it needs: binding specs, phandle targets, values."""

    def __init__(self, dt: DeviceTree, bindings: BindingSet | None) -> None:
        from dtvm.bindings.decode import TreeIndex

        self.dt = dt
        self.idx: TreeIndex = TreeIndex(dt)
        self.spec: dict[int, NodeSpec | None] = {}
        self.norms: dict[tuple[int, str], Norm] = {}
        if bindings is not None:
            self._specs(bindings)

    def _specs(self, bindings: BindingSet) -> None:
        """Each node's binding spec, a child-binding inherited as ``dtvm validate`` does."""
        from dtvm.bindings.validate import match

        stack: list[tuple[Node, NodeSpec | None, int]] = [(self.dt.root, None, 0)]
        while stack:
            node, inherited, depth = stack.pop()
            compats = _compatibles(node) or []
            binding = match(bindings, node, compats)
            spec = binding.spec if binding is not None else inherited
            self.spec[id(node)] = spec
            child = spec.child if spec is not None else None
            if depth < MAX_PATH_LEVELS:
                # deeper nodes (no real description has them) go by standard names only: a
                # select binding's path match costs the node's depth, which must stay bounded
                for c in node.live_children():
                    stack.append((c, child, depth + 1))

    def prop_type(self, node: Node, name: str) -> tuple[str, str | int | None] | None:
        spec = self.spec.get(id(node))
        if spec is None:
            return None
        pspec = spec.lookup(name)
        if pspec is None:
            return None
        return pspec.type, pspec.cells

    def norm(self, node: Node, prop: Property) -> Norm:
        """The value with its phandle cells as references: bytes when it holds none."""
        key = (id(node), prop.name)
        got = self.norms.get(key)
        if got is None:
            got = self._norm(node, prop)
            self.norms[key] = got
        return got

    def _norm(self, node: Node, prop: Property) -> Norm:
        positions = self.phandle_cells(node, prop)
        if not positions:
            return prop.value
        n = len(prop.value) // 4
        cells: list[Any] = list(struct.unpack(f">{n}I", prop.value[: 4 * n]))
        for i in positions:
            target = self.idx.phandles.get(cells[i]) if cells[i] not in (0, 0xFFFFFFFF) else None
            if target is not None:
                cells[i] = _Ref(target)
        return tuple(cells)

    def phandle_cells(self, node: Node, prop: Property) -> list[int]:
        """Indexes of the cells of ``prop`` that are phandles (empty when unknown or none)."""
        from dtvm.bindings.decode import DecodeError, decode

        name = prop.name
        data = prop.value
        if len(data) % 4 or not data:
            return []
        if name == "interrupt-map":
            return _interrupt_map_cells(node, data, self.idx)
        if name in ID_MAPS:
            return list(range(1, len(data) // 4, 4)) if len(data) % 16 == 0 else []
        declared = self.prop_type(node, name)
        cells_spec: str | int | None
        if declared is not None:
            ptype, cells_spec = declared
            if ptype == "phandle":
                return [0] if len(data) == 4 else []
            if ptype != "phandle-array":
                return []
        elif name in STANDARD_PHANDLE:
            return [0] if len(data) == 4 else []
        elif name in STANDARD_PHANDLE_ARRAYS:
            cells_spec = STANDARD_PHANDLE_ARRAYS[name]
        elif _PINCTRL.match(name):
            cells_spec = 0
        elif name in ("gpios", "gpio") or name.endswith(("-gpios", "-gpio")):
            cells_spec = "#gpio-cells"
        else:
            return []
        try:
            entries = decode(prop, "phandle-array", cells_spec, node, self.idx)
        except DecodeError:
            return []
        out = []
        i = 0
        for entry in entries:
            out.append(i)
            i += len(entry)
        return out


def _interrupt_map_cells(node: Node, data: bytes, idx: TreeIndex) -> list[int]:
    """The interrupt-parent cells of an interrupt-map, laid out as Linux's ``of_irq_parse_raw``
    reads it (child unit address and specifier, parent phandle, the parent's address and
    specifier); empty when the map does not parse."""
    n = len(data) // 4
    cells = struct.unpack(f">{n}I", data)
    addr: int | None = None
    cur: Node | None = node
    hops = 0
    while cur is not None and hops < MAX_PATH_LEVELS:
        p = cur.get_property("#address-cells")
        if p is not None and len(p.value) == 4:
            addr = int.from_bytes(p.value, "big")
            break
        cur = cur.parent
        hops += 1
    if addr is None:
        addr = 2
    intc = idx.cells(node, "#interrupt-cells", None)
    if intc is None or addr > 8 or intc > 8:
        return []
    out = []
    i = 0
    while i < n:
        j = i + addr + intc
        if j >= n:
            return []
        parent = idx.phandles.get(cells[j])
        if parent is None:
            return []
        pa = idx.cells(parent, "#address-cells", 0)
        pi = idx.cells(parent, "#interrupt-cells", None)
        if pa is None or pi is None or pa > 8 or pi > 8:
            return []
        out.append(j)
        i = j + 1 + pa + pi
    return out if i == n else []


class _Backends:
    """The host facts of one description: per-device facts and the back-end nodes."""

    def __init__(self) -> None:
        #: (key, shown path) -> {property: value}; the key is the guest node (id) when the
        #: fragment's target is in the guest tree, else the target path text
        self.facts: dict[Any, tuple[str, dict[str, bytes]]] = {}
        #: (kind, id) -> options
        self.backends: dict[tuple[str, str], dict[str, str]] = {}
        self.inputs: dict[str, str] | None = None


def _text(value: bytes) -> str:
    strings = _strings(value)
    if strings is not None:
        return ",".join(strings)
    return "" if not value else value.rstrip(b"\0").decode("utf-8", "replace")


def _read_backends_node(out: _Backends, node: Node) -> None:
    for child in node.live_children():
        opts = {p.name: _text(p.value) for p in child.live_props() if p.name not in ("compatible", "id")}
        if child.name == "inputs" and child.get_property("compatible") is None:
            out.inputs = opts
            continue
        compats = _compatibles(child) or []
        kind = _clean(compats[0][5:] if compats and compats[0].startswith("qemu,") else child.name.rsplit("-", 1)[0], 64)
        ident_prop = child.get_property("id")
        ident = _text(ident_prop.value) if ident_prop is not None else f"({child.name})"
        out.backends[(kind, ident)] = opts


def _backends_from_overlay(overlay: DeviceTree, guest: DeviceTree) -> _Backends:
    out = _Backends()
    for frag, over in _fragments(overlay):
        tp = frag.get_property("target-path")
        target = _text(tp.value) if tp is not None else f"<{frag.name}>"
        if target == "/":
            for child in over.live_children():
                if child.name == "qemu-backends" or "qemu,backends" in (_compatibles(child) or []):
                    _read_backends_node(out, child)
            continue
        facts = {p.name: p.value for p in over.live_props()}
        if not facts:
            continue
        node = guest.get_node(target) if target.startswith("/") else None
        key: Any = ("node", id(node)) if node is not None else ("path", target)
        shown = _path(node) if node is not None else _clean(target)
        prev = out.facts.get(key)
        if prev is not None:
            prev[1].update(facts)
        else:
            out.facts[key] = (shown, facts)
    return out


def _backends_from_tree(guest: DeviceTree) -> _Backends | None:
    """The host facts of a merged description (``fdtoverlay`` applied the overlay), if any."""
    holder = guest.root.get_child("qemu-backends")
    if holder is None:
        return None
    out = _Backends()
    _read_backends_node(out, holder)
    for node in guest.root.walk():
        facts = {p.name: p.value for p in node.live_props() if p.name in BACKEND_FACTS}
        if facts:
            out.facts[("node", id(node))] = (_path(node), facts)
    return out
