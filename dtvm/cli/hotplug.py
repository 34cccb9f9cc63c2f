"""``dtvm hotplug``: add and remove devices of a running VM and keep its description current.

The work is in ``dtvm.qemu.hotplug``; this module turns options into calls and results into
lines.  Errors are one line on stderr and a nonzero exit, and no file is changed by a failed run
(the description is written only after QEMU did what was asked, each file atomically).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from dtvm.cli.output import interrupted_status
from dtvm.cli.suggest import SuggestingGroup

__all__ = ["hotplug_group"]


@dataclass
class _Common:
    given_qmp: str | None
    output: str | None
    backend: str | None
    timeout: float

    @property
    def qmp(self) -> str:
        """The socket; checked here, not by the group, so that ``hotplug add --help`` works alone."""
        if self.given_qmp is None:
            _fail("--qmp unix:PATH is required (the running VM's QMP socket)", 2)
        return self.given_qmp

    def outputs(self) -> Any:
        from dtvm.qemu.hotplug import Outputs

        return Outputs.from_options(self.output, self.backend)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"dtvm hotplug: {message}", err=True)
    sys.exit(code)


def _first_line(exc: BaseException) -> str:
    from dtvm.errors import first_line

    return first_line(exc)


def _run(call: Any) -> Any:
    """Run one hot-plug call; every failure a user can cause becomes one line and exit status 1."""
    from dtvm.errors import DtvmError

    try:
        return call()
    except DtvmError as exc:
        _fail(_first_line(exc), getattr(exc, "exit_code", 1) or 1)
    except OSError as exc:
        _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
    except KeyboardInterrupt as exc:
        _fail("interrupted", interrupted_status(exc))


def _wrote(paths: list[str]) -> None:
    if paths:
        click.echo("wrote " + ", ".join(paths))


@click.group("hotplug", cls=SuggestingGroup)
@click.option("--qmp", "qmp", metavar="unix:PATH", help="the running VM's QMP socket (required)")
@click.option("-o", "--output", "output", metavar="OUT.dtb", help="keep this guest tree current (DTB)")
@click.option("-b", "--backend", "backend", metavar="OUT.backend.dtbo",
              help="keep this back-end overlay current (default with -o: OUT.backend.dtbo next to OUT.dtb)")
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="seconds for connecting and for each read or command")
@click.pass_context
def hotplug_group(ctx: click.Context, qmp: str | None, output: str | None, backend: str | None, timeout: float) -> None:
    """Add or remove a device of a running VM at an address dtvm assigns, and keep its description current.

    \b
    dtvm hotplug --qmp unix:PATH [-o vm.dtb [-b vm.backend.dtbo]] add DEVICE-OPTS
    dtvm hotplug --qmp unix:PATH [-o vm.dtb [-b vm.backend.dtbo]] del ID [--wait S]
    dtvm hotplug --qmp unix:PATH -o vm.dtb [-b vm.backend.dtbo] watch [--interval S]
    Without -o/-b only a summary is printed.
    """
    if not timeout > 0:
        _fail("--timeout must be a positive number of seconds", 2)
    ctx.obj = _Common(qmp, output, backend, timeout)


@hotplug_group.command("add", context_settings={"ignore_unknown_options": True})
@click.argument("device", metavar="DEVICE-OPTS")
@click.pass_obj
def add_cmd(common: _Common, device: str) -> None:
    """Hot-plug DEVICE-OPTS (-device syntax: virtio-net-pci,bus=rp1,id=n1,...).

    Without bus or address, dtvm assigns them as QEMU 7.2 would (PCI: lowest slot with function 0
    free on the given bus, or on the first PCI bus depth first, i.e. the root bus; USB: first free
    port; SCSI: lowest free scsi-id, lun 0; virtio-serial: lowest free port number, 0 for a
    virtconsole) and passes them to device_add explicitly; a given address is checked. Without
    id=, dtvm gives one (DRIVER followed by a number).
    """
    from dtvm.qemu.hotplug import add_device

    result = _run(lambda: add_device(common.qmp, device, common.outputs(), timeout=common.timeout))
    for warning in result.warnings:
        click.echo(f"dtvm hotplug: warning: {warning}", err=True)
    where = result.key + (f", node {result.node}" if result.node else "")
    click.echo(f"added {result.id} ({result.driver}) at {result.placement}: {where}")
    _wrote(result.written)


@hotplug_group.command("del")
@click.argument("ident", metavar="ID|/NODE")
@click.option("--wait", type=float, default=5.0, show_default=True,
              help="seconds to wait for QEMU to complete the unplug before reporting it pending")
@click.pass_obj
def del_cmd(common: _Common, ident: str, wait: float) -> None:
    """Unplug a device (device_del) and follow it: by qdev id, by the node path of its description
    (what ``show --paths`` prints and ``backend``/``check`` take), or by QOM path (/machine/...).

    If QEMU completes the unplug (DEVICE_DELETED) the description is rewritten without the device.
    If it stays pending (ACPI PCI hot-plug and pseries PCI wait for the guest to release the
    device) the device stays in the description, marked qemu,unplug-pending in the back-end overlay;
    asking again for a pending device reports it pending. Exit 0 either way; 1 if the guest refused.
    """
    from dtvm.qemu.hotplug import delete_device

    result = _run(lambda: delete_device(common.qmp, ident, common.outputs(), timeout=common.timeout, wait=wait))
    for warning in result.warnings:
        click.echo(f"dtvm hotplug: warning: {warning}", err=True)
    what = f"{result.id} ({result.driver} at {result.key})" if result.driver else result.id
    if result.state == "deleted":
        click.echo(f"deleted {what}")
    elif result.state == "pending":
        since = "already pending (asked before)" if result.already else f"pending after {wait:g} s"
        click.echo(f"unplug of {what} {since}: QEMU waits for the guest to release it; it stays in the "
                   f"description, marked {_pending_prop()}")
    else:
        _wrote(result.written)
        _fail(f"the guest refused to release {what}; it stays in the description")
    _wrote(result.written)


def _pending_prop() -> str:
    from dtvm.qemu.hotplug import PENDING_PROP

    return PENDING_PROP


@hotplug_group.command("watch")
@click.option("--interval", type=float, default=5.0, show_default=True,
              help="seconds between reads when no event comes (QEMU 7.2 has no DEVICE_ADDED event)")
@click.pass_obj
def watch_cmd(common: _Common, interval: float) -> None:
    """Keep the description current while the VM runs, until Ctrl-C or QEMU goes away.

    The VM is read at once, on every DEVICE_DELETED and every --interval seconds; the files are
    rewritten (atomically) only when the description changed. Other QMP clients need a monitor
    of their own: QEMU serves one client per QMP socket.
    """
    from dtvm.qemu.hotplug import WatchReport, watch

    outputs = common.outputs()
    if outputs.guest is None and outputs.backend is None:
        _fail("watch needs -o and/or -b: the files to keep current", 2)

    def report(r: WatchReport) -> None:
        for key in r.added:
            click.echo(f"appeared: {key}")
        for key in r.removed:
            click.echo(f"went away: {key}")
        _wrote(r.written)
        if r.first and not r.written:
            click.echo("up to date: " + ", ".join(p for p in (outputs.guest, outputs.backend) if p))

    def warn(text: str) -> None:
        click.echo(f"dtvm hotplug: warning: {text}", err=True)

    click.echo(f"watching {common.qmp} (Ctrl-C to stop)", err=True)
    try:
        why = _run_watch(lambda: watch(common.qmp, outputs, interval=interval, timeout=common.timeout,
                                       report=report, warn=warn))
    except KeyboardInterrupt:
        why = "interrupted"
    click.echo(f"stopped watching: {why}", err=True)


def _run_watch(call: Any) -> str:
    """Like _run, but Ctrl-C is the normal way to stop watching: it propagates to the caller."""
    from dtvm.errors import DtvmError

    try:
        return str(call())
    except DtvmError as exc:
        _fail(_first_line(exc), getattr(exc, "exit_code", 1) or 1)
    except OSError as exc:
        _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
