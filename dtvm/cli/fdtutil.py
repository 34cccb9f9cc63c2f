"""What the four libfdt tools share at the command line: dtc's util.c (getopt_long, usage text,
type strings, file reading) and the error wrapper.

Each tool's ``run`` is the same shape: C-tool exit codes through ToolExit, a
corrupt blob as one ``PROG: error:`` line, never a traceback.  This is the
command-line layer; the libfdt model it drives is :mod:`dtvm.dt.libfdt`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import BinaryIO, TextIO

from dtvm.dt.libfdt import read_buffer
from dtvm.errors import BlobError

__all__ = [
    "COMMON_LONG_OPTS",
    "TOOL_VERSION",
    "USAGE_TYPE_MSG",
    "LongOpt",
    "ToolExit",
    "common_option",
    "decode_type",
    "getopt_long",
    "is_printable_string",
    "read_file",
    "read_tool_file",
    "run_tool",
    "usage_exit",
    "usage_text",
]

TOOL_VERSION = "Version: DTC 1.6.1\n"


class ToolExit(Exception):
    """A C tool calling ``exit(code)`` (usage errors, ``die``, ``-h``, ``-V``)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


USAGE_TYPE_MSG = (
    "<type>\ts=string, i=int, u=unsigned, x=hex\n"
    "\tOptional modifier prefix:\n"
    "\t\thh or b=byte, h=2 byte, l=4 byte (default)"
)

# (long name, takes an argument, short letter, help)
LongOpt = tuple[str, bool, str, str]
COMMON_LONG_OPTS: list[LongOpt] = [
    ("help", False, "h", "Print this help and exit"),
    ("version", False, "V", "Print version and exit"),
]


def usage_text(synopsis: str, short_opts: str, long_opts: list[LongOpt]) -> str:
    """``util_usage``'s text (without the error line)."""
    lines = [f"Usage: {synopsis}\n\nOptions: -[{short_opts}]\n"]
    a_arg = "<arg>"
    a_arg_len = len(a_arg) + 1
    optlen = max(len(name) + 1 + (a_arg_len if has_arg else 0) for name, has_arg, _, _ in long_opts)
    for name, has_arg, short, help_text in long_opts:
        head = f"  -{short}, "
        if has_arg:
            head += f"--{name} {a_arg}" + " " * max(0, optlen - len(name) - a_arg_len)
        else:
            head += f"--{name:<{optlen}}"
        lines.append(f"{head}{help_text}\n")
    return "".join(lines)


def getopt_long(
    prog: str, argv: list[str], short_opts: str, long_opts: list[LongOpt]
) -> tuple[list[tuple[str, str | None]], list[str]]:
    """glibc's ``getopt_long`` with argument permutation.

    Returns the options in the order they appear, as (letter, argument), and
    the other arguments.  An invalid option is reported as ``("?", message)``
    with glibc's message; the caller handles events in order, as the C
    ``while (getopt_long(...))`` loop does.
    """
    takes: dict[str, bool] = {}
    i = 0
    while i < len(short_opts):
        ch = short_opts[i]
        has = i + 1 < len(short_opts) and short_opts[i + 1] == ":"
        takes[ch] = has
        i += 2 if has else 1
    events: list[tuple[str, str | None]] = []
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positional.extend(argv[i:])
            break
        if arg.startswith("--"):
            body = arg[2:]
            name, eq, value = body.partition("=")
            exact = [o for o in long_opts if o[0] == name]
            matches = exact or [o for o in long_opts if o[0].startswith(name)]
            if not matches:
                events.append(("?", f"{prog}: unrecognized option '--{body}'"))
                continue
            if len({o[2] for o in matches}) > 1:
                poss = " ".join(f"'--{o[0]}'" for o in matches)
                events.append(("?", f"{prog}: option '--{name}' is ambiguous; possibilities: {poss}"))
                continue
            lname, has_arg, short, _ = matches[0]
            if has_arg:
                if eq:
                    events.append((short, value))
                elif i < len(argv):
                    events.append((short, argv[i]))
                    i += 1
                else:
                    events.append(("?", f"{prog}: option '--{lname}' requires an argument"))
            elif eq:
                events.append(("?", f"{prog}: option '--{lname}' doesn't allow an argument"))
            else:
                events.append((short, None))
            continue
        if arg.startswith("-") and arg != "-":
            j = 1
            while j < len(arg):
                ch = arg[j]
                j += 1
                if ch not in takes or ch == ":":
                    events.append(("?", f"{prog}: invalid option -- '{ch}'"))
                    continue
                if takes[ch]:
                    if j < len(arg):
                        events.append((ch, arg[j:]))
                    elif i < len(argv):
                        events.append((ch, argv[i]))
                        i += 1
                    else:
                        events.append(("?", f"{prog}: option requires an argument -- '{ch}'"))
                    break
                events.append((ch, None))
            continue
        positional.append(arg)
    return events, positional


