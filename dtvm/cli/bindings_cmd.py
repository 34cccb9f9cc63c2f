"""``dtvm bindings``: work with the binding documents (``export`` to dt-schema)."""

from __future__ import annotations

import sys

import click

from dtvm.cli.suggest import SuggestingGroup

__all__ = ["bindings_group"]


@click.group("bindings", cls=SuggestingGroup)
def bindings_group() -> None:
    """Work with dtvm's binding documents."""


@bindings_group.command("export")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option(
    "--bindings",
    "dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="binding directory (repeatable; default: dtvm's own)",
)
@click.option("-q", "--quiet", is_flag=True, help="print nothing but errors")
def export_cmd(out_dir: str, dirs: tuple[str, ...], quiet: bool) -> None:
    """Write one dt-schema document per binding under DIR (for dt-doc-validate, dt-mk-schema, dt-validate)."""
    from dtvm.bindings.export import export_bindings
    from dtvm.errors import DtvmError

    try:
        written, notes = export_bindings(out_dir, list(dirs) or None)
    except DtvmError as exc:
        click.echo(str(exc), err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    for note in notes:
        click.echo(f"dtvm bindings export: note: {note}", err=True)
    if not quiet:
        click.echo(f"{len(written)} documents written to {out_dir}", err=True)
