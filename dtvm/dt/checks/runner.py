"""dtc's semantic checks, by dtc's names, with dtc's levels, prerequisites and order.

Every check of dtc 1.6.1's ``checks.c`` is here, with the table, default
levels and prerequisites read from the Debian binary itself (see
``_TABLE``).  Some checks are fixups that change the tree (phandle and path
references are resolved here, unused /omit-if-no-ref/ nodes are deleted), so
running them in dtc's order with dtc's short-circuit (no check runs after the
first failing error check) decides what the output holds, including under
``-f``.  Warning-level checks keep per-run state as dtc keeps it on its nodes:
the ``#address-cells``/``#size-cells`` values (0 until ``addr_size_cells``
runs, -1 when absent) and the bus type that the ``*_bridge`` checks and
``graph_nodes`` assign.

Where dtc 1.6.1 itself aborts (the ``propval_cell`` assertion on a
``#*-cells``, ``interrupt-parent``, ``remote-endpoint`` or graph ``reg`` that is
not one cell), crashes (an endpoint directly under the root, an empty
``status`` under ``-W unique_unit_address_if_enabled``) or never ends (a
``#*-cells`` of 0xffffffff in a phandle list), dtvm rejects the input with a
:class:`~dtvm.errors.TreeError` naming the node and property.

For speed each check is one function over the whole tree rather than one call
per node; the warning checks share an index built once after the fixups
(first live property of each name per node, nodes by property name, pre-order
positions, phandles), and duplicate_label and the reference fixups share one
scan of the markers. Each check keeps dtc's pre-order, so findings come out in
dtc's order (and as often as dtc repeats them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dtvm.dt.checks.buses import (
    _check_always_fail,
    _check_avoid_default_addr_size,
    _check_avoid_unnecessary_addr_size,
    _check_graph_child_address,
    _check_graph_endpoint,
    _check_graph_nodes,
    _check_graph_port,
    _check_i2c_bus_bridge,
    _check_i2c_bus_reg,
    _check_pci_bridge,
    _check_pci_device_bus_num,
    _check_pci_device_reg,
    _check_simple_bus_bridge,
    _check_simple_bus_reg,
    _check_spi_bus_bridge,
    _check_spi_bus_reg,
    _check_unit_address_format,
    _check_unit_address_vs_reg,
    _mk_unique_unit_address,
)
from dtvm.dt.checks.common import (
    Check,
    PhandleState,
    TreeFn,
    _s32,
    propval_cell,
)
from dtvm.dt.checks.fixups import (
    _check_duplicate_labels,
    _check_duplicate_node_names,
    _check_duplicate_property_names,
    _check_explicit_phandles,
    _check_name_is_string,
    _check_name_properties,
    _check_node_name_chars,
    _check_node_name_format,
    _check_property_name_chars,
    _fixup_omit_unused_nodes,
    _fixup_path_references,
    _fixup_phandle_references,
    _MarkerScan,
)
from dtvm.dt.checks.props import (
    _check_addr_size_cells,
    _check_alias_paths,
    _check_chosen_node_bootargs,
    _check_chosen_node_is_root,
    _check_chosen_node_stdout_path,
    _check_compatible_is_string_list,
    _check_deprecated_gpio_property,
    _check_gpios_property,
    _check_interrupt_provider,
    _check_interrupts_property,
    _check_names_is_string_list,
    _check_node_name_chars_strict,
    _check_node_name_vs_property_name,
    _check_obsolete_chosen_interrupt_controller,
    _check_property_name_chars_strict,
    _check_reg_format,
    _mk_is_cell,
    _mk_is_string,
    _mk_provider,
    _mk_ranges_format,
)
from dtvm.dt.dts.source import dtc_srcpos, pos_spans
from dtvm.dt.tree import (
    PHANDLE_EPAPR,
    PHANDLE_LEGACY,
    DeviceTree,
    Marker,
    MarkerType,
    Node,
    Property,
    SourcePos,
)
from dtvm.errors import format_source_error

__all__ = ["CHECK_NAMES", "WARNING_CHECKS", "CheckRunner", "Finding"]


@dataclass
class Finding:
    check: str
    error: bool
    # None: the node's path, computed when asked for (a path string per finding is quadratic
    # memory on a deep tree whose every node fails a check)
    given_path: str | None
    prop: Property | None
    message: str
    node: Node | None = None
    at: SourcePos | None = None  # where dtvm's form points when not at the property or node itself
    tail: str = ""  # what dtc's message ends with beyond dtvm's (a stray newline)

    @property
    def path(self) -> str:
        if self.given_path is not None:
            return self.given_path
        return self.node.path if self.node is not None else ""

    @property
    def key(self) -> tuple[str, str, str | None]:
        """(check name, node path, property name or None): what dtc's message names."""
        return (self.check, self.path, None if self.prop is None else self.prop.name)

    def format(self, fname: str) -> str:
        level = "ERROR" if self.error else "Warning"
        where = self.path if self.prop is None else f"{self.path}:{self.prop.name}"
        pos = self.at
        if pos is None and self.prop is not None:
            pos = self.prop.pos
        if pos is None and self.node is not None:
            pos = self.node.pos
        if pos is not None:
            name, line, col = pos.location()
            prefix = f"{name}:{line}:{col}"
        else:
            prefix = fname
        text = f"{where}: {self.message}" if where else self.message
        return f"{prefix}: {level.lower()}: {text} [-W{self.check}]"

    def format_dtc(self, outname: str, rich: bool = False) -> str:
        """dtc's check_msg, byte for byte (possibly several lines, no final newline).

        ``POS: ERROR (name): /path[:prop]: message``, where POS is the
        property's span, else the node's (its first block; the others follow
        as "also defined at" lines), else the output file's name.
        """
        pos: SourcePos | None = None
        spans: list[SourcePos] = []
        if self.prop is not None and self.prop.pos is not None:
            pos = self.prop.pos
        elif self.node is not None and self.node.pos is not None:
            spans = pos_spans(self.node.pos)
            pos = spans[0] if spans else None
        head = dtc_srcpos(pos) if pos is not None else ("<stdout>" if outname == "-" else outname)
        level = "ERROR" if self.error else "Warning"
        where = ""
        if self.node is not None:
            where = f"{self.path}:{self.prop.name}: " if self.prop is not None else f"{self.path}: "
        text = f"{head}: {level} ({self.check}): {where}{self.message}{self.tail}"
        if rich and pos is not None:
            text = format_source_error(text, pos.source, pos.start)
        if self.prop is None and self.node is not None and pos is not None:
            for more in spans[1:]:
                text += f"\n  also defined at {dtc_srcpos(more)}"
        return text



