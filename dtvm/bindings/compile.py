"""Property specs -> draft-07 JSON Schemas, and fastjsonschema validators (lazy, cached).

Each property value is checked against the JSON Schema of its PropSpec
(``prop_schema``) in two steps:

* a yes/no check: fastjsonschema's generated code (``compile_to_code``) with each
  ``raise JsonSchemaValueException(...)`` reduced to ``raise SchemaMismatch``. It
  no longer imports fastjsonschema, is a fraction of the size (the exceptions
  embed the schema), and compiles to a code object that the binding cache stores
  with ``marshal``; 2,000 property specs have about 200 distinct schemas, so the
  code is generated once per schema. A clean tree never needs more.
* for a value that fails, fastjsonschema's own validator of the same schema,
  for the message (``prop_validator``): only then is fastjsonschema imported.

Checking by property rather than with one schema for the whole node gives each
value exactly the rule ``NodeSpec.lookup`` picks (JSON Schema's
``patternProperties`` would also hold a declared ``qemu,foo`` to a ``^qemu,``
pattern), and every failing property is reported, not only the first.
"""

from __future__ import annotations

import marshal
import re
from collections.abc import Callable
from types import CodeType
from typing import Any

from dtvm.bindings.load import NodeSpec, PropSpec

__all__ = ["SchemaMismatch", "check_code", "prop_check", "prop_schema", "prop_validator", "schema_key"]


class SchemaMismatch(Exception):
    """Raised by a yes/no property check: the value breaks the property's schema."""


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


def schema_key(spec: PropSpec) -> str:
    """``prop_schema(spec)`` as canonical text: property specs with equal keys share one check."""
    import json

    return json.dumps(prop_schema(spec), sort_keys=True, separators=(",", ":"))


_RAISE = "raise JsonSchemaValueException("
_IMPORT = "from fastjsonschema import "
_DECIMAL = "from decimal import Decimal"
_EXCEPT = re.compile(r"except (?:JsonSchemaValueException|\(JsonSchemaValueException, JsonSchemaValuesException\)):")


def _reduce(src: str) -> str | None:
    """fastjsonschema's generated module as a yes/no check, or None if it has a shape not foreseen.

    fastjsonschema writes each ``raise`` on one line; they become ``raise _Mismatch``, and the
    ``except`` clauses it writes for ``contains``, ``anyOf`` and ``oneOf`` catch ``_Mismatch``.
    If any other use of its exception classes is left, the reduction is refused and
    the caller uses fastjsonschema's own validator instead.
    """
    out = []
    for line in src.splitlines():
        body = line.lstrip()
        if body.startswith(_IMPORT) or body == _DECIMAL:
            continue
        if body.startswith(_RAISE):
            line = line[: len(line) - len(body)] + "raise _Mismatch"
        elif _EXCEPT.match(body):  # contains/anyOf/oneOf try the alternatives
            line = line[: len(line) - len(body)] + "except _Mismatch:" + _EXCEPT.sub("", body)
        out.append(line)
    text = "\n".join(out) + "\n"
    if "JsonSchema" in text:
        return None
    if re.search(r"\bDecimal\s*\(", text):  # a real use: import it (else it names _NoDecimal)
        text = _DECIMAL + "\n" + text
    return text


def check_code(spec: PropSpec) -> CodeType | None:
    """The yes/no check of ``spec``'s schema compiled to a code object (None: not reducible).

    Executed with ``_Mismatch`` bound to :class:`SchemaMismatch`, it defines ``validate(value)``.
    """
    import fastjsonschema

    src = _reduce(fastjsonschema.compile_to_code(prop_schema(spec), use_default=False))
    if src is None:
        return None
    try:
        return compile(src, f"<check {spec.file}:{spec.line} {spec.name}>", "exec")
    except SyntaxError:
        return None


class _NoDecimal:
    """Stands for ``decimal.Decimal`` in ``isinstance`` tests of generated code (decoded values
    are never Decimal; importing decimal costs a millisecond)."""


def _function(code: CodeType) -> Callable[[Any], Any]:
    namespace: dict[str, Any] = {"__name__": "dtvm.bindings.check", "_Mismatch": SchemaMismatch, "Decimal": _NoDecimal}
    exec(code, namespace)
    return namespace["validate"]  # type: ignore[no-any-return]


def _load(data: bytes | None) -> CodeType | None:
    if data is None:
        return None
    try:
        code = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


_generated: dict[str, Callable[[Any], Any]] = {}  # schema_key -> check, for specs without stored code


def prop_check(spec: PropSpec) -> Callable[[Any], Any]:
    """The yes/no check of ``spec``: raises :class:`SchemaMismatch` for a value its schema rejects.

    From the code stored with the spec (bytes, or a cache chunk read on first use and
    shared by the specs with the same schema), else generated now, once per schema.
    """
    fn = spec.check
    if fn is not None:
        return fn
    stored = spec.check_code
    if stored is not None:
        fn = getattr(stored, "fn", None)  # a cache chunk another spec has loaded already
        if fn is None:
            code = _load(stored if isinstance(stored, bytes) else stored.read())
            if code is not None:
                fn = _function(code)
                if not isinstance(stored, bytes):
                    stored.fn = fn
    if fn is None:
        key = schema_key(spec)
        fn = _generated.get(key)
        if fn is None:
            code = check_code(spec)
            fn = _generated[key] = _function(code) if code is not None else _full_check(spec)
    spec.check = fn
    return fn


def _full_check(spec: PropSpec) -> Callable[[Any], Any]:
    import fastjsonschema

    full = fastjsonschema.compile(prop_schema(spec), use_default=False)

    def validate(value: Any) -> Any:
        try:
            return full(value)
        except fastjsonschema.JsonSchemaValueException:
            raise SchemaMismatch from None

    return validate


def prop_validator(spec: NodeSpec, pspec: PropSpec) -> Any:
    """fastjsonschema's validator of one property (raises its JsonSchemaValueException, for the message)."""
    key = pspec.name
    v = spec.prop_validators.get(key)
    if v is None:
        import fastjsonschema

        v = spec.prop_validators[key] = fastjsonschema.compile(prop_schema(pspec), use_default=False)
    return v
