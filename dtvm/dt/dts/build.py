"""Tree-building operations of the DTS language: merges, deletions, orphan fragments.

These are the actions dtc's parser runs as it reads each top-level block
(livetree.c: merge_nodes, delete_node, add_orphan_node, guess_boot_cpuid), kept apart from the
grammar so that the order of effects is easy to check against dtc. Merges are
iterative: a 10,000-level tree must not exhaust Python's stack.
"""

from __future__ import annotations

from collections.abc import Callable

from dtvm.dt.dts.source import extend_pos
from dtvm.dt.tree import Marker, MarkerType, Node, Property, add_label

__all__ = ["OrphanCounter", "add_orphan_node", "guess_boot_cpuid", "merge_nodes"]


def merge_nodes(old: Node, new: Node, on_label: Callable[[Node, str], None] | None = None) -> Node:
    """Merge ``new`` into ``old`` as dtc's merge_nodes does: later values win, old positions stay.

    The order of effects is dtc's: labels, then properties, then each child in
    turn, a colliding child merged completely before the next one is looked
    at, so ``b { }; /delete-node/ b;`` in a later block deletes the merged
    ``b``. An explicit stack replaces dtc's recursion (a 10,000-level tree must
    not exhaust Python's). ``on_label`` hears of every label that lands on an
    existing node, so the parser's label index stays current without a walk.
    """
    # frames: [old node, new node, index of the next child of new to merge]
    work: list[list] = [[old, new, -1]]
    while work:
        frame = work[-1]
        old_node, new_node, k = frame
        if k < 0:
            _merge_own(old_node, new_node, on_label)
            frame[2] = k = 0
        kids = new_node.children
        if k >= len(kids):
            # dtc's srcpos_extend: the node keeps the positions of all its blocks
            old_node.pos = extend_pos(old_node.pos, new_node.pos)
            new_node.children = []
            work.pop()
            continue
        frame[2] = k + 1
        new_child = kids[k]
        if new_child.deleted:
            # dtc's delete_node_by_name: the first child of that name, deleted or not
            for c in old_node.children:
                if c.name == new_child.name:
                    c.delete()
                    break
            continue
        for old_child in old_node.children:
            if old_child.name == new_child.name:
                work.append([old_child, new_child, -1])
                break
        else:
            old_node.add_child(new_child)
    return old


def _merge_own(old_node: Node, new_node: Node, on_label: Callable[[Node, str], None] | None) -> None:
    """The first half of dtc's merge_nodes: undelete, labels, then properties."""
    old_node.deleted = False
    for lab in new_node.labels:
        add_label(old_node.labels, lab.name)
        if on_label is not None:
            on_label(old_node, lab.name)
    for new_prop in new_node.props:
        if new_prop.deleted:
            old_node.delete_property(new_prop.name)
            continue
        for old_prop in old_node.props:
            if old_prop.name == new_prop.name:
                for lab in new_prop.labels:
                    add_label(old_prop.labels, lab.name)
                old_prop.value = new_prop.value
                old_prop.markers = new_prop.markers
                old_prop.deleted = False
                old_prop.pos = new_prop.pos
                break
        else:
            old_node.props.append(new_prop)
    new_node.props = []


class OrphanCounter:
    """dtc numbers /plugin/ fragments with a counter that lives for one compilation."""

    def __init__(self) -> None:
        self.next = 0


def add_orphan_node(root: Node, new_node: Node, ref: str, counter: OrphanCounter) -> None:
    """A ``&ref { }`` block of a /plugin/ becomes ``fragment@N { target...; __overlay__ {...} }``."""
    if ref.startswith("/"):
        data = ref.encode("latin-1") + b"\0"
        prop = Property("target-path", data, [Marker(0, MarkerType.TYPE_STRING, ref)])
    else:
        prop = Property(
            "target",
            b"\xff\xff\xff\xff",
            [Marker(0, MarkerType.REF_PHANDLE, ref)],  # no type marker, as in dtc 1.6.1
        )
    new_node.name = "__overlay__"
    frag = Node(f"fragment@{counter.next}")
    counter.next += 1
    frag.props.append(prop)
    frag.add_child(new_node)
    root.add_child(frag)


def guess_boot_cpuid(root: Node) -> int:
    """dtc's guess_boot_cpuid: the first child of /cpus (even a deleted one) with a one-cell reg."""
    cpus = root.get_node("/cpus")
    if cpus is None or not cpus.children:
        return 0
    first = cpus.children[0]
    reg = first.get_property("reg")
    if reg is None or len(reg.value) != 4:
        return 0
    return int.from_bytes(reg.value, "big")
