"""The C-style tools (dtc, fdtget, fdtput, fdtdump, fdtoverlay): run without importing click.

They parse their own arguments as the C programs do (getopt), so ``dtvm dtc ...`` and the click
group both hand them the raw argument list.
"""

from __future__ import annotations

__all__ = ["PASSTHROUGH", "run_passthrough"]

PASSTHROUGH = {
    "dtc": ("dtvm.cli.dtc", "run"),
    "fdtget": ("dtvm.cli.fdtget", "run"),
    "fdtput": ("dtvm.cli.fdtput", "run"),
    "fdtdump": ("dtvm.cli.fdtdump", "run"),
    "fdtoverlay": ("dtvm.cli.fdtoverlay", "run"),
}


def run_passthrough(name: str, args: list[str]) -> int:
    import importlib

    module, attr = PASSTHROUGH[name]
    return int(getattr(importlib.import_module(module), attr)(args))
