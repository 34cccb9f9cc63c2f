"""A bounded QMP session on top of the ``qemu.qmp`` library.

``qemu.qmp`` does the protocol (greeting, capabilities negotiation, ids, routing replies to
concurrent callers).  This layer adds what reading someone else's VM needs and the library leaves to
its caller:

- every failure becomes one :class:`QemuError` line (a socket that is not QMP, garbage, a reply that
  is too large, QEMU hanging up), never a library exception or a traceback;
- a cap on the size of one reply (the library's stream limit), so a broken or hostile server cannot
  make us buffer without bound;
- no per-message logging: the library pretty-prints every message for its debug log even when debug
  logging is off, which was the larger part of the client's own cost on big replies;
- the library's background tasks are always collected (``close``), so asyncio never prints
  "exception was never retrieved" on stderr after a failure.

Deadlines are the caller's (``asyncio.timeout``); everything here is cancellable.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import Any

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

from ..errors import DtvmError

__all__ = [
    "MAX_REPLY_BYTES",
    "QemuError",
    "QmpCommandError",
    "QmpProtocolError",
    "QmpSession",
]

#: The largest single QMP reply accepted (one JSON line).  ``info qtree`` of a q35 VM with 20 devices
#: is about 40 KB and the largest ``device-list-properties`` reply about 10 KB; 8 MiB leaves room for
#: very large VMs while bounding what a misbehaving server can make us hold.
MAX_REPLY_BYTES = 8 << 20

class QemuError(DtvmError):
    """Anything that went wrong while starting, reaching or reading QEMU (one line for the user)."""


class QmpProtocolError(QemuError):
    """The peer is not a (working) QMP server: garbage, no greeting, a hang-up, an oversized reply."""


class QmpCommandError(QemuError):
    """QEMU refused one command; ``error_class`` and ``desc`` are QEMU's own words."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        self.command = command
        self.error_class = error_class
        self.desc = desc
        super().__init__(f"QEMU refused {command}: {desc}")


class _QuietClient(QMPClient):
    """QMPClient without the per-message ``json.dumps(indent=2)`` of its logging hooks, and without
    writes to a connection that is already lost."""

    def _cb_outbound(self, msg: Message) -> Message:
        return msg

    def _cb_inbound(self, msg: Message) -> Message:
        return msg

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
    return text.splitlines()[0] if text else type(exc).__name__


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
        self._lost: str | None = None
        self._losing: asyncio.Future[str] | None = None

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
        try:
            await self._client.connect(sock)
        except ConnectError as err:
            raise QmpProtocolError(f"{self.where}: not a QMP server: {_describe(err)}") from None
        finally:
            if self._client.runstate == Runstate.IDLE:
                sock.close()

    async def execute(self, command: str, arguments: Mapping[str, object] | None = None) -> Any:
        """Run one command and return its ``return`` value.

        QEMU's error answer raises :class:`QmpCommandError`; a broken connection or an answer that is
        not QMP raises :class:`QmpProtocolError`.
        """
        if self._lost is not None:
            raise QmpProtocolError(self._lost)
        self.commands += 1
        try:
            return await self._client.execute(command, arguments)
        except ExecuteError as err:
            raise QmpCommandError(command, err.error_class, err.error.error.desc) from None
        except (QMPError, OSError, EOFError, ValueError) as err:
            raise QmpProtocolError(await self._lose(command, err)) from None

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
