"""dtc's warning-level checks on buses and unit addresses: PCI, simple-bus, I2C, SPI, graphs, #cells.

The ``*_bridge`` checks and ``graph_nodes`` mark nodes with a bus kind, as dtc
does on its nodes; the ``*_reg`` checks read those marks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dtvm.dt.checks.common import (
    BUS_GRAPH_PORT,
    BUS_GRAPH_PORTS,
    BUS_I2C,
    BUS_PCI,
    BUS_SIMPLE,
    BUS_SPI,
    HEXDIGITS,
    I2C_OWN_SLAVE_ADDRESS,
    I2C_TEN_BIT_ADDRESS,
    Check,
    TreeFn,
    _basename,
    _cells,
    _cstr,
    _dtc_stops,
    _unitname,
    propval_cell,
)
from dtvm.dt.tree import Node

if TYPE_CHECKING:
    from dtvm.dt.checks.runner import CheckRunner


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
