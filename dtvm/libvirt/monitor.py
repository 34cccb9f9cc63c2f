"""QMP through libvirt: ``libvirt_qemu.qemuMonitorCommand``, never libvirt's monitor socket.

libvirt holds the one QMP connection of the QEMU it runs; a second client on that socket would
confuse its bookkeeping (and the socket is libvirt's private file).  Its QEMU passthrough API
forwards one command at a time and hands back QEMU's JSON answer; :class:`LibvirtSession` puts that
behind the same ``execute`` as :class:`dtvm.qemu.qmp.QmpSession`, so ``read_snapshot`` reads a
libvirt domain exactly as it reads a QEMU it started: same commands, same shape checks, same
bounds.  libvirt marks the domain ``custom-monitor`` tainted for it; that is the API's price.

The binding's calls block: they run in a small thread pool, so the reader's concurrent command
groups still overlap their round trips to libvirtd (which takes them in turn per domain).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dtvm.libvirt.connect import LibvirtError, binding, message
from dtvm.qemu.errors import QmpCommandError, QmpProtocolError, QmpReplyError
from dtvm.qemu.qmp import MAX_REPLY_BYTES
from dtvm.qemu.replies import ReplyMismatch, check, describe_command

__all__ = ["LibvirtSession"]

#: Passthrough calls in flight at once: libvirtd serves at most ``max_client_requests`` (default 5)
#: of one connection at a time, and keeping them queued hides the RPC round trips (measured with
#: bench/bench_libvirt.py: 1 thread 1.6 s, 4 threads 0.84 s per read on a loaded 2-CPU host).
WORKERS = 5


class LibvirtSession:
    """QMP commands to one running libvirt domain; ``where`` names it in messages."""

    def __init__(self, domain: Any, where: str) -> None:
        self.domain = domain
        self.where = where
        self.commands = 0
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="dtvm-libvirt")

    def call(self, command: str, arguments: Mapping[str, object] | None = None) -> Any:
        """One command, synchronously: QEMU's ``return`` value, checked against the command's shape."""
        libvirt, libvirt_qemu = binding()
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = dict(arguments)
        self.commands += 1
        try:
            text = libvirt_qemu.qemuMonitorCommand(self.domain, json.dumps(request), 0)
        except libvirt.libvirtError as exc:
            raise LibvirtError(f"{self.where}: {describe_command(command, arguments)}: {message(exc)}") from None
        if not isinstance(text, str) or len(text) > MAX_REPLY_BYTES:
            raise QmpProtocolError(f"{self.where}: the answer to {command} is larger than "
                                   f"{MAX_REPLY_BYTES >> 20} MiB")
        try:
            reply = json.loads(text)
        except ValueError:
            raise QmpProtocolError(f"{self.where}: the answer to {command} is not JSON") from None
        if not isinstance(reply, dict):
            raise QmpProtocolError(f"{self.where}: the answer to {command} is not a JSON object")
        if "error" in reply:
            err = reply["error"]
            if not isinstance(err, dict):
                raise QmpProtocolError(f"{self.where}: malformed error answer to {command}")
            raise QmpCommandError(command, str(err.get("class", "GenericError")), str(err.get("desc", "")))
        if "return" not in reply:
            raise QmpProtocolError(f"{self.where}: the answer to {command} has no return value")
        try:
            return check(command, arguments, reply["return"])
        except ReplyMismatch as exc:
            raise QmpReplyError(self.where, describe_command(command, arguments), str(exc)) from None

    async def execute(self, command: str, arguments: Mapping[str, object] | None = None) -> Any:
        """:meth:`call` off the event loop (the interface of ``QmpSession.execute``)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.call, command, arguments)

    async def command(self, command: str, arguments: Mapping[str, object] | None, timeout: float) -> Any:
        """``HotplugSession.command``'s interface (the deadline is the caller's)."""
        return await asyncio.wait_for(self.execute(command, arguments), timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
