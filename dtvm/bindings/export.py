"""dtvm bindings -> dt-schema documents that dtschema's ``dt-doc-validate`` accepts.

One document per binding, at ``<DIR>/<class>/<name>.yaml`` with a matching ``$id``.
Fragments (``include:``) are expanded: each document carries the merged node spec,
so the export needs none of dtvm's fragments. The ``qemu:`` section is left out.

How dtvm's rules map onto dt-schema:

* types become ``$ref: /schemas/types.yaml#/definitions/<type>``, except for the
  properties whose type dtschema's core schemas already fix (reg, interrupts,
  clocks, ``#...-cells``, ``*-names``, unit suffixes...): dtschema's meta-schema
  allows only count constraints on those.
* element constraints of an array go under ``items:``; a ``const:`` list becomes an
  ``items:`` list of ``const:``.
* "every property must be declared" is ``additionalProperties`` with a node schema:
  child nodes are keys of a node in dt-schema, so ``additionalProperties`` accepts
  objects (child nodes, checked by the child-binding when there is one) and rejects
  any undeclared property.
* a binding matched by compatible is selected by its first compatible string.
* a binding matched by ``select: {path:}`` cannot be selected from the node alone
  (dt-schema's ``select`` sees one node, not its path): it is exported with
  ``select: false`` and applied from ``dtvm/paths.yaml``, selected at the root,
  which nests the path components down to the node. ``root-compatible`` becomes a
  condition on the root's compatible there. As in dtvm, a node whose compatible has
  a binding is not checked by a path binding or a child-binding.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from dtvm.bindings.load import Binding, BindingSet, NodeSpec, PropSpec
from dtvm.bindings.store import load_bindings

__all__ = ["PATHS_DOC", "export_bindings", "export_documents"]

PREFIX = "dtvm/"  # under dt-schema's own namespace, dtschema's core schemas would clash (cpus.yaml...)
PATHS_DOC = PREFIX + "select-by-path.yaml"
META = "http://devicetree.org/meta-schemas/core.yaml#"
MAINTAINER = "dtvm <dtvm@example.org>"
TYPES = "/schemas/types.yaml#/definitions/"

_TYPE_REF = {
    "flag": "flag",
    "boolean": "flag",
    "string": "string",
    "string-array": "string-array",
    "phandle": "phandle",
    "phandle-array": "phandle-array",
    "address": "address",
    "ranges": "uint32-matrix",
    "interrupts": "uint32-matrix",
    **{t: t for t in ("uint8", "uint16", "uint32", "int32", "uint64")},
    **{t + "-array": t + "-array" for t in ("uint8", "uint16", "uint32", "int32", "uint64")},
}
_SCALAR = {"flag", "boolean", "string", "phandle", "uint8", "uint16", "uint32", "int32", "uint64"}
_ELEMENT = ("const", "enum", "minimum", "maximum", "pattern")

# properties whose type dtschema's core schemas fix: no $ref allowed, counts only
_STD_ARRAY = {
    "reg",
    "ranges",
    "dma-ranges",
    "interrupts",
    "interrupts-extended",
    "interrupt-map",
    "interrupt-map-mask",
    "clocks",
    "clock-indices",
    "assigned-clocks",
    "assigned-clock-parents",
    "assigned-clock-rates",
    "dmas",
    "iommus",
    "gpios",
    "gpio-ranges",
    "memory-region",
    "resets",
    "power-domains",
    "pwms",
    "phys",
    "mboxes",
    "nvmem-cells",
    "io-channels",
    "hwlocks",
}
_STD_BOOL = {"interrupt-controller", "gpio-controller", "clock-ranges", "dma-coherent", "dma-noncoherent"}
_STD_STRINGS = {"compatible", "memory-region-names", "gpio-line-names"}
_STD_SINGLE = {"clock-frequency", "bus-frequency", "ngpios"}
_UNIT = re.compile(
    r"-(bps|kBps|percent|bp|db|mhz|hz|sec|us|ns|ps|mm|nanoamp|microamp(-hours)?|micro-ohms"
    r"|microwatt-hours|microvolt|(femto|pico)farads|(milli)?celsius|kelvin|k?pascal|ohms|bits|ms)$"
)
_GPIOS = re.compile(r"(?<!,nr)-gpios?$")
# keys dt-validate puts in every node or that the tooling adds by itself
_IMPLICIT_SKIP = {"interrupt-parent"}  # added by dtschema when interrupts is declared


def _doc_path(binding: Binding) -> str:
    """``bindings/serial/arm,pl011.yaml`` -> ``serial/arm,pl011.yaml``."""
    rel = binding.file.split("/", 1)[1] if "/" in binding.file else binding.file
    return PREFIX + rel


def _id(rel: str) -> str:
    return f"http://devicetree.org/schemas/{rel}#"


def _ref(rel: str) -> str:
    return f"/schemas/{rel}#"


def _fullmatch(rx: str) -> str:
    """A Python fullmatch regex as a JSON Schema (search) pattern."""
    return f"^(?:{rx})$"


def _split_element(c: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """(element constraints, array constraints, a whole-value list constraint or None)."""
    element: dict[str, Any] = {}
    whole: Any = None
    for key in _ELEMENT:
        if key not in c:
            continue
        val = c[key]
        if key == "const" and isinstance(val, list):
            whole = [{"const": v} for v in val]
        elif key == "enum" and any(isinstance(v, list) for v in val):
            whole = {
                "oneOf": [
                    {"items": [{"const": x} for x in v]} if isinstance(v, list) else {"const": v} for v in val
                ]
            }
        else:
            element[key] = val
    array: dict[str, Any] = {k: c[k] for k in ("minItems", "maxItems", "contains") if k in c}
    return element, array, whole


def _counts(c: dict[str, Any]) -> dict[str, Any]:
    """minItems/maxItems in the forms dtschema's cell-array meta-schema accepts."""
    out: dict[str, Any] = {}
    lo, hi = c.get("minItems"), c.get("maxItems")
    if hi == 1:
        return {"maxItems": 1}
    if lo is not None and lo >= 1 and not (hi is not None and lo > hi):
        out["minItems"] = lo
    if hi is not None and hi >= 2:
        out["maxItems"] = hi
    elif "minItems" in out:
        out["maxItems"] = UNBOUNDED
    return out