def decode_type(fmt: str) -> tuple[str, int] | None:
    """``utilfdt_decode_type``: (type letter, size or -1), or None if invalid."""
    if not fmt:
        return None
    i = 0
    qualifier = ""
    size = -1
    if fmt[0] in "hlLb":
        qualifier = fmt[0]
        i = 1
        if i < len(fmt) and fmt[i] == qualifier:
            if fmt[i] == "h":
                qualifier = "b"
            i += 1
    if i >= len(fmt) or fmt[i] not in "iuxs":
        return None
    typ = fmt[i]
    if typ != "s":
        size = {"b": 1, "h": 2, "l": 4}.get(qualifier, -1)
    if i + 1 != len(fmt):
        return None
    return typ, size


def read_file(filename: str) -> tuple[bytearray | None, str | None]:
    """``utilfdt_read_err``: the C buffer (file bytes plus zeroed slack) or the ``strerror`` text."""
    try:
        if filename == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(filename, "rb") as f:
                data = f.read()
    except OSError as exc:
        return None, exc.strerror or str(exc)
    return read_buffer(data), None


def is_printable_string(data: bytes) -> bool:
    """``util_is_printable_string``: NUL-terminated runs of printable ASCII, none empty."""
    n = len(data)
    if n == 0 or data[-1] != 0:
        return False
    i = 0
    while i < n:
        start = i
        while i < n and data[i] and 0x20 <= data[i] <= 0x7E:
            i += 1
        if i >= n or data[i] != 0 or i == start:
            return False
        i += 1
    return True

Usage = Callable[[BinaryIO, TextIO, "str | None"], ToolExit]


def _stdout_failed(prog: str, exc: OSError, err: TextIO, after_error: str) -> int:
    """One line for an output that failed; what is still buffered for stdout is dropped (else
    Python's exit would try again and print its own message)."""
    from dtvm.cli.output import discard_stdout

    err.write(f"{prog}: error: {exc.filename or '<stdout>'}: {exc.strerror or exc}{after_error}\n")
    if not exc.filename:
        discard_stdout()
    return 1


def read_tool_file(filename: str, whole: bool = False) -> tuple[bytearray | None, str | None]:
    """``utilfdt_read_err`` with bounds: the C buffer (file bytes plus zeroed slack) or the reason.

    The C tools read the whole file before looking at it (``/dev/zero`` runs them out of memory);
    here the header comes first (:func:`dtvm.fileio.read_blob`): a file without the magic is
    rejected on its first bytes, a blob is read to the end of the file within
    :data:`~dtvm.fileio.MAX_BLOB`, so the buffer and every message stay the C tool's for any
    file it could read.  ``whole`` reads every byte even without the magic (``fdtdump -s`` scans).
    """
    from dtvm.dt.libfdt import read_buffer
    from dtvm.fileio import MAX_BLOB, InputFileError, read_blob, read_limited

    try:
        data = read_limited(filename, MAX_BLOB) if whole else read_blob(filename, MAX_BLOB, whole_file=True)
    except InputFileError as exc:
        return None, exc.message
    return read_buffer(data), None


def usage_exit(
    out: BinaryIO, err: TextIO, errmsg: str | None, synopsis: str, short_opts: str, long_opts: list[LongOpt]
) -> ToolExit:
    """The C tools' usage(): help on stdout and exit 0, or help plus the error on stderr and exit 1."""
    text = usage_text(synopsis, short_opts, long_opts)
    if errmsg is None:
        out.write(text.encode())
        return ToolExit(0)
    err.write(f"{text}\nError: {errmsg}\n")
    return ToolExit(1)


def common_option(opt: str, val: str | None, out: BinaryIO, err: TextIO, usage: Usage) -> None:
    """-h, -V and unknown options, handled the same way by every tool (raises ToolExit)."""
    if opt == "h":
        raise usage(out, err, None)
    if opt == "V":
        out.write(TOOL_VERSION.encode())
        raise ToolExit(0)
    if opt == "?":
        err.write(f"{val}\n")
        raise usage(out, err, "unknown option")


def run_tool(
    prog: str,
    body: Callable[[list[str], BinaryIO, TextIO], int],
    argv: list[str],
    stdout: BinaryIO | None,
    stderr: TextIO | None,
    after_error: str = "",
) -> int:
    """Run a tool's body with the standard streams; ``after_error`` is appended to error lines."""
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr
    try:
        code = body(argv, out, err)
        out.flush()
        return code
    except ToolExit as exc:
        try:
            out.flush()
        except BrokenPipeError:
            raise
        except OSError as oexc:
            return _stdout_failed(prog, oexc, err, after_error)
        return exc.code
    except BrokenPipeError:
        raise
    except OSError as exc:
        # standard output on a full disk (/dev/full) or past a file-size limit
        return _stdout_failed(prog, exc, err, after_error)
    except BlobError as exc:
        err.write(f"{prog}: error: {exc.message}{after_error}\n")
        return 1
    except RecursionError:
        err.write(f"{prog}: error: the blob's aliases or nodes nest too deeply{after_error}\n")
        return 1