# dtc 1.6.1's check_table, read from Debian's binary (names, default levels and
# prerequisite lists of its struct check entries): (name, level, prereqs) with
# level 'E', 'W' or '' (off by default)
_TABLE: list[tuple[str, str, tuple[str, ...]]] = [
    ("duplicate_node_names", "E", ()),
    ("duplicate_property_names", "E", ()),
    ("node_name_chars", "E", ()),
    ("node_name_format", "E", ("node_name_chars",)),
    ("property_name_chars", "E", ()),
    ("name_is_string", "E", ()),
    ("name_properties", "E", ("name_is_string",)),
    ("node_name_vs_property_name", "W", ("node_name_chars",)),
    ("duplicate_label", "E", ()),
    ("explicit_phandles", "E", ()),
    ("phandle_references", "E", ("duplicate_node_names", "explicit_phandles")),
    ("path_references", "E", ("duplicate_node_names",)),
    ("omit_unused_nodes", "E", ("phandle_references", "path_references")),
    ("address_cells_is_cell", "W", ()),
    ("size_cells_is_cell", "W", ()),
    ("device_type_is_string", "W", ()),
    ("model_is_string", "W", ()),
    ("status_is_string", "W", ()),
    ("label_is_string", "W", ()),
    ("compatible_is_string_list", "W", ()),
    ("names_is_string_list", "W", ()),
    ("property_name_chars_strict", "", ()),
    ("node_name_chars_strict", "", ()),
    ("addr_size_cells", "W", ("address_cells_is_cell", "size_cells_is_cell")),
    ("reg_format", "W", ("addr_size_cells",)),
    ("ranges_format", "W", ("addr_size_cells",)),
    ("dma_ranges_format", "W", ("addr_size_cells",)),
    ("unit_address_vs_reg", "W", ()),
    ("unit_address_format", "W", ("node_name_format", "pci_bridge", "simple_bus_bridge")),
    ("pci_bridge", "W", ("device_type_is_string", "addr_size_cells")),
    ("pci_device_reg", "W", ("reg_format", "pci_bridge")),
    ("pci_device_bus_num", "W", ("reg_format", "pci_bridge")),
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
    ("chosen_node_bootargs", "W", ()),
    ("chosen_node_stdout_path", "W", ()),
    ("clocks_property", "W", ("clocks_is_cell", "phandle_references")),
    ("clocks_is_cell", "W", ()),
    ("cooling_device_property", "W", ("cooling_device_is_cell", "phandle_references")),
    ("cooling_device_is_cell", "W", ()),
    ("dmas_property", "W", ("dmas_is_cell", "phandle_references")),
    ("dmas_is_cell", "W", ()),
    ("hwlocks_property", "W", ("hwlocks_is_cell", "phandle_references")),
    ("hwlocks_is_cell", "W", ()),
    ("interrupts_extended_property", "W", ("interrupts_extended_is_cell", "phandle_references")),
    ("interrupts_extended_is_cell", "W", ()),
    ("io_channels_property", "W", ("io_channels_is_cell", "phandle_references")),
    ("io_channels_is_cell", "W", ()),
    ("iommus_property", "W", ("iommus_is_cell", "phandle_references")),
    ("iommus_is_cell", "W", ()),
    ("mboxes_property", "W", ("mboxes_is_cell", "phandle_references")),
    ("mboxes_is_cell", "W", ()),
    ("msi_parent_property", "W", ("msi_parent_is_cell", "phandle_references")),
    ("msi_parent_is_cell", "W", ()),
    ("mux_controls_property", "W", ("mux_controls_is_cell", "phandle_references")),
    ("mux_controls_is_cell", "W", ()),
    ("phys_property", "W", ("phys_is_cell", "phandle_references")),
    ("phys_is_cell", "W", ()),
    ("power_domains_property", "W", ("power_domains_is_cell", "phandle_references")),
    ("power_domains_is_cell", "W", ()),
    ("pwms_property", "W", ("pwms_is_cell", "phandle_references")),
    ("pwms_is_cell", "W", ()),
    ("resets_property", "W", ("resets_is_cell", "phandle_references")),
    ("resets_is_cell", "W", ()),
    ("sound_dai_property", "W", ("sound_dai_is_cell", "phandle_references")),
    ("sound_dai_is_cell", "W", ()),
    ("thermal_sensors_property", "W", ("thermal_sensors_is_cell", "phandle_references")),
    ("thermal_sensors_is_cell", "W", ()),
    ("deprecated_gpio_property", "", ()),
    ("gpios_property", "W", ("phandle_references",)),
    ("interrupts_property", "W", ()),
    ("interrupt_provider", "W", ()),
    ("alias_paths", "W", ()),
    ("graph_nodes", "W", ()),
    ("graph_child_address", "W", ("graph_nodes",)),
    ("graph_port", "W", ("graph_nodes",)),
    ("graph_endpoint", "W", ("graph_nodes",)),
    ("always_fail", "", ()),
]

