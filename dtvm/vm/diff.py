"""Do two VM descriptions give the guest the same hardware?  If not, what differs, in words.

Why this exists: a description (the guest DTB that ``dtvm qemu2dtb`` writes, plus its back-end
overlay) is meant to be stored and re-inserted on another host, and QEMU's own migration check is
not enough to say whether two VMs are the same hardware: it happily migrates between NICs whose MAC
addresses differ.  ``compare`` answers on what the guest can observe and says what differs:

- **Ignored**, because the guest cannot tell: phandle numbers (a reference is compared by the
  path of the node it points to, after moves: the cells that hold phandles are known from the
  bindings' declared property types, from the standard phandle-bearing properties where no
  binding says, and from the layout of ``interrupt-map``/``iommu-map``/``msi-map``); the values
  of ``phandle``/``linux,phandle`` themselves; node and property order; back-end facts
  (``qemu,id``, ``qemu,drive``/``netdev``/``chardev``/..., ``qemu,hotplugged``, the
  ``/qemu-backends`` node of a merged tree); the random ``/chosen/rng-seed`` and ``kaslr-seed``;
  and the label bookkeeping nodes ``/__symbols__``, ``/__fixups__``, ``/__local_fixups__``.
- **Reported**: machine changes (the ``/qemu`` node: machine type, CPUs, memory, options, in
  words), devices (nodes with a ``compatible``) and other nodes added or removed, devices moved
  (the same device at another path: first the same content apart from its address, then the same
  compatible and the same identity such as a MAC address or serial, then the only device of its
  compatible left on each side), property changes with readable values (MACs as
  ``aa:bb:cc:dd:ee:ff``, strings quoted, cells in hex, references as ``&/path``), memory
  reservations and the boot CPU of the blob header.
- **Back-ends** (when both overlays are given): a separate list that never makes two
  descriptions "different" -- a guest DTB with another host's back-ends is the same VM.
  Back-ends are matched by kind and id, ids QEMU generates (``#net075``, ``#block157``) by the
  device that uses them, so two runs of the same command line compare equal.

A node present on both sides with the same name but a different ``compatible`` is a different
device (one removed, one added), not a changed property: that keeps a dropped device from reading
as "every property of the next device changed".

The input is untrusted: every walk is iterative, each node is visited a bounded number of times
(matching is by dictionaries and content digests, never by pairwise subtree comparison), shown
values are escaped and cut, and each list stops after ``MAX_ENTRIES`` entries with a count of the
rest.  Output is deterministic: entries are sorted (machine, blob header, then by path).
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dtvm.dt.tree import DeviceTree, Node, Property
from dtvm.vm.diff_read import (
    BACKEND_FACTS,
    MAX_BLOB,
    MAX_PATH_LEVELS,
    MAX_VALUE,
    DiffInputError,
    Norm,
    _Backends,
    _backends_from_overlay,
    _backends_from_tree,
    _clean,
    _compatibles,
    _path,
    _quote,
    _Ref,
    _Side,
    _strings,
    _text,
    read_description,
)

if TYPE_CHECKING:
    from dtvm.bindings.load import BindingSet

__all__ = [
    "MAX_BLOB",
    "MAX_ENTRIES",
    "DiffInputError",
    "DiffResult",
    "Entry",
    "compare",
    "read_description",
    "render_json",
    "render_text",
]

#: Entries per list (guest, back-end); the rest is one "... N more" entry.
MAX_ENTRIES = 10000
#: Cells (or bytes) of one shown value.
MAX_CELLS = 24

#: Root children that are not hardware: label bookkeeping and the merged back-ends.
IGNORED_ROOT_CHILDREN = frozenset({"__symbols__", "__fixups__", "__local_fixups__", "qemu-backends"})
#: Properties that identify nothing the guest sees: phandle numbers.
PHANDLE_PROPS = frozenset({"phandle", "linux,phandle"})
#: Random per-boot values QEMU writes into /chosen.
CHOSEN_SEEDS = frozenset({"rng-seed", "kaslr-seed"})
#: Properties that identify one device wherever it sits (a moved NIC keeps its MAC).
IDENTITY_PROPS = frozenset({"local-mac-address", "mac-address", "qemu,serial", "qemu,wwn", "qemu,uuid"})
MAC_PROPS = frozenset({"local-mac-address", "mac-address"})

#: Standard string properties, shown as text even on a node no binding describes.
STRING_PROPS = frozenset({"compatible", "model", "status", "device_type", "label", "name", "clock-names",
                          "interrupt-names", "reg-names", "clock-output-names", "bootargs", "stdout-path"})
#: An id QEMU generated (``id_generate``: ``#`` + subsystem + counter + 2 random digits).
GENERATED_ID = re.compile(r"^#[A-Za-z]+[0-9]+$")

#: The /qemu node's properties in words, in report order.
MACHINE_WORDS = {
    "machine": "machine type", "arch": "architecture", "cpu-type": "CPU type", "cpus": "CPUs",
    "max-cpus": "maximum CPUs", "sockets": "sockets", "dies": "dies", "clusters": "clusters",
    "cores": "cores", "threads": "threads", "memory-size": "memory",
    "memory-slots": "memory hot-plug slots", "max-memory-size": "maximum memory",
}


# ---------------------------------------------------------------------------------------------
# reading


# ---------------------------------------------------------------------------------------------
# showing values safely


def _word(text: str) -> str:
    """A plain word as is (machine types, option values), anything else quoted."""
    if text and len(text) <= MAX_VALUE and re.fullmatch(r"[A-Za-z0-9._,:/+=-]+", text):
        return text
    return _quote(text)


def _looks_text(strings: list[str]) -> bool:
    return all(s.isprintable() for s in strings)


def _size(n: int) -> str:
    for unit, name in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n and n % unit == 0:
            return f"{n // unit} {name}"
    return f"{n} B"


def _path_key(node: Node) -> tuple[str, ...]:
    """Sort key: the path's names (bounded as ``_path``), so /a/b sorts before /a-b."""
    parts: list[str] = []
    cur: Node | None = node
    while cur is not None and cur.parent is not None and len(parts) < MAX_PATH_LEVELS:
        parts.append(cur.name[:256])
        cur = cur.parent
    return tuple(reversed(parts))


