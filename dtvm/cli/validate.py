"""``dtvm validate``: check trees (DTS or DTB) against the binding documents.

Exit status: 0 clean, 1 findings, 2 unusable input (a file that cannot be read
or parsed, or a broken binding). Findings go to stdout, one per line (or one
JSON document with ``--format json``); unchecked nodes and summaries to stderr.

Validating one blob is mostly start-up, so this module imports little: click
only to build the click command or draw a progress bar, the dtc front end only
for DTS input, a process pool only for ``--jobs``; the bindings come from the
binding cache (``dtvm/bindings/cache.py``). ``run(argv)`` parses the common
arguments itself, so a caller that dispatches to it before importing click
(as ``dtvm.cli.main`` does for dtc) pays for none of it; anything it does not
recognise (``--help``, a bad value) goes to the click command, which owns the
messages.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["FileReport", "load_input", "run", "validate", "validate_cmd", "validate_file"]  # noqa: F822 (validate_cmd: module __getattr__)

FDT_MAGIC = b"\xd0\x0d\xfe\xed"


class FileReport:
    """One input file's outcome, as plain data (it crosses process boundaries with ``--jobs``)."""

    def __init__(self, file: str, error: str | None = None) -> None:
        self.file = file
        self.error = error
        self.findings: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.unchecked: list[dict[str, Any]] = []
        self.unchecked_lines: list[str] = []
        self.checked = 0
        self.dt_validate: list[str] = []  # --schemas: dt-validate's lines for this file
        self.problems: list[str] = []  # --schemas: schemas that could not be applied (one line each)

    def __repr__(self) -> str:
        return f"FileReport({self.file!r}, error={self.error!r}, {len(self.findings)} findings)"


def load_input(path: str, include_dirs: Iterable[str] = (), cpp: list[str] | None = None) -> Any:
    """A tree from a DTS (compiled as dtc does, references resolved) or a DTB; DtvmError if unusable.

    A blob is read directly with ``read_dtb`` (what ``dtc -I dtb`` does, same errors), so that
    validating a DTB does not load the DTS front end.  ``cpp`` is ``dtvm dtc``'s preprocessor
    options (``--cpp`` and its ``--cpp-include``/``--cpp-define``), for kernel sources.
    """
    from dtvm.errors import DtvmError

    if not os.path.exists(path):
        raise DtvmError(f"{path}: error: no such file")
    if os.path.isdir(path):
        raise DtvmError(f"{path}: error: is a directory")
    special = not os.path.isfile(path)  # a pipe (<(dtc ...)) or a device: read once, as a blob
    from dtvm.fileio import MAX_BLOB, read_blob

    data = None
    try:
        data = read_blob(path, MAX_BLOB)  # header first, size capped
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            raise DtvmError(f"{path}: error: {exc.strerror}") from None
        # otherwise dtc's own code path below says what is wrong
    if data is not None and data[:4] == FDT_MAGIC:
        from dtvm.dt.dtb import read_dtb

        dt = read_dtb(data, path)
    elif special:
        raise DtvmError(f"{path}: error: not a regular file, and not a DT blob")
    else:
        from dtvm.cli.dtc import compile_tree, guess_input_format, load_tree, parse_args

        fmt = guess_input_format(path, "dts")
        args = ["-q", "-q", "-I", fmt, "-O", "dtb"]
        for d in include_dirs:
            args += ["-i", d]
        opts = parse_args([*args, *(cpp or []), path])
        dt = load_tree(opts)
        if fmt == "dts":
            compile_tree(opts, dt, [])
    dt.root.freeze_paths()
    return dt


_state: dict[str, Any] = {}


def _kernel_schemas(path: str) -> Any:
    from dtvm.bindings.kload import load_kernel_schemas

    if _state.get("kkey") != path:
        _state["kschemas"] = load_kernel_schemas(path)
        _state["kkey"] = path
    return _state["kschemas"]


