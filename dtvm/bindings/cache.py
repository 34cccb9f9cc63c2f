"""The binding cache: the loaded binding set and every property check's compiled code, on disk.

Why: ``dtvm validate BLOB`` is mostly start-up. Parsing 100 YAML documents,
checking them against the format schema and generating fastjsonschema code
costs many times what validating a QEMU tree does; a warm run reads one small
index instead and imports neither PyYAML nor fastjsonschema.

What is stored (``marshal``: plain data and code objects only): a header, an
index (the binding set flattened to tuples, each shared PropSpec once, and
the list of files it depends on with their stat), then the yes/no check of
each distinct property schema as a marshalled code object
(``compile.check_code``), read with ``pread`` only when a value needs it.

Where: ``$DTVM_CACHE_DIR``, else ``$XDG_CACHE_HOME/dtvm``, else ``~/.cache/dtvm``;
one file per list of binding directories. ``DTVM_NO_CACHE=1`` turns it off.

Safety, because a cache must never change a result:

* the key is the cache format, the dtvm and Python versions, the directories,
  and the mtime, ctime (ns), size and inode of every binding file, of every directory
  walked to find them (adding, removing or renaming a file changes its
  directory's mtime), of dtvm's binding code (load, compile, cache, the format
  schema) and of fastjsonschema's generator; the stats are taken *before* the
  YAML is read, so an edit during a build only makes the next run rebuild;
* nothing is written while a file of the key changed in the last two seconds
  (a same-size edit within one timestamp tick would go unseen);
* the header has the index's length and CRC-32 and the file's size, and every
  code chunk its own CRC-32, checked when read: a truncated, corrupt or foreign
  file is ignored and rebuilt (a bad chunk is generated afresh and the file
  removed);
* it is written to a temporary file in the same directory and renamed, so a
  reader sees the old file or the new one, never half of one; a reader keeps
  reading the file it checked through its open descriptor;
* any error reading or writing it means: no cache, load the YAML.
"""

from __future__ import annotations

import gc
import marshal
import os
import sys
import time
import zlib
from typing import Any

from dtvm import __version__
from dtvm.bindings.load import Binding, BindingSet, NodeSpec, PropSpec, Regex, binding_files, load_yaml
from dtvm.fileio import cache_dir

__all__ = ["CodeChunk", "cache_dir", "cache_path", "dump_set", "fingerprint", "load_cached", "load_set"]

MAGIC = b"dtvm-bindings-cache 1\n"
_HEAD = len(MAGIC) + 12  # then: index length, index CRC-32, code region length (4 bytes each)
RACY_NS = 2_000_000_000  # files changed more recently than this are not trusted to a cache
MAX_FILES = 32  # cache files kept per cache directory (one per list of binding directories)
_CODE_FILES = ("load.py", "compile.py", "cache.py", "format.schema.yaml")


def _dirs_id(dirs: list[str]) -> str:
    """The directories as given (they name the bindings: ``bindings/x.yaml``) and where they are."""
    return "\0".join(f"{d}\0{os.path.abspath(d)}" for d in dirs)


def cache_path(dirs: list[str], where: str | None = None) -> str | None:
    """The cache file of this list of binding directories (None: caching is off)."""
    where = where if where is not None else cache_dir()
    if where is None:
        return None
    return os.path.join(where, f"bindings-{zlib.crc32(_dirs_id(dirs).encode()):08x}.cache")


def _meta(dirs: list[str]) -> str:
    """What the cache depends on besides files: format, dtvm and Python versions, the directories."""
    return "\n".join(
        (
            MAGIC.decode().strip(),
            f"dtvm {__version__}",
            f"python {sys.version} {sys.implementation.cache_tag} {sys.hexversion}",
            _dirs_id(dirs),
        )
    )


def _stat(path: str) -> tuple[str, int]:
    """``path``'s identity and times as text (``-`` when missing), and when it last changed (ns).

    The ctime as well as the mtime: tools can set a file's mtime back (``cp -p``,
    ``touch -d``), nothing but the clock sets its ctime.
    """
    try:
        st = os.stat(path)
    except OSError:
        return "-", 0
    return (
        f"{st.st_mtime_ns} {st.st_ctime_ns} {st.st_size} {st.st_ino} {st.st_dev}",
        max(st.st_mtime_ns, st.st_ctime_ns),
    )