def _driver(node: Node) -> str | None:
    """The device's name for a report: ``qemu,<driver>`` as the driver, else the first compatible,
    else the ``qemu,driver`` dtvm puts on QEMU's own nodes that have no compatible (pseries PCI)."""
    compats = _compatibles(node)
    if not compats:
        prop = node.get_property("qemu,driver")
        strings = _strings(prop.value) if prop is not None else None
        return _clean(strings[0], 64) if strings else None
    first = compats[0]
    return _clean(first[5:] if first.startswith("qemu,") and len(first) > 5 else first, 64)


def _is_device(node: Node) -> bool:
    """A device: a node with a compatible, or one dtvm marked with its qdev driver."""
    return node.get_property("compatible") is not None or node.get_property("qemu,driver") is not None


def _kind(node: Node) -> tuple[bytes | None, bytes | None]:
    """What kind of device a node is: its compatible and its qdev driver (raw values)."""
    compat = node.get_property("compatible")
    driver = node.get_property("qemu,driver")
    return (compat.value if compat is not None else None, driver.value if driver is not None else None)


def _where(node: Node) -> str:
    if node.parent is None:
        return "/"
    driver = _driver(node)
    return _path(node) + (f" ({driver})" if driver else "")


# ---------------------------------------------------------------------------------------------
# one side: bindings per node, phandle-bearing cells


# ---------------------------------------------------------------------------------------------
# results


class Entry:
    """One difference: a kind, the words for it, and the structured fields for JSON."""

    __slots__ = ("fields", "kind", "sort", "text")

    def __init__(self, kind: str, text: str, sort: tuple[Any, ...], **fields: Any) -> None:
        self.kind = kind
        self.text = text
        self.sort = sort
        self.fields = fields

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.fields, "text": self.text}

    def __repr__(self) -> str:
        return f"Entry({self.kind!r}, {self.text!r})"


class DiffResult:
    """What ``compare`` found: guest differences (decide ``same``) and back-end differences
    (``None`` when back-ends were not compared)."""

    def __init__(self, guest: list[Entry], backend: list[Entry] | None) -> None:
        self.guest = guest
        self.backend = backend

    @property
    def same(self) -> bool:
        """The guest sees the same hardware (back-end differences do not count)."""
        return not self.guest


def _finish(entries: list[Entry]) -> list[Entry]:
    entries.sort(key=lambda e: e.sort)
    if len(entries) > MAX_ENTRIES:
        rest = len(entries) - MAX_ENTRIES
        entries = entries[:MAX_ENTRIES]
        entries.append(Entry("truncated", f"... {rest} more differences not shown", (9,), count=rest))
    return entries


# ---------------------------------------------------------------------------------------------
# comparing the guest trees


def _ignored_child(parent: Node, child: Node) -> bool:
    if parent.parent is not None:
        return False
    return child.name in IGNORED_ROOT_CHILDREN or "qemu,backends" in (_compatibles(child) or [])


