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

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

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
from dtvm.errors import DtvmError, TreeError

__all__ = ["CHECK_NAMES", "Check", "CheckError", "CheckRunner", "Finding"]

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = "0123456789"
PROPNODECHARS = frozenset(_LOWER + _UPPER + _DIGITS + ",._+*#?-")
NODECHARS = frozenset(_LOWER + _UPPER + _DIGITS + ",._+-@")
STRICTCHARS = frozenset(_LOWER + _UPPER + _DIGITS + ",-")
ALIASCHARS = frozenset(_LOWER + _DIGITS + "-")
HEXDIGITS = frozenset("0123456789abcdefABCDEF")

# the bus types dtc's checks hang on nodes
BUS_PCI = "PCI"
BUS_SIMPLE = "simple-bus"
BUS_I2C = "i2c-bus"
BUS_SPI = "spi-bus"
BUS_GRAPH_PORT = "graph-port"
BUS_GRAPH_PORTS = "graph-ports"

REF_PHANDLE = MarkerType.REF_PHANDLE
REF_PATH = MarkerType.REF_PATH
LABEL = MarkerType.LABEL

I2C_OWN_SLAVE_ADDRESS = 1 << 30
I2C_TEN_BIT_ADDRESS = 1 << 31


class CheckError(DtvmError):
    """The tree failed error-level checks (dtc exits 2)."""

    exit_code = 2


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
    at: SourcePos | None = None  # where to point when not at the property or node itself

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


NodeFn = Callable[["CheckRunner", "Check", Node], None]
TreeFn = Callable[["CheckRunner", "Check"], None]


@dataclass
class Check:
    name: str
    fn: NodeFn | None
    warn: bool = False
    error: bool = False
    prereqs: tuple[str, ...] = ()
    status: str = "unchecked"  # unchecked, passed, failed, prereq
    inprogress: bool = False
    tree_fn: TreeFn | None = None


@dataclass
class PhandleState:
    """dtc's static next-phandle counter plus the set of phandles in use."""

    next: int = 1
    used: set[int] = field(default_factory=set)


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


def _is_one_string(value: bytes) -> bool:
    """dtc's data_is_one_string: non-empty, one NUL, at the end."""
    return len(value) > 0 and value.index(0) == len(value) - 1 if 0 in value else False


def _s32(v: int) -> int:
    """A C int from the low 32 bits of ``v``."""
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v


def _is_multiple_of(multiple: int, divisor: int) -> bool:
    """dtc's is_multiple_of (a zero divisor divides only zero)."""
    return multiple == 0 if divisor == 0 else multiple % divisor == 0


def _cstr(value: bytes) -> bytes:
    """The C string at the start of ``value`` (to the first NUL, or the end)."""
    nul = value.find(0)
    return value if nul < 0 else value[:nul]


def _unitname(node: Node) -> str:
    """dtc's get_unitname: what follows the first '@', or ''."""
    name = node.name
    at = name.find("@")
    return "" if at < 0 else name[at + 1 :]


def _basename(node: Node) -> str:
    name = node.name
    at = name.find("@")
    return name if at < 0 else name[:at]


def _cells(value: bytes, n: int) -> tuple[int, ...]:
    """The first ``n`` big-endian cells of ``value``, zero-padded where it is short."""
    need = 4 * n
    if len(value) < need:
        value = value + bytes(need - len(value))
    return struct.unpack_from(f">{n}I", value)


def _prop_is_gpio(name: str) -> bool:
    """dtc 1.6.1's prop_is_gpio."""
    if name.endswith(",nr-gpios"):
        return False
    return name.endswith("-gpios") or name == "gpios" or name.endswith("-gpio") or name == "gpio"


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
        message = message.rstrip("\n")
        if c.warn or c.error:
            self.findings.append(Finding(c.name, c.error, None, prop, message, node, at))

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


# -- where dtc 1.6.1 does not finish --------------------------------------------------


def _dtc_stops(node: Node, prop: Property | None, why: str) -> TreeError:
    """dtc 1.6.1 aborts, crashes or loops forever here: dtvm rejects, naming the node and property."""
    pos = prop.pos if prop is not None and prop.pos is not None else node.pos
    return TreeError(f"dtc 1.6.1 {why}; input rejected", node.path, None if prop is None else prop.name, pos)


def propval_cell(node: Node, prop: Property) -> int:
    """dtc's propval_cell: the one cell of ``prop``; dtc asserts it is exactly one cell."""
    v = prop.value
    if len(v) != 4:
        raise _dtc_stops(
            node, prop, f"aborts on this property (assertion in propval_cell: {len(v)} bytes, not one cell)"
        )
    return int.from_bytes(v, "big")


# -- the error-level checks and fixups -----------------------------------------------------------------------


def _check_duplicate_node_names(r: CheckRunner, c: Check) -> None:
    for node in r.nodes:
        kids = node.children
        if node.deleted or len(kids) < 2:
            continue
        seen: set[str] = set()
        for child in kids:
            if not child.deleted:
                if child.name in seen:
                    break
                seen.add(child.name)
        else:
            continue
        # dtc compares each child with every later one and flags the later: once per earlier twin
        count: dict[str, int] = {}
        for child in kids:
            if child.deleted:
                continue
            earlier = count.get(child.name, 0)
            for _ in range(earlier):
                r.fail(c, child, "Duplicate node name")
            count[child.name] = earlier + 1