def core_types() -> dict[str, set[str]]:
    """The property types dtschema's own core schemas fix ({} without dtschema)."""
    try:
        import dtschema  # type: ignore[import-untyped]

        v = dtschema.DTValidator([])
    except Exception:  # dtschema is optional: without it, export every type
        return {}
    return {name: {t["type"] for t in types if t.get("type")} for name, types in v.props.items()}


_CORE: dict[str, set[str]] = {}
_NOTES: list[str] = []


def prop_schema(p: PropSpec) -> Any:
    """The dt-schema property schema of one declared property."""
    name, c = p.name, p.constraints
    ref = _TYPE_REF.get(p.type)
    have = _CORE.get(name)
    if ref == "string" and have and "string-array" in have:
        have = None  # a string is a one-string string-array to dtschema
    if ref is not None and have and ref not in have and name not in _STD_ARRAY and not name.startswith("#"):
        # dtschema's core types it otherwise: a second type breaks dt-validate's decoding
        _NOTES.append(
            f"{p.file}: {name}: dtvm type {p.type}, dtschema's core says {'/'.join(sorted(have))}: exported untyped and unconstrained"
        )
        return True
    desc = {"description": p.name} if "," in name else {}
    if p.type == "any":
        return True
    if name in _STD_BOOL:
        return True
    if name.endswith("-supply"):
        return True
    if (
        name in _STD_ARRAY
        or _GPIOS.search(name)
        or (_UNIT.search(name) and p.type not in ("string", "string-array"))
    ):
        out = _counts(c)
        return out or True
    if name.startswith("#") and name.endswith("-cells"):
        out = {"$ref": TYPES + "uint32"}
        out.update({k: c[k] for k in ("const", "enum", "minimum", "maximum") if k in c})
        return out
    if name in _STD_STRINGS or name.endswith("-names"):
        out = _array(c)
        if "," in name and name.endswith("-names"):
            out["description"] = name
        return out or True
    if name in _STD_SINGLE:
        return {k: c[k] for k in ("const", "enum", "minimum", "maximum") if k in c} or True
    if p.type in ("flag", "boolean"):
        return {"type": "boolean", **desc} if desc else {"$ref": TYPES + "flag"}
    out = {"$ref": TYPES + _TYPE_REF[p.type], **desc}
    if p.type in _SCALAR:
        out.update({k: c[k] for k in _ELEMENT if k in c})
        return out
    if p.type in ("address", "ranges", "interrupts", "phandle-array"):
        out.update(_counts(c))
        return out
    out.update(_array(c))
    return out


