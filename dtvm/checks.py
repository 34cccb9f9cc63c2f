"""dtc's semantic checks, by dtc's names, with dtc's levels, prerequisites and order.

Some checks are fixups that change the tree (phandle and path references are
resolved here, unused /omit-if-no-ref/ nodes are deleted), so running them in
dtc's order with dtc's short-circuit (no check runs after the first error)
decides what the output holds, including under ``-f``.

This module holds the error-level checks that decide what dtc accepts; the
warning-level checks are registered by name (so ``-W``/``-E`` validate as dtc
does) and are implemented in a later step (issue 3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import DtvmError
from .tree import PHANDLE_EPAPR, PHANDLE_LEGACY, DeviceTree, Marker, MarkerType, Node, Property

__all__ = ["CHECK_NAMES", "Check", "CheckError", "CheckRunner", "Finding"]

PROPNODECHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,._+*#?-")
NODECHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,._+-@")


class CheckError(DtvmError):
    """The tree failed error-level checks (dtc exits 2)."""

    exit_code = 2


@dataclass
class Finding:
    check: str
    error: bool
    path: str
    prop: Property | None
    message: str
    node: Node | None = None

    def format(self, fname: str) -> str:
        level = "ERROR" if self.error else "Warning"
        where = self.path if self.prop is None else f"{self.path}:{self.prop.name}"
        pos = None
        if self.prop is not None and self.prop.pos is not None:
            pos = self.prop.pos
        elif self.node is not None and self.node.pos is not None:
            pos = self.node.pos
        if pos is not None:
            name, line, col = pos.location()
            prefix = f"{name}:{line}:{col}"
        else:
            prefix = fname
        return f"{prefix}: {level.lower()}: {where}: {self.message} [-W{self.check}]"


@dataclass
class Check:
    name: str
    fn: Callable[[CheckRunner, Check, Node], None] | None
    warn: bool = False
    error: bool = False
    prereqs: tuple[str, ...] = ()
    status: str = "unchecked"  # unchecked, passed, failed, prereq
    inprogress: bool = False


@dataclass
class PhandleState:
    """dtc's static next-phandle counter plus the set of phandles in use."""

    next: int = 1
    used: set[int] = field(default_factory=set)


# (name, level, prereqs) in dtc 1.6.1's check_table order; level: 'E', 'W' or '' (off)
_TABLE: list[tuple[str, str, tuple[str, ...]]] = [
    ("duplicate_node_names", "E", ()),
    ("duplicate_property_names", "E", ()),
    ("node_name_chars", "E", ()),
    ("node_name_format", "E", ("node_name_chars",)),
    ("property_name_chars", "E", ()),
    ("name_is_string", "E", ()),
    ("name_properties", "E", ("name_is_string",)),
    ("node_name_chars_strict", "", ()),
    ("node_name_vs_property_name", "W", ()),
    ("duplicate_label", "E", ()),
    ("explicit_phandles", "E", ()),
    ("phandle_references", "E", ("duplicate_node_names", "explicit_phandles")),
    ("path_references", "E", ("duplicate_node_names",)),
    ("omit_unused_nodes", "E", ("phandle_references", "path_references")),
    ("address_cells_is_cell", "W", ()),
    ("size_cells_is_cell", "W", ()),
    ("interrupt_cells_is_cell", "W", ()),
    ("device_type_is_string", "W", ()),
    ("model_is_string", "W", ()),
    ("status_is_string", "W", ()),
    ("label_is_string", "W", ()),
    ("compatible_is_string_list", "W", ()),
    ("names_is_string_list", "W", ()),
    ("property_name_chars_strict", "", ()),
    ("addr_size_cells", "W", ("address_cells_is_cell", "size_cells_is_cell")),
    ("reg_format", "W", ("addr_size_cells",)),
    ("ranges_format", "W", ("addr_size_cells",)),
    ("dma_ranges_format", "W", ("addr_size_cells",)),
    ("unit_address_vs_reg", "W", ()),
    ("unit_address_format", "W", ("node_name_format",)),
    ("pci_bridge", "W", ("device_type_is_string", "addr_size_cells")),
    ("pci_device_reg", "W", ("reg_format", "pci_bridge")),
    ("pci_device_bus_num", "", ("reg_format", "pci_bridge")),
    ("simple_bus_bridge", "W", ("addr_size_cells", "compatible_is_string_list")),
    ("simple_bus_reg", "W", ("reg_format", "simple_bus_bridge")),
    ("i2c_bus_bridge", "W", ("addr_size_cells",)),
    ("i2c_bus_reg", "W", ("reg_format", "i2c_bus_bridge")),
    ("spi_bus_bridge", "W", ("addr_size_cells",)),
    ("spi_bus_reg", "W", ("reg_format", "spi_bus_bridge")),
    ("avoid_default_addr_size", "W", ("addr_size_cells",)),
    ("avoid_unnecessary_addr_size", "W", ("avoid_default_addr_size",)),
    ("unique_unit_address", "W", ("avoid_default_addr_size",)),
    ("unique_unit_address_if_enabled", "", ("avoid_default_addr_size",)),
    ("obsolete_chosen_interrupt_controller", "W", ()),
    ("chosen_node_is_root", "W", ()),
    ("chosen_node_bootargs", "W", ("chosen_node_is_root",)),
    ("chosen_node_stdout_path", "W", ("chosen_node_is_root",)),
    ("clocks_property", "W", ()),
    ("cooling_device_property", "W", ()),
    ("dmas_property", "W", ()),
    ("hwlocks_property", "W", ()),
    ("interrupts_extended_property", "W", ()),
    ("io_channels_property", "W", ()),
    ("iommus_property", "W", ()),
    ("mboxes_property", "W", ()),
    ("msi_parent_property", "W", ()),
    ("mux_controls_property", "W", ()),
    ("phys_property", "W", ()),
    ("power_domains_property", "W", ()),
    ("pwms_property", "W", ()),
    ("resets_property", "W", ()),
    ("sound_dai_property", "W", ()),
    ("thermal_sensors_property", "W", ()),
    ("deprecated_gpio_property", "W", ()),
    ("gpios_property", "W", ("deprecated_gpio_property",)),
    ("interrupt_provider", "W", ()),
    ("interrupts_property", "W", ()),
    ("alias_paths", "W", ()),
    ("graph_nodes", "W", ()),
    ("graph_child_address", "W", ("graph_nodes",)),
    ("graph_port", "W", ("graph_nodes",)),
    ("graph_endpoint", "W", ("graph_nodes",)),
    ("always_fail", "", ()),
]

