"""A node spec -> one flat draft-07 JSON Schema, and fastjsonschema validators (lazy, cached).

The whole-node validator runs first; only when it fails are the per-property
validators compiled and run, so that every failing property is reported
(fastjsonschema stops at its first error).
"""

from __future__ import annotations

from typing import Any

import fastjsonschema

from .load import NodeSpec, PropSpec

__all__ = ["node_schema", "node_validator", "prop_schema", "prop_validator"]

_INT = {"type": "integer"}
_BASE: dict[str, dict[str, Any]] = {
    "flag": {"const": True},
    "boolean": {"const": True},
    "string": {"type": "string"},
    "string-array": {"type": "array", "items": {"type": "string"}},
    "phandle": dict(_INT),
    "phandle-array": {"type": "array", "items": {"type": "array", "items": _INT}},
    "address": {"type": "array", "items": {"type": "array", "items": _INT}},
    "ranges": {"type": "array", "items": {"type": "array", "items": _INT}},
    "interrupts": {"type": "array", "items": {"type": "array", "items": _INT}},
    "any": {},
}
for _t in ("uint8", "uint16", "uint32", "int32", "uint64"):
    _BASE[_t] = dict(_INT)
    _BASE[_t + "-array"] = {"type": "array", "items": _INT}

_ARRAY_ONLY = ("minItems", "maxItems", "contains")
_ELEMENT = ("const", "enum", "minimum", "maximum", "pattern")


def prop_schema(spec: PropSpec) -> dict[str, Any]:
    """The JSON Schema of one decoded property value."""
    base = dict(_BASE[spec.type])
    c = spec.constraints
    if base.get("type") != "array":
        base.update(c)
        return base
    element: dict[str, Any] = {}
    for key in _ELEMENT:
        if key not in c:
            continue
        val = c[key]
        if key == "const" and isinstance(val, list):
            base["const"] = val  # the whole value
        elif key == "enum" and any(isinstance(v, list) for v in val):
            base["enum"] = val
        else:
            element[key] = val
    for key in _ARRAY_ONLY:
        if key in c:
            base[key] = c[key]
    items = c.get("items")
    if isinstance(items, list):
        # dt-schema's convention: a list of items fixes the count unless told otherwise
        base["items"] = items
        base.setdefault("maxItems", len(items))
        base.setdefault("minItems", len(items))
        if element:
            base["allOf"] = [{"items": element}]
    elif isinstance(items, dict):
        base["items"] = {**base["items"], **items, **element}
    elif element:
        base["items"] = {**base["items"], **element}
    return base


def node_schema(spec: NodeSpec) -> dict[str, Any]:
    """The flat schema of a node's decoded properties (required and names are checked in Python)."""
    schema: dict[str, Any] = {"type": "object", "properties": {name: prop_schema(p) for name, p in spec.props.items()}}
    if spec.patterns:
        schema["patternProperties"] = {p.name: prop_schema(p) for _rx, p in spec.patterns}
    return schema


def node_validator(spec: NodeSpec) -> Any:
    if spec.validator is None:
        spec.validator = fastjsonschema.compile(node_schema(spec), use_default=False)
    return spec.validator


def prop_validator(spec: NodeSpec, pspec: PropSpec) -> Any:
    key = pspec.name
    v = spec.prop_validators.get(key)
    if v is None:
        v = spec.prop_validators[key] = fastjsonschema.compile(prop_schema(pspec), use_default=False)
    return v
