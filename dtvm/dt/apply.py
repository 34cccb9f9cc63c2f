"""Overlay application on raw blobs: libfdt 1.6.1's ``fdt_overlay_apply``, byte for byte.

``fdtoverlay`` does not merge trees: it runs ``fdt_overlay_apply`` on the base
blob in a buffer and packs the result.  To write the same bytes, this module
ports that function step by step onto :class:`dtvm.dt.libfdt.Fdt`, in libfdt's
order and with its results:

1. ``overlay_adjust_local_phandles``: every ``phandle`` / ``linux,phandle`` of
   the overlay is raised by the base's largest phandle;
2. ``overlay_update_local_references``: the cells listed under
   ``/__local_fixups__`` are raised by the same amount;
3. ``overlay_fixup_phandles``: each ``/__fixups__`` entry ``path:prop:offset``
   gets the phandle of the base node that the base's ``/__symbols__`` names;
4. ``overlay_merge``: each ``fragment`` with an ``__overlay__`` node is merged
   into its target (``target = <phandle>`` or ``target-path``), properties with
   ``fdt_setprop`` and subnodes with ``fdt_add_subnode``;
5. ``overlay_symbol_update``: the overlay's ``/__symbols__`` that point into a
   fragment are added to the base's ``/__symbols__`` with the target's path.

The error codes are libfdt's, so the exit status and the retry-on-NOSPACE
behaviour of fdtoverlay are kept; in addition every failure carries a message
that says in words what failed (which fixup, label, target, fragment), where
fdtoverlay prints only ``FDT_ERR_...``.
"""

from __future__ import annotations

import struct

from dtvm.dt.libfdt import (
    FDT_ERR_BADOVERLAY,
    FDT_ERR_BADPHANDLE,
    FDT_ERR_BADVALUE,
    FDT_ERR_EXISTS,
    FDT_ERR_INTERNAL,
    FDT_ERR_NOPHANDLES,
    FDT_ERR_NOSPACE,
    FDT_ERR_NOTFOUND,
    Fdt,
    strerror,
)

__all__ = ["ApplyFailure", "overlay_apply"]

_M = 0xFFFFFFFF


def _s(b: bytes | None) -> str:
    return "" if b is None else b.decode("latin-1")


class ApplyFailure:
    """Why ``overlay_apply`` failed: the libfdt code and a sentence for people.

    ``retry`` is True when the failure is libfdt running out of room in the
    buffer (fdtoverlay then grows the buffer and starts again); a NOSPACE that
    more room cannot cure (a fixup offset past the end of its property) has
    ``retry`` False.
    """

    def __init__(self, code: int, message: str, retry: bool = False) -> None:
        self.code = code
        self.message = message
        self.retry = retry

    def __str__(self) -> str:
        return f"{self.message} ({strerror(self.code)})"


