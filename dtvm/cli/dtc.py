"""``dtvm dtc``: dtc 1.6.1's command line, in process.

The arguments, defaults, format guessing, exit codes (1 for bad input, 2 for
failed checks) and outputs are dtc's; the error messages are better: one line
with file:line:col, the source line and a caret. ``run()`` takes argv and
streams so that tests and the corpus parity script can call it in-process.
"""

from __future__ import annotations

import gc
import io
import os
import sys
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

from dtvm import __version__
from dtvm.cli.fdtutil import LongOpt, getopt_long, usage_text
from dtvm.dt.tree import PHANDLE_BOTH, PHANDLE_EPAPR, PHANDLE_LEGACY, DeviceTree, Node
from dtvm.errors import BlobError, DtvmError, SourceError
from dtvm.fileio import MAX_BLOB, read_blob, write_atomic, write_stream

__all__ = ["DtcOptions", "UsageError", "compile_tree", "parse_args", "run"]

DTC_VERSION = "1.6.1"
FDT_MAGIC = b"\xd0\x0d\xfe\xed"

_SHORT = "qI:O:o:V:d:R:S:p:a:fb:i:H:sW:E:@AThv"
_FMT_IN = "\n\tInput formats are:\n\t\tdts - device tree source text\n\t\tdtb - device tree blob\n\t\tfs  - /proc/device-tree style directory"
_FMT_OUT = (
    "\n\tOutput formats are:\n\t\tdts - device tree source text\n\t\tdtb - device tree blob\n"
    "\t\tyaml - device tree encoded as YAML\n\t\tasm - assembler source"
)
_FMT_H = (
    "\n\tValid phandle formats are:\n\t\tlegacy - \"linux,phandle\" properties only\n"
    "\t\tepapr  - \"phandle\" properties only\n\t\tboth   - Both \"linux,phandle\" and \"phandle\" properties"
)
# dtc 1.6.1's options (name, takes an argument, letter, help), in the order its -h lists them
_DTC_OPTS: list[LongOpt] = [
    ("quiet", False, "q", "\n\tQuiet: -q suppress warnings, -qq errors, -qqq all"),
    ("in-format", True, "I", _FMT_IN),
    ("out", True, "o", "\n\tOutput file"),
    ("out-format", True, "O", _FMT_OUT),
    ("out-version", True, "V", "\n\tBlob version to produce, defaults to 17 (for dtb and asm output)"),
    ("out-dependency", True, "d", "\n\tOutput dependency file"),
    ("reserve", True, "R", "\n\tMake space for <number> reserve map entries (for dtb and asm output)"),
    ("space", True, "S", "\n\tMake the blob at least <bytes> long (extra space)"),
    ("pad", True, "p", "\n\tAdd padding to the blob of <bytes> long (extra space)"),
    ("align", True, "a", "\n\tMake the blob align to the <bytes> (extra space)"),
    ("boot-cpu", True, "b", "\n\tSet the physical boot cpu"),
    ("force", False, "f", "\n\tTry to produce output even if the input tree has errors"),
    ("include", True, "i", "\n\tAdd a path to search for include files"),
    ("sort", False, "s", "\n\tSort nodes and properties before outputting (useful for comparing trees)"),
    ("phandle", True, "H", _FMT_H),
    ("warning", True, "W", '\n\tEnable/disable warnings (prefix with "no-")'),
    ("error", True, "E", '\n\tEnable/disable errors (prefix with "no-")'),
    ("symbols", False, "@", "\n\tEnable generation of symbols"),
    ("auto-alias", False, "A", "\n\tEnable auto-alias of labels"),
    ("annotate", False, "T", "\n\tAnnotate output .dts with input source file and line (-T -T for more details)"),
    ("help", False, "h", "\n\tPrint this help and exit"),
    ("version", False, "v", "\n\tPrint version and exit"),
]
# dtvm's additions: long options only, never in dtc's -h text (which stays dtc's, byte for byte)
_DTVM_OPTS: list[LongOpt] = [
    ("cpp", False, "\x80", "Run the C preprocessor (pcpp, in process) on DTS input first"),
    ("cpp-include", True, "\x81", "Include directory for --cpp"),
    ("cpp-define", True, "\x82", "Macro definition for --cpp"),
    (
        "diagnostics",
        True,
        "\x83",
        "dtc: dtc's stderr lines exactly (default); rich: each followed by the source line and a caret; "
        "dtvm: dtvm's own one-line form (file:line:col: error: ...), as `dtvm compile` prints",
    ),
]