UNBOUNDED = 65536  # dt-schema reads a missing maxItems as maxItems = minItems


def _array(c: dict[str, Any]) -> dict[str, Any]:
    """Array constraints: counts, element constraints under items:, a const list as an items list."""
    element, out, whole = _split_element(c)
    if isinstance(whole, list):
        out["items"] = whole
    elif isinstance(whole, dict):
        out.update(whole)
    items = c.get("items")
    if isinstance(items, list):
        out["items"] = items
    elif isinstance(items, dict):
        element = {**items, **element}
    if element and "items" not in out:
        out["items"] = element
    if isinstance(out.get("items"), list):
        n = len(out["items"])
        if out.get("maxItems", n) >= n:
            out.pop("maxItems", None)
        if out.get("minItems", n) >= n:
            out.pop("minItems", None)
    else:
        if out.get("minItems", 1) < 1:
            del out["minItems"]
        if "maxItems" not in out and ("minItems" in out or "items" in out):
            out["maxItems"] = UNBOUNDED
    return out


def _bound(keys: list[str]) -> dict[str, Any]:
    """A node whose compatible has a dtvm binding (checked by that binding, not by this one)."""
    return {"required": ["compatible"], "properties": {"compatible": {"contains": {"enum": keys}}}}


def node_schema(spec: NodeSpec, keys: list[str], top: bool) -> dict[str, Any]:
    """The schema of a node spec: declared properties, required, node name, children."""
    props: dict[str, Any] = {}
    declared = set(spec.props)
    odd: dict[str, Any] = {}
    for name, p in spec.props.items():
        if name in _IMPLICIT_SKIP and "interrupts" in declared:
            continue
        if _PROPNAME.fullmatch(name):
            props[name] = prop_schema(p)
        else:  # a name dt-schema's meta-schema refuses in properties: (66mhz-capable)
            odd[_pattern_key("^" + re.escape(name) + "$")] = prop_schema(p)
    if spec.node_name is not None:
        props["$nodename"] = {"pattern": _fullmatch(spec.node_name.pattern)}
    else:
        props["$nodename"] = True
    out: dict[str, Any] = {}
    if not top:
        out["type"] = "object"
    out["properties"] = props
    if spec.patterns or odd:
        out["patternProperties"] = {
            **odd,
            **{_pattern_key(p.name): prop_schema(p) for _rx, p in spec.patterns},
        }
    if spec.required:
        out["required"] = [r[0] for r in spec.required]
    if spec.child is not None:
        child = node_schema(spec.child, keys, top=False)
        # anyOf, not if/else: dtschema learns property types only through anyOf/allOf/oneOf
        out["additionalProperties"] = {"anyOf": [{"type": "object", **_bound(keys)}, child]}
    else:
        out["additionalProperties"] = {"type": "object"}
    return out


_PROPNAME = re.compile(r"[#$a-zA-Z][a-zA-Z0-9#,+\-._@]{0,63}")


def _pattern_key(rx: str) -> str:
    if re.fullmatch(r"\^[a-zA-Z0-9,\-._#@\\]+\$", rx) or not re.search(r"[\^$()*@]", rx):
        return "(?:" + rx + ")"  # dt-schema wants fixed names in properties: (same regex)
    return rx


def binding_document(b: Binding, rel: str, keys: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "$id": _id(rel),
        "$schema": META,
        "title": _title(b),
        "maintainers": [MAINTAINER],
    }
    desc = _description(b)
    if desc:
        doc["description"] = desc
    if b.compatible:
        doc["select"] = _compatible_select(b.compatible[0], keys)
    else:
        doc["select"] = False
    doc.update(node_schema(b.spec, keys, top=True))
    return doc


