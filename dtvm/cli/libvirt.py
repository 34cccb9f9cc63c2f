"""``dtvm libvirt2dtb``, ``dtvm dtb2libvirt`` and ``qemu2dtb --libvirt``: libvirt domains and descriptions.

The work is in ``dtvm.libvirt``; this module turns options into calls and failures into one line
and a nonzero exit.  Outputs are written only when the whole result was made (both files or
neither).  Without the optional binding (``pip install 'dtvm[libvirt]'``) every command says so in
one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from dtvm.cli.output import interrupted_status

__all__ = ["describe_libvirt_domain", "dtb2libvirt_cmd", "hotplug_libvirt", "libvirt2dtb_cmd", "watch_libvirt"]

T = TypeVar("T")

#: The largest domain XML file read (libvirt itself refuses documents over 10 MB).
MAX_XML_FILE = 10 << 20


def _fail(command: str, message: str, code: int = 1) -> NoReturn:
    click.echo(f"dtvm {command}: {message}", err=True)
    sys.exit(code)


def _guarded(command: str, call: Callable[[], T]) -> T:
    """Run ``call``; every failure a user can cause is one line and a nonzero exit."""
    from dtvm.errors import DtvmError

    try:
        return call()
    except DtvmError as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _fail(command, text, getattr(exc, "exit_code", 1) or 1)
    except KeyboardInterrupt as exc:
        _fail(command, "interrupted", interrupted_status(exc))
    except OSError as exc:
        _fail(command, f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), 1)


def describe_libvirt_domain(name: str, uri: str | None, timeout: float) -> Any:
    """The description of the running libvirt domain ``name`` (``qemu2dtb --libvirt``)."""
    from dtvm.libvirt.connect import lookup, open_connection
    from dtvm.libvirt.describe import describe_domain

    with open_connection(uri) as conn:
        return describe_domain(lookup(conn, name), timeout=timeout)


def hotplug_libvirt(action: str, name: str, uri: str | None, what: str, outputs: Any, timeout: float,
                    wait: float) -> list[str]:
    """``dtvm hotplug --libvirt DOMAIN add|del``: prints what was done, returns the files written."""
    from dtvm.libvirt.connect import lookup, open_connection
    from dtvm.libvirt.hotplug import attach, detach

    with open_connection(uri) as conn:
        domain = lookup(conn, name)
        if action == "add":
            added = attach(domain, what, outputs, timeout=timeout)
            click.echo(f"added {added.id} ({added.driver}) at {added.key} through libvirt")
            return added.written
        deleted = detach(domain, what, outputs, timeout=timeout, wait=wait)
        click.echo(f"{deleted.state}: {deleted.id}" + (" (QEMU waits for the guest to release it)"
                                                        if deleted.state == "pending" else ""))
        return deleted.written


def watch_libvirt(name: str, uri: str | None, outputs: Any, interval: float, timeout: float,
                  run: Callable[[Callable[[], str]], str]) -> None:
    """``dtvm hotplug --libvirt DOMAIN -o vm.dtb watch``: until the domain stops or Ctrl-C."""
    from dtvm.libvirt.watch import WatchEvent, watch_domain

    def report(r: WatchEvent) -> None:
        for event in r.events:
            click.echo(f"libvirt: {event}")
        if r.written:
            click.echo("wrote " + ", ".join(r.written))
        elif r.first:
            click.echo("up to date: " + ", ".join(p for p in (outputs.guest, outputs.backend) if p))

    click.echo(f"watching libvirt domain {name} (Ctrl-C to stop)", err=True)
    try:
        why = run(lambda: watch_domain(name, uri, outputs, interval=interval, timeout=timeout, report=report))
    except KeyboardInterrupt:
        why = "interrupted"
    click.echo(f"stopped watching: {why}", err=True)


def write_description(desc: Any, output: str, backend: str | None) -> None:
    """``OUT.dtb`` and its overlay (default ``OUT.backend.dtbo``), both or neither."""
    from dtvm.dt.dtb import write_dtb
    from dtvm.fileio import write_pair

    if backend is None:
        stem = output[:-4] if output.endswith(".dtb") else output
        backend = stem + ".backend.dtbo"
    write_pair((output, write_dtb(desc.guest)), (backend, write_dtb(desc.backend)))


@click.command("libvirt2dtb")
@click.argument("xml_file", metavar="DOMAIN.xml")
@click.option("--connect", "uri", metavar="URI", help="libvirt connection URI (default: $LIBVIRT_DEFAULT_URI or qemu:///system)")
@click.option("-o", "--output", "output", required=True, metavar="OUT.dtb", help="write the guest tree here (DTB)")
@click.option("-b", "--backend", "backend", metavar="OUT.backend.dtbo",
              help="write the back-end overlay here (default: OUT.backend.dtbo next to OUT.dtb)")
@click.option("--timeout", type=float, default=20.0, show_default=True, help="seconds for reading the started domain")
def libvirt2dtb_cmd(xml_file: str, uri: str | None, output: str, backend: str | None, timeout: float) -> None:
    """Loose domain XML to a precise description: libvirt starts it (transient, paused), dtvm reads
    what libvirt and QEMU built, the domain is destroyed. Nothing is left defined or running."""

    def run() -> None:
        from dtvm.fileio import read_limited
        from dtvm.libvirt.connect import binding, open_connection
        from dtvm.libvirt.transient import describe_xml

        binding()  # say how to get the binding before reading anything
        raw = read_limited(xml_file, MAX_XML_FILE)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            _fail("libvirt2dtb", f"{xml_file}: not UTF-8 (byte {exc.start})", 2)
        with open_connection(uri) as conn:
            desc = describe_xml(conn, text, xml_file, timeout=timeout)
        write_description(desc, output, backend)

    _guarded("libvirt2dtb", run)


@click.command("dtb2libvirt")
@click.argument("guest", metavar="IN.dtb")
@click.option("-b", "--backend", "backend", metavar="IN.backend.dtbo",
              help="this host's back-end overlay (disk images, interface and chardev sources): never picked up unasked")
@click.option("--name", "name", required=True, metavar="NAME", help="the domain's name")
@click.option("-o", "--output", "output", metavar="OUT.xml", help="write the domain XML here (default: standard output)")
@click.option("--connect", "uri", metavar="URI", help="libvirt connection URI for the check")
@click.option("--no-check", "no_check", is_flag=True,
              help="do not let libvirt start the result (transient, paused, on stand-in disks) to compare what it builds")
@click.option("--new-uuid", "new_uuid", is_flag=True,
              help="leave out the overlay's domain UUID (a copy beside the original on one host); kept by "
                   "default: the same domain, e.g. a migration's destination XML")
@click.option("--timeout", type=float, default=20.0, show_default=True, help="seconds for reading the check domain")
def dtb2libvirt_cmd(guest: str, backend: str | None, name: str, output: str | None, uri: str | None,
                    no_check: bool, new_uuid: bool, timeout: float) -> None:
    """Precise description to libvirt domain XML, every controller indexed and every address pinned.

    By default libvirt starts the XML once (transient, paused, under a private name, with sparse
    stand-ins of the same size for the disk images, destroyed at once) and dtvm describes it: the
    guest tree must come out byte for byte as IN.dtb, else nothing is written.
    """

    def run() -> None:
        from dtvm.dt.dtb import read_dtb
        from dtvm.fileio import read_blob, write_atomic
        from dtvm.libvirt.domxml import build_domain_xml, host_facts
        from dtvm.vm.readback import read_config

        gtree = read_dtb(read_blob(guest), guest)
        btree = read_dtb(read_blob(backend), backend) if backend is not None else None
        xml = build_domain_xml(read_config(gtree, btree), name, host_facts(btree), gtree, keep_uuid=not new_uuid)
        if not no_check:
            from dtvm.dt.dtb import write_dtb
            from dtvm.libvirt.check import check_domain_xml
            from dtvm.libvirt.connect import open_connection

            with open_connection(uri) as conn:
                check_domain_xml(conn, xml, write_dtb(gtree), f"domain {name!r}", timeout=timeout)
        if output is None:
            click.echo(xml, nl=False)
        else:
            write_atomic(output, xml.encode())

    _guarded("dtb2libvirt", run)