USAGE = usage_text("dtc [options] <input file>", _SHORT, _DTC_OPTS)


class UsageError(DtvmError):
    """Bad command-line arguments: dtc prints getopt's line, its usage and ``Error: ...`` and exits 1."""

    def __init__(self, message: str, getopt_line: str | None = None) -> None:
        super().__init__(message)
        self.getopt_line = getopt_line


class FatalError(DtvmError):
    """dtc's die(): ``FATAL ERROR: message`` and exit 1."""


def _c_strtol(text: str) -> int:
    """C strtol(text, NULL, 0): leading digits in base 0, 0 if none."""
    s = text.strip()
    neg = s.startswith("-")
    if s[:1] in "+-":
        s = s[1:]
    base = 10
    if s[:2].lower() == "0x":
        base, s = 16, s[2:]
    elif s.startswith("0") and len(s) > 1:
        base, s = 8, s[1:]
    digits = "0123456789abcdef"[:base]
    j = 0
    while j < len(s) and s[j].lower() in digits:
        j += 1
    val = int(s[:j], base) if j else 0
    return -val if neg else val


@dataclass
class DtcOptions:
    inform: str | None = None
    outform: str | None = None
    outname: str = "-"
    outversion: int = 17
    depname: str | None = None
    reservenum: int = 0
    minsize: int = 0
    padsize: int = 0
    alignsize: int = 0
    force: bool = False
    quiet: int = 0
    boot_cpuid: int | None = None
    include_dirs: list[str] = field(default_factory=list)
    phandle_format: int = PHANDLE_EPAPR
    sort: bool = False
    check_flags: list[tuple[str, bool, bool]] = field(default_factory=list)  # (name, enable, is_error)
    symbols: bool = False
    auto_alias: bool = False
    annotate: int = 0
    cpp: bool = False
    cpp_includes: list[str] = field(default_factory=list)
    cpp_defines: list[str] = field(default_factory=list)
    input: str = "-"
    help: bool = False
    version: bool = False
    diagnostics: str = "dtc"


def _check_names() -> list[str]:
    from dtvm.dt.checks import CHECK_NAMES

    return CHECK_NAMES


def parse_args(argv: list[str]) -> DtcOptions:
    """dtc's option loop: options act in order, so ``-h`` before a bad option still prints help."""
    events, args = getopt_long("dtc", argv, _SHORT, _DTC_OPTS + _DTVM_OPTS)
    o = DtcOptions()
    for opt, val in events:
        arg = val or ""
        if opt == "?":
            raise UsageError("unknown option", val)
        if opt == "I":
            o.inform = arg
        elif opt == "O":
            o.outform = arg
        elif opt == "o":
            o.outname = arg
        elif opt == "V":
            o.outversion = _c_strtol(arg)
        elif opt == "d":
            o.depname = arg
        elif opt == "R":
            o.reservenum = _c_strtol(arg) & 0xFFFFFFFF
        elif opt == "S":
            o.minsize = _c_strtol(arg)
        elif opt == "p":
            o.padsize = _c_strtol(arg)
        elif opt == "a":
            o.alignsize = _c_strtol(arg)
            if o.alignsize <= 0 or o.alignsize & (o.alignsize - 1):
                raise FatalError(f'Invalid argument "{o.alignsize}" to -a option')
        elif opt == "f":
            o.force = True
        elif opt == "q":
            o.quiet += 1
        elif opt == "b":
            o.boot_cpuid = _c_strtol(arg) & 0xFFFFFFFF
        elif opt == "i":
            o.include_dirs.append(arg)
        elif opt == "H":
            fmt = {"legacy": PHANDLE_LEGACY, "epapr": PHANDLE_EPAPR, "both": PHANDLE_BOTH}.get(arg)
            if fmt is None:
                raise FatalError(f'Invalid argument "{arg}" to -H option')
            o.phandle_format = fmt
        elif opt == "s":
            o.sort = True
        elif opt in ("W", "E"):
            enable = not arg.startswith("no-")
            name = arg[3:] if not enable else arg
            # dtc checks the name as it reads the option (parse_checks_option), before any input
            if (name[3:] if enable and name.startswith("no_") else name) not in _check_names():
                raise FatalError(f'Unrecognized check name "{name}"')
            o.check_flags.append((name, enable, opt == "E"))
        elif opt == "@":
            o.symbols = True
        elif opt == "A":
            o.auto_alias = True
        elif opt == "T":
            o.annotate += 1
        elif opt == "h":
            o.help = True
            return o
        elif opt == "v":
            o.version = True
            return o
        elif opt == "\x80":
            o.cpp = True
        elif opt == "\x81":
            o.cpp_includes.append(arg)
        elif opt == "\x82":
            o.cpp_defines.append(arg)
        elif opt == "\x83":
            if arg not in ("dtc", "rich", "dtvm"):
                raise UsageError(f"--diagnostics takes dtc, rich or dtvm, not '{arg}'")
            o.diagnostics = arg
    if len(args) > 1:
        raise UsageError("missing files")
    o.input = args[0] if args else "-"
    return o


