"""The ``dtvm`` command: one module per family of subcommands, loaded lazily.

``dtvm dtc`` and the libfdt tools take the C tools' own arguments (``-h`` is
dtc's help, ``-I`` the input format), so they are dispatched before click is
even imported; that keeps ``dtvm dtc --version``, one-file compiles and
``dtvm fdtget`` fast to start. Everything else goes through the click group
in ``group.py``.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["cli", "main"]

from dtvm.cli.passthrough import PASSTHROUGH, run_passthrough


def __getattr__(name: str) -> Any:
    if name == "cli":
        from dtvm.cli.group import cli

        return cli
    raise AttributeError(name)


def main() -> None:
    """Console entry point."""
    argv = sys.argv[1:]
    if argv and argv[0] in PASSTHROUGH:
        try:
            code = run_passthrough(argv[0], argv[1:])
        except KeyboardInterrupt:
            code = 130
        except BrokenPipeError:
            code = 141
        sys.exit(code)
    if argv and argv[0] == "validate":
        # the common case of a short command, without importing click (~9 ms)
        from dtvm.cli.validate import run

        sys.exit(run(argv[1:]))
    from dtvm.cli.group import cli

    cli.main(args=argv, prog_name="dtvm")
