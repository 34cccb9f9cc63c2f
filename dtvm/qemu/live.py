"""Reading a QEMU VM online: start it paused, or reach a running one, and ask it over QMP.

Only QEMU itself knows what a command line builds (which devices a machine type adds, where it puts
them, which defaults apply), so dtvm asks the real binary instead of guessing.  The answers come back
raw in a :class:`~dtvm.qemu.snapshot.Snapshot`; understanding them is ``config``'s job.

Entry points:

- :func:`read_argv` starts ``qemu-system-ARCH ARGS...`` paused (``-S``, ``-display none``) with an
  extra QMP socket in a private temporary directory, reads it and always kills it (by its pid), also
  on errors, timeouts and Ctrl-C.  :func:`start_argv` is the same in two steps, so a caller can do
  its own start-up work while QEMU starts (QEMU needs 40 to 100 ms before its first answer).
- :func:`read_socket` reads a running VM through its QMP socket (``unix:PATH``) with queries only:
  no ``stop``/``cont``, no ``quit``; the VM keeps running as it was.

Cost: QEMU handles one QMP command per main-loop iteration (about 0.3 ms on a paused VM, whatever
the command), so a read costs what its number of commands costs.  All independent commands are
issued at once and each dependent one as soon as what it needs has arrived (``dtvm.qemu.qmp``),
which keeps QEMU's queue full.  The read issues one ``qom-get`` per scalar machine property, one
``device-list-properties`` per device type, and two to four ``qom-get`` per ``-device``: nothing
walks every property of every device (``info qtree`` has those).  This module imports neither
asyncio nor ``qemu.qmp`` (25 ms): :func:`read_argv` imports them while QEMU starts.

Everything is bounded: one deadline (``timeout``) covers starting QEMU, connecting and reading; one
reply may not exceed ``dtvm.qemu.qmp.MAX_REPLY_BYTES``; the dumped DT may not exceed
:data:`MAX_DTB_BYTES`.  Every failure is a :class:`QemuError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from dtvm.fileio import cache_dir
from dtvm.qemu import process
from dtvm.qemu.errors import (
    NotAnsweredError,
    QemuArgvError,
    QemuError,
    QemuExitedError,
    QemuNotFoundError,
    QemuTimeoutError,
    QmpCommandError,
    QmpProtocolError,
    QmpReplyError,
)
from dtvm.qemu.replies import ADDRESS_PROPS, MAX_DTB_BYTES
from dtvm.qemu.snapshot import Snapshot

__all__ = [
    "ADDRESS_PROPS",
    "MAX_DTB_BYTES",
    "REJECTED_OPTIONS",
    "QemuArgvError",
    "QemuError",
    "QemuExitedError",
    "QemuNotFoundError",
    "QemuProcess",
    "QemuTimeoutError",
    "QmpCommandError",
    "QmpProtocolError",
    "QmpReplyError",
    "binary_version",
    "debian_package",
    "read_argv",
    "read_socket",
    "start_argv",
]

#: Options a command line given to :func:`read_argv` may not contain, and why.  ``-S``, ``-qmp``,
#: ``-monitor``, ``-mon`` and ``-display`` are accepted: dtvm adds ``-S`` anyway, extra monitors are
#: independent of dtvm's own QMP socket, and dtvm's ``-display none`` comes last and wins.
REJECTED_OPTIONS = {
    "-daemonize": "QEMU would detach from dtvm and keep running after the read",
    "-incoming": "QEMU would wait for a migration stream instead of building the machine",
    "-preconfig": "QEMU would wait for configuration commands instead of building the machine",
}

#: Where each ``qemu-system-*`` binary comes from on Debian (the rest is in qemu-system-misc).
_DEBIAN_PACKAGES = {
    "x86_64": "qemu-system-x86", "i386": "qemu-system-x86", "x86_64-microvm": "qemu-system-x86",
    "aarch64": "qemu-system-arm", "arm": "qemu-system-arm",
    "ppc": "qemu-system-ppc", "ppc64": "qemu-system-ppc", "ppc64le": "qemu-system-ppc",
    "mips": "qemu-system-mips", "mipsel": "qemu-system-mips", "mips64": "qemu-system-mips",
    "mips64el": "qemu-system-mips",
    "sparc": "qemu-system-sparc", "sparc64": "qemu-system-sparc",
}

_OUTPUT_CAP = 64 << 10  # bytes of QEMU's stdout/stderr looked at for an error message


def debian_package(binary: str) -> str | None:
    """The Debian package that ships ``binary`` (a ``qemu-system-*`` name or path), else None."""
    name = os.path.basename(binary)
    if not name.startswith("qemu-system-"):
        return None
    arch = name[len("qemu-system-"):]
    if arch.startswith("riscv"):
        return "qemu-system-misc"
    return _DEBIAN_PACKAGES.get(arch, "qemu-system-misc")


# --------------------------------------------------------------------------------------- entry points


def binary_version(binary: str, timeout: float = 10.0) -> tuple[int, int, int] | None:
    """The version of a QEMU binary from ``--version`` (no VM is built): what ``dtb2qemu --binary``
    needs to know before it starts anything; None when it does not answer like QEMU."""
    import re

    try:
        exe = _resolve_binary(binary)
        out = subprocess.run([exe, "--version"], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                             check=False).stdout[:4096].decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired, QemuError):
        return None
    m = re.search(r"QEMU emulator version (\d{1,3})\.(\d{1,3})\.(\d{1,3})", out)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def read_argv(argv: Sequence[str], *, timeout: float = 10.0,
              timings: dict[str, float] | None = None, incoming: bool = False) -> Snapshot:
    """Start ``argv`` (``["qemu-system-ARCH", ARGS...]``) paused, read it, stop it.

    QEMU gets ``-S -display none -qmp unix:SOCK,server=on,wait=off`` after the caller's arguments
    (``SOCK`` in a private ``mkdtemp`` directory), stdin from /dev/null and its stdout/stderr in files
    of that directory, so it can neither grab the terminal nor block on a full pipe.  The process is
    killed by its pid and reaped in every case (success, :class:`QemuError`, timeout, Ctrl-C), and
    the directory removed.  dtvm's own QMP monitor is left out of ``chardevs`` (it is not part of the
    VM the command line describes); everything else is QEMU's answer as it came.

    ``timeout`` bounds the whole call.  ``timings``, when given, receives milliseconds per stage:
    ``start`` (fork/exec), ``connect`` (QEMU start to QMP ready), one entry per command group (the time
    it completed, counted from the start of the read; groups overlap), ``read``, ``stop``, ``total``
    and ``commands`` (the number of QMP commands).

    ``incoming`` starts it as a migration destination (``-incoming defer``, added by dtvm: a caller's
    argv may not have it): QEMU builds the whole machine but activates no block device, so it takes
    no image lock and can be started while the VM it rebuilds runs on the same host.
    """
    with start_argv(argv, timeout=timeout, timings=timings, incoming=incoming) as qemu:
        return qemu.read()


def start_argv(argv: Sequence[str], *, timeout: float = 10.0,
               timings: dict[str, float] | None = None, incoming: bool = False) -> QemuProcess:
    """Start ``argv`` paused and return at once; ``.read()`` on the result reads it, ``.close()`` kills it.

    For callers with their own start-up work (imports, loading bindings): done between the two calls
    it overlaps QEMU's start instead of adding to it.  Use it as a context manager so QEMU is killed
    whatever happens.  ``timeout`` counts from this call.  The command line is checked (and the
    binary looked up) before anything starts.
    """
    cmd = _checked_argv(argv)
    binary = _resolve_binary(cmd[0])
    return QemuProcess(cmd, binary, _checked_timeout(timeout), {} if timings is None else timings, incoming)


class QemuProcess:
    """A QEMU started paused by :func:`start_argv`: read it once, then close it (kill its process
    group, reap, remove the private directory).  See ``dtvm.qemu.process`` for how it is confined
    and why it cannot outlive dtvm."""

    def __init__(self, argv: list[str], binary: str, timeout: float, timings: dict[str, float],
                 incoming: bool = False) -> None:
        self.argv = argv
        self.incoming = incoming
        self.binary = binary
        self.timings = timings
        self.timeout = timeout
        self._t0 = self._spawned = time.perf_counter()
        self.deadline = time.monotonic() + timeout
        self.group: process.Group | None = None
        self.dir = ""
        self._guard: contextlib.AbstractContextManager[None] | None = process.signals_as_interrupt()
        self._guard.__enter__()
        try:
            self.user = process.runas_user()
            self.dir = _private_dir(self.user)
            self.sock = os.path.join(self.dir, "qmp.sock")
            # where QEMU writes (dumpdtb): its own directory once it has dropped to another user
            self.out = _output_dir(self.dir, self.user)
            self.sandbox = _SANDBOX_OK.get(binary, True)
            self.run_with = _run_with(binary)
            self._start()
        except BaseException:
            self.close()
            raise
        timings["start"] = _ms(self._t0)

    def _start(self) -> None:
        qmp_arg = "unix:" + self.sock.replace(",", ",,") + ",server=on,wait=off"
        full = [self.binary, *self.argv[1:], "-S", "-display", "none", "-qmp", qmp_arg,
                *(["-incoming", "defer"] if self.incoming else []),
                *process.confinement(self.sandbox, self.user, self.run_with)]
        with open(os.path.join(self.dir, "stdout"), "wb") as out, \
                open(os.path.join(self.dir, "stderr"), "wb") as err:
            self._spawned = time.perf_counter()
            self.group = _spawn(full, out, err, self.dir)

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return None if self.group is None else self.group.proc

    @property
    def pid(self) -> int | None:
        return None if self.group is None else self.group.proc.pid

    def read(self) -> Snapshot:
        """Connect (waiting for QEMU to come up), read everything, return the Snapshot."""
        if self.group is None or not self.dir:
            raise QemuError("this QEMU was already stopped")
        from dtvm.qemu import qmp  # asyncio and qemu.qmp load here, while QEMU starts

        for _attempt in range(3):
            try:
                snap = self._read(qmp, self.group.proc)
                break
            except QemuExitedError as error:
                if self.user is not None and not self.run_with and _refused_runas(error):
                    # QEMU 10.0 removed -runas: the same drop is -run-with user=
                    _RUN_WITH[self.binary] = self.run_with = True
                    _remember_run_with(self.binary)
                elif self.sandbox and _refused_sandbox(error):
                    # a QEMU built without seccomp (or older than spawn=): start it again without -sandbox
                    _SANDBOX_OK[self.binary] = self.sandbox = False
                else:
                    raise
                _stop(self.group)
                self.group = None
                self._start()
                assert self.group is not None
        else:  # pragma: no cover - each refusal is taken back once
            raise QemuError(f"{self.argv[0]} refuses dtvm's confinement options")
        _SANDBOX_OK[self.binary] = self.sandbox
        snap.argv = list(self.argv)
        # dtvm's own monitor is not part of the VM the command line describes
        ours = f"unix:{self.sock},server=on"
        snap.chardevs = [c for c in snap.chardevs if not (isinstance(c, dict) and c.get("filename") == ours)]
        return snap

    def _read(self, qmp: Any, proc: subprocess.Popen[bytes]) -> Snapshot:
        try:
            snap: Snapshot = qmp.run(lambda: qmp.read_process(proc, self.sock, self.out, self.deadline,
                                                              self.timeout, self.timings, self._spawned))
        except QemuError as error:
            raise _explain_exit(proc, self.dir, self.argv[0], error) from None
        return snap

    def kill(self) -> None:
        """Kill QEMU's process group now, once its answers are read; :meth:`close` still reaps it
        and removes the private directory.  Work done in between (describing what was read)
        overlaps the kernel's tearing QEMU down instead of waiting for it."""
        if self.group is not None:
            process.kill_group(self.group)

    def close(self) -> None:
        """Kill QEMU's process group, reap it, remove the private directory.  Idempotent.

        Signals are held back meanwhile: a second Ctrl-C or SIGTERM must not cut the clean-up
        short; it arrives once QEMU is gone.
        """
        if self._guard is None:
            return
        t1 = time.perf_counter()
        with process.signals_blocked():
            if self.group is not None:
                _stop(self.group)
            if self.dir:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = ""
            guard, self._guard = self._guard, None
            guard.__exit__(None, None, None)
        self.timings["stop"] = _ms(t1)
        self.timings["total"] = _ms(self._t0)

    def __del__(self) -> None:
        # a caller that forgot close(): QEMU must not outlive its reader
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> QemuProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def read_socket(address: str, *, timeout: float = 10.0,
                timings: dict[str, float] | None = None) -> Snapshot:
    """Read the running VM behind ``address`` (``unix:PATH``, QEMU's ``-qmp`` socket) and leave it running.

    Only queries are sent (plus ``dumpdtb``, which writes QEMU's DT into a private temporary
    directory of ours: QEMU must run as a user that can write there, normally the same user).  The
    VM's run state is untouched.  QEMU serves one QMP client per socket at a time: while another
    client is connected the read waits for a greeting until ``timeout``.  ``timings`` as in
    :func:`read_argv`.
    """
    path = _unix_path(address)
    t = timings if timings is not None else {}
    t0 = time.perf_counter()
    deadline = time.monotonic() + _checked_timeout(timeout)
    from dtvm.qemu import qmp

    with process.signals_as_interrupt():
        tmp = _private_dir()
        try:
            return qmp.run(lambda: qmp.read_address(path, address, tmp, deadline, timeout, t))
        finally:
            with process.signals_blocked():
                shutil.rmtree(tmp, ignore_errors=True)
            t["total"] = _ms(t0)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1e3, 3)


