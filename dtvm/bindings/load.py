"""Binding documents: YAML with line numbers, the format check, includes, the binding set.

A binding is one YAML document (see ``format.schema.yaml``). Files under
``common/`` are fragments: they are only included. Every other file is a
binding matched by its first ``compatible`` string or by its ``select:``.
``common/base.yaml`` (status, phandle, ...) is included into every node spec.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import DtvmError

__all__ = [
    "BASE_FRAGMENT",
    "Binding",
    "BindingError",
    "BindingSet",
    "NodeSpec",
    "PropSpec",
    "default_dirs",
    "load_bindings",
]

BASE_FRAGMENT = "common/base.yaml"


class BindingError(DtvmError):
    """A binding document that cannot be used: names its file and line."""

    exit_code = 2

    def __init__(self, file: str, line: int, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        super().__init__(f"{file}:{line}: error: {message}" if line else f"{file}: error: {message}")


# -- YAML with marks ------------------------------------------------------------
class LDict(dict[Any, Any]):
    """A mapping that remembers its own line and the line of each key (1-based)."""

    __slots__ = ("line", "lines")

    line: int
    lines: dict[Any, int]


class LList(list[Any]):
    """A sequence that remembers its own line and the line of each item."""

    __slots__ = ("line", "lines")

    line: int
    lines: list[int]


_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class MarkLoader(_Base):  # type: ignore[misc]
    """SafeLoader (libyaml when present) whose mappings and sequences keep line numbers."""


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> LDict:
    loader.flatten_mapping(node)
    d = LDict()
    d.line = node.start_mark.line + 1
    d.lines = {}
    for knode, vnode in node.value:
        key = loader.construct_object(knode, deep=True)
        if key in d:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", knode.start_mark
            )
        d[key] = loader.construct_object(vnode, deep=True)
        d.lines[key] = knode.start_mark.line + 1
    return d


def _construct_sequence(loader: Any, node: yaml.SequenceNode) -> LList:
    seq = LList(loader.construct_object(child, deep=True) for child in node.value)
    seq.line = node.start_mark.line + 1
    seq.lines = [child.start_mark.line + 1 for child in node.value]
    return seq


MarkLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
MarkLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def line_of(doc: Any, path: list[Any]) -> int:
    """The line of the deepest element of ``path`` (keys and indexes) found in ``doc``."""
    line = getattr(doc, "line", 1)
    cur = doc
    for step in path:
        if isinstance(cur, LDict) and step in cur:
            line = cur.lines.get(step, line)
            cur = cur[step]
        elif isinstance(cur, LList) and isinstance(step, int) and 0 <= step < len(cur):
            line = cur.lines[step]
            cur = cur[step]
        else:
            break
    return line


def plain(obj: Any) -> Any:
    """LDict/LList -> dict/list, for compiling to a schema."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return obj


# -- the format check -------------------------------------------------------------
_format_validator: Any = None


