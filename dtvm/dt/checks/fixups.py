"""dtc's error-level checks and its fixups: names, labels, phandles, references, /omit-if-no-ref/.

These run first and change the tree (references become phandles and paths,
unused nodes go), so what they do and in which order decides the output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dtvm.dt.checks.common import (
    LABEL,
    NODECHARS,
    PROPNODECHARS,
    REF_PATH,
    REF_PHANDLE,
    Check,
    _basename,
    _is_one_string,
)
from dtvm.dt.tree import Marker, Node, Property

if TYPE_CHECKING:
    from dtvm.dt.checks.runner import CheckRunner


# -- the error-level checks and fixups -----------------------------------------------------------------------


def _check_duplicate_node_names(r: CheckRunner, c: Check) -> None:
    """dtc compares each live child with every later sibling, deleted ones included, and flags the later.

    So ``b { }; /delete-node/ b;`` in one block is a duplicate: the deleted
    ``b`` (whose path dtc prints as "(null)") follows a live one.
    """
    for node in r.nodes:
        kids = node.children
        if node.deleted or len(kids) < 2:
            continue
        groups: dict[str, list[int]] = {}
        for k, child in enumerate(kids):
            groups.setdefault(child.name, []).append(k)
        if len(groups) == len(kids):
            continue
        for k, child in enumerate(kids):
            if child.deleted:
                continue
            group = groups[child.name]
            if len(group) < 2:
                continue
            for k2 in group:
                if k2 > k:
                    r.fail(c, kids[k2], "Duplicate node name")


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
            # an empty value has no buffer in dtc: printf shows "(null)"
            shown = prop.value.split(b"\0", 1)[0].decode("latin-1") if prop.value else "(null)"
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
        r.phandles.hold(phandle, node)


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