def _ignored_prop(node: Node, name: str) -> bool:
    if name in PHANDLE_PROPS:
        return True
    if name in BACKEND_FACTS:
        # a link the guest tree describes is its object in -object syntax (qemu,memdev =
        # "memory-backend-ram,id=erst,size=..." on acpi-erst): guest-visible; a back-end
        # reference is a bare id, which never holds a comma
        prop = node.get_property(name)
        return prop is None or b"," not in prop.value
    return name in CHOSEN_SEEDS and node.name in ("chosen", "secure-chosen") and node.parent is not None \
        and node.parent.parent is None


def _children(node: Node) -> Iterator[Node]:
    for c in node.live_children():
        if not _ignored_child(node, c):
            yield c


def _props(node: Node) -> dict[str, Property]:
    return {p.name: p for p in node.live_props() if not _ignored_prop(node, p.name)}


def _same_kind(a: Node, b: Node) -> bool:
    """Two nodes at one path are the same device unless their compatibles (or, both given,
    their qdev drivers) differ."""
    ca, da = _kind(a)
    cb, db = _kind(b)
    return ca == cb and (da is None or db is None or da == db)


def _walk(node: Node) -> Iterator[Node]:
    """``node`` and its non-ignored descendants, pre-order, iteratively."""
    stack = [node]
    while stack:
        cur = stack.pop()
        yield cur
        stack.extend(_children(cur))


def _candidates(roots: list[Node], depth: dict[int, int]) -> list[Node]:
    """The devices (nodes with a compatible) in the subtrees of ``roots``; ``depth`` (which
    holds the roots' depths from the alignment) gets theirs."""
    out = []
    for root in roots:
        stack = [(root, depth[id(root)])]
        while stack:
            node, d = stack.pop()
            depth[id(node)] = d
            if _is_device(node):
                out.append(node)
            stack.extend((c, d + 1) for c in _children(node))
    return out


