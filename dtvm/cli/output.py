"""Output helpers of the command line: standard output that a closed pipe ends quietly and a
full disk ends with one line.

``write_atomic`` lives in :mod:`dtvm.fileio` (the library writes files too); it is re-exported
here for the commands.
"""

from __future__ import annotations

import os
import sys

from dtvm.fileio import write_atomic

__all__ = ["discard_stdout", "write_atomic", "write_stdout"]


def discard_stdout() -> None:
    """Point stdout at /dev/null: what a failed write left in Python's buffers must not be
    written again (and fail again, with a traceback-like message) when the interpreter exits."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def write_stdout(text: str) -> None:
    """Write to stdout; a closed pipe (``dtvm diff a b | head``) ends quietly with 141, as the fdt
    tools do, instead of a BrokenPipeError traceback."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        discard_stdout()
        sys.exit(141)
    except OSError as exc:
        # a full disk (/dev/full), a file-size limit: one line, not a traceback
        discard_stdout()
        sys.stderr.write(f"error: <stdout>: cannot write: {exc.strerror or exc}\n")
        sys.exit(1)


def interrupted_status(exc: BaseException) -> int:
    """The exit status of a command ended by a signal: 128 + its number, as a shell reports a
    process the signal killed (130 for Ctrl-C; SIGTERM, SIGHUP, SIGQUIT arrive as a
    ``KeyboardInterrupt`` carrying ``signum``)."""
    signum = getattr(exc, "signum", None)
    return 128 + signum if isinstance(signum, int) else 130
