"""dtvm dtc against Debian's dtc 1.6.1: one fixture per language feature, every output format.

Expected outputs are never written by hand: each test runs the real dtc on the
same input with the same arguments, and compares bytes (or both must reject).
"""

from __future__ import annotations

import glob
import os

import pytest

from .oracle import assert_same, dtc, dtvm, needs_dtc

pytestmark = needs_dtc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures", "dts")
GOOD = sorted(glob.glob(os.path.join(FIXTURES, "*.dts")))
BAD = sorted(glob.glob(os.path.join(FIXTURES, "bad", "*.dts")))


def _id(path: str) -> str:
    return os.path.basename(path)


@pytest.fixture(autouse=True)
def _in_fixture_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    # /incbin/ and /include/ resolve against the including file's directory,
    # but dtc and dtvm should also see the same working directory
    monkeypatch.chdir(FIXTURES)


@pytest.mark.parametrize("path", GOOD, ids=_id)
@pytest.mark.parametrize("fmt", ["dtb", "dts"])
def test_fixture_output(path: str, fmt: str) -> None:
    ref = assert_same(["-I", "dts", "-O", fmt, path], cwd=FIXTURES)
    assert ref.ok, f"fixture {path} should be accepted by dtc: {ref.err}"


@pytest.mark.parametrize("path", GOOD, ids=_id)
def test_fixture_blob_to_dts(path: str, tmp_path: str) -> None:
    """-I dtb -O dts of dtc's blob: dtc's type guessing."""
    ref = dtc(["-I", "dts", "-O", "dtb", path], cwd=FIXTURES)
    assert ref.ok
    blob = os.path.join(str(tmp_path), "in.dtb")
    with open(blob, "wb") as f:
        f.write(ref.out)
    assert_same(["-I", "dtb", "-O", "dts", blob])
    assert_same(["-I", "dtb", "-O", "dtb", blob])


OPTION_SETS = [
    ["-H", "legacy"],
    ["-H", "both"],
    ["-H", "epapr"],
    ["-V", "16"],
    ["-V", "17"],
    ["-b", "5"],
    ["-R", "3"],
    ["-S", "4096"],
    ["-S", "10"],
    ["-p", "100"],
    ["-a", "64"],
    ["-a", "8", "-p", "3"],
    ["-f"],
    ["-q"],
]


@pytest.mark.parametrize("opts", OPTION_SETS, ids=lambda o: " ".join(o))
@pytest.mark.parametrize("name", ["labels.dts", "phandles.dts", "memreserve.dts", "names.dts"])
def test_options(opts: list[str], name: str) -> None:
    path = os.path.join(FIXTURES, name)
    for fmt in ("dtb", "dts"):
        assert_same([*opts, "-I", "dts", "-O", fmt, path], cwd=FIXTURES)


def test_include_search_path(tmp_path: str) -> None:
    """-i adds a directory for /include/ after the including file's own directory."""
    d = str(tmp_path)
    os.makedirs(os.path.join(d, "incdir"))
    with open(os.path.join(d, "incdir", "x.dtsi"), "w") as f:
        f.write("/ { from-search-path = <7>; };\n")
    with open(os.path.join(d, "main.dts"), "w") as f:
        f.write('/dts-v1/;\n/ { };\n/include/ "x.dtsi"\n')
    args = ["-i", os.path.join(d, "incdir"), "-O", "dts", os.path.join(d, "main.dts")]
    ref = assert_same(args)
    assert ref.ok and b"from-search-path" in ref.out
    # without the search path both fail
    assert_same(["-O", "dts", os.path.join(d, "main.dts")])


def test_dependency_file(tmp_path: str) -> None:
    d = str(tmp_path)
    src = os.path.join(FIXTURES, "include.dts")
    dtc(["-d", os.path.join(d, "ref.d"), "-o", os.path.join(d, "ref.dtb"), src], cwd=FIXTURES)
    dtvm(["-d", os.path.join(d, "me.d"), "-o", os.path.join(d, "ref.dtb"), src])
    with open(os.path.join(d, "ref.d")) as f:
        ref = f.read()
    with open(os.path.join(d, "me.d")) as f:
        me = f.read()
    assert me == ref


@pytest.mark.parametrize("path", BAD, ids=_id)
def test_bad_input_rejected(path: str, tmp_path: str) -> None:
    """dtc rejects these; dtvm must too, with dtc's exit code and stderr byte for byte, and no output file."""
    out = os.path.join(str(tmp_path), "out.dtb")
    ref = dtc(["-O", "dtb", "-o", out, path])
    assert not ref.ok, f"dtc accepts {path}; the fixture is not bad"
    if os.path.exists(out):
        os.unlink(out)
    me = dtvm(["-O", "dtb", "-o", out, path])
    assert "Traceback" not in me.err
    assert me.code == ref.code
    assert me.err == ref.err
    assert not os.path.exists(out), "a failed run must not leave an output file"


def test_existing_output_untouched_on_error(tmp_path: str) -> None:
    out = os.path.join(str(tmp_path), "out.dtb")
    with open(out, "wb") as f:
        f.write(b"previous")
    src = os.path.join(str(tmp_path), "bad.dts")
    with open(src, "w") as f:
        f.write("/dts-v1/;\n/ { a = <1 2; };\n")
    me = dtvm(["-o", out, src])
    assert me.code == 1
    with open(out, "rb") as f:
        assert f.read() == b"previous"