class _Comparison:
    def __init__(self, a: _Side, b: _Side) -> None:
        self.a = a
        self.b = b
        self.pairs: list[tuple[Node, Node]] = []
        self.b_of: dict[int, Node] = {}
        self.a_of: dict[int, Node] = {}
        self.removed: list[Node] = []  # roots of A subtrees with no counterpart
        self.added: list[Node] = []
        self.moved: list[tuple[Node, Node]] = []
        self.consumed: set[int] = set()  # nodes inside moved subtrees (aligned there)
        self.entries: list[Entry] = []
        self.ref_keys: dict[int, Any] = {}
        self.depth: dict[int, int] = {}  # of removed/added roots and move candidates

    # -- alignment ---------------------------------------------------------------------------
    def align(self, a0: Node, b0: Node, d0: int = 0) -> None:
        """Pair ``a0``/``b0`` (at depth ``d0``) and their descendants by name; the rest are
        removed/added roots."""
        stack = [(a0, b0, d0)]
        while stack:
            a, b, d = stack.pop()
            self.pairs.append((a, b))
            self.b_of[id(a)] = b
            self.a_of[id(b)] = a
            kids = {c.name: c for c in _children(b) if id(c) not in self.a_of}
            for c in _children(a):
                if id(c) in self.b_of:
                    continue
                m = kids.pop(c.name, None)
                if m is not None and _same_kind(c, m):
                    stack.append((c, m, d + 1))
                else:
                    self.removed.append(c)
                    self.depth[id(c)] = d + 1
                    if m is not None:
                        self.added.append(m)
                        self.depth[id(m)] = d + 1
            for m in kids.values():
                self.added.append(m)
                self.depth[id(m)] = d + 1

    # -- moves -------------------------------------------------------------------------------
    def find_moves(self) -> None:
        """Pair devices that left one path with devices that appeared at another.

        Candidates go top-down (a moved bridge takes its children along), and each takes the
        first B device that is free and has, in this order: the same content apart from its
        address; the same kind and identity (MAC, serial); the same kind, being the only one of
        that kind left on both sides.  Each B list is popped from its end and a taken or blocked
        B device is dropped for good, so many equal devices cost linear time.
        """
        depth = self.depth
        cand_a = _candidates(self.removed, depth)
        cand_b = _candidates(self.added, depth)
        if not cand_a or not cand_b:
            return
        digests_a = _digests(self.a, self.removed)
        digests_b = _digests(self.b, self.added)
        cand_a.sort(key=lambda n: (depth[id(n)], _path_key(n)))
        cand_b.sort(key=lambda n: (depth[id(n)], _path_key(n)))
        blocked: set[int] = set()  # B nodes with a taken node below them
        taken_b: set[int] = set()
        left_a: dict[Any, set[int]] = {}  # kind -> A candidates not yet paired or inside a pair
        left_b: dict[Any, set[int]] = {}  # kind -> free B candidates
        kind_of: dict[int, Any] = {}
        for n in cand_a:
            kind_of[id(n)] = _kind(n)
            left_a.setdefault(kind_of[id(n)], set()).add(id(n))
        for n in cand_b:
            kind_of[id(n)] = _kind(n)
            left_b.setdefault(kind_of[id(n)], set()).add(id(n))

        def free_b(n: Node) -> bool:
            return id(n) not in taken_b and id(n) not in blocked and id(n) not in self.consumed

        def take(a: Node, b: Node) -> None:
            self.moved.append((a, b))
            for n in _walk(a):
                self.consumed.add(id(n))
                left_a.get(kind_of.get(id(n)), set()).discard(id(n))
            for n in _walk(b):
                self.consumed.add(id(n))
                left_b.get(kind_of.get(id(n)), set()).discard(id(n))
            taken_b.add(id(b))
            cur = b.parent
            while cur is not None and id(cur) not in blocked:
                blocked.add(id(cur))
                left_b.get(kind_of.get(id(cur)), set()).discard(id(cur))
                cur = cur.parent

        by_digest: dict[Any, list[Node]] = {}
        by_identity: dict[Any, list[Node]] = {}
        for n in reversed(cand_b):  # popped from the end: path order
            by_digest.setdefault(_top_digest(self.b, n, digests_b), []).append(n)
            ident = _identity(n)
            if ident is not None:
                by_identity.setdefault(ident, []).append(n)
        by_id_b = {id(n): n for n in cand_b}
        for n in cand_a:
            if id(n) in self.consumed:
                continue
            match: Node | None = None
            for table, key in ((by_digest, _top_digest(self.a, n, digests_a)), (by_identity, _identity(n))):
                waiting = table.get(key) if key is not None else None
                while waiting and not free_b(waiting[-1]):
                    waiting.pop()
                if waiting:
                    match = waiting.pop()
                    break
            if match is None:
                kind = kind_of[id(n)]
                others = left_b.get(kind, set())
                if len(left_a.get(kind, ())) == 1 and len(others) == 1:
                    only = by_id_b[next(iter(others))]
                    if free_b(only):
                        match = only
            if match is not None:
                take(n, match)
        for a, b in self.moved:
            self.align(a, b, depth[id(b)])

    # -- references --------------------------------------------------------------------------
    def ref_key(self, side: str, node: Node) -> Any:
        """What a reference is compared by: the node on B's side it stands for, else its path.

        A node of A that has a counterpart in B stands for that node; one that does not (it was
        removed, or replaced by a different device at the same path) stands for its path, which
        a B node at the same path also gives: then both references name the same place.
        """
        if side == "b":
            return ("node", id(node))
        b = self.b_of.get(id(node))
        if b is not None:
            return ("node", id(b))
        got = self.ref_keys.get(id(node))
        if got is None:
            got = self._same_path_in_b(node)
            self.ref_keys[id(node)] = got
        return got

    def _same_path_in_b(self, node: Node) -> Any:
        names: list[str] = []
        cur: Node | None = node
        while cur is not None and id(cur) not in self.b_of and len(names) < MAX_PATH_LEVELS:
            names.append(cur.name)
            cur = cur.parent
        if cur is None or id(cur) not in self.b_of:
            return ("a", id(node))
        target: Node | None = self.b_of[id(cur)]
        for name in reversed(names):
            target = target.get_child(name) if target is not None else None
        return ("node", id(target)) if target is not None else ("a", id(node))

    def key_of(self, side: str, norm: Norm) -> Any:
        if isinstance(norm, bytes):
            return norm
        return tuple(self.ref_key(side, c.node) if isinstance(c, _Ref) else c for c in norm)

    # -- properties --------------------------------------------------------------------------
    def compare_pairs(self) -> None:
        moved_tops = {id(b) for _a, b in self.moved}
        for a, b in self.pairs:
            pa = _props(a)
            pb = _props(b)
            skip_reg = id(b) in moved_tops
            machine = _is_machine(a) and _is_machine(b)
            for name in sorted(pa.keys() | pb.keys()):
                if skip_reg and name == "reg":
                    continue
                old = pa.get(name)
                new = pb.get(name)
                if old is not None and new is not None:
                    na = self.a.norm(a, old)
                    nb = self.b.norm(b, new)
                    if isinstance(na, bytes) and isinstance(nb, bytes):
                        if na == nb:
                            continue
                    elif self.key_of("a", na) == self.key_of("b", nb):
                        continue
                if a.parent is None and self.mirrors_machine(name, old, new):
                    continue
                if machine:
                    self.entries.append(_machine_entry(name, old, new))
                else:
                    self.entries.append(self.prop_entry(a, b, name, old, new))

    def mirrors_machine(self, name: str, old: Property | None, new: Property | None) -> bool:
        """The root's ``compatible``/``model`` that dtvm derives from the machine type on x86
        (``"qemu,pc-q35-7.2"``, ``"QEMU pc-q35-7.2"``): implied by the "machine type" line."""
        if old is None or new is None or name not in ("compatible", "model"):
            return False
        types = []
        for dt in (self.a.dt, self.b.dt):
            node = dt.root.get_child("qemu")
            prop = node.get_property("machine") if node is not None and _is_machine(node) else None
            strings = _strings(prop.value) if prop is not None else None
            if not strings or len(strings) != 1:
                return False
            types.append(strings[0])
        if types[0] == types[1]:
            return False
        fmt = "qemu,{}" if name == "compatible" else "QEMU {}"
        return (_strings(old.value), _strings(new.value)) == ([fmt.format(types[0])], [fmt.format(types[1])])

    def prop_entry(self, a: Node, b: Node, name: str, old: Property | None, new: Property | None) -> Entry:
        where = _where(b)
        path = _path(b)
        sort = (2, _path_key(b), 1, name)
        shown = _clean(name, 64)
        if old is None:
            assert new is not None
            value = _show(self.b, b, new)
            return Entry("property-added", f"{where}: {shown} added = {value}", sort,
                         path=path, property=name, new=value)
        if new is None:
            value = _show(self.a, a, old)
            return Entry("property-removed", f"{where}: {shown} removed (was {value})", sort,
                         path=path, property=name, old=value)
        ov = _show(self.a, a, old)
        nv = _show(self.b, b, new)
        return Entry("property-changed", f"{where}: {shown} {ov} -> {nv}", sort,
                     path=path, property=name, old=ov, new=nv)

    # -- nodes -------------------------------------------------------------------------------
    def node_entries(self) -> None:
        moved_a = {id(a) for a, _b in self.moved}
        moved_b = {id(b) for _a, b in self.moved}
        for node in self.removed:
            if id(node) not in moved_a:
                self.entries.append(_node_entry(node, "removed"))
        for node in self.added:
            if id(node) not in moved_b:
                self.entries.append(_node_entry(node, "added"))
        for a, b in self.moved:
            pa, pb = _path(a), _path(b)
            if pa == pb:
                continue  # its parent was replaced; the node itself stayed where it was
            driver = _driver(b) or "?"
            self.entries.append(Entry(
                "device-moved", f"device {driver} moved from {pa} to {pb}", (2, _path_key(b), 0, 2),
                **{"from": pa, "to": pb, "compatible": _compatibles(b) or []},
            ))

    def header_entries(self) -> None:
        ra = sorted((r.address, r.size) for r in self.a.dt.reservations)
        rb = sorted((r.address, r.size) for r in self.b.dt.reservations)
        if ra != rb:
            def show(rs: list[tuple[int, int]]) -> str:
                text = ", ".join(f"{a:#x}+{s:#x}" for a, s in rs[:MAX_CELLS])
                return (text + (f", ... ({len(rs)} entries)" if len(rs) > MAX_CELLS else "")) or "none"
            old, new = show(ra), show(rb)
            self.entries.append(Entry("reservations-changed", f"memory reservations {old} -> {new}", (1, 0),
                                      old=old, new=new))
        if self.a.dt.boot_cpuid != self.b.dt.boot_cpuid:
            old, new = f"{self.a.dt.boot_cpuid:#x}", f"{self.b.dt.boot_cpuid:#x}"
            self.entries.append(Entry("boot-cpu-changed", f"boot CPU (blob header) {old} -> {new}", (1, 1),
                                      old=old, new=new))


