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

__all__ = ["TOOL_VERSION", "common_option", "run_tool", "usage_exit"]

TOOL_VERSION = "Version: DTC 1.6.1\n"

Usage = Callable[[BinaryIO, TextIO, "str | None"], ToolExit]


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
        return body(argv, out, err)
    except ToolExit as exc:
        return exc.code
    except BlobError as exc:
        err.write(f"{prog}: error: {exc.message}{after_error}\n")
        return 1
    except RecursionError:
        err.write(f"{prog}: error: the blob's aliases or nodes nest too deeply{after_error}\n")
        return 1