MAX_POSITION = 6  # compatible lists longer than this are matched on their first 6 strings


def _compatible_select(key: str, keys: list[str]) -> dict[str, Any]:
    """dtvm's match: the node's first compatible string (in the node's order) that has a binding is ``key``."""
    others = [k for k in keys if k != key]
    alts: list[dict[str, Any]] = []
    for pos in range(MAX_POSITION):
        items: list[dict[str, Any]] = (
            [{"not": {"enum": others}} for _ in range(pos)] if others else [{} for _ in range(pos)]
        )
        # explicit counts: dtschema reads an items list without them as a fixed length
        # additionalItems: true keeps dt-doc-validate's items-list rules off
        alts.append(
            {
                "items": [*items, {"const": key}],
                "additionalItems": True,
                "minItems": pos + 1,
                "maxItems": UNBOUNDED,
            }
        )
    return {"required": ["compatible"], "properties": {"compatible": {"anyOf": alts}}}


def _title(b: Binding) -> str:
    what = b.compatible[0] if b.compatible else (b.select_path.pattern if b.select_path else b.file)
    title = f"dtvm: {what}"
    return re.sub(r"([Bb]inding| [Ss]chema)", "-", title)[:100]


def _description(b: Binding) -> str:
    return f"Exported from dtvm's {b.file} (the qemu: section is left out)."


# -- path-selected bindings -------------------------------------------------------
_LITERAL = re.compile(r"[A-Za-z0-9,._+#-]+")


def _components(path_rx: str) -> tuple[list[str], bool] | None:
    """``^/cpus/[^/]+@[0-9a-f]+$`` -> (["cpus", "[^/]+@[0-9a-f]+"], False); a trailing
    ``(/[^/]+)*`` means "and every descendant" (True). None if not a plain split."""
    rx = path_rx
    if not (rx.startswith("^/") and rx.endswith("$")):
        return None
    rx = rx[2:-1]
    recursive = False
    if rx.endswith("(/[^/]+)*"):
        rx, recursive = rx[: -len("(/[^/]+)*")], True
    if rx == "":
        return [], recursive
    parts, cur, depth = [], "", 0
    for ch in rx:  # split on the slashes outside [...] and (...)
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "/" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    if any(part == "" for part in parts) or depth != 0:
        return None
    return parts, recursive


def _nest(parts: list[str], leaf: dict[str, Any]) -> dict[str, Any]:
    if not parts:
        return leaf
    inner = _nest(parts[1:], leaf)
    part = parts[0]
    if _LITERAL.fullmatch(part) and "," not in part and "." not in part:
        return {"type": "object", "properties": {part: inner}}
    return {"type": "object", "patternProperties": {_fullmatch(part): inner}}


