"""Hostile input and hostile output targets (issue 19): bounded reading, deep trees, huge
literals, long cell lists, output errors, a pair of outputs, SIGTERM during a write.

Memory is held to a bound by running dtvm in a subprocess under ``RLIMIT_AS``: a bound, not a
timing.  Where dtc can judge an input it is the oracle (same acceptance, same output).
"""

from __future__ import annotations

import os
import random
import resource
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dtvm.fileio import InputFileError, OutputError, read_blob, read_limited, write_atomic, write_pair
from tests.oracle import assert_same, needs_dtc

MiB = 1 << 20


def _limits(as_bytes: int | None = None, fsize: int | None = None):  # type: ignore[no-untyped-def]
    def apply() -> None:
        if as_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return apply


def run_dtvm(
    args: list[str], cwd: str | Path | None = None, as_bytes: int | None = 600 * MiB, fsize: int | None = None,
    stdout: int | None = None, timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """``dtvm ARGS`` in a subprocess under the given limits (stdout captured unless given)."""
    return subprocess.run(
        [sys.executable, "-m", "dtvm", *args], cwd=cwd, preexec_fn=_limits(as_bytes, fsize),
        stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
    )


def one_line_error(p: subprocess.CompletedProcess[bytes]) -> str:
    """The process failed with a short clean message: nonzero, no traceback, no MemoryError."""
    err = p.stderr.decode("latin-1")
    assert p.returncode not in (0, -9, -11), (p.returncode, err[-2000:])
    assert "Traceback" not in err and "MemoryError" not in err, err[-3000:]
    assert err.strip(), "no message"
    return err


def deep_dtb(depth: int, name: bytes = b"a") -> bytes:
    """A valid v17 blob: a chain of ``depth`` nodes (root included), no properties."""
    pad = b"\0" * (4 - len(name) % 4)
    s = bytearray(struct.pack(">I", 1) + b"\0" * 4)
    begin = struct.pack(">I", 1) + name + pad
    s += begin * (depth - 1)
    s += struct.pack(">I", 2) * depth
    s += struct.pack(">I", 9)
    off_dt = 40 + 16
    total = off_dt + len(s)
    head = struct.pack(">10I", 0xD00DFEED, total, off_dt, total, 40, 17, 16, 0, 0, len(s))
    return head + bytes(16) + bytes(s)


# ---------------------------------------------------------------------------
# bounded reading


BLOB_READERS = [
    ["dtc", "-I", "dtb", "-O", "dts", "{f}"],
    ["fdtget", "{f}", "/", "compatible"],
    ["fdtput", "{f}", "/", "x", "1"],
    ["fdtdump", "{f}"],
    ["fdtoverlay", "-i", "{f}", "-o", "{out}", "{f}"],
    ["validate", "{f}"],
    ["show", "{f}"],
    ["diff", "{f}", "{f}"],
    ["dtb2qemu", "{f}"],
    ["dtc", "-I", "dts", "-O", "dtb", "{f}"],
]


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom"])
@pytest.mark.parametrize("argv", BLOB_READERS, ids=lambda a: "-".join(a[:3]))
def test_special_files_rejected_bounded(argv: list[str], special: str, tmp_path: Path) -> None:
    """Every reader refuses an endless device in bounded memory with one line (before: MemoryError
    after reading gigabytes).  dtc refuses /dev/zero as a blob on its magic number."""
    if not os.path.exists(special):
        pytest.skip(f"{special} does not exist here")
    args = [a.format(f=special, out=str(tmp_path / "out.dtb")) for a in argv]
    p = run_dtvm(args, cwd=tmp_path, as_bytes=500 * MiB, timeout=60)
    one_line_error(p)
    assert not (tmp_path / "out.dtb").exists()


@needs_dtc
def test_dev_zero_as_blob_matches_dtc(tmp_path: Path) -> None:
    ref = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", "/dev/zero"], capture_output=True, timeout=30)
    p = run_dtvm(["dtc", "-I", "dtb", "-O", "dts", "/dev/zero"], cwd=tmp_path, as_bytes=300 * MiB)
    assert ref.returncode != 0 and p.returncode != 0
    assert b"incorrect magic number" in ref.stderr and b"incorrect magic number" in p.stderr


def _fifo_writer(path: Path, data: bytes, endless: bytes | None = None) -> threading.Thread:
    def feed() -> None:
        try:
            with open(path, "wb") as f:
                f.write(data)
                if endless is not None:
                    chunk = endless * 65536
                    while True:
                        f.write(chunk)
        except (BrokenPipeError, OSError):
            pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    return t


@needs_dtc
def test_fifo_blob_same_as_dtc(tmp_path: Path) -> None:
    """A blob arriving through a FIFO is read as dtc reads it (same DTS out)."""
    src = tmp_path / "t.dts"
    src.write_text('/dts-v1/;\n/ { compatible = "x"; n@1 { reg = <1>; }; };\n')
    blob = subprocess.run(["dtc", "-O", "dtb", str(src)], capture_output=True, check=True).stdout
    ref = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", "-"], input=blob, capture_output=True, check=True).stdout
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t = _fifo_writer(fifo, blob)
    p = run_dtvm(["dtc", "-I", "dtb", "-O", "dts", str(fifo)], cwd=tmp_path)
    t.join(5)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ref


@pytest.mark.parametrize("argv", [["dtc", "-I", "dtb", "-O", "dts"], ["fdtget"], ["dtc", "-I", "dts", "-O", "dtb"]])
def test_endless_fifo_bounded(argv: list[str], tmp_path: Path) -> None:
    """A FIFO whose writer never stops: a blob reader stops on the magic, a source reader at its
    cap; either way one line and bounded memory."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    _fifo_writer(fifo, b"", endless=b"\0")
    args = [*argv, str(fifo)] + (["/", "x"] if argv == ["fdtget"] else [])
    p = run_dtvm(args, cwd=tmp_path, as_bytes=500 * MiB, timeout=60)
    one_line_error(p)


def test_read_blob_header_first(tmp_path: Path) -> None:
    """read_blob: no magic -> the first bytes only; a header claiming more than the cap -> read to
    the cap, a short file returned short (the blob reader reports it), a long one refused."""
    f = tmp_path / "x"
    f.write_bytes(b"\x12\x34\x56\x78" + bytes(5000))
    assert read_blob(str(f), 1024) == b"\x12\x34\x56\x78" + bytes(4)
    head = struct.pack(">II", 0xD00DFEED, 0xFFFFFFF0)
    f.write_bytes(head + bytes(100))
    assert read_blob(str(f), 1024) == head + bytes(100)
    f.write_bytes(head + bytes(5000))
    with pytest.raises(InputFileError, match="larger than dtvm reads"):
        read_blob(str(f), 1024)
    good = struct.pack(">II", 0xD00DFEED, 64) + bytes(56)
    f.write_bytes(good + b"trailing")
    assert read_blob(str(f), 1024) == good
    assert read_blob(str(f), 1024, whole_file=True) == good + b"trailing"


def test_read_limited(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(bytes(2000))
    with pytest.raises(InputFileError, match="larger than dtvm reads"):
        read_limited(str(f), 1000)
    assert read_limited(str(f), 2000) == bytes(2000)
    with pytest.raises(InputFileError, match="Is a directory"):
        read_limited(str(tmp_path), 1000)
    with pytest.raises(OSError, match="No such file"):
        read_limited(str(tmp_path / "missing"), 1000)
    with pytest.raises(InputFileError, match="larger than dtvm reads"):
        read_limited("/dev/zero", 4096)


# ---------------------------------------------------------------------------
# deep trees: no per-node path strings, iterative walks


@pytest.fixture(scope="module")
def deep100k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("deep") / "deep100k.dtb"
    p.write_bytes(deep_dtb(100_000))
    return p


@pytest.mark.parametrize(
    "argv",
    [
        ["dtc", "-I", "dtb", "-O", "dtb", "-o", "{out}", "{f}"],
        ["dtc", "-I", "dtb", "-O", "asm", "-o", "{out}", "{f}"],
        ["dtc", "-I", "dtb", "-O", "dtb", "-s", "-@", "-o", "{out}", "{f}"],
        ["validate", "{f}"],
        ["show", "{f}"],
        ["diff", "{f}", "{f}"],
    ],
    ids=lambda a: "-".join(a[:5]),
)
def test_deep_dtb_bounded_memory(argv: list[str], deep100k: Path, tmp_path: Path) -> None:
    """A 100,000-deep DTB (1.2 MB) in 600 MB of address space (before: 11 GB, every node held its
    full path).  dtc itself crashes on it (stack overflow), so there is no output to compare;
    -O dtb must give the input back."""
    out = tmp_path / "out"
    args = [a.format(f=str(deep100k), out=str(out)) for a in argv]
    p = run_dtvm(args, cwd=tmp_path)
    err = p.stderr.decode("latin-1")
    assert "Traceback" not in err and "MemoryError" not in err and "RecursionError" not in err, err[-2000:]
    assert p.returncode in (0, 1), err[-2000:]
    if argv[:5] == ["dtc", "-I", "dtb", "-O", "dtb"] and "-s" not in argv:
        assert p.returncode == 0
        assert out.read_bytes() == deep100k.read_bytes()
    if argv[0] == "validate":
        assert "nested deeper than 256 levels are not validated" in err + p.stdout.decode("latin-1")


@needs_dtc
@pytest.mark.parametrize("outform", ["dts", "dtb", "asm"])
def test_deep_dtb_same_as_dtc(outform: str, tmp_path: Path) -> None:
    """3,000 levels, names of varied length (paths over the 1,024-character cache): dtc's output."""
    rng = random.Random(19)
    names = [bytes(rng.choice(b"abcdefgh") for _ in range(rng.randint(1, 9))) for _ in range(3)]
    blob = bytearray(deep_dtb(3000, names[0]))
    f = tmp_path / "deep.dtb"
    f.write_bytes(blob)
    assert_same(["-I", "dtb", "-O", outform, str(f)], cwd=str(tmp_path))


@needs_dtc
def test_deep_dts_same_as_dtc(tmp_path: Path) -> None:
    """2,400 nested nodes with labels and references (dtc's parser stops near 2,500)."""
    n = 2400
    text = "/dts-v1/;\n/ {\n" + "".join(f"l{i}: a{i} {{\n q = <&l{(i * 7) % n}>;\n" for i in range(n))
    text += "};\n" * n + "};\n"
    f = tmp_path / "deep.dts"
    f.write_text(text)
    for args in (["-O", "dtb"], ["-O", "dts"], ["-O", "yaml"], ["-O", "asm"], ["-s", "-O", "dts"], ["-@", "-O", "dts"]):
        assert_same([*args, str(f)], cwd=str(tmp_path))


# ---------------------------------------------------------------------------
# integer literals and cells


def _literal(rng: random.Random) -> str:
    kind = rng.choice(["dec", "hex", "oct"])
    zeros = "0" * rng.choice([0, 0, 1, 5, 4400])
    n = rng.choice([1, 15, 16, 17, 19, 20, 21, 22, 23, 4299, 4301, 5000])
    if kind == "hex":
        return "0x" + zeros + "".join(rng.choice("0123456789abcdefABCDEF") for _ in range(min(n, 24) if rng.random() < 0.5 else n))
    if kind == "oct":
        return "0" + zeros + rng.choice("1234567") + "".join(rng.choice("01234567") for _ in range(n - 1))
    first = rng.choice("123456789")
    return zeros + first + "".join(rng.choice("0123456789") for _ in range(n - 1)) if zeros == "" else zeros + first


@needs_dtc
def test_long_integer_literals_same_as_dtc(tmp_path: Path) -> None:
    """Seeded literals around 64 bits and around Python's 4,300-digit limit, in cells, /bits/,
    expressions and /memreserve/: dtc's acceptance and output (before: ValueError traceback)."""
    rng = random.Random(4300)
    for i in range(120):
        lit = _literal(rng)
        where = rng.choice(["cells", "bits", "expr", "memres"])
        if where == "cells":
            body = f"/ {{ p = <1 {lit} 2>; }};"
        elif where == "bits":
            body = f"/ {{ p = /bits/ 64 <{lit}>; }};"
        elif where == "expr":
            body = f"/ {{ p = <({lit} + 1)>; }};"
        else:
            body = f"/memreserve/ {lit} 0x10;\n/ {{ }};"
        f = tmp_path / f"lit{i}.dts"
        f.write_text(f"/dts-v1/;\n{body}\n")
        assert_same(["-O", "dts", str(f)], cwd=str(tmp_path))


@needs_dtc
def test_huge_linemarker_line_number(tmp_path: Path) -> None:
    f = tmp_path / "lm.dts"
    f.write_text('/dts-v1/;\n# ' + "9" * 5000 + ' "x.dts"\n/ { p = <1>; };\n')
    assert_same(["-O", "dts", str(f)], cwd=str(tmp_path))


@needs_dtc
@pytest.mark.parametrize("tail", ["", " (1)"], ids=["fused", "tokens"])
def test_cell_list_memory_linear(tail: str, tmp_path: Path) -> None:
    """A million cells (2 MB of DTS) in 400 MB of address space, output identical to dtc's
    (before: about 900 bytes per cell, 0.9 GB; dtc takes 14 MB)."""
    f = tmp_path / "cells.dts"
    f.write_text("/dts-v1/;\n/ { p = <" + " ".join("1" for _ in range(1_000_000)) + tail + ">; };\n")
    out = tmp_path / "out.dtb"
    ref = subprocess.run(["dtc", "-O", "dtb", "-o", str(tmp_path / "ref.dtb"), str(f)], capture_output=True, timeout=60)
    assert ref.returncode == 0
    p = run_dtvm(["dtc", "-O", "dtb", "-o", str(out), str(f)], cwd=tmp_path, as_bytes=400 * MiB)
    assert p.returncode == 0, p.stderr[-2000:]
    assert out.read_bytes() == (tmp_path / "ref.dtb").read_bytes()


# ---------------------------------------------------------------------------
# output errors


@pytest.fixture()
def small_dts(tmp_path: Path) -> Path:
    f = tmp_path / "t.dts"
    f.write_text('/dts-v1/;\n/ { compatible = "x"; };\n')
    return f


def _no_debris(directory: Path) -> None:
    left = [p.name for p in directory.iterdir() if p.name.startswith(".dtvm-")]
    assert not left, left


def test_output_into_directory(small_dts: Path, tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    p = run_dtvm(["dtc", "-o", str(d), str(small_dts)], cwd=tmp_path)
    err = one_line_error(p)
    assert str(d) in err and "Is a directory" in err and len(err.strip().splitlines()) == 1
    _no_debris(tmp_path)


def test_output_to_dev_full(small_dts: Path, tmp_path: Path) -> None:
    """ENOSPC: a file (/dev/full is written in place) and stdout; dtc 1.6.1 ignores the error and
    exits 0, which the project's rule does not allow."""
    p = run_dtvm(["dtc", "-o", "/dev/full", str(small_dts)], cwd=tmp_path)
    err = one_line_error(p)
    assert "/dev/full" in err and "No space left on device" in err
    with open("/dev/full", "wb") as full:
        for args in (["dtc", "-O", "dts", str(small_dts)], ["fdtdump", str(tmp_path / "t.dtb")],
                     ["fdtget", str(tmp_path / "t.dtb"), "/", "compatible"]):
            if args[0] != "dtc":
                run_dtvm(["dtc", "-o", str(tmp_path / "t.dtb"), str(small_dts)], cwd=tmp_path)
            p = run_dtvm(args, cwd=tmp_path, stdout=full.fileno())
            err = one_line_error(p)
            assert "No space left on device" in err, err


def test_output_past_file_size_limit(small_dts: Path, tmp_path: Path) -> None:
    """RLIMIT_FSIZE: one line, the old file untouched, no temporary file left (dtc dies of SIGXFSZ
    and leaves a truncated file)."""
    out = tmp_path / "out.dtb"
    out.write_bytes(b"old")
    p = run_dtvm(["dtc", "-o", str(out), str(small_dts)], cwd=tmp_path, fsize=10)
    err = one_line_error(p)
    assert str(out) in err and "File too large" in err
    assert out.read_bytes() == b"old"
    _no_debris(tmp_path)


def test_output_in_unwritable_place(small_dts: Path, tmp_path: Path) -> None:
    """A directory that cannot hold files (root ignores permission bits, so a path under a regular
    file is used: ENOTDIR), /proc and /sys (no new files there, even for root)."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target in (str(blocker / "out.dtb"), "/proc/dtvm-out.dtb", "/sys/dtvm-out.dtb"):
        p = run_dtvm(["dtc", "-o", target, str(small_dts)], cwd=tmp_path)
        err = one_line_error(p)
        assert target in err


def test_write_atomic_errors(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="Is a directory"):
        write_atomic(str(tmp_path), b"x")
    with pytest.raises(OutputError, match="No space left"):
        write_atomic("/dev/full", b"x")
    _no_debris(tmp_path)


def test_write_pair_both_or_neither(tmp_path: Path) -> None:
    a, b = tmp_path / "a.dtb", tmp_path / "b.dtbo"
    a.write_bytes(b"old-a")
    d = tmp_path / "dir"
    d.mkdir()
    with pytest.raises(OutputError):
        write_pair((str(a), b"new-a"), (str(d), b"new-b"))
    assert a.read_bytes() == b"old-a"
    _no_debris(tmp_path)
    with pytest.raises(OutputError):
        write_pair((str(d), b"new-a"), (str(b), b"new-b"))
    assert not b.exists()
    write_pair((str(a), b"new-a"), (str(b), b"new-b"))
    assert a.read_bytes() == b"new-a" and b.read_bytes() == b"new-b"
    _no_debris(tmp_path)


def test_write_pair_second_rename_fails_restores_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The only window between the two renames: the second fails, the first gets its old bytes back."""
    import dtvm.fileio as fileio

    a, b = tmp_path / "a.dtb", tmp_path / "b.dtbo"
    a.write_bytes(b"old-a")
    b.write_bytes(b"old-b")
    real = os.replace
    calls = []

    def replace(src: str, dst: str) -> None:
        calls.append(dst)
        if dst == str(b):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace)
    with pytest.raises(OutputError):
        write_pair((str(a), b"new-a"), (str(b), b"new-b"))
    monkeypatch.undo()
    assert a.read_bytes() == b"old-a" and b.read_bytes() == b"old-b"
    _no_debris(tmp_path)


def test_qemu2dtb_pair_both_or_neither(tmp_path: Path) -> None:
    """qemu2dtb -o X -b Y with Y unwritable (a directory): X is not written either (before: X
    was replaced, Y failed with a traceback)."""
    out = tmp_path / "vm.dtb"
    out.write_bytes(b"old")
    d = tmp_path / "dir"
    d.mkdir()
    p = run_dtvm(["qemu2dtb", "--offline", "-o", str(out), "-b", str(d), "--", "qemu-system-aarch64", "-M", "virt"],
                 cwd=tmp_path, as_bytes=None)
    err = one_line_error(p)
    assert str(d) in err
    assert out.read_bytes() == b"old"
    _no_debris(tmp_path)


_SLOW_WRITE = """
import os, sys, time
import dtvm.fileio as fileio
real = os.replace
def slow(src, dst):
    sys.stderr.write("STAGED\\n"); sys.stderr.flush()
    time.sleep(30)
    real(src, dst)
fileio.os.replace = slow
sys.argv = ["dtvm"] + sys.argv[1:]
from dtvm.cli import main
main()
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP", "SIGQUIT", "SIGINT"])
def test_signal_during_write_leaves_no_debris(signame: str, small_dts: Path, tmp_path: Path) -> None:
    """A signal while the temporary output exists: the process ends as on ^C, the temporary file is
    gone and the old output untouched (before: SIGTERM and SIGHUP killed it mid-write and left
    .dtvm-*.tmp behind)."""
    out = tmp_path / "out.dtb"
    out.write_bytes(b"old")
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITE, "dtc", "-o", str(out), str(small_dts)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line == b"STAGED\n", line
        assert any(p.name.startswith(".dtvm-") for p in tmp_path.iterdir())
        proc.send_signal(getattr(signal, signame))
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    signum = getattr(signal, signame)
    assert proc.returncode == (130 if signame == "SIGINT" else 128 + signum), err
    assert b"Traceback" not in err, err
    assert out.read_bytes() == b"old"
    _no_debris(tmp_path)
    assert stat.S_ISREG(out.stat().st_mode)
    time.sleep(0)  # nothing else to wait for: the process is gone


# ---------------------------------------------------------------------------
# --cpp: bounded macro expansion


def _doubling(levels: int, leaf: str = "1") -> str:
    lines = ["/dts-v1/;", f"#define A0 {leaf}"] + [f"#define A{i} A{i - 1} A{i - 1}" for i in range(1, levels + 1)]
    return "\n".join([*lines, f"/ {{ q = <A{levels}>; }};", ""])


def _nested_calls(levels: int) -> str:
    lines = ["/dts-v1/;", "#define F0(x) x x"] + [f"#define F{i}(x) F{i - 1}(F{i - 1}(x))" for i in range(1, levels + 1)]
    return "\n".join([*lines, f"/ {{ q = <F{levels}(1)>; }};", ""])


@pytest.mark.parametrize("text", [_doubling(40), _nested_calls(40)], ids=["object-like", "function-like"])
def test_cpp_macro_bomb_bounded(text: str, tmp_path: Path) -> None:
    """2**40 tokens asked for: GNU cpp runs until it has no memory left (cc1: out of memory); dtvm
    ends with one located error in 500 MB (before: unbounded)."""
    f = tmp_path / "bomb.dts"
    f.write_text(text)
    p = run_dtvm(["dtc", "--cpp", "-O", "dtb", "-o", str(tmp_path / "out.dtb"), str(f)], cwd=tmp_path,
                 as_bytes=500 * MiB, timeout=120)
    err = one_line_error(p)
    assert f"{f}:" in err.splitlines()[0] and "macro expansion exceeds" in err
    assert not (tmp_path / "out.dtb").exists()


@needs_dtc
def test_cpp_large_expansion_same_as_cpp(tmp_path: Path) -> None:
    """2**13 tokens from doubling macros stay well inside the bound: GNU cpp then dtc, same blob."""
    import shutil

    if shutil.which("cpp") is None:
        pytest.skip("GNU cpp (the oracle) is not installed")
    f = tmp_path / "big.dts"
    f.write_text(_doubling(13))
    pp = subprocess.run(["cpp", "-nostdinc", "-undef", "-D__DTS__", "-x", "assembler-with-cpp", str(f)],
                        capture_output=True, check=True, timeout=60).stdout
    ref = subprocess.run(["dtc", "-O", "dtb", "-"], input=pp, capture_output=True, check=True, timeout=60).stdout
    p = run_dtvm(["dtc", "--cpp", "-O", "dtb", str(f)], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ref


@pytest.mark.parametrize(
    "args",
    [
        ["show", "{dtb}"],
        ["diff", "{dtb}", "{dtb}"],
        ["--help"],
        ["dtb2qemu", "--help"],
        ["qemu2dtb", "--offline", "--format", "dts", "--", "qemu-system-aarch64", "-M", "virt"],
        ["fdtget", "-l", "{dtb}", "/"],
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_stdout_on_full_disk(args: list[str], tmp_path: Path) -> None:
    """Every command's standard output on /dev/full: one line, nonzero (before: tracebacks from
    click.echo and from Python's flush at exit)."""
    dtb = Path(__file__).resolve().parent.parent / "fixtures" / "diff" / "virt.dtb"
    argv = [a.format(dtb=str(dtb)) for a in args]
    with open("/dev/full", "wb") as full:
        p = run_dtvm(argv, cwd=tmp_path, stdout=full.fileno(), as_bytes=None)
    err = one_line_error(p)
    assert "No space left on device" in err


def test_bindings_export_unwritable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = run_dtvm(["bindings", "export", str(blocker / "out")], cwd=tmp_path, as_bytes=None)
    err = one_line_error(p)
    assert str(blocker) in err


def deep_overlay(depth: int) -> bytes:
    """An overlay blob: fragment@0 (target-path "/") whose __overlay__ holds a chain of ``depth``
    nodes."""

    def begin(name: bytes) -> bytes:
        return struct.pack(">I", 1) + name + b"\0" * (4 - len(name) % 4)

    strings = b"target-path\0"
    s = bytearray(begin(b"") + begin(b"fragment@0"))
    s += struct.pack(">III", 3, 2, 0) + b"/\0\0\0"
    s += begin(b"__overlay__") + begin(b"a") * depth
    s += struct.pack(">I", 2) * (depth + 3) + struct.pack(">I", 9)
    off_dt = 56
    off_str = off_dt + len(s)
    total = off_str + len(strings)
    head = struct.pack(">10I", 0xD00DFEED, total, off_dt, off_str, 40, 17, 16, 0, len(strings), len(s))
    return head + bytes(16) + bytes(s) + strings


def test_deep_overlay_same_as_fdtoverlay(small_dts: Path, tmp_path: Path) -> None:
    """An overlay 1,100 nodes deep (past Python's recursion limit): the C fdtoverlay applies it; dtvm's apply recursed and failed
    ("nests nodes too deeply") and now walks with a stack, giving the same blob."""
    import shutil

    if shutil.which("fdtoverlay") is None or shutil.which("dtc") is None:
        pytest.skip("fdtoverlay and dtc (Debian device-tree-compiler 1.6.1), the oracles, are not installed")
    base = tmp_path / "base.dtb"
    subprocess.run(["dtc", "-O", "dtb", "-o", str(base), str(small_dts)], check=True, capture_output=True)
    ov = tmp_path / "deep.dtbo"
    ov.write_bytes(deep_overlay(1100))
    ref = subprocess.run(["fdtoverlay", "-i", str(base), "-o", str(tmp_path / "ref.dtb"), str(ov)], capture_output=True, timeout=120)
    assert ref.returncode == 0, ref.stderr
    p = run_dtvm(["fdtoverlay", "-i", str(base), "-o", str(tmp_path / "out.dtb"), str(ov)], cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "out.dtb").read_bytes() == (tmp_path / "ref.dtb").read_bytes()


def test_deep_tree_every_node_warned(tmp_path: Path) -> None:
    """20,000 nested 'a@1' nodes, each failing unit_address_vs_reg: with -q in 300 MB (before: a
    path string per finding, 970 MB and 53 s; dtc takes 790 MB); without -q the messages name each
    node's full path, as dtc's do (checked on 300 levels, where every path is shown)."""
    f = tmp_path / "deep.dtb"
    f.write_bytes(deep_dtb(20_000, b"a@1"))
    p = run_dtvm(["dtc", "-q", "-I", "dtb", "-O", "dtb", "-o", str(tmp_path / "out.dtb"), str(f)], cwd=tmp_path,
                 as_bytes=300 * MiB)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "out.dtb").read_bytes() == f.read_bytes()
    f.write_bytes(deep_dtb(300, b"a@1"))
    p = run_dtvm(["dtc", "-I", "dtb", "-O", "dtb", "-o", str(tmp_path / "out.dtb"), str(f)], cwd=tmp_path)
    lines = [x for x in p.stderr.decode().splitlines() if "unit_address_vs_reg" in x]
    assert len(lines) == 299
    for depth, line in enumerate(lines, 1):
        assert f": {'/a@1' * depth}: node has a unit name" in line


