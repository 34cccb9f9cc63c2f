"""``dtvm compile``: many trees to .dtb in one process, as ``make dtbs`` does with one dtc per file.

Each file goes through exactly the pipeline of ``dtvm dtc -I dts -O dtb`` (same
bytes as dtc); one process saves dtc's per-file start-up and lets the work be
spread over ``--jobs`` worker processes. A failure in one file is reported and
the others still compile; the exit status says whether any failed.

Kernel trees are C-preprocessed before dtc sees them (``#include``, macros from
dt-bindings headers); ``--cpp`` with ``--cpp-include DIR`` and ``--cpp-define``
does that step in-process, as ``dtvm dtc --cpp`` does.  A file that fails
without ``--cpp`` and uses preprocessor directives gets a hint saying so.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import click

__all__ = ["CompileResult", "compile_cmd", "compile_one", "cpp_args", "cpp_hint"]

_CPP_DIRECTIVE = re.compile(rb"^[ \t]*#[ \t]*(include|define|if|ifdef|ifndef|undef)\b", re.M)


def cpp_args(cpp: bool, cpp_includes: Iterable[str], cpp_defines: Iterable[str]) -> list[str]:
    """The ``dtvm dtc`` options for a C preprocessor step (none without ``cpp``)."""
    if not cpp:
        return []
    args = ["--cpp"]
    for d in cpp_includes:
        args += ["--cpp-include", d]
    for d in cpp_defines:
        args += ["--cpp-define", d]
    return args


def cpp_hint(source: str) -> str | None:
    """A hint for a file that failed without ``--cpp`` but holds C preprocessor directives."""
    try:
        with open(source, "rb") as f:
            head = f.read(1 << 20)
    except OSError:
        return None
    m = _CPP_DIRECTIVE.search(head)
    if m is None:
        return None
    line = head.count(b"\n", 0, m.start()) + 1
    return (
        f"{source}:{line}: hint: this file uses the C preprocessor (#{m.group(1).decode()}): "
        "add --cpp (with --cpp-include DIR for its headers)"
    )


@dataclass
class CompileResult:
    source: str
    output: str
    ok: bool
    messages: str


def compile_one(source: str, output: str, include_dirs: list[str], extra: list[str]) -> CompileResult:
    """Compile one file to ``output`` (written atomically); never raises for bad input."""
    from dtvm.cli.dtc import run

    args = [*extra]
    for d in include_dirs:
        args += ["-i", d]
    args += ["-I", "dts", "-O", "dtb", "-o", output, source]
    err = io.StringIO()
    # dtvm's own one-line messages here, not dtc's: this is dtvm's command
    code = run(["--diagnostics=dtvm", *args], io.BytesIO(), err)
    return CompileResult(source, output, code == 0, err.getvalue())


def _job(args: tuple[str, str, list[str], list[str]]) -> CompileResult:
    return compile_one(*args)


@click.command("compile")
@click.option("-o", "--out-dir", "outdir", type=click.Path(file_okay=False), default=".", show_default=True, help="Directory for the .dtb files.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes (default: all cores).")
@click.option("-i", "--include", "include_dirs", multiple=True, help="Search path for /include/ and /incbin/ (repeatable).")
@click.option("--cpp", is_flag=True, help="Run the C preprocessor (in process) first, as the kernel's build does.")
@click.option("--cpp-include", "cpp_includes", multiple=True, metavar="DIR", help="Include directory for --cpp (repeatable).")
@click.option("--cpp-define", "cpp_defines", multiple=True, metavar="MACRO", help="NAME or NAME=VALUE for --cpp (repeatable).")
@click.option("-b", "--boot-cpu", "boot_cpu", default=None, help="Physical boot CPU, as dtc -b.")
@click.option("-q", "--quiet", count=True, help="As dtc -q: fewer warnings.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def compile_cmd(
    outdir: str,
    jobs: int | None,
    include_dirs: tuple[str, ...],
    cpp: bool,
    cpp_includes: tuple[str, ...],
    cpp_defines: tuple[str, ...],
    boot_cpu: str | None,
    quiet: int,
    files: tuple[str, ...],
) -> None:
    """Compile FILE.dts... to OUTDIR/FILE.dtb, byte-identical to dtc (with --cpp: to cpp | dtc)."""
    if (cpp_includes or cpp_defines) and not cpp:
        raise click.UsageError("--cpp-include and --cpp-define need --cpp")
    if jobs is None:
        jobs = os.cpu_count() or 1
    os.makedirs(outdir, exist_ok=True)
    extra: list[str] = ["-q"] * quiet + cpp_args(cpp, cpp_includes, cpp_defines)
    if boot_cpu is not None:
        extra += ["-b", boot_cpu]
    work = []
    for src in files:
        base = os.path.basename(src)
        stem = base[:-4] if base.endswith(".dts") else base
        work.append((src, os.path.join(outdir, stem + ".dtb"), list(include_dirs), extra))
    failures: list[CompileResult] = []
    show_bar = sys.stderr.isatty() and len(work) > 1

    def handle(res: CompileResult) -> None:
        hint = None if res.ok or cpp else cpp_hint(res.source)
        if not res.ok:
            failures.append(res)
        text = "\n".join(t for t in (res.messages.rstrip("\n"), hint) if t)
        if text:
            if show_bar:
                # the bar's line has no newline yet: erase it, so a message starts its own line
                # (the bar draws itself again below on its next step)
                sys.stderr.write("\r\x1b[K")
            click.echo(text, err=True)

    results: Iterable[CompileResult]
    pool: ProcessPoolExecutor | None = None
    if jobs > 1 and len(work) > 1:
        pool = ProcessPoolExecutor(max_workers=jobs)
        results = pool.map(_job, work, chunksize=max(1, len(work) // (jobs * 8)))
    else:
        results = map(_job, work)
    try:
        if show_bar:
            with click.progressbar(results, length=len(work), label="compiling", file=sys.stderr) as bar:
                for res in bar:
                    handle(res)
        else:
            for res in results:
                handle(res)
    finally:
        if pool is not None:
            pool.shutdown()
    ok = len(work) - len(failures)
    if failures:
        click.echo(f"{ok} of {len(work)} compiled; {len(failures)} failed:", err=True)
        for res in failures:
            click.echo(f"  {res.source}", err=True)
        sys.exit(1)
    if len(work) > 1:
        click.echo(f"{ok} of {len(work)} compiled", err=True)