def test_error_message_has_position_and_caret(tmp_path: str) -> None:
    src = os.path.join(str(tmp_path), "err.dts")
    with open(src, "w") as f:
        f.write("/dts-v1/;\n/ {\n\tgood = <1>;\n\tbad = <1 2;\n};\n")
    """--diagnostics=rich: dtc's line, then the source line and a caret under the column."""
    me = dtvm(["--diagnostics=rich", "-o", os.path.join(str(tmp_path), "x.dtb"), src])
    ref = dtc(["-o", os.path.join(str(tmp_path), "x.dtb"), src])
    lines = me.err.splitlines()
    dtc_lines = ref.err.splitlines()
    assert lines[0] == dtc_lines[0]
    assert lines[1] == "\tbad = <1 2;"
    assert lines[2] == "\t" + " " * 10 + "^"
    assert lines[3:] == dtc_lines[1:]


def test_linemarker_positions(tmp_path: str) -> None:
    """Errors after cpp linemarkers name the original file and line."""
    src = os.path.join(str(tmp_path), "pp.dts")
    with open(src, "w") as f:
        f.write('# 1 "board.dts"\n/dts-v1/;\n# 40 "include/soc.dtsi" 1\n/ {\n\tx = <&missing>;\n};\n')
    out = os.path.join(str(tmp_path), "x.dtb")
    me = dtvm(["-o", out, src])
    ref = dtc(["-o", out, src])
    assert me.code == ref.code == 2
    assert me.err.startswith("include/soc.dtsi:"), me.err
    assert me.err == ref.err


def test_stdin_input() -> None:
    import subprocess
    import sys

    with open(os.path.join(FIXTURES, "labels.dts"), "rb") as f:
        data = f.read()
    ref = dtc(["-O", "dts", "-"], stdin=data)
    me = subprocess.run([sys.executable, "-m", "dtvm", "dtc", "-O", "dts", "-"], input=data, capture_output=True)
    assert me.returncode == ref.code == 0
    assert me.stdout == ref.out


def test_deep_nesting_matches_dtc_limit(tmp_path: str) -> None:
    """dtc's bison stack holds 3 entries per level: 3,330 levels parse, 3,331 do not."""
    for depth in (3330, 3331, 10000):
        src = os.path.join(str(tmp_path), f"deep{depth}.dts")
        with open(src, "w") as f:
            f.write("/dts-v1/;\n/ {" + "".join(f"n{i} {{" for i in range(depth)) + "};" * depth + "};\n")
        assert_same(["-O", "dtb", src])


def test_many_siblings_match_dtc_limit(tmp_path: str) -> None:
    for count in (9988, 9989):
        src = os.path.join(str(tmp_path), f"sib{count}.dts")
        with open(src, "w") as f:
            f.write("/dts-v1/;\n/ {" + "".join(f"n{i} {{ }};" for i in range(count)) + "};\n")
        assert_same(["-O", "dtb", src])


def test_pylibfdt_reads_our_blobs() -> None:
    libfdt = pytest.importorskip("libfdt")
    for path in GOOD:
        me = dtvm(["-O", "dtb", path])
        if not me.ok:
            continue
        fdt = libfdt.Fdt(me.out)
        # walk every node and property
        stack = [0]
        seen = 0
        while stack:
            off = stack.pop()
            prop = fdt.first_property_offset(off, [libfdt.NOTFOUND])
            while prop >= 0:
                fdt.get_property_by_offset(prop)
                prop = fdt.next_property_offset(prop, [libfdt.NOTFOUND])
            child = fdt.first_subnode(off, [libfdt.NOTFOUND])
            while child >= 0:
                stack.append(child)
                child = fdt.next_subnode(child, [libfdt.NOTFOUND])
            seen += 1
        assert seen >= 1


def test_fs_input(tmp_path: str) -> None:
    """-I fs: files are properties, directories nodes, in readdir order."""
    root = os.path.join(str(tmp_path), "fsdt")
    os.makedirs(os.path.join(root, "cpus", "cpu@0"))
    os.makedirs(os.path.join(root, "soc", "uart@1000"))
    files = {
        "model": b"board\0",
        "cpus/cpu@0/reg": b"\0\0\0\5",
        "soc/compatible": b"a\0b\0",
        "soc/empty": b"",
        "soc/bytes": b"\1\2\3",
        "soc/uart@1000/reg": b"\0\0\x10\0\0\0\1\0",
    }
    for rel, data in files.items():
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)
    for fmt in ("dts", "dtb"):
        ref = assert_same(["-I", "fs", "-O", fmt, root])
        assert ref.ok


def test_output_to_special_file_is_written_not_replaced(tmp_path: str) -> None:
    """-o FIFO (or /dev/null) is written in place as dtc does; a rename would destroy it."""
    import stat
    import threading

    fifo = os.path.join(str(tmp_path), "out.fifo")
    os.mkfifo(fifo)
    got: list[bytes] = []

    def reader() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    t = threading.Thread(target=reader)
    t.start()
    src = os.path.join(FIXTURES, "labels.dts")
    me = dtvm(["-O", "dtb", "-o", fifo, src])
    t.join(timeout=30)
    assert me.ok
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got == [dtc(["-O", "dtb", src]).out]
