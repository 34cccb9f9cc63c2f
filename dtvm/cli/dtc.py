"""``dtvm dtc``: dtc 1.6.1's command line, in process.

The arguments, defaults, format guessing, exit codes (1 for bad input, 2 for
failed checks) and outputs are dtc's; the error messages are better: one line
with file:line:col, the source line and a caret. ``run()`` takes argv and
streams so that tests and the corpus parity script can call it in-process.
"""

from __future__ import annotations

import gc
import getopt
import os
import sys
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

from dtvm import __version__
from dtvm.dt.tree import PHANDLE_BOTH, PHANDLE_EPAPR, PHANDLE_LEGACY, DeviceTree, Node
from dtvm.errors import DtvmError
from dtvm.fileio import MAX_BLOB, read_blob, write_atomic, write_stream

__all__ = ["DtcOptions", "UsageError", "compile_tree", "parse_args", "run"]

DTC_VERSION = "1.6.1"
FDT_MAGIC = b"\xd0\x0d\xfe\xed"

_SHORT = "qI:O:o:V:d:R:S:p:a:fb:i:H:sW:E:@AThv"
_LONG = [
    "quiet",
    "in-format=",
    "out=",
    "out-format=",
    "out-version=",
    "out-dependency=",
    "reserve=",
    "space=",
    "pad=",
    "align=",
    "boot-cpu=",
    "force",
    "include=",
    "sort",
    "phandle=",
    "warning=",
    "error=",
    "symbols",
    "auto-alias",
    "annotate",
    "help",
    "version",
    # dtvm additions: the C preprocessor, in process (dtc's own -I is the input format)
    "cpp",
    "cpp-include=",
    "cpp-define=",
]

USAGE = """Usage: dtc [options] <input file>

Options: -[qI:O:o:V:d:R:S:p:a:fb:i:H:sW:E:@AThv]
  -q, --quiet                Quiet: -q suppress warnings, -qq errors, -qqq all
  -I, --in-format <arg>      Input formats are: dts, dtb, fs
  -o, --out <arg>            Output file
  -O, --out-format <arg>     Output formats are: dts, dtb, asm, yaml
  -V, --out-version <arg>    Blob version to produce, defaults to 17 (for dtb and asm output)
  -d, --out-dependency <arg> Output dependency file
  -R, --reserve <arg>        Make space for <number> reserve map entries (for dtb and asm output)
  -S, --space <arg>          Make the blob at least <bytes> long (for dtb and asm output)
  -p, --pad <arg>            Add padding to the blob of <bytes> long (for dtb and asm output)
  -a, --align <arg>          Make the blob align to the <bytes> (for dtb and asm output)
  -b, --boot-cpu <arg>       Set the physical boot cpu
  -f, --force                Try to produce output even if the input tree has errors
  -i, --include <arg>        Add a path to search for include files
  -s, --sort                 Sort nodes and properties before outputting (useful for comparing trees)
  -H, --phandle <arg>        Valid phandle formats are: legacy, epapr, both
  -W, --warning <arg>        Enable/disable warnings (prefix with "no-")
  -E, --error <arg>          Enable/disable errors (prefix with "no-")
  -@, --symbols              Enable generation of symbols
  -A, --auto-alias           Enable auto-alias of labels
  -T, --annotate             Annotate output .dts with input source file and line (-T -T for more details)
  -h, --help                 Print this help and exit
  -v, --version              Print version and exit
      --cpp                  Run the C preprocessor (pcpp, in process) on DTS input first (dtvm)
      --cpp-include <dir>    Include directory for --cpp (dtvm)
      --cpp-define <n[=v]>   Macro definition for --cpp (dtvm)
"""


class UsageError(DtvmError):
    """Bad command-line arguments (dtc exits 1 with its usage text)."""


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


