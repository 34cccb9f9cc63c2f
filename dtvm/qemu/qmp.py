"""QMP for ``live``: a bounded session on the ``qemu.qmp`` library, and the commands that read a VM.

``qemu.qmp`` does the protocol (greeting, capabilities negotiation, ids, routing replies to
concurrent callers).  :class:`QmpSession` adds what reading someone else's VM needs and the library
leaves to its caller:

- every failure becomes one :class:`~dtvm.qemu.errors.QemuError` line (a socket that is not QMP,
  garbage, a reply that is too large, QEMU hanging up), never a library exception or a traceback;
- a cap on the size of one reply (the library's stream limit), so a broken or hostile server cannot
  make us buffer without bound;
- no per-message logging: the library pretty-prints every message for its debug log even when debug
  logging is off, which was the larger part of the client's own cost on big replies;
- no writes to a connection already lost (asyncio would print a warning on stderr), and the
  library's background tasks are always collected (``close``);
- every answer checked against the shape of its command (``dtvm.qemu.replies``) before anyone
  reads it, and messages the library would route blindly (an ``id`` that is a list, an ``event``
  that is not a name, JSON nested past the decoder's recursion limit) refused as protocol errors;
- events dropped on arrival unless a subclass wants them (the library's default listener keeps
  every event forever: a peer could fill memory with them).

:func:`read_snapshot` is the plan of commands (see ``dtvm.qemu.live`` for what it costs);
:func:`read_process` and :func:`read_address` add connecting and the deadline; :func:`run` drives
them on a private event loop.  ``live`` (the process layer above this one) imports this module only
when it reads (asyncio and ``qemu.qmp`` take 25 ms to import, which then overlaps QEMU's own start);
this module imports nothing from ``live``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import socket
import stat
import subprocess
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from qemu.qmp import (
    ConnectError,
    ExecInterruptedError,
    ExecuteError,
    QMPClient,
    QMPError,
    Runstate,
    StateError,
)
from qemu.qmp.error import ProtocolError
from qemu.qmp.message import DeserializationError, Message, UnexpectedTypeError
from qemu.qmp.qmp_client import GreetingError, NegotiationError, ServerParseError

from dtvm.errors import first_line
from dtvm.fileio import load_yaml, package_text
from dtvm.qemu.errors import (
    NotAnsweredError,
    QemuError,
    QemuTimeoutError,
    QmpCommandError,
    QmpProtocolError,
    QmpReplyError,
)
from dtvm.qemu.process import Terminated, cancel_on_signal, signals_as_interrupt
from dtvm.qemu.replies import ADDRESS_PROPS, MAX_DTB_BYTES, ReplyMismatch, check, describe_command
from dtvm.qemu.snapshot import Peripheral, Snapshot
from dtvm.vm.buses import device_facts

__all__ = ["ADDRESS_PROPS", "MAX_DTB_BYTES", "MAX_REPLY_BYTES", "QmpSession", "read_address", "read_process",
           "read_snapshot", "run"]

T = TypeVar("T")

#: The largest single QMP reply accepted (one JSON line).  ``info qtree`` of a q35 VM with 20 devices
#: is about 40 KB and the largest ``device-list-properties`` reply about 10 KB; 8 MiB leaves room for
#: very large VMs while bounding what a misbehaving server can make us hold.
MAX_REPLY_BYTES = 8 << 20

#: Fan-out bounds of one read: device types asked about (``device-list-properties`` each) and
#: -device/device_add devices walked.  A VM near these is far beyond what QEMU's buses hold; an
#: answer beyond them is refused rather than turned into that many commands.
MAX_DEVICE_TYPES = 4096
MAX_PERIPHERALS = 16384

# qom-list type names of the properties machine_props reads (QEMU spells integer types several ways:
# "int", "uint32", "uint64_t"); links, children and structs (SMPConfiguration, "struct tm", ...) are not
# read: they are not values of the machine type, and rtc-time changes every second.
_SCALAR_TYPE = re.compile(r"(bool|str|string|size|OnOffAuto|OnOffSplit|u?int(8|16|32|64)?(_t)?)\Z")

# one device line of `info qtree`: `  dev: virtio-net-pci, id "net0"`
_QTREE_DEV = re.compile(r'^[ \t]*dev: ([^\s,]+), id "', re.MULTILINE)

_PERIPHERAL_CONTAINERS = ("/machine/peripheral", "/machine/peripheral-anon")
#: a memory-backend-file's own properties (the rest are every memory back-end's: query-memdev)
_FILE_BACKEND_PROPS = ("mem-path", "align", "discard-data", "pmem", "readonly")
_CONNECT_POLL = 0.001  # seconds between attempts while QEMU creates its socket


class _QuietClient(QMPClient):
    """QMPClient without the per-message ``json.dumps(indent=2)`` of its logging hooks, and without
    writes to a connection that is already lost."""

    def _cb_outbound(self, msg: Message) -> Message:
        return msg

    def _cb_inbound(self, msg: Message) -> Message:
        return msg

    async def _do_recv(self) -> Message:
        try:
            return await super()._do_recv()
        except RecursionError:  # json's C decoder on [[[[...: not a QMP message
            raise DeserializationError("nested too deep", b"") from None

    async def _on_message(self, msg: Message) -> None:
        # The library routes by msg["id"] (a dict lookup: a list id raises TypeError in its reader
        # task) and dispatches events by name: refuse what no QMP server sends.
        if "event" in msg:
            if not isinstance(msg["event"], str) or not isinstance(msg.get("data", {}), dict):
                raise ProtocolError("it sent an event that is not a QMP event")
        elif msg.get("id") is not None and not isinstance(msg.get("id"), str):
            raise ProtocolError("it sent a reply whose id is not one dtvm gave")
        elif "return" not in msg and "error" not in msg:
            raise ProtocolError("it sent a message that is neither a reply nor an event")
        await super()._on_message(msg)

    def _do_send(self, msg: Message) -> None:
        # Once the peer is gone, asyncio's transport drops further writes and, from the fifth one on,
        # logs "socket.send() raised exception." on stderr; concurrent commands would trigger that.
        writer = self._writer
        if writer is not None and writer.transport.is_closing():
            raise ConnectionResetError("the QMP connection is closed")
        super()._do_send(msg)


def _describe(exc: BaseException | None) -> str:
    """A short reason for a protocol-level failure: the root cause, in words, not the wrapper."""
    while isinstance(exc, ConnectError | GreetingError | NegotiationError):
        if isinstance(exc, GreetingError):
            if isinstance(exc.exc, ProtocolError | KeyError | TypeError):
                return "its greeting is not a QMP greeting"
        elif isinstance(exc, NegotiationError):
            if isinstance(exc.exc, ProtocolError | AssertionError):
                return "it refused QMP capabilities negotiation"
        exc = exc.exc
    if exc is None:
        return "the connection was lost"
    if isinstance(exc, EOFError | ConnectionResetError | BrokenPipeError):
        return "the peer closed the connection"
    if isinstance(exc, ValueError) and "limit" in str(exc):
        return f"it sent a message larger than {MAX_REPLY_BYTES >> 20} MiB"
    if isinstance(exc, DeserializationError | UnicodeDecodeError):
        return "it sent something that is not JSON"
    if isinstance(exc, UnexpectedTypeError):
        return "it sent JSON that is not a QMP message"
    if isinstance(exc, ServerParseError):
        return "it reported an error without an id (it did not understand us)"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, ProtocolError):
        return exc.error_message.rstrip(".")
    text = str(exc).strip()
    return first_line(text) if text else type(exc).__name__


class QmpSession:
    """One negotiated QMP connection.

    ``where`` names the peer in messages (``unix:/run/vm.sock``).  Commands may be issued
    concurrently: QEMU answers them in order and the library routes each answer to its caller, which
    keeps QEMU's queue full instead of paying a client round trip per command.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.commands = 0  # issued so far (for timings and tests)
        self._client = _QuietClient(where, readbuflen=MAX_REPLY_BYTES)
        self._client.events.event_filter = self._take_event
        self._lost: str | None = None
        self._losing: asyncio.Future[str] | None = None
        #: the command line of the process at the other end of the socket (None: not readable)
        self.peer_argv: list[str] | None = None

    def _take_event(self, msg: Message) -> bool:
        """Events are not read here: keep none (a subclass that follows events overrides this)."""
        return False

    async def connect(self, path: str) -> None:
        """Connect to a unix socket, read the greeting, negotiate capabilities.

        Raises ``OSError`` subclasses untouched when nothing is listening (so a caller waiting for
        QEMU to create its socket can retry), :class:`QmpProtocolError` when something answers
        that is not QMP.  The socket is connected here rather than by the library, which would log
        every refused attempt of such a retry loop at ERROR level.
        """
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, path)
        except BaseException:
            sock.close()
            raise
        self.peer_argv = peer_command_line(sock)
        try:
            await self._client.connect(sock)
        except ConnectError as err:
            raise QmpProtocolError(f"{self.where}: not a QMP server: {_describe(err)}") from None
        except (AssertionError, EOFError, QMPError, ValueError) as err:
            # the peer hung up right after negotiating: the library then fails its own runstate
            # assertion instead of raising ConnectError
            reason = "the connection was lost" if isinstance(err, AssertionError) else _describe(err)
            raise QmpProtocolError(f"{self.where}: not a QMP server: {reason}") from None
        finally:
            if self._client.runstate == Runstate.IDLE:
                sock.close()

    async def execute(self, command: str, arguments: Mapping[str, object] | None = None) -> Any:
        """Run one command and return its ``return`` value, checked against the command's shape.

        QEMU's error answer raises :class:`QmpCommandError`; a broken connection or an answer that is
        not QMP raises :class:`QmpProtocolError`; an answer of the wrong shape :class:`QmpReplyError`.
        """
        if self._lost is not None:
            raise QmpProtocolError(self._lost)
        self.commands += 1
        try:
            value = await self._client.execute(command, arguments)
        except ExecuteError as err:
            raise QmpCommandError(command, err.error_class, err.error.error.desc) from None
        except (QMPError, OSError, EOFError, ValueError) as err:
            raise QmpProtocolError(await self._lose(command, err)) from None
        try:
            return check(command, arguments, value)
        except ReplyMismatch as err:
            raise QmpReplyError(self.where, describe_command(command, arguments), str(err)) from None

    async def _lose(self, command: str, err: BaseException) -> str:
        """The connection broke: find out why (once, however many commands were in flight)."""
        if self._lost is not None:
            return self._lost
        if self._losing is None:
            self._losing = asyncio.ensure_future(self._why(command, err))
        return await asyncio.shield(self._losing)

    async def _why(self, command: str, err: BaseException) -> str:
        reason = _describe(err)
        if isinstance(err, ExecInterruptedError | StateError):
            # the library's reader task holds the root cause; disconnect() re-raises it
            try:
                await asyncio.wait_for(self._client.disconnect(), 1.0)
            except TimeoutError:
                pass
            except Exception as cause:
                reason = _describe(cause)
        self._lost = f"{self.where}: QMP connection failed during {command}: {reason}"
        return self._lost

    async def close(self, wait: float = 0.5) -> None:
        """Disconnect, never raising; bounded because a peer that stops reading could block a flush."""
        try:
            await asyncio.wait_for(self._client.disconnect(), wait)
        except Exception:  # closing must not mask the real outcome (or a QEMU that already died)
            pass