def _check_format(doc: Any, display: str) -> None:
    global _format_validator
    import fastjsonschema

    if _format_validator is None:
        schema_path = Path(__file__).with_name("format.schema.yaml")
        with open(schema_path, encoding="utf-8") as f:
            schema = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        _format_validator = fastjsonschema.compile(schema, use_default=False)
    try:
        _format_validator(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        path = list(exc.path or [])[1:]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "document"
        msg = exc.message
        if exc.name and msg.startswith(exc.name):
            msg = msg[len(exc.name) :].strip()
        raise BindingError(display, line_of(doc, path), f"{where}: {msg} [{exc.rule}]") from None


# -- the model ----------------------------------------------------------------------
_CONSTRAINTS = ("const", "enum", "minimum", "maximum", "minItems", "maxItems", "pattern", "items", "contains")


@dataclass(slots=True)
class PropSpec:
    """A declared property: its type, its constraints and where they were written."""

    name: str
    type: str
    constraints: dict[str, Any]
    cells: str | int | None
    file: str
    line: int


@dataclass(eq=False)
class NodeSpec:
    """What a node must look like: a binding's top level or a child-binding."""

    file: str
    line: int
    props: dict[str, PropSpec] = field(default_factory=dict)
    patterns: list[tuple[re.Pattern[str], PropSpec]] = field(default_factory=list)
    required: list[tuple[str, str, int]] = field(default_factory=list)  # (name, file, line)
    node_name: re.Pattern[str] | None = None
    node_name_line: int = 0
    child: NodeSpec | None = None
    # filled in lazily by compile.py
    validator: Any = None
    prop_validators: dict[str, Any] = field(default_factory=dict)

    def lookup(self, name: str) -> PropSpec | None:
        spec = self.props.get(name)
        if spec is not None:
            return spec
        for rx, pspec in self.patterns:
            if rx.search(name):
                return pspec
        return None


@dataclass(eq=False)
class Binding:
    file: str
    compatible: list[str]
    spec: NodeSpec
    select_path: re.Pattern[str] | None = None
    select_name: re.Pattern[str] | None = None
    # only on machines whose root node lists this compatible (e.g. "qemu,pseries")
    select_root: str | None = None
    qemu: dict[str, Any] | None = None

    @property
    def select_specificity(self) -> int:
        """How many select conditions; the most specific select binding wins."""
        return sum(x is not None for x in (self.select_path, self.select_name, self.select_root))

    @property
    def key(self) -> str | None:
        return self.compatible[0] if self.compatible else None


@dataclass
class BindingSet:
    """All bindings: by match key, the select bindings, and the fragments they used."""

    by_compatible: dict[str, Binding] = field(default_factory=dict)
    selects: list[Binding] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len({id(b) for b in self.by_compatible.values()}) + len(self.selects)

    def bindings(self) -> list[Binding]:
        seen: dict[int, Binding] = {}
        for b in [*self.by_compatible.values(), *self.selects]:
            seen.setdefault(id(b), b)
        return list(seen.values())


# -- loading --------------------------------------------------------------------------
def default_dirs() -> list[str]:
    """The bindings shipped with dtvm: ``dtvm/_bindings`` in a wheel, ``bindings/`` in a checkout."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "_bindings", here.parent.parent / "bindings"):
        if cand.is_dir():
            return [str(cand)]
    return []


def _regex(pattern: str, file: str, line: int, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise BindingError(file, line, f"{what}: bad regular expression {pattern!r}: {exc}") from None


class _Loader:
    def __init__(self, dirs: list[str]) -> None:
        self.dirs = [str(d) for d in dirs]
        self.docs: dict[str, tuple[Any, str]] = {}  # real path -> (doc, display name)
        self.fragments: dict[str, NodeSpec] = {}  # include name -> merged spec (no base)

    def display(self, root: str, rel: str) -> str:
        return f"{os.path.basename(os.path.normpath(root))}/{rel}"

    def read(self, path: str, display: str) -> Any:
        hit = self.docs.get(path)
        if hit is not None:
            return hit[0]
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise BindingError(display, 0, f"cannot read: {exc.strerror}") from None
        try:
            doc = yaml.load(text, Loader=MarkLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 0
            raise BindingError(display, line, f"YAML: {exc.problem or exc.context}") from None
        except yaml.YAMLError as exc:
            raise BindingError(display, 0, f"YAML: {exc}") from None
        if doc is None:
            doc = LDict()
            doc.line, doc.lines = 1, {}
        if not isinstance(doc, dict):
            raise BindingError(display, 1, "a binding must be a mapping")
        _check_format(doc, display)
        self.docs[path] = (doc, display)
        return doc

    def find_include(self, name: str, file: str, line: int) -> tuple[str, str]:
        for root in self.dirs:
            path = os.path.join(root, name)
            if os.path.isfile(path):
                return path, self.display(root, name)
        raise BindingError(file, line, f"include: {name} not found in {', '.join(self.dirs) or 'no binding directory'}")

    def fragment(self, name: str, file: str, line: int, stack: tuple[str, ...]) -> NodeSpec:
        spec = self.fragments.get(name)
        if spec is not None:
            return spec
        if name in stack:
            raise BindingError(file, line, f"include: cycle through {name}")
        path, display = self.find_include(name, file, line)
        doc = self.read(path, display)
        spec = self.node_spec(doc, display, (*stack, name), with_base=False)
        self.fragments[name] = spec
        return spec

    def node_spec(self, doc: Any, file: str, stack: tuple[str, ...], with_base: bool = True) -> NodeSpec:
        spec = NodeSpec(file, getattr(doc, "line", 1))
        if isinstance(doc, LDict) and "properties" in doc:
            spec.line = doc.lines["properties"]  # where undeclared properties are judged
        includes: list[tuple[str, int]] = []
        if with_base and BASE_FRAGMENT not in stack:
            includes.append((BASE_FRAGMENT, spec.line))
        inc = doc.get("include") or []
        includes += [(name, inc.lines[i] if isinstance(inc, LList) else spec.line) for i, name in enumerate(inc)]
        for name, line in includes:
            frag = self.fragment(name, file, line, stack)
            for pname, p in frag.props.items():
                spec.props[pname] = _merge(spec.props.get(pname), p)
            spec.patterns.extend(frag.patterns)
            for r in frag.required:
                if all(r[0] != have[0] for have in spec.required):
                    spec.required.append(r)
        props = doc.get("properties") or {}
        for pname, pdoc in props.items():
            line = props.lines.get(pname, spec.line) if isinstance(props, LDict) else spec.line
            own = _prop(pname, pdoc, file, line)
            base = spec.props.get(pname)
            if own.type == "" and base is None:
                raise BindingError(file, line, f"properties.{pname}: no type (give type:, or include a fragment that declares it)")
            spec.props[pname] = _merge(base, own)
        pats = doc.get("pattern-properties") or {}
        for pat, pdoc in pats.items():
            line = pats.lines.get(pat, spec.line) if isinstance(pats, LDict) else spec.line
            own = _prop(pat, pdoc, file, line)
            if own.type == "":
                raise BindingError(file, line, f"pattern-properties.{pat}: no type")
            spec.patterns.append((_regex(pat, file, line, "pattern-properties"), own))
        req = doc.get("required") or []
        for i, name in enumerate(req):
            line = req.lines[i] if isinstance(req, LList) else spec.line
            spec.required = [r for r in spec.required if r[0] != name]
            spec.required.append((name, file, line))
            if spec.lookup(name) is None:
                raise BindingError(file, line, f"required: {name} is not a declared property")
        if "node-name" in doc:
            line = doc.lines.get("node-name", spec.line)
            spec.node_name = _regex(doc["node-name"], file, line, "node-name")
            spec.node_name_line = line
        if "child-binding" in doc:
            spec.child = self.node_spec(doc["child-binding"], file, stack)
        return spec


def _prop(name: str, pdoc: Any, file: str, line: int) -> PropSpec:
    constraints = {k: plain(v) for k, v in pdoc.items() if k in _CONSTRAINTS}
    return PropSpec(name, pdoc.get("type", ""), constraints, pdoc.get("cells"), file, line)


def _merge(base: PropSpec | None, own: PropSpec) -> PropSpec:
    """``own`` refines ``base``: its type if given, its constraints over the base's."""
    if base is None:
        return own
    if own.type and base.type and own.type != base.type:
        # a binding may retype a common property; the refinement wins
        return own
    constraints = {**base.constraints, **own.constraints}
    cells = own.cells if own.cells is not None else base.cells
    return PropSpec(own.name, own.type or base.type, constraints, cells, own.file, own.line)


def load_bindings(dirs: list[str] | None = None) -> BindingSet:
    """Load every binding under ``dirs`` (default: dtvm's own); BindingError on the first broken one."""
    if dirs is None:
        dirs = default_dirs()
    loader = _Loader(dirs)
    bset = BindingSet(dirs=list(loader.dirs))
    key_root: dict[str, str] = {}
    for root in loader.dirs:
        if not os.path.isdir(root):
            raise BindingError(root, 0, "not a directory")
        files: list[str] = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in sorted(filenames):
                if fn.endswith(".yaml"):
                    files.append(os.path.relpath(os.path.join(dirpath, fn), root).replace(os.sep, "/"))
        for rel in files:
            display = loader.display(root, rel)
            doc = loader.read(os.path.join(root, rel), display)
            if rel.startswith("common/"):
                for key in ("compatible", "select", "qemu"):
                    if key in doc:
                        raise BindingError(display, doc.lines[key], f"{key}: a fragment under common/ is only included, it cannot have {key}:")
                continue
            if "compatible" not in doc and "select" not in doc:
                raise BindingError(display, doc.line, "a binding needs compatible: or select:")
            binding = Binding(display, list(doc.get("compatible") or []), loader.node_spec(doc, display, ()))
            binding.qemu = plain(doc["qemu"]) if "qemu" in doc else None
            if "select" in doc:
                sel = doc["select"]
                if "path" in sel:
                    binding.select_path = _regex(sel["path"], display, sel.lines["path"], "select.path")
                if "node-name" in sel:
                    binding.select_name = _regex(sel["node-name"], display, sel.lines["node-name"], "select.node-name")
                if "root-compatible" in sel:
                    binding.select_root = str(sel["root-compatible"])
            if binding.compatible:
                key = binding.compatible[0]
                other = bset.by_compatible.get(key)
                if other is not None and key_root[key] == root:
                    raise BindingError(display, doc.lines["compatible"], f"compatible: {key!r} is already the key of {other.file}")
                if other is None:  # an earlier directory wins
                    bset.by_compatible[key] = binding
                    key_root[key] = root
            else:
                bset.selects.append(binding)
    # most specific first; among equals, load order (earlier directories, then path order)
    bset.selects.sort(key=lambda b: -b.select_specificity)
    return bset

