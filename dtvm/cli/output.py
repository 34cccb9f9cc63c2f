"""Output helpers of the command line: standard output that a closed pipe ends quietly.

``write_atomic`` lives in :mod:`dtvm.fileio` (the library writes files too); it is re-exported
here for the commands.
"""

from __future__ import annotations

import os
import sys

from dtvm.fileio import write_atomic

__all__ = ["write_atomic", "write_stdout"]


def write_stdout(text: str) -> None:
    """Write to stdout; a closed pipe (``dtvm diff a b | head``) ends quietly with 141, as the fdt
    tools do, instead of a BrokenPipeError traceback."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)
