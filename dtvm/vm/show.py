"""A readable view of a VM description: the hardware as a tree for a terminal, or a Graphviz graph.

Why this exists: a guest DTB is precise but hard to read.  ``dtc -O dts`` spells a PCI address
as a phys.hi word, an ISA port as two cells, a MAC as a byte list, and the back-ends that feed
the devices live in a second file (the back-end overlay).  ``render_text`` answers "what hardware
does this VM have, where is it, and what backs it" on one screen:

- a machine line from the ``/qemu`` node (machine type, arch, CPUs, memory, machine options);
- the device hierarchy, one line per node with a ``compatible``, its address decoded for the bus
  it sits on (PCI ``03.0``, ISA ``io 0x3f8``, IDE ``bus 2 unit 0``, SCSI ``id 3 lun 0``, USB
  ``port 2.1``, virtio-serial ``nr 1``, I2C ``addr 0x50``, MMIO ``0x9000000``), its driver, the
  guest-visible facts (PCI ids, MAC, hot-plugged, ``qemu,*`` properties) and its back-end
  references from the overlay (``-> drive d0 (file=..., format=...)``);
- the back-ends, with the devices that use them.

``render_dot`` draws the same hierarchy as a Graphviz ``digraph``.

The bus kind is inferred from the parent's ``#address-cells``/``#size-cells`` (the conventions
``dtvm.vm.translate`` writes, which follow the PCI, ISA and USB bindings) plus the parent's and the
node's compatibles where cells alone are ambiguous (ISA, IDE and USB all look alike otherwise).
A merged description (the guest DTB after ``fdtoverlay`` applied the back-end overlay) shows the
same: the back-ends are then a ``/qemu-backends`` node and the references are properties of the
device nodes themselves.

The input is untrusted.  Every string from the tree is escaped before it reaches a terminal
(control characters, ANSI escapes, bidi overrides) or a DOT label (quotes, backslashes,
newlines) and cut to a bounded length; the work is iterative (no recursion on tree depth) and the
output bounded: at most ``MAX_DEPTH`` levels, ``MAX_SIBLINGS`` entries per bus and ``MAX_LINES``
device lines, each limit reported with a "... N more" line.  Both outputs depend only on the
trees (and, for the text, on the output encoding and colour flag), so they are deterministic.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dtvm.dt.tree import DeviceTree, Node
from dtvm.vm.show_read import (
    Address,
    Ref,
    _Bus,
    _cells,
    _compatibles,
    _decode_address,
    _host_side,
    _HostSide,
    _string,
    _strings,
    clean,
    value_text,
)

__all__ = ["MAX_DEPTH", "MAX_LINES", "MAX_SIBLINGS", "render_dot", "render_text"]

#: Device lines in one view (the rest is counted in a "... N more" line).
MAX_LINES = 2000
#: Levels of the device hierarchy shown below the root.
MAX_DEPTH = 32
#: Entries shown per bus (a bus with 100k children must not hide everything after it).
MAX_SIBLINGS = 256
#: ``qemu,*`` properties shown per device before "+N more".
MAX_FACTS = 3
#: Machine options shown before "+N more".
MAX_MACHINE_OPTIONS = 16
#: Devices using one back-end listed in the back-ends section.
MAX_USERS = 3
#: Consecutive identical leaf devices (empty virtio-mmio slots, SPD EEPROMs) shown as one line.
COLLAPSE_MIN = 4

#: Root children summarised elsewhere (machine line, back-ends section) or not hardware.
_SUMMARISED = frozenset(
    {"cpus", "memory", "qemu", "qemu-backends", "__symbols__", "__fixups__", "__local_fixups__"}
)

_BOX = {"tee": "├── ", "last": "└── ", "pipe": "│   ", "gap": "    "}
_ASCII = {"tee": "|-- ", "last": "`-- ", "pipe": "|   ", "gap": "    "}


# ---------------------------------------------------------------------------
# reading values safely


def _uint(node: Node, name: str) -> int | None:
    """A one- or two-cell number (``memory-size`` is 64 bits, counts are 32)."""
    prop = node.get_property(name)
    if prop is None or len(prop.value) not in (4, 8):
        return None
    return int.from_bytes(prop.value, "big")


def _driver(compats: list[str]) -> str:
    """``qemu,<driver>`` names the qdev driver; any other first compatible is shown as is."""
    first = compats[0]
    return clean(first[5:] if first.startswith("qemu,") and len(first) > 5 else first)


def _size(n: int) -> str:
    for unit, name in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n and n % unit == 0:
            return f"{n // unit} {name}"
    return f"{n} B"


def _path(node: Node, limit: int = 64) -> str:
    """The node's path, walking up at most ``limit`` levels (a 100k-deep chain stays cheap)."""
    parts: list[str] = []
    cur: Node | None = node
    while cur is not None and cur.parent is not None and len(parts) < limit:
        parts.append(cur.name)
        cur = cur.parent
    text = "/" + "/".join(reversed(parts))
    if cur is not None and cur.parent is not None:
        text = "..." + text
    return clean(text, 200)