# ----------------------------------------------------------------------------------- asyncio driver


def run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a private event loop (in a worker thread if this thread already has one).

    SIGTERM, SIGHUP and SIGQUIT interrupt it as Ctrl-C does (``dtvm.qemu.process``): the loop's tasks
    are cancelled, so their ``finally`` clauses (closing the session, removing directories) run.
    """
    with signals_as_interrupt():
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return _run_here(make)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="dtvm-qmp") as pool:
            return pool.submit(lambda: asyncio.run(_quietly(make()))).result()


_INTERRUPTED = object()


def _run_here(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run`` in this thread; a signal cancels the task (its clean-up runs at an await, as
    asyncio does for Ctrl-C) and is raised as :class:`Terminated` once the loop is closed."""
    received: list[int] = []

    async def main() -> Any:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None
        with cancel_on_signal(lambda: loop.call_soon_threadsafe(task.cancel)) as got:
            try:
                return await _quietly(make())
            except asyncio.CancelledError:
                if not got:
                    raise
                received.extend(got)
                return _INTERRUPTED

    coro = main()
    try:
        result = asyncio.run(coro)
    finally:
        # Ctrl-C before the loop started the task leaves ``main`` unstarted; closing it keeps
        # Python's "never awaited" warning off the user's terminal (a no-op once it ran)
        coro.close()
    if result is _INTERRUPTED:
        raise Terminated(received[0])
    return result  # type: ignore[no-any-return]