def _bindings(dirs: list[str] | None) -> Any:
    from dtvm.bindings import load_bindings

    key = repr(dirs)
    if _state.get("key") != key:
        _state["bindings"] = load_bindings(dirs, cache=True)
        _state["key"] = key
    return _state["bindings"]


def validate_file(
    path: str,
    dirs: list[str] | None,
    strict: bool = False,
    include_dirs: Iterable[str] = (),
    cpp: list[str] | None = None,
    schemas: str | None = None,
) -> FileReport:
    """Validate one file; never raises for bad input (the report carries the error).

    With ``schemas`` (``--schemas``), the kernel's processed schemas validate the tree as
    dt-validate does; the dtvm bindings too when ``dirs`` is given.
    """
    from dtvm.bindings import validate_tree
    from dtvm.errors import DtvmError

    report = FileReport(path)
    try:
        dt = load_input(path, include_dirs, cpp)
    except DtvmError as exc:
        text = str(exc).strip().splitlines()
        report.error = text[0] if text else f"{path}: error: unusable input"
        if not cpp:
            from dtvm.cli.compile import cpp_hint

            hint = cpp_hint(path)
            if hint:
                report.error += "\n" + hint
        return report
    except (OSError, ValueError, UnicodeError) as exc:
        report.error = f"{path}: error: {exc}"
        return report
    if schemas is not None:
        _validate_kernel(report, dt, path, schemas)
        if dirs is None:
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


def _validate_kernel(report: FileReport, dt: Any, path: str, schemas: str) -> None:
    from dtvm.bindings.kvalidate import validate_kernel

    try:
        rep = validate_kernel(dt, _kernel_schemas(schemas), path)
    except RecursionError:
        report.error = f"{path}: error: the tree is nested too deeply to validate"
        return
    if rep.crash:
        report.error = rep.crash
        return
    report.dt_validate = rep.dt_validate
    report.problems = rep.problems
    for f in rep.findings:
        report.findings.append(f.to_json())
        report.lines.append(f.format())


def _job(args: tuple[str, list[str] | None, bool, list[str], list[str], str | None]) -> FileReport:
    return validate_file(*args)