def _is_machine(node: Node) -> bool:
    compats = _compatibles(node) or []
    return "qemu,machine" in compats


# ---------------------------------------------------------------------------
# addresses


# ---------------------------------------------------------------------------
# the host side: back-ends and the overlay's references


# ---------------------------------------------------------------------------
# the device hierarchy, as a list of items both views draw


@dataclass
class _Item:
    """One line of the view: a device (or a run of identical ones), or a "... N more" marker."""

    depth: int
    parent: int  # index of the parent item, -1 for the root
    last: tuple[bool, ...] = ()  # for each level down to this one: is it the last sibling
    address: Address = field(default_factory=Address)
    driver: str = ""
    facts: list[str] = field(default_factory=list)
    refs: list[Ref] = field(default_factory=list)
    hotplugged: bool = False
    count: int = 1
    more: str = ""
    hidden: int = 0  # devices a "more" marker stands for
    pad: int = 0
    path: str = ""  # the node's path (what dtvm backend --drive /PATH=... and the overlay name)


@dataclass
class _Entry:
    """A node waiting on the walk's stack, with everything its line needs from the parent."""

    node: Node
    depth: int
    last: tuple[bool, ...]
    parent: int
    address: Address
    run: int
    pad: int


@dataclass
class _View:
    machine: list[str]
    items: list[_Item]
    host: _HostSide
    other: list[str]


def _device_counts(root: Node) -> dict[int, int]:
    """For every node to show, the number of device nodes (with a compatible) in its subtree.

    Nodes summarised elsewhere are left out (count 0, so they are not drawn); one iterative
    pass, children before parents (reversed pre-order).
    """
    order: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        for child in node.live_children():
            if node is root and (child.basename in _SUMMARISED or child.name in _SUMMARISED):
                continue
            stack.append(child)
    counts: dict[int, int] = {}
    for node in reversed(order):
        total = 0 if node is root or node.get_property("compatible") is None else 1
        for child in node.live_children():
            total += counts.get(id(child), 0)
        counts[id(node)] = total
    return counts


def _facts(node: Node, host: _HostSide) -> tuple[list[str], bool]:
    """Guest-visible facts worth a glance: PCI ids, MAC, status, ``qemu,*`` properties."""
    facts: list[str] = []
    vendor, device = _uint(node, "vendor-id"), _uint(node, "device-id")
    if vendor is not None and device is not None and vendor <= 0xFFFF and device <= 0xFFFF:
        facts.append(f"[{vendor:04x}:{device:04x}]")
    for name in ("local-mac-address", "mac-address"):
        prop = node.get_property(name)
        if prop is not None and len(prop.value) == 6:
            facts.append("mac " + ":".join(f"{b:02x}" for b in prop.value))
            break
    status = _string(node, "status")
    if status is not None and status not in ("okay", "ok"):
        facts.append(f"status={clean(status)}")
    # the hot-plug history is a host-side fact: the overlay's (or a merged tree's) qemu,hotplugged
    hotplugged = node.get_property("qemu,hotplugged") is not None or any(
        name == "qemu,hotplugged" for name, _ in host.props.get(id(node), ())
    )
    qemu: list[str] = []
    for prop in node.live_props():
        if not prop.name.startswith("qemu,") or prop.name in ("qemu,hotplugged", "qemu,driver"):
            continue
        short = prop.name[5:]
        if host.merged and (short == "id" or short in host.kinds):
            continue
        qemu.append(f"{clean(short, 40)}={value_text(prop)}" if prop.value else clean(short, 40))
    facts.extend(qemu[:MAX_FACTS])
    if len(qemu) > MAX_FACTS:
        facts.append(f"+{len(qemu) - MAX_FACTS} more")
    return facts, hotplugged


