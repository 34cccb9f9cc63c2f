"""``dtvm fdtget``, ``dtvm fdtdump`` and ``dtvm fdtput`` against Debian's C tools (dtc 1.6.1).

No expected output is written by hand: every blob is compiled by the real dtc
from ``fixtures/fdt/`` (or derived from such a blob by patching bytes), every
case runs the C tool and dtvm with the same arguments, and the exit codes,
stdout bytes and stderr are compared.  For fdtput both tools edit copies of
the same file and the resulting files must be identical byte for byte.
Where the C tool's behaviour is undefined (it reads past its buffer), dtvm
must fail cleanly; those cases only check that.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtvm.cli import fdtdump as dtvm_fdtdump
from dtvm.cli import fdtget as dtvm_fdtget
from dtvm.cli import fdtput as dtvm_fdtput
from dtvm.cli.fdtput import scanf_int
from dtvm.cli.fdtutil import decode_type
from dtvm.dt.libfdt import Fdt, bufsize_for, read_buffer, strerror

TOOLS = ("dtc", "fdtget", "fdtput", "fdtdump")
MISSING = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING),
    reason=f"{', '.join(MISSING)} (Debian device-tree-compiler 1.6.1) not on PATH: the C tools are the oracle",
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fdt"
RUNNERS = {"fdtget": dtvm_fdtget.run, "fdtput": dtvm_fdtput.run, "fdtdump": dtvm_fdtdump.run}


# ---------------------------------------------------------------------------
# helpers


@functools.cache
def compiled(name: str, *opts: str) -> bytes:
    """A fixture compiled by dtc (``-f``: some fixtures are deliberately odd)."""
    proc = subprocess.run(
        ["dtc", "-f", "-q", "-I", "dts", "-O", "dtb", *opts, str(FIXTURES / f"{name}.dts")],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def patched(blob: bytes, *edits: tuple[int, int]) -> bytes:
    """``blob`` with 32-bit big-endian words replaced: (offset, value) pairs."""
    data = bytearray(blob)
    for off, value in edits:
        struct.pack_into(">I", data, off, value)
    return bytes(data)


def misordered(blob: bytes) -> bytes:
    """The same tree with the strings block before the structure block (libfdt reorders it)."""
    magic, _, ost, ostr, orsv, ver, lcv, _, sstr, sst = struct.unpack(">10I", blob[:40])
    rsv, strs, stc = blob[orsv:ost], blob[ostr : ostr + sstr], blob[ost : ost + sst]
    body = rsv + strs + stc
    header = struct.pack(
        ">10I", magic, 40 + len(body), 40 + len(rsv) + len(strs), 40 + len(rsv), 40, ver, lcv, 0x42, sstr, sst
    )
    return header + body


def blob_variants() -> dict[str, bytes]:
    values = compiled("values")
    return {
        "values": values,
        "values_pad": compiled("values", "-p", "100"),
        "values_v16": compiled("values", "-V", "16"),
        "values_v3": compiled("values", "-V", "3"),
        "values_v2": compiled("values", "-V", "2"),
        "values_v1": compiled("values", "-V", "1"),
        "values_boot": compiled("values", "-b", "3"),
        "values_junk": values + b"\xaa" * 300,
        "values_misordered": misordered(values),
        "small": compiled("small"),
        "deep": compiled("deep"),
        "ovbase_sym": compiled("ovbase", "-@"),
    }


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("blobs")
    out = {}
    for name, data in blob_variants().items():
        (d / f"{name}.dtb").write_bytes(data)
        out[name] = d / f"{name}.dtb"
    return out


class Outcome:
    def __init__(self, code: int, out: bytes, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    def __repr__(self) -> str:
        return f"Outcome(code={self.code}, out={self.out[:200]!r}, err={self.err[:400]!r})"


def c_tool(tool: str, args: list[str], cwd: Path | None = None, stdin: bytes | None = None) -> Outcome:
    proc = subprocess.run([tool, *args], capture_output=True, cwd=cwd, input=stdin, timeout=60)
    return Outcome(proc.returncode, proc.stdout, proc.stderr.decode("latin-1"))


def dtvm_tool(tool: str, args: list[str], cwd: Path | None = None) -> Outcome:
    out = io.BytesIO()
    err = io.StringIO()
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        code = RUNNERS[tool](args, out, err)
    finally:
        os.chdir(old)
    return Outcome(code, out.getvalue(), err.getvalue())


def assert_same(tool: str, args: list[str], cwd: Path, exact_stderr: bool = True) -> Outcome:
    ref = c_tool(tool, args, cwd)
    me = dtvm_tool(tool, args, cwd)
    assert "Traceback" not in me.err
    assert me.code == ref.code, f"{tool} {args}: exit {me.code} != {ref.code}\nC: {ref}\ndtvm: {me}"
    assert me.out == ref.out, f"{tool} {args}: stdout differs\nC: {ref}\ndtvm: {me}"
    if exact_stderr:
        assert me.err == ref.err, f"{tool} {args}: stderr differs\nC: {ref.err!r}\ndtvm: {me.err!r}"
    return ref


# ---------------------------------------------------------------------------
# fdtget

GET_CASES: list[list[str]] = [
    ["/", "model"],
    ["/", "compatible"],
    ["/", "empty"],
    ["/", "nosuch"],
    ["/nosuch", "model"],
    ["/", "model", "/cpus/cpu@0", "reg", "/soc/serial@2000", "compatible"],
    ["/", "model", "/nosuch", "reg", "/", "compatible"],
    ["/soc/serial@2000", "reg"],
    ["/soc/serial@2000", "mac"],
    ["/soc/serial@2000", "byte"],
    ["/soc/serial@2000", "shorts"],
    ["/soc/serial@2000", "mixed"],
    ["/soc/serial@2000", "empty-string"],
    ["/soc/serial@2000", "strings-with-empty"],
    ["/soc/serial@2000", "tab"],
    ["/soc/serial@2000", "neg"],
    ["/soc/serial@2000", "high-bytes"],
    ["/soc/serial@2000", "odd"],
    ["/cpus/cpu@0", "clock-frequency"],
    ["/chosen", "stdout-path"],
    ["/soc/serial", "reg"],
    ["/soc/serial", "no-unit"],
    ["/soc/serial@3000", "reg"],
    ["serial0", "compatible"],
    ["soc", "compatible"],
    ["soc/serial@2000", "status"],
    ["bad", "x"],
    ["nosuchalias", "x"],
    ["//soc//serial@2000/", "status"],
    ["/a/b/c/deep/deeper", "deepest"],
    ["-tx", "/soc/serial@2000", "reg"],
    ["-ti", "/soc/serial@2000", "neg"],
    ["-tu", "/soc/serial@2000", "neg"],
    ["-tx", "/soc/serial@2000", "neg"],
    ["-thhx", "/soc/serial@2000", "neg"],
    ["-tbx", "/soc/serial@2000", "neg"],
    ["-tbbx", "/soc/serial@2000", "neg"],
    ["-thi", "/soc/serial@2000", "neg"],
    ["-thx", "/soc/serial@2000", "shorts"],
    ["-thu", "/soc/serial@2000", "shorts"],
    ["-thx", "/soc/serial@2000", "high-bytes"],
    ["-tbi", "/soc/serial@2000", "high-bytes"],
    ["-tx", "/soc/serial@2000", "high-bytes"],
    ["-tlx", "/soc/serial@2000", "neg"],
    ["-tLx", "/soc/serial@2000", "neg"],
    ["-tli", "/soc/serial@2000", "mac"],
    ["-ts", "/soc/serial@2000", "reg"],
    ["-ts", "/soc/serial@2000", "odd"],
    ["-ts", "/soc/serial@2000", "strings-with-empty"],
    ["-ts", "/", "empty"],
    ["-tx", "/", "model"],
    ["-tbs", "/", "model"],
    ["--type=x", "/soc/serial@2000", "reg"],
    ["--typ", "u", "/soc/serial@2000", "reg"],
    ["-d", "dflt", "/", "nosuch"],
    ["-d", "dflt", "/nosuch", "model"],
    ["-d", "", "/", "nosuch", "/", "model"],
    ["--default=z", "/nosuch", "x"],
    ["-p", "/soc/serial@2000"],
    ["-p", "/", "/cpus", "/cpus/cpu@0"],
    ["-p", "/soc/serial@2000/nosuch"],
    ["-p", "/", "model"],
    ["-p", "-d", "dflt", "/nosuch", "/chosen"],
    ["-l", "/"],
    ["-l", "/cpus", "/soc"],
    ["-l", "/soc/serial@2000"],
    ["-l", "/nosuch"],
    ["-l", "-d", "x", "/nosuch", "/a"],
    ["-pl", "/cpus"],
    ["-lp", "/cpus"],
    ["/soc/serial@2000", "reg", "-tx"],
    ["--", "/", "model"],
    ["-th", "/", "model"],
    ["-tb", "/", "model"],
    ["-tl", "/", "model"],
    ["-tz", "/", "model"],
    ["-thhhx", "/", "model"],
    ["-tsx", "/", "model"],
    ["-tr", "/", "model"],
    ["-t", "", "/", "model"],
    ["/soc/serial@2000"],
    ["-z", "/", "model"],
    ["--nosuch", "/", "model"],
    ["--type"],
    ["-t"],
    ["--list=1", "/"],
    [],
    ["-p"],
]


@pytest.mark.parametrize("args", GET_CASES, ids=[" ".join(a) or "<none>" for a in GET_CASES])
@pytest.mark.parametrize("blob", ["values", "values_v16", "values_pad"])
def test_fdtget(blobs: dict[str, Path], blob: str, args: list[str]) -> None:
    path = blobs[blob]
    assert_same("fdtget", [path.name, *args], path.parent)


@pytest.mark.parametrize(
    "blob",
    [
        "values_v3",
        "values_v2",
        "values_v1",
        "values_boot",
        "values_junk",
        "values_misordered",
        "small",
        "deep",
        "ovbase_sym",
    ],
)
@pytest.mark.parametrize(
    "args",
    [
        ["/", "model"],
        ["/soc/serial@2000", "reg"],
        ["/cpus/cpu@0", "clock-frequency"],
        ["-p", "/"],
        ["-l", "/"],
        ["-l", "/l1"],
        ["-l", "/l1/l2/l3"],
        ["/__symbols__", "uart0"],
        ["-p", "/__symbols__"],
        ["/n", "x"],
    ],
)
def test_fdtget_more_blobs(blobs: dict[str, Path], blob: str, args: list[str]) -> None:
    path = blobs[blob]
    assert_same("fdtget", [path.name, *args], path.parent)


@pytest.mark.parametrize(
    "args", [["-h"], ["--help"], ["-V"], ["--version"], ["-h", "-z"], ["-z", "-h"], ["-V", "-z"]]
)
def test_fdtget_help_version(tmp_path: Path, args: list[str]) -> None:
    assert_same("fdtget", args, tmp_path)


def test_fdtget_missing_file(tmp_path: Path) -> None:
    assert_same("fdtget", ["nosuch.dtb", "/", "model"], tmp_path)
    assert_same("fdtget", ["nosuch.dtb"], tmp_path)  # no node arguments: the file is not even read
    assert_same("fdtget", [str(tmp_path), "/", "model"], tmp_path)  # a directory


def test_fdtget_stdin(blobs: dict[str, Path]) -> None:
    data = blobs["values"].read_bytes()
    ref = c_tool("fdtget", ["-", "/soc/serial@2000", "mixed"], stdin=data)
    me = subprocess.run(
        [sys.executable, "-m", "dtvm", "fdtget", "-", "/soc/serial@2000", "mixed"],
        input=data,
        capture_output=True,
        timeout=60,
    )
    assert (me.returncode, me.stdout) == (ref.code, ref.out)


CORRUPTIONS = {
    "bad_magic": [(0, 0x12345678)],
    "bad_version": [(20, 1)],
    "last_comp_18": [(24, 18)],
    "struct_size_short": [(36, 0x10)],
    "struct_off_past_end": [(8, 0x7FFFFFF0)],
    "strings_off_past_end": [(12, 0x7FFFFFF0)],
    "strings_size_zero": [(32, 0)],
    "totalsize_small": [(4, 0x60)],
    "totalsize_huge": [(4, 0x7FFFFFFF)],
    "first_tag_prop": [(0x60, 3)],
    "first_tag_garbage": [(0x60, 0x77)],
    "first_tag_end": [(0x60, 9)],
    "first_tag_nop": [(0x60, 4)],
    "name_offset_huge": [(0x68, 0x7FFFFFF0)],
    "prop_len_huge": [(0x64, 0xFFFFFFF0)],
}


def _corrupt(blob: bytes, edits: list[tuple[int, int]]) -> bytes:
    # the first property of the root node starts right after "\0\0\0\1" + "" padded at off_dt_struct
    ost = struct.unpack_from(">I", blob, 8)[0]
    shifted = [(off - 0x60 + ost + 8 if off >= 0x60 else off, v) for off, v in edits]
    return patched(blob, *shifted)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
@pytest.mark.parametrize(
    "args", [["/", "model"], ["-p", "/"], ["-l", "/"], ["/soc/serial@2000", "reg"], ["serial0", "reg"]]
)
def test_fdtget_corrupt(tmp_path: Path, name: str, args: list[str]) -> None:
    blob = _corrupt(compiled("values"), CORRUPTIONS[name])
    (tmp_path / "c.dtb").write_bytes(blob)
    me = dtvm_tool("fdtget", ["c.dtb", *args], tmp_path)
    assert "Traceback" not in me.err
    total = struct.unpack_from(">I", blob, 4)[0]
    if total <= bufsize_for(len(blob)):
        # within the C tool's buffer its behaviour is defined: same result
        assert_same("fdtget", ["c.dtb", *args], tmp_path)
    else:
        assert me.code in (0, 1)


# ---------------------------------------------------------------------------
# fdtdump


def _dump_inputs(d: Path) -> list[str]:
    values = compiled("values")
    extra = {
        "nop.dtb": _corrupt(values, [(0x60, 4)]),
        "unknown_tag.dtb": _corrupt(values, [(0x60, 0x77)]),
        "big_totalsize.dtb": patched(values, (4, len(values) + 50)),
        "too_big_totalsize.dtb": patched(values, (4, 0x10000)),
        "bad_magic.dtb": patched(values, (0, 0x12345678)),
        "v18.dtb": patched(values, (20, 18)),
        "last_comp_18.dtb": patched(values, (24, 18)),
        "short.bin": values[:30],
        "truncated.dtb": values[:600],
        "embedded.bin": b"\xd0\x0d\xfe\xed" + b"junk" * 10 + values + b"tail",
        "embedded_odd.bin": b"abc" + values + b"x" * 5,
        "no_fdt.bin": b"abc" * 100,
        "empty.bin": b"",
        "extra_end_node.dtb": _corrupt(values, [(0x60, 2)]),
    }
    for name, data in extra.items():
        (d / name).write_bytes(data)
    return list(extra)


def test_fdtdump(blobs: dict[str, Path], tmp_path: Path) -> None:
    for path in blobs.values():
        shutil.copy(path, tmp_path / path.name)
    names = [p.name for p in blobs.values()] + _dump_inputs(tmp_path)
    for name in names:
        for opts in ([], ["-d"], ["-s"], ["-sd"], ["--debug", "--scan"]):
            assert_same("fdtdump", [*opts, name], tmp_path)


@pytest.mark.parametrize(
    "args",
    [[], ["-h"], ["-V"], ["a", "b"], ["-x", "f"], ["--nosuch", "f"], ["nosuch.dtb"], ["-s", "nosuch.dtb"]],
)
def test_fdtdump_usage(tmp_path: Path, args: list[str]) -> None:
    assert_same("fdtdump", args, tmp_path)


def test_fdtdump_past_buffer_is_an_error(tmp_path: Path) -> None:
    # a string offset past the end of the buffer: the C tool reads memory it does not own
    blob = _corrupt(compiled("values"), [(0x68, 0x10000)])
    (tmp_path / "c.dtb").write_bytes(blob)
    me = dtvm_tool("fdtdump", ["c.dtb"], tmp_path)
    assert me.code == 1
    assert "error" in me.err and "Traceback" not in me.err


# ---------------------------------------------------------------------------
# fdtput


def put_same(tmp_path: Path, blob: bytes, args: list[str], check_stderr: bool = True) -> Outcome:
    """Run C fdtput and dtvm fdtput on copies of ``blob``; the files must end up identical."""
    cdir = tmp_path / "c"
    ddir = tmp_path / "d"
    cdir.mkdir(exist_ok=True)
    ddir.mkdir(exist_ok=True)
    (cdir / "t.dtb").write_bytes(blob)
    (ddir / "t.dtb").write_bytes(blob)
    ref = c_tool("fdtput", ["t.dtb", *args], cdir)
    me = dtvm_tool("fdtput", ["t.dtb", *args], ddir)
    assert "Traceback" not in me.err
    assert me.code == ref.code, f"fdtput {args}: exit {me.code} != {ref.code}\nC: {ref}\ndtvm: {me}"
    assert me.out == ref.out
    if check_stderr:
        assert me.err == ref.err, f"fdtput {args}: stderr differs\nC: {ref.err!r}\ndtvm: {me.err!r}"
    cres = (cdir / "t.dtb").read_bytes()
    dres = (ddir / "t.dtb").read_bytes()
    assert dres == cres, f"fdtput {args}: files differ (C {len(cres)} bytes, dtvm {len(dres)} bytes)"
    return ref


PUT_CASES: list[list[str]] = [
    ["/", "model", "hello"],
    ["-ts", "/", "model", "hello"],
    ["/", "model"],
    ["/", "newprop", "1", "2", "3"],
    ["-v", "/", "newprop", "1", "2", "3"],
    ["-v", "-ts", "/", "newprop", "a", "bb", ""],
    ["-v", "-tbx", "/", "b", "1", "ff", "100", "-1"],
    ["-v", "-thx", "/soc/serial@2000", "shorts", "1", "2", "3"],
    ["-thi", "/", "h", "70000", "1"],
    ["-tbi", "/", "hh", "1", "2", "3"],
    ["-tx", "/", "reg", "zz", "12"],
    ["-tx", "/", "reg", "12", "zz"],
    ["-tx", "/", "reg", "12", "0xg", "0X1F", "1ffffffff", "99999999999999999999"],
    [
        "-ti",
        "/",
        "reg",
        "0x10",
        "010",
        "09",
        "4294967295",
        "99999999999",
        "99999999999999999999",
        "0x",
        "--",
        "-5",
        "-99999999999999999999",
    ],
    ["-tu", "/", "reg", "0x10", "010", "4294967295", "99999999999", "--", "-5", "-99999999999999999999"],
    ["/", "reg", "1.5", "2e3", " 7", "+8", "9x", "+", "", "-"],
    ["-ts", "/soc/serial@2000", "compatible", "a much longer compatible string than the one before"],
    ["-ts", "/soc/serial@2000", "compatible", "x"],
    ["-ts", "/soc/serial@2000", "mac", "x"],
    ["-ts", "/cpus/cpu@0", "name", "cpu"],  # "name" is the tail of "#address-cells"? no: a new string
    ["-ts", "/cpus/cpu@0", "cells", "x"],  # "cells" is the tail of "#size-cells": reused
    ["-ts", "/cpus/cpu@0", "size-cells", "x"],
    ["-ts", "/", "path", "cpu"],
    ["-ts", "serial0", "status", "disabled"],
    ["-ts", "soc/serial@2000", "status", "disabled"],
    ["-ts", "/soc/serial", "status", "disabled"],
    ["-ts", "/nosuch", "x", "y"],
    ["-ts", "nosuchalias", "x", "y"],
    ["-c", "/newnode"],
    ["-c", "/newnode", "/newnode/sub", "/soc/x", "/soc/serial@2000/y@1"],
    ["-c", "/soc"],
    ["-c", "/soc/serial"],
    ["-c", "/a/b/c/nope/x"],
    ["-c", "noslash"],
    ["-c", "/"],
    ["-c", "/newnode", "/soc", "/other"],
    ["-c", "serial0/child"],
    ["-p", "/x/y/z", "prop", "5"],
    ["-p", "/soc/serial@2000/new/deeper", "prop", "5"],
    ["-p", "/x//y/", "p", "1"],
    ["-p", "-c", "/q/r/s", "/q/r/t", "/soc"],
    ["-pc", "/", "/a/b/c"],
    ["-r", "/soc"],
    ["-r", "/soc/serial@2000", "/cpus/cpu@1", "/a"],
    ["-r", "/nosuch"],
    ["-r", "/cpus", "/nosuch", "/soc"],
    ["-r", "/"],
    ["-r", "serial0"],
    ["-d", "/", "model"],
    ["-d", "/", "model", "compatible", "empty"],
    ["-d", "/", "model", "nosuch", "compatible"],
    ["-d", "/nosuch", "model"],
    ["-d", "/soc/serial@2000", "status", "compatible", "mac"],
    ["-d", "/"],
    ["-d"],
    ["-r"],
    ["-c"],
    [],
    ["/"],
    ["-tz", "/", "x", "1"],
    ["-th", "/", "x", "1"],
    ["-x", "/", "x", "1"],
    ["--create=1", "/x"],
    ["--auto-path", "--type=s", "--verbose", "/m/n", "p", "v"],
    ["--cre", "/x"],
    ["-h"],
    ["-V"],
]


@pytest.mark.parametrize("args", PUT_CASES, ids=[" ".join(a) or "<none>" for a in PUT_CASES])
@pytest.mark.parametrize("blob", ["values", "values_pad", "values_v16", "small"])
def test_fdtput(tmp_path: Path, blob: str, args: list[str]) -> None:
    put_same(tmp_path, blob_variants()[blob], args)


@pytest.mark.parametrize(
    "blob", ["values_junk", "values_misordered", "values_boot", "values_v3", "ovbase_sym", "deep"]
)
@pytest.mark.parametrize(
    "args",
    [
        ["/", "model", "hello"],
        ["-ts", "/", "newprop", "a long value that makes the blob grow"],
        ["-c", "/newnode"],
        ["-p", "/a/b/c", "prop", "5"],
        ["-d", "/", "model"],
        ["-r", "/cpus"],
        ["-r", "/l1/l2"],
        ["-d", "/"],
    ],
)
def test_fdtput_more_blobs(tmp_path: Path, blob: str, args: list[str]) -> None:
    put_same(tmp_path, blob_variants()[blob], args)


def test_fdtput_growing_blob(tmp_path: Path) -> None:
    """Many edits in a row, each growing (or shrinking) the blob; files compared after every step."""
    cdir, ddir = tmp_path / "c", tmp_path / "d"
    cdir.mkdir()
    ddir.mkdir()
    blob = compiled("small")
    (cdir / "t.dtb").write_bytes(blob)
    (ddir / "t.dtb").write_bytes(blob)
    steps = [
        ["-c", "/a"],
        ["-ts", "/a", "compatible", "x" * 3000],
        ["-p", "/a/b/c/d/e/f", "p", "1", "2"],
        ["-ts", "/a", "compatible", "short"],
        ["-ts", "/n", "compatible", "short"],  # reuses the string "compatible"
        ["-tbx", "/n", "bytes", *[f"{i:x}" for i in range(200)]],
        ["-d", "/a", "compatible"],
        ["-r", "/a/b"],
        ["-ts", "/", "z" * 100, "v"],
    ]
    for args in steps:
        ref = c_tool("fdtput", ["t.dtb", *args], cdir)
        me = dtvm_tool("fdtput", ["t.dtb", *args], ddir)
        assert me.code == ref.code
        assert (ddir / "t.dtb").read_bytes() == (cdir / "t.dtb").read_bytes(), args


def test_fdtput_stdin_stdout(blobs: dict[str, Path]) -> None:
    data = blobs["values"].read_bytes()
    ref = c_tool("fdtput", ["-", "/", "model", "piped"], stdin=data)
    me = subprocess.run(
        [sys.executable, "-m", "dtvm", "fdtput", "-", "/", "model", "piped"],
        input=data,
        capture_output=True,
        timeout=60,
    )
    assert (me.returncode, me.stdout) == (ref.code, ref.out)


def test_fdtput_missing_file(tmp_path: Path) -> None:
    assert_same("fdtput", ["nosuch.dtb", "/", "a", "1"], tmp_path)
    assert not (tmp_path / "nosuch.dtb").exists()


def test_fdtput_keeps_mode_and_leaves_file_on_error(tmp_path: Path) -> None:
    path = tmp_path / "t.dtb"
    blob = compiled("values")
    path.write_bytes(blob)
    path.chmod(0o640)
    assert dtvm_tool("fdtput", ["t.dtb", "/", "model", "x"], tmp_path).code == 0
    assert path.stat().st_mode & 0o777 == 0o640
    after = path.read_bytes()
    me = dtvm_tool("fdtput", ["t.dtb", "/nosuch", "model", "x"], tmp_path)
    assert me.code == 1 and path.read_bytes() == after
    assert not [p for p in tmp_path.iterdir() if p.name != "t.dtb"]  # no temporary files left


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_fdtput_corrupt(tmp_path: Path, name: str) -> None:
    blob = _corrupt(compiled("values"), CORRUPTIONS[name])
    total = struct.unpack_from(">I", blob, 4)[0]
    for args in (["/", "model", "x"], ["-c", "/new"], ["-d", "/", "model"], ["-r", "/soc"]):
        if total <= bufsize_for(len(blob)) and name not in ("prop_len_huge",):
            put_same(tmp_path, blob, args)
        else:
            (tmp_path / "t.dtb").write_bytes(blob)
            me = dtvm_tool("fdtput", ["t.dtb", *args], tmp_path)
            assert "Traceback" not in me.err


# -- random edit sequences (hypothesis) --------------------------------------

NODES = [
    "/",
    "/soc",
    "/soc/serial@2000",
    "/soc/serial",
    "/cpus/cpu@1",
    "/a/b",
    "/new",
    "/new/x",
    "/soc/new@1",
    "serial0",
]
PROPS = [
    "model",
    "compatible",
    "reg",
    "status",
    "cells",
    "new",
    "x",
    "#size-cells",
    "name",
    "a-very-long-property-name",
]
TYPES = ["", "-ts", "-tx", "-ti", "-tu", "-tbx", "-thhi", "-tlx"]
_value = st.sampled_from(["0", "1", "12", "0x10", "-1", "ff", "abc", "", "a b", "4294967295", "zz", "x" * 40])


@st.composite
def fdtput_op(draw: st.DrawFn) -> list[str]:
    kind = draw(st.sampled_from(["set", "set", "set", "create", "autopath", "delete", "remove"]))
    node = draw(st.sampled_from(NODES))
    if kind == "set":
        values = draw(st.lists(_value, max_size=5))
        if any(v.startswith("-") for v in values):
            values = ["--", *values]
        typ = draw(st.sampled_from(TYPES))
        return [*([typ] if typ else []), node, draw(st.sampled_from(PROPS)), *values]
    if kind == "create":
        return ["-c", *draw(st.lists(st.sampled_from(NODES), min_size=1, max_size=3))]
    if kind == "autopath":
        return [
            "-p",
            node + "/" + draw(st.sampled_from(["p", "q/r", "s@1"])),
            draw(st.sampled_from(PROPS)),
            draw(_value),
        ]
    if kind == "delete":
        return ["-d", node, *draw(st.lists(st.sampled_from(PROPS), max_size=3))]
    return ["-r", *draw(st.lists(st.sampled_from(NODES[1:]), min_size=1, max_size=2))]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(fdtput_op(), min_size=1, max_size=6), blob=st.sampled_from(["values", "small", "values_pad"])
)
def test_fdtput_random_sequences(tmp_path: Path, ops: list[list[str]], blob: str) -> None:
    cdir, ddir = tmp_path / "hc", tmp_path / "hd"
    shutil.rmtree(cdir, ignore_errors=True)
    shutil.rmtree(ddir, ignore_errors=True)
    cdir.mkdir()
    ddir.mkdir()
    data = blob_variants()[blob]
    (cdir / "t.dtb").write_bytes(data)
    (ddir / "t.dtb").write_bytes(data)
    for op in ops:
        args = ["t.dtb", *op]
        ref = c_tool("fdtput", args, cdir)
        me = dtvm_tool("fdtput", args, ddir)
        assert me.code == ref.code, (op, ref, me)
        assert me.err == ref.err, op
        assert (ddir / "t.dtb").read_bytes() == (cdir / "t.dtb").read_bytes(), op


# ---------------------------------------------------------------------------
# units


def test_decode_type_matches_usage() -> None:
    assert decode_type("x") == ("x", -1)
    assert decode_type("hhx") == ("x", 1)
    assert decode_type("bbx") == ("x", 1)
    assert decode_type("hi") == ("i", 2)
    assert decode_type("lu") == ("u", 4)
    assert decode_type("Lx") == ("x", -1)
    assert decode_type("bs") == ("s", -1)
    for bad in ("", "h", "b", "hhh", "hhhx", "sx", "r", "d", "lb"):
        assert decode_type(bad) is None, bad


def test_scanf_int() -> None:
    assert scanf_int(b"0x10", "i") == 16
    assert scanf_int(b"010", "i") == 8
    assert scanf_int(b"09", "i") == 0
    assert scanf_int(b"0x10", "u") == 0
    assert scanf_int(b"0x10", "x") == 16
    assert scanf_int(b"-5", "u") == -5
    assert scanf_int(b"99999999999999999999", "i") == -1
    assert scanf_int(b"-99999999999999999999", "d") == 0
    assert scanf_int(b"", "d") is None
    assert scanf_int(b"+", "d") is None
    assert scanf_int(b"zz", "x") is None
    assert scanf_int(b"0xg", "x") == 0
    assert scanf_int(b" \t7", "d") == 7


def test_strerror() -> None:
    assert strerror(-1) == "FDT_ERR_NOTFOUND"
    assert strerror(-19) == "FDT_ERR_ALIGNMENT"
    assert strerror(-99) == "<unknown error>"
    assert strerror(0) == "<no error>"
    assert strerror(3) == "<valid offset/length>"


def test_fdt_find_string_finds_suffixes() -> None:
    fdt = Fdt(read_buffer(compiled("values")))
    whole = fdt.find_string(b"#size-cells")
    assert whole >= 0
    assert fdt.find_string(b"size-cells") == whole + 1
    assert fdt.find_string(b"no-such-string") == -1


def test_fdtget_on_1mb_blob(tmp_path: Path) -> None:
    """One property from a 1 MB blob, as fdtget gives it (its speed is measured in bench/, not here)."""
    lines = ["/dts-v1/;", "/ {"]
    for i in range(2500):
        lines.append(f'  node{i}@{i:x} {{ compatible = "vendor,dev{i}", "generic"; reg = <{i} 0x100>;')
        lines.append("    data = [" + " ".join(f"{j & 255:02x}" for j in range(300)) + "];")
        lines.append(f'    child {{ a = <1 2 3>; b = "str{i}"; }};')
        lines.append("  };")
    lines.append('  last { target = "found"; };')
    lines.append("};")
    (tmp_path / "big.dts").write_text("\n".join(lines))
    subprocess.run(
        ["dtc", "-q", "-O", "dtb", "-o", str(tmp_path / "big.dtb"), str(tmp_path / "big.dts")],
        check=True,
        timeout=120,
    )
    assert (tmp_path / "big.dtb").stat().st_size > 1_000_000
    me = dtvm_tool("fdtget", ["big.dtb", "/last", "target"], tmp_path)
    ref = subprocess.run(["fdtget", "big.dtb", "/last", "target"], cwd=tmp_path, capture_output=True, timeout=60)
    assert me.out == ref.stdout == b"found\n"


# -- the libfdt model against pylibfdt (the C libfdt, another version) ---------

LIBFDT_PATHS = [
    "/",
    "/soc",
    "/soc/serial@2000",
    "/soc/serial",
    "/cpus/cpu@0",
    "/a/b/c",
    "/new",
    "/new/x",
    "serial0",
]
LIBFDT_NAMES = ["model", "compatible", "reg", "status", "cells", "new", "x", "#size-cells", "n" * 30]


@st.composite
def libfdt_op(draw: st.DrawFn) -> tuple[str, ...]:
    kind = draw(
        st.sampled_from(
            ["setprop", "setprop", "appendprop", "delprop", "add_subnode", "del_node", "pack", "resize"]
        )
    )
    path = draw(st.sampled_from(LIBFDT_PATHS))
    name = draw(st.sampled_from(LIBFDT_NAMES))
    if kind in ("setprop", "appendprop"):
        return (kind, path, name, draw(st.binary(max_size=40)).hex())
    if kind == "delprop":
        return (kind, path, name)
    if kind == "add_subnode":
        return (kind, path, draw(st.sampled_from(["new", "x", "serial", "y@1", "soc"])))
    if kind == "del_node":
        return (kind, path)
    if kind == "resize":
        return (kind, str(draw(st.integers(0, 300))))
    return (kind,)


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(libfdt_op(), min_size=1, max_size=12),
    blob=st.sampled_from(["values", "small", "values_pad"]),
)
def test_libfdt_model_against_pylibfdt(ops: list[tuple[str, ...]], blob: str) -> None:
    libfdt = pytest.importorskip("libfdt", reason="pylibfdt (the C libfdt) is the oracle for the model")
    from dtvm.dt.libfdt import open_into

    data = blob_variants()[blob]
    ref = libfdt.Fdt(data)
    ref.resize(len(data) + 200)
    me = Fdt(bytearray(len(data) + 200))
    assert open_into(Fdt(bytearray(data)), me, len(data) + 200) == 0

    def call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except libfdt.FdtException as exc:
            return exc.err

    for op in ops:
        kind = op[0]
        if kind == "pack":
            call(ref.pack)  # pylibfdt packs and trims its buffer to totalsize
            me.pack()
            me.realloc(me.totalsize())
        elif kind == "resize":
            size = ref.totalsize() + int(op[1])
            r1 = call(ref.resize, size)
            new = Fdt(bytearray(size))
            r2 = open_into(me, new, size)
            assert (r1 or 0) == r2, op
            if r2 == 0:
                me = new
        else:
            node_ref = call(ref.path_offset, op[1])
            node_me = me.path_offset(op[1].encode())
            assert node_ref == node_me, op
            if node_me < 0:
                continue
            if kind == "setprop":
                r1 = call(ref.setprop, node_ref, op[2], bytes.fromhex(op[3]))
                r2 = me.setprop(node_me, op[2].encode(), bytes.fromhex(op[3]))
            elif kind == "appendprop":
                r1 = call(
                    libfdt.fdt_appendprop, ref._fdt, node_ref, op[2], bytes.fromhex(op[3]), len(op[3]) // 2
                )
                r2 = me.appendprop(node_me, op[2].encode(), bytes.fromhex(op[3]))
            elif kind == "delprop":
                r1 = call(ref.delprop, node_ref, op[2])
                r2 = me.delprop(node_me, op[2].encode())
            elif kind == "add_subnode":
                r1 = call(ref.add_subnode, node_ref, op[2])
                r2 = me.add_subnode(node_me, op[2].encode())
            else:
                r1 = call(ref.del_node, node_ref)
                r2 = me.del_node(node_me)
            assert (r1 or 0) == r2, (op, r1, r2)
        assert bytes(ref.as_bytearray()) == bytes(me.buf), op