def test_fs_input_capped(tmp_path: Path) -> None:
    """dtc -I fs on a directory holding a 300 MB (sparse) file: one line in 200 MB (dtc reads it
    all into memory; a blob cannot hold more than 4 GiB anyway)."""
    d = tmp_path / "fs"
    d.mkdir()
    with open(d / "big", "wb") as f:
        f.truncate(300 * MiB)
    p = run_dtvm(["dtc", "-I", "fs", "-O", "dtb", str(d)], cwd=tmp_path, as_bytes=200 * MiB)
    err = one_line_error(p)
    assert str(d / "big") in err


def test_validate_blob_through_pipe(tmp_path: Path) -> None:
    """validate <(...): a FIFO holding a blob is validated as the file itself is."""
    dtb = Path(__file__).resolve().parent.parent / "fixtures" / "diff" / "virt.dtb"
    ref = run_dtvm(["validate", str(dtb)], cwd=tmp_path, as_bytes=None)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t = _fifo_writer(fifo, dtb.read_bytes())
    p = run_dtvm(["validate", str(fifo)], cwd=tmp_path, as_bytes=None)
    t.join(5)
    assert p.returncode == ref.returncode
    assert p.stdout.replace(str(fifo).encode(), b"F") == ref.stdout.replace(str(dtb).encode(), b"F")
    assert p.stderr.replace(str(fifo).encode(), b"F") == ref.stderr.replace(str(dtb).encode(), b"F")