class _Applier:
    def __init__(self, fdt: Fdt, fdto: Fdt) -> None:
        self.fdt = fdt
        self.fdto = fdto
        self.failure: ApplyFailure | None = None

    # -- helpers -------------------------------------------------------------

    def fail(self, code: int, message: str, retry: bool = False) -> int:
        """Record why (the first, innermost reason wins) and return ``code``."""
        if self.failure is None:
            self.failure = ApplyFailure(code, message, retry)
        return code

    def fail_rw(self, code: int, what: str) -> int:
        """A libfdt read-write call failed; NOSPACE means "grow the buffer and retry"."""
        if code == -FDT_ERR_NOSPACE:
            return self.fail(code, f"{what}: the output buffer is full", retry=True)
        return self.fail(code, f"{what}: {strerror(code)}")

    @staticmethod
    def path(fdt: Fdt, node: int) -> str:
        """The path of a node, for messages."""
        parts: list[str] = []
        guard = 0
        while node > 0 and guard < 4096:
            name, _ = fdt.get_name(node)
            if name is None:
                return "?"
            parts.append(_s(name))
            node = fdt.parent_offset(node)
            guard += 1
        return "/" + "/".join(reversed(parts))

    def frag_name(self, fragment: int) -> str:
        name, _ = self.fdto.get_name(fragment)
        return _s(name)

    # -- overlay_get_target -------------------------------------------------

    def get_target(self, fragment: int) -> tuple[int, bytes | None, int]:
        """``overlay_get_target``: (target offset or error, target-path or None, position of target-path)."""
        fdt, fdto = self.fdt, self.fdto
        frag = self.frag_name(fragment)
        pos, ln = fdto.getprop(fragment, b"target")
        phandle = 0
        if pos >= 0:
            raw = fdto.u32(pos) if ln >= 4 else None
            if ln != 4 or raw == _M:
                return (
                    self.fail(
                        -FDT_ERR_BADPHANDLE,
                        f"fragment '{frag}': its 'target' property is not a single valid phandle",
                    ),
                    None,
                    -1,
                )
            assert raw is not None
            phandle = raw
        path: bytes | None = None
        ppos = -1
        path_len = 0
        if not phandle:
            ppos, path_len = fdto.getprop(fragment, b"target-path")
            if ppos >= 0:
                path = fdto.cstr(ppos)
                ret = fdt.path_offset(path)
                if ret < 0:
                    self.fail(
                        ret, f"fragment '{frag}': target-path '{_s(path)}' is not a node of the base tree"
                    )
            else:
                ret = path_len
        else:
            ret = fdt.node_offset_by_phandle(phandle)
            if ret < 0:
                self.fail(
                    ret, f"fragment '{frag}': target phandle {phandle:#x} is not a node of the base tree"
                )
        if ret < 0 and path_len == -FDT_ERR_NOTFOUND:
            ret = self.fail(
                -FDT_ERR_BADOVERLAY,
                f"fragment '{frag}' has an __overlay__ node but neither a 'target' nor a 'target-path' property",
            )
        if ret < 0:
            if self.failure is None:
                self.fail(ret, f"fragment '{frag}': cannot read its target: {strerror(ret)}")
            return ret, None, -1
        return ret, path, ppos

    # -- 1. overlay_adjust_local_phandles ----------------------------------

    def phandle_add_offset(self, node: int, name: bytes, delta: int) -> int:
        fdto = self.fdto
        pos, ln = fdto.getprop(node, name)
        if pos < 0:
            return ln
        if ln != 4:
            where = f"overlay node {self.path(fdto, node)}"
            return self.fail(
                -FDT_ERR_BADPHANDLE, f"{where}: '{_s(name)}' is {ln} bytes long, not a 4-byte phandle"
            )
        adj = fdto.u32(pos)
        if adj + delta > _M or adj + delta == _M:
            where = f"overlay node {self.path(fdto, node)}"
            return self.fail(
                -FDT_ERR_NOPHANDLES,
                f"{where}: phandle {adj:#x} plus {delta:#x} (the base tree's largest phandle) is not a valid phandle",
            )
        adj += delta
        return fdto.setprop_inplace(node, name, struct.pack(">I", adj))

    def _adjust_one(self, node: int, delta: int) -> int:
        ret = self.phandle_add_offset(node, b"phandle", delta)
        if ret and ret != -FDT_ERR_NOTFOUND:
            return ret
        ret = self.phandle_add_offset(node, b"linux,phandle", delta)
        if ret and ret != -FDT_ERR_NOTFOUND:
            return ret
        return 0

    def adjust_node_phandles(self, node: int, delta: int) -> int:
        """libfdt's recursion, in the same order with an explicit stack (any nesting depth)."""
        ret = self._adjust_one(node, delta)
        if ret:
            return ret
        stack = [iter(self.fdto.subnodes(node))]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                continue
            ret = self._adjust_one(child, delta)
            if ret:
                return ret
            stack.append(iter(self.fdto.subnodes(child)))
        return 0

    # -- 2. overlay_update_local_references ---------------------------------

    def _local_props(self, tree_node: int, fixup_node: int, delta: int) -> int:
        fdto = self.fdto
        for fixup_prop in fdto.property_offsets(fixup_node):
            fpos, name, fixup_len = fdto.getprop_by_offset(fixup_prop)

            def where(fixup_node: int = fixup_node, name: bytes | None = name) -> str:
                return f"__local_fixups__ entry {self.path(fdto, fixup_node)}:{_s(name)}"

            if fpos < 0 or name is None:
                return self.fail(fixup_len, f"{where()}: cannot read it: {strerror(fixup_len)}")
            if fixup_len % 4:
                return self.fail(
                    -FDT_ERR_BADOVERLAY, f"{where()}: its length {fixup_len} is not a multiple of 4"
                )
            tpos, tree_len = fdto.getprop(tree_node, name)
            if tpos < 0:
                tree_path = self.path(fdto, tree_node)
                if tree_len == -FDT_ERR_NOTFOUND:
                    return self.fail(
                        -FDT_ERR_BADOVERLAY,
                        f"{where()}: the overlay node {tree_path} has no property '{_s(name)}'",
                    )
                return self.fail(
                    tree_len,
                    f"{where()}: cannot read property '{_s(name)}' of {tree_path}: {strerror(tree_len)}",
                )
            for i in range(fixup_len // 4):
                poffset = fdto.u32(fpos + 4 * i)
                if (tree_len & _M) < ((4 + poffset) & _M):
                    return self.fail(
                        -FDT_ERR_BADOVERLAY,
                        f"{where()}: offset {poffset} is outside property '{_s(name)}' ({tree_len} bytes) "
                        f"of overlay node {self.path(fdto, tree_node)}",
                    )
                adj = (int.from_bytes(fdto.read(tpos + poffset, 4), "big") + delta) & _M
                ret = fdto.setprop_inplace_namelen_partial(tree_node, name, poffset, struct.pack(">I", adj))
                if ret == -FDT_ERR_NOSPACE:
                    return self.fail(
                        -FDT_ERR_BADOVERLAY, f"{where()}: offset {poffset} is outside property '{_s(name)}'"
                    )
                if ret:
                    return self.fail(ret, f"{where()}: {strerror(ret)}")
        return 0

    def _local_child(self, tree_node: int, fixup_child: int) -> int:
        """The overlay node a __local_fixups__ child stands for (or an error code, reported)."""
        fdto = self.fdto
        child_name, _ = fdto.get_name(fixup_child)
        assert child_name is not None
        tree_child = fdto.subnode_offset(tree_node, child_name)
        if tree_child == -FDT_ERR_NOTFOUND:
            return self.fail(
                -FDT_ERR_BADOVERLAY,
                f"__local_fixups__ node {self.path(fdto, fixup_child)}: the overlay has no node "
                f"'{_s(child_name)}' under {self.path(fdto, tree_node)}",
            )
        if tree_child < 0:
            return self.fail(
                tree_child,
                f"__local_fixups__ node {self.path(fdto, fixup_child)}: {strerror(tree_child)}",
            )
        return tree_child

    def update_local_node_references(self, tree_node: int, fixup_node: int, delta: int) -> int:
        """libfdt's recursion over __local_fixups__, same order, explicit stack (any depth)."""
        ret = self._local_props(tree_node, fixup_node, delta)
        if ret:
            return ret
        stack = [(tree_node, iter(self.fdto.subnodes(fixup_node)))]
        while stack:
            parent, children = stack[-1]
            fixup_child = next(children, None)
            if fixup_child is None:
                stack.pop()
                continue
            tree_child = self._local_child(parent, fixup_child)
            if tree_child < 0:
                return tree_child
            ret = self._local_props(tree_child, fixup_child, delta)
            if ret:
                return ret
            stack.append((tree_child, iter(self.fdto.subnodes(fixup_child))))
        return 0

    def update_local_references(self, delta: int) -> int:
        fixups = self.fdto.path_offset(b"/__local_fixups__")
        if fixups < 0:
            if fixups == -FDT_ERR_NOTFOUND:
                return 0
            return self.fail(fixups, f"cannot read the overlay's /__local_fixups__: {strerror(fixups)}")
        return self.update_local_node_references(0, fixups, delta)

    # -- 3. overlay_fixup_phandles -------------------------------------------

    def fixup_one_phandle(
        self,
        symbols_off: int,
        path: bytes,
        path_len: int,
        name: bytes,
        poffset: int,
        label: bytes,
        entry: str,
    ) -> int:
        fdt, fdto = self.fdt, self.fdto
        what = f"__fixups__ entry '{entry}' (label '{_s(label)}')"
        if symbols_off < 0:
            return self.fail(
                symbols_off,
                f"{what}: the base tree has no /__symbols__ node to resolve the label (compile the base with dtc -@)",
            )
        spos, prop_len = fdt.getprop(symbols_off, label)
        if spos < 0:
            if prop_len == -FDT_ERR_NOTFOUND:
                return self.fail(
                    prop_len, f"{what}: label '{_s(label)}' is not in the base tree's /__symbols__"
                )
            return self.fail(prop_len, f"{what}: cannot read /__symbols__/{_s(label)}: {strerror(prop_len)}")
        symbol_path = fdt.cstr(spos)
        symbol_off = fdt.path_offset(symbol_path)
        if symbol_off < 0:
            return self.fail(
                symbol_off,
                f"{what}: /__symbols__ says '{_s(symbol_path)}', which is not a node of the base tree",
            )
        phandle = fdt.get_phandle(symbol_off)
        if not phandle:
            return self.fail(-FDT_ERR_NOTFOUND, f"{what}: the base node {_s(symbol_path)} has no phandle")
        fixup_off = fdto.path_offset_namelen(path, path_len)
        if fixup_off == -FDT_ERR_NOTFOUND:
            return self.fail(-FDT_ERR_BADOVERLAY, f"{what}: the overlay has no node '{_s(path[:path_len])}'")
        if fixup_off < 0:
            return self.fail(
                fixup_off, f"{what}: bad overlay path '{_s(path[:path_len])}': {strerror(fixup_off)}"
            )
        ret = fdto.setprop_inplace_namelen_partial(fixup_off, name, poffset, struct.pack(">I", phandle))
        if ret == -FDT_ERR_NOSPACE:
            _, plen = fdto.getprop(fixup_off, name)
            return self.fail(
                ret,
                f"{what}: offset {poffset} is outside property '{_s(name)}' ({plen} bytes) of overlay node {_s(path[:path_len])}",
                retry=False,
            )
        if ret == -FDT_ERR_NOTFOUND:
            return self.fail(ret, f"{what}: overlay node {_s(path[:path_len])} has no property '{_s(name)}'")
        if ret:
            return self.fail(ret, f"{what}: {strerror(ret)}")
        return 0

    def fixup_phandle(self, symbols_off: int, prop: int) -> int:
        fdto = self.fdto
        vpos, label, ln = fdto.getprop_by_offset(prop)
        if vpos < 0 or label is None:
            if ln == -FDT_ERR_NOTFOUND:
                return self.fail(-FDT_ERR_INTERNAL, "cannot read a /__fixups__ property")
            return self.fail(ln, f"cannot read a /__fixups__ property: {strerror(ln)}")
        value = fdto.read(vpos, ln)
        v = 0
        while True:
            rest = value[v:]
            end = rest.find(b"\0")
            if end < 0:
                return self.fail(
                    -FDT_ERR_BADOVERLAY, f"/__fixups__/{_s(label)}: the value is not NUL-terminated"
                )
            fixup = rest[:end]
            entry = _s(fixup)
            ln -= end + 1
            v += end + 1
            bad = f"/__fixups__/{_s(label)}: malformed entry '{entry}' (expected <path>:<property>:<offset>)"
            sep = fixup.find(b":")
            if sep < 0:
                return self.fail(-FDT_ERR_BADOVERLAY, bad)
            path_len = sep
            if path_len == (end - 1) & _M:
                return self.fail(-FDT_ERR_BADOVERLAY, bad)
            rest2 = fixup[sep + 1 :]
            sep2 = rest2.find(b":")
            if sep2 < 0:
                return self.fail(-FDT_ERR_BADOVERLAY, bad)
            name = rest2[:sep2]
            if not name:
                return self.fail(-FDT_ERR_BADOVERLAY, bad)
            num = rest2[sep2 + 1 :]
            poffset = _strtoul10(num)
            if poffset is None:
                return self.fail(-FDT_ERR_BADOVERLAY, bad)
            # the path is read in place (C reads path[0] even when path_len is 0)
            ret = self.fixup_one_phandle(symbols_off, fixup, path_len, name, _c_int(poffset), label, entry)
            if ret:
                return ret
            if ln <= 0:
                return 0

    def fixup_phandles(self) -> int:
        fdt, fdto = self.fdt, self.fdto
        fixups_off = fdto.path_offset(b"/__fixups__")
        if fixups_off == -FDT_ERR_NOTFOUND:
            return 0
        if fixups_off < 0:
            return self.fail(fixups_off, f"cannot read the overlay's /__fixups__: {strerror(fixups_off)}")
        symbols_off = fdt.path_offset(b"/__symbols__")
        if symbols_off < 0 and symbols_off != -FDT_ERR_NOTFOUND:
            return self.fail(
                symbols_off, f"cannot read the base tree's /__symbols__: {strerror(symbols_off)}"
            )
        for prop in fdto.property_offsets(fixups_off):
            ret = self.fixup_phandle(symbols_off, prop)
            if ret:
                return ret
        return 0

    # -- 4. overlay_merge ----------------------------------------------------

    def _apply_props(self, target: int, node: int) -> int:
        fdt, fdto = self.fdt, self.fdto
        for prop in fdto.property_offsets(node):
            vpos, name, prop_len = fdto.getprop_by_offset(prop)
            if prop_len == -FDT_ERR_NOTFOUND:
                return self.fail(
                    -FDT_ERR_INTERNAL, f"overlay node {self.path(fdto, node)}: cannot read a property"
                )
            if prop_len < 0 or name is None:
                return self.fail(
                    prop_len,
                    f"overlay node {self.path(fdto, node)}: cannot read a property: {strerror(prop_len)}",
                )
            ret = fdt.setprop(target, name, fdto.read(vpos, prop_len))
            if ret:
                return self.fail_rw(
                    ret, f"setting property '{_s(name)}' of base node {self.path(fdt, target)}"
                )
        return 0

    def _apply_child(self, target: int, subnode: int) -> int:
        """The base node for overlay ``subnode`` under ``target``, added if missing (or an error)."""
        fdt, fdto = self.fdt, self.fdto
        name, _ = fdto.get_name(subnode)
        assert name is not None
        nnode = fdt.add_subnode(target, name)
        if nnode == -FDT_ERR_EXISTS:
            nnode = fdt.subnode_offset(target, name)
            if nnode == -FDT_ERR_NOTFOUND:
                return self.fail(
                    -FDT_ERR_INTERNAL,
                    f"base node {self.path(fdt, target)}: subnode '{_s(name)}' both exists and does not",
                )
        if nnode < 0:
            return self.fail_rw(nnode, f"adding node '{_s(name)}' under base node {self.path(fdt, target)}")
        return nnode

    def apply_node(self, target: int, node: int) -> int:
        """libfdt's overlay_apply_node recursion, same order, explicit stack (any depth).

        A target offset held on the stack stays valid while its descendants are added, as in
        libfdt's recursion: everything added goes after the node's own start."""
        ret = self._apply_props(target, node)
        if ret:
            return ret
        stack = [(target, iter(self.fdto.subnodes(node)))]
        while stack:
            parent, children = stack[-1]
            subnode = next(children, None)
            if subnode is None:
                stack.pop()
                continue
            nnode = self._apply_child(parent, subnode)
            if nnode < 0:
                return nnode
            ret = self._apply_props(nnode, subnode)
            if ret:
                return ret
            stack.append((nnode, iter(self.fdto.subnodes(subnode))))
        return 0

    def merge(self) -> int:
        fdto = self.fdto
        for fragment in fdto.subnodes(0):
            overlay = fdto.subnode_offset(fragment, b"__overlay__")
            if overlay == -FDT_ERR_NOTFOUND:
                continue
            if overlay < 0:
                return self.fail(overlay, f"fragment '{self.frag_name(fragment)}': {strerror(overlay)}")
            target, _, _ = self.get_target(fragment)
            if target < 0:
                return target
            ret = self.apply_node(target, overlay)
            if ret:
                return ret
        return 0

    # -- 5. overlay_symbol_update ------------------------------------------

    def get_path_len(self, node: int) -> int:
        fdt = self.fdt
        err = fdt.ro_probe()
        if err < 0:
            return err
        ln = 0
        while True:
            name, namelen = fdt.get_name(node)
            if name is None:
                return namelen
            if namelen == 0:
                break
            node = fdt.parent_offset(node)
            if node < 0:
                return node
            ln += namelen + 1
        return ln or 1

    def symbol_update(self) -> int:
        fdt, fdto = self.fdt, self.fdto
        ov_sym = fdto.subnode_offset(0, b"__symbols__")
        if ov_sym < 0:
            return 0
        root_sym = fdt.subnode_offset(0, b"__symbols__")
        if root_sym == -FDT_ERR_NOTFOUND:
            root_sym = fdt.add_subnode(0, b"__symbols__")
        if root_sym < 0:
            return self.fail_rw(root_sym, "creating the base tree's /__symbols__")
        for prop in fdto.property_offsets(ov_sym):
            ppos, name, path_len = fdto.getprop_by_offset(prop)
            if ppos < 0 or name is None:
                return self.fail(
                    path_len, f"cannot read an overlay /__symbols__ property: {strerror(path_len)}"
                )
            what = f"overlay symbol '{_s(name)}'"
            path = fdto.read(ppos, path_len) if path_len > 0 else b""
            if path_len < 1 or path.find(b"\0") != path_len - 1:
                return self.fail(-FDT_ERR_BADVALUE, f"{what}: the value is not one NUL-terminated string")
            path = path[:-1]
            if not path.startswith(b"/"):
                return self.fail(-FDT_ERR_BADVALUE, f"{what}: '{_s(path)}' is not an absolute path")
            s = path.find(b"/", 1)
            if s < 0:
                continue  # refers to something that will not end up in the base tree
            frag_name = path[1:s]
            tail = path[s:]
            el = len(tail) + 1  # C's e - s counts the NUL
            if el > 13 and tail[:13] == b"/__overlay__/":
                rel_path = tail[13:]
            elif el == 13 and tail[:12] == b"/__overlay__":
                rel_path = b""
            else:
                continue  # not in a fragment's __overlay__: it will not end up in the base tree
            fragment = fdto.subnode_offset_namelen(0, frag_name)
            if fragment < 0:
                return self.fail(
                    -FDT_ERR_BADOVERLAY,
                    f"{what}: '{_s(path)}' names fragment '{_s(frag_name)}', which the overlay does not have",
                )
            if fdto.subnode_offset(fragment, b"__overlay__") < 0:
                return self.fail(
                    -FDT_ERR_BADOVERLAY, f"{what}: fragment '{_s(frag_name)}' has no __overlay__ node"
                )
            target, target_path, _ = self.get_target(fragment)
            if target < 0:
                return target
            if target_path is None:
                ln = self.get_path_len(target)
                if ln < 0:
                    return self.fail(
                        ln,
                        f"{what}: cannot compute the path of the target of fragment '{_s(frag_name)}': {strerror(ln)}",
                    )
            else:
                ln = len(target_path)
            ret, p = fdt.setprop_placeholder(root_sym, name, ln + (1 if ln > 1 else 0) + len(rel_path) + 1)
            if ret < 0:
                return self.fail_rw(ret, f"adding symbol '{_s(name)}' to the base tree's /__symbols__")
            if target_path is None:
                target, target_path, _ = self.get_target(fragment)
                if target < 0:
                    return target
            if ln > 1:
                if target_path is None:
                    ret = fdt.get_path_into(target, p, ln + 1)
                    if ret < 0:
                        return self.fail_rw(
                            ret, f"{what}: computing the path of base node {self.path(fdt, target)}"
                        )
                else:
                    fdt.write(p, target_path + b"\0")
            else:
                ln -= 1
            fdt.write(p + ln, b"/" + rel_path + b"\0")
        return 0


def _strtoul10(num: bytes) -> int | None:
    """``strtoul(s, &end, 10)`` that must consume all of ``s`` and at least one digit."""
    i = 0
    n = len(num)
    while i < n and num[i] in b" \t\n\v\f\r":
        i += 1
    neg = False
    if i < n and num[i] in b"+-":
        neg = num[i] == 0x2D
        i += 1
    j = i
    while j < n and 0x30 <= num[j] <= 0x39:
        j += 1
    if j == i or j != n:
        return None
    value = int(num[i:j])
    if value > (1 << 64) - 1:
        value = (1 << 64) - 1
    elif neg:
        value = (-value) & ((1 << 64) - 1)
    return value


def _c_int(value: int) -> int:
    """An ``unsigned long`` stored into an ``int`` (then passed on as ``uint32_t``)."""
    return value & _M


def overlay_apply(fdt: Fdt, fdto: Fdt) -> tuple[int, ApplyFailure | None]:
    """``fdt_overlay_apply(fdt, fdto)``: (error code, why).

    Both blobs are modified in place as libfdt modifies them (on failure the
    base's magic is destroyed, as libfdt does; callers work on copies).
    """
    a = _Applier(fdt, fdto)
    err = fdt.ro_probe()
    if err < 0:
        return err, ApplyFailure(err, f"the base blob is not usable: {strerror(err)}")
    err = fdto.ro_probe()
    if err < 0:
        return err, ApplyFailure(err, f"the overlay blob is not usable: {strerror(err)}")
    ret, delta = fdt.find_max_phandle()
    if ret:
        a.fail(ret, f"cannot scan the base tree's phandles: {strerror(ret)}")
    for step in (
        lambda: a.adjust_node_phandles(0, delta),
        lambda: a.update_local_references(delta),
        a.fixup_phandles,
        a.merge,
        a.symbol_update,
    ):
        if ret:
            break
        ret = step()
    fdto.set_magic(_M)
    if ret:
        fdt.set_magic(_M)
        failure = a.failure or ApplyFailure(ret, strerror(ret), retry=ret == -FDT_ERR_NOSPACE)
        return ret, failure
    return 0, None
