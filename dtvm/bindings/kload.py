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


MAX_YAML_FILES = 100_000  # the kernel has about 4,000 binding documents


def _yaml_files(top: str) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime) of every YAML document under TOP, bounded; what the processed
    output depends on besides the processor."""
    out: list[tuple[str, int, int]] = []
    for d, dirs, files in os.walk(top):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(".yaml"):
                st = os.stat(os.path.join(d, f))
                out.append((os.path.relpath(os.path.join(d, f), top), st.st_size, st.st_mtime_ns))
                if len(out) > MAX_YAML_FILES:
                    raise KernelSchemaError(f"{top}: error: over {MAX_YAML_FILES} YAML files; not a bindings directory")
    return out


def _dt_mk_schema() -> str | None:
    """dtschema's processor: $DTVM_DT_MK_SCHEMA, else dt-mk-schema on PATH."""
    import shutil

    tool = os.environ.get("DTVM_DT_MK_SCHEMA") or shutil.which("dt-mk-schema")
    return tool if tool and os.access(tool, os.X_OK) else None


def _process_dir(path: str, tool: str) -> str:
    """``dt-mk-schema -j PATH`` run once per (tool, set of YAML files), kept in dtvm's cache.

    dt-mk-schema's processing (fixups, meta-schema checks, generated selects and type tables) is not
    reimplemented: the processor the kernel's own build uses does it, once, and its output is reused
    until a YAML file or the tool changes. Its warnings (schemas it cannot process) are its verdicts
    and go unreported, as in the kernel's build."""
    import hashlib
    import subprocess
    import tempfile

    files = _yaml_files(path)
    if not files:
        raise KernelSchemaError(f"{path}: error: no processed-schema.json and no YAML bindings in this directory")
    st = os.stat(tool)
    key = hashlib.sha256(repr((os.path.abspath(path), os.path.realpath(tool), st.st_size, st.st_mtime_ns, files)).encode()).hexdigest()[:24]
    root = _cache_root()
    out = os.path.join(root, key + ".json") if root else None
    if out and os.path.isfile(out):
        return out
    fd, tmp = tempfile.mkstemp(suffix=".json", dir=os.path.dirname(out) if out and _mkdir(os.path.dirname(out)) else None)
    try:
        with os.fdopen(fd, "wb") as f:
            res = subprocess.run([tool, "-j", path], stdout=f, stderr=subprocess.PIPE, timeout=3600)
        if res.returncode != 0 or os.path.getsize(tmp) == 0:
            why = (res.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit status {res.returncode}"])[-1]
            raise KernelSchemaError(f"{path}: error: dt-mk-schema could not process this directory ({why[:200]})")
        if out:
            os.replace(tmp, out)
            return out
        return tmp  # no cache: a temporary file, read once (see load_kernel_schemas)
    except (OSError, subprocess.SubprocessError) as exc:
        raise KernelSchemaError(f"{path}: error: running {tool}: {exc}") from None
    finally:
        if out and os.path.exists(tmp):
            os.unlink(tmp)


def _mkdir(d: str) -> bool:
    try:
        os.makedirs(d, exist_ok=True)
    except OSError:
        return False
    return True


def resolve_schema_path(path: str) -> str:
    """The processed-schema JSON that ``--schemas PATH`` means: the file, DIR/processed-schema.json,
    or for a directory of YAML bindings without it, dt-mk-schema's output for it (cached)."""
    return _resolve(path)[0]


def _resolve(path: str) -> tuple[str, bool]:
    """The processed JSON, and whether it is a temporary file to remove once read."""
    if os.path.isdir(path):
        cand = os.path.join(path, "processed-schema.json")
        if os.path.isfile(cand):
            return cand, False
        tool = _dt_mk_schema()
        if tool is None:
            raise KernelSchemaError(
                f"{path}: error: no processed-schema.json in this directory "
                f"(make it with dtschema's `dt-mk-schema -j {path} > {cand}`, or put dt-mk-schema on PATH)"
            )
        out = _process_dir(path, tool)
        return out, not out.startswith(os.path.join(_cache_root() or "\0", ""))
    if not os.path.exists(path):
        raise KernelSchemaError(f"{path}: error: no such file")
    return path, False


def _cache_root() -> str | None:
    from dtvm.bindings.cache import cache_dir

    where = cache_dir()
    return os.path.join(where, "kernel-schemas") if where else None


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
    src, temporary = _resolve(path)
    try:
        doc = _normalise(_read_json(src), src)
    finally:
        if temporary:
            os.unlink(src)  # dt-mk-schema's output with the cache off: read, then gone
    # millions of long-lived containers: out of the collector's sight, so that collections during
    # validation do not walk them (and forked --jobs workers do not touch their pages)
    gc.freeze()
    try:
        return KernelSchemas(doc, src)
    except (TypeError, AttributeError, KeyError, ValueError, re.error) as exc:
        raise KernelSchemaError(f"{src}: error: unusable processed schema ({type(exc).__name__}: {exc})") from None