CHECK_NAMES: list[str] = [name for name, _, _ in _TABLE]
WARNING_CHECKS: list[str] = [name for name, level, _ in _TABLE if level == "W"]

# (check name prefix, property, #cells property, cells optional): dtc's
# WARNING_PROPERTY_PHANDLE_CELLS providers; each makes NAME_property and NAME_is_cell
_PROVIDERS: list[tuple[str, str, str, bool]] = [
    ("clocks", "clocks", "#clock-cells", False),
    ("cooling_device", "cooling-device", "#cooling-cells", False),
    ("dmas", "dmas", "#dma-cells", False),
    ("hwlocks", "hwlocks", "#hwlock-cells", False),
    ("interrupts_extended", "interrupts-extended", "#interrupt-cells", False),
    ("io_channels", "io-channels", "#io-channel-cells", False),
    ("iommus", "iommus", "#iommu-cells", False),
    ("mboxes", "mboxes", "#mbox-cells", False),
    ("msi_parent", "msi-parent", "#msi-cells", True),
    ("mux_controls", "mux-controls", "#mux-control-cells", False),
    ("phys", "phys", "#phy-cells", False),
    ("power_domains", "power-domains", "#power-domain-cells", False),
    ("pwms", "pwms", "#pwm-cells", False),
    ("resets", "resets", "#reset-cells", False),
    ("sound_dai", "sound-dai", "#sound-dai-cells", False),
    ("thermal_sensors", "thermal-sensors", "#thermal-sensor-cells", False),
]

