"""``dtvm qemu2dtb`` and ``dtvm machine``: QEMU's device model in, a precise description out.

Errors are one line and a nonzero exit; an output file is written only when the whole
description was made (temporary file, then rename).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from dtvm.cli.output import interrupted_status

__all__ = ["machine_group", "qemu2dtb_cmd"]

DEFAULT_ARGV = ["qemu-system-aarch64", "-M", "virt"]


def _no_such_option(given: str, command: click.Command) -> str:
    """``no such option --ofline (did you mean --offline?)``: QEMU's arguments follow ``--``."""
    import difflib

    names = [n for p in command.params for n in getattr(p, "opts", []) if n.startswith("--")]
    close = difflib.get_close_matches(given.split("=", 1)[0], names, n=1)
    hint = f" (did you mean {close[0]}?)" if close else " (QEMU's own arguments go after --)"
    return f"no such option {given}{hint}"


def _fail(command: str, message: str, code: int = 1) -> None:
    click.echo(f"dtvm {command}: {message}", err=True)
    sys.exit(code)


@click.command("qemu2dtb", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-o", "--output", "output", metavar="OUT.dtb", help="write the guest tree here (DTB)")
@click.option("-b", "--backend", "backend", metavar="OUT.backend.dtbo",
              help="write the back-end overlay here (default with -o: OUT.backend.dtbo next to OUT.dtb)")
@click.option("--qmp", "qmp", metavar="unix:PATH", help="read a running VM through its QMP socket (it keeps running)")
@click.option("--format", "fmt", type=click.Choice(["text", "dot", "dts"]), default="text",
              help="without -o: how to print the description")
@click.option("--timeout", type=float, default=20.0, show_default=True, help="seconds for the whole read")
@click.option("--offline", is_flag=True, help="do not run QEMU: build the device model from dtvm's machine models")
@click.argument("qemu_argv", nargs=-1, type=click.UNPROCESSED)
def qemu2dtb_cmd(output: str | None, backend: str | None, qmp: str | None, fmt: str, timeout: float, offline: bool,
                 qemu_argv: tuple[str, ...]) -> None:
    """Describe a QEMU VM: its guest-visible hardware as a DTB, its host back-ends as an overlay.

    \b
    dtvm qemu2dtb [-o OUT.dtb] [-b OUT.backend.dtbo] -- qemu-system-ARCH ARGS...
    dtvm qemu2dtb [-o OUT.dtb] [-b OUT.backend.dtbo] --qmp unix:PATH
    With no QEMU command line, describes `qemu-system-aarch64 -M virt`.
    """
    from dtvm.dt.dtb import write_dtb
    from dtvm.errors import DtvmError
    from dtvm.fileio import write_atomic, write_pair

    argv = list(qemu_argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    elif argv and argv[0].startswith("-"):
        # not a QEMU binary: a mistyped option of ours (click passes unknown ones through here)
        _fail("qemu2dtb", _no_such_option(argv[0], qemu2dtb_cmd), 2)
    try:
        from dtvm.qemu import live
        from dtvm.qemu.describe import describe_snapshot
        from dtvm.vm.translate import driver_compat

        if offline:
            if qmp is not None:
                _fail("qemu2dtb", "--offline reads a command line, not a running VM", 2)
            from dtvm.qemu.offline import offline_config
            from dtvm.vm.translate import describe, driver_compat

            desc = describe(offline_config(argv or DEFAULT_ARGV), driver_compat())
            snapshot = None
        elif qmp is not None:
            if argv:
                _fail("qemu2dtb", "give either --qmp or a QEMU command line, not both", 2)
            snapshot = live.read_socket(qmp, timeout=timeout)
            compat = driver_compat()
        else:
            # load the bindings while QEMU starts: the two costs overlap
            with live.start_argv(argv or DEFAULT_ARGV, timeout=timeout) as proc:
                compat = driver_compat()
                snapshot = proc.read()
        if snapshot is not None:
            desc = describe_snapshot(snapshot, compat)
        if output is None and backend is None:
            if fmt == "dts":
                from dtvm.dt.dts.write import write_dts

                click.echo(write_dts(desc.guest), nl=False)
            else:
                from dtvm.vm.show import render_dot, render_text

                text = render_dot(desc.guest, desc.backend) if fmt == "dot" else render_text(desc.guest, desc.backend)
                click.echo(text, nl=not text.endswith("\n"))
            return
        guest_blob = write_dtb(desc.guest)
        backend_blob = write_dtb(desc.backend)
        if output is not None and backend is None:
            stem = output[:-4] if output.endswith(".dtb") else output
            backend = stem + ".backend.dtbo"
        if output is not None and backend is not None:
            write_pair((output, guest_blob), (backend, backend_blob))  # both or neither
        elif output is not None:
            write_atomic(output, guest_blob)
        elif backend is not None:
            write_atomic(backend, backend_blob)
    except DtvmError as exc:
        _fail("qemu2dtb", str(exc).splitlines()[0] if str(exc) else type(exc).__name__, getattr(exc, "exit_code", 1) or 1)
    except KeyboardInterrupt as exc:
        _fail("qemu2dtb", "interrupted", interrupted_status(exc))
    except OSError as exc:
        _fail("qemu2dtb", f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), 1)


@click.group("machine")
def machine_group() -> None:
    """The machine types dtvm describes, and what each creates by itself."""


@machine_group.command("list")
def machine_list() -> None:
    """Supported machine types, with their QEMU binary and whether it is installed here."""
    from dtvm.qemu.machine import load_machines

    for m in load_machines():
        state = "installed" if m.installed() else f"not installed (Debian package {m.package})"
        click.echo(f"{m.type:<16} {m.arch:<8} alias {m.alias:<8} {m.binary:<22} {'DT' if m.dt else 'no DT':<6} {state}")


@machine_group.command("show", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--online", is_flag=True, help="ask the installed QEMU instead of the checked-in schema")
@click.argument("machine_type")
@click.argument("qemu_argv", nargs=-1, type=click.UNPROCESSED)
def machine_show(online: bool, machine_type: str, qemu_argv: tuple[str, ...]) -> None:
    """What MACHINE_TYPE creates by itself, adds by default, and which option removes each.

    \b
    dtvm machine show TYPE                       from the schema in dtvm/qemu/machines (no QEMU needed)
    dtvm machine show [--online] TYPE [-- qemu-system-ARCH ARGS...]   asks QEMU itself
    The extra QEMU arguments (after the binary) are added to every probe run.
    """
    from dtvm.errors import DtvmError
    from dtvm.qemu.machine import explain, find_machine, render_report
    from dtvm.qemu.schema import load_schema, schema_name

    argv = list(qemu_argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    binary = argv[0] if argv else None
    try:
        machine = find_machine(machine_type, binary)
        if not online and not argv:
            report = load_schema(machine)
            source = f"from dtvm/qemu/machines/{schema_name(machine)} (generated from QEMU {report.qemu_version})"
            click.echo(render_report(report, source), nl=False)
            return
        report = explain(machine, argv[1:], binary=binary)
    except DtvmError as exc:
        _fail("machine show", str(exc).splitlines()[0], 2)
    except KeyboardInterrupt as exc:
        _fail("machine show", "interrupted", interrupted_status(exc))
    click.echo(render_report(report), nl=False)


@click.command("dtb2qemu")
@click.argument("guest", metavar="IN.dtb")
@click.option("-b", "--backend", "backend", metavar="IN.backend.dtbo",
              help="this host's back-end overlay (disk images, netdevs, chardevs, kernel): never picked up unasked")
@click.option("--format", "fmt", type=click.Choice(["json", "shell", "lines"]), default="json", show_default=True)
@click.option("--binary", metavar="PATH", help="the QEMU binary (default: qemu-system-ARCH for the description's arch)")
@click.option("--timeout", type=float, default=20.0, show_default=True, help="seconds for each probe of the machine")
@click.option("--no-check", "no_check", is_flag=True,
              help="do not start the result once (as a migration destination, on null back-ends) to let QEMU judge it")
@click.option("--offline", is_flag=True,
              help="run no QEMU: what the machine makes by itself comes from dtvm's machine models (implies --no-check)")
def dtb2qemu_cmd(guest: str, backend: str | None, fmt: str, binary: str | None, timeout: float, no_check: bool,
                 offline: bool) -> None:
    """Rebuild the described VM: a precise QEMU command line (-nodefaults, every device explicit).

    The guest tree is data: it may state only device types and properties QEMU's catalog has and
    the host does not keep for itself (README "Security"). Host paths come only from the overlay
    given with -b; what the result makes QEMU open is listed on stderr. The machine type is probed
    with the same QEMU (started paused, read, killed) to learn which devices it makes by itself.
    The output never contains -qmp, -monitor, -S, -incoming or -daemonize.
    """
    from dtvm.dt.dtb import read_dtb
    from dtvm.errors import DtvmError
    from dtvm.fileio import read_blob
    from dtvm.qemu.argv import build_argv
    from dtvm.qemu.opts import format_argv
    from dtvm.vm.readback import read_config

    try:
        gtree = read_dtb(read_blob(guest), guest)
        btree = None
        if backend is not None:
            btree = read_dtb(read_blob(backend), backend)
        plan = read_config(gtree, btree)

        def read(argv: list[str]) -> Any:
            from dtvm.qemu.live import read_argv

            return read_argv(argv, timeout=timeout)

        def verify(argv: list[str]) -> Any:
            from dtvm.qemu.live import read_argv

            # as a migration destination starts: no image lock, so the source may run and hold them
            return read_argv(argv, timeout=timeout, incoming=True)

        if offline:
            from dtvm.qemu.offline import offline_prober

            rebuild = build_argv(plan, binary=binary, prober=offline_prober, check=False)
        else:
            rebuild = build_argv(plan, binary=binary, read=read, check=not no_check, verify=verify)
        text = format_argv(rebuild.argv, fmt)
    except DtvmError as exc:
        _fail("dtb2qemu", str(exc).splitlines()[0], getattr(exc, "exit_code", 1) or 1)
    except OSError as exc:
        _fail("dtb2qemu", f"{exc.filename or guest}: {exc.strerror or exc}", 2)
    except KeyboardInterrupt as exc:
        _fail("dtb2qemu", "interrupted", interrupted_status(exc))
    if backend is None:
        click.echo("dtvm dtb2qemu: no back-end overlay (-b): no disk images, host netdevs or chardevs", err=True)
    for item in rebuild.host:
        click.echo(f"dtvm dtb2qemu: QEMU will open {item}", err=True)
    click.echo(text, nl=not text.endswith("\n"))


@click.command("backend")
@click.argument("guest", metavar="GUEST.dtb")
@click.option("-o", "--output", "output", required=True, metavar="OUT.backend.dtbo", help="the overlay to write")
@click.option("--drive", "drives", multiple=True, metavar="/NODE=FILE[,format=F][,readonly]",
              help="the image behind a disk (the device's node path in the guest tree)")
@click.option("--netdev", "netdevs", multiple=True, metavar="/NODE=user", help="what a NIC connects to")
@click.option("--chardev", "chardevs", multiple=True, metavar="/NODE=null|socket:PATH", help="a serial port's back-end")
def backend_cmd(guest: str, output: str, drives: tuple[str, ...], netdevs: tuple[str, ...], chardevs: tuple[str, ...]) -> None:
    """Write this host's back-end overlay for a guest DTB (for dtb2qemu -b).

    The guest tree stays what it is; only disk images, netdevs and chardevs are this host's.
    """
    from dtvm.dt.dtb import read_dtb, write_dtb
    from dtvm.errors import DtvmError
    from dtvm.fileio import read_blob, write_atomic
    from dtvm.vm.backend import make_overlay, parse_spec

    try:
        tree = read_dtb(read_blob(guest), guest)
        specs = [parse_spec("drive", d) for d in drives] + [parse_spec("netdev", n) for n in netdevs] + \
            [parse_spec("chardev", c) for c in chardevs]
        write_atomic(output, write_dtb(make_overlay(tree, specs)))
    except DtvmError as exc:
        _fail("backend", str(exc).splitlines()[0], getattr(exc, "exit_code", 1) or 1)
    except OSError as exc:
        _fail("backend", f"{exc.filename or guest}: {exc.strerror or exc}", 2)