_now_ns = time.time_ns  # the tests move the clock


def _fastjsonschema_file() -> str:
    """fastjsonschema's code generator, located without importing it (its stat is in the key)."""
    for entry in sys.path:
        path = os.path.join(entry or ".", "fastjsonschema", "generator.py")
        if os.path.isfile(path):
            return os.path.abspath(path)
    return "fastjsonschema-not-found"


def fingerprint(dirs: list[str]) -> tuple[list[tuple[str, str]], int] | None:
    """What the cache of ``dirs`` depends on, as (path, stat) pairs, and the latest change (ns).

    The binding files, and every directory walked to find them: a file added,
    removed or renamed changes its directory's mtime, so a warm run only
    stats the listed paths and need not walk the tree again. Also dtvm's
    binding code and fastjsonschema's generator. None if a directory is missing.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    paths = [*(os.path.join(here, f) for f in _CODE_FILES), _fastjsonschema_file()]
    for root in dirs:
        if not os.path.isdir(root):
            return None
        walked: list[str] = []
        files = binding_files(root, walked)
        paths += walked
        paths += [path for _rel, path in files]
    entries, newest = [], 0
    for path in paths:
        st, mtime = _stat(path)
        entries.append((path, st))
        newest = max(newest, mtime)
    return entries, newest


def _current(entries: list[tuple[str, str]]) -> bool:
    """Every path still has the stat it had when the cache was written."""
    for path, st in entries:
        if _stat(path)[0] != st:
            return False
    return True


# -- the binding set as plain data ---------------------------------------------------------
def _pattern(rx: Regex | None) -> str | None:
    return rx.pattern if rx is not None else None


def _regex(pattern: str | None) -> Regex | None:
    return Regex(pattern) if pattern is not None else None


def dump_set(bset: BindingSet, chunk_of: dict[int, int] | None = None) -> tuple[Any, ...]:
    """``bset`` as tuples, lists, dicts, strings and numbers (for marshal).

    ``chunk_of`` maps ``id(propspec)`` to the index of its check's code in the chunk
    table. Without it, the canonical form the tests compare a cached set with a
    loaded one by.
    """
    chunk_of = chunk_of or {}
    prop_ix: dict[int, int] = {}
    props: list[tuple[Any, ...]] = []
    specs: list[tuple[Any, ...]] = []
    spec_ix: dict[int, int] = {}

    def prop(p: PropSpec) -> int:
        i = prop_ix.get(id(p))
        if i is None:
            i = prop_ix[id(p)] = len(props)
            props.append((p.name, p.type, p.constraints, p.cells, p.file, p.line, chunk_of.get(id(p), -1)))
        return i

    def spec(s: NodeSpec) -> int:
        i = spec_ix.get(id(s))
        if i is not None:
            return i
        child = spec(s.child) if s.child is not None else -1
        i = spec_ix[id(s)] = len(specs)
        specs.append(
            (
                s.file,
                s.line,
                # a bare index where the key is the property's own name (nearly always)
                [prop(p) if name == p.name else (name, prop(p)) for name, p in s.props.items()],
                [(rx.pattern, prop(p)) for rx, p in s.patterns],
                [tuple(r) for r in s.required],
                _pattern(s.node_name),
                s.node_name_line,
                child,
            )
        )
        return i

    all_bindings = bset.bindings()
    b_ix = {id(b): i for i, b in enumerate(all_bindings)}
    bindings = [
        (
            b.file,
            list(b.compatible),
            spec(b.spec),
            _pattern(b.select_path),
            _pattern(b.select_name),
            b.select_root,
            b.qemu,
        )
        for b in all_bindings
    ]
    return (
        props,
        specs,
        bindings,
        [(key, b_ix[id(b)]) for key, b in bset.by_compatible.items()],
        [b_ix[id(b)] for b in bset.selects],
        list(bset.dirs),
    )


def load_set(data: tuple[Any, ...], chunks: list[CodeChunk] | None = None) -> BindingSet:
    """The BindingSet ``dump_set`` flattened (regular expressions compile on first use).

    Each property spec gets its check's ``CodeChunk`` (shared by the specs with the same
    schema), read from the cache file when a value first needs it.
    """
    props_t, specs_t, bindings_t, by_compat, selects, dirs = data
    chunks = chunks or []
    props = [
        PropSpec(name, type_, constraints, cells, file, line, chunks[c] if 0 <= c < len(chunks) else None)
        for name, type_, constraints, cells, file, line, c in props_t
    ]
    specs: list[NodeSpec] = []
    for file, line, sprops, patterns, required, node_name, node_name_line, child in specs_t:
        specs.append(
            NodeSpec(
                file,
                line,
                props={(props[e].name if e.__class__ is int else e[0]): props[e if e.__class__ is int else e[1]] for e in sprops},
                patterns=[(Regex(rx), props[i]) for rx, i in patterns],
                required=[tuple(r) for r in required],
                node_name=_regex(node_name),
                node_name_line=node_name_line,
                child=specs[child] if child >= 0 else None,  # children are dumped first
            )
        )
    bindings = [
        Binding(file, compatible, specs[si], _regex(sp), _regex(sn), root, qemu)
        for file, compatible, si, sp, sn, root, qemu in bindings_t
    ]
    return BindingSet(
        by_compatible={key: bindings[i] for key, i in by_compat},
        selects=[bindings[i] for i in selects],
        dirs=list(dirs),
    )


# -- the file ----------------------------------------------------------------------------------
class _File:
    """The open cache file that code chunks are read from on use; closed with the binding set.

    Reading through the descriptor keeps reading the file that was checked, even
    if another process replaces it in the meantime.
    """

    __slots__ = ("fd", "path")

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    def __del__(self, _close: Any = os.close) -> None:  # os may be gone at interpreter exit
        try:
            _close(self.fd)
        except OSError:
            pass


class CodeChunk:
    """A property check's marshalled code in the cache file, read and checked when first needed.

    ``fn`` keeps the function made from it (compile.prop_check), for the other
    property specs with the same schema.
    """

    __slots__ = ("crc", "file", "fn", "length", "offset")

    def __init__(self, file: _File, offset: int, length: int, crc: int) -> None:
        self.file = file
        self.offset = offset
        self.length = length
        self.crc = crc
        self.fn: Any = None

    def read(self) -> bytes | None:
        """The bytes, or None if they are not what was written (then the cache file is dropped)."""
        try:
            data = _pread(self.file.fd, self.length, self.offset)
        except OSError:
            data = b""
        if len(data) == self.length and zlib.crc32(data) == self.crc:
            return data
        _drop(self.file)
        return None


def _pread(fd: int, n: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows has no pread; dtvm reads its cache single-threaded
    return os.read(fd, n)


def _drop(file: _File) -> None:
    """Remove a cache file found damaged (if it is still the one we read), so the next run rebuilds it."""
    try:
        if os.stat(file.path).st_ino == os.fstat(file.fd).st_ino:
            os.unlink(file.path)
    except OSError:
        pass


def read_cache(path: str, meta: str) -> BindingSet | None:
    """The cached set if ``path`` holds one for ``meta`` whose files are all unchanged, else None.

    The index (everything but the code) is checked with its CRC-32 before it is
    unmarshalled; each code chunk is checked when it is read.
    """
    fd = -1
    collecting = gc.isenabled()
    gc.disable()  # thousands of long-lived objects: the collector's passes over them are waste
    try:
        fd = os.open(path, os.O_RDONLY)
        head = os.read(fd, 1 << 16)
        if not head.startswith(MAGIC) or len(head) < _HEAD:
            return None
        n = len(MAGIC)
        index_len = int.from_bytes(head[n : n + 4], "big")
        index_crc = int.from_bytes(head[n + 4 : n + 8], "big")
        region_len = int.from_bytes(head[n + 8 : n + 12], "big")
        if os.fstat(fd).st_size != _HEAD + index_len + region_len:
            return None  # truncated, or grown by something else
        index = head[_HEAD : _HEAD + index_len]
        if len(index) < index_len:
            index += _pread(fd, index_len - len(index), _HEAD + len(index))
        if len(index) != index_len or zlib.crc32(index) != index_crc:
            return None
        stored_meta, entries, chunk_table, data = marshal.loads(index)
        if stored_meta != meta or not _current(entries):
            return None
        source = _File(fd, path)
        fd = -1  # owned by the _File now
        base = _HEAD + index_len
        return load_set(data, [CodeChunk(source, base + off, n, crc) for off, n, crc in chunk_table])
    except Exception:  # unreadable, truncated, corrupt or of another layout: not a cache
        return None
    finally:
        if fd >= 0:
            os.close(fd)
        if collecting:
            gc.enable()


def write_cache(
    path: str, meta: str, entries: list[tuple[str, str]], bset: BindingSet, codes: list[bytes], chunk_of: dict[int, int]
) -> bool:
    """Write ``bset`` atomically (temporary file, then rename); False if it could not be written.

    ``codes`` are the marshalled checks, ``chunk_of`` maps ``id(propspec)`` to its index there.
    """
    table = []
    region = bytearray()
    for code in codes:
        table.append((len(region), len(code), zlib.crc32(code)))
        region += code
    try:
        index = marshal.dumps((meta, entries, table, dump_set(bset, chunk_of)))
    except ValueError:  # a value marshal cannot hold (never from a valid binding)
        return False
    head = MAGIC + len(index).to_bytes(4, "big") + zlib.crc32(index).to_bytes(4, "big") + len(region).to_bytes(4, "big")
    where = os.path.dirname(path)
    tmp = None
    try:
        os.makedirs(where, exist_ok=True)
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix=".bindings-", suffix=".tmp", dir=where)
        with os.fdopen(fd, "wb") as f:
            f.write(head + index + region)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        return False
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _prune(where, keep=path)
    return True


def _prune(where: str, keep: str) -> None:
    """Keep the newest MAX_FILES cache files (binding directories come and go, e.g. in tests)."""
    try:
        names = [n for n in os.listdir(where) if n.startswith("bindings-") and n.endswith(".cache")]
        if len(names) <= MAX_FILES:
            return
        paths = sorted((os.path.join(where, n) for n in names), key=lambda p: os.stat(p).st_mtime_ns)
        for p in paths[: len(paths) - MAX_FILES]:
            if p != keep:
                os.unlink(p)
    except OSError:
        pass


def load_cached(dirs: list[str]) -> BindingSet:
    """The bindings of ``dirs`` from the cache when it is current, else from YAML (then cached).

    BindingError as ``load_bindings`` for a broken binding: only a good set is ever cached.
    """
    path = cache_path(dirs)
    if path is None:
        return load_yaml(dirs)
    meta = _meta(dirs)
    hit = read_cache(path, meta)
    if hit is not None:
        return hit
    fp = fingerprint(dirs)  # before reading the YAML: an edit during the build shows next time
    bset = load_yaml(dirs)
    if fp is None:
        return bset
    entries, newest = fp
    if _now_ns() - newest < RACY_NS:
        return bset  # too fresh to trust its timestamps; the next run caches it
    from dtvm.bindings.compile import check_code, schema_key

    codes: list[bytes] = []
    by_key: dict[str, int] = {}
    chunk_of: dict[int, int] = {}
    for p in _props(bset):
        key = schema_key(p)
        i = by_key.get(key)
        if i is None:
            code = check_code(p)
            if code is None:
                continue  # not reducible: compile.prop_check falls back to fastjsonschema's own
            i = by_key[key] = len(codes)
            codes.append(marshal.dumps(code))
        chunk_of[id(p)] = i
        p.check_code = codes[i]
    write_cache(path, meta, entries, bset, codes, chunk_of)
    return bset


def _props(bset: BindingSet) -> list[PropSpec]:
    """Every property spec of ``bset`` (declared and pattern), each once."""
    seen: dict[int, PropSpec] = {}
    for b in bset.bindings():
        spec: NodeSpec | None = b.spec
        while spec is not None:
            for p in spec.props.values():
                seen.setdefault(id(p), p)
            for _rx, p in spec.patterns:
                seen.setdefault(id(p), p)
            spec = spec.child
    return list(seen.values())