def _check_duplicate_property_names(r: CheckRunner, c: Check) -> None:
    for node in r.nodes:
        if node.deleted:
            continue
        props = node.props
        if len(props) < 2 or len({p.name for p in props}) == len(props):
            continue  # no two names alike, deleted properties included
        live = [p for p in props if not p.deleted]
        if len({p.name for p in live}) == len(live):
            continue
        # dtc flags a property once for each later one of the same name
        later: dict[str, int] = {}
        for p in live:
            later[p.name] = later.get(p.name, 0) + 1
        for prop in live:
            later[prop.name] -= 1
            for _ in range(later[prop.name]):
                r.fail(c, node, "Duplicate property name", prop)


def _first_bad(name: str, allowed: frozenset[str]) -> str | None:
    for ch in name:
        if ch not in allowed:
            return ch
    return None


def _check_node_name_chars(r: CheckRunner, c: Check) -> None:
    allowed = NODECHARS
    for node in r.nodes:
        if not node.deleted and not allowed.issuperset(node.name):
            r.fail(c, node, f"Bad character '{_first_bad(node.name, allowed)}' in node name")


def _check_node_name_format(r: CheckRunner, c: Check) -> None:
    for node in r.nodes:
        if not node.deleted and node.name.count("@") > 1:
            r.fail(c, node, "multiple '@' characters in node name")


def _check_property_name_chars(r: CheckRunner, c: Check) -> None:
    allowed = PROPNODECHARS
    good: set[str] = set()  # names repeat: test each once
    for node in r.nodes:
        if node.deleted:
            continue
        for prop in node.props:
            name = prop.name
            if name in good or prop.deleted:
                continue
            if allowed.issuperset(name):
                good.add(name)
            else:
                r.fail(c, node, f"Bad character '{_first_bad(name, allowed)}' in property name", prop)


def _check_name_is_string(r: CheckRunner, c: Check) -> None:
    for node in r.nodes:
        if node.deleted:
            continue
        for prop in node.props:
            if prop.name == "name" and not prop.deleted:
                if not _is_one_string(prop.value):
                    r.fail(c, node, "property is not a string", prop)
                break


def _check_name_properties(r: CheckRunner, c: Check) -> None:
    for node in r.nodes:
        if node.deleted:
            continue
        # dtc looks at the first "name" entry, deleted or not
        props = node.props
        for idx in range(len(props)):
            if props[idx].name == "name":
                break
        else:
            continue
        prop = props[idx]
        base = _basename(node).encode("latin-1")
        if len(prop.value) != len(base) + 1 or prop.value[: len(base)] != base:
            shown = prop.value.split(b"\0", 1)[0].decode("latin-1")
            r.fail(c, node, f'"name" property is incorrect ("{shown}" instead of base node name)')
        else:
            del props[idx]


_Owner = tuple[Node, Property | None, Marker | None]


class _MarkerScan:
    """One pass over every live property's labels and markers, shared by duplicate_label and the
    reference fixups: nothing between them adds, removes or reorders labels or references."""

    __slots__ = ("labels", "path_refs", "phandle_refs")

    def __init__(self, nodes: list[Node]) -> None:
        labels: list[tuple[str, int, _Owner]] = []
        phandle_refs: list[tuple[Node, Property]] = []
        path_refs: list[tuple[Node, Property]] = []
        for node in nodes:
            if node.deleted:
                continue
            for lab in node.labels:
                if not lab.deleted:
                    labels.append((lab.name, 0, (node, None, None)))
            for prop in node.props:
                if prop.deleted:
                    continue
                for lab in prop.labels:
                    if not lab.deleted:
                        labels.append((lab.name, 1, (node, prop, None)))
                ph = pa = False
                for m in prop.markers:
                    t = m.type
                    if t == REF_PHANDLE:
                        ph = True
                    elif t == REF_PATH:
                        pa = True
                    elif t == LABEL:
                        labels.append((m.ref, 2, (node, prop, m)))  # type: ignore[arg-type]
                if ph:
                    phandle_refs.append((node, prop))
                if pa:
                    path_refs.append((node, prop))
        self.labels = labels
        self.phandle_refs = phandle_refs
        self.path_refs = path_refs


def _check_duplicate_labels(r: CheckRunner, c: Check) -> None:
    """Every label must name one thing: the first owner found, as dtc searches, is the only one."""
    occurrences = r.marker_scan().labels
    if len({name for name, _, _ in occurrences}) == len(occurrences):
        return
    owners: dict[str, _Owner] = {}
    # dtc searches node labels first, then property labels, then value labels
    for kind in (0, 1, 2):
        for name, k, owner in occurrences:
            if k == kind and name not in owners:
                owners[name] = owner
    for name, _k, owner in occurrences:
        first = owners[name]
        if any(a is not b for a, b in zip(first, owner, strict=True)):
            r.fail(c, owner[0], f"Duplicate label '{name}' on {_desclabel(*owner)} and {_desclabel(*first)}")


def _desclabel(node: Node, prop: Property | None, mark: Marker | None) -> str:
    """dtc's DESCLABEL_FMT: what a label is on."""
    return (
        ("value of " if mark is not None else "")
        + (f"'{prop.name}' in " if prop is not None else "")
        + node.path
    )


def _check_phandle_prop(r: CheckRunner, c: Check, node: Node, prop: Property | None) -> int:
    if prop is None:
        return 0
    name = prop.name
    if len(prop.value) != 4:
        r.fail(c, node, f"bad length ({len(prop.value)}) {name} property", prop)
        return 0
    for m in prop.markers:
        if m.type == REF_PHANDLE:
            if r.lookup(m.ref) is not node:  # type: ignore[arg-type]
                r.fail(c, node, f"{name} is a reference to another node")
            return 0
    value = int.from_bytes(prop.value, "big")
    if value in (0, 0xFFFFFFFF):
        r.fail(c, node, f"bad value (0x{value:x}) in {name} property", prop)
        return 0
    return value


