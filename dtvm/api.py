"""The Python API: parse, resolve, read, edit, write, overlay, validate, with dtc's results.

The toolchain's modules keep dtc's internal model (a tree still carries the
nodes and properties that ``/delete-node/`` and ``/delete-property/`` removed,
because dtc's merge rules need them while a source is being built).  The
functions here are the boundary for users: a tree they get back is resolved
the way dtc resolves it before writing (references become phandles, phandles
are assigned in dtc's order, checks run) and holds no deleted entries, so
``node.props`` and ``node.children`` list what the blob will hold and
:func:`write_dtb` writes dtc's bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from dtvm.dt.tree import PHANDLE_BOTH, PHANDLE_EPAPR, PHANDLE_LEGACY, DeviceTree
from dtvm.errors import DtvmError

__all__ = [
    "apply_overlay",
    "parse_dts",
    "parse_dts_string",
    "read_dtb",
    "resolve",
    "validate",
    "write_dtb",
    "write_dts",
]

_PHANDLE_FORMATS = {"legacy": PHANDLE_LEGACY, "epapr": PHANDLE_EPAPR, "both": PHANDLE_BOTH}


def _purge(dt: DeviceTree) -> DeviceTree:
    """Drop what dtc's deletes only flagged: users see the tree the blob will hold."""
    stack = [dt.root]
    while stack:
        node = stack.pop()
        node.props = [p for p in node.props if not p.deleted]
        node.children = [c for c in node.children if not c.deleted]
        node.labels = [lab for lab in node.labels if not lab.deleted]
        for p in node.props:
            p.labels = [lab for lab in p.labels if not lab.deleted]
        stack.extend(node.children)
    return dt


def resolve(dt: DeviceTree, *, phandles: str = "epapr", symbols: bool = False, force: bool = False) -> list[str]:
    """Resolve references and assign phandles exactly as dtc does before it writes; the warnings.

    A parsed tree keeps ``<&clk>`` as a marked placeholder (0xffffffff) until
    this step, which runs dtc's checks: they fill in phandle and path
    references, give referenced nodes a ``phandle`` (``phandles``: dtc's
    ``-H epapr|legacy|both``), and with ``symbols`` add ``__symbols__`` (dtc
    ``-@``; a ``/plugin/`` tree gets its fixup nodes).  An error that makes
    dtc refuse the tree raises :class:`~dtvm.errors.DtvmError` with dtc's
    messages unless ``force`` (dtc ``-f``).
    """
    from dtvm.dt.checks import CheckRunner

    if phandles not in _PHANDLE_FORMATS:
        raise ValueError(f"phandles must be one of {sorted(_PHANDLE_FORMATS)}, not {phandles!r}")
    runner = CheckRunner(dt, _PHANDLE_FORMATS[phandles], symbols)
    fname = dt.source_name or "<tree>"
    try:
        failed = runner.run_all()
    except DtvmError as exc:
        lines = [f.format(fname) for f in runner.findings if f.error]
        raise DtvmError("\n".join([*lines, str(exc)])) from None
    messages = [f.format(fname) for f in runner.findings]
    if failed and not force:
        errors = [f.format(fname) for f in runner.findings if f.error]
        raise DtvmError("\n".join([*errors, "ERROR: Input tree has errors (resolve(..., force=True) writes it anyway)"]))
    if symbols or dt.plugin:
        from dtvm.dt.overlay import generate_overlay_nodes

        generate_overlay_nodes(dt, runner, symbols=symbols, fixups=dt.plugin, messages=messages)
    _purge(dt)
    return messages


def _source(
    text: str,
    name: str,
    directory: str,
    cpp: bool,
    cpp_includes: Iterable[str | os.PathLike[str]],
    cpp_defines: Iterable[str],
) -> object:
    from dtvm.dt.dts.source import SourceBuffer

    src = SourceBuffer(name, text, directory)
    if cpp:
        from dtvm.dt.dts.preprocess import preprocess

        return preprocess(src, [os.fspath(d) for d in cpp_includes], list(cpp_defines))
    return src


def _parse(src: object, include_dirs: Iterable[str | os.PathLike[str]], do_resolve: bool) -> DeviceTree:
    from dtvm.dt.dts.parse import parse_source

    dt = parse_source(src, [os.fspath(d) for d in include_dirs])  # type: ignore[arg-type]
    if do_resolve:
        resolve(dt)
    return _purge(dt)


