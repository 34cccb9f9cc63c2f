"""The lifetime and confinement of the QEMU processes dtvm starts.

dtvm starts QEMU to ask it questions, never to run a guest, so a QEMU of dtvm's must never outlive
the question, touch more of the host than the command line makes it touch, or leave debris:

- **Its own process group, with a reaper.**  QEMU is started in a process group of its own whose
  first member is a tiny reaper (``sh -c 'read _; kill -KILL 0'``) reading a pipe that only dtvm
  holds.  Stopping QEMU kills the whole group, so a "QEMU binary" that is a wrapper script which
  does not ``exec`` takes its QEMU with it; and when dtvm dies in any way, even by SIGKILL, the
  kernel closes the pipe, the reaper reads end-of-file and kills the group.  QEMU itself also gets
  ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (the kernel kills it when the thread that started it ends),
  set by util-linux's ``setpriv --pdeathsig KILL``, which then executes QEMU in the same process
  (a ``preexec_fn`` would do it too, but forces a full ``fork`` of dtvm instead of ``vfork``: about
  6 ms of dtvm's CPU per QEMU, in page-table copies and copy-on-write faults; without ``setpriv``,
  or for a binary that is neither ELF nor ``#!``, that ``preexec_fn`` is the way),
  which covers the direct child even if the reaper is gone; the kernel clears that setting when QEMU
  drops privileges (``-runas``) and it is not inherited by a wrapper's children: the reaper covers
  both.  QEMU is out of dtvm's own process group, so a Ctrl-C at the terminal reaches dtvm only,
  and dtvm stops QEMU itself.
- **Signals as Ctrl-C.**  While dtvm holds a QEMU or a private directory, SIGTERM, SIGHUP and SIGQUIT
  raise :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread, so the same clean-up runs
  as for SIGINT: QEMU killed, directory removed, one line and exit status 130 from the command.
- **Confined.**  QEMU gets ``-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,
  resourcecontrol=deny`` (seccomp: no exec, no fork of helpers, no privilege or scheduler changes),
  and, when dtvm runs as root, ``-runas nobody`` (QEMU opens what the command line names as root
  while it builds the machine, then drops to ``nobody`` before it runs; ``elevateprivileges`` must
  stay allowed for that drop, and there is nothing left to elevate afterwards).  Its working
  directory is dtvm's private directory, so a relative file name in an option finds nothing of
  the user's.  A QEMU built without seccomp refuses ``-sandbox``: ``live`` then starts it again
  without, and remembers that for the binary; QEMU 10.0 has no ``-runas`` (it is
  ``-run-with user=`` there): ``live`` likewise starts it again with that spelling.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

__all__ = [
    "RUNAS_USER",
    "SANDBOX",
    "Terminated",
    "cancel_on_signal",
    "confinement",
    "kill_group",
    "rearm",
    "runas_user",
    "signals_as_interrupt",
    "spawn_group",
    "stop_group",
]

#: seccomp filters QEMU 7.2 offers (``-sandbox``); ``elevateprivileges=deny`` only when QEMU keeps
#: its user (with ``-runas`` it would kill QEMU at its own setuid()).
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
_SANDBOX_RUNAS = "on,obsolete=deny,spawn=deny,resourcecontrol=deny"

#: The unprivileged user QEMU drops to when dtvm runs as root.
RUNAS_USER = "nobody"

#: Signals that end dtvm as Ctrl-C does while it holds a QEMU or a private directory.
SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

# The reaper: the first member of QEMU's process group.  `read` returns at end-of-file, which comes
# when every copy of the pipe's write end is closed: dtvm holds the only one.
_REAPER = ["/bin/sh", "-c", "read _ ; kill -KILL 0"]

_PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, SIGHUP or SIGQUIT arrived while dtvm held QEMU: handled exactly as Ctrl-C."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


# ------------------------------------------------------------------------------------------ signals

_guard_lock = threading.Lock()
_guard_depth = 0
_saved: dict[signal.Signals, Any] = {}
_raised = False


_cancel: Callable[[], object] | None = None
_received: list[int] = []


def _on_signal(signum: int, frame: Any) -> None:
    global _raised
    if _raised:  # one interruption is enough: later signals must not break the clean-up it runs
        return
    _raised = True
    if _cancel is not None:
        # an event loop runs here: an exception raised at an arbitrary point of its machinery could
        # leave a coroutine half made (asyncio then warns on stderr); cancel its task instead
        try:
            _cancel()
        except RuntimeError:  # that loop is closed already: nothing runs there to cancel
            pass
        else:
            _received.append(signum)
            return
    raise Terminated(signum)


def rearm() -> None:
    """Let the next signal raise again: the last one was raised where it could not propagate (in
    a finalizer) and is being delivered again (the CLI's unraisable hook)."""
    global _raised
    _raised = False


@contextmanager
def cancel_on_signal(cancel: Callable[[], object]) -> Iterator[list[int]]:
    """While inside (and inside :func:`signals_as_interrupt`), a signal calls ``cancel`` instead of
    raising; the list yielded receives the signal's number."""
    global _cancel
    if threading.current_thread() is not threading.main_thread():
        # signals reach the main thread only; and worker threads (machine show's probes) would
        # overwrite each other's callback here
        yield []
        return
    previous, _cancel = _cancel, cancel
    _received.clear()
    try:
        yield _received
    finally:
        _cancel = previous


@contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM/SIGHUP/SIGQUIT raise :class:`Terminated` in the main thread.

    Nested and concurrent uses are counted; the previous handlers come back when the last one
    ends.  Outside the main thread (where Python cannot set handlers) this does nothing: the main
    thread's own guard, or the reaper, covers that case.
    """
    global _guard_depth, _raised, _cancel
    installed = False
    if threading.current_thread() is threading.main_thread():
        with _guard_lock:
            if _guard_depth == 0:
                _raised = False
                for sig in SIGNALS:
                    try:
                        _saved[sig] = signal.signal(sig, _on_signal)
                    except (ValueError, OSError):  # pragma: no cover - not the main interpreter
                        pass
            _guard_depth += 1
            installed = True
    try:
        yield
    finally:
        if installed:
            with _guard_lock:
                _guard_depth -= 1
                if _guard_depth == 0:
                    _cancel = None
                    for sig, previous in _saved.items():
                        try:
                            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
                        except ValueError:  # left from another thread (a QemuProcess collected there)
                            pass
                    _saved.clear()


@contextmanager
def signals_blocked() -> Iterator[None]:
    """Defer SIGINT/SIGTERM/SIGHUP/SIGQUIT for a short clean-up (they arrive right after it)."""
    mask = {signal.SIGINT, *SIGNALS}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, mask)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# ---------------------------------------------------------------------------------------- spawning


@functools.cache
def _prctl() -> Callable[..., int] | None:
    # the C library Python itself is linked with, found by the dynamic linker: ctypes.util's
    # find_library runs ldconfig in a subprocess (about 12 ms of every dtvm that starts QEMU)
    import ctypes  # only where setpriv is missing (1.5 ms of imports otherwise)

    for name in (None, "libc.so.6"):
        try:
            fn: Callable[..., int] = ctypes.CDLL(name, use_errno=True).prctl
            return fn
        except (OSError, AttributeError):  # pragma: no cover - not Linux, or a static Python
            continue
    return None  # pragma: no cover


@functools.cache
def _setpriv() -> list[str] | None:
    """util-linux's setpriv setting the parent-death signal before it executes the command."""
    path = shutil.which("setpriv")
    return [path, "--pdeathsig", "KILL", "--"] if path and os.path.isabs(path) else None


def _execs_as_popen(name: str, cwd: str) -> bool:
    """Whether ``setpriv`` would execute ``name`` exactly as Popen would: an ELF or ``#!`` file that
    PATH (or the name itself, from ``cwd``) gives.  Anything else takes Popen's own path, so that
    every failure to execute is still Popen's ``OSError``, not a setpriv message and exit 127."""
    path = os.path.join(cwd, name) if "/" in name else shutil.which(name)
    if path is None or not os.path.isabs(path) or not os.access(path, os.X_OK):
        return False
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError:
        return False
    return magic == b"\x7fELF" or magic[:2] == b"#!"


def _die_with_parent(parent: int) -> Callable[[], None]:
    """The child's setup between fork and exec: SIGKILL when the parent thread ends.

    Only a pre-resolved C call and two system calls run here (the child of a threaded process
    may not take locks).  If the parent already died before prctl, the child is an orphan: exit.
    """
    prctl = _prctl()

    def setup() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(127)

    return setup


@dataclass
class Group:
    """QEMU (``proc``), its reaper, and the pipe end whose closing tells the reaper to kill."""

    proc: subprocess.Popen[bytes]
    reaper: subprocess.Popen[bytes] | None
    lifeline: int | None

    @property
    def pgid(self) -> int:
        return self.reaper.pid if self.reaper is not None else self.proc.pid


def spawn_group(cmd: list[str], *, cwd: str, stdout: IO[bytes], stderr: IO[bytes]) -> Group:
    """Start ``cmd`` (never through a shell) in a new process group guarded by a reaper.

    ``OSError`` from starting ``cmd`` propagates (the caller words it); the reaper is then gone too.
    """
    read_end, write_end = os.pipe()  # both close-on-exec: no child inherits the write end
    reaper: subprocess.Popen[bytes] | None = None
    try:
        try:
            reaper = subprocess.Popen(_REAPER, stdin=read_end, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, close_fds=True, process_group=0, cwd="/")
        except OSError:  # no /bin/sh: the process group and the parent-death signal still hold
            reaper = None
        os.close(read_end)
        read_end = -1
        group = reaper.pid if reaper is not None else 0
        setpriv = _setpriv()
        if setpriv is not None and reaper is not None and _execs_as_popen(cmd[0], cwd):
            proc = subprocess.Popen([*setpriv, *cmd], stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                    close_fds=True, cwd=cwd, process_group=group)
            proc.args = cmd  # setpriv executes QEMU in this process: messages name QEMU, not setpriv
        else:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, close_fds=True,
                                    cwd=cwd, process_group=group, preexec_fn=_die_with_parent(os.getpid()))
    except BaseException:
        if read_end >= 0:
            os.close(read_end)
        os.close(write_end)  # the reaper (if any) kills its group and ends
        if reaper is not None:
            reaper.wait()
        raise
    return Group(proc, reaper, write_end)