CHECK_NAMES: list[str] = [name for name, _, _ in _TABLE]


def _is_one_string(value: bytes) -> bool:
    return len(value) > 0 and value.index(0) == len(value) - 1 if 0 in value else False


class CheckRunner:
    """Runs dtc's check table on one tree; holds per-compilation state (phandle counter)."""

    def __init__(self, dt: DeviceTree, phandle_format: int = PHANDLE_EPAPR, generate_symbols: bool = False) -> None:
        self.dt = dt
        self.phandle_format = phandle_format
        self.generate_symbols = generate_symbols
        self.findings: list[Finding] = []
        self.phandles = PhandleState()
        fns: dict[str, Callable[[CheckRunner, Check, Node], None]] = {
            "duplicate_node_names": _check_duplicate_node_names,
            "duplicate_property_names": _check_duplicate_property_names,
            "node_name_chars": _check_node_name_chars,
            "node_name_format": _check_node_name_format,
            "property_name_chars": _check_property_name_chars,
            "name_is_string": _check_name_is_string,
            "name_properties": _check_name_properties,
            "explicit_phandles": _check_explicit_phandles,
            "phandle_references": _fixup_phandle_references,
            "path_references": _fixup_path_references,
            "omit_unused_nodes": _fixup_omit_unused_nodes,
        }
        self.checks: dict[str, Check] = {}
        for name, level, prereqs in _TABLE:
            self.checks[name] = Check(name, fns.get(name), level == "W", level == "E", prereqs)
        self._labels: dict[str, Node] | None = None
        self.nodes: list[Node] = []

    def lookup(self, ref: str) -> Node | None:
        """dtc's get_node_by_ref, with labels indexed once: checks never add or move labels."""
        root = self.dt.root
        if ref.startswith("/"):
            return root.get_node_by_ref(ref)
        if self._labels is None:
            index: dict[str, Node] = {}
            for node in self.nodes or list(root.walk()):
                if node.deleted:
                    continue
                for lab in node.labels:
                    if not lab.deleted:
                        index.setdefault(lab.name, node)
            self._labels = index
        slash = ref.find("/")
        if slash < 0:
            return self._labels.get(ref)
        base = self._labels.get(ref[:slash])
        return None if base is None else base.get_node(ref[slash:])

    def configure(self, name: str, enable: bool, error: bool) -> bool:
        """dtc's -W/-E: False if the name is unknown."""
        c = self.checks.get(name)
        if c is None:
            return False
        if error:
            c.error = enable
        else:
            c.warn = enable
        return True

    # -- running --------------------------------------------------------------
    def fail(self, c: Check, node: Node, message: str, prop: Property | None = None) -> None:
        c.status = "failed"
        message = message.rstrip("\n")
        if c.warn or c.error:
            self.findings.append(Finding(c.name, c.error, node.path, prop, message, node))

    def run_all(self) -> bool:
        """True if an error-level check failed (dtc's process_checks)."""
        self.dt.root.freeze_paths()
        # checks delete nodes (omit_unused_nodes) but never add or move any, so
        # one pre-order list serves every check; deleted ones are skipped
        self.nodes = list(self.dt.root.walk())
        error = False
        for c in self.checks.values():
            if c.warn or c.error:
                error = error or self._run(c)
        return error

    def _run(self, c: Check) -> bool:
        error = False
        if c.status == "unchecked":
            c.inprogress = True
            for pname in c.prereqs:
                prq = self.checks[pname]
                error = error or self._run(prq)
                if prq.status != "passed":
                    c.status = "prereq"
                    if c.warn or c.error:
                        self.findings.append(
                            Finding(c.name, c.error, "", None, f"Failed prerequisite '{pname}'")
                        )
            if c.status == "unchecked":
                if c.name == "duplicate_label":
                    _check_duplicate_labels(self, c)
                elif c.fn is not None:
                    fn = c.fn
                    for node in self.nodes:
                        if not node.deleted:
                            fn(self, c, node)
                if c.status == "unchecked":
                    c.status = "passed"
            c.inprogress = False
        if c.status != "passed" and c.error:
            error = True
        return error

    # -- phandles -------------------------------------------------------------------
    def node_phandle(self, node: Node) -> int:
        """dtc's get_node_phandle: allocate in dtc's order, add phandle properties."""
        if node.phandle not in (0, 0xFFFFFFFF):
            return node.phandle
        st = self.phandles
        while st.next in st.used:
            st.next += 1
        value = st.next
        node.phandle = value
        st.used.add(value)
        data = value.to_bytes(4, "big")
        if node.get_property("linux,phandle") is None and self.phandle_format & PHANDLE_LEGACY:
            node.props.append(Property("linux,phandle", data, [Marker(0, MarkerType.TYPE_UINT32)]))
        if node.get_property("phandle") is None and self.phandle_format & PHANDLE_EPAPR:
            node.props.append(Property("phandle", data, [Marker(0, MarkerType.TYPE_UINT32)]))
        return value