def _check_explicit_phandles(r: CheckRunner, c: Check) -> None:
    used = r.phandles.used
    for node in r.nodes:
        if node.deleted:
            continue
        ph_prop = lx_prop = None
        for p in node.props:
            n = p.name
            if (n == "phandle" or n == "linux,phandle") and not p.deleted:
                if n == "phandle":
                    if ph_prop is None:
                        ph_prop = p
                elif lx_prop is None:
                    lx_prop = p
        if ph_prop is None and lx_prop is None:
            continue
        phandle = _check_phandle_prop(r, c, node, ph_prop)
        linux = _check_phandle_prop(r, c, node, lx_prop)
        if not phandle and not linux:
            continue
        if linux and phandle and phandle != linux:
            r.fail(c, node, "mismatching 'phandle' and 'linux,phandle' properties")
        if linux and not phandle:
            phandle = linux
        if phandle in used:
            other = r.dt.root.get_node_by_phandle(phandle)
            if other is not None and other is not node:
                r.fail(c, node, f"duplicated phandle 0x{phandle:x} (seen before at {other.path})")
                continue
        node.phandle = phandle
        used.add(phandle)


def _fixup_phandle_references(r: CheckRunner, c: Check) -> None:
    plugin = r.dt.plugin
    for node, prop in r.marker_scan().phandle_refs:
        if node.deleted or prop.deleted:
            continue
        buf = bytearray(prop.value)
        for m in prop.markers:
            if m.type != REF_PHANDLE:
                continue
            target = r.lookup(m.ref)  # type: ignore[arg-type]
            if target is None:
                if not plugin:
                    r.fail(c, node, f'Reference to non-existent node or label "{m.ref}"\n', at=prop.pos)
                else:
                    buf[m.offset : m.offset + 4] = b"\xff\xff\xff\xff"
                continue
            ph = r.node_phandle(target)
            buf[m.offset : m.offset + 4] = ph.to_bytes(4, "big")
            target.is_referenced = True
        prop.value = bytes(buf)


def _fixup_path_references(r: CheckRunner, c: Check) -> None:
    for node, prop in r.marker_scan().path_refs:
        if node.deleted or prop.deleted:
            continue
        markers = prop.markers
        for k, m in enumerate(markers):
            if m.type != REF_PATH:
                continue
            target = r.lookup(m.ref)  # type: ignore[arg-type]
            if target is None:
                r.fail(c, node, f'Reference to non-existent node or label "{m.ref}"\n', at=prop.pos)
                continue
            path = target.path.encode("latin-1") + b"\0"
            v = prop.value
            prop.value = v[: m.offset] + path + v[m.offset :]
            for later in markers[k + 1 :]:
                later.offset += len(path)
            target.is_referenced = True


def _fixup_omit_unused_nodes(r: CheckRunner, c: Check) -> None:
    symbols = r.generate_symbols
    for node in r.nodes:
        if node.deleted or (symbols and node.labels):
            continue
        if node.omit_if_unused and not node.is_referenced:
            node.delete()


# -- the warning-level checks (whole-tree functions over the index) -------------------


def _mk_is_cell(propname: str) -> TreeFn:
    """WARNING_IF_NOT_CELL."""

    def check(r: CheckRunner, c: Check) -> None:
        props = r.props
        for node in r.byname.get(propname, ()):
            prop = props[node][propname]
            if len(prop.value) != 4:
                r.fail(c, node, "property is not a single cell", prop)

    return check


def _mk_is_string(propname: str) -> TreeFn:
    """WARNING_IF_NOT_STRING."""

    def check(r: CheckRunner, c: Check) -> None:
        props = r.props
        for node in r.byname.get(propname, ()):
            prop = props[node][propname]
            if not _is_one_string(prop.value):
                r.fail(c, node, "property is not a string", prop)

    return check


def _not_string_list(value: bytes) -> bool:
    """dtc's check_is_string_list fails: some string runs to the end without its NUL."""
    return len(value) > 0 and value[-1] != 0


def _check_compatible_is_string_list(r: CheckRunner, c: Check) -> None:
    props = r.props
    for node in r.byname.get("compatible", ()):
        prop = props[node]["compatible"]
        if _not_string_list(prop.value):
            r.fail(c, node, "property is not a string list", prop)


def _check_names_is_string_list(r: CheckRunner, c: Check) -> None:
    names = [n for n in r.byname if n.endswith("-names")]
    if not names:
        return
    nodes = r.byname[names[0]] if len(names) == 1 else r.sorted_nodes(x for n in names for x in r.byname[n])
    props = r.props
    for node in nodes:
        d = props[node]
        for p in node.props:
            # every "-names" property; dtc then checks the first of that name
            if not p.deleted and p.name.endswith("-names"):
                prop = d[p.name]
                if _not_string_list(prop.value):
                    r.fail(c, node, "property is not a string list", prop)


def _check_property_name_chars_strict(r: CheckRunner, c: Check) -> None:
    for node in r.live:
        for prop in node.props:
            if prop.deleted:
                continue
            name = prop.name
            n = _strspn(name, STRICTCHARS)
            if n == len(name) or name == "device_type":
                continue
            # '#' is allowed at the start of the name, after any vendor prefix
            if name[n] == "#" and (n == 0 or name[n - 1] == ","):
                name = name[n + 1 :]
                n = _strspn(name, STRICTCHARS)
            if n < len(name):
                r.fail(c, node, f"Character '{name[n]}' not recommended in property name", prop)


