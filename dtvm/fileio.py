"""Files in and out: bounded reading, and writing that never leaves half a file.

Reading.  Every tool takes files from anyone, and a path can name ``/dev/zero``, ``/dev/urandom``
or a FIFO whose writer never stops: a plain ``f.read()`` then grows until the process dies.  So
input is read in chunks against a cap, a regular file's size is checked before anything is read,
and a blob's header is read first, so that a file without the FDT magic is rejected after eight
bytes, as dtc rejects ``/dev/zero`` at once.

Writing.  A failed or interrupted run must never leave a half-written output behind, and an
existing output must stay untouched when the run fails: the data goes to a temporary file in the
same directory, then a rename.  A pair of outputs (a guest DTB and its back-end overlay) is
written both or neither.  Every OS failure (a directory, a read-only file system, a full disk, a
file-size limit) becomes one :class:`OutputError` line with the path and the OS's reason.

This module is ground level: it imports nothing of dtvm but :mod:`dtvm.errors`, so every layer
(the toolchain, the VM description, QEMU, the commands) can use it.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import sys
import tempfile
from typing import Any, BinaryIO

from dtvm.errors import DtvmError

__all__ = [
    "FDT_MAGIC",
    "MAX_BLOB",
    "MAX_SOURCE",
    "InputFileError",
    "OutputError",
    "cache_dir",
    "cleanup_temporaries",
    "is_data_error",
    "load_yaml",
    "package_dir",
    "package_text",
    "read_blob",
    "read_limited",
    "write_atomic",
    "write_pair",
    "write_stream",
]

#: The largest blob any tool reads.  The format's own limit is 4 GiB; real blobs are kilobytes
#: (the kernel's largest is under 300 KiB), QEMU refuses a DTB over 2 MiB.
MAX_BLOB = 256 << 20
#: The largest DTS source (or /incbin/ file) read.  The kernel's largest source is about 200 KiB.
MAX_SOURCE = 64 << 20
FDT_MAGIC = 0xD00DFEED

_CHUNK = 1 << 20


class InputFileError(DtvmError, OSError):
    """An input that cannot be read or is too large: ``file`` and a one-line ``message``.

    It is an OSError too (``strerror`` the message, ``filename`` the file), so that the many
    handlers written for ``open()``'s errors report it in their own words unchanged.
    """

    exit_code = 2

    def __init__(self, file: str, message: str, code: int = errno.EFBIG) -> None:
        OSError.__init__(self, code, message, file)
        self.file = file
        self.message = message

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


class OutputError(DtvmError, OSError):
    """An output that could not be written: the path and the OS's reason, on one line.

    An OSError too (``strerror`` the reason), for handlers that print the C tools' messages.
    """

    exit_code = 1

    def __init__(self, path: str, reason: str, code: int = errno.EIO) -> None:
        OSError.__init__(self, code, reason, path)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: error: cannot write: {self.reason}"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _size_text(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit} bytes"


def _open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputFileError(path, _reason(exc), exc.errno or errno.EIO) from None


class _Overflow(Exception):
    pass


def _read_upto(f: BinaryIO, want: int, limit: int | None = None, first: int = _CHUNK) -> bytes:
    """Up to ``want`` bytes, fewer only at end of file (a pipe or FIFO gives short reads).

    With ``limit``, more than ``limit`` bytes raise _Overflow before the chunks are joined, so
    an endless input costs the cap once, not twice.  ``first``: the size of the first read (a
    regular file's size and one: a 1 MiB buffer for a 100 KiB source cost more than its read)."""
    parts: list[bytes] = []
    got = 0
    chunk_size = max(1, min(first, _CHUNK))
    while got < want:
        asked = min(chunk_size, want - got)
        chunk = f.read(asked)
        if first < _CHUNK and 0 < len(chunk) < asked:
            # a regular file (``first`` is its size and one): a buffered read returns short only
            # at its end; asking again would allocate a 1 MiB buffer to read nothing
            parts.append(chunk)
            got += len(chunk)
            break
        chunk_size = _CHUNK
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
        if limit is not None and got > limit:
            parts.clear()
            raise _Overflow
    return b"".join(parts)


def _check_regular_size(f: BinaryIO, path: str, limit: int) -> int:
    """A regular file's size (checked against ``limit``), else ``_CHUNK``: what to read first."""
    try:
        st = os.fstat(f.fileno())
    except (OSError, ValueError, AttributeError):
        return _CHUNK
    if stat.S_ISDIR(st.st_mode):
        raise InputFileError(path, "Is a directory", errno.EISDIR)
    if stat.S_ISREG(st.st_mode):
        if st.st_size > limit:
            raise InputFileError(path, f"file of {st.st_size} bytes is larger than dtvm reads ({_size_text(limit)})")
        return st.st_size + 1  # one more: the end of the file is seen in the same read
    return _CHUNK


def read_limited(path: str, limit: int = MAX_SOURCE) -> bytes:
    """The whole file (``-`` is stdin), or InputFileError if it holds more than ``limit`` bytes.

    A regular file's size is checked before reading; anything else (a device, a FIFO, a pipe)
    is read in chunks and abandoned at ``limit + 1`` bytes, so ``/dev/zero`` costs at most
    ``limit`` bytes of memory and ends with one line.
    """
    f = _open_input(path)
    try:
        first = _check_regular_size(f, path, limit)
        data = _read_upto(f, limit + 1, limit, first)
    except _Overflow:
        raise InputFileError(path, f"input is larger than dtvm reads ({_size_text(limit)})") from None
    except InputFileError:
        raise
    except OSError as exc:
        raise InputFileError(path, _reason(exc), exc.errno or errno.EIO) from None
    finally:
        if f is not sys.stdin.buffer:
            f.close()
    return data


def read_blob(path: str, limit: int = MAX_BLOB, whole_file: bool = False) -> bytes:
    """A flattened blob's bytes, header first: what a blob reader needs and no more.

    Without the FDT magic in the first four bytes, only those bytes are returned (every blob
    reader rejects them on the magic, and ``/dev/zero`` is refused after reading 8 bytes).  With
    it, the blob is read up to ``totalsize`` (``whole_file`` reads on to the end of the file, for
    tools whose behaviour depends on the file's length, as the libfdt tools' buffer does), never
    past ``limit``: more is InputFileError.  A short file is returned short: the blob reader
    reports where it ends, as it would for any file.
    """
    f = _open_input(path)
    try:
        if whole_file:
            _check_regular_size(f, path, limit)
        head = _read_upto(f, 8)
        if len(head) < 4 or struct.unpack_from(">I", head)[0] != FDT_MAGIC:
            return head
        if len(head) < 8:
            return head
        total = struct.unpack_from(">I", head, 4)[0]
        if whole_file or total > limit:
            # a header claiming more than the cap is read to the cap: a short file is then
            # reported as the blob reader reports it ("EOF before ..."), a long one is refused
            try:
                return head + _read_upto(f, limit + 1 - len(head), limit - len(head))
            except _Overflow:
                what = "input" if whole_file else f"DT blob size {total}"
                raise InputFileError(path, f"{what} is larger than dtvm reads ({_size_text(limit)})") from None
        return head + _read_upto(f, max(0, total - len(head)))
    except InputFileError:
        raise
    except OSError as exc:
        raise InputFileError(path, _reason(exc), exc.errno or errno.EIO) from None
    finally:
        if f is not sys.stdin.buffer:
            f.close()


# ---------------------------------------------------------------------------
# writing

#: Temporary files of this process not yet renamed into place: removed by
#: :func:`cleanup_temporaries` when a signal ends the process mid-write.
_PENDING: set[str] = set()


def cleanup_temporaries() -> None:
    """Remove this process's unfinished temporary outputs (from a signal handler or atexit)."""
    for tmp in list(_PENDING):
        try:
            os.unlink(tmp)
        except OSError:
            pass
        _PENDING.discard(tmp)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _is_special(path: str) -> bool:
    """An existing non-regular file (``/dev/null``, ``/dev/stdout``, a FIFO) is written in place, as
    dtc does: renaming over it would destroy it."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode)


def _write_in_place(path: str, data: bytes) -> None:
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise OutputError(path, _reason(exc), exc.errno or errno.EIO) from None


def _stage(path: str, data: bytes) -> str:
    """Write ``data`` to a new temporary file beside ``path``; its name (registered as pending)."""
    if os.path.isdir(path):
        raise OutputError(path, "Is a directory", errno.EISDIR)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".dtvm-", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise OutputError(path, _reason(exc), exc.errno or errno.EIO) from None
    _PENDING.add(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
        # keep the permissions an ordinary open() would give
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException as exc:
        _discard(tmp)
        if isinstance(exc, OSError):
            raise OutputError(path, _reason(exc), exc.errno or errno.EIO) from None
        raise
    return tmp


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass
    _PENDING.discard(tmp)


def _commit(tmp: str, path: str) -> None:
    try:
        os.replace(tmp, path)
    except BaseException as exc:
        _discard(tmp)
        if isinstance(exc, OSError):
            raise OutputError(path, _reason(exc), exc.errno or errno.EIO) from None
        raise
    _PENDING.discard(tmp)


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (same-directory temp file + rename).

    Only regular files are replaced; a device, FIFO or other special file is written in place.
    Raises :class:`OutputError` (one line: path and reason) for any OS failure; the previous
    content of ``path`` is then untouched and no temporary file remains.
    """
    if _is_special(path):
        _write_in_place(path, data)
        return
    _commit(_stage(path, data), path)


def write_pair(first: tuple[str, bytes], second: tuple[str, bytes]) -> None:
    """Write two outputs both or neither (a guest DTB and its back-end overlay).

    Both are staged completely before either is renamed into place, so a full disk, a directory
    or a size limit on either leaves both old files as they were.  Between the two renames a
    failure is still possible (the second rename fails); then the first file is restored from a
    copy of its old content, so the pair stays consistent.
    """
    (path1, data1), (path2, data2) = first, second
    if os.path.abspath(path1) == os.path.abspath(path2):
        raise OutputError(path2, "the same file is given for both outputs")
    special1, special2 = _is_special(path1), _is_special(path2)
    tmp1 = None if special1 else _stage(path1, data1)
    try:
        tmp2 = None if special2 else _stage(path2, data2)
    except BaseException:
        if tmp1 is not None:
            _discard(tmp1)
        raise
    existed1 = os.path.lexists(path1)
    old1: bytes | None = None
    if tmp1 is not None and tmp2 is not None and existed1:
        try:
            with open(path1, "rb") as f:
                old1 = f.read()
        except OSError:
            old1 = None
    if tmp1 is None:
        _write_in_place(path1, data1)
    else:
        try:
            _commit(tmp1, path1)
        except BaseException:
            if tmp2 is not None:
                _discard(tmp2)
            raise
    if tmp2 is None:
        _write_in_place(path2, data2)
        return
    try:
        _commit(tmp2, path2)
    except BaseException:
        if tmp1 is not None:
            try:
                if not existed1:
                    os.unlink(path1)
                elif old1 is not None:
                    write_atomic(path1, old1)
            except (OSError, DtvmError):
                pass
        raise


def write_stream(stream: BinaryIO, data: bytes, name: str = "<stdout>") -> None:
    """Write to an open stream (stdout) and flush, an OS failure (``/dev/full``) as one
    :class:`OutputError`; a closed pipe stays a BrokenPipeError for the caller's quiet exit."""
    try:
        stream.write(data)
        stream.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        # what stays in the stream's buffer would be flushed again at exit (and fail again, with
        # Python's own message): the descriptor now points at /dev/null
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
        raise OutputError(name, _reason(exc), exc.errno or errno.EIO) from None


def package_dir(package: str) -> str:
    """The directory of a dtvm package (``dtvm.qemu``), where its data files are.

    dtvm is installed as files (a wheel unpacked, or the source tree): importlib.resources would
    find the same files, and importing it (with zipfile) cost about 5 ms of every ``qemu2dtb``.
    """
    import importlib

    module = sys.modules.get(package) or importlib.import_module(package)
    return os.path.dirname(os.path.abspath(str(module.__file__)))


def package_text(package: str, rel: str) -> str:
    """The text of data file ``rel`` (``data/machines.yaml``) of a dtvm package; OSError when absent."""
    with open(os.path.join(package_dir(package), *rel.split("/")), encoding="utf-8") as f:
        return f.read()


def cache_dir() -> str | None:
    """Where dtvm's caches go, or None when caching is off (``DTVM_NO_CACHE`` set and not 0).

    ``$DTVM_CACHE_DIR``, else ``$XDG_CACHE_HOME/dtvm``, else ``~/.cache/dtvm``: one rule for the
    bindings cache, the parsed data files and QEMU's remembered start options.
    """
    env = os.environ
    if env.get("DTVM_NO_CACHE", "") not in ("", "0"):
        return None
    if env.get("DTVM_CACHE_DIR"):
        return env["DTVM_CACHE_DIR"]
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dtvm")


#: Parsed data files kept at most (by content: an upgrade or an edit leaves the old ones behind)
_YAML_CACHE_FILES = 256
_YAML_CACHE_FORMAT = 1


def load_yaml(text: str) -> Any:
    """YAML data files of dtvm's own (machine schemas, device facts), parsed by libyaml when PyYAML
    has it: the pure-Python parser took about 30 ms of every ``qemu2dtb`` for three small files.

    The parsed data is kept in the cache directory, keyed by the text itself (the whole text is
    stored and compared, so a hit is exactly the same file): importing PyYAML and parsing the
    three files ``qemu2dtb`` reads cost about 17 ms of CPU per run, a cache hit about 1 ms.
    """
    import marshal
    import zlib

    raw = text.encode("utf-8", "surrogatepass")
    where = cache_dir()
    path = None
    if where is not None:
        path = os.path.join(where, "yaml", f"{len(raw)}-{zlib.crc32(raw):08x}.marshal")
        try:
            with open(path, "rb") as f:
                fmt, stored, data = marshal.loads(f.read(len(raw) * 8 + (1 << 20)))
            if fmt == _YAML_CACHE_FORMAT and stored == text:
                return data
        except Exception:
            pass
    import yaml

    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if path is not None:
        _store_yaml(path, text, data)
    return data


def is_data_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a data file's reading or YAML error (PyYAML is not imported to ask: on
    a cache hit it never was, and then the error cannot be one of its)."""
    yaml = sys.modules.get("yaml")
    return isinstance(exc, (OSError, UnicodeDecodeError)) or (yaml is not None and isinstance(exc, yaml.YAMLError))


def _store_yaml(path: str, text: str, data: Any) -> None:
    """Best effort: a cache that cannot be written (read-only home, full disk) is no error."""
    import marshal

    try:
        blob = marshal.dumps((_YAML_CACHE_FORMAT, text, data))
    except ValueError:  # a type marshal does not take (a YAML timestamp): parsed every time
        return
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        names = os.listdir(directory)
        if len(names) >= _YAML_CACHE_FILES:
            for name in names:
                os.unlink(os.path.join(directory, name))
        write_atomic(path, blob)
    except (OSError, OutputError):
        pass