# ------------------------------------------------------------------------------------ checking input


def _checked_timeout(timeout: float) -> float:
    if not isinstance(timeout, int | float) or not timeout > 0:
        raise QemuArgvError(f"timeout must be a positive number of seconds, not {timeout!r}")
    return float(timeout)


def _checked_argv(argv: Sequence[str]) -> list[str]:
    """The command line as a list, or a one-line reason why dtvm will not start it."""
    if isinstance(argv, str | bytes) or not isinstance(argv, Sequence):
        raise QemuArgvError("the QEMU command line must be a list of arguments, e.g. "
                            "['qemu-system-x86_64', '-M', 'q35']")
    cmd = list(argv)
    if not cmd or not cmd[0]:
        raise QemuArgvError("no QEMU binary given (expected qemu-system-ARCH ARGS...)")
    for arg in cmd:
        if not isinstance(arg, str):
            raise QemuArgvError(f"QEMU argument {arg!r} is not a string")
        if "\0" in arg:
            raise QemuArgvError(f"QEMU argument {arg!r} contains a NUL character")
    for arg in cmd[1:]:
        # QEMU accepts "-opt" and "--opt"; a value that looks like one of these options is rejected
        # too (dtvm does not know every option's arity, and no sane value is spelled like this)
        name = "-" + arg.lstrip("-") if arg.startswith("--") else arg
        why = REJECTED_OPTIONS.get(name)
        if why is not None:
            raise QemuArgvError(f"{arg} is not allowed here: {why}")
    return cmd


