"""Overlay support: the nodes dtc generates for ``-A``, ``-@`` and ``/plugin/`` input.

After its checks, dtc 1.6.1 (dtc.c) runs, in this order::

    if (auto_label_aliases) generate_label_tree(dti, "aliases", false);
    if (generate_symbols)   generate_label_tree(dti, "__symbols__", true);
    if (generate_fixups) {  /* set for /plugin/ input */
        generate_fixups_tree(dti, "__fixups__");
        generate_local_fixups_tree(dti, "__local_fixups__");
    }

``generate_overlay_nodes`` reproduces these steps of ``livetree.c``, including
what is observable in ``-O dts`` output: every appended value carries a type
marker, as dtc 1.6.1's ``append_to_property(..., type)`` adds one, so several
fixups of one label print as ``"a:b:0", "c:d:4"`` and local fixup offsets as
``<0x00>, <0x04>``; label paths are strings (``"/"`` for the root, not
``[2f 00]``).

Walks are pre-order over live nodes and look at each node's children list
lazily (by index), as dtc's linked-list walk does, so nodes appended while
walking (the generated nodes themselves) are visited exactly when dtc visits
them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dtvm.dt.tree import DeviceTree, Marker, MarkerType, Node, Property
from dtvm.errors import DtvmError

if TYPE_CHECKING:
    from dtvm.dt.checks import CheckRunner

__all__ = [
    "generate_fixups_tree",
    "generate_label_tree",
    "generate_local_fixups_tree",
    "generate_overlay_nodes",
]


class FixupError(DtvmError):
    """dtc dies (exit 1) when a fixup entry would contain ':'."""


def _name_bytes(text: str) -> bytes:
    """Names and paths back to dtc's bytes (the tree holds them as latin-1, one character a byte)."""
    from dtvm.dt.dtb import encode_name

    return encode_name(text)


def _live_preorder(root: Node) -> Iterator[Node]:
    """Pre-order over live nodes; children are read by index, so appended children are seen.

    The root itself is always visited, deleted or not (``/delete-node/ &{/}``):
    dtc's walks start at the root without looking.
    """
    yield root
    stack: list[list[object]] = [[root, 0]]
    while stack:
        top = stack[-1]
        node: Node = top[0]  # type: ignore[assignment]
        i: int = top[1]  # type: ignore[assignment]
        kids = node.children
        while i < len(kids) and kids[i].deleted:
            i += 1
        if i >= len(kids):
            stack.pop()
            continue
        top[1] = i + 1
        child = kids[i]
        yield child
        stack.append([child, 0])


def _get_subnode(node: Node, name: str) -> Node:
    """dtc's build_root_node: a live child of that name, else a new last child."""
    child = node.get_child(name)
    if child is None:
        child = node.add_child(Node(name))
    return child


class _Builder:
    """Edits of one generation step, with the lookups dtc does by list scans indexed.

    dtc's get_subnode and get_property scan lists; on a large tree doing that per
    entry is quadratic in Python, so the first live child / property of each name
    is kept in a dict (only this step changes these nodes, and it only appends,
    so the first match never changes), and appended values grow in bytearrays
    that are stored back by :meth:`finish`.
    """

    def __init__(self) -> None:
        self.children: dict[int, dict[str, Node]] = {}
        self.props: dict[int, dict[str, Property]] = {}
        self.buffers: dict[int, tuple[Property, bytearray]] = {}

    def _child_index(self, node: Node) -> dict[str, Node]:
        index = self.children.get(id(node))
        if index is None:
            index = {}
            for c in node.children:
                if not c.deleted:
                    index.setdefault(c.name, c)
            self.children[id(node)] = index
        return index

    def _prop_index(self, node: Node) -> dict[str, Property]:
        index = self.props.get(id(node))
        if index is None:
            index = {}
            for p in node.props:
                if not p.deleted:
                    index.setdefault(p.name, p)
            self.props[id(node)] = index
        return index

    def subnode(self, node: Node, name: str) -> Node:
        """get_subnode, else build_and_name_child_node."""
        index = self._child_index(node)
        child = index.get(name)
        if child is None:
            child = index[name] = node.add_child(Node(name))
        return child

    def has_property(self, node: Node, name: str) -> bool:
        return name in self._prop_index(node)

    def add_property(self, node: Node, prop: Property) -> None:
        self._prop_index(node).setdefault(prop.name, prop)
        node.add_property(prop)

    def append(self, node: Node, name: str, data: bytes, mtype: MarkerType) -> None:
        """dtc's append_to_property: a type marker at the current end, then the data."""
        index = self._prop_index(node)
        prop = index.get(name)
        if prop is None:
            prop = Property(name, b"", [])
            self.add_property(node, prop)
        entry = self.buffers.get(id(prop))
        if entry is None:
            entry = self.buffers[id(prop)] = (prop, bytearray(prop.value))
        buf = entry[1]
        prop.markers.append(Marker(len(buf), mtype, name))
        buf += data

    def finish(self) -> None:
        for prop, buf in self.buffers.values():
            prop.value = bytes(buf)
        self.buffers.clear()


# -- label trees (-A aliases, -@ __symbols__) ------------------------------------------


def _any_label_tree(root: Node) -> bool:
    """dtc's any_label_tree: a live node (or the root, deleted or not) with a label list, deleted labels counted."""
    return any(node.labels for node in _live_preorder(root))