def test_output_on_read_only_filesystem(small_dts: Path, tmp_path: Path) -> None:
    """EROFS: the output directory bind-mounted read-only in a private mount namespace (unshare
    -m, root only): one line naming the path and 'Read-only file system', the old file intact."""
    import shutil

    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "out.dtb").write_bytes(b"old")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && ! touch {ro}/x"],
        capture_output=True, timeout=30,
    ) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("a read-only bind mount needs unshare -m and mount rights (root with CAP_SYS_ADMIN)")
    script = (f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && "
              f"exec {sys.executable} -m dtvm dtc -o {ro}/out.dtb {small_dts}")
    p = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, timeout=60, cwd=tmp_path)
    err = one_line_error(p)
    assert f"{ro}/out.dtb" in err and "Read-only file system" in err
    assert (ro / "out.dtb").read_bytes() == b"old"
    _no_debris(ro)


def _labelled_cells(n: int) -> str:
    rng = random.Random(6)
    cells = " ".join(("&l" if i % 5 == 0 else str(rng.randrange(1 << 32))) + ("" if i % 7 else f" l{i}:")
                     for i in range(n))
    return "/dts-v1/;\n/ { l: n { }; };\n/ { p = <" + cells + " lend:>; q = /bits/ 16 <a: 1 b: 2 c:>; };\n"