async def _quietly(coro: Awaitable[T]) -> T:
    # Our loop is private: whatever asyncio would report on it (a library task's late exception) is
    # already part of the QemuError we raise, and must not reach the user as a traceback on stderr.
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)
    return await coro


async def read_process(proc: subprocess.Popen[bytes], sock: str, tmp: str, deadline: float, timeout: float,
                       t: dict[str, float], started: float | None = None) -> Snapshot:
    """Connect to the QEMU that ``live`` started (retrying while it creates its socket) and read it.

    ``t["connect"]`` counts from ``started`` (``time.perf_counter()`` when QEMU was started).
    """
    name = os.path.basename(proc.args[0] if isinstance(proc.args, list) else str(proc.args))
    session = QmpSession(f"{name} (pid {proc.pid})")
    connected = False
    t0 = time.perf_counter() if started is None else started
    try:
        async with asyncio.timeout_at(deadline):
            while True:
                if proc.poll() is not None:
                    raise NotAnsweredError(f"{name} exited before answering on its QMP socket")
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
                    raise NotAnsweredError(f"{name} closed its QMP socket before answering") from None
            t["connect"] = _ms(t0)
            connected = True
            snap = await read_snapshot(session, tmp, t)
            snap.peer_argv = session.peer_argv
            return snap
    except TimeoutError:
        if not connected:
            raise QemuTimeoutError(
                f"{name} did not answer on its QMP socket within {timeout:g} s; an option that waits "
                "(e.g. a socket chardev with server=on and no wait=off) keeps QEMU from starting") from None
        raise QemuTimeoutError(f"{name} stopped answering QMP commands (timeout: {timeout:g} s)") from None
    finally:
        await session.close()


