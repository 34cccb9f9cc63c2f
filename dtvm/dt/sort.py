"""``dtc -s``: sort reservations, properties and nodes, as dtc 1.6.1's sort_tree does.

Reservations sort by (address, size); in every node, deleted ones included
(dtc's ``for_each_*_withdel``), properties and children sort by name in byte
order (strcmp). dtc calls qsort, which the C standard does not require to be
stable; glibc (up to 2.36, Debian 12's) implements it as a merge sort, which is
stable, so Python's stable sort gives the same order for equal names (only
possible with ``-f`` after duplicate-name errors, or with deleted entries).
"""

from __future__ import annotations

from dtvm.dt.tree import DeviceTree, Node

__all__ = ["sort_node", "sort_tree"]


def _name_key(name: str) -> bytes:
    """strcmp order: compare the name's bytes (as dtb.encode_name gives them) as unsigned chars."""
    from dtvm.dt.dtb import encode_name

    return encode_name(name)


def sort_node(node: Node) -> None:
    """Sort the properties and children of ``node`` and of every node below it (iteratively)."""
    stack = [node]
    while stack:
        n = stack.pop()
        n.props.sort(key=lambda p: _name_key(p.name))
        n.children.sort(key=lambda c: _name_key(c.name))
        stack.extend(n.children)


def sort_tree(dt: DeviceTree) -> None:
    """dtc's sort_tree: reservations by (address, size), then every node."""
    dt.reservations.sort(key=lambda r: (r.address, r.size))
    sort_node(dt.root)