def test_labelled_cell_list_memory(tmp_path: Path) -> None:
    """200,000 cells with labels and references among them in 60 MB of address space (labels
    inside cells now take the fused path: 73 MB resident before, 35 MB now)."""
    f = tmp_path / "cells.dts"
    f.write_text(_labelled_cells(200_000))
    p = run_dtvm(["dtc", "-O", "dtb", "-o", str(tmp_path / "out.dtb"), str(f)], cwd=tmp_path, as_bytes=60 * MiB)
    assert p.returncode == 0, p.stderr[-2000:]


@needs_dtc
def test_labelled_cell_list_same_as_dtc(tmp_path: Path) -> None:
    f = tmp_path / "cells.dts"
    f.write_text(_labelled_cells(20_000))
    for outform in ("dtb", "dts"):
        assert_same(["-O", outform, str(f)], cwd=str(tmp_path))


def test_first_line_cuts_only_at_newline() -> None:
    """A one-line error keeps a name's \\x85, \\x0b, \\x1c ... (str.splitlines would cut there, as the
    DTS fuzzer found against dtc); a newline ends it; an empty exception gives its type's name."""
    from dtvm.errors import DtvmError, first_line

    for odd in ("\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\u2028", "\u2029"):
        assert first_line(DtvmError(f"/node{odd}x: bad\nmore")) == f"/node{odd}x: bad"
    assert first_line(DtvmError("a\r\nb")) == "a"
    assert first_line(ValueError()) == "ValueError"
