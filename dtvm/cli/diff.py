"""``dtvm diff A.dtb B.dtb [--guest-only] [-b A.backend.dtbo -b B.backend.dtbo] [--format text|json]``.

Exit status is the answer, so that scripts (and a migration check) can use it: 0 when the guest
sees the same hardware, 1 when it does not, 2 when an input cannot be used (one line on stderr,
``dtvm diff: FILE: message``, never a traceback; click's own usage errors exit 2 as well).
Back-end differences are listed but never change the status: a guest DTB with another host's
back-ends is still the same VM.  The comparison itself is ``dtvm.vm.diff``.
"""

from __future__ import annotations

import json
import sys

import click

from dtvm.errors import first_line

__all__ = ["diff_cmd"]


def _write(text: str) -> None:
    from dtvm.cli.output import write_stdout

    write_stdout(text)


@click.command("diff")
@click.option(
    "-b",
    "--backend",
    "backends",
    multiple=True,
    metavar="BACKEND.dtbo",
    help="The back-end overlay of A, then of B (give both or none). Their differences are listed "
    "in a separate section and do not change the exit status.",
)
@click.option("--guest-only", is_flag=True, help="Do not list back-end differences.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help='Words for a terminal, or JSON: {"same": bool, "guest": [...], "backend": [...]}.',
)
@click.argument("file_a", metavar="A.dtb")
@click.argument("file_b", metavar="B.dtb")
def diff_cmd(backends: tuple[str, ...], guest_only: bool, fmt: str, file_a: str, file_b: str) -> None:
    """Say whether two VM descriptions are the same hardware for the guest, and what differs.

    Ignores phandle numbers, node and property order, back-end facts and the random seeds in
    /chosen. Exit status: 0 the same for the guest, 1 different, 2 unusable input. Back-end
    differences (with -b for both sides, unless --guest-only) are listed separately and never
    change the exit status.
    """
    from dtvm.vm.diff import DiffInputError, compare, read_description, render_json, render_text

    if len(backends) not in (0, 2):
        raise click.UsageError("give -b twice (A's back-end overlay, then B's) or not at all")

    def warn(message: str) -> None:
        click.echo(f"dtvm diff: {message}", err=True)

    try:
        a = read_description(file_a, warn=warn)
        b = read_description(file_b, warn=warn)
        ba = bb = None
        if backends and not guest_only:
            ba = read_description(backends[0], overlay=True, warn=warn)
            bb = read_description(backends[1], overlay=True, warn=warn)
        elif backends:
            for path in backends:  # still checked: a wrong path is an error either way
                read_description(path, overlay=True, warn=warn)
    except DiffInputError as exc:
        click.echo(f"dtvm diff: {exc}", err=True)
        sys.exit(2)
    bindings = None
    try:
        from dtvm.bindings import load_bindings

        bindings = load_bindings(cache=True)
    except Exception as exc:  # dtvm's own bindings are broken: compare by standard names only
        click.echo(f"dtvm diff: warning: bindings not loaded ({first_line(exc)}); "
                   "phandles found by standard property names only", err=True)
    result = compare(a, b, ba, bb, bindings=bindings, backends=not guest_only)
    if fmt == "json":
        _write(json.dumps(render_json(result), indent=2, ensure_ascii=True) + "\n")
    else:
        _write(render_text(result, file_a, file_b))
    sys.exit(0 if result.same else 1)