def kill_group(group: Group) -> None:
    """SIGKILL the whole process group (QEMU, a wrapper's children, the reaper), not reaped yet."""
    try:
        os.killpg(group.pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if group.proc.returncode is None:
        try:
            group.proc.kill()  # a QEMU that left the group still dies
        except ProcessLookupError:
            pass


def stop_group(group: Group, timeout: float = 10.0) -> None:
    """Kill the whole process group (QEMU, a wrapper's children, the reaper) and reap ours."""
    kill_group(group)
    for proc in (group.proc, group.reaper):
        if proc is None:
            continue
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL (D state)
            pass
    if group.lifeline is not None:
        os.close(group.lifeline)
        group.lifeline = None


# ------------------------------------------------------------------------------------- confinement


def runas_user() -> tuple[str, int, int] | None:
    """(name, uid, gid) of the user QEMU drops to: ``nobody`` when dtvm is root, else None."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(RUNAS_USER)
    except KeyError:
        return None
    if entry.pw_uid == 0:
        return None
    return entry.pw_name, entry.pw_uid, entry.pw_gid


def confinement(sandbox: bool, user: tuple[str, int, int] | None, run_with: bool = False) -> list[str]:
    """The options dtvm adds to every QEMU it starts (after the caller's, so they win).

    ``run_with``: the QEMU has no ``-runas`` (removed in QEMU 10.0; ``-run-with user=`` since 9.0).
    """
    out: list[str] = []
    if sandbox:
        out += ["-sandbox", _SANDBOX_RUNAS if user is not None else SANDBOX]
    if user is not None:
        out += ["-run-with", f"user={user[0]}"] if run_with else ["-runas", user[0]]
    return out