def _range_text(first: Address, last: Address) -> str:
    """``addr 0x50..0x57`` for a collapsed run (the kind word once)."""
    a, b = first.text, last.text
    head_a, _, tail_a = a.rpartition(" ")
    head_b, _, tail_b = b.rpartition(" ")
    if head_a == head_b:
        return f"{head_a} {tail_a}..{tail_b}" if head_a else f"{tail_a}..{tail_b}"
    return f"{a}..{b}"


def _build(
    guest: DeviceTree, backend: DeviceTree | None, collapse: bool, max_lines: int, max_depth: int,
    option_defaults: Mapping[str, str] | None = None,
) -> _View:
    host = _host_side(guest, backend)
    root = guest.root
    counts = _device_counts(root)
    _collect_users(root, host, counts)
    root_compats = _compatibles(root) or []
    root_item = _Item(0, -1, (), Address("/"), _driver(root_compats) if root_compats else "")
    model = _string(root, "model")
    if model is not None:
        root_item.facts.append(f'model "{clean(model)}"')
    items = [root_item]
    total = counts.get(id(root), 0)
    announced = 0  # devices counted by the "... N more" markers drawn so far
    shown = 0
    stack: list[_Entry | _Item] = []

    def push_children(node: Node, index: int, depth: int, flags: tuple[bool, ...], addr: Address) -> None:
        kids = [c for c in node.live_children() if counts.get(id(c), 0) > 0]
        if not kids:
            return
        if depth >= max_depth:
            n = counts[id(node)] - (0 if node.get_property("compatible") is None else 1)
            more = f"... {n} more device(s) below (depth limit {max_depth})"
            stack.append(_Item(depth + 1, index, (*flags, True), more=more, hidden=n))
            return
        bus = _Bus.of(node, addr)
        decoded = [(_decode_address(c, bus), i, c) for i, c in enumerate(kids)]
        decoded.sort(key=lambda t: (0, t[0].key, t[1]) if t[0].key else (1, (), t[1]))
        shown_groups, rest = _group(decoded, counts, host, collapse, MAX_SIBLINGS)
        hidden = sum(counts[id(c)] for _, _, c in rest)
        runs = [
            g[0][0] if len(g) == 1 else Address(_range_text(g[0][0], g[-1][0]), g[0][0].key, g[0][0].kind)
            for g in shown_groups
        ]
        # the address column is as wide as the widest single address (runs stick out); a bus
        # whose devices have no addresses at all gets no column
        pad = min(
            max([len(a.text) for a, g in zip(runs, shown_groups, strict=True) if len(g) == 1] or [0]), 16
        )
        entries: list[_Entry | _Item] = []
        for gi, (group, gaddr) in enumerate(zip(shown_groups, runs, strict=True)):
            last = gi == len(shown_groups) - 1 and not hidden
            entries.append(_Entry(group[0][2], depth + 1, (*flags, last), index, gaddr, len(group), pad))
        if hidden:
            more = f"... {hidden} more device(s) on this bus"
            entries.append(_Item(depth + 1, index, (*flags, True), more=more, hidden=hidden))
        stack.extend(reversed(entries))

    push_children(root, 0, 0, (), Address())
    while stack:
        entry = stack.pop()
        if isinstance(entry, _Item):
            items.append(entry)
            announced += entry.hidden
            continue
        if len(items) - 1 >= max_lines:
            rest = total - shown - announced
            if rest > 0:
                items.append(
                    _Item(
                        1, 0, (True,), more=f"... {rest} more device(s) not shown (limit {max_lines} lines)"
                    )
                )
            break
        node = entry.node
        compats = _compatibles(node)
        facts, hot = _facts(node, host) if compats is not None else ([], False)
        driver = _driver(compats) if compats is not None else clean(node.name)
        qdev = node.get_property("qemu,driver")
        if qdev is not None:
            names = _strings(qdev.value)
            if names and clean(names[0]) != driver:
                driver = f"{driver} ({clean(names[0])})"  # QEMU's own node: its qdev driver too
        item = _Item(
            entry.depth,
            entry.parent,
            entry.last,
            entry.address,
            driver,
            facts,
            host.refs(node),
            hot,
            entry.run,
            pad=entry.pad,
            path=clean(node.path, 200),
        )
        items.append(item)
        if entry.run > 1:
            shown += entry.run
        else:
            shown += 0 if compats is None else 1
            push_children(node, len(items) - 1, entry.depth, entry.last, entry.address)
    other = [
        clean(c.name, 40)
        for c in root.live_children()
        if counts.get(id(c), 0) == 0 and c.basename not in _SUMMARISED and c.name not in _SUMMARISED
    ]
    if any(c.get_child("__overlay__") is not None for c in root.nodes[:64]):
        host.note("this tree has overlay fragments: is it a back-end overlay? (give it with -b)")
    return _View(_machine_lines(guest, option_defaults), items, host, other)


