"""The Linux kernel's binding schemas as dtvm's rule set: what ``make dtbs_check`` reports, faster.

Input is dt-mk-schema's processed output (``processed-schema.json``, or a directory holding one):
every binding with dtschema's fixups already applied and its ``select`` generated, plus the
property type tables that decide how a blob is decoded (kdecode.py). For each node, in tree order,
each schema in file order whose ``select`` matches validates the node (kengine.py), and every error
is formatted as dtschema's ``format_error`` formats it, so ``--format dt-validate`` prints what
dt-validate prints, byte for byte.

Why it is fast: dt-validate builds a jsonschema validator per (node, schema) and evaluates all
3,000 ``select`` schemas against every node; here the generated selects (``compatible`` contains one
of these strings) become one dict lookup, only the few hand-written selects are evaluated, and the
schemas are loaded from a marshal cache (kcache.py) instead of 16 MB of JSON.
"""

from __future__ import annotations

import os
import pprint
import re
from typing import Any

from dtvm.bindings.kcompile import Compiler
from dtvm.bindings.kdecode import Decoded, TypeTable
from dtvm.bindings.kengine import Engine, Err, RefError

__all__ = ["KernelFinding", "KernelSchemas", "format_error", "format_parts"]


class KernelFinding:
    """One dt-validate finding: the node, the schema file and dtschema's formatted message."""

    __slots__ = ("fullname", "msg", "node", "nodename", "path", "schema_file", "target", "where")

    def __init__(self, fullname: str, nodename: str, where: str, msg: str, schema_file: str, path: list[Any], node: Any, target: Any) -> None:
        self.fullname = fullname
        self.nodename = nodename
        self.where = where  # "/abs/file.dtb: node: prop: " (format_error's prefix)
        self.msg = msg  # the rest of format_error's text (may hold tab-indented lines)
        self.schema_file = schema_file
        self.path = path  # the error's absolute path in the node: a property, a child, indexes
        self.node = node  # the dtvm Node validated (for DTS lines), or None
        self.target = target  # the dtvm Property or child Node the path starts with, or None

    def dt_validate(self) -> str:
        """The lines dt-validate prints for this finding."""
        return self.where + self.msg + "\n\tFrom schema: " + self.schema_file


def format_error(filename: str, error: Err, prefix: str = "", nodename: str | None = None) -> str:
    """dtschema 2022.12's ``format_error`` (non-verbose, errors without line numbers or notes)."""
    src, msg = format_parts(filename, error, prefix, nodename)
    return src + msg


def format_parts(filename: str, error: Err, prefix: str = "", nodename: str | None = None) -> tuple[str, str]:
    """``format_error`` as (where, message): "/abs/file.dtb: node: prop: " and the rest."""
    src = prefix + os.path.abspath(filename) + ": "
    if nodename is not None:
        src += nodename + ": "
    apath = error.absolute_path
    if apath:
        src += "".join(str(p) + ":" for p in apath) + " "
    if not error.schema_path:
        msg = error.message
    elif error.context:
        msg = "'" + error.schema_path[-1] + "' conditional failed, one must be fixed:"
        for sub in sorted(error.context, key=lambda e: e.path):
            if sub.context:
                msg += "\n" + format_error(filename, sub, prefix + "\t", nodename)
            elif sub.message not in msg:
                msg += "\n" + prefix + "\t" + sub.message
    elif error.schema_path[-1] == "oneOf":
        msg = "More than one condition true in oneOf schema:\n\t" + "\t".join(
            pprint.pformat(error.schema, width=72).splitlines(True)
        )
    else:
        msg = error.message
    return src, msg


def _compat_select(sel: Any) -> list[str] | None:
    """The strings of a generated select (``compatible`` contains one of them), else None."""
    if not isinstance(sel, dict) or set(sel) != {"properties", "required"} or sel["required"] != ["compatible"]:
        return None
    props = sel["properties"]
    if not isinstance(props, dict) or list(props) != ["compatible"]:
        return None
    comp = props["compatible"]
    if not isinstance(comp, dict) or list(comp) != ["contains"] or not isinstance(comp["contains"], dict):
        return None
    cont = comp["contains"]
    if list(cont) == ["enum"] and isinstance(cont["enum"], list) and all(isinstance(s, str) for s in cont["enum"]):
        return list(cont["enum"])
    if list(cont) == ["const"] and isinstance(cont["const"], str):
        return [cont["const"]]
    return None