def _node_entry(node: Node, how: str) -> Entry:
    compats = _compatibles(node)
    path = _path(node)
    sort = (2, _path_key(node), 0, 0 if how == "removed" else 1)
    if _is_device(node):
        return Entry(f"device-{how}", f"device {how}: {_where(node)}", sort, path=path, compatible=compats or [])
    return Entry(f"node-{how}", f"node {how}: {path}", sort, path=path)


def _digests(side: _Side, roots: list[Node]) -> dict[int, bytes]:
    """A content digest of every node under ``roots`` (name, properties, children's digests),
    computed bottom-up once: equal subtrees are then found by dictionary, in linear time."""
    out: dict[int, bytes] = {}
    for root in roots:
        order = list(_walk(root))
        for node in reversed(order):  # children before parents
            h = hashlib.blake2b(digest_size=16)
            h.update(node.name.encode("latin-1", "replace") + b"\0")
            _hash_props(h, side, node, skip_reg=False)
            for d in sorted(out[id(c)] for c in _children(node)):
                h.update(d)
            out[id(node)] = h.digest()
    return out


def _hash_props(h: Any, side: _Side, node: Node, skip_reg: bool) -> None:
    for name, prop in sorted(_props(node).items()):
        if skip_reg and name == "reg":
            continue
        norm = side.norm(node, prop)
        h.update(name.encode("latin-1", "replace") + b"\0")
        if isinstance(norm, bytes):
            h.update(struct.pack(">I", len(norm)) + norm)
        else:
            # references by the name of their target: where the target is lives in the full compare
            parts = [b"&" + c.node.name.encode("latin-1", "replace") + b"\0" if isinstance(c, _Ref) else struct.pack(">I", c) for c in norm]
            h.update(b"R" + struct.pack(">I", len(parts)) + b"".join(parts))


