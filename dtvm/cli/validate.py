"""``dtvm validate``: check trees (DTS or DTB) against the binding documents.

Exit status: 0 clean, 1 findings, 2 unusable input (a file that cannot be read
or parsed, or a broken binding). Findings go to stdout, one per line (or one
JSON document with ``--format json``); unchecked nodes and summaries to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import click

__all__ = ["FileReport", "load_input", "validate_cmd", "validate_file"]


@dataclass
class FileReport:
    file: str
    error: str | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    unchecked: list[dict[str, Any]] = field(default_factory=list)
    unchecked_lines: list[str] = field(default_factory=list)
    checked: int = 0


def load_input(path: str, include_dirs: Iterable[str] = ()) -> Any:
    """A tree from a DTS (compiled as dtc does, references resolved) or a DTB; DtvmError if unusable."""
    from ..errors import DtvmError
    from .dtc import compile_tree, guess_input_format, load_tree, parse_args

    if not os.path.isfile(path):
        raise DtvmError(f"{path}: error: no such file")
    fmt = guess_input_format(path, "dts")
    args = ["-q", "-q", "-I", fmt, "-O", "dtb"]
    for d in include_dirs:
        args += ["-i", d]
    opts = parse_args([*args, path])
    dt = load_tree(opts)
    if fmt == "dts":
        compile_tree(opts, dt, [])
    dt.root.freeze_paths()
    return dt


_state: dict[str, Any] = {}


def _bindings(dirs: list[str] | None) -> Any:
    from ..bindings import load_bindings

    key = repr(dirs)
    if _state.get("key") != key:
        _state["bindings"] = load_bindings(dirs)
        _state["key"] = key
    return _state["bindings"]


def validate_file(path: str, dirs: list[str] | None, strict: bool = False, include_dirs: Iterable[str] = ()) -> FileReport:
    """Validate one file; never raises for bad input (the report carries the error)."""
    from ..bindings import validate_tree
    from ..errors import DtvmError

    report = FileReport(path)
    try:
        dt = load_input(path, include_dirs)
    except DtvmError as exc:
        text = str(exc).strip().splitlines()
        report.error = text[0] if text else f"{path}: error: unusable input"
        return report
    except (OSError, ValueError, UnicodeError) as exc:
        report.error = f"{path}: error: {exc}"
        return report
    res = validate_tree(dt, _bindings(dirs), path)
    report.checked = res.checked
    for f in res.all_findings(strict):
        report.findings.append(f.to_json())
        report.lines.append(f.format())
    for u in res.unchecked:
        report.unchecked.append(u.to_json())
        report.unchecked_lines.append(u.format())
    return report


def _job(args: tuple[str, list[str] | None, bool, list[str]]) -> FileReport:
    return validate_file(*args)


@click.command("validate")
@click.option("--bindings", "binding_dirs", multiple=True, type=click.Path(file_okay=False), help="Binding directory (repeatable; default: dtvm's bindings).")
@click.option("--strict", is_flag=True, help="A node whose compatible has no binding is a finding.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format.")
@click.option("-j", "--jobs", type=int, default=1, show_default=True, help="Worker processes.")
@click.option("-i", "--include", "include_dirs", multiple=True, help="Search path for DTS /include/ (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Do not list unchecked nodes.")
@click.argument("files", nargs=-1, required=True)
def validate_cmd(binding_dirs: tuple[str, ...], strict: bool, fmt: str, jobs: int, include_dirs: tuple[str, ...], quiet: bool, files: tuple[str, ...]) -> None:
    """Validate FILE... (DTS or DTB) against the binding documents."""
    from ..bindings import BindingError

    dirs = list(binding_dirs) or None
    try:
        _bindings(dirs)  # a broken binding stops everything, once
    except BindingError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    work = [(f, dirs, strict, list(include_dirs)) for f in files]
    pool: ProcessPoolExecutor | None = None
    results: Iterator[FileReport]
    if jobs > 1 and len(work) > 1:
        pool = ProcessPoolExecutor(max_workers=jobs)
        results = pool.map(_job, work, chunksize=max(1, len(work) // (jobs * 8)))
    else:
        results = map(_job, work)
    reports: list[FileReport] = []
    show_bar = fmt == "text" and sys.stderr.isatty() and len(work) > 1
    try:
        if show_bar:
            with click.progressbar(results, length=len(work), label="validating", file=sys.stderr) as bar:
                reports = list(bar)
        else:
            for rep in results:
                reports.append(rep)
                if fmt == "text":
                    _print_text(rep, quiet)
    finally:
        if pool is not None:
            pool.shutdown()
    if show_bar:
        for rep in reports:
            _print_text(rep, quiet)
    errors = sum(1 for r in reports if r.error)
    nfind = sum(len(r.findings) for r in reports)
    if fmt == "json":
        doc = {
            "files": [
                {"file": r.file, "error": r.error, "checked": r.checked, "findings": r.findings, "unchecked": r.unchecked}
                for r in reports
            ],
            "findings": nfind,
            "errors": errors,
        }
        click.echo(json.dumps(doc, indent=1))
    elif len(reports) > 1:
        click.echo(f"{len(reports)} files: {nfind} findings, {errors} unusable", err=True)
    sys.exit(2 if errors else 1 if nfind else 0)


def _print_text(rep: FileReport, quiet: bool) -> None:
    if rep.error:
        click.echo(rep.error, err=True)
        return
    for line in rep.lines:
        click.echo(line)
    if not quiet:
        for line in rep.unchecked_lines:
            click.echo(line, err=True)
