"""The libvirt connection: the optional binding, one-line errors, and nothing printed by libvirt.

``libvirt-python`` is an optional extra (``pip install 'dtvm[libvirt]'``): it builds against the
C library's headers, which a user of the devicetree toolchain should not need.  Everything here
imports it on first use and says in one line how to get it.  libvirt prints every error on stderr
by default before raising it; dtvm reports errors itself, once, so that printer is replaced.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from dtvm.errors import DtvmError

__all__ = ["DEFAULT_URI", "LibvirtError", "LibvirtMissingError", "binding", "lookup", "open_connection"]

#: The URI used when none is given: ``$LIBVIRT_DEFAULT_URI`` as virsh reads it, else the system daemon.
DEFAULT_URI = "qemu:///system"

INSTALL_HINT = ("libvirt-python is not installed: pip install 'dtvm[libvirt]' "
                "(it builds against libvirt's headers: apt-get install libvirt-dev pkg-config gcc python3-dev)")


class LibvirtError(DtvmError):
    """libvirt refused or failed (names the domain or URI)."""


class LibvirtMissingError(LibvirtError):
    """The ``libvirt`` Python binding is not installed."""

    exit_code = 2


def binding() -> tuple[Any, Any]:
    """The ``libvirt`` and ``libvirt_qemu`` modules, or :class:`LibvirtMissingError`."""
    try:
        import libvirt
        import libvirt_qemu
    except ImportError:
        raise LibvirtMissingError(INSTALL_HINT) from None
    # libvirt prints every error on stderr before raising it: dtvm says it once, in one line
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt, libvirt_qemu


def message(exc: BaseException) -> str:
    """libvirt's own words, first line, without its generic prefix."""
    get = getattr(exc, "get_error_message", None)
    text = str(get() if callable(get) else exc) or type(exc).__name__
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def default_uri(uri: str | None) -> str:
    return uri or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI


@contextlib.contextmanager
def open_connection(uri: str | None) -> Iterator[Any]:
    """A read-write connection to ``uri`` (closed on leaving), or a one-line :class:`LibvirtError`."""
    libvirt, _ = binding()
    where = default_uri(uri)
    try:
        conn = libvirt.open(where)
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"{where}: cannot connect: {message(exc)}") from None
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def lookup(conn: Any, name: str) -> Any:
    """The domain called ``name`` (or with that UUID), or a one-line error naming it."""
    libvirt, _ = binding()
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError:
        pass
    try:
        return conn.lookupByUUIDString(name)
    except libvirt.libvirtError:
        raise LibvirtError(f"domain {name!r}: no such domain on {conn.getURI()}") from None
