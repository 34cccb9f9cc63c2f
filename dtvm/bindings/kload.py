"""Loading the kernel's processed schemas (``--schemas``).

``dt-mk-schema -j`` writes 16 MB of JSON for Linux 6.1. Measured here, Python's json parses it in
0.17 s with the garbage collector paused, faster than marshal (0.45 s) or pickle (0.6 s) read the
same document back, so the JSON file is its own best on-disk form and is read directly; what is
expensive (compiling the schemas a board needs, kcompile.py) is done lazily, per process, and
shared by the ``--jobs`` workers, which fork after the load.

Every failure is a :class:`KernelSchemaError` whose text is one line naming the file.
"""

from __future__ import annotations

import gc
import json
import os
import re
from typing import Any

from dtvm.bindings.kschema import KernelSchemas

__all__ = ["KernelSchemaError", "load_kernel_schemas", "resolve_schema_path"]

MAX_SCHEMA_BYTES = 512 * 1024 * 1024


class KernelSchemaError(Exception):
    """A processed-schema file (or directory) that cannot be used; str() is one line."""


def resolve_schema_path(path: str) -> str:
    """The processed-schema JSON that ``--schemas PATH`` means."""
    if os.path.isdir(path):
        cand = os.path.join(path, "processed-schema.json")
        if os.path.isfile(cand):
            return cand
        raise KernelSchemaError(
            f"{path}: error: no processed-schema.json in this directory "
            f"(make it with dtschema's `dt-mk-schema -j {path} > {cand}`)"
        )
    if not os.path.exists(path):
        raise KernelSchemaError(f"{path}: error: no such file")
    return path


def _read_json(src: str) -> Any:
    try:
        size = os.path.getsize(src)
        if size > MAX_SCHEMA_BYTES:
            raise KernelSchemaError(f"{src}: error: {size} bytes, over the {MAX_SCHEMA_BYTES} byte limit")
        with open(src, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise KernelSchemaError(f"{src}: error: {exc.strerror or exc}") from None
    enabled = gc.isenabled()
    gc.disable()  # a few million containers, none of them garbage: collecting would double the time
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise KernelSchemaError(f"{src}:{exc.lineno}: error: not JSON ({exc.msg}); a processed schema is `dt-mk-schema -j` output") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise KernelSchemaError(f"{src}: error: not JSON ({type(exc).__name__})") from None
    finally:
        if enabled:
            gc.enable()
    return doc


def _normalise(doc: Any, src: str) -> dict[str, Any]:
    """dtschema's ``set_schemas``: a list (older dt-mk-schema) becomes {$id: schema}."""
    if isinstance(doc, list):
        out: dict[str, Any] = {}
        for sch in doc:
            if not isinstance(sch, dict) or not isinstance(sch.get("$id"), str):
                raise KernelSchemaError(f"{src}: error: a schema in the list has no $id")
            out[sch["$id"]] = sch
        doc = out
    if not isinstance(doc, dict) or not doc:
        raise KernelSchemaError(f"{src}: error: not a processed schema (expected {{$id: schema}})")
    for sid, sch in doc.items():
        if not isinstance(sch, dict):
            raise KernelSchemaError(f"{src}: error: schema {sid!r} is not an object")
        if "select" not in sch:
            raise KernelSchemaError(f"{src}: error: schema {sid!r} has no select (not dt-mk-schema output)")
    return doc


def load_kernel_schemas(path: str) -> KernelSchemas:
    """The rule set of ``--schemas PATH``; KernelSchemaError (one line) when unusable."""
    src = resolve_schema_path(path)
    doc = _normalise(_read_json(src), src)
    # millions of long-lived containers: out of the collector's sight, so that collections during
    # validation do not walk them (and forked --jobs workers do not touch their pages)
    gc.freeze()
    try:
        return KernelSchemas(doc, src)
    except (TypeError, AttributeError, KeyError, ValueError, re.error) as exc:
        raise KernelSchemaError(f"{src}: error: unusable processed schema ({type(exc).__name__}: {exc})") from None