def _group(
    decoded: list[tuple[Address, int, Node]],
    counts: dict[int, int],
    host: _HostSide,
    collapse: bool,
    limit: int,
) -> tuple[list[list[tuple[Address, int, Node]]], list[tuple[Address, int, Node]]]:
    """The first ``limit`` entries of a bus, and the children left over.

    With ``collapse``, a run of at least ``COLLAPSE_MIN`` identical leaf devices (same kind of
    address, compatible and facts, no host references) is one entry.  Work stops after ``limit``
    entries, so a bus with 100k children costs its sort, not 100k fact lists.
    """
    out: list[list[tuple[Address, int, Node]]] = []
    run: list[tuple[Address, int, Node]] = []
    run_sig: tuple[object, ...] | None = None

    def flush() -> None:
        if len(run) >= COLLAPSE_MIN:
            out.append(list(run))
        else:
            out.extend([x] for x in run)
        run.clear()

    pos = 0
    while pos < len(decoded) and len(out) + len(run) < limit + COLLAPSE_MIN:
        d = decoded[pos]
        pos += 1
        sig = _signature(d, counts, host) if collapse else None
        if sig is None or sig != run_sig:
            flush()
        run.append(d)
        run_sig = sig
        if sig is None:
            flush()
    flush()
    return out[:limit], [d for g in out[limit:] for d in g] + decoded[pos:]


def _signature(
    d: tuple[Address, int, Node], counts: dict[int, int], host: _HostSide
) -> tuple[object, ...] | None:
    """What must be equal for leaf devices to share one line; None for a device that never does."""
    addr, _, node = d
    compats = _compatibles(node)
    if counts.get(id(node), 0) != 1 or compats is None or not addr.key or addr.kind in ("usb", "unit"):
        return None
    facts, hot = _facts(node, host)
    if hot or host.refs(node):
        return None
    return (addr.kind, tuple(compats), tuple(facts), len(addr.key))


def _collect_users(root: Node, host: _HostSide, counts: dict[int, int]) -> None:
    """Which devices use each back-end (for the back-ends section), bounded per back-end."""
    if not host.backends:
        return
    targets: Iterator[Node]
    if host.merged:
        targets = (n for n in root.walk() if n.props)
    else:
        index = set(host.props)
        targets = (n for n in root.walk() if id(n) in index)
    for node in targets:
        for ref in host.refs(node):
            if ref.backend is None:
                continue
            if len(ref.backend.users) < MAX_USERS:
                ref.backend.users.append(_path(node))
            else:
                ref.backend.more_users += 1