def _guess_type_by_name(fname: str | None, fallback: str | None) -> str | None:
    if fname is None:
        return fallback
    dot = fname.rfind(".")
    if dot < 0:
        return fallback
    return {".dts": "dts", ".dtb": "dtb", ".yaml": "yaml"}.get(fname[dot:].lower(), fallback)


def guess_input_format(fname: str, fallback: str) -> str:
    """dtc's guess: a directory is fs, a file starting with the FDT magic is dtb, else by name."""
    try:
        st = os.stat(fname)
    except OSError:
        return fallback
    import stat

    if stat.S_ISDIR(st.st_mode):
        return "fs"
    if not stat.S_ISREG(st.st_mode):
        return fallback
    try:
        with open(fname, "rb") as f:
            magic = f.read(4)
    except OSError:
        return fallback
    if magic == FDT_MAGIC:
        return "dtb"
    return _guess_type_by_name(fname, fallback) or fallback


@dataclass
class Result:
    """What a dtc run produced: the output bytes and the diagnostics."""

    output: bytes
    messages: list[str]
    exit_code: int = 0


def load_tree(o: DtcOptions, deps: list[str] | None = None) -> DeviceTree:
    """Read the input in the chosen format (dtc's dt_from_source / dt_from_blob / dt_from_fs)."""
    inform = o.inform or guess_input_format(o.input, "dts")
    if inform == "dts":
        from dtvm.dt.dts.source import read_source

        try:
            src = read_source(o.input)
        except OSError as exc:
            raise FatalError(f"Couldn't open \"{o.input}\": {exc.strerror}") from None
        if o.cpp:
            from dtvm.dt.dts.preprocess import preprocess

            src = preprocess(src, o.cpp_includes, o.cpp_defines)
        from dtvm.dt.dts import scan

        scanner = scan.Scanner(o.include_dirs)
        tokens = scanner.run(src)
        if deps is not None:
            deps.append(src.name)
            deps.extend(getattr(src, "includes", ()))  # the headers --cpp read
            deps.extend(scanner.files)
        from dtvm.dt.dts.parse import Parser, name_sources

        parser = Parser(tokens, o.include_dirs)
        dt = parser.parse()
        name_sources(dt, tokens, src, scanner.buffers)
        if deps is not None:
            deps.extend(parser.incbin_files)
        return dt
    if inform == "dtb":
        from dtvm.dt.dtb import read_dtb

        name = "<stdin>" if o.input == "-" else o.input
        try:
            # the header first, the size capped: /dev/zero is refused on its magic
            data = read_blob(o.input, MAX_BLOB)
        except OSError as exc:
            raise FatalError(f"Couldn't open \"{o.input}\": {exc.strerror}") from None
        if deps is not None:
            deps.append(o.input)
        return read_dtb(data, name)
    if inform == "fs":
        from dtvm.dt.fstree import read_fs

        return read_fs(o.input)
    raise FatalError(f'Unknown input format "{inform}"')