# the checks that change the tree: indexes built before them are stale afterwards
_MUTATING = frozenset(
    {"name_properties", "explicit_phandles", "phandle_references", "path_references", "omit_unused_nodes"}
)

# the checks that run before the fixups, or walk the nodes themselves: no index for them
_UNINDEXED = _MUTATING | {
    "duplicate_node_names",
    "duplicate_property_names",
    "node_name_chars",
    "node_name_format",
    "property_name_chars",
    "name_is_string",
    "duplicate_label",
    "node_name_vs_property_name",
    "always_fail",
}

# node base names some checks select on
_BASES = frozenset({"i2c", "i2c-bus", "i2c-arb", "spi", "endpoint", "chosen", "aliases"})



class CheckRunner:
    """Runs dtc's check table on one tree; holds per-compilation state (phandle counter)."""

    def __init__(
        self, dt: DeviceTree, phandle_format: int = PHANDLE_EPAPR, generate_symbols: bool = False
    ) -> None:
        self.dt = dt
        self.phandle_format = phandle_format
        self.generate_symbols = generate_symbols
        self.findings: list[Finding] = []
        self.phandles = PhandleState()
        self.checks: dict[str, Check] = {}
        for name, level, prereqs in _TABLE:
            self.checks[name] = Check(
                name, None, level == "W", level == "E", prereqs, tree_fn=_TREE_CHECKS[name]
            )
        self._labels: dict[str, Node] | None = None
        self.nodes: list[Node] = []
        # per-run state dtc keeps on its nodes
        self.bus: dict[Node, str] = {}
        self.cells_set = False  # addr_size_cells has run: node->addr_cells/size_cells are filled in
        self._cellcache: dict[Node, tuple[int, int]] = {}
        # the index of live nodes and properties (built on first use, dropped when a fixup runs)
        self._indexed = False
        self.live: list[Node] = []
        self.pdicts: list[dict[str, Property]] = []
        self.props: dict[Node, dict[str, Property]] = {}
        self.order: dict[Node, int] = {}
        self.byname: dict[str, list[Node]] = {}
        self.bybase: dict[str, list[Node]] = {}
        self.with_unit: list[Node] = []
        self._byphandle: dict[int, Node] | None = None
        self._mscan: _MarkerScan | None = None

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

    # -- -W / -E --------------------------------------------------------------------
    def configure(self, name: str, enable: bool, error: bool) -> bool:
        """dtc's parse_checks_option for -W (error False) or -E (error True): False if the name is unknown.

        ``name`` comes without a leading ``no-``; dtc also takes ``no_NAME``.
        Raising a level raises it on the prerequisites, lowering it lowers it
        on every check that depends on this one, as dtc does.
        """
        if enable and name.startswith("no_"):
            name, enable = name[3:], False
        c = self.checks.get(name)
        if c is None:
            return False
        if enable:
            self._enable(c, not error, error)
        else:
            self._disable(c, not error, error)
        return True

    def _enable(self, c: Check, warn: bool, error: bool) -> None:
        if (warn and not c.warn) or (error and not c.error):
            for pname in c.prereqs:
                self._enable(self.checks[pname], warn, error)
        c.warn = c.warn or warn
        c.error = c.error or error

    def _disable(self, c: Check, warn: bool, error: bool) -> None:
        if (warn and c.warn) or (error and c.error):
            for cc in self.checks.values():
                if c.name in cc.prereqs:
                    self._disable(cc, warn, error)
        c.warn = c.warn and not warn
        c.error = c.error and not error

    # -- running --------------------------------------------------------------
    def fail(
        self, c: Check, node: Node, message: str, prop: Property | None = None, at: SourcePos | None = None
    ) -> None:
        """dtc's FAIL (``prop`` None) or FAIL_PROP; ``at`` only moves the position shown."""
        c.status = "failed"
        stripped = message.rstrip("\n")
        if c.warn or c.error:
            # a node deleted in its own block has no path in dtc (fill_fullpaths skips it)
            path = "(null)" if node.deleted else None
            self.findings.append(Finding(c.name, c.error, path, prop, stripped, node, at, message[len(stripped):]))

    def run_all(self) -> bool:
        """True if an error-level check failed (dtc's process_checks)."""
        root = self.dt.root
        # dtc's walks start at the root without asking whether it is deleted
        # (`/delete-node/ &{/}`): its checks still see it and what a /plugin/
        # hung under it since
        root_deleted = root.deleted
        root.deleted = False
        try:
            root.freeze_paths()
            # checks delete nodes (omit_unused_nodes) but never add or move any, so
            # one pre-order list serves every check; deleted ones are skipped
            self.nodes = list(root.walk())
            error = False
            for c in self.checks.values():
                if c.warn or c.error:
                    error = error or self._run(c)
            return error
        finally:
            root.deleted = root_deleted

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
                if c.tree_fn is not None:
                    if not self._indexed and c.name not in _UNINDEXED:
                        self._build_index()
                    c.tree_fn(self, c)
                elif c.fn is not None:
                    fn = c.fn
                    for node in self.nodes:
                        if not node.deleted:
                            fn(self, c, node)
                if c.name in _MUTATING:
                    self._indexed = False
                    self._byphandle = None
                if c.status == "unchecked":
                    c.status = "passed"
            c.inprogress = False
        if c.status != "passed" and c.error:
            error = True
        return error

    # -- the index the warning checks share --------------------------------------------
    def _build_index(self) -> None:
        live: list[Node] = []
        pdicts: list[dict[str, Property]] = []
        props: dict[Node, dict[str, Property]] = {}
        order: dict[Node, int] = {}
        byname: dict[str, list[Node]] = {}
        bybase: dict[str, list[Node]] = {}
        with_unit: list[Node] = []
        bases = _BASES
        for node in self.nodes:
            if node.deleted:
                continue
            order[node] = len(live)
            live.append(node)
            d: dict[str, Property] = {}
            for p in node.props:
                if p.deleted:
                    continue
                n = p.name
                if n not in d:
                    d[n] = p
                    lst = byname.get(n)
                    if lst is None:
                        byname[n] = [node]
                    else:
                        lst.append(node)
            pdicts.append(d)
            props[node] = d
            name = node.name
            at = name.find("@")
            if at >= 0:
                with_unit.append(node)
                name = name[:at]
            if name in bases:
                bybase.setdefault(name, []).append(node)
        self.live, self.pdicts, self.props, self.order = live, pdicts, props, order
        self.byname, self.bybase, self.with_unit = byname, bybase, with_unit
        self._indexed = True

    def marker_scan(self) -> _MarkerScan:
        if self._mscan is None:
            self._mscan = _MarkerScan(self.nodes)
        return self._mscan

    def sorted_nodes(self, nodes: Iterable[Node]) -> list[Node]:
        """Distinct nodes in dtc's pre-order."""
        order = self.order
        return sorted(set(nodes), key=order.__getitem__)

    def by_phandle(self, phandle: int) -> Node | None:
        """dtc's get_node_by_phandle: the first live node in pre-order with that phandle."""
        index = self._byphandle
        if index is None:
            index = {}
            for node in self.live:
                ph = node.phandle
                if ph and ph not in index:
                    index[ph] = node
            self._byphandle = index
        return index.get(phandle)

    def raw_cells(self, node: Node) -> tuple[int, int]:
        """dtc's node->addr_cells, node->size_cells: 0 before addr_size_cells runs, -1 when absent."""
        if not self.cells_set:
            return (0, 0)
        v = self._cellcache.get(node)
        if v is None:
            d = self.props[node]
            a = d.get("#address-cells")
            s = d.get("#size-cells")
            v = (
                -1 if a is None else _s32(propval_cell(node, a)),
                -1 if s is None else _s32(propval_cell(node, s)),
            )
            self._cellcache[node] = v
        return v

    def node_cells(self, node: Node) -> tuple[int, int]:
        """dtc's node_addr_cells(), node_size_cells(): the defaults 2 and 1 for -1."""
        a, s = self.raw_cells(node)
        return (2 if a == -1 else a, 1 if s == -1 else s)

    # -- phandles -------------------------------------------------------------------
    def node_phandle(self, node: Node) -> int:
        """dtc's get_node_phandle: allocate in dtc's order, add phandle properties."""
        if node.phandle not in (0, 0xFFFFFFFF):
            return node.phandle
        st = self.phandles
        while st.in_use(st.next):
            st.next += 1
        value = st.next
        node.phandle = value
        st.hold(value, node)
        data = value.to_bytes(4, "big")
        if node.get_property("linux,phandle") is None and self.phandle_format & PHANDLE_LEGACY:
            node.props.append(Property("linux,phandle", data, [Marker(0, MarkerType.TYPE_UINT32)]))
        if node.get_property("phandle") is None and self.phandle_format & PHANDLE_EPAPR:
            node.props.append(Property("phandle", data, [Marker(0, MarkerType.TYPE_UINT32)]))
        return value



