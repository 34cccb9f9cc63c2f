"""A click group that answers a mistyped command with the closest one, as click already does for
options ("No such option '--ofline'. Did you mean '--offline'?")."""

from __future__ import annotations

import click

__all__ = ["SuggestingGroup"]


class SuggestingGroup(click.Group):
    """``dtvm shw`` says ``Did you mean 'show'?`` instead of only ``No such command``."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            import difflib  # only for a mistyped command (about 1 ms of every start-up otherwise)

            name = click.utils.make_str(args[0]) if args else ""
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1, cutoff=0.6)
            if not close or not name or name.startswith("-") or self.get_command(ctx, name) is not None:
                raise
            raise click.UsageError(f"No such command {name!r}. Did you mean {close[0]!r}?", ctx) from exc

