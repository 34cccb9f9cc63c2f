"""The JSON-schema engine for the kernel's binding schemas: what dt-validate computes, faster.

dt-validate (dtschema 2022.12) validates with ``jsonschema`` 4.17.3's Draft 2019-09 validator plus
dtschema's ``typeSize`` keyword. Its findings are that library's messages, in the order its keyword
functions yield them, so "identical findings" means identical semantics *and* identical wording,
quirks included: ``find_evaluated_property_keys_by_schema`` validates ``{name: value}`` against a
``patternProperties`` mapping as if it were a schema; ``additionalProperties`` iterates the keys of
its subschema as property names; ``enum`` compares with ``==`` (so ``1`` matches ``True``). Neither
fastjsonschema (no ``unevaluatedProperties``/``dependentRequired``) nor a newer jsonschema (other
wording) gives that, so this module is a port of those keyword functions, minus the costs that
make jsonschema slow: no validator object per (node, schema), no ``ValidationError`` until an error
is really kept, messages formatted only when read, and ``valid()`` short-circuits.

``$ref`` is resolved as the ``RefResolver`` dt-validate shares resolves it: joined to the current
scope (the enclosing ``$id``), the document found by URL in the processed schemas (a missing one is
``False``, dtschema's ``http_handler``), then the JSON-pointer fragment.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from fractions import Fraction
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

__all__ = ["Engine", "Err", "RefError"]


class RefError(Exception):
    """A ``$ref`` whose fragment cannot be resolved (jsonschema raises RefResolutionError)."""


class Err:
    """One validation error, as much of jsonschema's ValidationError as dt-validate reads."""

    __slots__ = ("_msg", "context", "instance", "parent", "path", "schema", "schema_path")

    def __init__(self, msg: str | Callable[[], str], context: list[Err] | None = None) -> None:
        self._msg = msg
        self.path: list[Any] = []
        self.schema_path: list[Any] = []
        self.context = context or []
        for e in self.context:
            e.parent = self
        self.parent: Err | None = None
        self.instance: Any = _UNSET
        self.schema: Any = _UNSET

    @property
    def message(self) -> str:
        if not isinstance(self._msg, str):
            self._msg = self._msg()
        return self._msg

    @property
    def absolute_path(self) -> list[Any]:
        if self.parent is None:
            return self.path
        return [*self.parent.absolute_path, *self.path]


_UNSET = object()
_TRUE = object()
_FALSE = object()


def _unbool(x: Any) -> Any:
    if x is True:
        return _TRUE
    if x is False:
        return _FALSE
    return x


def equal(one: Any, two: Any) -> bool:
    """jsonschema's ``equal``: == except that booleans are not numbers, recursively."""
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, Sequence) and isinstance(two, Sequence):
        return len(one) == len(two) and all(equal(i, j) for i, j in zip(one, two, strict=False))
    if isinstance(one, Mapping) and isinstance(two, Mapping):
        return len(one) == len(two) and all(k in two and equal(v, two[k]) for k, v in one.items())
    return bool(_unbool(one) == _unbool(two))


def uniq(container: Any) -> bool:
    try:
        srt = sorted(_unbool(i) for i in container)
        return not any(equal(i, j) for i, j in itertools.pairwise(srt))
    except (NotImplementedError, TypeError):
        seen: list[Any] = []
        for e in container:
            e = _unbool(e)
            if any(equal(i, e) for i in seen):
                return False
            seen.append(e)
    return True


def _extras(extras: Any) -> tuple[str, str]:
    return ", ".join(repr(e) for e in sorted(extras)), "was" if len(extras) == 1 else "were"


def _is_int(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, float):
        return x.is_integer()
    return isinstance(x, int)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float, Fraction)) and not isinstance(x, bool)


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "integer": _is_int,
    "number": _is_num,
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
}

_re_cache: dict[str, re.Pattern[str]] = {}


def _search(pattern: str, s: str) -> bool:
    rx = _re_cache.get(pattern)
    if rx is None:
        rx = _re_cache[pattern] = re.compile(pattern)
    return rx.search(s) is not None


Errs = Iterator[Err]


