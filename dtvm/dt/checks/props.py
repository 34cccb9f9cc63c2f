"""dtc's warning-level checks on property values: types, cells, ranges, /chosen, phandle lists, interrupts, aliases.

Each is one function over the whole tree, using the index the runner builds
once after the fixups, in dtc's pre-order so findings come out in dtc's order.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from dtvm.dt.checks.common import (
    ALIASCHARS,
    REF_PHANDLE,
    STRICTCHARS,
    Check,
    TreeFn,
    _basename,
    _cstr,
    _dtc_stops,
    _is_multiple_of,
    _is_one_string,
    _prop_is_gpio,
    _s32,
    propval_cell,
)
from dtvm.dt.tree import Node, Property

if TYPE_CHECKING:
    from dtvm.dt.checks.runner import CheckRunner


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
