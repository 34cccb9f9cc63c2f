"""Binding documents: YAML with line numbers, the format check, includes, the binding set.

A binding is one YAML document (see ``format.schema.yaml``). Files under
``common/`` are fragments: they are only included. Every other file is a
binding matched by its first ``compatible`` string or by its ``select:``.
``common/base.yaml`` (status, phandle, ...) is included into every node spec.

PyYAML and fastjsonschema are imported only when YAML is actually read: a
``dtvm validate`` served from the binding cache (``cache.py``) never needs
them, and importing them is a good part of a one-blob run's time.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from dtvm.errors import DtvmError

if TYPE_CHECKING:
    import yaml

__all__ = [
    "BASE_FRAGMENT",
    "Binding",
    "BindingError",
    "BindingSet",
    "NodeSpec",
    "PropSpec",
    "Regex",
    "default_dirs",
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


_mark_loader: Any = None


def _loader_class() -> Any:
    """SafeLoader (libyaml when present) whose mappings and sequences keep line numbers.

    Built on first use so that importing this module does not import PyYAML.
    """
    global _mark_loader
    if _mark_loader is None:
        import yaml

        base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

        class MarkLoader(base):  # type: ignore[misc,valid-type]
            pass

        MarkLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
        MarkLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)
        _mark_loader = MarkLoader
    return _mark_loader


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> LDict:
    import yaml

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
    import yaml

    if _format_validator is None:
        schema_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "format.schema.yaml")
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
class Regex:
    """A regular expression compiled on first use; a plain literal is never compiled at all.

    Bindings loaded from the cache carry about a hundred patterns (node names,
    pattern-properties, selects); compiling the ones a run needs costs more than
    validating a QEMU tree does, and many are literals such as ``^/chosen$``,
    matched here by string comparison with ``re``'s exact semantics. Loading
    from YAML compiles eagerly, to report a bad pattern with its file and line.
    """

    __slots__ = ("_lit", "_prefix", "_rx", "pattern")

    def __init__(self, pattern: str, compiled: re.Pattern[str] | None = None) -> None:
        self.pattern = pattern
        self._rx = compiled
        self._lit: tuple[str, bool, bool] | bool | None = False  # False: not classified yet
        self._prefix = ""

    @property
    def compiled(self) -> re.Pattern[str]:
        rx = self._rx
        if rx is None:
            rx = self._rx = re.compile(self.pattern)
        return rx

    def _literal(self) -> tuple[str, bool, bool] | None:
        """(text, anchored at the start, anchored at the end) if the pattern is a plain literal."""
        lit = self._lit
        if lit is False:
            m = _LITERAL.fullmatch(self.pattern)
            lit = self._lit = (m.group(2), bool(m.group(1)), bool(m.group(3))) if m else None
            if m is None:
                self._prefix = _literal_prefix(self.pattern)
        return lit  # type: ignore[return-value]

    def search(self, text: str) -> bool:
        """Whether ``re.search(pattern, text)`` matches."""
        lit = self._literal()
        if lit is None:
            if self._prefix and self.pattern[0] == "^" and not text.startswith(self._prefix):
                return False  # no need to compile it to know
            return self.compiled.search(text) is not None
        body, start, end = lit
        if start and end:
            return text == body or text == body + "\n"
        if start:
            return text.startswith(body)
        if end:
            return text.endswith(body) or text.endswith(body + "\n")
        return body in text

    def fullmatch(self, text: str) -> bool:
        """Whether ``re.fullmatch(pattern, text)`` matches."""
        lit = self._literal()
        if lit is None:
            if self._prefix and not text.startswith(self._prefix):
                return False
            return self.compiled.fullmatch(text) is not None
        return text == lit[0]

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"


# characters that are literal in a Python regular expression (outside a class, no flags)
_LITERAL_CHARS = r"A-Za-z0-9_,/@#%=:;<>!~`'\"&\- "
_LITERAL = re.compile(rf"(\^?)([{_LITERAL_CHARS}]*)(\$?)")
_PREFIX = re.compile(rf"\^?([{_LITERAL_CHARS}]*)([*+?{{]?)")


def _literal_prefix(pattern: str) -> str:
    """Text every match of ``pattern`` at position 0 starts with ('' if none can be told).

    The literal characters up to the first special one, less the last if a quantifier
    follows it; nothing when a ``|`` outside any group could start another alternative.
    """
    depth, i, n = 0, 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 1
        elif c == "[":  # a class: skip to its end (a ']' first in it is literal)
            i += 2 if pattern[i + 1 : i + 2] == "^" else 1
            i += 1 if pattern[i : i + 1] == "]" else 0
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            return ""
        i += 1
    m = _PREFIX.match(pattern)
    if m is None:
        return ""
    text = m.group(1)
    return text[:-1] if m.group(2) else text


_CONSTRAINTS = ("const", "enum", "minimum", "maximum", "minItems", "maxItems", "pattern", "items", "contains")


# The model is plain classes, not dataclasses: ``dtvm validate`` on one blob is mostly start-up,
# and building these four as dataclasses cost over a millisecond of it.


class PropSpec:
    """A declared property: its type, its constraints and where they were written."""

    __slots__ = ("cells", "check", "check_code", "constraints", "file", "line", "name", "type")

    def __init__(
        self,
        name: str,
        type: str,
        constraints: dict[str, Any],
        cells: str | int | None,
        file: str,
        line: int,
        check_code: Any = None,
    ) -> None:
        self.name = name
        self.type = type
        self.constraints = constraints
        self.cells = cells
        self.file = file
        self.line = line
        # the yes/no check of the value (compile.prop_check): its marshalled code (bytes, or a
        # cache.CodeChunk that reads them from the cache file) if known, and the function
        self.check_code = check_code
        self.check: Any = None

    def _astuple(self) -> tuple[Any, ...]:
        return (self.name, self.type, self.constraints, self.cells, self.file, self.line)

    def __eq__(self, other: object) -> bool:
        return other.__class__ is self.__class__ and self._astuple() == other._astuple()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        return "PropSpec({!r}, {!r}, {!r}, {!r}, {!r}, {!r})".format(*self._astuple())


class NodeSpec:
    """What a node must look like: a binding's top level or a child-binding (compared by identity)."""

    def __init__(
        self,
        file: str,
        line: int,
        props: dict[str, PropSpec] | None = None,
        patterns: list[tuple[Regex, PropSpec]] | None = None,
        required: list[tuple[str, str, int]] | None = None,
        node_name: Regex | None = None,
        node_name_line: int = 0,
        child: NodeSpec | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.props: dict[str, PropSpec] = props if props is not None else {}
        self.patterns: list[tuple[Regex, PropSpec]] = patterns if patterns is not None else []
        self.required: list[tuple[str, str, int]] = required if required is not None else []  # (name, file, line)
        self.node_name = node_name
        self.node_name_line = node_name_line
        self.child = child
        self.prop_validators: dict[str, Any] = {}  # fastjsonschema's, for messages (compile.py)

    def __repr__(self) -> str:
        return f"NodeSpec({self.file!r}, {self.line!r}, props={list(self.props)!r})"

    def lookup(self, name: str) -> PropSpec | None:
        """The spec of property ``name``: declared, else the first pattern-property it matches."""
        spec = self.props.get(name)
        if spec is not None:
            return spec
        for rx, pspec in self.patterns:
            if rx.search(name):
                return pspec
        return None


class Binding:
    """One binding document: its match (compatible or select), its node spec, its ``qemu:`` section.

    Compared by identity.
    """

    def __init__(
        self,
        file: str,
        compatible: list[str],
        spec: NodeSpec,
        select_path: Regex | None = None,
        select_name: Regex | None = None,
        select_root: str | None = None,
        qemu: dict[str, Any] | None = None,
    ) -> None:
        self.file = file
        self.compatible = compatible
        self.spec = spec
        self.select_path = select_path
        self.select_name = select_name
        # only on machines whose root node lists this compatible (e.g. "qemu,pseries")
        self.select_root = select_root
        self.qemu = qemu

    def __repr__(self) -> str:
        return f"Binding({self.file!r}, {self.compatible!r})"

    @property
    def select_specificity(self) -> int:
        """How many select conditions; the most specific select binding wins."""
        return sum(x is not None for x in (self.select_path, self.select_name, self.select_root))

    @property
    def key(self) -> str | None:
        return self.compatible[0] if self.compatible else None


class BindingSet:
    """All bindings: by match key, the select bindings, and the fragments they used."""

    def __init__(
        self,
        by_compatible: dict[str, Binding] | None = None,
        selects: list[Binding] | None = None,
        dirs: list[str] | None = None,
    ) -> None:
        self.by_compatible: dict[str, Binding] = by_compatible if by_compatible is not None else {}
        self.selects: list[Binding] = selects if selects is not None else []
        self.dirs: list[str] = dirs if dirs is not None else []

    def __repr__(self) -> str:
        return f"BindingSet({len(self)} bindings from {self.dirs!r})"

    def __len__(self) -> int:
        return len({id(b) for b in self.by_compatible.values()}) + len(self.selects)

    def bindings(self) -> list[Binding]:
        seen: dict[int, Binding] = {}
        for b in [*self.by_compatible.values(), *self.selects]:
            seen.setdefault(id(b), b)
        return list(seen.values())


# -- loading --------------------------------------------------------------------------
def default_dirs() -> list[str]:
    """The binding directories: those of ``$DTVM_BINDINGS`` (``os.pathsep``-separated, searched
    first: a binding there wins over dtvm's own of the same compatible), then the bindings shipped
    with dtvm (``dtvm/_bindings`` in a wheel, ``bindings/`` in a checkout)."""
    extra = [d for d in os.environ.get("DTVM_BINDINGS", "").split(os.pathsep) if d]
    pkg = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # .../dtvm
    for cand in (os.path.join(pkg, "_bindings"), os.path.join(os.path.dirname(pkg), "bindings")):
        if os.path.isdir(cand):
            return [*extra, cand]
    return extra


def _regex(pattern: str, file: str, line: int, what: str) -> Regex:
    try:
        return Regex(pattern, re.compile(pattern))
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
        import yaml

        try:
            doc = yaml.load(text, Loader=_loader_class())
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


def binding_files(root: str, walked: list[str] | None = None) -> list[tuple[str, str]]:
    """Every ``*.yaml`` under ``root`` as (relative path with ``/``, path), in load order.

    The order of ``os.walk`` with sorted names (a directory's files, then its
    subdirectories; symlinked directories are not entered). The cache
    fingerprints exactly this list, so both must come from here; ``walked``
    receives every directory read (a file added to one changes its mtime).
    """
    out: list[tuple[str, str]] = []

    def walk(path: str, prefix: str) -> None:
        if walked is not None:
            walked.append(path)
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        dirs: list[os.DirEntry[str]] = []
        files: list[os.DirEntry[str]] = []
        for e in entries:
            try:
                is_dir = e.is_dir()
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(e)
        for e in sorted(files, key=lambda e: e.name):
            if e.name.endswith(".yaml"):
                out.append((prefix + e.name, e.path))
        for e in sorted(dirs, key=lambda e: e.name):
            if not e.is_symlink():
                walk(e.path, prefix + e.name + "/")

    walk(root, "")
    return out


def load_yaml(dirs: list[str]) -> BindingSet:
    """Load every binding under ``dirs`` from its YAML (no cache); BindingError on the first broken one."""
    loader = _Loader(dirs)
    bset = BindingSet(dirs=list(loader.dirs))
    key_root: dict[str, str] = {}
    for root in loader.dirs:
        if not os.path.isdir(root):
            raise BindingError(root, 0, "not a directory")
        files = [rel for rel, _path in binding_files(root)]
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