def _machine_lines(guest: DeviceTree, option_defaults: Mapping[str, str] | None = None) -> list[str]:
    """The machine line (type, arch, CPUs, memory) and the machine options line.

    The description records every machine option (it is precise); a reader wants the ones that
    make this VM differ from its machine type, so with the type's defaults at hand only those are
    listed and the rest counted."""
    root = guest.root
    qnode = root.get_child("qemu")
    if qnode is not None and not _is_machine(qnode):
        qnode = None
    cpus_node = root.get_child("cpus")
    cpu_nodes = (
        [c for c in cpus_node.live_children() if _string(c, "device_type") == "cpu" or c.basename == "cpu"]
        if cpus_node is not None
        else []
    )
    lines: list[str] = []
    if qnode is not None:
        mtype = clean(_string(qnode, "machine") or "?")
        arch = _string(qnode, "arch")
        head = f"machine {mtype}" + (f" ({clean(arch)})" if arch else "")
        cpus = _uint(qnode, "cpus")
        cpu_type = _string(qnode, "cpu-type")
        max_cpus = _uint(qnode, "max-cpus")
        memory = _uint(qnode, "memory-size")
        topo = [
            f"{_uint(qnode, k)} {k[:-1] if _uint(qnode, k) == 1 else k}"
            for k in ("sockets", "dies", "clusters", "cores", "threads")
            if _uint(qnode, k) is not None
        ]
        options = [p for p in qnode.live_props() if p.name.startswith("qemu,")]
    else:
        compats = _compatibles(root) or []
        model = _string(root, "model")
        head = (
            "machine "
            + (clean(model) if model else _driver(compats) if compats else "?")
            + " (no /qemu node)"
        )
        cpus = len(cpu_nodes) if cpus_node is not None else None
        first = _compatibles(cpu_nodes[0]) if cpu_nodes else None
        cpu_type = first[0] if first else None
        max_cpus = None
        memory = _memory_from_nodes(root)
        topo = []
        options = []
    parts = [head]
    if cpus is not None:
        text = f"{cpus} cpu{'s' if cpus != 1 else ''}"
        if cpu_type:
            text += f" {clean(cpu_type)}"
        if topo:
            text += f" ({', '.join(topo)})"
        if max_cpus is not None:
            text += f", max {max_cpus}"
        if qnode is not None and cpus_node is not None and len(cpu_nodes) not in (0, cpus):
            text += f" (/cpus lists {len(cpu_nodes)})"
        parts.append(text)
    if memory is not None:
        max_memory = _uint(qnode, "max-memory-size") if qnode is not None else None
        slots = _uint(qnode, "memory-slots") if qnode is not None else None
        parts.append(f"memory {_size(memory)}" + (f" (max {_size(max_memory)} in {slots} slots)" if max_memory else ""))
    lines.append(", ".join(parts))
    at_default = 0
    pairs = [(clean(p.name[5:], 40), value_text(p)) for p in options]
    if option_defaults is not None and qnode is not None:
        # an option the description leaves out is at its default (qemu/config.py keeps every
        # value that differs from QEMU's declared default or the type's measured one)
        kept = [(k, v) for (k, v), p in zip(pairs, options, strict=True) if option_defaults.get(p.name[5:]) != v]
        at_default = len(pairs) - len(kept)
        pairs = kept
    if pairs:
        shown = [f"{k}={v}" for k, v in pairs[:MAX_MACHINE_OPTIONS]]
        more = f" +{len(pairs) - MAX_MACHINE_OPTIONS} more" if len(pairs) > MAX_MACHINE_OPTIONS else ""
        rest = f" (and {at_default} at the type's defaults)" if at_default else ""
        lines.append("machine options: " + " ".join(shown) + more + rest)
    elif at_default:
        lines.append(f"machine options: the type's defaults ({at_default})")
    return lines


def _memory_from_nodes(root: Node) -> int | None:
    """Total size of the ``memory`` nodes' ``reg`` (for trees without a ``/qemu`` node)."""
    acells, scells = _cells(root, "#address-cells", 2), _cells(root, "#size-cells", 1)
    if not 0 < acells <= 4 or not 0 < scells <= 4:
        return None
    total = 0
    found = False
    for node in root.live_children():
        if node.basename != "memory":
            continue
        reg = node.get_property("reg")
        if reg is None:
            continue
        step = 4 * (acells + scells)
        for off in range(0, len(reg.value) - step + 1, step):
            found = True
            total += int.from_bytes(reg.value[off + 4 * acells : off + step], "big")
    return total if found else None


# ---------------------------------------------------------------------------
# text