# -- the checks -----------------------------------------------------------------------


def _check_duplicate_node_names(r: CheckRunner, c: Check, node: Node) -> None:
    seen: set[str] = set()
    for child in node.children:
        if child.deleted:
            continue
        if child.name in seen:
            r.fail(c, child, "Duplicate node name")
        seen.add(child.name)


def _check_duplicate_property_names(r: CheckRunner, c: Check, node: Node) -> None:
    seen: set[str] = set()
    for prop in node.props:
        if prop.deleted:
            continue
        if prop.name in seen:
            r.fail(c, node, "Duplicate property name", prop)
        seen.add(prop.name)


def _first_bad(name: str, allowed: frozenset[str]) -> str | None:
    for ch in name:
        if ch not in allowed:
            return ch
    return None


def _check_node_name_chars(r: CheckRunner, c: Check, node: Node) -> None:
    bad = _first_bad(node.name, NODECHARS)
    if bad is not None:
        r.fail(c, node, f"Bad character '{bad}' in node name")


def _check_node_name_format(r: CheckRunner, c: Check, node: Node) -> None:
    unit = node.unit_address
    if unit is not None and "@" in unit:
        r.fail(c, node, "multiple '@' characters in node name")


def _check_property_name_chars(r: CheckRunner, c: Check, node: Node) -> None:
    for prop in node.props:
        if prop.deleted:
            continue
        bad = _first_bad(prop.name, PROPNODECHARS)
        if bad is not None:
            r.fail(c, node, f"Bad character '{bad}' in property name", prop)


def _check_name_is_string(r: CheckRunner, c: Check, node: Node) -> None:
    prop = node.get_property("name")
    if prop is not None and not _is_one_string(prop.value):
        r.fail(c, node, "property is not a string", prop)


def _check_name_properties(r: CheckRunner, c: Check, node: Node) -> None:
    # dtc looks at the first "name" entry, deleted or not
    idx = next((i for i, p in enumerate(node.props) if p.name == "name"), None)
    if idx is None:
        return
    prop = node.props[idx]
    base = node.basename.encode("latin-1")
    if len(prop.value) != len(base) + 1 or prop.value[: len(base)] != base:
        shown = prop.value.split(b"\0", 1)[0].decode("latin-1")
        r.fail(c, node, f'"name" property is incorrect ("{shown}" instead of base node name)')
    else:
        del node.props[idx]


