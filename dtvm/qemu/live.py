"""Reading a QEMU VM online: start it paused, or reach a running one, and ask it over QMP.

Only QEMU itself knows what a command line builds (which devices a machine type adds, where it puts
them, which defaults apply), so dtvm asks the real binary instead of guessing.  The answers come back
raw in a :class:`~dtvm.qemu.snapshot.Snapshot`; understanding them is ``config``'s job.

Two entry points:

- :func:`read_argv` starts ``qemu-system-ARCH ARGS...`` paused (``-S``, ``-display none``) with an
  extra QMP socket in a private temporary directory, reads it and always kills it (by its pid), also
  on errors, timeouts and Ctrl-C.
- :func:`read_socket` reads a running VM through its QMP socket (``unix:PATH``) with queries only:
  no ``stop``/``cont``, no ``quit``; the VM keeps running as it was.

Cost: QEMU handles one QMP command per main-loop iteration (about 0.3 ms on a paused VM, whatever
the command), so the read is bounded by the number of commands, not by their size.  All independent
commands are issued at once and each dependent one as soon as what it needs has arrived, which
keeps QEMU's queue full; the client's own round trips disappear but QEMU's per-command cost stays.
The read issues one ``qom-get`` per scalar machine property, one ``device-list-properties`` per
device type in ``info qtree`` and two to four ``qom-get`` per ``-device``: nothing walks every
property of every device.

Everything is bounded: one deadline (``timeout``) covers starting QEMU, connecting and reading; one
reply may not exceed :data:`dtvm.qemu.qmp.MAX_REPLY_BYTES`; the dumped DT may not exceed
:data:`MAX_DTB_BYTES`.  Every failure is a :class:`QemuError` with a one-line message.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .qmp import QemuError, QmpCommandError, QmpProtocolError, QmpSession
from .snapshot import Peripheral, Snapshot

__all__ = [
    "ADDRESS_PROPS",
    "MAX_DTB_BYTES",
    "REJECTED_OPTIONS",
    "QemuArgvError",
    "QemuError",
    "QemuExitedError",
    "QemuNotFoundError",
    "QemuTimeoutError",
    "QmpCommandError",
    "QmpProtocolError",
    "debian_package",
    "read_argv",
    "read_socket",
]

T = TypeVar("T")

#: Bus address properties read from every ``-device``/``device_add`` device that has them.
ADDRESS_PROPS = ("addr", "port", "unit", "scsi-id", "lun", "channel", "nr", "reg", "iobase", "index",
                 "address", "bus-nr")

#: Options a command line given to :func:`read_argv` may not contain, and why.  ``-S``, ``-qmp``,
#: ``-monitor``, ``-mon`` and ``-display`` are accepted: dtvm adds ``-S`` anyway, extra monitors are
#: independent of dtvm's own QMP socket, and dtvm's ``-display none`` comes last and wins.
REJECTED_OPTIONS = {
    "-daemonize": "QEMU would detach from dtvm and keep running after the read",
    "-incoming": "QEMU would wait for a migration stream instead of building the machine",
    "-preconfig": "QEMU would wait for configuration commands instead of building the machine",
}

#: The largest device tree blob accepted from ``dumpdtb`` (arm ``virt`` pads its DT to 1 MiB).
MAX_DTB_BYTES = 16 << 20

#: Where each ``qemu-system-*`` binary comes from on Debian (the rest is in qemu-system-misc).
_DEBIAN_PACKAGES = {
    "x86_64": "qemu-system-x86", "i386": "qemu-system-x86", "x86_64-microvm": "qemu-system-x86",
    "aarch64": "qemu-system-arm", "arm": "qemu-system-arm",
    "ppc": "qemu-system-ppc", "ppc64": "qemu-system-ppc", "ppc64le": "qemu-system-ppc",
    "mips": "qemu-system-mips", "mipsel": "qemu-system-mips", "mips64": "qemu-system-mips",
    "mips64el": "qemu-system-mips",
    "sparc": "qemu-system-sparc", "sparc64": "qemu-system-sparc",
}

# qom-list type names of the properties machine_props reads (QEMU spells integer types several ways:
# "int", "uint32", "uint64_t"); links, children and structs (SMPConfiguration, "struct tm", ...) are not
# read: they are not values of the machine type, and rtc-time changes every second.
_SCALAR_TYPE = re.compile(r"(bool|str|string|size|OnOffAuto|OnOffSplit|u?int(8|16|32|64)?(_t)?)\Z")

# one device line of `info qtree`: `  dev: virtio-net-pci, id "net0"`
_QTREE_DEV = re.compile(r'^[ \t]*dev: ([^\s,]+), id "', re.MULTILINE)

_PERIPHERAL_CONTAINERS = ("/machine/peripheral", "/machine/peripheral-anon")
_CONNECT_POLL = 0.001  # seconds between attempts while QEMU creates its socket
_OUTPUT_CAP = 64 << 10  # bytes of QEMU's stdout/stderr looked at for an error message


class QemuArgvError(QemuError):
    """The command line cannot be read safely (rejected option, not a list of strings, ...)."""


class QemuNotFoundError(QemuError):
    """The QEMU binary does not exist (the message names the Debian package that provides it)."""


class QemuExitedError(QemuError):
    """QEMU exited on its own: it rejected the arguments, or died while being read.

    ``status`` is the exit status (negative: killed by that signal), ``stderr`` everything it said.
    """

    def __init__(self, message: str, status: int | None, stderr: str) -> None:
        self.status = status
        self.stderr = stderr
        super().__init__(message)


class QemuTimeoutError(QemuError):
    """QEMU did not answer within the deadline (a hang, or an option that makes it wait)."""


class _NotAnswered(QemuError):
    """QEMU went away before its first answer (replaced by QEMU's own message when it exited)."""


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


def read_argv(argv: Sequence[str], *, timeout: float = 10.0,
              timings: dict[str, float] | None = None) -> Snapshot:
    """Start ``argv`` (``["qemu-system-ARCH", ARGS...]``) paused, read it, stop it.

    QEMU gets ``-S -display none -qmp unix:SOCK,server=on,wait=off`` after the caller's arguments
    (``SOCK`` in a private ``mkdtemp`` directory), stdin from /dev/null and its stdout/stderr in files
    of that directory, so it can neither grab the terminal nor block on a full pipe.  The process is
    killed by its pid and reaped in every case (success, :class:`QemuError`, timeout, Ctrl-C), and
    the directory removed.  dtvm's own QMP monitor is left out of ``chardevs`` (it is not part of the
    VM the command line describes); everything else is QEMU's answer as it came.

    ``timeout`` bounds the whole call.  ``timings``, when given, receives milliseconds per stage:
    ``start`` (fork/exec), ``connect`` (start to QMP ready), one entry per command group (the time
    it completed, counted from the start of the read; groups overlap), ``read``, ``stop``, ``total``
    and ``commands`` (the number of QMP commands).
    """
    cmd = _checked_argv(argv)
    binary = _resolve_binary(cmd[0])
    t = timings if timings is not None else {}
    t0 = time.perf_counter()
    deadline = time.monotonic() + _checked_timeout(timeout)
    tmp = _private_dir()
    proc: subprocess.Popen[bytes] | None = None
    try:
        sock = os.path.join(tmp, "qmp.sock")
        qmp_arg = "unix:" + sock.replace(",", ",,") + ",server=on,wait=off"
        full = [binary, *cmd[1:], "-S", "-display", "none", "-qmp", qmp_arg]
        with open(os.path.join(tmp, "stdout"), "wb") as out, open(os.path.join(tmp, "stderr"), "wb") as err:
            proc = _spawn(full, out, err)
        t["start"] = _ms(t0)
        try:
            snap = _run(lambda: _read_process(proc, sock, tmp, deadline, timeout, t))
        except QemuError as error:
            raise _explain_exit(proc, tmp, cmd[0], error) from None
        snap.argv = list(argv)
        # dtvm's own monitor is not part of the VM the command line describes
        ours = f"unix:{sock},server=on"
        snap.chardevs = [c for c in snap.chardevs if not (isinstance(c, dict) and c.get("filename") == ours)]
        return snap
    finally:
        t1 = time.perf_counter()
        if proc is not None:
            _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
        t["stop"] = _ms(t1)
        t["total"] = _ms(t0)


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
    tmp = _private_dir()
    try:
        return _run(lambda: _read_address(path, address, tmp, deadline, timeout, t))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        t["total"] = _ms(t0)


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


def _private_dir() -> str:
    """A fresh mode-0700 directory for the QMP socket, QEMU's output and the dumped DT.

    A unix socket path may not exceed 107 bytes; with a long TMPDIR the directory goes to /tmp.
    """
    tmp = tempfile.mkdtemp(prefix="dtvm-qemu-")
    if len(os.path.join(tmp, "qmp.sock").encode()) > 100 and os.path.isdir("/tmp"):
        os.rmdir(tmp)
        tmp = tempfile.mkdtemp(prefix="dtvm-qemu-", dir="/tmp")
    return tmp


def _spawn(cmd: list[str], stdout: Any, stderr: Any) -> subprocess.Popen[bytes]:
    """Start QEMU (never through a shell); a binary that cannot be executed is a QemuError."""
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, close_fds=True)
    except FileNotFoundError:
        raise QemuNotFoundError(_not_found(cmd[0], f"{cmd[0]}: no such file")) from None
    except OSError as err:
        raise QemuError(f"cannot run {cmd[0]}: {err.strerror or err}") from None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill QEMU by its pid and reap it.  Nothing of QEMU's state is worth a graceful quit."""
    if proc.returncode is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL (D state)
        pass