def _out(text: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def validate(
    files: list[str],
    binding_dirs: list[str] | None = None,
    strict: bool = False,
    fmt: str = "text",
    jobs: int = 1,
    include_dirs: list[str] | None = None,
    quiet: bool = False,
    cpp: list[str] | None = None,
    schemas: str | None = None,
) -> int:
    """What ``dtvm validate`` does, without click: print the reports, return the exit status.

    ``cpp`` holds ``dtvm dtc``'s preprocessor options for DTS inputs (see :func:`load_input`).
    ``schemas`` is ``--schemas``: dt-mk-schema's processed schemas (a file, or a directory holding
    processed-schema.json); loaded once here, before the ``--jobs`` workers fork.
    """
    from dtvm.bindings import BindingError

    dirs = binding_dirs or None
    if schemas is not None:
        from dtvm.bindings.kload import KernelSchemaError

        try:
            _kernel_schemas(schemas)
        except KernelSchemaError as exc:
            _out(str(exc), err=True)
            return 2
    if schemas is None or dirs is not None:
        try:
            _bindings(dirs)  # a broken binding stops everything, once
        except BindingError as exc:
            _out(str(exc), err=True)
            return 2
    work = [(f, dirs, strict, list(include_dirs or ()), list(cpp or ()), schemas) for f in files]
    pool: Any = None
    results: Iterator[FileReport]
    if jobs > 1 and len(work) > 1:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=jobs)
        results = pool.map(_job, work, chunksize=max(1, len(work) // (jobs * 8)))
    else:
        results = map(_job, work)
    reports: list[FileReport] = []
    show_bar = fmt == "text" and sys.stderr.isatty() and len(work) > 1
    try:
        if show_bar:
            import click

            with click.progressbar(results, length=len(work), label="validating", file=sys.stderr) as bar:
                reports = list(bar)
        else:
            for rep in results:
                reports.append(rep)
                if fmt == "text":
                    _print_text(rep, quiet)
                elif fmt == "dt-validate":
                    _print_dt_validate(rep)
    finally:
        if pool is not None:
            pool.shutdown()
    if show_bar:
        for rep in reports:
            _print_text(rep, quiet)
    errors = sum(1 for r in reports if r.error or r.problems)
    nfind = sum(len(r.findings) for r in reports)
    if fmt == "json":
        import json

        doc = {
            "files": [
                {
                    "file": r.file,
                    "error": r.error,
                    "checked": r.checked,
                    "findings": r.findings,
                    "unchecked": r.unchecked,
                    **({"problems": r.problems, "dt_validate": r.dt_validate} if schemas is not None else {}),
                }
                for r in reports
            ],
            "findings": nfind,
            "errors": errors,
        }
        _out(json.dumps(doc, indent=1))
    elif len(reports) > 1:
        _out(f"{len(reports)} files: {nfind} findings, {errors} unusable", err=True)
    return 2 if errors else 1 if nfind else 0


def _print_text(rep: FileReport, quiet: bool) -> None:
    if rep.error:
        _out(rep.error, err=True)
        return
    for line in rep.problems:
        _out(line, err=True)
    for line in rep.lines:
        _out(line)
    if not quiet:
        for line in rep.unchecked_lines:
            _out(line, err=True)


def _print_dt_validate(rep: FileReport) -> None:
    # dt-validate prints to stderr; here the findings are stdout, as dtvm's are (2>&1 joins them)
    if rep.error:
        _out(rep.error, err=True)
        return
    for line in rep.problems:
        _out(line, err=True)
    for line in rep.dt_validate:
        _out(line)


# -- the command line ---------------------------------------------------------------------------
_VALUE_OPTS = {
    "--bindings": "bindings",
    "--format": "format",
    "-j": "jobs",
    "--jobs": "jobs",
    "-i": "include",
    "--include": "include",
    "--cpp-include": "cpp_include",
    "--cpp-define": "cpp_define",
    "--schemas": "schemas",
}
_FLAG_OPTS = {"--strict": "strict", "-q": "quiet", "--quiet": "quiet", "--cpp": "cpp"}


def _parse(argv: list[str]) -> dict[str, Any] | None:
    """The arguments click would accept, parsed the same way; None for anything else."""
    opts: dict[str, Any] = {
        "bindings": [],
        "format": "text",
        "jobs": 1,
        "include": [],
        "strict": False,
        "quiet": False,
        "cpp": False,
        "cpp_include": [],
        "cpp_define": [],
        "schemas": None,
    }
    files: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            files += argv[i:]
            break
        if not arg.startswith("-") or arg == "-":
            files.append(arg)
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg[:2], "", arg[2:])
        if name in _FLAG_OPTS and not eq and not value:
            opts[_FLAG_OPTS[name]] = True
            continue
        if name not in _VALUE_OPTS:
            return None
        if not eq and not value:
            if i >= len(argv):
                return None
            value = argv[i]
            i += 1
        dest = _VALUE_OPTS[name]
        if dest == "jobs":
            try:
                opts["jobs"] = int(value)
            except ValueError:
                return None
        elif dest == "format":
            if value not in ("text", "json", "dt-validate"):
                return None
            opts["format"] = value
        elif dest == "schemas":
            opts["schemas"] = value
        elif dest == "bindings":
            if os.path.isfile(value):  # click.Path(file_okay=False) says so
                return None
            opts["bindings"].append(value)
        else:
            opts[dest].append(value)
    if not files or ((opts["cpp_include"] or opts["cpp_define"]) and not opts["cpp"]):
        return None
    opts["files"] = files
    return opts


def _cpp_args(cpp: bool, includes: Iterable[str], defines: Iterable[str]) -> list[str]:
    # as dtvm.cli.compile.cpp_args, which is not imported here to keep start-up small
    if not cpp:
        return []
    return ["--cpp", *(a for d in includes for a in ("--cpp-include", d)), *(a for d in defines for a in ("--cpp-define", d))]


def run(argv: list[str]) -> int:
    """``dtvm validate ARGS`` without importing click (unless the arguments need its messages)."""
    opts = _parse(argv)
    if opts is None:
        try:
            _command().main(args=argv, prog_name="dtvm validate", standalone_mode=True)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        return 0
    try:
        cpp = _cpp_args(opts["cpp"], opts["cpp_include"], opts["cpp_define"])
        return validate(
            opts["files"], opts["bindings"], opts["strict"], opts["format"], opts["jobs"], opts["include"], opts["quiet"], cpp, opts["schemas"]
        )
    except BrokenPipeError:
        return 141
    except KeyboardInterrupt:
        return 130


def _make_command() -> Any:
    import click

    @click.command("validate")
    @click.option("--bindings", "binding_dirs", multiple=True, type=click.Path(file_okay=False), help="Binding directory (repeatable; default: dtvm's bindings).")
    @click.option("--strict", is_flag=True, help="A node whose compatible has no binding is a finding.")
    @click.option(
        "--schemas",
        "schemas",
        metavar="PATH",
        help="The Linux kernel's binding schemas as dt-mk-schema -j processed them (processed-schema.json, "
        "or a directory holding it): validate as dt-validate does (with --bindings, dtvm's bindings too).",
    )
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json", "dt-validate"]),
        metavar="FORMAT",
        default="text",
        show_default=True,
        help="text (dtvm findings with FILE:LINE and the include chain), json, or dt-validate (its own lines, for --schemas).",
    )
    @click.option("-j", "--jobs", type=int, default=1, show_default=True, help="Worker processes.")
    @click.option("-i", "--include", "include_dirs", multiple=True, help="Search path for DTS /include/ (repeatable).")
    @click.option("--cpp", is_flag=True, help="C-preprocess DTS inputs first, as the kernel does.")
    @click.option("--cpp-include", "cpp_includes", multiple=True, metavar="DIR", help="Include directory for --cpp (repeatable).")
    @click.option("--cpp-define", "cpp_defines", multiple=True, metavar="MACRO", help="NAME or NAME=VALUE for --cpp (repeatable).")
    @click.option("-q", "--quiet", is_flag=True, help="Do not list unchecked nodes.")
    @click.argument("files", nargs=-1, required=True)
    def validate_cmd(
        binding_dirs: tuple[str, ...],
        strict: bool,
        fmt: str,
        jobs: int,
        include_dirs: tuple[str, ...],
        cpp: bool,
        cpp_includes: tuple[str, ...],
        cpp_defines: tuple[str, ...],
        quiet: bool,
        schemas: str | None,
        files: tuple[str, ...],
    ) -> None:
        """Validate FILE... (DTS or DTB) against the binding documents, or the kernel's schemas.

        The bindings and their compiled validators are cached under
        $XDG_CACHE_HOME/dtvm (~/.cache/dtvm); DTVM_NO_CACHE=1 turns the cache off.
        """
        if (cpp_includes or cpp_defines) and not cpp:
            raise click.UsageError("--cpp-include and --cpp-define need --cpp")
        cpp_opts = _cpp_args(cpp, cpp_includes, cpp_defines)
        sys.exit(validate(list(files), list(binding_dirs), strict, fmt, jobs, list(include_dirs), quiet, cpp_opts, schemas))

    return validate_cmd


def _command() -> Any:
    cmd = globals().get("validate_cmd")
    if cmd is None:
        cmd = globals()["validate_cmd"] = _make_command()
    return cmd


def __getattr__(name: str) -> Any:
    # ``validate_cmd`` is built on first use, so that importing this module does not import click
    if name == "validate_cmd":
        return _command()
    raise AttributeError(name)
