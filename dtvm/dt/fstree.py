"""``dtc -I fs``: a tree from a directory laid out like /proc/device-tree.

Every regular file is a property holding the file's bytes, every directory a
node. Entries come in readdir order (os.scandir keeps it), as dtc's
read_fstree takes them, so the output matches dtc's on the same directory.
"""

from __future__ import annotations

import os
import stat

from dtvm.dt.dts.build import guess_boot_cpuid
from dtvm.dt.tree import DeviceTree, Marker, MarkerType, Node, Property
from dtvm.errors import DtvmError
from dtvm.fileio import MAX_BLOB

__all__ = ["read_fs"]

MAX_DEPTH = 10000


def read_fs(dirname: str) -> DeviceTree:
    """Read a directory tree; unreadable files are skipped with dtc's warning on stderr."""
    import sys

    root = Node("")
    total = 0
    stack: list[tuple[str, Node, int]] = [(dirname, root, 0)]
    while stack:
        path, node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DtvmError(f"{path}: error: directory tree nested too deeply")
        try:
            entries = list(os.scandir(path))
        except OSError as exc:
            raise DtvmError(f'Couldn\'t opendir() "{path}": {exc.strerror}') from None
        children: list[tuple[str, Node, int]] = []
        for entry in entries:
            full = path + entry.name if path.endswith("/") else path + "/" + entry.name
            try:
                st = os.stat(full)
            except OSError as exc:
                raise DtvmError(f"stat({full}): {exc.strerror}") from None
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
                if total > MAX_BLOB:
                    # the blob could not hold it: stop before reading gigabytes
                    raise DtvmError(f"{full}: error: the files add up to more than dtvm reads ({MAX_BLOB >> 20} MiB)")
                try:
                    with open(full, "rb") as f:
                        data = f.read(st.st_size)
                except OSError as exc:
                    sys.stderr.write(f"WARNING: Cannot open {full}: {exc.strerror}\n")
                    continue
                node.props.append(Property(entry.name, data, [Marker(0, MarkerType.TYPE_NONE)]))
            elif stat.S_ISDIR(st.st_mode):
                child = Node(entry.name)
                node.add_child(child)
                children.append((full, child, depth + 1))
        # dtc recurses into each directory as it meets it; the tree shape is the
        # same either way, so a stack in reverse keeps memory flat
        stack.extend(reversed(children))
    return DeviceTree(root, [], guess_boot_cpuid(root), False, dirname)