def _output(tmp: str, name: str) -> str:
    try:
        with open(os.path.join(tmp, name), "rb") as f:
            return f.read(_OUTPUT_CAP).decode("utf-8", "replace")
    except OSError:
        return ""


def _status_words(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def _explain_exit(proc: subprocess.Popen[bytes], tmp: str, name: str, error: QemuError) -> QemuError:
    """If QEMU exited, its own words explain the failure better than the broken connection does."""
    try:
        status = proc.wait(timeout=0.2) if isinstance(error, QmpProtocolError | _NotAnswered) else proc.poll()
    except subprocess.TimeoutExpired:
        status = None
    if status is None:
        return error
    stderr = _output(tmp, "stderr")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if ": warning: " not in line and not line.startswith("warning: ")]
    said = (errors or lines or [""])[0][:500]
    label = os.path.basename(name)
    if isinstance(error, _NotAnswered):
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


# ----------------------------------------------------------------------------------- asyncio driver


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a private event loop (in a worker thread if this thread already has one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_quietly(make()))
    with ThreadPoolExecutor(1, thread_name_prefix="dtvm-qmp") as pool:
        return pool.submit(lambda: asyncio.run(_quietly(make()))).result()


async def _quietly(coro: Awaitable[T]) -> T:
    # Our loop is private: whatever asyncio would report on it (a library task's late exception) is
    # already part of the QemuError we raise, and must not reach the user as a traceback on stderr.
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)
    return await coro


