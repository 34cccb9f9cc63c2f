"""The ``dtvm`` command: one module per family of subcommands, loaded lazily.

``dtvm dtc`` and the libfdt tools take the C tools' own arguments (``-h`` is
dtc's help, ``-I`` the input format), so they are dispatched before click is
even imported; that keeps ``dtvm dtc --version``, one-file compiles and
``dtvm fdtget`` fast to start. Everything else goes through the click group
in ``group.py``.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["cli", "main"]

from dtvm.cli.passthrough import PASSTHROUGH, run_passthrough


def __getattr__(name: str) -> Any:
    if name == "cli":
        from dtvm.cli.group import cli

        return cli
    raise AttributeError(name)


class Terminated(KeyboardInterrupt):
    """SIGTERM, SIGHUP or SIGQUIT, raised where SIGINT would raise KeyboardInterrupt, so that
    every ``with`` and ``finally`` (temporary outputs, QEMU processes) unwinds exactly as on ^C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_received: list[int] = []


_deferring: list[bool] = []


def _on_signal(signum: int, frame: Any) -> None:
    if _deferring:
        _deliver_later(signum)  # inside the unraisable hook: raising here would be lost again
        return
    if _received:
        return  # already unwinding: a second signal must not interrupt the clean-up
    _received.append(signum)
    raise Terminated(signum)


def _deliver_later(signum: int) -> None:
    """Have the signal's handler run again in the main thread, from a helper thread, once the
    main thread has left the finalizer it is in."""
    import _thread
    import signal
    import threading
    import time

    def later() -> None:
        time.sleep(0.005)
        _thread.interrupt_main(signal.Signals(signum))

    threading.Thread(target=later, name="dtvm-signal", daemon=True).start()


def _unraisable(args: Any) -> None:
    """An interruption (Ctrl-C, or a signal turned into one) that lands while Python runs a
    finalizer (a file the garbage collector closes, ...) cannot leave it: Python would print
    "Exception ignored ... Traceback" and go on as if nothing came. Deliver it again instead, at
    the main thread's next step, where it unwinds as usual."""
    import threading

    exc = args.exc_value
    if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
        import signal

        signum = int(getattr(exc, "signum", signal.SIGINT))
        _received.clear()
        if "dtvm.qemu.process" in sys.modules:
            sys.modules["dtvm.qemu.process"].rearm()
        _deferring.append(True)
        try:
            _deliver_later(signum)
        finally:
            _deferring.clear()
        return
    sys.__unraisablehook__(args)


def _install_signal_handlers() -> None:
    """Turn the terminating signals into the SIGINT path (a signal left at its default would kill
    the process mid-write and leave ``.dtvm-*.tmp`` debris behind)."""
    import signal

    sys.unraisablehook = _unraisable
    for name in ("SIGTERM", "SIGHUP", "SIGQUIT"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            if signal.getsignal(signum) == signal.SIG_IGN:
                continue  # nohup and friends: keep ignoring
            signal.signal(signum, _on_signal)
        except (OSError, ValueError):
            pass


def main() -> None:
    """Console entry point."""
    _install_signal_handlers()
    try:
        _run()
    finally:
        # past this point nothing is held (outputs renamed, QEMU reaped): a signal that lands while
        # the interpreter shuts down (joining threads) takes its default action instead of raising
        # Terminated where no handler can catch it ("Exception ignored in threading", measured in CI)
        _restore_default_handlers()


def _restore_default_handlers() -> None:
    import signal

    for name in ("SIGTERM", "SIGHUP", "SIGQUIT"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is _on_signal:
            signal.signal(signum, signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run() -> None:
    try:
        try:
            _main()
        finally:
            if not _received:
                _flush_stdout()
    except KeyboardInterrupt:
        if not _received:
            sys.exit(130)
    except SystemExit:
        if not _received:
            raise
    except BrokenPipeError:
        from dtvm.cli.output import discard_stdout

        discard_stdout()
        sys.exit(141)
    except OSError as exc:
        # an output (or input) the command did not handle itself: standard output on a full disk,
        # past a file-size limit, ... one line with the path and the OS's reason, never a traceback
        from dtvm.cli.output import discard_stdout

        discard_stdout()
        where = exc.filename if exc.filename else "<stdout>"
        sys.stderr.write(f"dtvm: error: {where}: {exc.strerror or exc}\n")
        sys.exit(1)
    if _received:
        from dtvm.fileio import cleanup_temporaries

        cleanup_temporaries()
        sys.exit(128 + _received[0])


def _flush_stdout() -> None:
    """Flush what commands printed while the error can still be reported (Python's own flush at
    exit would print a traceback-like message and exit 120)."""
    for stream in (sys.stdout,):
        try:
            stream.flush()
        except ValueError:
            pass


def _main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] in PASSTHROUGH:
        try:
            code = run_passthrough(argv[0], argv[1:])
        except KeyboardInterrupt:
            code = 130
        except BrokenPipeError:
            code = 141
        sys.exit(code)
    if argv and argv[0] == "validate":
        # the common case of a short command, without importing click (~9 ms)
        from dtvm.cli.validate import run

        sys.exit(run(argv[1:]))
    import gc

    # start-up (click, the command's module) makes only objects that live to the end: the cyclic
    # collector's passes over them free nothing and cost about 5 ms of every command.  Paused
    # until the command is found (the group resumes it there, with those objects frozen)
    collecting = gc.isenabled()
    gc.disable()
    if argv and argv[0] == "qemu2dtb":
        # its common form without click (about a tenth of the process's CPU): cli/qemu2dtb.py
        from dtvm.cli import qemu2dtb

        qemu2dtb.ENDS_PROCESS = True
        if qemu2dtb.run_fast(argv[1:]):
            return  # the collector stays paused: the process ends here
    from dtvm.cli.group import cli

    cli.resume_collector = collecting
    cli.main(args=argv, prog_name="dtvm")