def compile_tree(o: DtcOptions, dt: DeviceTree, messages: list[str]) -> None:
    """dtc's steps between reading and writing: boot cpu, checks, generated nodes, sort."""
    from dtvm.dt.checks import CheckError, CheckRunner

    if o.boot_cpuid is not None:
        dt.boot_cpuid = o.boot_cpuid
    runner = CheckRunner(dt, o.phandle_format, o.symbols)
    for name, enable, is_error in o.check_flags:
        if not runner.configure(name, enable, is_error):
            raise FatalError(f'Unrecognized check name "{name}"')
    rich = o.diagnostics == "rich"
    fname = dt.source_name or o.input

    def show() -> None:
        for finding in runner.findings:
            if (finding.error and o.quiet < 2) or (not finding.error and o.quiet < 1):
                if o.diagnostics == "dtvm":
                    messages.append(finding.format(fname))
                else:
                    messages.append(finding.format_dtc(o.outname, rich))

    try:
        failed = runner.run_all()
    except DtvmError:
        show()  # dtc prints what its checks found before it aborts
        raise
    show()
    if failed:
        if not o.force:
            raise CheckError("ERROR: Input tree has errors, aborting (use -f to force output)")
        if o.quiet < 3:
            messages.append("Warning: Input tree has errors, output forced")
    if o.auto_alias or o.symbols or dt.plugin:
        from dtvm.dt.overlay import generate_overlay_nodes

        generate_overlay_nodes(
            dt, runner, auto_alias=o.auto_alias, symbols=o.symbols, fixups=dt.plugin, messages=messages
        )
    if o.sort:
        from dtvm.dt.sort import sort_tree

        sort_tree(dt)


def render(o: DtcOptions, dt: DeviceTree, outform: str, messages: list[str]) -> bytes:
    if outform == "dts":
        from dtvm.dt.dts.write import write_dts

        return write_dts(dt, o.annotate).encode("latin-1")
    if outform == "dtb":
        from dtvm.dt.dtb import write_dtb

        if o.outversion not in (1, 2, 3, 16, 17):
            raise FatalError(f"Unknown device tree blob version {o.outversion}")
        if o.minsize and o.padsize:
            raise FatalError("Can't set both -p and -S")
        if o.outversion < 16 and dt.root.frozen and any(not n.frozen for n in dt.root.walk()):
            # nodes made after the checks (aliases, __symbols__, fixups) have no
            # full path in dtc, and its v1-3 writer crashes on them
            raise DtvmError(f"-V {o.outversion} cannot hold nodes generated by -@, -A or /plugin/ (dtc 1.6.1 crashes here)")
        return write_dtb(dt, o.outversion, o.minsize, o.padsize, o.alignsize, o.quiet, messages.append, o.reservenum)
    if outform == "null":
        return b""
    if outform == "yaml":
        if o.inform != "dts":
            raise FatalError("YAML output format requires dts input format")
        from dtvm.dt.yaml import write_yaml

        return write_yaml(dt)
    if outform == "asm":
        from dtvm.dt.asm import write_asm

        if o.outversion not in (1, 2, 3, 16, 17):
            raise FatalError(f"Unknown device tree blob version {o.outversion}")
        return write_asm(dt, o.outversion, o.minsize, o.padsize, o.alignsize, o.reservenum)
    raise FatalError(f'Unknown output format "{outform}"')


def release(root: Node) -> None:
    """Break the parent links so the tree is freed by reference counting at once.

    Parent and child point at each other, so without this every tree waits for
    the cyclic collector, which costs more than this one pass when many trees
    are compiled in one process (``dtvm compile``, the parity script).
    """
    stack = [root]
    while stack:
        node = stack.pop()
        node.parent = None
        stack.extend(node.children)
        node.children = []