class _Progress:
    """What the read is waiting for, for the timeout message."""

    def __init__(self, what: str) -> None:
        self.what = what


async def _read_process(proc: subprocess.Popen[bytes], sock: str, tmp: str, deadline: float, timeout: float,
                        t: dict[str, float]) -> Snapshot:
    name = os.path.basename(proc.args[0] if isinstance(proc.args, list) else str(proc.args))
    session = QmpSession(f"{name} (pid {proc.pid})")
    progress = _Progress("connect")
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout_at(deadline):
            while True:
                if proc.poll() is not None:
                    raise _NotAnswered(f"{name} exited before answering on its QMP socket")
                try:
                    await session.connect(sock)
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    await asyncio.sleep(_CONNECT_POLL)
                except OSError as err:
                    raise QemuError(f"{name}: cannot connect to its QMP socket: {err.strerror or err}") from None
                except QmpProtocolError:
                    # QEMU greets from its monitor thread before it builds the machine, and hangs up
                    # during negotiation when it then rejects an option: its stderr says why
                    raise _NotAnswered(f"{name} closed its QMP socket before answering") from None
            t["connect"] = _ms(t0)
            progress.what = "read"
            return await _read_snapshot(session, tmp, t)
    except TimeoutError:
        if progress.what == "connect":
            raise QemuTimeoutError(
                f"{name} did not answer on its QMP socket within {timeout:g} s; an option that waits "
                "(e.g. a socket chardev with server=on and no wait=off) keeps QEMU from starting") from None
        raise QemuTimeoutError(f"{name} stopped answering QMP commands (timeout: {timeout:g} s)") from None
    finally:
        await session.close()


