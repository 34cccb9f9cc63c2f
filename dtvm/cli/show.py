"""``dtvm show FILE.dtb [-b BACKEND.dtbo] [--format text|dot]``: a VM description, readable.

The text view goes to a terminal (box characters when stdout's encoding has them, colour when
stdout is a terminal and ``NO_COLOR`` is unset); ``--format dot`` is a Graphviz graph, always
UTF-8.  Input that cannot be used is one line on stderr, ``dtvm show: FILE: message``, and exit
status 1 (click's own usage errors exit 2); never a traceback.

:func:`echo_description` is the same output for callers that already hold the trees
(``dtvm qemu2dtb`` without ``-o``).
"""

from __future__ import annotations

import os
import sys

import click

from dtvm.dt.tree import DeviceTree
from dtvm.errors import first_line

__all__ = ["echo_description", "option_defaults", "read_blob", "show_cmd"]

#: A DTB's header says how long it is; a header claiming more than this is refused before reading
#: (``dtvm show /dev/zero`` or a corrupt size must not read gigabytes).
MAX_BLOB = 256 << 20


class ShowError(Exception):
    """One line for the user (``FILE: message``), exit status 1."""


def read_blob(path: str) -> DeviceTree:
    """The tree in a DTB (or DTBO) file; ShowError naming the file for anything unusable."""
    from dtvm.dt.dtb import BlobFileError, read_dtb_file

    warnings: list[str] = []
    try:
        dt = read_dtb_file(path, MAX_BLOB, warnings.append)
    except BlobFileError as exc:
        raise ShowError(str(exc)) from None
    for w in warnings[:5]:
        click.echo(f"dtvm show: {path}: warning: {first_line(w.strip()) if w.strip() else w}", err=True)
    return dt


def _use_color(color: bool | None) -> bool:
    if color is not None:
        return color
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def option_defaults(guest: DeviceTree) -> dict[str, str] | None:
    """The machine option defaults of the description's machine type, from dtvm's machine schema
    for it (None for a type dtvm has no schema of: then every option is listed)."""
    from dtvm.errors import DtvmError
    from dtvm.qemu.machine import find_machine
    from dtvm.qemu.schema import load_schema

    qnode = guest.root.get_child("qemu")
    try:
        machine = qnode["machine"].as_string() if qnode is not None and qnode.get_property("machine") else None
        arch = qnode["arch"].as_string() if qnode is not None and qnode.get_property("arch") else None
        if machine is None:
            return None
        info = find_machine(machine, f"qemu-system-{arch}" if arch else None)
        if info.type != machine:
            return None  # an alias or another binary's type: its defaults are not this VM's
        try:
            options = load_schema(info).defaults.get("options") or {}
        except DtvmError:  # a type only a newer QEMU has (pc-q35-10.0): its version's schema
            from dtvm.fileio import load_yaml
            from dtvm.qemu.schemafiles import schema_text

            text = schema_text(f"{info.arch}-{info.type}.yaml")
            data = load_yaml(text) if text is not None else None
            options = (data.get("defaults") or {}).get("options") or {} if isinstance(data, dict) else {}
            if text is None:
                return None
    except (DtvmError, ValueError, UnicodeDecodeError, AttributeError):
        return None
    return {str(k): str(v) for k, v in options.items()}


def echo_description(
    guest: DeviceTree, backend: DeviceTree | None = None, fmt: str = "text", color: bool | None = None,
    paths: bool = False,
) -> None:
    """Print a description to stdout as ``dtvm show`` does (text for the terminal, or dot).

    A closed pipe (``dtvm show vm.dtb | head``) ends quietly with status 141, like the fdt tools.
    """
    from dtvm.vm.show import render_dot, render_text

    defaults = option_defaults(guest)
    if fmt == "dot":
        data = render_dot(guest, backend, option_defaults=defaults).encode("utf-8")
    else:
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        data = render_text(guest, backend, color=_use_color(color), encoding=encoding, paths=paths,
                           option_defaults=defaults).encode(encoding, "backslashreplace")
    try:
        out = getattr(sys.stdout, "buffer", None)
        if out is not None:
            sys.stdout.flush()
            out.write(data)
            out.flush()
        else:  # a text-only stream (tests capturing output)
            sys.stdout.write(data.decode("utf-8" if fmt == "dot" else encoding, "replace"))
            sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)


@click.command("show")
@click.option(
    "-b", "--backend", "backend_file", metavar="BACKEND.dtbo", help="The back-end overlay (qemu2dtb -b)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "dot"]),
    default="text",
    show_default=True,
    help="A tree for the terminal, or a Graphviz digraph.",
)
@click.option(
    "--color/--no-color",
    default=None,
    help="Colour the text view (default: when stdout is a terminal and NO_COLOR is unset).",
)
@click.option("--paths", is_flag=True, help="End each device line with its node path (for dtvm backend, check).")
@click.argument("file", metavar="FILE.dtb")
def show_cmd(backend_file: str | None, fmt: str, color: bool | None, paths: bool, file: str) -> None:
    """Print a VM description (guest DTB, optional back-end overlay) as a device tree or a graph."""
    try:
        guest = read_blob(file)
        backend = read_blob(backend_file) if backend_file is not None else None
    except ShowError as exc:
        click.echo(f"dtvm show: {exc}", err=True)
        sys.exit(1)
    echo_description(guest, backend, fmt, color, paths)