def parse_args(argv: list[str]) -> DtcOptions:
    try:
        opts, args = getopt.gnu_getopt(argv, _SHORT, _LONG)
    except getopt.GetoptError as exc:
        raise UsageError(f"dtc: {exc.msg}") from None
    o = DtcOptions()
    for opt, val in opts:
        if opt in ("-I", "--in-format"):
            o.inform = val
        elif opt in ("-O", "--out-format"):
            o.outform = val
        elif opt in ("-o", "--out"):
            o.outname = val
        elif opt in ("-V", "--out-version"):
            o.outversion = _c_strtol(val)
        elif opt in ("-d", "--out-dependency"):
            o.depname = val
        elif opt in ("-R", "--reserve"):
            o.reservenum = _c_strtol(val) & 0xFFFFFFFF
        elif opt in ("-S", "--space"):
            o.minsize = _c_strtol(val)
        elif opt in ("-p", "--pad"):
            o.padsize = _c_strtol(val)
        elif opt in ("-a", "--align"):
            o.alignsize = _c_strtol(val)
            if o.alignsize <= 0 or o.alignsize & (o.alignsize - 1):
                raise DtvmError(f'Invalid argument "{o.alignsize}" to -a option')
        elif opt in ("-f", "--force"):
            o.force = True
        elif opt in ("-q", "--quiet"):
            o.quiet += 1
        elif opt in ("-b", "--boot-cpu"):
            o.boot_cpuid = _c_strtol(val) & 0xFFFFFFFF
        elif opt in ("-i", "--include"):
            o.include_dirs.append(val)
        elif opt in ("-H", "--phandle"):
            fmt = {"legacy": PHANDLE_LEGACY, "epapr": PHANDLE_EPAPR, "both": PHANDLE_BOTH}.get(val)
            if fmt is None:
                raise DtvmError(f'Invalid argument "{val}" to -H option')
            o.phandle_format = fmt
        elif opt in ("-s", "--sort"):
            o.sort = True
        elif opt in ("-W", "--warning", "-E", "--error"):
            enable = not val.startswith("no-")
            o.check_flags.append((val[3:] if not enable else val, enable, opt in ("-E", "--error")))
        elif opt in ("-@", "--symbols"):
            o.symbols = True
        elif opt in ("-A", "--auto-alias"):
            o.auto_alias = True
        elif opt in ("-T", "--annotate"):
            o.annotate += 1
        elif opt == "--cpp":
            o.cpp = True
        elif opt == "--cpp-include":
            o.cpp_includes.append(val)
        elif opt == "--cpp-define":
            o.cpp_defines.append(val)
        elif opt in ("-h", "--help"):
            o.help = True
        elif opt in ("-v", "--version"):
            o.version = True
    if len(args) > 1:
        raise UsageError("dtc: missing files")
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
            raise DtvmError(f"{o.input}: error: Couldn't open \"{o.input}\": {exc.strerror}") from None
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
        from dtvm.dt.dts.parse import Parser

        parser = Parser(tokens, o.include_dirs)
        dt = parser.parse()
        dt.source_name = src.name
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
            raise DtvmError(f"{name}: error: Couldn't open \"{o.input}\": {exc.strerror}") from None
        if deps is not None:
            deps.append(o.input)
        return read_dtb(data, name)
    if inform == "fs":
        from dtvm.dt.fstree import read_fs

        return read_fs(o.input)
    raise DtvmError(f'Unknown input format "{inform}"')


def compile_tree(o: DtcOptions, dt: DeviceTree, messages: list[str]) -> None:
    """dtc's steps between reading and writing: boot cpu, checks, generated nodes, sort."""
    from dtvm.dt.checks import CheckError, CheckRunner

    if o.boot_cpuid is not None:
        dt.boot_cpuid = o.boot_cpuid
    runner = CheckRunner(dt, o.phandle_format, o.symbols)
    for name, enable, is_error in o.check_flags:
        if not runner.configure(name, enable, is_error):
            raise DtvmError(f'Unrecognized check name "{name}"')
    fname = dt.source_name or o.input

    def show() -> None:
        for finding in runner.findings:
            if (finding.error and o.quiet < 2) or (not finding.error and o.quiet < 1):
                messages.append(finding.format(fname))

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
            raise DtvmError(f"Unknown device tree blob version {o.outversion}")
        if o.minsize and o.padsize:
            raise DtvmError("Can't set both -p and -S")
        if o.outversion < 16 and dt.root.frozen and any(not n.frozen for n in dt.root.walk()):
            # nodes made after the checks (aliases, __symbols__, fixups) have no
            # full path in dtc, and its v1-3 writer crashes on them
            raise DtvmError(f"-V {o.outversion} cannot hold nodes generated by -@, -A or /plugin/ (dtc 1.6.1 crashes here)")
        return write_dtb(dt, o.outversion, o.minsize, o.padsize, o.alignsize, o.quiet, messages.append, o.reservenum)
    if outform == "null":
        return b""
    if outform == "yaml":
        if o.inform != "dts":
            raise DtvmError("YAML output format requires dts input")
        from dtvm.dt.yaml import write_yaml

        return write_yaml(dt)
    if outform == "asm":
        from dtvm.dt.asm import write_asm

        if o.outversion not in (1, 2, 3, 16, 17):
            raise DtvmError(f"Unknown device tree blob version {o.outversion}")
        return write_asm(dt, o.outversion, o.minsize, o.padsize, o.alignsize, o.reservenum)
    raise DtvmError(f'Unknown output format "{outform}"')


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
    try:
        return _run(argv, stdout, stderr)
    finally:
        if enabled:
            gc.enable()


def _run(argv: list[str], stdout: BinaryIO | None, stderr: TextIO | None) -> int:
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr
    messages: list[str] = []
    try:
        o = parse_args(argv)
        if o.help:
            out.write(USAGE.encode())
            return 0
        if o.version:
            out.write(f"Version: DTC {DTC_VERSION} (dtvm {__version__})\n".encode())
            return 0
        if o.minsize and o.padsize:
            raise DtvmError("Can't set both -p and -S")
        inform = o.inform or guess_input_format(o.input, "dts")
        o.inform = inform
        outform = o.outform
        if outform is None:
            outform = _guess_type_by_name(o.outname, None) or ("dtb" if inform == "dts" else "dts")
        if o.annotate and (inform != "dts" or outform != "dts"):
            raise DtvmError("--annotate requires -I dts -O dts")
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
        err.write(f"{exc}\n{USAGE}")
        return 1
    except DtvmError as exc:
        for msg in messages:
            err.write(msg + "\n")
        text = exc.render()
        if "error:" not in text.split("\n", 1)[0] and not text.startswith("ERROR"):
            text = f"{o.input if 'o' in locals() else 'dtc'}: error: {text}"
        err.write(text + "\n")
        return exc.exit_code
    except RecursionError:
        for msg in messages:
            err.write(msg + "\n")
        err.write(f"{o.input}: error: input nested too deeply\n")
        return 1