def run(argv: list[str], stdout: BinaryIO | None = None, stderr: TextIO | None = None) -> int:
    """Run dtc with ``argv`` (without the program name); returns the exit code.

    The cyclic garbage collector is paused for the run: a compilation allocates
    hundreds of thousands of small objects that all live until it ends, and
    the collector's passes over them cost more than the run itself saves.
    """
    enabled = gc.isenabled()
    gc.disable()
    wrapper: io.TextIOWrapper | None = None
    if stderr is None and hasattr(sys.stderr, "buffer"):
        # dtc prints the bytes of names and values as they are: text here is
        # latin-1 (one character per byte), so it goes out as latin-1, not UTF-8
        sys.stderr.flush()
        wrapper = io.TextIOWrapper(sys.stderr.buffer, encoding="latin-1", errors="replace", line_buffering=True)
        stderr = wrapper
    try:
        return _run(argv, stdout, stderr)
    finally:
        if wrapper is not None:
            wrapper.flush()
            wrapper.detach()  # leave sys.stderr's buffer open
        if enabled:
            gc.enable()


def _run(argv: list[str], stdout: BinaryIO | None, stderr: TextIO | None) -> int:
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr
    messages: list[str] = []
    o: DtcOptions | None = None
    try:
        o = parse_args(argv)
        if o.help:
            out.write(USAGE.encode())
            return 0
        if o.version:
            out.write(f"Version: DTC {DTC_VERSION} (dtvm {__version__})\n".encode())
            return 0
        if o.minsize and o.padsize:
            raise FatalError("Can't set both -p and -S")
        inform = o.inform or guess_input_format(o.input, "dts")
        o.inform = inform
        outform = o.outform
        if outform is None:
            outform = _guess_type_by_name(o.outname, None) or ("dtb" if inform == "dts" else "dts")
        if o.annotate and (inform != "dts" or outform != "dts"):
            raise FatalError("--annotate requires -I dts -O dts")
        deps: list[str] | None = [] if o.depname else None
        dt = load_tree(o, deps)
        compile_tree(o, dt, messages)
        data = render(o, dt, outform, messages)
        for msg in messages:
            err.write(msg + "\n")
        messages = []
        if o.depname:
            dep_text = f"{o.outname}:" + "".join(f" {d}" for d in (deps or [])) + "\n"
            write_atomic(o.depname, dep_text.encode("latin-1"))
        if o.outname == "-":
            write_stream(out, data)
        else:
            write_atomic(o.outname, data)
        release(dt.root)
        return 0
    except UsageError as exc:
        for msg in messages:
            err.write(msg + "\n")
        if exc.getopt_line:
            err.write(exc.getopt_line + "\n")
        err.write(f"{USAGE}\nError: {exc}\n")
        return 1
    except DtvmError as exc:
        for msg in messages:
            err.write(msg + "\n")
        err.write(error_text(exc, o.diagnostics if o is not None else "dtc", o.input if o is not None else "dtc") + "\n")
        return exc.exit_code
    except RecursionError:  # pragma: no cover - every parser and walk is iterative
        for msg in messages:
            err.write(msg + "\n")
        err.write("FATAL ERROR: input nested too deeply\n")
        return 1


def error_text(exc: DtvmError, diagnostics: str, input_name: str = "dtc") -> str:
    """What dtc prints for this error (``--diagnostics=rich``: with source lines and carets).

    Errors dtc has no counterpart for (it crashes or loops there, or the
    feature is dtvm's: --cpp) keep dtvm's own form.
    """
    from dtvm.dt.checks import CheckError
    from dtvm.dt.dts.diag import DtsError

    if diagnostics == "dtvm":
        text = exc.render()
        if "error:" not in text.split("\n", 1)[0] and not text.startswith("ERROR"):
            text = f"{input_name}: error: {text}"
        return text
    rich = diagnostics == "rich"
    if isinstance(exc, DtsError):
        return "\n".join(exc.dtc_lines(rich))
    if isinstance(exc, (CheckError, SourceError)) or (not isinstance(exc, (FatalError, BlobError)) and "error:" in str(exc)):
        return exc.render()
    if isinstance(exc, BlobError):
        return f"FATAL ERROR: {exc.message}"
    return f"FATAL ERROR: {exc}"
