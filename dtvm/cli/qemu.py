"""``dtvm qemu2dtb`` and ``dtvm machine``: QEMU's device model in, a precise description out.

Errors are one line and a nonzero exit; an output file is written only when the whole
description was made (temporary file, then rename).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from dtvm.cli.output import interrupted_status
from dtvm.cli.qemu2dtb import offline_version
from dtvm.cli.suggest import SuggestingGroup
from dtvm.errors import first_line

__all__ = ["machine_group", "qemu2dtb_cmd"]

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
@click.option("--libvirt", "libvirt_domain", metavar="DOMAIN", help="read a running libvirt domain through libvirt's API")
@click.option("--connect", "connect", metavar="URI", help="with --libvirt: libvirt's connection URI")
@click.option("--format", "fmt", type=click.Choice(["text", "dot", "dts"]), default="text",
              help="without -o: how to print the description")
@click.option("--timeout", type=float, default=20.0, show_default=True, help="seconds for the whole read")
@click.option("--offline", is_flag=True, help="do not run QEMU: build the device model from dtvm's machine models")
@click.option("--qemu-version", "qemu_version", metavar="X.Y",
              help="with --offline: the models of this QEMU version (default: the binary's, given by path; else 7.2)")
@click.option("--binary", "binary", metavar="PATH",
              help="with --qmp: the VM's QEMU binary, where a read must start one of its version (pseries with "
                   "hot-plugged devices; default: qemu-system-ARCH on PATH)")
@click.argument("qemu_argv", nargs=-1, type=click.UNPROCESSED)
def qemu2dtb_cmd(output: str | None, backend: str | None, qmp: str | None, libvirt_domain: str | None,
                 connect: str | None, fmt: str, timeout: float, offline: bool, qemu_version: str | None,
                 binary: str | None, qemu_argv: tuple[str, ...]) -> None:
    """Describe a QEMU VM: its guest-visible hardware as a DTB, its host back-ends as an overlay.

    \b
    dtvm qemu2dtb [-o OUT.dtb] [-b OUT.backend.dtbo] -- qemu-system-ARCH ARGS...
    dtvm qemu2dtb [-o OUT.dtb] [-b OUT.backend.dtbo] --qmp unix:PATH
    dtvm qemu2dtb [-o OUT.dtb] [-b OUT.backend.dtbo] --libvirt DOMAIN [--connect URI]
    With no QEMU command line, describes `qemu-system-aarch64 -M virt`.
    """
    from dtvm.cli.qemu2dtb import describe_vm

    argv = list(qemu_argv)
    if argv and argv[0] != "--" and argv[0].startswith("-"):
        # not a QEMU binary: a mistyped option of ours (click passes unknown ones through here)
        _fail("qemu2dtb", _no_such_option(argv[0], qemu2dtb_cmd), 2)
    describe_vm(output, backend, qmp, libvirt_domain, connect, fmt, timeout, offline, qemu_version, binary, argv,
                click.echo)


@click.group("machine", cls=SuggestingGroup)
def machine_group() -> None:
    """The machine types dtvm describes, and what each creates by itself."""


@machine_group.command("list")
def machine_list() -> None:
    """Supported machine types, with their QEMU binary and whether it is installed here."""
    from dtvm.qemu.machine import load_machines

    for m in load_machines():
        state = "installed" if m.installed() else f"not installed (Debian package {m.package})"
        click.echo(f"{m.type:<16} {m.arch:<8} alias {m.alias:<8} {m.binary:<22} {'DT' if m.dt else 'no DT':<6} {state}")


@machine_group.command("show", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True})
@click.option("--online", is_flag=True, help="ask the installed QEMU instead of the checked-in schema")
@click.option("--binary", metavar="PATH", help="the QEMU whose version to answer for (its schema, else QEMU itself)")
@click.argument("machine_type")
@click.argument("qemu_argv", nargs=-1, type=click.UNPROCESSED)
def machine_show(online: bool, binary: str | None, machine_type: str, qemu_argv: tuple[str, ...]) -> None:
    """What MACHINE_TYPE creates by itself, adds by default, and which option removes each.

    \b
    dtvm machine show TYPE                       from the schema in dtvm/qemu/machines (no QEMU needed)
    dtvm machine show TYPE --binary PATH         as that QEMU's version builds it (its schema, else asked)
    dtvm machine show [--online] TYPE [-- qemu-system-ARCH ARGS...]   asks QEMU itself
    The extra QEMU arguments (after the binary) are added to every probe run.
    """
    from dtvm.errors import DtvmError
    from dtvm.qemu.machine import explain, render_report

    argv = list(qemu_argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if binary is not None and argv:
        _fail("machine show", "give either --binary or a QEMU command line after --, not both", 2)
    try:
        if argv:
            binary = argv[0]
        report, source = _machine_report(machine_type, binary, online or bool(argv[1:]), argv[1:])
        if source is None:
            report = explain(report.machine, argv[1:], binary=binary)
    except DtvmError as exc:
        _fail("machine show", first_line(exc), 2)
    except KeyboardInterrupt as exc:
        _fail("machine show", "interrupted", interrupted_status(exc))
    if source is None:
        source = f"asked QEMU {report.qemu_version or '?'}: " + " ".join(report.argv)
    click.echo(render_report(report, source), nl=False)


def _machine_report(machine_type: str, binary: str | None, online: bool, extra: list[str]) -> tuple[Any, str | None]:
    """The report of a type as ``binary``'s QEMU version builds it: the checked-in schema of that
    version (with its source line), else (None source) the machine for an online ``explain``."""
    from dtvm.errors import DtvmError
    from dtvm.qemu.machine import explain, find_machine
    from dtvm.qemu.schema import SchemaError, load_schema, schema_name

    machine = find_machine(machine_type, binary)
    version = None
    if binary is not None:
        import re

        from dtvm.qemu.live import binary_version
        from dtvm.qemu.versions import versions

        found = binary_version(binary)
        if found is None:
            raise DtvmError(f"{binary}: does not answer --version as QEMU does")
        version = f"{found[0]}.{found[1]}"
        own = [str(t).split("@", 1)[0] for t in versions().known.get(version, {}).get("machines", [])]
        newest = re.sub(r"-\d+\.\d+$", f"-{version}", machine.type)
        if machine_type == machine.alias != machine.type and newest in own:
            machine = find_machine(newest, binary)  # an alias names that QEMU's newest type (q35: pc-q35-10.0)
    if not online:
        try:
            report = load_schema(machine, version)
            name = schema_name(machine, version)
            return report, f"from dtvm/qemu/machines/{name} (generated from QEMU {report.qemu_version})"
        except SchemaError:
            if binary is None:
                raise
    if extra:
        return explain(machine, extra, binary=binary), None
    return explain(machine, binary=binary), f"asked QEMU {version or ''} ({binary or machine.binary})"


@machine_group.command("diff")
@click.argument("type_a")
@click.argument("type_b")
@click.option("--binary", metavar="PATH", help="the QEMU of TYPE_A (and of TYPE_B unless --binary-b)")
@click.option("--binary-b", "binary_b", metavar="PATH", help="the QEMU of TYPE_B")
@click.option("--online", is_flag=True, help="ask QEMU even where a checked-in schema answers")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def machine_diff(type_a: str, type_b: str, binary: str | None, binary_b: str | None, online: bool, fmt: str) -> None:
    """What differs between two machine types (devices, properties, defaults, compat properties).

    \b
    dtvm machine diff pc-q35-7.2 pc-q35-10.0 --binary /path/to/10.0/qemu-system-x86_64
    dtvm machine diff pc-q35-7.2 pc-q35-7.2 --binary qemu-system-x86_64 --binary-b /path/to/10.0/qemu-system-x86_64
    Exit 0: the same machine for the guest; 1: different; 2: unusable input.
    """
    import json

    from dtvm.errors import DtvmError
    from dtvm.qemu.machine_diff import diff_reports, render_diff

    try:
        report_a, _ = _machine_report(type_a, binary, online, [])
        second = binary_b or binary
        report_b, _ = _machine_report(type_b, second, online, [])
        if report_a.machine.arch != report_b.machine.arch:
            raise DtvmError(f"{type_a} is {report_a.machine.arch}, {type_b} is {report_b.machine.arch}: "
                            "machines of one architecture only")
        diff = diff_reports(report_a, report_b, binary or report_a.machine.binary, second or report_b.machine.binary)
    except DtvmError as exc:
        _fail("machine diff", first_line(exc), 2)
    except KeyboardInterrupt as exc:
        _fail("machine diff", "interrupted", interrupted_status(exc))
    text = json.dumps(diff, indent=1) + "\n" if fmt == "json" else render_diff(diff)
    click.echo(text, nl=False)
    sys.exit(0 if diff["same"] else 1)


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
@click.option("--qemu-version", "qemu_version", metavar="X.Y",
              help="with --offline: the models of this QEMU version (default: --binary's, given by path; else 7.2)")
def dtb2qemu_cmd(guest: str, backend: str | None, fmt: str, binary: str | None, timeout: float, no_check: bool,
                 offline: bool, qemu_version: str | None) -> None:
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

    if qemu_version is not None and not offline:
        _fail("dtb2qemu", "--qemu-version goes with --offline (online, --binary answers for itself)", 2)
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
            from dtvm.qemu.models import use_version
            from dtvm.qemu.offline import offline_prober

            with use_version(offline_version(binary, qemu_version)):
                rebuild = build_argv(plan, binary=binary, prober=offline_prober, check=False)
        else:
            from dtvm.qemu.live import binary_version

            rebuild = build_argv(plan, binary=binary, read=read, check=not no_check, verify=verify,
                                 target_version=binary_version)
        text = format_argv(rebuild.argv, fmt)
    except DtvmError as exc:
        _fail("dtb2qemu", first_line(exc), getattr(exc, "exit_code", 1) or 1)
    except OSError as exc:
        _fail("dtb2qemu", f"{exc.filename or guest}: {exc.strerror or exc}", 2)
    except KeyboardInterrupt as exc:
        _fail("dtb2qemu", "interrupted", interrupted_status(exc))
    if backend is None:
        click.echo("dtvm dtb2qemu: no back-end overlay (-b): no disk images, host netdevs or chardevs", err=True)
    for item in rebuild.host:
        click.echo(f"dtvm dtb2qemu: QEMU will open {item}", err=True)
    for dev in plan.devices():
        if dev.unplug_pending:
            click.echo(f"dtvm dtb2qemu: {dev.node}: an unplug was pending in the described VM: the rebuild "
                       f"has the device (the source keeps it until its guest releases it)", err=True)
    for note in rebuild.notes:
        click.echo(f"dtvm dtb2qemu: {note}", err=True)
    click.echo(text, nl=not text.endswith("\n"))


@click.command("backend")
@click.argument("guest", metavar="GUEST.dtb")
@click.option("-o", "--output", "output", required=True, metavar="OUT.backend.dtbo", help="the overlay to write")
@click.option("--drive", "drives", multiple=True, metavar="/NODE=FILE[,format=F][,readonly]",
              help="the image behind a disk (the device's node path in the guest tree)")
@click.option("--netdev", "netdevs", multiple=True, metavar="/NODE=user", help="what a NIC connects to")
@click.option("--chardev", "chardevs", multiple=True, metavar="/NODE=null|socket:PATH", help="a serial port's back-end")
@click.option("--fsdev", "fsdevs", multiple=True, metavar="/NODE=DIR[,security_model=M][,readonly]",
              help="the host directory a 9p device exports (-fsdev local; security_model none unless given)")
def backend_cmd(guest: str, output: str, drives: tuple[str, ...], netdevs: tuple[str, ...], chardevs: tuple[str, ...],
                fsdevs: tuple[str, ...]) -> None:
    """Write this host's back-end overlay for a guest DTB (for dtb2qemu -b).

    The guest tree stays what it is; only disk images, netdevs, chardevs and exported
    directories are this host's.
    """
    from dtvm.dt.dtb import read_dtb, write_dtb
    from dtvm.errors import DtvmError
    from dtvm.fileio import read_blob, write_atomic
    from dtvm.vm.backend import make_overlay, parse_spec

    try:
        tree = read_dtb(read_blob(guest), guest)
        specs = [parse_spec("drive", d) for d in drives] + [parse_spec("netdev", n) for n in netdevs] + \
            [parse_spec("chardev", c) for c in chardevs] + [parse_spec("fsdev", f) for f in fsdevs]
        write_atomic(output, write_dtb(make_overlay(tree, specs)))
    except DtvmError as exc:
        _fail("backend", first_line(exc), getattr(exc, "exit_code", 1) or 1)
    except OSError as exc:
        _fail("backend", f"{exc.filename or guest}: {exc.strerror or exc}", 2)