def _resolve_binary(name: str) -> str:
    """The executable to run: a path as given, a bare name from PATH."""
    if os.sep in name:
        if not os.path.exists(name):
            raise QemuNotFoundError(_not_found(name, f"{name}: no such file"))
        return name
    found = shutil.which(name)
    if found is None:
        raise QemuNotFoundError(_not_found(name, f"{name}: not found on PATH"))
    return found


def _not_found(name: str, head: str) -> str:
    package = debian_package(name)
    if package is None:
        return head
    return f"{head} (on Debian it is in the package {package}: apt-get install {package})"


def _unix_path(address: str) -> str:
    if not isinstance(address, str) or not address.startswith("unix:") or len(address) == len("unix:"):
        raise QemuArgvError(f"unsupported QMP address {address!r}: expected unix:PATH "
                            "(the socket of QEMU's -qmp unix:PATH,server=on,wait=off)")
    path = address[len("unix:"):]
    if "\0" in path:
        raise QemuArgvError(f"QMP address {address!r} contains a NUL character")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise QemuError(f"{address}: no such socket") from None
    except OSError as err:
        raise QemuError(f"{address}: {err.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise QemuError(f"{address}: not a socket")
    return path


# --------------------------------------------------------------------------------- process handling


def _private_dir(user: tuple[str, int, int] | None = None) -> str:
    """A fresh mode-0700 directory for the QMP socket, QEMU's output and the dumped DT.

    A unix socket path may not exceed 107 bytes; with a long TMPDIR the directory goes to /tmp.
    So does it when QEMU will drop to ``user`` and could not reach it (a TMPDIR of mode 0700).
    """
    tmp = tempfile.mkdtemp(prefix="dtvm-qemu-")
    too_long = len(os.path.join(tmp, "qmp.sock").encode()) > 100
    if (too_long or (user is not None and not _reachable(os.path.dirname(tmp), user))) and os.path.isdir("/tmp"):
        os.rmdir(tmp)
        tmp = tempfile.mkdtemp(prefix="dtvm-qemu-", dir="/tmp")
    return tmp


def _reachable(path: str, user: tuple[str, int, int]) -> bool:
    """Whether ``user`` may traverse every directory down to ``path`` (mode bits; ACLs aside)."""
    _, uid, gid = user
    path = os.path.abspath(path)
    while True:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _output_dir(tmp: str, user: tuple[str, int, int] | None) -> str:
    """The directory QEMU may write into: ``tmp`` itself, or, when QEMU drops to ``user``, a
    subdirectory that user owns (``tmp`` then becomes traversable, not listable, by others: it
    holds QEMU's output files, which stay root's, and the socket, which only QEMU's owner may
    connect to)."""
    if user is None:
        return tmp
    out = os.path.join(tmp, "qemu")
    os.mkdir(out, 0o700)
    os.chown(out, user[1], user[2])
    os.chmod(tmp, 0o711)
    return out


#: binary -> whether it accepted dtvm's -sandbox (absent: not tried yet in this process)
_SANDBOX_OK: dict[str, bool] = {}


def _refused_sandbox(error: QemuError) -> bool:
    """QEMU rejected the -sandbox dtvm added (built without seccomp, or too old for its filters)."""
    return isinstance(error, QemuExitedError) and error.status not in (None, 0) and any(
        "-sandbox" in line for line in error.stderr.splitlines()[:3])


#: binary -> whether it drops privileges with -run-with user= (QEMU >= 10.0 has no -runas)
_RUN_WITH: dict[str, bool] = {}


def _binary_key(binary: str) -> str | None:
    try:
        st = os.stat(binary)
    except OSError:
        return None
    return f"{os.path.realpath(binary)}|{st.st_mtime_ns}|{st.st_size}"


def _memo_path() -> str | None:
    """Beside the bindings cache, by the same rules (``dtvm.fileio.cache_dir``)."""
    where = cache_dir()
    return None if where is None else os.path.join(where, "qemu-run-with.json")


def _run_with(binary: str) -> bool:
    """Whether this binary drops privileges with -run-with: learnt in this process, or by an
    earlier dtvm (a small file beside the bindings cache, keyed by the binary's path, mtime and
    size), so that each run on QEMU 10.0 does not pay a refused start first (about 30 ms)."""
    known = _RUN_WITH.get(binary)
    if known is not None:
        return known
    path, key = _memo_path(), _binary_key(binary)
    if path is None or key is None:
        return False
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(1 << 16))
    except (OSError, ValueError):
        return False
    found = isinstance(data, list) and key in data
    _RUN_WITH[binary] = found
    return found


