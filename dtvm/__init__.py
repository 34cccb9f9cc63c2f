"""dtvm: the Flattened Device Tree as the one precise description of a VM's hardware.

The public API is the devicetree toolchain: parse DTS, read and write DTB, write DTS, with dtc
1.6.1's exact behaviour.

The map of the house (as dtc.h is dtc's): each folder is one wing, listed from the ground up.
A module imports only from its own wing and the wings listed before it; ``tests/test_layers.py``
holds the package to this (no circle, nothing imported upwards).

``errors``, ``fileio``
    The ground: error types that carry a position or node path, atomic file writing.
``dt/``
    The devicetree toolchain, laid out as dtc's data flows: ``tree`` (nodes, properties, bytes
    plus markers), ``dts/`` (source buffers, scanner, values, parser, build, writer, cpp),
    ``checks``, ``dtb``, ``overlay``, ``yaml``, ``asm``, ``sort``, ``fstree``, ``libfdt`` and
    ``apply`` (libfdt's operations on raw blobs).  Knows nothing of bindings, VMs or QEMU.
``bindings/``
    Binding documents: load (YAML or cache), compile, decode, validate, export.  Imports ``dt``.
``vm/``
    The VM description: ``model`` (the qdev Config every reader and writer meets in), ``codec``
    (the one owner of the description format: node names, unit addresses, ``reg`` per bus kind,
    ``/qemu``, the back-end overlay), ``translate`` (Config to trees and back), ``check``,
    ``diff``, ``show``, ``backend``.  Imports ``dt`` and ``bindings``; knows no QEMU process.
``qemu/``
    QEMU itself: option syntax, QMP, processes, snapshots, ``info qtree``, machine schemas,
    offline models, address assignment, argv, hot-plug.  Imports everything below it.
``cli/``
    The commands on top (click, and the C-style dtc and fdt tools).  Nothing imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "DeviceTree",
    "Marker",
    "MarkerType",
    "Node",
    "Property",
    "__version__",
    "compile_dts",
    "parse_dts",
    "parse_dts_string",
    "read_dtb",
    "write_dtb",
    "write_dts",
]

if TYPE_CHECKING:
    from dtvm.dt.tree import DeviceTree, Marker, MarkerType, Node, Property


def __getattr__(name: str) -> Any:
    # lazy, so that `dtvm dtc --version` does not import the whole toolchain
    if name in ("DeviceTree", "Node", "Property", "Marker", "MarkerType"):
        from dtvm.dt import tree

        return getattr(tree, name)
    if name in ("read_dtb", "write_dtb"):
        from dtvm.dt import dtb

        return getattr(dtb, name)
    if name == "write_dts":
        from dtvm.dt.dts.write import write_dts

        return write_dts
    if name == "parse_dts":
        from dtvm.dt.dts.parse import parse_file

        return parse_file
    if name == "parse_dts_string":
        from dtvm.dt.dts.parse import parse_string

        return parse_string
    raise AttributeError(name)
