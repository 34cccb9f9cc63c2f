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
from typing import Any

from dtvm.bindings.kcompile import Compiler
from dtvm.bindings.kdecode import Decoded, TypeTable
from dtvm.bindings.kengine import Engine, Err, RefError

__all__ = ["KernelFinding", "KernelSchemas", "format_error"]


class KernelFinding:
    """One dt-validate finding: the node, the schema file and dtschema's formatted message."""

    __slots__ = ("fullname", "node", "nodename", "prop", "schema_file", "text")

    def __init__(self, fullname: str, nodename: str, text: str, schema_file: str, prop: str | None, node: Any) -> None:
        self.fullname = fullname
        self.nodename = nodename
        self.text = text  # format_error's output: "/abs/file.dtb: node: prop: message..."
        self.schema_file = schema_file
        self.prop = prop
        self.node = node  # the dtvm Node (for DTS lines), or None

    def dt_validate(self) -> str:
        """The lines dt-validate prints for this finding."""
        return self.text + "\n\tFrom schema: " + self.schema_file

    @property
    def message(self) -> str:
        return self.text.split(": ", 2)[2] if self.text.count(": ") >= 2 else self.text


def format_error(filename: str, error: Err, prefix: str = "", nodename: str | None = None) -> str:
    """dtschema 2022.12's ``format_error`` (non-verbose, errors without line numbers or notes)."""
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
    return src + msg


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


class KernelSchemas:
    """The processed schemas, indexed for selection; validates decoded trees."""

    def __init__(self, schemas: dict[str, Any], origin: str = "") -> None:
        self.origin = origin
        self.schemas = schemas
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
        for sid, sch in schemas.items():
            if not isinstance(sch, dict) or "select" not in sch:
                continue
            idx = len(self.order)
            self.order.append(sid)
            sel = sch["select"]
            if sel is False:
                continue
            strings = _compat_select(sel)
            if strings is None:
                self.generic.append(idx)
            else:
                for s in dict.fromkeys(strings):
                    self.by_compat.setdefault(s, []).append(idx)

    def selected(self, node: dict[str, Any]) -> list[int]:
        """Indexes (in schema order) of the schemas whose ``select`` accepts the node."""
        hits: list[int] = []
        generic = self.generic
        if "compatible" in node:
            comp = node["compatible"]
            if isinstance(comp, list) and all(isinstance(c, str) for c in comp):
                seen: set[int] = set()
                for c in comp:
                    for i in self.by_compat.get(c, ()):
                        if i not in seen:
                            seen.add(i)
                            hits.append(i)
            else:
                # not a list of strings: evaluate every select, as dt-validate does
                generic = [i for i, sid in enumerate(self.order) if self.schemas[sid]["select"] is not False]
        eng = self.engine
        for i in generic:
            if i in hits:
                continue
            if eng.valid(node, self.schemas[self.order[i]]["select"]):
                hits.append(i)
        hits.sort()
        return hits

    def validate(self, decoded: Decoded, filename: str) -> list[KernelFinding]:
        """dt-validate's ``check_trees`` on one decoded tree. RefError and RecursionError propagate."""
        out: list[KernelFinding] = []
        self._subtree(decoded, decoded.root, False, "/", "/", filename, out)
        return out

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
            if self.compiler.compile(schema, "")(node):
                continue
            for err in self.engine.iter_errors(node, schema):
                if disabled or (isinstance(err.instance, dict) and "status" in err.instance and _has_disabled(err.instance["status"])):
                    if {"required", "unevaluatedProperties"} & set(err.schema_path):
                        continue
                    if err.context and any({"required", "unevaluatedProperties"} & set(e.schema_path) for e in err.context):
                        continue
                if sid == "generated-compatibles":
                    continue
                text = format_error(filename, err, nodename=nodename)
                path = err.absolute_path
                prop = path[0] if path and isinstance(path[0], str) else None
                out.append(KernelFinding(fullname, nodename, text, str(schema.get("$filename", sid)), prop, dnode))


def _has_disabled(status: Any) -> bool:
    try:
        return "disabled" in status
    except TypeError:
        return False


__all__ += ["RefError"]
