"""dtvm: the Flattened Device Tree as the one precise description of a VM's hardware.

The public API is the devicetree toolchain: parse DTS, read and write DTB,
write DTS, with dtc 1.6.1's exact behaviour.
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
