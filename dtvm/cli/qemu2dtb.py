"""``dtvm qemu2dtb``'s work, and its common command line read without click.

``dtvm qemu2dtb -o OUT.dtb [-b OUT.backend.dtbo] [--timeout S] [--] qemu-system-ARCH ARGS...`` is
what scripts run, one process per VM, and importing click is about a tenth of that process's own
CPU (its start-up, imports and work; QEMU's excluded).  That form is read here (:func:`fast_args`)
as click reads it (tests/test_qemu2dtb_args.py holds the two parsers to the same values); any other
(help, --qmp, --libvirt, --offline, printing without -o, a mistake to report) goes to the click
command in ``cli/qemu.py``, which calls the same :func:`describe_vm`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any

from dtvm.cli.output import interrupted_status
from dtvm.errors import first_line

__all__ = ["DEFAULT_ARGV", "ENDS_PROCESS", "describe_vm", "fast_args", "offline_version", "run_fast"]

DEFAULT_ARGV = ["qemu-system-aarch64", "-M", "virt"]

#: the options :func:`fast_args` reads, by every spelling click takes, and their parameter
_VALUED = {"-o": "output", "--output": "output", "-b": "backend", "--backend": "backend", "--timeout": "timeout"}

#: set by ``dtvm``'s own entry point: the process ends after the command, so the collector paused
#: for the description is not resumed (resumed, its first pass would go over everything the run
#: made: about 6 ms); a caller's process (a test running many commands) gets its setting back
ENDS_PROCESS = False

#: click.echo's stripping of ANSI sequences on a stream that is not a terminal
_ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")


def fast_args(args: list[str]) -> dict[str, Any] | None:
    """The parameters click would give ``qemu2dtb_cmd`` for ``args``, for the common form only
    (-o/-b/--timeout, then QEMU's command line), else None: click reads it and says what is wrong."""
    out: dict[str, Any] = {"output": None, "backend": None, "timeout": 20.0}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
        elif arg.startswith("-") and len(arg) > 1:
            name, eq, value = arg[:2], arg[2:], arg[2:]  # -oFILE: the value attached
        else:
            i -= 1  # QEMU's command line starts here
            break
        key = _VALUED.get(name)
        if key is None or (name.startswith("--") and len(name) == 2):
            return None
        if not eq:
            if i >= len(args):
                return None  # click's "requires an argument"
            value = args[i]
            i += 1
        out[key] = value
    try:
        out["timeout"] = float(out["timeout"])
    except ValueError:
        return None  # click's "is not a valid float"
    argv = args[i:]
    if (out["output"] is None and out["backend"] is None) or (argv and argv[0].startswith("-")):
        return None
    out["argv"] = argv
    return out


def _echo(message: str, nl: bool = True, err: bool = False) -> None:
    """click.echo for text: ANSI sequences stripped unless the stream is a terminal, then flushed."""
    stream = sys.stderr if err else sys.stdout
    text = message + ("\n" if nl else "")
    if not stream.isatty():
        text = _ANSI.sub("", text)
    stream.write(text)
    stream.flush()


def run_fast(args: list[str]) -> bool:
    """``dtvm qemu2dtb ARGS`` without click when :func:`fast_args` reads them (True: done)."""
    opts = fast_args(args)
    if opts is None:
        return False
    describe_vm(opts["output"], opts["backend"], None, None, None, "text", opts["timeout"], False, None, None,
                opts["argv"], _echo)
    return True


def _fail(message: str, code: int = 1, echo: Callable[..., None] = _echo) -> None:
    echo(f"dtvm qemu2dtb: {message}", err=True)
    sys.exit(code)


def describe_vm(output: str | None, backend: str | None, qmp: str | None, libvirt_domain: str | None,
                connect: str | None, fmt: str, timeout: float, offline: bool, qemu_version: str | None,
                binary: str | None, argv: list[str], echo: Callable[..., None]) -> None:
    """Describe a QEMU VM and write (or print) the description: the command's work, after its
    options were read (``echo``: click.echo, or its equal without click)."""
    import gc

    # paused for the description, as dtvm dtc pauses it for a compile: its objects are modules
    # imported on the way (asyncio, QMP, the describer) and QMP's answers (no cycles), which the
    # cyclic collector's passes do not free (about 35 passes, 6 ms of CPU on bench_qemu2dtb's q35
    # VM); the caller's setting comes back at the end, unless the process ends (ENDS_PROCESS)
    collecting = gc.isenabled()
    gc.disable()
    try:
        _describe_vm(output, backend, qmp, libvirt_domain, connect, fmt, timeout, offline, qemu_version, binary,
                     argv, echo)
    finally:
        if collecting and not ENDS_PROCESS:
            gc.enable()


def _describe_vm(output: str | None, backend: str | None, qmp: str | None, libvirt_domain: str | None,
                 connect: str | None, fmt: str, timeout: float, offline: bool, qemu_version: str | None,
                 binary: str | None, argv: list[str], echo: Callable[..., None]) -> None:
    from dtvm.dt.dtb import write_dtb
    from dtvm.errors import DtvmError
    from dtvm.fileio import write_atomic, write_pair

    if argv and argv[0] == "--":
        argv = argv[1:]
    try:
        from dtvm.qemu import live

        if connect is not None and libvirt_domain is None:
            _fail("--connect goes with --libvirt DOMAIN", 2, echo)
        if qemu_version is not None and not offline:
            _fail("--qemu-version goes with --offline (online, the QEMU given answers for itself)", 2, echo)
        if libvirt_domain is not None:
            if argv or qmp is not None or offline:
                _fail("--libvirt reads a running libvirt domain: no --qmp, --offline or command line", 2, echo)
            from dtvm.cli.libvirt import describe_libvirt_domain

            desc = describe_libvirt_domain(libvirt_domain, connect, timeout)
            snapshot = None
        elif offline:
            if qmp is not None:
                _fail("--offline reads a command line, not a running VM", 2, echo)
            from dtvm.qemu.models import use_version
            from dtvm.qemu.offline import offline_config
            from dtvm.vm.translate import describe, driver_compat

            with use_version(offline_version(argv[0] if argv else None, qemu_version)):
                desc = describe(offline_config(argv or DEFAULT_ARGV), driver_compat())
            snapshot = None
        elif qmp is not None:
            if binary is not None and not os.path.isfile(binary):
                _fail(f"--binary {binary}: no such file", 2, echo)
            if argv:
                _fail("give either --qmp or a QEMU command line, not both", 2, echo)
            snapshot = live.read_socket(qmp, timeout=timeout)
            snapshot.binary = binary
            from dtvm.vm.translate import driver_compat

            compat = driver_compat()
        else:
            # import the describer and load the bindings while QEMU starts: the costs overlap
            with live.start_argv(argv or DEFAULT_ARGV, timeout=timeout) as proc:
                from dtvm.qemu.describe import describe_snapshot
                from dtvm.vm.translate import driver_compat

                compat = driver_compat()
                snapshot = proc.read()
                proc.kill()  # QEMU dies while the description is made; leaving the block reaps it
                desc = describe_snapshot(snapshot, compat)
            snapshot = None
        if snapshot is not None:
            from dtvm.qemu.describe import describe_snapshot

            desc = describe_snapshot(snapshot, compat)
        if output is None and backend is None:
            if fmt == "dts":
                from dtvm.dt.dts.write import write_dts

                echo(write_dts(desc.guest), nl=False)
            else:
                from dtvm.cli.show import option_defaults
                from dtvm.vm.show import render_dot, render_text

                defaults = option_defaults(desc.guest)
                text = (render_dot(desc.guest, desc.backend, option_defaults=defaults) if fmt == "dot"
                        else render_text(desc.guest, desc.backend, option_defaults=defaults))
                echo(text, nl=not text.endswith("\n"))
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
        _fail(first_line(exc), getattr(exc, "exit_code", 1) or 1, echo)
    except KeyboardInterrupt as exc:
        _fail("interrupted", interrupted_status(exc), echo)
    except RuntimeError as exc:
        # Ctrl-C (or a signal raised as one) inside a lazy import's class creation: Python 3.11
        # wraps it ("Error calling __set_name__ ..."); it is still the interrupt (CI saw it at 0 ms)
        if not isinstance(exc.__cause__, KeyboardInterrupt):
            raise
        _fail("interrupted", interrupted_status(exc.__cause__), echo)
    except OSError as exc:
        _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), 1, echo)


def offline_version(binary: str | None, qemu_version: str | None) -> str | None:
    """The QEMU version --offline answers for (its models were recorded from it): --qemu-version,
    else a binary given by path, asked with --version (no VM is built), else the reference (7.2).
    A version without models is refused by ``use_version`` rather than described as another."""
    if qemu_version is not None:
        from dtvm.qemu.versions import parse_version

        major, minor, _ = parse_version(qemu_version)
        return f"{major}.{minor}"
    if binary is None or os.sep not in binary:
        return None
    from dtvm.qemu.live import binary_version

    found = binary_version(binary)
    return f"{found[0]}.{found[1]}" if found is not None else None
