"""Binding documents: load them, compile them to JSON Schema validators, validate trees.

>>> from dtvm.bindings import load_bindings, validate_tree
>>> result = validate_tree(tree, load_bindings())
>>> for f in result.findings: print(f.format())

``load_bindings(cache=True)`` serves the set, and the compiled property checks, from the
on-disk binding cache (``cache.py``) when it is current; ``dtvm validate`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dtvm.bindings.findings import Finding, Unchecked
    from dtvm.bindings.load import (
        Binding,
        BindingError,
        BindingSet,
        NodeSpec,
        PropSpec,
        default_dirs,
    )
    from dtvm.bindings.store import load_bindings
    from dtvm.bindings.validate import Result, match, validate_tree

#: where each name lives: imported on first use, so that ``qemu2dtb`` (which only loads the set
#: for the drivers' compatibles) does not import the validator (about 1 ms of its start-up)
_HOMES = {
    "Finding": "findings", "Unchecked": "findings",
    "Binding": "load", "BindingError": "load", "BindingSet": "load", "NodeSpec": "load", "PropSpec": "load",
    "default_dirs": "load", "load_bindings": "store", "Result": "validate", "match": "validate",
    "validate_tree": "validate",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dtvm.bindings' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"dtvm.bindings.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Binding",
    "BindingError",
    "BindingSet",
    "Finding",
    "NodeSpec",
    "PropSpec",
    "Result",
    "Unchecked",
    "default_dirs",
    "load_bindings",
    "match",
    "validate_tree",
]