def _check_node_name_chars_strict(r: CheckRunner, c: Check) -> None:
    for node in r.live:
        name = node.name
        n = _strspn(name, STRICTCHARS)
        if n < len(_basename(node)):
            r.fail(c, node, f"Character '{name[n]}' not recommended in node name")


def _strspn(s: str, allowed: frozenset[str]) -> int:
    for i, ch in enumerate(s):
        if ch not in allowed:
            return i
    return len(s)


def _check_node_name_vs_property_name(r: CheckRunner, c: Check) -> None:
    # runs before the fixups: no index, a set of property names per parent instead
    names: dict[Node, set[str]] = {}
    for node in r.nodes:
        parent = node.parent
        if node.deleted or parent is None:
            continue
        s = names.get(parent)
        if s is None:
            s = names[parent] = {p.name for p in parent.props if not p.deleted}
        if node.name in s:
            r.fail(c, node, "node name and property name conflict")


def _check_addr_size_cells(r: CheckRunner, c: Check) -> None:
    # dtc's fixup stores the values on every node; here they are read on demand
    r.cells_set = True
    r._cellcache.clear()


def _check_reg_format(r: CheckRunner, c: Check) -> None:
    props = r.props
    for node in r.byname.get("reg", ()):
        prop = props[node]["reg"]
        parent = node.parent
        if parent is None:
            r.fail(c, node, 'Root node has a "reg" property')
            continue
        n = len(prop.value)
        if n == 0:
            r.fail(c, node, "property is empty", prop)
        a, s = r.node_cells(parent)
        entrylen = _s32((a + s) * 4)
        if not _is_multiple_of(n, entrylen):
            r.fail(
                c,
                node,
                f"property has invalid length ({n} bytes) (#address-cells == {a}, #size-cells == {s})",
                prop,
            )


def _mk_ranges_format(propname: str) -> TreeFn:
    def check(r: CheckRunner, c: Check) -> None:
        props = r.props
        for node in r.byname.get(propname, ()):
            prop = props[node][propname]
            parent = node.parent
            if parent is None:
                r.fail(c, node, f'Root node has a "{propname}" property', prop)
                continue
            pa, ps = r.node_cells(parent)
            ca, cs = r.node_cells(node)
            n = len(prop.value)
            if n == 0:
                if pa != ca:
                    r.fail(
                        c,
                        node,
                        f'empty "{propname}" property but its #address-cells ({ca}) differs from {parent.path} ({pa})',
                        prop,
                    )
                if ps != cs:
                    r.fail(
                        c,
                        node,
                        f'empty "{propname}" property but its #size-cells ({cs}) differs from {parent.path} ({ps})',
                        prop,
                    )
            elif not _is_multiple_of(n, _s32((pa + ca + cs) * 4)):
                r.fail(
                    c,
                    node,
                    f'"{propname}" property has invalid length ({n} bytes) (parent #address-cells == {pa}, '
                    f"child #address-cells == {ca}, #size-cells == {cs})",
                    prop,
                )

    return check


def _check_unit_address_vs_reg(r: CheckRunner, c: Check) -> None:
    for node, d in zip(r.live, r.pdicts, strict=True):
        if node.children and any(ch.name == "__overlay__" and not ch.deleted for ch in node.children):
            continue  # overlay fragments are a special case
        has = "reg" in d
        if not has:
            ranges = d.get("ranges")
            has = ranges is not None and len(ranges.value) > 0
        name = node.name
        at = name.find("@")
        unit = 0 <= at < len(name) - 1
        if has:
            if not unit:
                r.fail(c, node, "node has a reg or ranges property, but no unit name")
        elif unit:
            r.fail(c, node, "node has a unit name, but no reg or ranges property")


def _check_unit_address_format(r: CheckRunner, c: Check) -> None:
    bus = r.bus
    for node in r.with_unit:
        parent = node.parent
        if parent is not None and parent in bus:
            continue
        unit = _unitname(node)
        if not unit:
            continue
        if unit.startswith("0x"):
            r.fail(c, node, 'unit name should not have leading "0x"')
            unit = unit[2:]
        if unit[:1] == "0" and unit[1:2] in HEXDIGITS and len(unit) > 1:
            r.fail(c, node, "unit name should not have leading 0s")


def _bus_children(r: CheckRunner, kind: str) -> list[Node]:
    """The live children of the nodes on bus ``kind``, in pre-order."""
    buses = [n for n, b in r.bus.items() if b == kind]
    kids = [ch for n in buses for ch in n.children if not ch.deleted]
    return r.sorted_nodes(kids) if len(buses) > 1 else kids


def _check_pci_bridge(r: CheckRunner, c: Check) -> None:
    props = r.props
    for node in r.byname.get("device_type", ()):
        d = props[node]
        if _cstr(d["device_type"].value) != b"pci":
            continue
        r.bus[node] = BUS_PCI
        if _basename(node) not in ("pci", "pcie"):
            r.fail(c, node, 'node name is not "pci" or "pcie"')
        if "ranges" not in d:
            r.fail(c, node, "missing ranges for PCI bridge (or not a bridge)")
        a, s = r.node_cells(node)
        if a != 3:
            r.fail(c, node, "incorrect #address-cells for PCI bridge")
        if s != 2:
            r.fail(c, node, "incorrect #size-cells for PCI bridge")
        prop = d.get("bus-range")
        if prop is None:
            continue
        if len(prop.value) != 8:
            r.fail(c, node, "value must be 2 cells", prop)
            continue
        lo, hi = _cells(prop.value, 2)
        if lo > hi:
            r.fail(c, node, "1st cell must be less than or equal to 2nd cell", prop)
        if hi > 0xFF:
            r.fail(c, node, "maximum bus number must be less than 256", prop)


