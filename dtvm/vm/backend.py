"""A back-end overlay for a guest tree, written from simple options: how a host supplies its own.

The guest tree is the same on every host; disk images, netdevs and chardevs are not.  A
destination host takes the guest DTB it was given, says which image backs which disk and what
each NIC connects to, and gets an overlay that ``dtb2qemu`` turns into the same guest hardware
on its own back-ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dtvm.dt.tree import DeviceTree
from dtvm.errors import DtvmError
from dtvm.vm import codec
from dtvm.vm.model import Backend

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
    ``=null`` or ``=socket:PATH`` (chardev), ``=DIR[,security_model=M][,readonly]`` (fsdev: a 9p
    device's exported directory, ``-fsdev local``)."""
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
    if kind == "fsdev":
        directory, *rest = value.split(",")
        opts = {"driver": "local", "path": directory, "security_model": "none"}
        for item in rest:
            key, _, val = item.partition("=")
            if key == "security_model" and val in ("none", "passthrough", "mapped-xattr", "mapped-file"):
                opts["security_model"] = val
            elif key == "readonly" and val in ("", "on", "off"):
                opts["readonly"] = val or "on"
            else:
                raise BackendError(f"--fsdev {text!r}: unknown option {item!r} (security_model=none|passthrough|"
                                   "mapped-xattr|mapped-file, readonly)")
        if not directory.startswith("/"):
            raise BackendError(f"--fsdev {text!r}: the directory must be an absolute path")
        return BackendSpec(kind, path, dict(sorted(opts.items())))
    raise BackendError(f"unknown back-end kind {kind!r}")


def make_overlay(guest: DeviceTree, specs: list[BackendSpec]) -> DeviceTree:
    """The overlay that gives each named device node its back-end; BackendError naming a node
    that is not a device of this guest tree, or one named twice for the same kind."""
    targets: list[tuple[str, dict[str, bytes]]] = []
    backends: list[Backend] = []
    seen: set[tuple[str, str]] = set()
    for n, spec in enumerate(specs):
        node = guest.root.get_node(spec.node)
        if node is None or node.get_property("qemu,driver") is None:
            raise BackendError(f"--{spec.kind} {spec.node}: no device node at that path in the guest tree")
        if (spec.kind, spec.node) in seen:
            raise BackendError(f"--{spec.kind} {spec.node}: given twice")
        seen.add((spec.kind, spec.node))
        ident = f"{spec.kind}{n}"
        targets.append((spec.node, codec.host_props({spec.kind: ident})))
        for key in spec.options:
            if not re.fullmatch(r"[a-z][a-z0-9_-]*", key):
                raise BackendError(f"back-end option {key!r}: not a property name")
        backends.append(Backend(spec.kind, ident, dict(spec.options)))
    return codec.encode_overlay(targets, backends, {})
