"""dtvm: the Flattened Device Tree as the one precise description of a VM's hardware.

The public API is the devicetree toolchain with dtc 1.6.1's exact results::

    import dtvm
    dt = dtvm.parse_dts("board.dts")          # parsed and resolved as dtc does
    uart = dt.get_node("/soc/serial@9000000")
    uart["clocks"].as_u32s()                  # phandles, as in dtc's blob
    blob = dtvm.write_dtb(dt)                 # dtc's bytes

:func:`parse_dts` and :func:`parse_dts_string` take dtc's ``-i`` directories
and the kernel's cpp step (``cpp=True``); :func:`resolve` is the step that
turns references into phandles (``parse_dts`` runs it unless told not to);
:func:`apply_overlay` is fdtoverlay; :func:`validate` checks the binding
documents.  For blob-level work, :mod:`dtvm.pylibfdt` is a pure-Python
drop-in for pylibfdt.  Names are imported lazily, so that ``dtvm dtc``
starts fast.

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
``pylibfdt``, ``api``, ``bindings/``
    pylibfdt's API on the libfdt model; the public API's functions; binding documents (load, YAML
    or cache, compile, decode, validate, export) and the kernel's processed binding schemas as
    dt-validate applies them (``kload``, ``kdecode``/``kfixup``, ``kengine``/``kcompile``,
    ``kschema``, ``kvalidate``).  They import ``dt``.
``vm/``
    The VM description: ``model`` (the qdev Config every reader and writer meets in), ``codec``
    (the one owner of the description format: node names, unit addresses, ``reg`` per bus kind,
    ``/qemu``, the back-end overlay), ``translate`` (Config to trees and back), ``check``,
    ``diff``, ``show``, ``backend``.  Imports ``dt`` and ``bindings``; knows no QEMU process.
``qemu/``
    QEMU itself: option syntax, QMP, processes, snapshots, ``info qtree``, machine schemas,
    offline models, address assignment, argv, hot-plug.  Imports everything below it.
``libvirt/``
    libvirt-managed domains: ``connect`` (the optional binding), ``monitor`` (QMP through
    libvirt's passthrough API), ``read``, ``facts`` (libvirt's host facts in the overlay),
    ``describe``, ``transient`` (loose XML started paused, read, destroyed), ``domxml``
    (a description to domain XML, every address pinned).  Imports ``qemu`` and below.
``cli/``
    The commands on top (click, and the C-style dtc and fdt tools).  Nothing imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "BlobError",
    "DeviceTree",
    "DtvmError",
    "Marker",
    "MarkerType",
    "Node",
    "Property",
    "__version__",
    "apply_overlay",
    "parse_dts",
    "parse_dts_string",
    "read_dtb",
    "resolve",
    "validate",
    "write_dtb",
    "write_dts",
]

if TYPE_CHECKING:
    from dtvm.api import (
        apply_overlay,
        parse_dts,
        parse_dts_string,
        read_dtb,
        resolve,
        validate,
        write_dtb,
        write_dts,
    )
    from dtvm.dt.tree import DeviceTree, Marker, MarkerType, Node, Property
    from dtvm.errors import BlobError, DtvmError

_TREE = ("DeviceTree", "Node", "Property", "Marker", "MarkerType")
_API = ("apply_overlay", "parse_dts", "parse_dts_string", "read_dtb", "resolve", "validate", "write_dtb", "write_dts")


def __getattr__(name: str) -> Any:
    if name in _TREE:
        from dtvm.dt import tree

        return getattr(tree, name)
    if name in _API:
        from dtvm import api

        return getattr(api, name)
    if name in ("DtvmError", "BlobError"):
        from dtvm import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'dtvm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