class _Style:
    """ANSI colours when asked for (the CLI asks when stdout is a terminal and NO_COLOR is unset)."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.on and text else text

    def addr(self, text: str) -> str:
        return self._wrap("36", text)

    def driver(self, text: str) -> str:
        return self._wrap("1", text)

    def ref(self, text: str) -> str:
        return self._wrap("32", text)

    def warn(self, text: str) -> str:
        return self._wrap("31", text)

    def hot(self, text: str) -> str:
        return self._wrap("33", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


def _box_chars(encoding: str | None) -> dict[str, str]:
    if encoding is None:
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "".join(_BOX.values()).encode(encoding)
    except (UnicodeError, LookupError):
        return _ASCII
    return _BOX


def render_text(
    guest: DeviceTree,
    backend: DeviceTree | None = None,
    *,
    color: bool = False,
    encoding: str | None = None,
    collapse: bool = True,
    max_lines: int = MAX_LINES,
    max_depth: int = MAX_DEPTH,
    paths: bool = False,
    option_defaults: Mapping[str, str] | None = None,
) -> str:
    """The description as text for a terminal (ends with a newline).

    ``option_defaults`` are the machine type's option defaults (the QEMU wing's machine schema,
    which this layer may not import): given, the options line lists only what differs.

    ``paths`` ends each device line with its node path, the name ``dtvm backend``, ``check`` and
    the back-end overlay use for it.

    ``backend`` is the back-end overlay (``qemu2dtb -b``); without it the host side is whatever
    the guest tree itself carries (nothing, or everything in a merged tree).  ``encoding`` is the
    output's encoding (default: ``sys.stdout``'s): the tree is drawn with box characters when it
    can encode them, with ASCII otherwise, and any other character it cannot encode is escaped.
    ``collapse`` folds runs of identical leaf devices (the 32 empty virtio-mmio slots of ``virt``)
    into one line.
    """
    view = _build(guest, backend, collapse, max(1, max_lines), max(1, max_depth), option_defaults)
    box = _box_chars(encoding)
    st = _Style(color)
    out: list[str] = list(view.machine)
    for item in view.items:
        prefix = "".join(box["gap"] if last else box["pipe"] for last in item.last[:-1])
        if item.depth:
            prefix += box["last"] if item.last[-1] else box["tee"]
        prefix = st.dim(prefix)
        if item.more:
            out.append(prefix + st.dim(item.more))
            continue
        parts: list[str] = []
        if item.depth == 0:
            parts.append("/")
        elif item.address.text:
            parts.append(st.addr(item.address.text.ljust(item.pad)))
        elif item.pad:
            parts.append(st.dim("-".ljust(item.pad)))
        if item.driver:
            parts.append(st.driver(item.driver))
        if item.count > 1:
            parts.append(f"({item.count} nodes)")
        parts.extend(item.facts)
        if item.hotplugged:
            parts.append(st.hot("hotplugged"))
        for ref in item.refs:
            parts.append(
                st.warn(ref.text()) if ref.missing else st.ref(ref.text()) if ref.kind else ref.text()
            )
        if paths and item.path and item.depth:
            parts.append(st.dim(item.path))
        out.append(prefix + "  ".join(parts))
    host = view.host
    if host.backends:
        out.append("back-ends:")
        shown = host.backends[:max_lines]
        for i, b in enumerate(shown):
            last = i == len(shown) - 1 and len(host.backends) <= max_lines
            line = st.dim(box["last"] if last else box["tee"]) + st.driver(b.label)
            opts = b.options_text(limit=8)
            if opts:
                line += "  " + opts
            if b.users:
                line += "  " + st.ref(
                    "<- " + ", ".join(b.users) + (f" +{b.more_users} more" if b.more_users else "")
                )
            elif b.ident:
                line += "  " + st.dim("(unused)")
            out.append(line)
        if len(host.backends) > max_lines:
            out.append(st.dim(box["last"] + f"... {len(host.backends) - max_lines} more back-end(s)"))
    if view.other:
        names = view.other[:8]
        more = f" +{len(view.other) - 8} more" if len(view.other) > 8 else ""
        out.append(st.dim("not devices (no compatible): " + ", ".join(names) + more))
    out.extend(st.warn("note: " + n) for n in host.notes)
    text = "\n".join(out) + "\n"
    enc = encoding or getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        text.encode(enc)
    except UnicodeEncodeError:
        text = text.encode(enc, "backslashreplace").decode(enc)
    except LookupError:
        pass
    return text


# ---------------------------------------------------------------------------
# dot


def dot_quote(text: str) -> str:
    """A DOT quoted string for an escString label: backslashes and quotes escaped.

    ``text`` has been through :func:`clean` (so it holds no newlines or control characters); a
    trailing backslash gets a space after it because older Graphviz scanners read ``\\\\"`` as
    an escaped quote.  Lines are joined by the caller with ``\\n``.
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return escaped + " " if escaped.endswith("\\") else escaped