class Engine:
    """Validates instances against the processed schemas (``{$id: schema}``), as dt-validate does."""

    def __init__(self, documents: dict[str, Any]) -> None:
        self.documents = documents
        self._resolved: dict[tuple[str, str], tuple[str, Any]] = {}
        #: (schema, scope) -> yes/no closure; set by the owner (kschema.py) to kcompile's compiler
        self.compiled: Callable[[Any, str], Callable[[Any], bool]] | None = None
        self._pp_cache: dict[int, tuple[Any, list[tuple[str, Any]], dict[str, tuple[int, ...]]]] = {}
        self._kw: dict[str, Callable[..., Errs]] = {
            "$ref": self._ref,
            "additionalItems": self._additional_items,
            "additionalProperties": self._additional_properties,
            "allOf": self._all_of,
            "anyOf": self._any_of,
            "const": self._const,
            "contains": self._contains,
            "dependentRequired": self._dependent_required,
            "dependentSchemas": self._dependent_schemas,
            "enum": self._enum,
            "exclusiveMaximum": self._exclusive_maximum,
            "exclusiveMinimum": self._exclusive_minimum,
            "if": self._if,
            "items": self._items,
            "maxItems": self._max_items,
            "maxLength": self._max_length,
            "maxProperties": self._max_properties,
            "maximum": self._maximum,
            "minItems": self._min_items,
            "minLength": self._min_length,
            "minProperties": self._min_properties,
            "minimum": self._minimum,
            "multipleOf": self._multiple_of,
            "not": self._not,
            "oneOf": self._one_of,
            "pattern": self._pattern,
            "patternProperties": self._pattern_properties,
            "properties": self._properties,
            "propertyNames": self._property_names,
            "required": self._required,
            "type": self._type,
            "unevaluatedProperties": self._unevaluated_properties,
            "uniqueItems": self._unique_items,
            "typeSize": self._type_size,
        }

    # -- the driver -------------------------------------------------------------------------------
    def iter_errors(self, instance: Any, schema: Any, scope: str = "") -> Errs:
        """jsonschema's ``iter_errors``: keywords in the schema's own order, unknown ones ignored."""
        if schema is True:
            return
        if schema is False:
            e = Err(lambda: f"False schema does not allow {instance!r}")
            e.instance, e.schema = instance, schema
            yield e
            return
        if not isinstance(schema, dict):
            return
        sid = schema.get("$id")
        if isinstance(sid, str) and sid:
            scope = urljoin(scope, sid) if scope else sid
        kws = self._kw
        for k, v in schema.items():
            fn = kws.get(k)
            if fn is None:
                continue
            for e in fn(v, instance, schema, scope):
                if e.instance is _UNSET:
                    e.instance = instance
                if e.schema is _UNSET:
                    e.schema = schema
                if k != "if" and k != "$ref":
                    e.schema_path.insert(0, k)
                yield e

    def valid(self, instance: Any, schema: Any, scope: str = "") -> bool:
        """Whether ``iter_errors`` yields nothing; kcompile.py's closures when installed."""
        if self.compiled is not None:
            return self.compiled(schema, scope)(instance)
        if schema is True:
            return True
        for _ in self.iter_errors(instance, schema, scope):
            return False
        return True

    def _descend(self, instance: Any, schema: Any, scope: str, path: Any = None, spath: Any = None) -> Errs:
        for e in self.iter_errors(instance, schema, scope):
            if path is not None:
                e.path.insert(0, path)
            if spath is not None:
                e.schema_path.insert(0, spath)
            yield e

    def resolve(self, scope: str, ref: str) -> tuple[str, Any]:
        key = (scope, ref)
        hit = self._resolved.get(key)
        if hit is not None:
            return hit
        url = (urljoin(scope, ref) if scope else ref).rstrip("/")
        base, fragment = urldefrag(url)
        doc = self.documents.get(base + "#", False)  # dtschema's http_handler: no such schema is False
        try:
            target = self._fragment(doc, fragment, url)
        except RefError as exc:
            raise RefError(f"$ref {ref!r} resolves to nothing ({exc})") from None
        self._resolved[key] = (url, target)
        return url, target

    @staticmethod
    def _fragment(doc: Any, fragment: str, url: str) -> Any:
        fragment = fragment.lstrip("/")
        parts = unquote(fragment).split("/") if fragment else []
        for part in parts:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(doc, Sequence) and not isinstance(doc, str):
                try:
                    part_i: Any = int(part)
                except ValueError:
                    part_i = part
                part = part_i
            try:
                doc = doc[part]
            except (TypeError, LookupError):
                raise RefError(f"Unresolvable JSON pointer: {fragment!r}") from None
        return doc

    # -- keywords (jsonschema 4.17.3's _validators, same order and wording) -----------------------
    def _ref(self, ref: Any, inst: Any, schema: Any, scope: str) -> Errs:
        url, target = self.resolve(scope, ref)
        yield from self._descend(inst, target, url)

    def _pattern_properties(self, pp: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if not isinstance(inst, dict):
            return
        # which patterns match a name is cached per mapping: the same few hundred property names
        # meet the same patterns (dt-core's) on every node; yielded in jsonschema's order
        # (patterns outer, properties inner)
        entry = self._pp_cache.get(id(pp))
        if entry is None:
            entry = self._pp_cache[id(pp)] = (pp, list(pp.items()), {})
        items, by_key = entry[1], entry[2]
        pairs: list[tuple[int, int, str]] = []
        for pos, k in enumerate(inst):
            idxs = by_key.get(k)
            if idxs is None:
                idxs = by_key[k] = tuple(j for j, (pat, _) in enumerate(items) if _search(pat, k))
            for j in idxs:
                pairs.append((j, pos, k))
        if len(pairs) > 1:
            pairs.sort()
        for j, _, k in pairs:
            pattern, sub = items[j]
            if k in inst:
                yield from self._descend(inst[k], sub, scope, k, pattern)

    def _property_names(self, pn: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if not isinstance(inst, dict):
            return
        for prop in list(inst):
            yield from self._descend(prop, pn, scope)

    def _additional_properties(self, ap: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if not isinstance(inst, dict):
            return
        props = schema.get("properties", {})
        patterns = "|".join(schema.get("patternProperties", {}))
        extras = [p for p in inst if p not in props and not (patterns and _search(patterns, p))]
        if isinstance(ap, dict):
            for extra in set(extras):
                yield from self._descend(inst[extra], ap, scope, extra)
        elif not ap and extras:
            if "patternProperties" in schema:
                verb = "does" if len(set(extras)) == 1 else "do"
                joined = ", ".join(repr(e) for e in sorted(set(extras)))
                pats = ", ".join(repr(e) for e in sorted(schema["patternProperties"]))
                yield Err(f"{joined} {verb} not match any of the regexes: {pats}")
            else:
                yield Err("Additional properties are not allowed ({} {} unexpected)".format(*_extras(set(extras))))

    def _items(self, items: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if not isinstance(inst, list):
            return
        if isinstance(items, list):
            for (i, item), sub in zip(enumerate(inst), items, strict=False):
                yield from self._descend(item, sub, scope, i, i)
        else:
            for i, item in enumerate(inst):
                yield from self._descend(item, items, scope, i)

    def _additional_items(self, ai: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if not isinstance(inst, list) or isinstance(schema.get("items", {}), dict):
            return
        n = len(schema.get("items", []))
        if isinstance(ai, dict):
            for i, item in enumerate(inst[n:], start=n):
                yield from self._descend(item, ai, scope, i)
        elif not ai and len(inst) > n:
            yield Err("Additional items are not allowed ({} {} unexpected)".format(*_extras(inst[n:])))

    def _const(self, const: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if not equal(inst, const):
            yield Err(lambda: f"{const!r} was expected")

    def _contains(self, contains: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if not isinstance(inst, list):
            return
        matches = 0
        min_c = schema.get("minContains", 1)
        max_c = schema.get("maxContains", len(inst))
        for each in inst:
            if self.valid(each, contains, scope):
                matches += 1
                if matches > max_c:
                    yield Err(f"Too many items match the given schema (expected at most {max_c})")
                    return
        if matches < min_c:
            if not matches:
                yield Err(lambda: f"{inst!r} does not contain items matching the given schema")
            else:
                yield Err(
                    f"Too few items match the given schema (expected at least {min_c} but only {matches} matched)"
                )

    def _exclusive_minimum(self, m: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if _is_num(inst) and inst <= m:
            yield Err(f"{inst!r} is less than or equal to the minimum of {m!r}")

    def _exclusive_maximum(self, m: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if _is_num(inst) and inst >= m:
            yield Err(f"{inst!r} is greater than or equal to the maximum of {m!r}")

    def _minimum(self, m: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if _is_num(inst) and inst < m:
            yield Err(f"{inst!r} is less than the minimum of {m!r}")

    def _maximum(self, m: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if _is_num(inst) and inst > m:
            yield Err(f"{inst!r} is greater than the maximum of {m!r}")

    def _multiple_of(self, db: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if not _is_num(inst):
            return
        if isinstance(db, float):
            q = inst / db
            try:
                failed = int(q) != q
            except OverflowError:
                failed = (Fraction(inst) / Fraction(db)).denominator != 1
        else:
            failed = bool(inst % db)
        if failed:
            yield Err(f"{inst!r} is not a multiple of {db}")

    def _min_items(self, m: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if isinstance(inst, list) and len(inst) < m:
            yield Err(lambda: f"{inst!r} is too short")

    def _max_items(self, m: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if isinstance(inst, list) and len(inst) > m:
            yield Err(lambda: f"{inst!r} is too long")

    def _unique_items(self, u: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if u and isinstance(inst, list) and not uniq(inst):
            yield Err(lambda: f"{inst!r} has non-unique elements")

    def _pattern(self, p: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if isinstance(inst, str) and not _search(p, inst):
            yield Err(lambda: f"{inst!r} does not match {p!r}")

    def _min_length(self, m: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if isinstance(inst, str) and len(inst) < m:
            yield Err(f"{inst!r} is too short")

    def _max_length(self, m: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if isinstance(inst, str) and len(inst) > m:
            yield Err(f"{inst!r} is too long")

    def _dependent_required(self, dr: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if not isinstance(inst, dict):
            return
        for prop, deps in dr.items():
            if prop not in inst:
                continue
            for each in deps:
                if each not in inst:
                    yield Err(f"{each!r} is a dependency of {prop!r}")

    def _dependent_schemas(self, ds: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if not isinstance(inst, dict):
            return
        for prop, dep in ds.items():
            if prop in inst:
                yield from self._descend(inst, dep, scope, None, prop)

    def _enum(self, enums: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if (inst == 0 or inst == 1) if isinstance(inst, (int, float)) else False:
            u = _unbool(inst)
            if all(u != _unbool(e) for e in enums):
                yield Err(lambda: f"{inst!r} is not one of {enums!r}")
        elif inst not in enums:
            yield Err(lambda: f"{inst!r} is not one of {enums!r}")

    def _type(self, types: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if isinstance(types, str):
            types = [types]
        if not any(_TYPES[t](inst) for t in types):
            yield Err(lambda: f"{inst!r} is not of type {', '.join(repr(t) for t in types)}")

    def _properties(self, props: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if not isinstance(inst, dict):
            return
        for prop, sub in props.items():
            if prop in inst:
                yield from self._descend(inst[prop], sub, scope, prop, prop)

    def _required(self, req: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if not isinstance(inst, dict):
            return
        for prop in req:
            if prop not in inst:
                yield Err(f"{prop!r} is a required property")

    def _min_properties(self, m: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if isinstance(inst, dict) and len(inst) < m:
            yield Err(lambda: f"{inst!r} does not have enough properties")

    def _max_properties(self, m: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if isinstance(inst, dict) and len(inst) > m:
            yield Err(lambda: f"{inst!r} has too many properties")

    def _all_of(self, all_of: Any, inst: Any, schema: Any, scope: str) -> Errs:
        for i, sub in enumerate(all_of):
            yield from self._descend(inst, sub, scope, None, i)

    def _any_of(self, any_of: Any, inst: Any, schema: Any, scope: str) -> Errs:
        all_errors: list[Err] = []
        for i, sub in enumerate(any_of):
            errs = list(self._descend(inst, sub, scope, None, i))
            if not errs:
                return
            all_errors.extend(errs)
        yield Err(lambda: f"{inst!r} is not valid under any of the given schemas", context=all_errors)

    def _one_of(self, one_of: Any, inst: Any, schema: Any, scope: str) -> Errs:
        all_errors: list[Err] = []
        first_valid: Any = None
        idx = len(one_of)
        for i, sub in enumerate(one_of):
            errs = list(self._descend(inst, sub, scope, None, i))
            if not errs:
                first_valid, idx = sub, i
                break
            all_errors.extend(errs)
        else:
            yield Err(lambda: f"{inst!r} is not valid under any of the given schemas", context=all_errors)
        more = [each for each in one_of[idx + 1 :] if self.valid(inst, each, scope)]
        if more:
            more.append(first_valid)
            yield Err(lambda: f"{inst!r} is valid under each of {', '.join(repr(s) for s in more)}")

    def _not(self, not_schema: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if self.valid(inst, not_schema, scope):
            yield Err(lambda: f"{inst!r} should not be valid under {not_schema!r}")

    def _if(self, if_schema: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if self.valid(inst, if_schema, scope):
            if "then" in schema:
                yield from self._descend(inst, schema["then"], scope, None, "then")
        elif "else" in schema:
            yield from self._descend(inst, schema["else"], scope, None, "else")

    def _unevaluated_properties(self, up: Any, inst: Any, schema: Any, scope: str) -> Errs:
        if not isinstance(inst, dict):
            return
        evaluated = set(self.evaluated_keys(inst, schema, scope))
        bad: list[str] = []
        for prop in list(inst):
            if prop not in evaluated:
                for _ in self._descend(inst[prop], up, scope, prop, prop):
                    bad.append(prop)
        if bad:
            if up is False:
                yield Err("Unevaluated properties are not allowed ({} {} unexpected)".format(*_extras(bad)))
            else:
                yield Err(
                    "Unevaluated properties are not valid under the given schema ({} {} unevaluated and invalid)".format(*_extras(bad))
                )

    def _type_size(self, ts: Any, inst: Any, schema: Any, scope: str) -> Errs:
        try:
            size = inst[0][0].size
        except Exception:
            size = 32
        if ts != size:
            yield Err(f"size is {size!r}, expected {ts!r}")

    # -- jsonschema's find_evaluated_property_keys_by_schema ----------------------------------------
    def evaluated_keys(self, inst: dict[str, Any], schema: Any, scope: str) -> list[str]:
        if isinstance(schema, bool) or not isinstance(schema, dict):
            return []
        sid = schema.get("$id")
        keys: list[str] = []
        if "$ref" in schema:
            url, target = self.resolve(scope, schema["$ref"])
            keys += self.evaluated_keys(inst, target, url)
        for kw in ("properties", "additionalProperties", "unevaluatedProperties"):
            if kw in schema:
                sub = schema[kw]
                if isinstance(sub, bool):
                    for prop, value in inst.items():
                        if self.valid({prop: value}, sub, scope):
                            keys.append(prop)
                if isinstance(sub, dict):
                    for prop, subschema in sub.items():
                        if prop in inst and self.valid(inst[prop], subschema, scope):
                            keys.append(prop)
        if "patternProperties" in schema:
            pp = schema["patternProperties"]
            for prop, value in inst.items():
                for pattern in pp:
                    if _search(pattern, prop) and self.valid({prop: value}, pp, scope):
                        keys.append(prop)
        if "dependentSchemas" in schema:
            for prop, sub in schema["dependentSchemas"].items():
                if prop in inst:
                    keys += self.evaluated_keys(inst, sub, scope)
        for kw in ("allOf", "oneOf", "anyOf"):
            if kw in schema:
                for sub in schema[kw]:
                    if self.valid(inst, sub, scope):
                        keys += self.evaluated_keys(inst, sub, scope)
        if "if" in schema:
            if self.valid(inst, schema["if"], scope):
                keys += self.evaluated_keys(inst, schema["if"], scope)
                if "then" in schema:
                    keys += self.evaluated_keys(inst, schema["then"], scope)
            elif "else" in schema:
                keys += self.evaluated_keys(inst, schema["else"], scope)
        del sid
        return keys
