"""Binding documents: load them, compile them to JSON Schema validators, validate trees.

>>> from dtvm.bindings import load_bindings, validate_tree
>>> result = validate_tree(tree, load_bindings())
>>> for f in result.findings: print(f.format())

``load_bindings(cache=True)`` serves the set, and the compiled property checks, from the
on-disk binding cache (``cache.py``) when it is current; ``dtvm validate`` does.
"""

from __future__ import annotations

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
