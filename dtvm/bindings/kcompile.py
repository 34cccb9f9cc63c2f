"""Schemas compiled to yes/no closures: the fast path of kengine.py.

Nearly every (node, schema) pair dt-validate checks is valid, and the nested validations that only
need an answer (``if``, ``not``, ``contains``, ``anyOf`` branches, ``select``, the evaluated-keys
walk of ``unevaluatedProperties``) are most of the work. Interpreting the schema dict for them, with
a generator and an error object per failure, is what made a board take a second; a closure per
subschema, built the first time it is used and kept for the process, answers in a fraction of
that. Each closure says exactly whether kengine's ``iter_errors`` would yield nothing: same
keyword semantics (jsonschema 4.17.3, Draft 2019-09 plus ``typeSize``), only no messages. The
messages are computed by kengine.py when the answer is no.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from dtvm.bindings.kengine import _TYPES, _is_num, _search, _unbool, equal, uniq

if TYPE_CHECKING:
    from dtvm.bindings.kengine import Engine

__all__ = ["Compiler"]

Check = Callable[[Any], bool]


def _true(inst: Any) -> bool:
    return True


def _false(inst: Any) -> bool:
    return False


class Compiler:
    """Compiles (schema, scope) pairs on first use; ``$ref`` targets are resolved when first run."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.cache: dict[tuple[int, str], Check] = {}
        self._keep: list[Any] = []  # the schemas whose id() keys the cache stay alive

    def compile(self, schema: Any, scope: str) -> Check:
        if schema is False:
            return _false
        if not isinstance(schema, dict):
            return _true
        key = (id(schema), scope)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        cell: list[Check] = []

        def forward(inst: Any) -> bool:  # a recursive schema reaches itself before it is built
            return cell[0](inst)

        self.cache[key] = forward
        self._keep.append(schema)
        sid = schema.get("$id")
        if isinstance(sid, str) and sid:
            scope = urljoin(scope, sid) if scope else sid
        checks: list[Check] = []
        for k, v in schema.items():
            make = _MAKERS.get(k)
            if make is not None:
                c = make(self, v, schema, scope)
                if c is not None:
                    checks.append(c)
        fn = _all(checks)
        cell.append(fn)
        self.cache[key] = fn
        return fn


def _all(checks: list[Check]) -> Check:
    if not checks:
        return _true
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda inst: a(inst) and b(inst)
    cs = tuple(checks)

    def every(inst: Any) -> bool:
        for c in cs:
            if not c(inst):
                return False
        return True

    return every


def _ref(cp: Compiler, ref: Any, schema: Any, scope: str) -> Check:
    cell: list[Check] = []

    def run(inst: Any) -> bool:
        if not cell:
            url, target = cp.engine.resolve(scope, ref)
            cell.append(cp.compile(target, url))
        return cell[0](inst)

    return run


def _type(cp: Compiler, types: Any, schema: Any, scope: str) -> Check:
    if isinstance(types, str):
        types = [types]
    if list(types) == ["object"]:
        return lambda inst: isinstance(inst, dict)
    if list(types) == ["array"]:
        return lambda inst: isinstance(inst, list)
    fns = tuple(_TYPES[t] for t in types)
    return lambda inst: any(f(inst) for f in fns)


def _properties(cp: Compiler, props: Any, schema: Any, scope: str) -> Check:
    items = tuple((name, cp.compile(sub, scope)) for name, sub in props.items())
    items = tuple((n, f) for n, f in items if f is not _true)
    if not items:
        return _true

    def check(inst: Any) -> bool:
        if isinstance(inst, dict):
            for name, f in items:
                if name in inst and not f(inst[name]):
                    return False
        return True

    return check


def _pattern_properties(cp: Compiler, pp: Any, schema: Any, scope: str) -> Check:
    # patterns whose subschema accepts anything are only there for evaluated-keys: no check
    pairs = [(p, cp.compile(sub, scope)) for p, sub in pp.items()]
    pairs = [(p, f) for p, f in pairs if f is not _true]
    if not pairs:
        return _true
    pats = [p for p, _ in pairs]
    fns = [f for _, f in pairs]
    by_key: dict[str, tuple[int, ...]] = {}

    def check(inst: Any) -> bool:
        if not isinstance(inst, dict):
            return True
        for k, v in inst.items():
            idxs = by_key.get(k)
            if idxs is None:
                idxs = by_key[k] = tuple(j for j, p in enumerate(pats) if _search(p, k))
            for j in idxs:
                if not fns[j](v):
                    return False
        return True

    return check