async def read_address(path: str, address: str, tmp: str, deadline: float, timeout: float,
                       t: dict[str, float]) -> Snapshot:
    """Connect once to a running QEMU's QMP socket and read it."""
    session = QmpSession(address)
    connected = False
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
            connected = True
            snap = await read_snapshot(session, tmp, t)
            snap.peer_argv = session.peer_argv
            return snap
    except TimeoutError:
        if not connected:
            raise QemuTimeoutError(
                f"{address}: no QMP greeting within {timeout:g} s (not QEMU, or QEMU is busy with another "
                "QMP client: it serves one per socket at a time)") from None
        raise QemuTimeoutError(f"{address}: stopped answering QMP commands (timeout: {timeout:g} s)") from None
    finally:
        await session.close()


#: the longest command line read from /proc (Linux caps argv at a few MiB; QEMU's are kilobytes)
MAX_PEER_ARGV = 1 << 20


def peer_command_line(sock: socket.socket) -> list[str] | None:
    """The command line of the QEMU behind a unix socket (SO_PEERCRED's pid, /proc/PID/cmdline),
    or None where it cannot be read (another host's or namespace's, hidden /proc, not Linux).

    QMP reports some back-ends only by id (a 9p device's fsdev: no query-fsdev in 7.2): their
    options are the command line's.  Only those options are taken from it (``dtvm.qemu.fsdev``),
    as host facts of the back-end overlay."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        pid = int.from_bytes(creds[:4], "little", signed=True)
        if pid <= 0:
            return None
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(MAX_PEER_ARGV + 1)
    except (OSError, AttributeError, ValueError):
        return None
    if len(raw) > MAX_PEER_ARGV:
        return None
    return [a.decode("utf-8", "surrogateescape") for a in raw.rstrip(b"\0").split(b"\0")] if raw else None


# -------------------------------------------------------------------------------------------- reading


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1e3, 3)


def _bound(s: QmpSession, command: str, count: int, limit: int, what: str) -> None:
    """Refuse an answer that would fan out into more commands than any real VM needs."""
    if count > limit:
        raise QmpReplyError(s.where, command, f"{count} {what}, more than the {limit} dtvm reads")


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


async def read_snapshot(session: QmpSession, tmp: str, t: dict[str, float], *,
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

    async def machine_props() -> tuple[dict[str, Any], list[str]]:
        listed = await s.execute("qom-list", {"path": "/machine"})
        names = [p["name"] for p in listed if _SCALAR_TYPE.match(str(p.get("type", "")))]
        # the -smp topology (a struct): the only place it is visible on machines without CPU hot-plug
        names += [p["name"] for p in listed if p["name"] == "smp" and p.get("type") == "SMPConfiguration"]
        # -m's size, slots and maxmem (a struct): slots and maxmem are visible nowhere else
        names += [p["name"] for p in listed if p["name"] == "memory" and p.get("type") == "MemorySizeConfiguration"]
        # CXL fixed memory windows (a list): read so that a machine with them is refused by name
        names += [p["name"] for p in listed if p["name"] == "cxl-fmw"]
        _bound(s, "qom-list /machine", len(names), MAX_DEVICE_TYPES, "scalar properties")
        later = [n for n in names if n in _getter_aborts()]  # read once the qtree shows it is safe
        names = [n for n in names if n not in later]
        missing = object()
        values = await r.all(r.get_or("/machine", n, missing) for n in names)
        return {n: v for n, v in zip(names, values, strict=True) if v is not missing}, later

    async def qtree() -> str:
        text = await s.execute("human-monitor-command", {"command-line": "info qtree"})
        if not isinstance(text, str):
            raise QmpProtocolError(f"{s.where}: 'info qtree' did not answer with text")
        types = sorted(set(_QTREE_DEV.findall(text)))
        _bound(s, "human-monitor-command 'info qtree'", len(types), MAX_DEVICE_TYPES, "device types")
        await r.all(r.type_props(name) for name in types)
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
        _bound(s, "qom-list /machine/peripheral*", len(found), MAX_PERIPHERALS, "devices")
        found.sort(key=lambda c: (c[0], _natural(c[1])))
        return await r.all(_peripheral(r, *c) for c in found)

    async def objects() -> dict[str, dict[str, Any]]:
        listed = await s.execute("qom-list", {"path": "/objects"})
        found = {str(p["name"]): str(p["type"])[6:-1] for p in listed if str(p.get("type", "")).startswith("child<")}
        _bound(s, "qom-list /objects", len(found), MAX_PERIPHERALS, "objects")
        out: dict[str, dict[str, Any]] = {name: {"type": kind} for name, kind in found.items()}
        # a file back-end's own settings, which query-memdev does not report (the host file)
        files = [(name, prop) for name, kind in found.items() if kind == "memory-backend-file"
                 for prop in _FILE_BACKEND_PROPS]
        missing = object()
        values = await r.all(r.get_or(f"/objects/{name}", prop, missing) for name, prop in files)
        for (name, prop), value in zip(files, values, strict=True):
            if value is not missing and not isinstance(value, (dict, list)):
                out[name][prop] = value
        return out

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
        await _check_dumpable(s)
        return await _dump_dtb(s, tmp)

    async def simple(command: str, arguments: dict[str, Any] | None = None) -> Any:
        return await s.execute(command, arguments)

    async def version_compat() -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
        """query-version, then (QEMU >= 9.1) the machine type's compat properties and the QOM
        parents they need: what the versioned type changes in device defaults."""
        version = await s.execute("query-version")
        qemu = version["qemu"]
        if (qemu["major"], qemu["minor"]) < _COMPAT_PROPS_SINCE:
            return version, [], {}
        async def optional(command: str, arguments: dict[str, Any]) -> Any:
            try:
                return await s.execute(command, arguments)
            except QmpCommandError:  # a peer that says 9.1 and does not know the argument: no compat data
                return []

        qom_type, machines, types = await r.all([
            r.get("/machine", "type"),
            optional("query-machines", {"compat-props": True}),
            optional("qom-list-types", {"abstract": True}),
        ])
        name = str(qom_type).removesuffix("-machine")
        compat = next((list(m.get("compat-props", [])) for m in machines if m["name"] == name), [])
        parents = {str(t["name"]): str(t["parent"]) for t in types if "parent" in t}
        return version, compat, parents

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
        ("version+compat", version_compat()),
        ("memory", simple("query-memory-size-summary")),
        ("memdevs", simple("query-memdev")),
        ("objects", objects()),
        ("block", simple("query-block")),
        ("block-nodes", simple("query-named-block-nodes")),
        ("chardevs", simple("query-chardev")),
        ("network", simple("human-monitor-command", hmp_network)),
        ("numa", simple("human-monitor-command", {"command-line": "info numa"})),
    ]
    try:
        results = dict(zip([n for n, _ in plan], await r.all(timed(n, c) for n, c in plan), strict=True))
    finally:
        r.cancel_pending()
    machine_values, later = results["machine-props"]
    present = set(_QTREE_DEV.findall(results["qtree+type-props"]))
    safe = [n for n in later if not present & set(_getter_aborts()[n])]
    missing = object()
    for name, value in zip(safe, await r.all(r.get_or("/machine", n, missing) for n in safe), strict=True):
        if value is not missing:
            machine_values[name] = value
    t["read"] = _ms(t0)
    t["commands"] = s.commands - commands0

    qom_type, defaults = results["machine-type+defaults"]
    cpus_listed, cpu_types = results["cpus"]
    version, compat, parents = results["version+compat"]
    type_props = r.known_type_props()
    return Snapshot(
        arch=str(results["target"]["arch"]),
        machine_type=qom_type.removesuffix("-machine"),
        machine_props=machine_values,
        machine_prop_defaults=defaults,
        qtree=results["qtree+type-props"],
        type_props=type_props,
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
        numa=str(results["numa"]),
        dtb=results["dtb"],
        argv=None,
        version=version,
        compat_props=compat,
        type_ancestors=_ancestors(type_props, compat, parents),
        objects=results["objects"],
    )


@functools.cache
def _getter_aborts() -> dict[str, list[str]]:
    """Machine property -> device types in whose presence its QOM getter aborts QEMU
    (``getter-aborts`` in data/machines.yaml)."""
    data = load_yaml(package_text("dtvm.qemu", "data/machines.yaml"))
    section = data.get("getter-aborts") if isinstance(data, dict) else None
    return {str(k): [str(t) for t in v] for k, v in (section or {}).items()}


#: the first QEMU whose query-machines reports compat-props
_COMPAT_PROPS_SINCE = (9, 1)


def _ancestors(types: Iterable[str], compat: list[dict[str, Any]], parents: dict[str, str]) -> dict[str, list[str]]:
    """For each device type a compat property reaches through a parent class: its QOM ancestors
    (nearest first).  Only these are kept: the whole type list is ~2,000 entries."""
    named = {str(c["qom-type"]) for c in compat}
    out: dict[str, list[str]] = {}
    for name in types:
        chain: list[str] = []
        parent = parents.get(name)
        while parent is not None and parent not in chain and len(chain) < 64:
            chain.append(parent)
            parent = parents.get(parent)
        if named.intersection(chain):
            out[name] = chain
    return out


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
    # chardev: on isa-serial an alias of the inner UART's property, which qtree does not show
    # and the links to other devices a type's -device must be given (vmmouse's i8042): devices.yaml
    links = (device_facts().get("device-links") or {}).get(typename) or {}
    wanted = [n for n in (*ADDRESS_PROPS, "chardev", *links) if n in names]
    missing = object()
    values = await r.all(r.get_or(path, n, missing) for n in wanted)
    own: dict[str, Any] = {}
    # settings no qdev property holds (virtio-mem's requested-size, virtio-mem-pci's alias of it):
    # devices.yaml qom-settings; info qtree never shows them
    settings = sorted({n for each in (device_facts().get("qom-settings") or {}).values() for n in each or ()} & names)
    if bus and settings:
        got = await r.all(r.get_or(path, n, missing) for n in settings)
        own = {n: v for n, v in zip(settings, got, strict=True) if isinstance(v, (int, str, bool))}
    if not bus and props is not None and "core-id" not in names:
        # on no bus, info qtree never shows the device: its settings come from QOM, one by one
        # (a hot-plugged CPU is on no bus either: read as a CPU, never here); lists and links are
        # not settings a -device takes
        settable = [str(p["name"]) for p in props
                    if not str(p.get("type", "")).startswith(("link<", "child<"))
                    and not str(p.get("type", "")).endswith("List") and p.get("name") != "parent_bus"]
        got = await r.all(r.get_or(path, n, missing) for n in settable)
        own = {n: v for n, v in zip(settable, got, strict=True) if v is not missing and not isinstance(v, (dict, list))}
    # its QOM links (a CAN card's canbus, acpi-erst's memdev): info qtree never shows them
    link_types = {str(p["name"]): str(p.get("type", "")) for p in props or ()
                  if str(p.get("type", "")).startswith("link<") and p.get("name") != "parent_bus"}
    targets = await r.all(r.get_or(path, n, "") for n in link_types)
    links = {n: {"type": t, "target": v if isinstance(v, str) else ""}
             for (n, t), v in zip(link_types.items(), targets, strict=True)}
    return Peripheral(
        qom_path=path,
        id=name if container == "/machine/peripheral" else None,
        type=typename,
        hotplugged=bool(hotplugged),
        parent_bus=bus or None,
        address={n: v for n, v in zip(wanted, values, strict=True) if v is not missing},
        props=own,
        links=links,
    )


async def _check_dumpable(s: QmpSession) -> None:
    """QEMU 7.2 dereferences a NULL FDT (SIGSEGV, the VM dies) on ``dumpdtb`` of a pseries VM that
    arrived by incoming migration and was not reset since: never ask it there."""
    qom_type = str(await s.execute("qom-get", {"path": "/machine", "property": "type"}))
    if not qom_type.startswith("pseries"):
        return
    migration = await s.execute("query-migrate")
    status = await s.execute("query-status")
    if isinstance(migration, dict) and migration.get("status") == "completed" \
            and isinstance(status, dict) and status.get("status") != "postmigrate":
        raise QemuError(
            f"{s.where}: this pseries VM came by incoming migration: QEMU 7.2 crashes on dumpdtb "
            "until the VM is reset, so dtvm does not read it (describe it before migrating)"
        )


async def _dump_dtb(s: QmpSession, tmp: str) -> bytes | None:
    """QEMU's own DT (QMP dumpdtb into our private directory), None for machines without one."""
    path = os.path.join(tmp, "qemu.dtb")
    try:
        await s.execute("dumpdtb", {"filename": path})
    except QmpCommandError as err:
        # 7.2: "doesn't have a FDT"; 10.0: "This machine doesn't have an FDT"
        if err.error_class == "CommandNotFound" or re.search(r"doesn't have an? FDT", err.desc):
            return None
        raise QemuError(f"{s.where}: dumpdtb failed: {err.desc}") from None
    try:
        # QEMU may run as another user who owns this directory: never follow a link it left there
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise QemuError(f"{s.where}: the DT QEMU dumped is not a regular file")
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