def _tree_checks() -> dict[str, TreeFn]:
    fns: dict[str, TreeFn] = {
        "duplicate_node_names": _check_duplicate_node_names,
        "duplicate_property_names": _check_duplicate_property_names,
        "node_name_chars": _check_node_name_chars,
        "node_name_format": _check_node_name_format,
        "property_name_chars": _check_property_name_chars,
        "name_is_string": _check_name_is_string,
        "name_properties": _check_name_properties,
        "duplicate_label": _check_duplicate_labels,
        "explicit_phandles": _check_explicit_phandles,
        "phandle_references": _fixup_phandle_references,
        "path_references": _fixup_path_references,
        "omit_unused_nodes": _fixup_omit_unused_nodes,
        "always_fail": _check_always_fail,
        "node_name_vs_property_name": _check_node_name_vs_property_name,
        "address_cells_is_cell": _mk_is_cell("#address-cells"),
        "size_cells_is_cell": _mk_is_cell("#size-cells"),
        "device_type_is_string": _mk_is_string("device_type"),
        "model_is_string": _mk_is_string("model"),
        "status_is_string": _mk_is_string("status"),
        "label_is_string": _mk_is_string("label"),
        "compatible_is_string_list": _check_compatible_is_string_list,
        "names_is_string_list": _check_names_is_string_list,
        "property_name_chars_strict": _check_property_name_chars_strict,
        "node_name_chars_strict": _check_node_name_chars_strict,
        "addr_size_cells": _check_addr_size_cells,
        "reg_format": _check_reg_format,
        "ranges_format": _mk_ranges_format("ranges"),
        "dma_ranges_format": _mk_ranges_format("dma-ranges"),
        "unit_address_vs_reg": _check_unit_address_vs_reg,
        "unit_address_format": _check_unit_address_format,
        "pci_bridge": _check_pci_bridge,
        "pci_device_reg": _check_pci_device_reg,
        "pci_device_bus_num": _check_pci_device_bus_num,
        "simple_bus_bridge": _check_simple_bus_bridge,
        "simple_bus_reg": _check_simple_bus_reg,
        "i2c_bus_bridge": _check_i2c_bus_bridge,
        "i2c_bus_reg": _check_i2c_bus_reg,
        "spi_bus_bridge": _check_spi_bus_bridge,
        "spi_bus_reg": _check_spi_bus_reg,
        "avoid_default_addr_size": _check_avoid_default_addr_size,
        "avoid_unnecessary_addr_size": _check_avoid_unnecessary_addr_size,
        "unique_unit_address": _mk_unique_unit_address(False),
        "unique_unit_address_if_enabled": _mk_unique_unit_address(True),
        "obsolete_chosen_interrupt_controller": _check_obsolete_chosen_interrupt_controller,
        "chosen_node_is_root": _check_chosen_node_is_root,
        "chosen_node_bootargs": _check_chosen_node_bootargs,
        "chosen_node_stdout_path": _check_chosen_node_stdout_path,
        "deprecated_gpio_property": _check_deprecated_gpio_property,
        "gpios_property": _check_gpios_property,
        "interrupts_property": _check_interrupts_property,
        "interrupt_provider": _check_interrupt_provider,
        "alias_paths": _check_alias_paths,
        "graph_nodes": _check_graph_nodes,
        "graph_child_address": _check_graph_child_address,
        "graph_port": _check_graph_port,
        "graph_endpoint": _check_graph_endpoint,
    }
    for prefix, propname, cell_name, optional in _PROVIDERS:
        fns[f"{prefix}_property"] = _mk_provider(propname, cell_name, optional)
        fns[f"{prefix}_is_cell"] = _mk_is_cell(cell_name)
    return fns


_TREE_CHECKS = _tree_checks()