def _additional_properties(cp: Compiler, ap: Any, schema: Any, scope: str) -> Check:
    props = schema.get("properties", {})
    patterns = "|".join(schema.get("patternProperties", {}))
    if ap is True or (isinstance(ap, dict) and not ap):
        return _true
    f = cp.compile(ap, scope) if isinstance(ap, dict) else None

    known: dict[str, bool] = {}  # name -> declared (by properties or a pattern): names repeat

    def check(inst: Any) -> bool:
        if not isinstance(inst, dict):
            return True
        for p, v in inst.items():
            ok = known.get(p)
            if ok is None:
                ok = known[p] = p in props or bool(patterns and _search(patterns, p))
            if ok:
                continue
            if f is None:
                if not ap:
                    return False
            elif not f(v):
                return False
        return True

    return check


def _items(cp: Compiler, items: Any, schema: Any, scope: str) -> Check:
    if isinstance(items, list):
        fns = tuple(cp.compile(s, scope) for s in items)

        def check_list(inst: Any) -> bool:
            if isinstance(inst, list):
                for f, item in zip(fns, inst, strict=False):
                    if not f(item):
                        return False
            return True

        return check_list
    f = cp.compile(items, scope)
    if f is _true:
        return _true

    def check(inst: Any) -> bool:
        if isinstance(inst, list):
            for item in inst:
                if not f(item):
                    return False
        return True

    return check


def _additional_items(cp: Compiler, ai: Any, schema: Any, scope: str) -> Check:
    items = schema.get("items", {})
    if isinstance(items, dict):
        return _true
    f = cp.compile(ai, scope) if isinstance(ai, dict) else None

    def check(inst: Any) -> bool:
        if not isinstance(inst, list):
            return True
        n = len(items)  # a boolean "items" raises here, as in jsonschema
        if f is not None:
            return all(f(x) for x in inst[n:])
        return bool(ai) or len(inst) <= n

    return check


def _const(cp: Compiler, const: Any, schema: Any, scope: str) -> Check:
    return lambda inst: equal(inst, const)


def _contains(cp: Compiler, contains: Any, schema: Any, scope: str) -> Check:
    f = cp.compile(contains, scope)
    min_c = schema.get("minContains", 1)
    max_c_fixed = schema.get("maxContains")

    def check(inst: Any) -> bool:
        if not isinstance(inst, list):
            return True
        max_c = len(inst) if max_c_fixed is None else max_c_fixed
        matches = 0
        for each in inst:
            if f(each):
                matches += 1
                if matches > max_c:
                    return False
                if matches >= min_c and max_c_fixed is None:
                    return True
        return matches >= min_c

    return check


def _num(op: Callable[[Any, Any], bool]) -> Callable[[Compiler, Any, Any, str], Check]:
    def make(cp: Compiler, m: Any, schema: Any, scope: str) -> Check:
        return lambda inst: not (_is_num(inst) and op(inst, m))

    return make


def _multiple_of(cp: Compiler, db: Any, schema: Any, scope: str) -> Check:
    def check(inst: Any) -> bool:
        if not _is_num(inst):
            return True
        if isinstance(db, float):
            q = inst / db
            try:
                return int(q) == q
            except OverflowError:
                return (Fraction(inst) / Fraction(db)).denominator == 1
        return not (inst % db)

    return check


def _min_items(cp: Compiler, m: Any, schema: Any, scope: str) -> Check:
    return lambda inst: not (isinstance(inst, list) and len(inst) < m)


def _max_items(cp: Compiler, m: Any, schema: Any, scope: str) -> Check:
    return lambda inst: not (isinstance(inst, list) and len(inst) > m)


def _unique_items(cp: Compiler, u: Any, schema: Any, scope: str) -> Check | None:
    if not u:
        return None
    return lambda inst: not isinstance(inst, list) or uniq(inst)


def _pattern(cp: Compiler, p: Any, schema: Any, scope: str) -> Check:
    return lambda inst: not isinstance(inst, str) or _search(p, inst)


def _min_length(cp: Compiler, m: Any, schema: Any, scope: str) -> Check:
    return lambda inst: not (isinstance(inst, str) and len(inst) < m)


def _max_length(cp: Compiler, m: Any, schema: Any, scope: str) -> Check:
    return lambda inst: not (isinstance(inst, str) and len(inst) > m)


def _dependent_required(cp: Compiler, dr: Any, schema: Any, scope: str) -> Check:
    pairs = tuple((p, tuple(deps)) for p, deps in dr.items())

    def check(inst: Any) -> bool:
        if isinstance(inst, dict):
            for p, deps in pairs:
                if p in inst:
                    for d in deps:
                        if d not in inst:
                            return False
        return True

    return check


def _dependent_schemas(cp: Compiler, ds: Any, schema: Any, scope: str) -> Check:
    pairs = tuple((p, cp.compile(s, scope)) for p, s in ds.items())

    def check(inst: Any) -> bool:
        if isinstance(inst, dict):
            for p, f in pairs:
                if p in inst and not f(inst):
                    return False
        return True

    return check