def parse_dts(
    source: str | os.PathLike[str],
    *,
    include_dirs: Iterable[str | os.PathLike[str]] = (),
    cpp: bool = False,
    cpp_includes: Iterable[str | os.PathLike[str]] = (),
    cpp_defines: Iterable[str] = (),
    resolve: bool = True,
) -> DeviceTree:
    """A DTS file as dtc compiles it: parsed, and (by default) resolved.

    ``source`` is a path; DTS text goes to :func:`parse_dts_string`.
    ``include_dirs`` is dtc's ``-i`` (for ``/include/`` and ``/incbin/``);
    ``cpp`` runs the C preprocessor first (in process) as the kernel's build
    does, with ``cpp_includes`` (``-I``) and ``cpp_defines`` (``NAME`` or
    ``NAME=VALUE``).  With ``resolve=False`` references stay unresolved (see
    :func:`resolve`).  Bad input raises :class:`~dtvm.errors.DtvmError` whose
    message names file, line and column.
    """
    from dtvm.dt.dts.source import read_source

    path = os.fspath(source)
    if "\n" in path:
        raise ValueError("parse_dts takes a path; use parse_dts_string for DTS text")
    try:
        src = read_source(path)
    except OSError as exc:
        raise DtvmError(f"{path}: error: {exc.strerror or exc}") from None
    if cpp:
        src = _source(src.text, src.name, src.dir, True, cpp_includes, cpp_defines)  # type: ignore[assignment]
    return _parse(src, include_dirs, resolve)


def parse_dts_string(
    text: str,
    *,
    name: str = "<string>",
    include_dirs: Iterable[str | os.PathLike[str]] = (),
    cpp: bool = False,
    cpp_includes: Iterable[str | os.PathLike[str]] = (),
    cpp_defines: Iterable[str] = (),
    resolve: bool = True,
) -> DeviceTree:
    """DTS text as dtc compiles it (``name`` appears in error messages; includes resolve from the cwd)."""
    return _parse(_source(text, name, os.getcwd(), cpp, cpp_includes, cpp_defines), include_dirs, resolve)


def read_dtb(data: bytes, name: str = "<blob>") -> DeviceTree:
    """A tree from a flattened blob (what ``dtc -I dtb`` reads); BlobError names the bad offset."""
    from dtvm.dt.dtb import read_dtb as _read

    return _read(data, name)


def write_dtb(dt: DeviceTree, *, version: int = 17) -> bytes:
    """The blob dtc writes for this tree (``-O dtb``); resolve a parsed tree first (parse_dts does)."""
    from dtvm.dt.dtb import write_dtb as _write

    return _write(dt, version=version)


def write_dts(dt: DeviceTree) -> str:
    """The source dtc writes for this tree (``-O dts``), labels and references as written."""
    from dtvm.dt.dts.write import write_dts as _write

    return _write(dt)


def apply_overlay(base: bytes, *overlays: bytes) -> bytes:
    """The blob ``fdtoverlay -i base -o out overlay...`` writes (libfdt's algorithm, byte for byte)."""
    from dtvm.dt.apply import overlay_apply
    from dtvm.dt.libfdt import FDT_ERR_NOSPACE, Fdt, open_into, strerror

    blob = Fdt(bytearray(base))
    buf_len = blob.totalsize()
    for n, overlay in enumerate(overlays, 1):
        while True:
            tmp = Fdt(bytearray(max(buf_len, 40)))
            ret = open_into(blob, tmp, buf_len)
            if ret:
                raise DtvmError(f"base blob: {strerror(ret)}")
            ret, failure = overlay_apply(tmp, Fdt(bytearray(overlay)))
            if ret == -FDT_ERR_NOSPACE and (failure is None or failure.retry) and buf_len < 0x7FFF0000:
                buf_len += 0x10000
                continue
            break
        if ret:
            raise DtvmError(f"overlay {n}: {failure if failure is not None else strerror(ret)}")
        blob = tmp
    blob.pack()
    return blob.data()


def validate(dt: DeviceTree, binding_dirs: Iterable[str | os.PathLike[str]] = (), *, strict: bool = False) -> list[str]:
    """Findings of the binding documents on the tree, one line each (``dtvm validate``'s format)."""
    from dtvm.bindings import load_bindings, validate_tree

    dirs = [os.fspath(d) for d in binding_dirs] or None
    dt.root.freeze_paths()
    res = validate_tree(dt, load_bindings(dirs), dt.source_name)
    return [f.format() for f in res.all_findings(strict)]