def _remember_run_with(binary: str) -> None:
    path, key = _memo_path(), _binary_key(binary)
    if path is None or key is None:
        return
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(1 << 16))
        keys = [k for k in data if isinstance(k, str)] if isinstance(data, list) else []
    except (OSError, ValueError):
        keys = []
    keys = [*[k for k in keys if k != key][-63:], key]
    tmp = ""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".qemu-run-with.")
        with os.fdopen(fd, "w") as f:
            json.dump(keys, f)
        os.replace(tmp, path)
    except OSError:  # a read-only home: learnt again next time
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _refused_runas(error: QemuError) -> bool:
    """QEMU rejected the -runas dtvm added ("-runas: invalid option": QEMU 10.0 and later)."""
    return isinstance(error, QemuExitedError) and error.status not in (None, 0) and any(
        "-runas" in line for line in error.stderr.splitlines()[:3])


def _spawn(cmd: list[str], stdout: Any, stderr: Any, cwd: str) -> process.Group:
    """Start QEMU (never through a shell) in its own process group; failing to execute is a QemuError."""
    try:
        return process.spawn_group(cmd, cwd=cwd, stdout=stdout, stderr=stderr)
    except FileNotFoundError:
        raise QemuNotFoundError(_not_found(cmd[0], f"{cmd[0]}: no such file")) from None
    except OSError as err:
        raise QemuError(f"cannot run {cmd[0]}: {err.strerror or err}") from None