def _check_pci_device_reg(r: CheckRunner, c: Check) -> None:
    props = r.props
    for node in _bus_children(r, BUS_PCI):
        prop = props[node].get("reg")
        if prop is None:
            continue
        c0, c1, c2 = _cells(prop.value, 3)
        if c1 or c2:
            r.fail(c, node, "PCI reg config space address cells 2 and 3 must be 0", prop)
        dev = (c0 & 0xF800) >> 11
        func = (c0 & 0x700) >> 8
        if c0 & 0xFF000000:
            r.fail(c, node, "PCI reg address is not configuration space", prop)
        if c0 & 0xFF:
            r.fail(c, node, "PCI reg config space address register number must be 0", prop)
        unit = _unitname(node)
        if func == 0 and unit == f"{dev:x}":
            continue
        expected = f"{dev:x},{func:x}"[:4]  # snprintf into char[5]
        if unit != expected:
            r.fail(c, node, f'PCI unit address format error, expected "{expected}"')


def _check_pci_device_bus_num(r: CheckRunner, c: Check) -> None:
    props = r.props
    for node in _bus_children(r, BUS_PCI):
        prop = props[node].get("reg")
        if prop is None:
            continue
        bus_num = (_cells(prop.value, 1)[0] & 0x00FF0000) >> 16
        assert node.parent is not None
        br = props[node.parent].get("bus-range")
        # dtc 1.6.1 takes both bounds from the first cell of bus-range
        lo = hi = 0 if br is None else _cells(br.value, 1)[0]
        if bus_num < lo or bus_num > hi:
            r.fail(c, node, f"PCI bus number {bus_num} out of range, expected ({lo} - {hi})", br)


def _check_simple_bus_bridge(r: CheckRunner, c: Check) -> None:
    props = r.props
    for node in r.byname.get("compatible", ()):
        value = props[node]["compatible"].value
        if b"simple-bus" in value and b"simple-bus" in value.split(b"\0"):
            r.bus[node] = BUS_SIMPLE


def _check_simple_bus_reg(r: CheckRunner, c: Check) -> None:
    props = r.props
    bus = r.bus
    for node in _bus_children(r, BUS_SIMPLE):
        d = props[node]
        parent = node.parent
        assert parent is not None
        cells: bytes | None = None
        prop = d.get("reg")
        if prop is not None:
            cells = prop.value or None
        else:
            ranges = d.get("ranges")
            if ranges is not None and ranges.value:
                skip = r.node_cells(node)[0]  # the child address comes first
                cells = ranges.value[4 * skip :] if skip >= 0 else ranges.value
        if cells is None:
            if parent.parent is not None and bus.get(node) != BUS_SIMPLE:
                r.fail(c, node, "missing or empty reg/ranges property")
            continue
        size = r.node_cells(parent)[0]
        if size < 0:
            raise _dtc_stops(
                parent,
                props[parent].get("#address-cells"),
                "reads far out of bounds (negative #address-cells)",
            )
        raw = cells[: 4 * size]
        if len(raw) < 4 * size:
            raw += bytes(4 * size - len(raw))
        # the address cells shifted into a uint64_t: the last two count
        expected = f"{int.from_bytes(raw, 'big') & 0xFFFFFFFFFFFFFFFF:x}"
        if _unitname(node) != expected:
            r.fail(c, node, f'simple-bus unit address format error, expected "{expected}"')


def _check_i2c_bus_bridge(r: CheckRunner, c: Check) -> None:
    bb = r.bybase
    nodes = [n for base in ("i2c-bus", "i2c-arb", "i2c") for n in bb.get(base, ())]
    for node in r.sorted_nodes(nodes) if len(nodes) > 1 else nodes:
        # for "i2c", dtc looks for an "i2c-bus" child with a test that never matches
        r.bus[node] = BUS_I2C
        if not node.children:
            continue
        a, s = r.node_cells(node)
        if a != 1:
            r.fail(c, node, "incorrect #address-cells for I2C bus")
        if s != 0:
            r.fail(c, node, "incorrect #size-cells for I2C bus")