async def _read_address(path: str, address: str, tmp: str, deadline: float, timeout: float,
                        t: dict[str, float]) -> Snapshot:
    session = QmpSession(address)
    progress = _Progress("connect")
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout_at(deadline):
            try:
                await session.connect(path)
            except ConnectionRefusedError:
                raise QemuError(f"{address}: connection refused (no QEMU is listening on it)") from None
            except OSError as err:
                raise QemuError(f"{address}: cannot connect: {err.strerror or err}") from None
            t["connect"] = _ms(t0)
            progress.what = "read"
            return await _read_snapshot(session, tmp, t)
    except TimeoutError:
        if progress.what == "connect":
            raise QemuTimeoutError(
                f"{address}: no QMP greeting within {timeout:g} s (not QEMU, or QEMU is busy with another "
                "QMP client: it serves one per socket at a time)") from None
        raise QemuTimeoutError(f"{address}: stopped answering QMP commands (timeout: {timeout:g} s)") from None
    finally:
        await session.close()


# -------------------------------------------------------------------------------------------- reading


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1e3, 3)


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The error to report from a failed task group: the first QemuError, depth first."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            exc = _first_error(exc)
        if isinstance(exc, QemuError):
            return exc
    first = group.exceptions[0]
    return _first_error(first) if isinstance(first, BaseExceptionGroup) else first