def _label(*lines: str) -> str:
    return '"' + "\\n".join(dot_quote(line) for line in lines if line) + '"'


_SHAPES = {
    "drive": "cylinder",
    "blockdev": "cylinder",
    "netdev": "hexagon",
    "chardev": "note",
    "memdev": "box3d",
}


def render_dot(
    guest: DeviceTree,
    backend: DeviceTree | None = None,
    *,
    collapse: bool = True,
    max_lines: int = MAX_LINES,
    max_depth: int = MAX_DEPTH,
    option_defaults: Mapping[str, str] | None = None,
) -> str:
    """The bus hierarchy as a Graphviz ``digraph`` (device nodes, parent -> child edges).

    Back-ends are separate shaped nodes in a "back-ends" cluster with dashed edges from the
    devices that reference them; a reference to a back-end the overlay does not define points at
    a red dashed node.  Node ids are generated (``d0``, ``b0``, ``x0``); every label is quoted and
    escaped.  Same bounds as :func:`render_text`.
    """
    view = _build(guest, backend, collapse, max(1, max_lines), max(1, max_depth), option_defaults)
    out = [
        "digraph dtvm {",
        "  graph [rankdir=LR, fontname=monospace, labelloc=t, label=" + _label(*view.machine) + "];",
        "  node [shape=box, fontname=monospace, fontsize=10];",
        "  edge [arrowsize=0.6];",
    ]
    shown_backends = view.host.backends[:max_lines]
    backend_ids = {id(b): f"b{i}" for i, b in enumerate(shown_backends)}
    missing: dict[tuple[str, str], str] = {}
    edges: list[str] = []
    for i, item in enumerate(view.items):
        if item.more:
            out.append(f"  d{i} [shape=plaintext, label={_label(item.more)}];")
        else:
            head = item.driver if item.depth else "/  " + item.driver
            count = f"({item.count} nodes)" if item.count > 1 else ""
            facts = " ".join(item.facts)
            style = ", style=bold, color=orange" if item.hotplugged else ""
            ids = " ".join(r.text() for r in item.refs if r.kind == "id" or not r.kind)
            out.append(
                f"  d{i} [label={_label(head, item.address.text if item.depth else '', count, facts, ids)}{style}];"
            )
            for ref in item.refs:
                if not ref.kind or ref.kind == "id":
                    continue
                if ref.backend is not None:
                    if id(ref.backend) in backend_ids:
                        edges.append(f"  d{i} -> {backend_ids[id(ref.backend)]} [style=dashed];")
                else:
                    key = (ref.kind, ref.value)
                    if key not in missing:
                        missing[key] = f"x{len(missing)}"
                    edges.append(f"  d{i} -> {missing[key]} [style=dashed, color=red];")
        if item.parent >= 0:
            edges.append(f"  d{item.parent} -> d{i};")
    if view.host.backends:
        out.append("  subgraph cluster_backends {")
        out.append('    label="back-ends"; style=dashed;')
        for b in shown_backends:
            shape = _SHAPES.get(b.kind, "ellipse")
            out.append(
                f"    {backend_ids[id(b)]} [shape={shape}, label={_label(b.label, b.options_text())}];"
            )
        out.append("  }")
    for (kind, value), node_id in missing.items():
        out.append(
            f"  {node_id} [shape=ellipse, style=dashed, color=red, label={_label(f'{kind} {value}', '(not in back-ends)')}];"
        )
    out.extend(edges)
    for n, note in enumerate(view.host.notes):
        out.append(f"  note{n} [shape=plaintext, fontcolor=red, label={_label('note: ' + note)}];")
    out.append("}")
    return "\n".join(out) + "\n"