def _enum(cp: Compiler, enums: Any, schema: Any, scope: str) -> Check:
    strings = frozenset(enums) if all(isinstance(e, str) for e in enums) else None

    def check(inst: Any) -> bool:
        if isinstance(inst, str) and strings is not None:
            return inst in strings
        if (inst == 0 or inst == 1) if isinstance(inst, (int, float)) else False:
            u = _unbool(inst)
            return not all(u != _unbool(e) for e in enums)
        return inst in enums

    return check


def _required(cp: Compiler, req: Any, schema: Any, scope: str) -> Check:
    names = tuple(req)

    def check(inst: Any) -> bool:
        if isinstance(inst, dict):
            for n in names:
                if n not in inst:
                    return False
        return True

    return check


def _min_properties(cp: Compiler, m: Any, schema: Any, scope: str) -> Check:
    return lambda inst: not (isinstance(inst, dict) and len(inst) < m)


def _max_properties(cp: Compiler, m: Any, schema: Any, scope: str) -> Check:
    return lambda inst: not (isinstance(inst, dict) and len(inst) > m)


def _property_names(cp: Compiler, pn: Any, schema: Any, scope: str) -> Check:
    f = cp.compile(pn, scope)
    return lambda inst: not isinstance(inst, dict) or all(f(k) for k in inst)


def _all_of(cp: Compiler, subs: Any, schema: Any, scope: str) -> Check:
    return _all([f for f in (cp.compile(s, scope) for s in subs) if f is not _true])


def _any_of(cp: Compiler, subs: Any, schema: Any, scope: str) -> Check:
    fns = tuple(cp.compile(s, scope) for s in subs)
    return lambda inst: any(f(inst) for f in fns)


def _one_of(cp: Compiler, subs: Any, schema: Any, scope: str) -> Check:
    fns = tuple(cp.compile(s, scope) for s in subs)

    def check(inst: Any) -> bool:
        n = 0
        for f in fns:
            if f(inst):
                n += 1
                if n > 1:
                    return False
        return n == 1

    return check


def _not(cp: Compiler, sub: Any, schema: Any, scope: str) -> Check:
    f = cp.compile(sub, scope)
    return lambda inst: not f(inst)


def _if(cp: Compiler, sub: Any, schema: Any, scope: str) -> Check | None:
    f = cp.compile(sub, scope)
    then = cp.compile(schema["then"], scope) if "then" in schema else _true
    else_ = cp.compile(schema["else"], scope) if "else" in schema else _true
    if then is _true and else_ is _true:
        return None
    return lambda inst: then(inst) if f(inst) else else_(inst)


def _unevaluated_properties(cp: Compiler, up: Any, schema: Any, scope: str) -> Check:
    f = cp.compile(up, scope)
    if f is _true:
        return _true
    eng = cp.engine

    def check(inst: Any) -> bool:
        if not isinstance(inst, dict):
            return True
        evaluated = None
        for p, v in inst.items():
            if f(v):
                continue
            if evaluated is None:
                evaluated = set(eng.evaluated_keys(inst, schema, scope))
            if p not in evaluated:
                return False
        return True

    return check


def _type_size(cp: Compiler, ts: Any, schema: Any, scope: str) -> Check:
    def check(inst: Any) -> bool:
        try:
            size = inst[0][0].size
        except Exception:
            size = 32
        return bool(ts == size)

    return check


_MAKERS: dict[str, Callable[[Compiler, Any, Any, str], Check | None]] = {
    "$ref": _ref,
    "additionalItems": _additional_items,
    "additionalProperties": _additional_properties,
    "allOf": _all_of,
    "anyOf": _any_of,
    "const": _const,
    "contains": _contains,
    "dependentRequired": _dependent_required,
    "dependentSchemas": _dependent_schemas,
    "enum": _enum,
    "exclusiveMaximum": _num(lambda i, m: i >= m),
    "exclusiveMinimum": _num(lambda i, m: i <= m),
    "if": _if,
    "items": _items,
    "maxItems": _max_items,
    "maxLength": _max_length,
    "maxProperties": _max_properties,
    "maximum": _num(lambda i, m: i > m),
    "minItems": _min_items,
    "minLength": _min_length,
    "minProperties": _min_properties,
    "minimum": _num(lambda i, m: i < m),
    "multipleOf": _multiple_of,
    "not": _not,
    "oneOf": _one_of,
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "properties": _properties,
    "propertyNames": _property_names,
    "required": _required,
    "type": _type,
    "unevaluatedProperties": _unevaluated_properties,
    "uniqueItems": _unique_items,
    "typeSize": _type_size,
}
