"""What the four libfdt tools share at the command line: the usage exit and the error wrapper.

Each tool's ``run`` is the same shape: C-tool exit codes through ToolExit, a
corrupt blob as one ``PROG: error:`` line, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import BinaryIO, TextIO

from dtvm.dt.libfdt import LongOpt, ToolExit, usage_text
from dtvm.errors import BlobError

__all__ = ["TOOL_VERSION", "common_option", "read_tool_file", "run_tool", "usage_exit"]

TOOL_VERSION = "Version: DTC 1.6.1\n"

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
