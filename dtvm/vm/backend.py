"""A back-end overlay for a guest tree, written from simple options: how a host supplies its own.

The guest tree is the same on every host; disk images, netdevs and chardevs are not.  A
destination host takes the guest DTB it was given, says which image backs which disk and what
each NIC connects to, and gets an overlay that ``dtb2qemu`` turns into the same guest hardware
on its own back-ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dtvm.dt.tree import DeviceTree, Node
from dtvm.errors import DtvmError

__all__ = ["BackendError", "BackendSpec", "make_overlay", "parse_spec"]


class BackendError(DtvmError):
    """A back-end option that cannot be used (names the option or the node)."""

    exit_code = 2


@dataclass
class BackendSpec:
    """One ``--drive/--netdev/--chardev NODE=VALUE``: the device node and its back-end options."""

    kind: str
    node: str
    options: dict[str, str]


def parse_spec(kind: str, text: str) -> BackendSpec:
    """``/path/to/node=FILE[,format=F][,readonly=on]`` (drive), ``=user`` (netdev),
    ``=null`` or ``=socket:PATH`` (chardev)."""
    path, sep, value = text.partition("=")
    if not sep or not path.startswith("/") or not value:
        raise BackendError(f"--{kind} {text!r}: expected /node/path=VALUE")
    if kind == "drive":
        file, *rest = value.split(",")
        opts = {"file": file, "drv": "raw"}
        for item in rest:
            key, _, val = item.partition("=")
            if key == "format" and val:
                opts["drv"] = val
            elif key in ("readonly", "read-only"):
                opts["ro"] = "on" if val in ("", "on") else "off"
            else:
                raise BackendError(f"--drive {text!r}: unknown option {item!r} (format=, readonly)")
        if not file:
            raise BackendError(f"--drive {text!r}: no file")
        return BackendSpec(kind, path, opts)
    if kind == "netdev":
        if value != "user":
            raise BackendError(f"--netdev {text!r}: only 'user' is supported yet")
        return BackendSpec(kind, path, {"type": "user"})
    if kind == "chardev":
        if value == "null":
            return BackendSpec(kind, path, {"filename": "null"})
        if value.startswith("socket:") and len(value) > 7:
            return BackendSpec(kind, path, {"filename": "unix:" + value[7:] + ",server=on"})
        raise BackendError(f"--chardev {text!r}: expected null or socket:PATH")
    raise BackendError(f"unknown back-end kind {kind!r}")


def _str(value: str) -> bytes:
    return value.encode("utf-8") + b"\0"


def make_overlay(guest: DeviceTree, specs: list[BackendSpec]) -> DeviceTree:
    """The overlay that gives each named device node its back-end; BackendError naming a node
    that is not a device of this guest tree, or one named twice for the same kind."""
    root = Node("")
    catalogue_entries: list[tuple[str, str, dict[str, str]]] = []
    seen: set[tuple[str, str]] = set()
    for n, spec in enumerate(specs):
        node = guest.root.get_node(spec.node)
        if node is None or node.get_property("qemu,driver") is None:
            raise BackendError(f"--{spec.kind} {spec.node}: no device node at that path in the guest tree")
        if (spec.kind, spec.node) in seen:
            raise BackendError(f"--{spec.kind} {spec.node}: given twice")
        seen.add((spec.kind, spec.node))
        ident = f"{spec.kind}{n}"
        frag = Node(f"fragment@{n}")
        root.add_child(frag)
        frag.set_property("target-path", _str(spec.node))
        over = Node("__overlay__")
        frag.add_child(over)
        over.set_property(f"qemu,{spec.kind}", _str(ident))
        catalogue_entries.append((spec.kind, ident, spec.options))
    frag = Node(f"fragment@{len(specs)}")
    root.add_child(frag)
    frag.set_property("target-path", _str("/"))
    over = Node("__overlay__")
    frag.add_child(over)
    cat = Node("qemu-backends")
    over.add_child(cat)
    cat.set_property("compatible", _str("qemu,backends"))
    counters: dict[str, int] = {}
    for kind, ident, options in catalogue_entries:
        k = counters.get(kind, 0)
        counters[kind] = k + 1
        child = Node(f"{kind}-{k}")
        cat.add_child(child)
        child.set_property("compatible", _str(f"qemu,{kind}"))
        child.set_property("id", _str(ident))
        for key, value in sorted(options.items()):
            if not re.fullmatch(r"[a-z][a-z0-9-]*", key):
                raise BackendError(f"back-end option {key!r}: not a property name")
            child.set_property(key, _str(value))
    dt = DeviceTree(root)
    dt.plugin = True
    return dt
