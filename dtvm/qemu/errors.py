"""The errors of the QEMU wing, at its ground so that every layer can raise them.

``qmp`` (the protocol and client layer) and ``live`` (the process layer on top of it) both raise
these; keeping them here is what lets ``qmp`` import nothing from ``live``.  Every one is a
:class:`~dtvm.errors.DtvmError` with a one-line message, so the command line prints it and exits
nonzero instead of showing a traceback.
"""

from __future__ import annotations

from dtvm.errors import DtvmError

__all__ = [
    "NotAnsweredError",
    "QemuArgvError",
    "QemuError",
    "QemuExitedError",
    "QemuNotFoundError",
    "QemuTimeoutError",
    "QmpCommandError",
    "QmpProtocolError",
    "QmpReplyError",
]


class QemuError(DtvmError):
    """Anything that went wrong while starting, reaching or reading QEMU (one line for the user)."""


class QmpProtocolError(QemuError):
    """The peer is not a (working) QMP server: garbage, no greeting, a hang-up, an oversized reply."""


class QmpReplyError(QmpProtocolError):
    """A well-formed QMP reply whose value is not what the command returns (wrong type, missing key,
    too large or too deep): the peer is not the QEMU dtvm knows, so nothing of it is used."""

    def __init__(self, where: str, command: str, detail: str) -> None:
        self.command = command
        self.detail = detail
        super().__init__(f"{where}: the answer to {command} is not what QEMU answers: {detail}")


class QmpCommandError(QemuError):
    """QEMU refused one command; ``error_class`` and ``desc`` are QEMU's own words."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        self.command = command
        self.error_class = error_class
        self.desc = desc
        super().__init__(f"QEMU refused {command}: {desc}")


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


class NotAnsweredError(QemuError):
    """QEMU went away before its first answer (replaced by QEMU's own message when it exited)."""