def paths_document(
    bset: BindingSet, rels: dict[int, str], keys: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """The root-selected schema that applies the path-selected bindings; and what it could not express."""
    rules: list[dict[str, Any]] = []
    defs: dict[str, Any] = {}
    skipped: list[str] = []
    earlier: list[Binding] = []
    shadows: list[tuple[Binding, tuple[list[str], bool]]] = []
    for b in bset.selects:
        if b.select_path is None:
            skipped.append(f"{b.file}: select without path: not exported to {PATHS_DOC}")
            continue
        split = _components(b.select_path.pattern)
        if split is None:
            skipped.append(f"{b.file}: select.path {b.select_path.pattern!r} is not a plain path")
            continue
        parts, recursive = split
        # dtvm takes the first select binding that matches: an earlier one with the same
        # path and node name wins, unconditionally or when the root compatible says so
        root_not: list[str] = []
        shadowed = False
        for e in earlier:
            same = (
                e.select_path is not None
                and e.select_path.pattern == b.select_path.pattern
                and (
                    (e.select_name.pattern if e.select_name else None)
                    == (b.select_name.pattern if b.select_name else None)
                )
            )
            if same:
                if e.select_root is None:
                    shadowed = True
                elif e.select_root != b.select_root:
                    root_not.append(e.select_root)
        earlier.append(b)
        if b.select_root is None and b.select_name is None:
            shadows.append((b, split))
        if shadowed:
            skipped.append(f"{b.file}: never selected (an earlier binding has the same select)")
            continue
        skip_if: list[dict[str, Any]] = [_bound(keys)]
        # the node name is the key under its parent: precedence and select.node-name go into
        # the last component's regex (a child node carries no $nodename when its parent is checked)
        not_names = [
            eparts[-1]
            for _e, (eparts, erec) in shadows
            if erec == recursive
            and eparts
            and len(eparts) == len(parts)
            and eparts[:-1] == parts[:-1]
            and eparts != parts
        ]
        if parts and (not_names or b.select_name is not None):
            look = "".join(f"(?!(?:{n})$)" for n in not_names)
            if b.select_name is not None:
                look += f"(?=(?:{b.select_name.pattern})$)"
            parts = [*parts[:-1], f"{look}(?:{parts[-1]})"]
        leaf: dict[str, Any] = {"if": {"anyOf": skip_if}, "then": True, "else": {"$ref": _ref(rels[id(b)])}}
        if recursive:
            name = re.sub(r"[^a-zA-Z0-9]+", "-", rels[id(b)].removesuffix(".yaml"))
            defs[name] = {**leaf, "additionalProperties": {"$ref": f"#/$defs/{name}"}}
            leaf = {"$ref": f"#/$defs/{name}"}
        rule = _nest(parts, leaf)
        cond: list[dict[str, Any]] = []
        if b.select_root is not None:
            cond.append(
                {
                    "required": ["compatible"],
                    "properties": {"compatible": {"contains": {"const": b.select_root}}},
                }
            )
        for r in root_not:
            cond.append(
                {
                    "not": {
                        "required": ["compatible"],
                        "properties": {"compatible": {"contains": {"const": r}}},
                    }
                }
            )
        if cond:
            rule = {"if": {"allOf": cond} if len(cond) > 1 else cond[0], "then": rule}
        rules.append(rule)
    doc: dict[str, Any] = {
        "$id": _id(PATHS_DOC),
        "$schema": META,
        "title": "dtvm: nodes selected by their path",
        "maintainers": [MAINTAINER],
        "description": "Applies dtvm's path-selected bindings from the root down to their nodes.",
        "select": {"required": ["$nodename"], "properties": {"$nodename": {"const": "/"}}},
        "properties": {"$nodename": True},
    }
    if defs:
        doc["$defs"] = defs
    if rules:
        doc["allOf"] = rules
    doc["additionalProperties"] = True
    return doc, skipped


def export_documents(bset: BindingSet) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """{relative path: dt-schema document} for every binding, and notes on what was not exported."""
    global _CORE
    _CORE = core_types()
    _NOTES.clear()
    keys = sorted(bset.by_compatible)
    docs: dict[str, dict[str, Any]] = {}
    rels: dict[int, str] = {}
    for b in bset.bindings():
        rel = _doc_path(b)
        rels[id(b)] = rel
        docs[rel] = binding_document(b, rel, keys)
    paths, notes = paths_document(bset, rels, keys)
    docs[PATHS_DOC] = paths
    return docs, sorted(set(_NOTES)) + notes


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, s: str) -> yaml.ScalarNode:
    return dumper.represent_scalar(
        "tag:yaml.org,2002:str", s, style='"' if re.search(r"[^A-Za-z0-9 _./-]", s) else None
    )


_Dumper.add_representer(str, _str)


def export_bindings(
    out_dir: str, dirs: list[str] | None = None, bset: BindingSet | None = None
) -> tuple[list[str], list[str]]:
    """Write the dt-schema documents under ``out_dir``; (files written, notes)."""
    if bset is None:
        bset = load_bindings(dirs)
    docs, notes = export_documents(bset)
    written: list[str] = []
    for rel, doc in sorted(docs.items()):
        path = os.path.join(out_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write("# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)\n%YAML 1.2\n---\n")
            yaml.dump(
                doc,
                f,
                Dumper=_Dumper,
                sort_keys=False,
                default_flow_style=False,
                width=100,
                allow_unicode=True,
            )
        written.append(path)
    return written, notes