def generate_label_tree(
    dt: DeviceTree, runner: CheckRunner, name: str, allocph: bool, warnings: list[str]
) -> None:
    """dtc's generate_label_tree: every live label of a live node becomes a path property."""
    root = dt.root
    if not _any_label_tree(root):
        return
    an = _get_subnode(root, name)
    b = _Builder()
    for node in _live_preorder(root):
        # dtc tests node->labels: a list of only deleted labels still allocates a phandle
        if not node.labels:
            continue
        for lab in node.labels:
            if lab.deleted:
                continue
            if b.has_property(an, lab.name):
                warnings.append(f"WARNING: label {lab.name} already exists in /{an.name}")
                continue
            path = _name_bytes(node.path) + b"\0"
            b.add_property(an, Property(lab.name, path, [Marker(0, MarkerType.TYPE_STRING)]))
        if allocph:
            runner.node_phandle(node)
            if node is an:
                b.props.pop(id(an), None)  # node_phandle may have added properties to it


# -- fixups (/plugin/) -------------------------------------------------------------------


class _Resolver:
    """dtc's get_node_by_ref, with the label lookup cached.

    Only nodes that existed before this phase carry labels (generated nodes have
    none), so a label map built once answers as dtc's tree search would.
    """

    def __init__(self, root: Node) -> None:
        self.root = root
        self.labels: dict[str, Node] = {}
        for node in root.walk():
            for lab in node.labels:
                if not lab.deleted:
                    self.labels.setdefault(lab.name, node)

    def __call__(self, ref: str) -> Node | None:
        if ref == "/" or ref.startswith("/"):
            return self.root.get_node_by_ref(ref)
        slash = ref.find("/")
        if slash > 0:
            base = self.labels.get(ref[:slash])
            return None if base is None else base.get_node(ref[slash:])
        return self.labels.get(ref)


def _phandle_refs(node: Node) -> Iterator[tuple[Property, Marker]]:
    for prop in node.props:
        if prop.deleted:
            continue
        for m in prop.markers:
            if m.type == MarkerType.REF_PHANDLE:
                yield prop, m


def generate_fixups_tree(dt: DeviceTree, name: str = "__fixups__") -> None:
    """dtc's generate_fixups_tree: one ``path:property:offset`` string per unresolved reference."""
    root = dt.root
    resolve = _Resolver(root)
    if not any(
        resolve(m.ref) is None  # type: ignore[arg-type]
        for node in _live_preorder(root)  # the root too when deleted, as the walk below
        for _prop, m in _phandle_refs(node)
    ):
        return
    fn = _get_subnode(root, name)
    b = _Builder()
    for node in _live_preorder(root):
        for prop, m in _phandle_refs(node):
            ref: str = m.ref  # type: ignore[assignment]
            if resolve(ref) is not None:
                continue
            path = node.path
            if ":" in path or ":" in prop.name:
                raise FixupError(
                    f"error: arguments should not contain ':' "
                    f'(fixup of reference "{ref}" in node {path}, property {prop.name})'
                )
            entry = _name_bytes(f"{path}:{prop.name}:{m.offset}") + b"\0"
            b.append(fn, ref, entry, MarkerType.TYPE_STRING)
    b.finish()


def generate_local_fixups_tree(dt: DeviceTree, name: str = "__local_fixups__") -> None:
    """dtc's generate_local_fixups_tree: mirror each node holding resolved references, list offsets."""
    root = dt.root
    resolve = _Resolver(root)
    if not any(
        resolve(m.ref) is not None  # type: ignore[arg-type]
        for node in root.walk()
        for _prop, m in _phandle_refs(node)
    ):
        return
    lfn = _get_subnode(root, name)
    b = _Builder()
    # the mirror of each source node under lfn (dtc walks the path down from lfn each time;
    # the answer never changes within this step, since nodes are only appended)
    mirror: dict[int, Node] = {id(root): lfn}

    def mirror_of(node: Node) -> Node:
        chain: list[Node] = []
        wn: Node | None = node
        while wn is not None and id(wn) not in mirror:
            chain.append(wn)
            wn = wn.parent
        m = mirror[id(wn)] if wn is not None else lfn
        for n in reversed(chain):
            m = mirror[id(n)] = b.subnode(m, n.name)
        return m

    for node in _live_preorder(root):
        for prop, m in _phandle_refs(node):
            if resolve(m.ref) is None:  # type: ignore[arg-type]
                continue
            b.append(mirror_of(node), prop.name, m.offset.to_bytes(4, "big"), MarkerType.TYPE_UINT32)
    b.finish()


def generate_overlay_nodes(
    dt: DeviceTree,
    runner: CheckRunner,
    auto_alias: bool = False,
    symbols: bool = False,
    fixups: bool = False,
    messages: list[str] | None = None,
) -> None:
    """dtc 1.6.1's steps after process_checks: aliases, __symbols__, __fixups__, __local_fixups__.

    Warnings (a label that already exists in the label tree) go to ``messages`` if given,
    else straight to stderr as dtc prints them.
    """
    warnings: list[str] = messages if messages is not None else []
    try:
        if auto_alias:
            generate_label_tree(dt, runner, "aliases", False, warnings)
        if symbols:
            generate_label_tree(dt, runner, "__symbols__", True, warnings)
        if fixups:
            generate_fixups_tree(dt, "__fixups__")
            generate_local_fixups_tree(dt, "__local_fixups__")
    finally:
        if messages is None:
            for w in warnings:
                sys.stderr.write(w + "\n")
