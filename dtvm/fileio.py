"""Files the library writes: a temporary file in the same directory, then a rename.

A failed or interrupted run must never leave a half-written output behind, and an existing
output must stay untouched when the run fails.  This module is ground level: it imports nothing
of dtvm, so every layer (the toolchain, the VM description, QEMU, the commands) can use it.
"""

from __future__ import annotations

import os
import stat
import tempfile

__all__ = ["write_atomic"]


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (same-directory temp file + rename).

    Only regular files are replaced: a device, FIFO or other special file
    (``-o /dev/null``, ``-o /dev/stdout``) is written in place, as dtc does;
    renaming over it would destroy it.
    """
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(path, "wb") as f:
            f.write(data)
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".dtvm-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        # keep the permissions an ordinary open() would give
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