def _check_i2c_bus_reg(r: CheckRunner, c: Check) -> None:
    props = r.props
    for node in _bus_children(r, BUS_I2C):
        prop = props[node].get("reg")
        if prop is None or not prop.value:
            r.fail(c, node, "missing or empty reg property")
            continue
        value = prop.value
        cells = _cells(value, (len(value) + 3) // 4)
        reg = cells[0] & ~I2C_OWN_SLAVE_ADDRESS
        expected = f"{reg:x}"
        if _unitname(node) != expected:
            r.fail(c, node, f'I2C bus unit address format error, expected "{expected}"')
        for v in cells:
            reg = v & ~I2C_OWN_SLAVE_ADDRESS
            # dtc 1.6.1: a valid 10-bit address still falls through to the 7-bit test
            if reg & I2C_TEN_BIT_ADDRESS and (reg & ~I2C_TEN_BIT_ADDRESS) > 0x3FF:
                r.fail(c, node, f'I2C address must be less than 10-bits, got "0x{reg:x}"', prop)
            elif reg > 0x7F:
                r.fail(
                    c,
                    node,
                    f'I2C address must be less than 7-bits, got "0x{reg:x}". Set I2C_TEN_BIT_ADDRESS for 10 bit '
                    "addresses or fix the property",
                    prop,
                )


def _check_spi_bus_bridge(r: CheckRunner, c: Check) -> None:
    props = r.props
    bus = r.bus
    named = r.bybase.get("spi", [])
    # a bus without the name needs #address-cells = <1> and #size-cells = <0>
    cands = [n for n in r.byname.get("#size-cells", ()) if "#address-cells" in props[n]]
    nodes = r.sorted_nodes([*named, *cands]) if cands else named
    for node in nodes:
        d = props[node]
        if _basename(node) == "spi":
            bus[node] = BUS_SPI
        else:
            if r.node_cells(node) != (1, 0):
                continue
            for child in node.children:
                if child.deleted:
                    continue
                if any(p.name.startswith("spi-") and not p.deleted for p in child.props):
                    bus[node] = BUS_SPI
                    break
            if bus.get(node) == BUS_SPI and "reg" in d:
                r.fail(c, node, "node name for SPI buses should be 'spi'")
        if bus.get(node) != BUS_SPI or not node.children:
            continue
        a, s = r.node_cells(node)
        if a != (0 if "spi-slave" in d else 1):
            r.fail(c, node, "incorrect #address-cells for SPI bus")
        if s != 0:
            r.fail(c, node, "incorrect #size-cells for SPI bus")


def _check_spi_bus_reg(r: CheckRunner, c: Check) -> None:
    props = r.props
    for node in _bus_children(r, BUS_SPI):
        assert node.parent is not None
        if "spi-slave" in props[node.parent]:
            continue
        prop = props[node].get("reg")
        if prop is None or not prop.value:
            r.fail(c, node, "missing or empty reg property")
            continue
        expected = f"{_cells(prop.value, 1)[0]:x}"
        if _unitname(node) != expected:
            r.fail(c, node, f'SPI bus unit address format error, expected "{expected}"')


def _check_avoid_default_addr_size(r: CheckRunner, c: Check) -> None:
    for node, d in zip(r.live, r.pdicts, strict=True):
        parent = node.parent
        if parent is None or ("reg" not in d and "ranges" not in d):
            continue
        a, s = r.raw_cells(parent)
        if a == -1:
            r.fail(c, node, "Relying on default #address-cells value")
        if s == -1:
            r.fail(c, node, "Relying on default #size-cells value")


def _check_avoid_unnecessary_addr_size(r: CheckRunner, c: Check) -> None:
    props = r.props
    for node in r.byname.get("#address-cells", ()):
        if node.parent is None or not node.children:
            continue
        a, s = r.raw_cells(node)
        if a < 0 or s < 0 or "ranges" in props[node]:
            continue
        if not any("reg" in props[ch] for ch in node.children if not ch.deleted):
            r.fail(c, node, 'unnecessary #address-cells/#size-cells without "ranges" or child "reg" property')


def _mk_unique_unit_address(disable_check: bool) -> TreeFn:
    def check(r: CheckRunner, c: Check) -> None:
        props = r.props

        def disabled(node: Node) -> bool:
            prop = props[node].get("status")
            if prop is None:
                return False
            if not prop.value:
                raise _dtc_stops(node, prop, "crashes on an empty status property (strcmp of NULL)")
            return _cstr(prop.value) == b"disabled"

        for node in r.byname.get("#address-cells", ()):
            a, s = r.raw_cells(node)
            if a < 0 or s < 0 or not node.children:
                continue
            kids = [ch for ch in node.children if not ch.deleted]
            if not disable_check:
                # each child against the earlier ones, grouped by unit address
                seen: dict[str, list[Node]] = {}
                for childa in kids:
                    addr = _unitname(childa)
                    if not addr:
                        continue
                    earlier = seen.get(addr)
                    if earlier is None:
                        seen[addr] = [childa]
                        continue
                    for childb in earlier:
                        r.fail(c, childb, f"duplicate unit-address (also used in node {childa.path})")
                    earlier.append(childa)
                continue
            # dtc's loops as they are: which status it reads decides where it crashes
            for i, childa in enumerate(kids):
                addr = _unitname(childa)
                if not addr or disabled(childa):
                    continue
                for childb in kids[:i]:
                    if not disabled(childb) and _unitname(childb) == addr:
                        r.fail(c, childb, f"duplicate unit-address (also used in node {childa.path})")

    return check


def _check_obsolete_chosen_interrupt_controller(r: CheckRunner, c: Check) -> None:
    root = r.dt.root
    chosen = root.get_child("chosen")
    if chosen is None:
        return
    prop = r.props[chosen].get("interrupt-controller")
    if prop is not None:
        r.fail(c, root, '/chosen has obsolete "interrupt-controller" property', prop)


def _chosen_nodes(r: CheckRunner) -> list[Node]:
    return [n for n in r.bybase.get("chosen", ()) if n.name == "chosen"]


def _check_chosen_node_is_root(r: CheckRunner, c: Check) -> None:
    root = r.dt.root
    for node in _chosen_nodes(r):
        if node.parent is not root:
            r.fail(c, node, "chosen node must be at root node")


def _check_chosen_node_bootargs(r: CheckRunner, c: Check) -> None:
    for node in _chosen_nodes(r):
        prop = r.props[node].get("bootargs")
        if prop is not None and not _is_one_string(prop.value):
            r.fail(c, node, "property is not a string", prop)


def _check_chosen_node_stdout_path(r: CheckRunner, c: Check) -> None:
    for node in _chosen_nodes(r):
        d = r.props[node]
        prop = d.get("stdout-path")
        if prop is None:
            prop = d.get("linux,stdout-path")
            if prop is None:
                continue
            r.fail(c, node, "Use 'stdout-path' instead", prop)
        if not _is_one_string(prop.value):
            r.fail(c, node, "property is not a string", prop)


def _phandle_args(
    r: CheckRunner, c: Check, node: Node, prop: Property, cell_name: str, optional: bool
) -> None:
    """dtc 1.6.1's check_property_phandle_args, with its C int arithmetic."""
    value = prop.value
    n = len(value)
    if n % 4:
        r.fail(c, node, f"property size ({n}) is invalid, expected multiple of 4", prop)
        return
    ncells = n // 4
    cells = struct.unpack(f">{ncells}I", value)
    plugin = r.dt.plugin
    refs: set[int] | None = None
    markers = prop.markers
    props = r.props
    cell = 0
    while 0 <= cell < ncells:
        phandle = cells[cell]
        if phandle == 0 or phandle == 0xFFFFFFFF:
            # 0 and -1 skip an optional entry
            if plugin:
                break
            cell += 1
            continue
        if markers:
            if refs is None:
                refs = {m.offset for m in markers if m.type == REF_PHANDLE}
            if cell * 4 not in refs:
                r.fail(c, node, f"cell {cell} is not a phandle reference", prop)
        provider = r.by_phandle(phandle)
        if provider is None:
            r.fail(c, node, f"Could not get phandle node for (cell {cell})", prop)
            break
        cellprop = props[provider].get(cell_name)
        if cellprop is not None:
            cellsize = _s32(propval_cell(provider, cellprop))
        elif optional:
            cellsize = 0
        else:
            r.fail(
                c,
                node,
                f"Missing property '{cell_name}' in node {provider.path} or bad phandle "
                f"(referred from {prop.name}[{cell}])",
            )
            break
        nxt = _s32(cell + cellsize + 1)
        if n < (nxt * 4) % (1 << 64):
            r.fail(c, node, f"property size ({n}) too small for cell size {cellsize}", prop)
        if nxt == cell:
            raise _dtc_stops(
                node, prop, f"loops forever on this property ({cell_name} of {provider.path} is -1)"
            )
        cell = nxt


def _mk_provider(propname: str, cell_name: str, optional: bool) -> TreeFn:
    def check(r: CheckRunner, c: Check) -> None:
        props = r.props
        for node in r.byname.get(propname, ()):
            _phandle_args(r, c, node, props[node][propname], cell_name, optional)

    return check


def _gpio_nodes(r: CheckRunner) -> list[Node]:
    names = [n for n in r.byname if _prop_is_gpio(n)]
    if len(names) == 1:
        return r.byname[names[0]]
    return r.sorted_nodes(x for n in names for x in r.byname[n])


def _check_gpios_property(r: CheckRunner, c: Check) -> None:
    props = r.props
    for node in _gpio_nodes(r):
        if "gpio-hog" in props[node]:
            continue
        for prop in node.props:
            if not prop.deleted and _prop_is_gpio(prop.name):
                _phandle_args(r, c, node, prop, "#gpio-cells", False)


def _check_deprecated_gpio_property(r: CheckRunner, c: Check) -> None:
    for node in _gpio_nodes(r):
        for prop in node.props:
            if not prop.deleted and _prop_is_gpio(prop.name) and prop.name.endswith("gpio"):
                r.fail(c, node, "'[*-]gpio' is deprecated, use '[*-]gpios' instead", prop)


def _is_interrupt_provider(d: dict[str, Property]) -> bool:
    return "interrupt-controller" in d or "interrupt-map" in d


def _check_interrupts_property(r: CheckRunner, c: Check) -> None:
    props = r.props
    plugin = r.dt.plugin
    for node in r.byname.get("interrupts", ()):
        irq_prop = props[node]["interrupts"]
        n = len(irq_prop.value)
        if n % 4:
            r.fail(c, node, f"size ({n}) is invalid, expected multiple of 4", irq_prop)
        irq_node: Node | None = None
        parent: Node | None = node
        prop: Property | None = None
        gave_up = False
        while parent is not None and prop is None:
            d = props[parent]
            if parent is not node and _is_interrupt_provider(d):
                irq_node = parent
                break
            prop = d.get("interrupt-parent")
            if prop is not None:
                phandle = propval_cell(parent, prop)
                if phandle == 0 or phandle == 0xFFFFFFFF:
                    if plugin:
                        gave_up = True  # an overlay's external reference
                        break
                    r.fail(c, parent, "Invalid phandle", prop)
                    continue
                irq_node = r.by_phandle(phandle)
                if irq_node is None:
                    r.fail(c, parent, "Bad phandle", prop)
                    gave_up = True
                    break
                if not _is_interrupt_provider(props[irq_node]):
                    r.fail(c, irq_node, "Missing interrupt-controller or interrupt-map property")
                break
            parent = parent.parent
        if gave_up:
            continue
        if irq_node is None:
            r.fail(c, node, "Missing interrupt-parent")
            continue
        cellprop = props[irq_node].get("#interrupt-cells")
        if cellprop is None:
            continue  # interrupt_provider reports it
        divisor = _s32(propval_cell(irq_node, cellprop) * 4)
        if not _is_multiple_of(n, divisor):
            r.fail(c, node, f"size is ({n}), expected multiple of {divisor}", cellprop)


def _check_interrupt_provider(r: CheckRunner, c: Check) -> None:
    b = r.byname
    nodes = [*b.get("interrupt-controller", ()), *b.get("interrupt-map", ())]
    props = r.props
    for node in r.sorted_nodes(nodes):
        d = props[node]
        if "#interrupt-cells" not in d:
            r.fail(c, node, "Missing #interrupt-cells in interrupt provider")
        if "#address-cells" not in d:
            r.fail(c, node, "Missing #address-cells in interrupt provider")


def _get_node_by_path(tree: Node, path: str) -> Node | None:
    """dtc 1.6.1's get_node_by_path: "" is the node itself, "/" alone matches nothing."""
    while True:
        if not path:
            return None if tree.deleted else tree
        path = path.lstrip("/")
        slash = path.find("/")
        head = path if slash < 0 else path[:slash]
        for child in tree.children:
            if not child.deleted and child.name == head:
                break
        else:
            return None
        if slash < 0:
            return child
        tree, path = child, path[slash + 1 :]


def _check_alias_paths(r: CheckRunner, c: Check) -> None:
    root = r.dt.root
    for node in r.bybase.get("aliases", ()):
        if node.name != "aliases":
            continue
        for prop in node.props:
            if prop.deleted or prop.name in ("phandle", "linux,phandle"):
                continue
            if not prop.value:
                r.fail(c, node, "aliases property is not a valid node ((null))", prop)
                continue
            path = _cstr(prop.value).decode("latin-1")
            if _get_node_by_path(root, path) is None:
                r.fail(c, node, f"aliases property is not a valid node ({path})", prop)
                continue
            if _strspn(prop.name, ALIASCHARS) != len(prop.name):
                r.fail(c, node, "aliases property name must include only lowercase and '-'")


def _check_graph_nodes(r: CheckRunner, c: Check) -> None:
    eps = [*r.bybase.get("endpoint", ()), *r.byname.get("remote-endpoint", ())]
    if not eps:
        return
    parents = [ep.parent for ep in eps if ep.parent is not None]
    props = r.props
    bus = r.bus
    for node in r.sorted_nodes(parents):
        up = node.parent
        if up is None:
            child = next(ch for ch in eps if ch.parent is node)
            raise _dtc_stops(child, None, "crashes on an endpoint node directly under the root (NULL parent)")
        bus[node] = BUS_GRAPH_PORT
        # the parent of 'port' nodes is either 'ports' or a device
        if up not in bus and (up.name == "ports" or "reg" in props[node]):
            bus[up] = BUS_GRAPH_PORTS


def _graph_buses(r: CheckRunner, *kinds: str) -> list[Node]:
    return r.sorted_nodes(n for n, b in r.bus.items() if b in kinds)


def _check_graph_child_address(r: CheckRunner, c: Check) -> None:
    props = r.props
    for node in _graph_buses(r, BUS_GRAPH_PORTS, BUS_GRAPH_PORT):
        cnt = 0
        for child in node.children:
            if child.deleted:
                continue
            prop = props[child].get("reg")
            # no complaint if any child has a non-zero unit address
            if prop is not None and propval_cell(child, prop) != 0:
                break
            cnt += 1
        else:
            if cnt == 1 and r.raw_cells(node)[0] != -1:
                r.fail(
                    c,
                    node,
                    f"graph node has single child node '{node.children[0].name}', "
                    "#address-cells/#size-cells are not necessary",
                )


def _graph_reg(r: CheckRunner, c: Check, node: Node) -> None:
    d = r.props[node]
    prop = d.get("reg")
    if prop is None:
        return
    if len(prop.value) != 4:
        r.fail(c, node, "graph node malformed 'reg' property")
        return
    expected = f"{int.from_bytes(prop.value, 'big'):x}"
    if _unitname(node) != expected:
        r.fail(c, node, f'graph node unit address error, expected "{expected}"')
    assert node.parent is not None
    a, s = r.raw_cells(node.parent)
    if a != 1:
        r.fail(c, node, f"graph node '#address-cells' is {a}, must be 1", d.get("#address-cells"))
    if s != 0:
        r.fail(c, node, f"graph node '#size-cells' is {s}, must be 0", d.get("#size-cells"))


def _check_graph_port(r: CheckRunner, c: Check) -> None:
    for node in _graph_buses(r, BUS_GRAPH_PORT):
        if _basename(node) != "port":
            r.fail(c, node, "graph port node name should be 'port'")
        _graph_reg(r, c, node)


def _remote_endpoint(r: CheckRunner, c: Check, endpoint: Node) -> Node | None:
    prop = r.props[endpoint].get("remote-endpoint")
    if prop is None:
        return None
    phandle = propval_cell(endpoint, prop)
    if phandle == 0 or phandle == 0xFFFFFFFF:
        return None  # an overlay's external reference
    node = r.by_phandle(phandle)
    if node is None:
        r.fail(c, endpoint, "graph phandle is not valid", prop)
    return node


def _check_graph_endpoint(r: CheckRunner, c: Check) -> None:
    for node in _bus_children(r, BUS_GRAPH_PORT):
        if _basename(node) != "endpoint":
            r.fail(c, node, "graph endpoint node name should be 'endpoint'")
        _graph_reg(r, c, node)
        remote = _remote_endpoint(r, c, node)
        if remote is None:
            continue
        if _remote_endpoint(r, c, remote) is not node:
            r.fail(c, node, f"graph connection to node '{remote.path}' is not bidirectional")


def _check_always_fail(r: CheckRunner, c: Check) -> None:
    for node in r.nodes:
        if not node.deleted:
            r.fail(c, node, "always_fail check")


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
