"""The click group behind ``dtvm``: subcommands imported on first use."""

from __future__ import annotations

import sys
from typing import ClassVar

import click

from dtvm import __version__
from dtvm.cli.passthrough import PASSTHROUGH, run_passthrough
from dtvm.cli.suggest import SuggestingGroup

__all__ = ["cli"]


class _LazyGroup(SuggestingGroup):
    """Subcommands imported on first use, so start-up stays cheap."""

    lazy: ClassVar[dict[str, tuple[str, str]]] = {
        "compile": ("dtvm.cli.compile", "compile_cmd"),
        "validate": ("dtvm.cli.validate", "validate_cmd"),
        "bindings": ("dtvm.cli.bindings_cmd", "bindings_group"),
        "show": ("dtvm.cli.show", "show_cmd"),
        "qemu2dtb": ("dtvm.cli.qemu", "qemu2dtb_cmd"),
        "machine": ("dtvm.cli.qemu", "machine_group"),
        "diff": ("dtvm.cli.diff", "diff_cmd"),
        "dtb2qemu": ("dtvm.cli.qemu", "dtb2qemu_cmd"),
        "backend": ("dtvm.cli.qemu", "backend_cmd"),
        "hotplug": ("dtvm.cli.hotplug", "hotplug_group"),
        "check": ("dtvm.cli.check", "check_cmd"),
        "libvirt2dtb": ("dtvm.cli.libvirt", "libvirt2dtb_cmd"),
        "dtb2libvirt": ("dtvm.cli.libvirt", "dtb2libvirt_cmd"),
    }

    #: set by ``dtvm.cli._main``, which pauses the cyclic collector for the start-up
    resume_collector = False

    def _resume_collector(self) -> None:
        """The command's module is imported: what start-up made is frozen out of the collector's
        passes (it lives to the end anyway) and the collector runs again for the command."""
        if self.resume_collector:
            import gc

            self.resume_collector = False
            gc.freeze()
            gc.enable()

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy, *PASSTHROUGH])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        try:
            if name in self.lazy:
                import importlib

                module, attr = self.lazy[name]
                return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
            if name in PASSTHROUGH:
                return _passthrough_command(name)
            return super().get_command(ctx, name)
        finally:
            self._resume_collector()


def _passthrough_command(name: str) -> click.Command:
    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False, help=f"{name}, same arguments and outputs as the C tool")
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def cmd(args: tuple[str, ...]) -> None:
        sys.exit(run_passthrough(name, list(args)))

    return cmd


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="dtvm")
def cli() -> None:
    """dtvm: the devicetree as the one precise description of a VM's hardware."""