class _Reader:
    """Issues the commands of one read, concurrently (default) or one after another (measuring).

    Concurrent: every command group runs as a task of one TaskGroup, and every fan-out (one command
    per property, type or CPU) as tasks too, so QEMU always has the next commands queued.  A failure
    cancels everything still outstanding.
    """

    def __init__(self, session: QmpSession, concurrent: bool) -> None:
        self.s = session
        self.concurrent = concurrent
        self._type_props: dict[str, asyncio.Future[list[dict[str, Any]] | None]] = {}

    async def all(self, coros: Iterable[Awaitable[T]]) -> list[T]:
        if not self.concurrent:
            return [await c for c in coros]
        tasks: list[asyncio.Task[T]] = []
        try:
            async with asyncio.TaskGroup() as tg:
                for c in coros:
                    tasks.append(tg.create_task(_as_coro(c)))
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        return [task.result() for task in tasks]

    async def get(self, path: str, prop: str) -> Any:
        return await self.s.execute("qom-get", {"path": path, "property": prop})

    async def get_or(self, path: str, prop: str, default: Any) -> Any:
        try:
            return await self.get(path, prop)
        except QmpCommandError:
            return default

    async def type_props(self, typename: str) -> list[dict[str, Any]] | None:
        """device-list-properties of a type, asked once per read (None if QEMU refuses the type)."""
        fut = self._type_props.get(typename)
        if fut is None:
            fut = asyncio.ensure_future(self._fetch_type_props(typename))
            self._type_props[typename] = fut
        return await asyncio.shield(fut) if self.concurrent else await fut

    async def _fetch_type_props(self, typename: str) -> list[dict[str, Any]] | None:
        try:
            result = await self.s.execute("device-list-properties", {"typename": typename})
        except QmpCommandError:
            return None
        return result if isinstance(result, list) else None

    def known_type_props(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for name in sorted(self._type_props):
            fut = self._type_props[name]
            if fut.done() and not fut.cancelled() and fut.exception() is None and fut.result() is not None:
                out[name] = fut.result()  # type: ignore[assignment]
        return out

    def cancel_pending(self) -> None:
        for fut in self._type_props.values():
            if not fut.done():
                fut.cancel()


async def _as_coro(aw: Awaitable[T]) -> T:
    return await aw


async def _read_snapshot(session: QmpSession, tmp: str, t: dict[str, float], *,
                         concurrent: bool = True) -> Snapshot:
    """Everything a Snapshot holds, in as few QEMU main-loop iterations as the dependencies allow."""
    r = _Reader(session, concurrent)
    s = session
    t0 = time.perf_counter()
    commands0 = s.commands

    def timed(name: str, coro: Awaitable[T]) -> Awaitable[T]:
        async def run() -> T:
            start = time.perf_counter()
            result = await coro
            t[name] = _ms(start if not concurrent else t0)
            return result
        return run()

    async def machine_type() -> tuple[str, dict[str, Any]]:
        qom_type = await r.get("/machine", "type")
        listed = await s.execute("qom-list-properties", {"typename": qom_type})
        defaults = {p["name"]: p["default-value"] for p in listed if "default-value" in p}
        return str(qom_type), defaults

    async def machine_props() -> dict[str, Any]:
        listed = await s.execute("qom-list", {"path": "/machine"})
        names = [p["name"] for p in listed if _SCALAR_TYPE.match(str(p.get("type", "")))]
        missing = object()
        values = await r.all(r.get_or("/machine", n, missing) for n in names)
        return {n: v for n, v in zip(names, values, strict=True) if v is not missing}

    async def qtree() -> str:
        text = await s.execute("human-monitor-command", {"command-line": "info qtree"})
        if not isinstance(text, str):
            raise QmpProtocolError(f"{s.where}: 'info qtree' did not answer with text")
        await r.all(r.type_props(name) for name in sorted(set(_QTREE_DEV.findall(text))))
        return text

    async def peripherals() -> list[Peripheral]:
        async def children(container: str) -> list[tuple[str, str, str]]:
            try:
                listed = await s.execute("qom-list", {"path": container})
            except QmpCommandError:  # the container is created with its first device
                return []
            return [(container, p["name"], p["type"][6:-1]) for p in listed
                    if str(p.get("type", "")).startswith("child<")]

        found = [c for group in await r.all(children(c) for c in _PERIPHERAL_CONTAINERS) for c in group]
        found.sort(key=lambda c: (c[0], _natural(c[1])))
        return await r.all(_peripheral(r, *c) for c in found)

    async def cpus() -> tuple[list[dict[str, Any]], dict[str, str]]:
        listed = await s.execute("query-cpus-fast")
        paths = [c["qom-path"] for c in listed if "qom-path" in c]
        types = await r.all(r.get(p, "type") for p in paths)
        return listed, dict(zip(paths, types, strict=True))

    async def hotpluggable_cpus() -> list[dict[str, Any]]:
        try:
            result = await s.execute("query-hotpluggable-cpus")
        except QmpCommandError:  # "The feature 'query-hotpluggable-cpus' is not enabled" (virt, riscv)
            return []
        return list(result)

    async def dtb() -> bytes | None:
        return await _dump_dtb(s, tmp)

    async def simple(command: str, arguments: dict[str, Any] | None = None) -> Any:
        return await s.execute(command, arguments)

    hmp_network = {"command-line": "info network"}
    # Chains with dependants first, so their second round is queued while QEMU answers the rest.
    plan: list[tuple[str, Awaitable[Any]]] = [
        ("qtree+type-props", qtree()),
        ("peripherals", peripherals()),
        ("machine-props", machine_props()),
        ("machine-type+defaults", machine_type()),
        ("cpus", cpus()),
        ("hotpluggable-cpus", hotpluggable_cpus()),
        ("dtb", dtb()),
        ("target", simple("query-target")),
        ("version", simple("query-version")),
        ("memory", simple("query-memory-size-summary")),
        ("memdevs", simple("query-memdev")),
        ("block", simple("query-block")),
        ("block-nodes", simple("query-named-block-nodes")),
        ("chardevs", simple("query-chardev")),
        ("network", simple("human-monitor-command", hmp_network)),
    ]
    try:
        results = dict(zip([n for n, _ in plan], await r.all(timed(n, c) for n, c in plan), strict=True))
    finally:
        r.cancel_pending()
    t["read"] = _ms(t0)
    t["commands"] = s.commands - commands0

    qom_type, defaults = results["machine-type+defaults"]
    cpus_listed, cpu_types = results["cpus"]
    return Snapshot(
        arch=str(results["target"]["arch"]),
        machine_type=qom_type.removesuffix("-machine"),
        machine_props=results["machine-props"],
        machine_prop_defaults=defaults,
        qtree=results["qtree+type-props"],
        type_props=r.known_type_props(),
        peripherals=results["peripherals"],
        cpus=cpus_listed,
        cpu_types=cpu_types,
        hotpluggable_cpus=results["hotpluggable-cpus"],
        memory=results["memory"],
        memdevs=results["memdevs"],
        block=results["block"],
        block_nodes=results["block-nodes"],
        chardevs=results["chardevs"],
        network=str(results["network"]),
        dtb=results["dtb"],
        argv=None,
        version=results["version"],
    )


async def _peripheral(r: _Reader, container: str, name: str, typename: str) -> Peripheral:
    """One -device/device_add device: its flags and whichever address properties its type has."""
    path = f"{container}/{name}"
    first: list[Any] = await r.all([r.get(path, "hotplugged"), r.get_or(path, "parent_bus", ""),
                                    r.type_props(typename)])
    hotplugged, bus = first[0], first[1]
    props: list[dict[str, Any]] | None = first[2]
    if props is not None:
        names = {p.get("name") for p in props}
    else:  # QEMU would not list the type's properties: ask the instance
        names = {p.get("name") for p in await r.s.execute("qom-list", {"path": path})}
    wanted = [n for n in ADDRESS_PROPS if n in names]
    missing = object()
    values = await r.all(r.get_or(path, n, missing) for n in wanted)
    return Peripheral(
        qom_path=path,
        id=name if container == "/machine/peripheral" else None,
        type=typename,
        hotplugged=bool(hotplugged),
        parent_bus=bus or None,
        address={n: v for n, v in zip(wanted, values, strict=True) if v is not missing},
    )


async def _dump_dtb(s: QmpSession, tmp: str) -> bytes | None:
    """QEMU's own DT (QMP dumpdtb into our private directory), None for machines without one."""
    path = os.path.join(tmp, "qemu.dtb")
    try:
        await s.execute("dumpdtb", {"filename": path})
    except QmpCommandError as err:
        if err.error_class == "CommandNotFound" or "doesn't have a FDT" in err.desc:
            return None
        raise QemuError(f"{s.where}: dumpdtb failed: {err.desc}") from None
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DTB_BYTES + 1)
        os.unlink(path)
    except OSError as err:
        raise QemuError(f"{s.where}: cannot read the DT QEMU dumped: {err.strerror}") from None
    if len(data) > MAX_DTB_BYTES:
        raise QemuError(f"{s.where}: the DT QEMU dumped is larger than {MAX_DTB_BYTES >> 20} MiB")
    return data


def _natural(text: str) -> tuple[Any, ...]:
    """Sort key that puts device[2] before device[10]."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))