def _stop(group: process.Group) -> None:
    """Kill QEMU's whole process group and reap it.  Nothing of QEMU's state is worth a graceful quit."""
    process.stop_group(group)


def _output(tmp: str, name: str) -> str:
    try:
        with open(os.path.join(tmp, name), "rb") as f:
            return f.read(_OUTPUT_CAP).decode("utf-8", "replace")
    except OSError:
        return ""


def _status_words(status: int) -> str:
    if status == -signal.SIGSYS:
        return "killed by SIGSYS: dtvm's -sandbox refused a system call, e.g. of an option that runs a helper"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


#: how QEMU starts a report of its own: ``[TIMESTAMP ]PROGRAM: `` (``-msg timestamp=on`` adds the
#: time, as libvirt asks) or a bare ``warning: ``
_REPORT = re.compile(r"^(?:\d{4}-\d\d-\d\dT\S+ )?(?:[^\s:]+: |warning: )")


def _errors(lines: list[str]) -> list[str]:
    """QEMU's stderr lines less its warnings, a warning's continuation lines included: QEMU prints
    a warning's hint on lines of their own without its prefix (``warning: This family of AMD CPU
    doesn't support hyperthreading(2)`` then ``Please configure -smp options properly ...``), and
    such a line is not the reason QEMU exited."""
    out: list[str] = []
    in_warning = False
    for line in lines:
        if ": warning: " in line or line.startswith("warning: "):
            in_warning = True
        elif in_warning and not _REPORT.match(line):
            continue
        else:
            in_warning = False
            out.append(line)
    return out


def _explain_exit(proc: subprocess.Popen[bytes], tmp: str, name: str, error: QemuError) -> QemuError:
    """If QEMU exited, its own words explain the failure better than the broken connection does."""
    try:
        status = proc.wait(timeout=0.2) if isinstance(error, QmpProtocolError | NotAnsweredError) else proc.poll()
    except subprocess.TimeoutExpired:
        status = None
    if status is None:
        return error
    stderr = _output(tmp, "stderr")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = (_errors(lines) or lines or [""])[0][:500]
    label = os.path.basename(name)
    if isinstance(error, NotAnsweredError):
        # exited before answering: QEMU's message is the whole story (it names itself and the option)
        if said:
            return QemuExitedError(said, status, stderr)
        stdout = next((ln.strip() for ln in _output(tmp, "stdout").splitlines() if ln.strip()), "")
        tail = f"; it printed: {stdout[:200]}" if stdout else ""
        return QemuExitedError(f"{label} exited ({_status_words(status)}) before answering on its QMP "
                               f"socket{tail}", status, stderr)
    detail = f": {said}" if said else ""
    return QemuExitedError(f"{label} exited ({_status_words(status)}) while dtvm was reading it{detail}",
                           status, stderr)