def _nodename_select(sel: Any) -> tuple[str, str] | None:
    """("pattern", P) or ("const", C) of a select that only matches the node name, else None.

    dt-validate sets ``$nodename`` to ``[name]`` on every node, so such a select is exactly one
    regex search (or comparison) on the name.
    """
    if not isinstance(sel, dict) or set(sel) != {"properties", "required"} or sel["required"] != ["$nodename"]:
        return None
    props = sel["properties"]
    if not isinstance(props, dict) or list(props) != ["$nodename"]:
        return None
    nn = props["$nodename"]
    want = {"items", "type", "minItems", "maxItems"}
    if not isinstance(nn, dict) or set(nn) != want or nn["type"] != "array" or nn["minItems"] != 1 or nn["maxItems"] != 1:
        return None
    items = nn["items"]
    if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict) or len(items[0]) != 1:
        return None
    ((kw, val),) = items[0].items()
    if kw in ("pattern", "const") and isinstance(val, str):
        return kw, val
    return None


class _SelectValidator:
    """What dt-validate leaves in every schema as ``$select_validator``: it shows in the messages
    that print a whole schema (pprint of a ``oneOf``'s schema), address included."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<dtschema.lib.DTValidator object at {id(self):#x}>"


class KernelSchemas:
    """The processed schemas, indexed for selection; validates decoded trees."""

    def __init__(self, schemas: dict[str, Any], origin: str = "") -> None:
        self.origin = origin
        self.schemas = schemas
        self.problems: list[str] = []
        self.engine = Engine(schemas)
        self.compiler = Compiler(self.engine)
        self.engine.compiled = self.compiler.compile
        gt = schemas.get("generated-types", {}).get("properties", {})
        gp = schemas.get("generated-pattern-types", {}).get("properties", {})
        self.types = TypeTable(gt, gp)
        # schema order is dt-validate's: findings come out per node in this order
        self.order: list[str] = []
        self.by_compat: dict[str, list[int]] = {}
        self.generic: list[int] = []  # indexes of schemas whose select must be evaluated
        self.always: list[int] = []  # select: true
        self.by_name: list[tuple[int, re.Pattern[str] | None, str]] = []  # selects on the node name
        self._select_fn: list[Any] = []  # per schema: its select compiled (on first use)
        self._schema_fn: list[Any] = []  # per schema: the schema compiled (on first use)
        for sid, sch in schemas.items():
            if not isinstance(sch, dict) or "select" not in sch:
                continue
            sch["$select_validator"] = _SelectValidator()
            idx = len(self.order)
            self.order.append(sid)
            self._select_fn.append(None)
            self._schema_fn.append(None)
            sel = sch["select"]
            if sel is False or sid == "generated-compatibles":
                # dt-validate prints generated-compatibles' errors only with -m: never validated here
                continue
            strings = _compat_select(sel)
            byname = _nodename_select(sel) if strings is None else None
            if byname is not None:
                kind, val = byname
                self.by_name.append((idx, re.compile(val) if kind == "pattern" else None, val))
            elif sel is True:
                self.always.append(idx)
            elif strings is None:
                self.generic.append(idx)
            else:
                for s in dict.fromkeys(strings):
                    self.by_compat.setdefault(s, []).append(idx)

    def selected(self, node: dict[str, Any]) -> list[int]:
        """Indexes (in schema order) of the schemas whose ``select`` accepts the node."""
        hits: set[int] = set(self.always)
        generic = self.generic
        if "compatible" in node:
            comp = node["compatible"]
            if isinstance(comp, list) and all(isinstance(c, str) for c in comp):
                for c in comp:
                    hits.update(self.by_compat.get(c, ()))
            else:
                # not a list of strings: evaluate every select, as dt-validate does
                generic = [i for i, sid in enumerate(self.order) if self.schemas[sid]["select"] is not False]
        if generic is self.generic:
            name = node["$nodename"][0]
            for i, rx, const in self.by_name:
                if (rx.search(name) is not None) if rx is not None else name == const:
                    hits.add(i)
        sel = self._select_fn
        for i in generic:
            if i in hits:
                continue
            fn = sel[i]
            if fn is None:
                fn = sel[i] = self.compiler.compile(self.schemas[self.order[i]]["select"], "")
            if fn(node):
                hits.add(i)
        return sorted(hits)

    def validate(self, decoded: Decoded, filename: str) -> tuple[list[KernelFinding], list[str]]:
        """dt-validate's ``check_trees`` on one decoded tree: the findings, and one line per schema
        that could not be applied to a node (a ``$ref`` to nowhere, endless recursion), where
        dt-validate stops with a traceback (or, for recursion, prints a line and goes on)."""
        out: list[KernelFinding] = []
        self.problems = []
        self._subtree(decoded, decoded.root, False, "/", "/", filename, out)
        return out, self.problems

    def _subtree(self, dec: Decoded, node: dict[str, Any], disabled: bool, nodename: str, fullname: str, filename: str, out: list[KernelFinding]) -> None:
        if nodename.startswith("__"):
            return
        st = node.get("status")
        if st is not None:
            try:
                disabled = "disabled" in st
            except TypeError:
                pass
        self._node(dec, node, disabled, nodename, fullname, filename, out)
        if fullname != "/":
            fullname += "/"
        for name, value in list(node.items()):
            if isinstance(value, dict):
                self._subtree(dec, value, disabled, name, fullname + name, filename, out)

    def _node(self, dec: Decoded, node: dict[str, Any], disabled: bool, nodename: str, fullname: str, filename: str, out: list[KernelFinding]) -> None:
        if "example-0" in node or "example-" in nodename:
            return
        node["$nodename"] = [nodename]
        dnode = dec.nodes.get(id(node))
        for i in self.selected(node):
            sid = self.order[i]
            schema = self.schemas[sid]
            try:
                fn = self._schema_fn[i]
                if fn is None:
                    fn = self._schema_fn[i] = self.compiler.compile(schema, "")
                if fn(node):
                    continue
                self._check(dec, node, schema, sid, disabled, nodename, fullname, filename, dnode, out)
            except RefError as exc:
                self._problem(f"{schema.get('$filename', sid)}: error: {exc}", fullname)
            except RecursionError:
                self._problem(f"{schema.get('$filename', sid)}: error: endless $ref recursion", fullname)
            except (TypeError, ValueError, KeyError, IndexError, AttributeError, re.error) as exc:
                # a schema dtschema's checks would have refused (a bad regex, a keyword of the wrong
                # type), or a message dt-validate itself cannot format: dt-validate stops there
                self._problem(f"{schema.get('$filename', sid)}: error: cannot be applied ({type(exc).__name__}: {exc})", fullname)

    def _problem(self, text: str, fullname: str) -> None:
        # once per file and schema: a broken schema breaks on every node it selects
        if not any(p.startswith(text + " (") for p in self.problems):
            self.problems.append(f"{text} (first met validating {fullname})")

    def _check(self, dec: Decoded, node: dict[str, Any], schema: Any, sid: str, disabled: bool, nodename: str, fullname: str, filename: str, dnode: Any, out: list[KernelFinding]) -> None:
        for err in self.engine.iter_errors(node, schema):
            if disabled or (isinstance(err.instance, dict) and "status" in err.instance and _has_disabled(err.instance["status"])):
                if {"required", "unevaluatedProperties"} & set(err.schema_path):
                    continue
                if err.context and any({"required", "unevaluatedProperties"} & set(e.schema_path) for e in err.context):
                    continue
            if sid == "generated-compatibles":
                continue
            where, msg = format_parts(filename, err, nodename=nodename)
            path = list(err.absolute_path)
            out.append(KernelFinding(fullname, nodename, where, msg, str(schema.get("$filename", sid)), path, dnode, _target(dec, node, dnode, path)))


def _target(dec: Decoded, node: dict[str, Any], dnode: Any, path: list[Any]) -> Any:
    """The dtvm Property or child Node an error's path starts with (None for the node itself)."""
    if dnode is None or not path or not isinstance(path[0], str):
        return None
    value = node.get(path[0])
    if isinstance(value, dict):
        return dec.nodes.get(id(value))
    for p in dnode.props:
        if p.name == path[0] and not p.deleted:
            return p
    return None


def _has_disabled(status: Any) -> bool:
    try:
        return "disabled" in status
    except TypeError:
        return False


__all__ += ["RefError"]
