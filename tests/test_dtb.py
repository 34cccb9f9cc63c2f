"""dtvm.dt.dtb against its oracles: Debian's dtc 1.6.1 and pylibfdt.

No expected bytes are written by hand: fixtures are compiled by the real dtc,
expected blobs come from ``dtc -I dtb -O dtb``, and libfdt reads what we write.
Blobs crafted here (corrupt or unusual) are inputs only; dtc decides whether
they are acceptable and what they become.
"""

from __future__ import annotations

import functools
import shutil
import struct
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from dtvm.dt.dtb import decode_name, encode_name, read_dtb, write_dtb
from dtvm.dt.tree import DeviceTree, Node, Property, ReserveEntry
from dtvm.errors import BlobError

DTC = shutil.which("dtc")
pytestmark = pytest.mark.skipif(
    DTC is None,
    reason="dtc (Debian device-tree-compiler 1.6.1) is not on PATH; it is the oracle for these tests",
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "dtb"
DTS_FILES = sorted(FIXTURES.glob("*.dts"))
DTS_IDS = [p.stem for p in DTS_FILES]

# Messages of dtvm's rejections where dtc has undefined behaviour (it reads
# memory it does not own); there dtc may "accept" garbage, dtvm refuses.
UNDEFINED_IN_DTC = ("undefined in dtc",)


# ---------------------------------------------------------------------------
# helpers


def run_dtc(args: list[str], data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    assert DTC is not None
    return subprocess.run([DTC, *args], input=data, capture_output=True, timeout=60)


@functools.cache
def compile_fixture(path: Path, *opts: str) -> bytes:
    """The fixture compiled by dtc (``-f``: some fixtures are deliberately odd)."""
    r = run_dtc(["-f", "-q", "-I", "dts", "-O", "dtb", *opts, str(path)])
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def dtc_blob(blob: bytes, *opts: str) -> subprocess.CompletedProcess[bytes]:
    """``dtc -I dtb -O dtb`` of a blob; ``-f`` so that only the reader decides acceptance."""
    return run_dtc(["-f", "-q", "-I", "dtb", "-O", "dtb", *opts, "-"], blob)


def dtc_rejects_in_reader(r: subprocess.CompletedProcess[bytes]) -> bool:
    return r.returncode != 0


_NODE_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,._+*#?@-")
_PROP_CHARS = _NODE_CHARS - {ord("@")}


def _dtc_errors_before_name_check(dt: DeviceTree) -> bool:
    """Whether one of dtc's error checks that run before ``name_properties`` fails.

    dtc runs its checks as ``error = error || run_check(c)``: after the first
    failing error-level check, no later check runs at all, the fix-up of
    ``name_properties`` included.  The checks before it are
    duplicate_node_names, duplicate_property_names, node_name_chars and
    property_name_chars (node_name_format is only a warning).
    """
    for node in dt.root.walk():
        kids = [encode_name(c.name) for c in node.live_children()]
        if len(set(kids)) != len(kids):
            return True
        names = [encode_name(p.name) for p in node.live_props()]
        if len(set(names)) != len(names):
            return True
    for node in dt.root.walk():
        if not set(encode_name(node.name)) <= _NODE_CHARS:
            return True
    for node in dt.root.walk():
        if any(not set(encode_name(p.name)) <= _PROP_CHARS for p in node.live_props()):
            return True
    return False


def fix_name_properties(dt: DeviceTree) -> None:
    """Emulate the one dtc check that edits a tree read from a blob.

    dtc's ``name_properties`` (prerequisite ``name_is_string``) removes a
    ``name`` property equal to the node's base name; blobs older than v16
    carry one per node.  If any ``name`` property is not a single string, the
    prerequisite fails and nothing is removed; nor is anything when an earlier
    error check failed (see _dtc_errors_before_name_check).
    """
    if _dtc_errors_before_name_check(dt):
        return
    found: list[tuple[Node, Property]] = []
    for node in dt.root.walk():
        for prop in node.props:
            if not prop.deleted and prop.name == "name":
                found.append((node, prop))
                break
    for _, prop in found:
        v = prop.value
        if not v or v[-1] != 0 or 0 in v[:-1]:
            return
    for node, prop in found:
        raw = encode_name(node.name)
        at = raw.find(b"@")
        baselen = len(raw) if at < 0 else at
        if len(prop.value) == baselen + 1 and prop.value[:baselen] == raw[:baselen]:
            node.props.remove(prop)


OPT_KEYS = {"-V": "version", "-S": "minsize", "-p": "padsize", "-a": "alignsize", "-R": "reservenum"}


def write_like_dtc(dt: DeviceTree, opts: tuple[str, ...], warnings: list[str] | None = None) -> bytes:
    """Our write_dtb with the keyword arguments that dtc's options name."""
    kwargs: dict[str, int] = {}
    it = iter(opts)
    for opt in it:
        value = next(it)
        if opt == "-b":
            dt.boot_cpuid = int(value, 0)
        else:
            kwargs[OPT_KEYS[opt]] = int(value, 0)
    sink: list[str] = [] if warnings is None else warnings
    return write_dtb(dt, warn=sink.append, **kwargs)


def quiet_read(blob: bytes) -> DeviceTree:
    return read_dtb(blob, "test.dtb", warn=lambda _msg: None)


# ---------------------------------------------------------------------------
# writing: byte-identical to dtc

OPTION_SETS: list[tuple[str, ...]] = [
    (),
    ("-V", "17"),
    ("-V", "16"),
    ("-V", "3"),
    ("-V", "2"),
    ("-V", "1"),
    ("-S", "4096"),
    ("-S", "10"),
    ("-p", "100"),
    ("-p", "3"),
    ("-a", "64"),
    ("-a", "4"),
    ("-b", "7"),
    ("-b", "0xffffffff"),
    ("-R", "3"),
    ("-S", "1000", "-a", "256"),
    ("-p", "10", "-a", "16"),
    ("-V", "16", "-S", "3000", "-b", "2"),
    ("-V", "16", "-p", "5", "-a", "8"),
    ("-V", "1", "-p", "8", "-a", "32", "-b", "1"),
    ("-V", "2", "-b", "9", "-R", "1"),
]


@pytest.mark.parametrize("dts", DTS_FILES, ids=DTS_IDS)
def test_roundtrip_is_identity(dts: Path) -> None:
    blob = compile_fixture(dts)
    assert write_dtb(quiet_read(blob)) == blob


@pytest.mark.parametrize("opts", OPTION_SETS, ids=lambda o: " ".join(o) or "default")
@pytest.mark.parametrize("dts", DTS_FILES, ids=DTS_IDS)
def test_write_matches_dtc_options(dts: Path, opts: tuple[str, ...]) -> None:
    blob = compile_fixture(dts)
    expected = dtc_blob(blob, *opts)
    assert expected.returncode == 0, expected.stderr.decode()
    dt = quiet_read(blob)
    fix_name_properties(dt)
    assert write_like_dtc(dt, opts) == expected.stdout


@pytest.mark.parametrize("out_version", ["17", "16", "3", "2", "1"])
@pytest.mark.parametrize("in_version", ["1", "2", "3", "16"])
@pytest.mark.parametrize("dts", DTS_FILES, ids=DTS_IDS)
def test_read_old_versions(dts: Path, in_version: str, out_version: str) -> None:
    """Blobs dtc writes with -V 1/2/3/16 read back as dtc reads them."""
    old = compile_fixture(dts, "-V", in_version)
    expected = dtc_blob(old, "-V", out_version)
    assert expected.returncode == 0, expected.stderr.decode()
    dt = quiet_read(old)
    fix_name_properties(dt)
    assert write_dtb(dt, version=int(out_version)) == expected.stdout


def test_minsize_warning_matches_dtc() -> None:
    blob = compile_fixture(FIXTURES / "basic.dts")
    r = run_dtc(["-I", "dtb", "-O", "dtb", "-S", "16", "-"], blob)
    assert r.returncode == 0
    warnings: list[str] = []
    assert write_like_dtc(quiet_read(blob), ("-S", "16"), warnings) == r.stdout
    assert len(warnings) == 1
    assert warnings[0] + "\n" in r.stderr.decode()
    quiet: list[str] = []
    write_dtb(quiet_read(blob), minsize=16, quiet=1, warn=quiet.append)
    assert quiet == []


def test_unknown_version_is_rejected() -> None:
    dt = quiet_read(compile_fixture(FIXTURES / "empty.dts"))
    r = dtc_blob(compile_fixture(FIXTURES / "empty.dts"), "-V", "4")
    assert r.returncode != 0
    with pytest.raises(BlobError, match="Unknown device tree blob version 4"):
        write_dtb(dt, version=4)


def test_deleted_nodes_and_properties_are_skipped() -> None:
    """Deleted nodes and properties vanish, strings table included, as in dtc."""
    src = FIXTURES / "basic.dts"
    dt = quiet_read(compile_fixture(src))
    cpu1 = dt.get_node("/cpus/cpu@1")
    assert cpu1 is not None
    cpu1.delete()
    dt.root.delete_property("model")
    text = src.read_text() + "\n/ { /delete-property/ model; cpus { /delete-node/ cpu@1; }; };\n"
    r = run_dtc(["-f", "-q", "-I", "dts", "-O", "dtb", "-"], text.encode())
    assert r.returncode == 0, r.stderr.decode()
    assert write_dtb(dt) == r.stdout


# ---------------------------------------------------------------------------
# pylibfdt reads what we write


def _walk_libfdt(fdt: object) -> list[tuple[str, list[tuple[str, bytes]]]]:
    import libfdt

    out: list[tuple[str, list[tuple[str, bytes]]]] = []
    offset, depth = 0, 0
    while offset >= 0 and depth >= 0:
        props = []
        poff = fdt.first_property_offset(offset, [libfdt.FDT_ERR_NOTFOUND])  # type: ignore[attr-defined]
        while poff >= 0:
            prop = fdt.get_property_by_offset(poff)  # type: ignore[attr-defined]
            props.append((prop.name, bytes(prop)))
            poff = fdt.next_property_offset(poff, [libfdt.FDT_ERR_NOTFOUND])  # type: ignore[attr-defined]
        out.append((fdt.get_path(offset), props))  # type: ignore[attr-defined]
        offset, depth = fdt.next_node(offset, depth, [libfdt.FDT_ERR_NOTFOUND])  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize("version", [16, 17])
@pytest.mark.parametrize("dts", DTS_FILES, ids=DTS_IDS)
def test_pylibfdt_reads_our_blobs(dts: Path, version: int) -> None:
    libfdt = pytest.importorskip("libfdt")
    dt = quiet_read(compile_fixture(dts))
    dt.boot_cpuid = 3
    blob = write_dtb(dt, version=version, padsize=64)
    fdt = libfdt.Fdt(blob)
    assert fdt.version() == version
    assert fdt.boot_cpuid_phys() == 3
    assert fdt.num_mem_rsv() == len(dt.reservations)
    for i, entry in enumerate(dt.reservations):
        assert list(fdt.get_mem_rsv(i))[-2:] == [entry.address, entry.size]
    ours = [(n.path, [(p.name, p.value) for p in n.properties]) for n in dt.root.walk()]
    assert _walk_libfdt(fdt) == ours


# ---------------------------------------------------------------------------
# reading: dtc's acceptance, found by experiment, checked against dtc


FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, FDT_NOP, FDT_END = 1, 2, 3, 4, 9


def cells(*values: int) -> bytes:
    return b"".join(struct.pack(">I", v) for v in values)


def cstr(name: bytes) -> bytes:
    raw = name + b"\0"
    return raw + b"\0" * (-len(raw) % 4)


def craft(
    struct_block: bytes,
    strings: bytes = b"a\0bb\0name\0",
    *,
    version: int = 17,
    rsv: bytes = b"",
    gap: bytes = b"",
    extra: bytes = b"",
    boot: int = 0,
    last_comp: int = 16,
    **fields: int,
) -> bytes:
    """A v17-layout blob around the given blocks; ``fields`` override header values."""
    rsvmap = rsv + bytes(16)
    off_dt = 40 + len(rsvmap) + len(gap)
    off_str = off_dt + len(struct_block)
    head = {
        "totalsize": off_str + len(strings),
        "off_dt": off_dt,
        "off_str": off_str,
        "off_rsv": 40,
        "version": version,
        "last_comp": last_comp,
        "boot": boot,
        "size_str": len(strings),
        "size_dt": len(struct_block),
    }
    head.update(fields)
    header = struct.pack(
        ">10I",
        0xD00DFEED,
        head["totalsize"],
        head["off_dt"],
        head["off_str"],
        head["off_rsv"],
        head["version"],
        head["last_comp"],
        head["boot"],
        head["size_str"],
        head["size_dt"],
    )
    return header + rsvmap + gap + struct_block + strings + extra


ROOT = cells(FDT_BEGIN_NODE) + cstr(b"")
BODY = cells(FDT_PROP, 4, 0) + b"\x01\x02\x03\x04" + cells(FDT_BEGIN_NODE) + cstr(b"x") + cells(FDT_END_NODE)
TREE = ROOT + BODY + cells(FDT_END_NODE, FDT_END)
OLD_ROOT = cells(FDT_BEGIN_NODE) + cstr(b"/")

CRAFTED: dict[str, bytes] = {
    "plain": craft(TREE),
    "nop-before-root": craft(cells(FDT_NOP) + TREE),
    "nop-before-end": craft(ROOT + BODY + cells(FDT_END_NODE, FDT_NOP, FDT_END)),
    "nop-inside": craft(ROOT + cells(FDT_NOP) + BODY + cells(FDT_NOP, FDT_END_NODE, FDT_END)),
    "data-after-end": craft(TREE + cells(1, 2, 3) + b"\xff\xff"),
    "bytes-after-totalsize": craft(TREE, extra=b"garbage"),
    "truncated-file": craft(TREE)[:-1],
    "size-dt-struct-too-small": craft(TREE, size_dt=4),
    "size-dt-struct-zero": craft(TREE, size_dt=0),
    "size-dt-struct-past-end": craft(TREE, size_dt=10_000),
    "size-dt-strings-past-end": craft(TREE, size_str=100),
    "size-dt-strings-cuts-name": craft(TREE, size_str=1),
    "size-dt-strings-just-enough": craft(TREE, size_str=2),
    "prop-after-subnode": craft(
        ROOT + cells(FDT_BEGIN_NODE) + cstr(b"x") + cells(FDT_END_NODE, FDT_PROP, 0, 2, FDT_END_NODE, FDT_END)
    ),
    "end-inside-node": craft(ROOT + cells(FDT_END)),
    "unknown-token": craft(ROOT + cells(7, FDT_END_NODE, FDT_END)),
    "root-with-name": craft(cells(FDT_BEGIN_NODE) + cstr(b"rootname") + cells(FDT_END_NODE, FDT_END)),
    "no-fdt-end": craft(ROOT + cells(FDT_END_NODE)),
    "missing-end-node": craft(ROOT + BODY + cells(FDT_END)),
    "version-16": craft(TREE, version=16),
    "version-18": craft(TREE, version=18),
    "version-0": craft(TREE, version=0),
    "last-comp-garbage": craft(TREE, last_comp=0xFFFFFFFF),
    "boot-cpuid": craft(TREE, boot=0x12345678),
    "unaligned-struct-offset": craft(TREE, gap=b"\0\0"),
    "string-offset-negative": craft(ROOT + cells(FDT_PROP, 0, 0xFFFFFFFF, FDT_END_NODE, FDT_END)),
    "string-offset-mid-string": craft(ROOT + cells(FDT_PROP, 0, 3, FDT_END_NODE, FDT_END)),
    "string-offset-past-table": craft(ROOT + cells(FDT_PROP, 0, 100, FDT_END_NODE, FDT_END)),
    "string-unterminated": craft(ROOT + cells(FDT_PROP, 0, 0, FDT_END_NODE, FDT_END), b"abc"),
    "prop-length-2GiB": craft(ROOT + cells(FDT_PROP, 0x80000000, 0, FDT_END_NODE, FDT_END)),
    "prop-length-huge": craft(ROOT + cells(FDT_PROP, 0x7FFFFFFF, 0, FDT_END_NODE, FDT_END)),
    "prop-length-past-end": craft(ROOT + cells(FDT_PROP, 9, 0, FDT_END_NODE, FDT_END) + b"\0"),
    "prop-unpadded-at-end": craft(ROOT + cells(FDT_PROP, 1, 0), b"", size_str=0),
    "reserve-ends-at-size-zero": craft(TREE, rsv=struct.pack(">QQQQQQ", 5, 6, 7, 0, 8, 9)),
    "reserve-address-zero": craft(TREE, rsv=struct.pack(">QQ", 0, 6)),
    "reserve-map-unterminated": craft(TREE, off_rsv=100),
    "reserve-map-offset-past-end": craft(TREE, off_rsv=100_000),
    "nul-inside-name-padding": craft(
        ROOT + cells(FDT_BEGIN_NODE) + b"ab\0c\0\0\0" + cells(FDT_END_NODE, FDT_END_NODE, FDT_END)
    ),
    "name-unterminated": craft(cells(FDT_BEGIN_NODE) + b"abc", b""),
    "strings-at-totalsize": craft(ROOT + cells(FDT_END_NODE, FDT_END), b""),
    "totalsize-28": craft(TREE, totalsize=28),
    "totalsize-27": craft(TREE, totalsize=27),
    "totalsize-36-v17": craft(TREE, totalsize=36, off_rsv=0, off_dt=0, off_str=0),
    "struct-offset-past-end": craft(TREE, off_dt=1_000_000),
    "strings-offset-past-end": craft(TREE, off_str=1_000_000),
    "bad-magic": b"\xd0\x0d\xfe\xee" + craft(TREE)[4:],
    "three-bytes": b"\xd0\x0d\xfe",
    "six-bytes": b"\xd0\x0d\xfe\xed\0\0",
    "empty-file": b"",
    # Versions below 16: full paths, VARALIGN, name properties.
    "v1-varalign": craft(
        OLD_ROOT
        + cells(FDT_PROP, 8, 0)
        + bytes(4)
        + b"12345678"
        + cells(FDT_BEGIN_NODE)
        + cstr(b"/foobar")
        + cells(FDT_END_NODE, FDT_END_NODE, FDT_END),
        version=1,
    ),
    "v1-missing-varalign-pad": craft(
        OLD_ROOT + cells(FDT_PROP, 8, 0) + b"12345678" + cells(FDT_END_NODE, FDT_END), version=1
    ),
    "v1-path-prefix-not-component": craft(
        OLD_ROOT
        + cells(FDT_BEGIN_NODE)
        + cstr(b"/foo")
        + cells(FDT_BEGIN_NODE)
        + cstr(b"/foobar")
        + cells(FDT_END_NODE, FDT_END_NODE, FDT_END_NODE, FDT_END),
        version=1,
    ),
    "v1-path-not-a-child": craft(
        OLD_ROOT
        + cells(FDT_BEGIN_NODE)
        + cstr(b"/foo")
        + cells(FDT_BEGIN_NODE)
        + cstr(b"/bar")
        + cells(FDT_END_NODE, FDT_END_NODE, FDT_END_NODE, FDT_END),
        version=1,
    ),
    "v1-child-empty-name": craft(
        OLD_ROOT
        + cells(FDT_BEGIN_NODE)
        + cstr(b"/foo")
        + cells(FDT_BEGIN_NODE)
        + cstr(b"/foo/")
        + cells(FDT_END_NODE, FDT_END_NODE, FDT_END_NODE, FDT_END),
        version=1,
    ),
    "v1-child-same-path": craft(
        OLD_ROOT
        + cells(FDT_BEGIN_NODE)
        + cstr(b"/foo")
        + cells(FDT_BEGIN_NODE)
        + cstr(b"/foo")
        + cells(FDT_END_NODE, FDT_END_NODE, FDT_END_NODE, FDT_END),
        version=1,
    ),
    "v1-child-slash": craft(
        OLD_ROOT + cells(FDT_BEGIN_NODE) + cstr(b"/") + cells(FDT_END_NODE, FDT_END_NODE, FDT_END), version=1
    ),
    "v1-root-empty": craft(cells(FDT_BEGIN_NODE) + cstr(b"") + cells(FDT_END_NODE, FDT_END), version=1),
    "v1-root-x": craft(cells(FDT_BEGIN_NODE) + cstr(b"x") + cells(FDT_END_NODE, FDT_END), version=1),
    "v1-nop": craft(OLD_ROOT + cells(FDT_NOP, FDT_END_NODE, FDT_END), version=1),
    "v1-name-props": craft(
        OLD_ROOT
        + cells(FDT_PROP, 1, 5)
        + b"\0\0\0\0"
        + cells(FDT_BEGIN_NODE)
        + cstr(b"/y@1")
        + cells(FDT_PROP, 2, 5)
        + b"y\0\0\0"
        + cells(FDT_END_NODE, FDT_END_NODE, FDT_END),
        version=1,
    ),
    "v2-strings-to-totalsize": craft(
        OLD_ROOT + cells(FDT_PROP, 0, 0, FDT_END_NODE, FDT_END), version=2, size_str=0
    ),
    "v3-strings-size-used": craft(
        OLD_ROOT + cells(FDT_PROP, 0, 0, FDT_END_NODE, FDT_END), version=3, size_str=0
    ),
    "v2-totalsize-30": craft(
        OLD_ROOT + cells(FDT_END_NODE, FDT_END), version=2, totalsize=30, off_rsv=0, off_dt=0, off_str=0
    ),
}


def check_against_dtc(blob: bytes) -> tuple[bool, bool]:
    """Read ``blob`` with dtvm and dtc; assert they agree. Returns (dtc ok, we ok).

    dtvm must raise nothing but BlobError; when both accept, the re-written
    blob equals dtc's; when only one accepts, it must be dtc accepting a blob
    on which it has undefined behaviour (see UNDEFINED_IN_DTC).
    """
    try:
        dt: DeviceTree | None = quiet_read(blob)
        err: BlobError | None = None
    except BlobError as exc:
        dt, err = None, exc
        assert exc.offset is not None
    r = dtc_blob(blob)
    if r.returncode < 0:
        # dtc crashed (a length of 2 GiB in its reader, assertions in its
        # checks on garbage trees): no verdict to compare with.
        return False, dt is not None
    dtc_ok = r.returncode == 0
    if dt is not None:
        assert dtc_ok, f"dtvm accepts a blob dtc rejects: {r.stderr.decode(errors='replace')}"
        fix_name_properties(dt)
        assert write_dtb(dt) == r.stdout
    elif dtc_ok:
        assert err is not None
        assert any(m in err.message for m in UNDEFINED_IN_DTC), f"dtc accepts a blob dtvm rejects: {err}"
    return dtc_ok, dt is not None


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_blobs_accepted_as_dtc_accepts(name: str) -> None:
    check_against_dtc(CRAFTED[name])


@pytest.mark.parametrize("name", ["prop-after-subnode", "v1-nop", "nop-inside", "plain"])
def test_reader_warnings_match_dtc(name: str) -> None:
    blob = CRAFTED[name]
    warnings: list[str] = []
    read_dtb(blob, warn=warnings.append)
    r = run_dtc(["-f", "-I", "dtb", "-O", "dtb", "-o", "/dev/null", "-"], blob)
    ours = "".join(w + "\n" for w in warnings)
    theirs = "".join(
        line + "\n"
        for line in r.stderr.decode().splitlines()
        if line.startswith("Warning: ") and "(" not in line
    )
    theirs = theirs.replace("Warning: Input tree has errors, output forced\n", "")
    assert ours == theirs


def test_error_names_blob_and_offset() -> None:
    with pytest.raises(BlobError) as info:
        read_dtb(CRAFTED["unknown-token"], "board.dtb")
    assert info.value.offset == 40 + 16 + 8
    assert str(info.value).startswith("board.dtb: offset 0x40: error: Invalid opcode word 00000007")


@pytest.mark.parametrize("dts", DTS_FILES, ids=DTS_IDS)
def test_every_truncation_is_a_blob_error(dts: Path) -> None:
    blob = compile_fixture(dts)
    for n in range(len(blob)):
        for cut in (blob[:n], blob[:4] + struct.pack(">I", n) + blob[8:n]):
            with pytest.raises(BlobError):
                quiet_read(cut)


# ---------------------------------------------------------------------------
# hypothesis: mutated blobs

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SEED_BLOBS = (
    [compile_fixture(p, *v) for p in DTS_FILES for v in [(), ("-V", "16"), ("-V", "1")]] if DTC else [b""]
)
INTERESTING = [0, 1, 2, 3, 4, 7, 8, 9, 16, 17, 28, 40, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFC]


@st.composite
def mutated_blobs(draw: st.DrawFn) -> bytes:
    blob = bytearray(draw(st.sampled_from(SEED_BLOBS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                ["flip", "byte", "word", "header", "truncate", "insert", "delete", "version", "grow"]
            )
        )
        n = len(blob)
        if n == 0:
            break
        if kind == "flip":
            i = draw(st.integers(0, n - 1))
            blob[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            blob[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        elif kind == "word" and n >= 4:
            i = draw(st.integers(0, (n - 4) // 4)) * 4
            value = draw(
                st.sampled_from(INTERESTING) | st.integers(0, 0xFFFFFFFF) | st.sampled_from([1, 2, 3, 4, 9])
            )
            blob[i : i + 4] = struct.pack(">I", value)
        elif kind == "header" and n >= 40:
            field = draw(st.integers(1, 9))
            old = struct.unpack_from(">I", blob, field * 4)[0]
            if draw(st.booleans()):
                value = (old + draw(st.integers(-64, 64))) & 0xFFFFFFFF
            else:
                value = draw(st.sampled_from(INTERESTING) | st.integers(0, 0xFFFFFFFF))
            struct.pack_into(">I", blob, field * 4, value)
        elif kind == "version" and n >= 40:
            struct.pack_into(">I", blob, 20, draw(st.sampled_from([0, 1, 2, 3, 15, 16, 17, 18, 0x10000])))
        elif kind == "grow" and n >= 8:
            extra = draw(st.binary(min_size=1, max_size=16))
            blob += extra
            if draw(st.booleans()):
                size = struct.unpack_from(">I", blob, 4)[0]
                struct.pack_into(">I", blob, 4, (size + len(extra)) & 0xFFFFFFFF)
        elif kind == "truncate":
            del blob[draw(st.integers(0, n - 1)) :]
        elif kind == "insert":
            i = draw(st.integers(0, n))
            blob[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            i = draw(st.integers(0, n - 1))
            del blob[i : i + draw(st.integers(1, 8))]
    return bytes(blob)


@settings(
    max_examples=200,
    deadline=timedelta(seconds=5),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_blobs())
def test_mutated_blobs_match_dtc(blob: bytes) -> None:
    check_against_dtc(blob)


# ---------------------------------------------------------------------------
# names: any bytes round-trip

name_bytes = st.binary(min_size=1, max_size=12).filter(lambda b: b"\0" not in b)


@settings(database=None)
@given(st.binary(max_size=64), st.binary(max_size=64))
def test_name_codec_is_lossless_and_keeps_strcmp_order(a: bytes, b: bytes) -> None:
    """One character per byte: exact round trip, length and order as in C."""
    assert encode_name(decode_name(a)) == a
    assert len(decode_name(a)) == len(a)
    assert (decode_name(a) < decode_name(b)) == (a < b)


@settings(database=None)
@given(st.text(max_size=16))
def test_any_str_name_encodes(text: str) -> None:
    """Names built in Python may hold any character; writing must not fail."""
    assert isinstance(encode_name(text), bytes)


@settings(max_examples=30, deadline=timedelta(seconds=5), database=None)
@given(st.lists(name_bytes, min_size=1, max_size=5), st.lists(name_bytes, min_size=1, max_size=5))
def test_arbitrary_names_round_trip_through_dtc(node_names: list[bytes], prop_names: list[bytes]) -> None:
    root = Node("")
    for i, nb in enumerate(node_names):
        child = root.add_child(Node(decode_name(nb)))
        for pb in prop_names:
            child.add_property(Property(decode_name(pb), bytes([i])))
    dt = DeviceTree(root, [ReserveEntry(1, 2)])
    blob = write_dtb(dt)
    back = quiet_read(blob)
    assert [encode_name(c.name) for c in back.root.children] == node_names
    for c in back.root.children:
        assert [encode_name(p.name) for p in c.props] == prop_names
    assert write_dtb(back) == blob
    r = dtc_blob(blob)
    if r.returncode == 0:
        fix_name_properties(back)
        assert write_dtb(back) == r.stdout


# ---------------------------------------------------------------------------
# depth


def test_ten_thousand_levels() -> None:
    """10,000 nested nodes: dtc's parser stops near 3,300, so libfdt builds the blob."""
    libfdt = pytest.importorskip("libfdt")
    depth = 10_000
    sw = libfdt.FdtSw()
    sw.add_reservemap_entry(0x1000, 0x2000)
    sw.finish_reservemap()
    sw.begin_node("")
    for i in range(depth):
        sw.begin_node(f"n{i}")
        sw.property_u32("p", i)
    for _ in range(depth + 1):
        sw.end_node()
    built = bytes(sw.as_fdt().as_bytearray())
    canonical = dtc_blob(built)
    assert canonical.returncode == 0, canonical.stderr.decode()
    dt = quiet_read(built)
    assert write_dtb(dt) == canonical.stdout
    assert write_dtb(quiet_read(canonical.stdout)) == canonical.stdout
    node = dt.root
    for _ in range(depth):
        node = node.children[0]
    assert node.name == f"n{depth - 1}" and node.props[0].as_u32() == depth - 1


def test_deep_dts_compiled_by_dtc_all_versions(tmp_path: Path) -> None:
    depth = 3000
    text = (
        "/dts-v1/;\n/ {\n" + "".join(f"n{i} {{ p = <{i}>; " for i in range(depth)) + "};" * depth + "\n};\n"
    )
    src = tmp_path / "deep.dts"
    src.write_text(text)
    for version in ("17", "16"):
        blob = run_dtc(["-q", "-I", "dts", "-O", "dtb", "-V", version, str(src)]).stdout
        assert write_dtb(quiet_read(blob), version=int(version)) == blob
    shallow = "/dts-v1/;\n/ {\n" + "".join(f"n{i} {{ p = <{i}>; " for i in range(300)) + "};" * 300 + "\n};\n"
    src.write_text(shallow)
    old = run_dtc(["-q", "-I", "dts", "-O", "dtb", "-V", "1", str(src)]).stdout
    assert write_dtb(quiet_read(old), version=1) == old