def _top_digest(side: _Side, node: Node, digests: dict[int, bytes]) -> bytes:
    """A device's content apart from where it is (its name's unit address and its ``reg``)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(node.basename.encode("latin-1", "replace") + b"\0")
    _hash_props(h, side, node, skip_reg=True)
    for d in sorted(digests[id(c)] for c in _children(node)):
        h.update(d)
    return h.digest()


def _identity(node: Node) -> Any:
    """A device's identity wherever it sits: compatible plus MAC/serial of it and its children
    (a virtio NIC's MAC is on its ``virtio`` child); None when it has none."""
    found: list[tuple[str, str, bytes]] = []
    for n, rel in [(node, ""), *((c, c.name) for c in _children(node))]:
        for name in IDENTITY_PROPS:
            p = n.get_property(name)
            if p is not None:
                found.append((rel, name, p.value))
    if not found:
        return None
    return (_kind(node), tuple(sorted(found)))


# ---------------------------------------------------------------------------------------------
# values in words


def _is_machine(node: Node) -> bool:
    return node.parent is not None and node.parent.parent is None and "qemu,machine" in (_compatibles(node) or [])


def _show(side: _Side, node: Node, prop: Property) -> str:
    """A property value for a report, by its declared type where a binding gives one."""
    value = prop.value
    name = prop.name
    norm = side.norm(node, prop)
    if not isinstance(norm, bytes):
        cells = [f"&{_path(c.node)}" if isinstance(c, _Ref) else f"{c:#x}" for c in norm[:MAX_CELLS]]
        more = f" ... ({len(norm)} cells)" if len(norm) > MAX_CELLS else ""
        return "<" + " ".join(cells) + more + ">"
    if not value:
        return "(empty)"
    if name in MAC_PROPS and len(value) == 6:
        return ":".join(f"{b:02x}" for b in value)
    declared = side.prop_type(node, name)
    ptype = declared[0] if declared is not None else None
    if ptype is None and (name in STRING_PROPS or name.startswith("qemu,")):
        ptype = "string-array"  # dtvm's qemu,* facts are strings (base binding), as these are
    strings = _strings(value)
    if strings is not None and (ptype in ("string", "string-array") or (ptype is None and _looks_text(strings))):
        shown = ", ".join(_quote(s) for s in strings[:MAX_CELLS])
        return shown + (f", ... ({len(strings)} strings)" if len(strings) > MAX_CELLS else "")
    if ptype in ("uint64", "uint64-array") and len(value) % 8 == 0:
        n = len(value) // 8
        nums = struct.unpack(f">{n}Q", value)
        more = f" ... ({n} values)" if n > MAX_CELLS else ""
        return "/bits/ 64 <" + " ".join(f"{v:#x}" for v in nums[:MAX_CELLS]) + more + ">"
    if ptype not in ("uint8", "uint8-array", "uint16", "uint16-array") and len(value) % 4 == 0:
        n = len(value) // 4
        nums = struct.unpack(f">{n}I", value)
        more = f" ... ({n} cells)" if n > MAX_CELLS else ""
        return "<" + " ".join(f"{v:#x}" for v in nums[:MAX_CELLS]) + more + ">"
    more = f" ... ({len(value)} bytes)" if len(value) > MAX_CELLS else ""
    return "[" + " ".join(f"{b:02x}" for b in value[:MAX_CELLS]) + more + "]"


def _machine_value(name: str, prop: Property | None) -> str:
    if prop is None:
        return "(default)" if name.startswith("qemu,") else "(none)"
    value = prop.value
    if name in ("memory-size", "max-memory-size") and len(value) in (4, 8):
        return _size(int.from_bytes(value, "big"))
    if name in MACHINE_WORDS and name not in ("machine", "arch", "cpu-type") and len(value) == 4:
        return str(int.from_bytes(value, "big"))
    strings = _strings(value)
    if strings is not None and len(strings) == 1:
        return _word(strings[0])
    return "[" + " ".join(f"{b:02x}" for b in value[:MAX_CELLS]) + ("..." if len(value) > MAX_CELLS else "") + "]"


def _machine_entry(name: str, old: Property | None, new: Property | None) -> Entry:
    """A change of the /qemu node, in words: ``machine type pc-q35-7.2 -> pc-q35-7.1``."""
    ov, nv = _machine_value(name, old), _machine_value(name, new)
    order = list(MACHINE_WORDS)
    if name in MACHINE_WORDS:
        words = MACHINE_WORDS[name]
        rank = order.index(name)
    elif name.startswith("qemu,"):
        words = f"machine option {_clean(name[5:], 64)}:"
        rank = len(order) + 1
    else:
        words = f"machine property {_clean(name, 64)}:"
        rank = len(order)
    return Entry("machine-changed", f"{words} {ov} -> {nv}", (0, rank, name), property=name, old=ov, new=nv)


# ---------------------------------------------------------------------------------------------
# back-ends


def _generated(text: str) -> bool:
    return bool(GENERATED_ID.match(text))


def _compare_backends(cmp: _Comparison, ba: _Backends, bb: _Backends) -> list[Entry]:
    """Back-end differences: per-device host facts, then back-ends matched by kind and id (a
    generated id by the device that uses it, then by equal options)."""
    entries: list[Entry] = []
    # per-device facts, keyed by the B node the A node stands for
    a_facts: dict[Any, tuple[str, dict[str, bytes]]] = {}
    for key, (shown, facts) in ba.facts.items():
        if key[0] == "node":
            b = cmp.b_of.get(key[1])
            if b is not None:
                a_facts[("node", id(b))] = (_path(b), facts)
            # else: a device B does not have; the guest list says so, its back-ends are listed below
            continue
        a_facts[key] = (shown, facts)
    b_facts = {k: v for k, v in bb.facts.items() if k[0] != "node" or k[1] in cmp.a_of}
    pairs: dict[tuple[str, str], str] = {}  # A back-end (kind, id) -> B id, from the devices using them
    for key in sorted(a_facts.keys() | b_facts.keys(), key=lambda k: (a_facts.get(k) or b_facts[k])[0]):
        shown_a, fa = a_facts.get(key, ("", {}))
        shown_b, fb = b_facts.get(key, ("", {}))
        shown = shown_b or shown_a
        for name in sorted(fa.keys() | fb.keys()):
            va, vb = fa.get(name), fb.get(name)
            kind = name[5:] if name.startswith("qemu,") else name
            if va is not None and vb is not None:
                ta, tb = _text(va), _text(vb)
                if kind in ("drive", "netdev", "chardev", "audiodev", "memdev", "iothread", "fsdev", "blockdev"):
                    pairs[(kind, ta)] = tb
                if ta == tb or (_generated(ta) and _generated(tb)):
                    continue
            ov = "(none)" if va is None else ("present" if not va else _word(_text(va)))
            nv = "(none)" if vb is None else ("present" if not vb else _word(_text(vb)))
            entries.append(Entry("device-backend-changed", f"{shown}: {_clean(name, 64)} {ov} -> {nv}",
                                 (2, shown, name), path=shown, property=name, old=ov, new=nv))
    # the back-end nodes
    left_b = dict(bb.backends)
    matched: list[tuple[tuple[str, str], tuple[str, str]]] = []
    unmatched_a: list[tuple[str, str]] = []
    for key in sorted(ba.backends):
        kind, ident = key
        if not _generated(ident) and key in left_b:
            matched.append((key, key))
            del left_b[key]
            continue
        via = pairs.get(key)
        if via is not None and (kind, via) in left_b:
            matched.append((key, (kind, via)))
            del left_b[(kind, via)]
            continue
        unmatched_a.append(key)
    still_a = []
    for key in unmatched_a:
        found = None
        for other in sorted(left_b):
            if other[0] == key[0] and _same_options(ba.backends[key], left_b[other]):
                found = other
                break
        if found is not None:
            matched.append((key, found))
            del left_b[found]
        else:
            still_a.append(key)
    for ka, kb in matched:
        label = f"{ka[0]} {_word(kb[1])}" if ka[1] == kb[1] or _generated(ka[1]) else f"{ka[0]} {_word(ka[1])} (now {_word(kb[1])})"
        if ka[1] != kb[1] and not (_generated(ka[1]) and _generated(kb[1])):
            entries.append(Entry("backend-changed", f"{ka[0]} id {_word(ka[1])} -> {_word(kb[1])}",
                                 (3, ka[0], ka[1], ""), backend=ka[0], property="id",
                                 old=_word(ka[1]), new=_word(kb[1])))
        oa, ob = ba.backends[ka], bb.backends[kb]
        for name in sorted(oa.keys() | ob.keys()):
            sa, sb = oa.get(name), ob.get(name)
            if sa == sb or (sa is not None and sb is not None and _generated(sa) and _generated(sb)):
                continue
            ov = "(none)" if sa is None else _word(sa)
            nv = "(none)" if sb is None else _word(sb)
            entries.append(Entry("backend-changed", f"{label}: {_clean(name, 64)} {ov} -> {nv}",
                                 (3, ka[0], ka[1], name), backend=ka[0], id=kb[1], property=name, old=ov, new=nv))
    for key in still_a:
        entries.append(Entry("backend-removed", f"{key[0]} {_word(key[1])} removed ({_options(ba.backends[key])})",
                             (3, key[0], key[1], ""), backend=key[0], id=key[1]))
    for key in sorted(left_b):
        entries.append(Entry("backend-added", f"{key[0]} {_word(key[1])} added ({_options(bb.backends[key])})",
                             (3, key[0], key[1], ""), backend=key[0], id=key[1]))
    ia, ib = ba.inputs or {}, bb.inputs or {}
    for name in sorted(ia.keys() | ib.keys()):
        sa, sb = ia.get(name), ib.get(name)
        if sa != sb:
            ov = "(none)" if sa is None else _word(sa)
            nv = "(none)" if sb is None else _word(sb)
            entries.append(Entry("inputs-changed", f"inputs: {_clean(name, 64)} {ov} -> {nv}", (4, name),
                                 property=name, old=ov, new=nv))
    return entries


def _same_options(a: dict[str, str], b: dict[str, str]) -> bool:
    if a.keys() != b.keys():
        return False
    return all(a[k] == b[k] or (_generated(a[k]) and _generated(b[k])) for k in a)


def _options(opts: dict[str, str]) -> str:
    items = [f"{_clean(k, 32)}={_word(v)}" for k, v in sorted(opts.items())[:8]]
    if len(opts) > 8:
        items.append(f"+{len(opts) - 8} more")
    return ", ".join(items) or "no options"


# ---------------------------------------------------------------------------------------------
# the entry point


def compare(
    a: DeviceTree,
    b: DeviceTree,
    backend_a: DeviceTree | None = None,
    backend_b: DeviceTree | None = None,
    *,
    bindings: BindingSet | None = None,
    backends: bool = True,
) -> DiffResult:
    """Compare two descriptions on what the guest sees (and, given both overlays, the back-ends).

    ``bindings`` types the properties (which cells are phandles, how to show a value); without
    it the standard phandle-bearing properties are still known.  Back-ends are compared when
    ``backends`` is true and both sides have them: the overlays, or merged trees that contain
    ``/qemu-backends``.  The trees are not modified.
    """
    side_a = _Side(a, bindings)
    side_b = _Side(b, bindings)
    cmp = _Comparison(side_a, side_b)
    cmp.align(a.root, b.root)
    cmp.find_moves()
    cmp.compare_pairs()
    cmp.node_entries()
    cmp.header_entries()
    guest = _finish(cmp.entries)
    backend: list[Entry] | None = None
    if backends:
        ba = _backends_from_overlay(backend_a, a) if backend_a is not None else _backends_from_tree(a)
        bb = _backends_from_overlay(backend_b, b) if backend_b is not None else _backends_from_tree(b)
        if ba is not None and bb is not None:
            backend = _finish(_compare_backends(cmp, ba, bb))
    return DiffResult(guest, backend)


def render_text(result: DiffResult, name_a: str, name_b: str) -> str:
    """The report for a terminal: a verdict line, the guest differences, then the back-ends."""
    na, nb = _clean(name_a, 200), _clean(name_b, 200)
    lines: list[str] = []
    if result.same:
        lines.append(f"{na} and {nb}: the same hardware for the guest")
    else:
        n = len([e for e in result.guest if e.kind != "truncated"])
        extra = result.guest[-1].fields.get("count", 0) if result.guest and result.guest[-1].kind == "truncated" else 0
        total = n + extra
        lines.append(f"{na} and {nb}: different hardware for the guest ({total} difference{'s' if total != 1 else ''})")
        lines.extend("  " + e.text for e in result.guest)
    if result.backend is not None:
        if result.backend:
            lines.append("back-end differences (host side; they do not change the exit status):")
            lines.extend("  " + e.text for e in result.backend)
        else:
            lines.append("back-ends: no differences")
    return "\n".join(lines) + "\n"


def render_json(result: DiffResult) -> dict[str, Any]:
    """``{"same": bool, "guest": [...], "backend": [...]}``; ``backend`` is empty when back-ends
    were not compared (``backend_compared`` says which)."""
    return {
        "same": result.same,
        "guest": [e.as_json() for e in result.guest],
        "backend": [e.as_json() for e in result.backend or []],
        "backend_compared": result.backend is not None,
    }
