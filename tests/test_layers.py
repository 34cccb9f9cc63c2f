"""The house map of dtvm/__init__.py, held: no import circle, no wing importing a wing above it.

Read from the source with ``ast`` (every import, at module level or inside a function), so an
import hidden in a function counts as much as one at the top; only imports for annotations
(``if TYPE_CHECKING:``) are left out, as they are no dependency at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "dtvm"

#: wings from the ground up; a module may import its own wing and those before it
WINGS = ["ground", "dt", "bindings", "vm", "qemu", "libvirt", "cli"]


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _wing(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("errors", "fileio"):
        return "ground"
    if parts[1] == "__main__":
        return "cli"
    if parts[1].startswith("pylibfdt") or parts[1] == "api":
        return "bindings"  # the pylibfdt drop-in and the public API sit on dt, beside the bindings
    return parts[1]


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        found: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # names imported for annotations only (``if TYPE_CHECKING:``) are no dependency at run time
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                       for stmt in block.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join([*base, node.module] if node.module else base)
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
            for t in targets:
                while t not in modules and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in modules and t != name and t.startswith("dtvm"):
                    found.add(t)
        edges[name] = found
    return edges


def test_no_import_runs_up_the_house() -> None:
    modules = _modules()
    bad = []
    for name, targets in _imports(modules).items():
        if name == "dtvm":
            continue  # the public API re-exports lazily from the wings below the commands
        for t in targets:
            if WINGS.index(_wing(t)) > WINGS.index(_wing(name)):
                bad.append(f"{name} -> {t}")
    assert not bad, bad


def test_no_import_circle() -> None:
    edges = _imports(_modules())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles: list[list[str]] = []
    counter = 0

    for start in edges:
        if start in index:
            continue
        # iterative Tarjan
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w == "dtvm":
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        circles.append(sorted(comp))
    assert not circles, circles


def test_the_map_names_every_wing() -> None:
    import dtvm

    doc = dtvm.__doc__ or ""
    for wing in WINGS[1:]:
        assert f"``{wing}/``" in doc, wing
    on_disk = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert on_disk <= set(WINGS[1:]), on_disk - set(WINGS[1:])


def test_no_module_is_too_long() -> None:
    """One module, one job: none over about 900 lines (the issue's bound), so that each reads whole."""
    long = {str(p.relative_to(PKG.parent)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 920}
    assert not long, long