def _check_duplicate_labels(r: CheckRunner, c: Check) -> None:
    """Every label must name one thing: the first owner found, as dtc searches, is the only one."""
    owners: dict[str, tuple[int, object]] = {}
    occurrences: list[tuple[str, Node, object, int]] = []
    # dtc searches node labels first, then property labels, then value labels
    for node in r.nodes:
        if node.deleted:
            continue
        for lab in node.labels:
            if not lab.deleted:
                occurrences.append((lab.name, node, node, 0))
        for prop in node.props:
            if prop.deleted:
                continue
            for lab in prop.labels:
                if not lab.deleted:
                    occurrences.append((lab.name, node, prop, 1))
            for m in prop.markers:
                if m.type == MarkerType.LABEL:
                    occurrences.append((m.ref, node, m, 2))  # type: ignore[arg-type]
    for kind in (0, 1, 2):
        for name, _node, owner, k in occurrences:
            if k == kind and name not in owners:
                owners[name] = (k, owner)
    for name, node, owner, _k in occurrences:
        first = owners[name][1]
        if first is not owner:
            r.fail(c, node, f"Duplicate label '{name}'")


def _check_phandle_prop(r: CheckRunner, c: Check, node: Node, name: str) -> int:
    prop = node.get_property(name)
    if prop is None:
        return 0
    if len(prop.value) != 4:
        r.fail(c, node, f"bad length ({len(prop.value)}) {name} property", prop)
        return 0
    for m in prop.markers:
        if m.type == MarkerType.REF_PHANDLE:
            if r.lookup(m.ref) is not node:  # type: ignore[arg-type]
                r.fail(c, node, f"{name} is a reference to another node")
            return 0
    value = int.from_bytes(prop.value, "big")
    if value in (0, 0xFFFFFFFF):
        r.fail(c, node, f"bad value (0x{value:x}) in {name} property", prop)
        return 0
    return value


def _check_explicit_phandles(r: CheckRunner, c: Check, node: Node) -> None:
    phandle = _check_phandle_prop(r, c, node, "phandle")
    linux = _check_phandle_prop(r, c, node, "linux,phandle")
    if not phandle and not linux:
        return
    if linux and phandle and phandle != linux:
        r.fail(c, node, "mismatching 'phandle' and 'linux,phandle' properties")
    if linux and not phandle:
        phandle = linux
    used = r.phandles.used
    if phandle in used:
        other = r.dt.root.get_node_by_phandle(phandle)
        if other is not None and other is not node:
            r.fail(c, node, f"duplicated phandle 0x{phandle:x} (seen before at {other.path})")
            return
    node.phandle = phandle
    used.add(phandle)


def _fixup_phandle_references(r: CheckRunner, c: Check, node: Node) -> None:
    for prop in node.props:
        if prop.deleted:
            continue
        buf: bytearray | None = None
        for m in prop.markers:
            if m.type != MarkerType.REF_PHANDLE:
                continue
            target = r.lookup(m.ref)  # type: ignore[arg-type]
            if buf is None:
                buf = bytearray(prop.value)
            if target is None:
                if not r.dt.plugin:
                    r.fail(c, node, f'Reference to non-existent node or label "{m.ref}"\n', prop)
                else:
                    buf[m.offset : m.offset + 4] = b"\xff\xff\xff\xff"
                continue
            ph = r.node_phandle(target)
            buf[m.offset : m.offset + 4] = ph.to_bytes(4, "big")
            target.is_referenced = True
        if buf is not None:
            prop.value = bytes(buf)


def _fixup_path_references(r: CheckRunner, c: Check, node: Node) -> None:
    for prop in node.props:
        if prop.deleted:
            continue
        markers = prop.markers
        for k, m in enumerate(markers):
            if m.type != MarkerType.REF_PATH:
                continue
            target = r.lookup(m.ref)  # type: ignore[arg-type]
            if target is None:
                r.fail(c, node, f'Reference to non-existent node or label "{m.ref}"\n', prop)
                continue
            path = target.path.encode("latin-1") + b"\0"
            v = prop.value
            prop.value = v[: m.offset] + path + v[m.offset :]
            for later in markers[k + 1 :]:
                later.offset += len(path)
            target.is_referenced = True


def _fixup_omit_unused_nodes(r: CheckRunner, c: Check, node: Node) -> None:
    if r.generate_symbols and node.labels:
        return
    if node.omit_if_unused and not node.is_referenced:
        node.delete()
