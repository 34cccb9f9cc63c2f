"""Walk a tree, match each node to a binding, decode, validate, collect every finding."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dtvm.bindings.compile import SchemaMismatch, prop_check, prop_validator
from dtvm.bindings.decode import DecodeError, TreeIndex, decode
from dtvm.bindings.findings import Finding, Unchecked
from dtvm.bindings.load import Binding, BindingSet, NodeSpec, PropSpec
from dtvm.dt.tree import DeviceTree, Node, Property

if TYPE_CHECKING:
    import fastjsonschema

__all__ = ["MAX_DEPTH", "Result", "match", "validate_tree"]


class Result:
    """What validating one tree found: findings, unchecked nodes, how many nodes were checked."""

    def __init__(self, findings: list[Finding] | None = None, unchecked: list[Unchecked] | None = None, checked: int = 0) -> None:
        self.findings: list[Finding] = findings if findings is not None else []
        self.unchecked: list[Unchecked] = unchecked if unchecked is not None else []
        self.checked = checked

    def __repr__(self) -> str:
        return f"Result({len(self.findings)} findings, {len(self.unchecked)} unchecked, {self.checked} checked)"

    def all_findings(self, strict: bool = False) -> list[Finding]:
        if not strict:
            return self.findings
        return self.findings + [u.as_finding() for u in self.unchecked]


def _compatibles(node: Node) -> list[str]:
    p = node.get_property("compatible")
    if p is None or not p.value or p.value[-1] != 0:
        return []
    return p.value[:-1].decode("utf-8", "replace").split("\0")


#: Nodes nested deeper than this are not validated (one finding says so).  Real trees nest
#: fewer than 20 levels; without a bound, matching ``select: path`` costs a path string per
#: node, and a 100,000-deep blob (1.2 MB) would take quadratic time.
MAX_DEPTH = 256


def match(
    bindings: BindingSet, node: Node, compatibles: list[str], root_compatibles: list[str] | None = None
) -> Binding | None:
    """The binding of ``node``: by compatible (in the node's order), else by select.

    ``root_compatibles`` (the root's compatible list) saves a walk to the root per node."""
    for c in compatibles:
        b = bindings.by_compatible.get(c)
        if b is not None:
            return b
    path = None
    for b in bindings.selects:
        if b.select_name is not None and not b.select_name.fullmatch(node.name or "/"):
            continue
        if b.select_root is not None:
            if root_compatibles is None:
                root = node
                while root.parent is not None:
                    root = root.parent
                root_compatibles = _compatibles(root)
            if b.select_root not in root_compatibles:
                continue
        if b.select_path is not None:
            if path is None:
                path = node.path
            if not b.select_path.fullmatch(path):
                continue
        return b
    return None


def _where(pos: Any, fallback: tuple[str, int]) -> tuple[str, int]:
    if pos is None:
        return fallback
    try:
        name, line, _col = pos.location()
    except Exception:  # a position without a source: report the input file
        return fallback
    return name, line


def _chain(pos: Any) -> tuple[tuple[str, int], ...]:
    """The #include sites that led to ``pos`` (only asked for a finding: most nodes have none)."""
    if pos is None or not hasattr(pos, "start"):
        return ()
    from dtvm.dt.dts.source import include_chain

    try:
        return tuple(include_chain(pos))
    except Exception:  # a position without a source buffer: no chain to tell
        return ()


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return hex(v) if v > 9 else str(v)
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, list):
        return "<" + " ".join(_show(x) for x in v) + ">"
    return repr(v)


def _message(exc: fastjsonschema.JsonSchemaValueException) -> str:
    sub = list(exc.path or [])[1:]
    at = "item " + "".join(f"[{p}]" for p in sub) + " " if sub else ""
    rule, want, got = exc.rule, exc.rule_definition, exc.value
    if rule == "const":
        return f"{at}is {_show(got)}, must be {_show(want)}"
    if rule == "enum":
        return f"{at}is {_show(got)}, must be one of " + ", ".join(_show(w) for w in want)
    if rule == "maxItems" and isinstance(got, list):
        return f"{at}has {len(got)} entries, at most {want} allowed"
    if rule == "minItems" and isinstance(got, list):
        return f"{at}has {len(got)} entries, at least {want} required"
    if rule == "minimum":
        return f"{at}is {_show(got)}, must be >= {_show(want)}"
    if rule == "maximum":
        return f"{at}is {_show(got)}, must be <= {_show(want)}"
    if rule == "pattern":
        return f"{at}{_show(got)} does not match {want}"
    msg = exc.message
    name = exc.name or "data"
    if msg.startswith(name):
        msg = msg[len(name) :].lstrip()
    return at + msg


def validate_node(node: Node, spec: NodeSpec, binding_file: str, idx: TreeIndex, fname: str, out: list[Finding]) -> None:
    path = node.path
    node_where = _where(node.pos, (fname, 0))
    mine: list[tuple[int, Finding]] = []
    order = {p.name: i for i, p in enumerate(node.props)}

    def add(prop: Property | None, pname: str | None, message: str, rule: str, bfile: str | None, bline: int) -> None:
        pos = prop.pos if prop is not None and prop.pos is not None else node.pos
        file, line = _where(prop.pos, node_where) if prop is not None else node_where
        chain = _chain(pos) if line else ()
        mine.append((order.get(pname or "", -1), Finding(file, line, path, pname, message, rule, bfile, bline, chain)))

    if spec.node_name is not None and not spec.node_name.fullmatch(node.name):
        add(None, None, f"node name {node.name!r} does not match {spec.node_name.pattern!r}", "node-name", spec.file, spec.node_name_line)
    present: set[str] = set()
    failed: list[tuple[Property, PropSpec, Any]] = []
    for prop in node.props:
        if prop.deleted:
            continue
        pspec = spec.lookup(prop.name)
        if pspec is None:
            add(prop, prop.name, "property is not declared by the binding", "additionalProperties", binding_file, spec.line)
            continue
        try:
            value = decode(prop, pspec.type, pspec.cells, node, idx)
        except DecodeError as exc:
            add(prop, prop.name, exc.message, exc.rule, pspec.file, pspec.line)
            continue
        present.add(prop.name)
        try:
            prop_check(pspec)(value)
        except SchemaMismatch:
            failed.append((prop, pspec, value))
    for name, rfile, rline in spec.required:
        if name not in present and node.get_property(name) is None:
            add(None, name, "required property is missing", "required", rfile, rline)
    if failed:
        # what is wrong, in fastjsonschema's words (imported only now: a clean tree never needs it)
        import fastjsonschema

        for prop, pspec, value in failed:
            try:
                prop_validator(spec, pspec)(value)
            except fastjsonschema.JsonSchemaValueException as exc:
                add(prop, prop.name, _message(exc), exc.rule or "schema", pspec.file, pspec.line)
    if mine:
        mine.sort(key=lambda kv: kv[0])
        out.extend(f for _k, f in mine)


def validate_tree(dt: DeviceTree, bindings: BindingSet, fname: str = "") -> Result:
    """Every finding for ``dt``; ``fname`` names the input when nodes have no source position."""
    fname = fname or dt.source_name or "<tree>"
    idx = TreeIndex(dt)
    res = Result()
    root_compatibles = _compatibles(dt.root)
    stack: list[tuple[Node, NodeSpec | None, str, int]] = [(dt.root, None, "", 0)]
    too_deep = False
    while stack:
        node, inherited, inherited_file, depth = stack.pop()
        if depth > MAX_DEPTH:
            if not too_deep:
                too_deep = True
                parent = node.parent if node.parent is not None else node
                file, line = _where(parent.pos, (fname, 0))
                res.findings.append(
                    Finding(
                        file, line, parent.path, None, f"nodes nested deeper than {MAX_DEPTH} levels are not validated", "depth", None, 0,
                        _chain(parent.pos) if line else (),
                    )
                )
            continue
        compatibles = _compatibles(node)
        binding = match(bindings, node, compatibles, root_compatibles)
        spec: NodeSpec | None
        if binding is not None:
            spec, bfile = binding.spec, binding.file
        elif inherited is not None:
            spec, bfile = inherited, inherited_file
        else:
            spec, bfile = None, ""
            if compatibles:
                file, line = _where(node.pos, (fname, 0))
                res.unchecked.append(Unchecked(file, line, node.path, tuple(compatibles)))
        if spec is not None:
            res.checked += 1
            validate_node(node, spec, bfile, idx, fname, res.findings)
        child_spec = spec.child if spec is not None else None
        for child in reversed(node.children):
            if not child.deleted:
                stack.append((child, child_spec, bfile, depth + 1))
    return res
