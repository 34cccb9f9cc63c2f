"""The ``dtvm`` command: one module per family of subcommands, loaded lazily.

``dtvm dtc`` takes dtc's own arguments (``-h`` is dtc's help, ``-I`` the
input format), so it is dispatched before click parses anything; that also
keeps ``dtvm dtc --version`` and one-file compiles fast to start.
"""

from __future__ import annotations

import sys
from typing import ClassVar

import click

from .. import __version__

__all__ = ["cli", "main"]

_PASSTHROUGH = {
    "dtc": ("dtvm.cli.dtc", "run"),
    "fdtget": ("dtvm.cli.fdtget", "run"),
    "fdtput": ("dtvm.cli.fdtput", "run"),
    "fdtdump": ("dtvm.cli.fdtdump", "run"),
    "fdtoverlay": ("dtvm.cli.fdtoverlay", "run"),
}


class _LazyGroup(click.Group):
    """Subcommands imported on first use, so start-up stays cheap."""

    lazy: ClassVar[dict[str, tuple[str, str]]] = {
        "compile": ("dtvm.cli.compile", "compile_cmd"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy, *_PASSTHROUGH])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            import importlib

            module, attr = self.lazy[name]
            return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
        if name in _PASSTHROUGH:
            return _passthrough_command(name)
        return super().get_command(ctx, name)


def _passthrough_command(name: str) -> click.Command:
    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False, help=f"{name}, same arguments and outputs as the C tool")
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def cmd(args: tuple[str, ...]) -> None:
        sys.exit(_run_passthrough(name, list(args)))

    return cmd


def _run_passthrough(name: str, args: list[str]) -> int:
    import importlib

    module, attr = _PASSTHROUGH[name]
    return int(getattr(importlib.import_module(module), attr)(args))


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="dtvm")
def cli() -> None:
    """dtvm: the devicetree as the one precise description of a VM's hardware."""


def main() -> None:
    """Console entry point."""
    argv = sys.argv[1:]
    if argv and argv[0] in _PASSTHROUGH:
        try:
            code = _run_passthrough(argv[0], argv[1:])
        except KeyboardInterrupt:
            code = 130
        except BrokenPipeError:
            code = 141
        sys.exit(code)
    cli.main(args=argv, prog_name="dtvm")
