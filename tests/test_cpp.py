"""``dtvm dtc --cpp``: the kernel's cpp step in process, against GNU cpp followed by dtc.

The fixtures in fixtures/cpp/ are preprocessed by GNU cpp exactly as the
kernel does it (``cpp -nostdinc -I ... -undef -D__DTS__ -x
assembler-with-cpp``) and compiled by Debian's dtc; ``dtvm dtc --cpp`` must
give the same bytes, the same text (token for token, line for line), and
reject what either of them rejects, at the same file and line. Expected
outputs are never written by hand.
"""

from __future__ import annotations

import glob
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtvm.cli.dtc import run
from dtvm.dt.dts.preprocess import preprocess
from dtvm.dt.dts.source import SourceBuffer, read_source
from dtvm.errors import DtvmError, SourceError

from .oracle import HAVE_DTC, dtc, needs_dtc

HAVE_CPP = shutil.which("cpp") is not None
needs_cpp = pytest.mark.skipif(
    not HAVE_CPP, reason="GNU cpp (the kernel's preprocessor) is the oracle and is not installed"
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures", "cpp")
GOOD = sorted(os.path.basename(p) for p in glob.glob(os.path.join(FIXTURES, "*.dts")))
BAD = sorted(
    os.path.join("bad", os.path.basename(p)) for p in glob.glob(os.path.join(FIXTURES, "bad", "*.dts"))
)
CPP_DIRS = ["include", "."]

# FILE:LINE:COL: error: message (dtvm) / GNU cpp's and dtc's own forms
_ONE_LINE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): error: (?P<msg>.+)$")
_GNU_ERROR = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+)(?::(?P<col>\d+))?: (?:fatal )?error: (?P<msg>.+)$", re.M
)
_DTC_ERROR = re.compile(r"^Error: (?P<file>[^:\n]+):(?P<line>\d+)\.(?P<col>\d+)", re.M)


@pytest.fixture(autouse=True)
def _in_fixture_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    # relative paths, so that GNU cpp and dtvm name the files alike
    monkeypatch.chdir(FIXTURES)


def gnu_cpp(path: str, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = ["cpp", "-nostdinc"]
    for d in CPP_DIRS:
        cmd += ["-I", d]
    cmd += ["-undef", "-D__DTS__", *extra, "-x", "assembler-with-cpp", path]
    return subprocess.run(cmd, capture_output=True, text=True, encoding="latin-1", timeout=60)


def dtvm_cpp(path: str, fmt: str, *extra: str) -> tuple[int, bytes, str]:
    args = ["--cpp"]
    for d in CPP_DIRS:
        args += ["--cpp-include", d]
    out = io.BytesIO()
    err = io.StringIO()
    code = run([*args, *extra, "-i", ".", "-I", "dts", "-O", fmt, "-o", "-", path], out, err)
    return code, out.getvalue(), err.getvalue()


def normalized(text: str) -> list[str]:
    """Lines with blank runs as one blank; GNU's <built-in>/<command-line> preamble dropped."""
    lines = text.split("\n")
    while lines and lines[0].startswith("# 0 "):
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return [re.sub(r"[ \t]+", " ", line).strip() for line in lines]


def display_column(path: str, line: int, col: int) -> int:
    """GNU reports columns with tabs expanded to 8; dtvm (like dtc) counts bytes."""
    with open(path, encoding="latin-1") as f:
        text = f.read().split("\n")[line - 1]
    return len(text[: col - 1].expandtabs(8)) + 1


# ---------------------------------------------------------------------------
# Against GNU cpp and dtc
# ---------------------------------------------------------------------------


@needs_cpp
@needs_dtc
@pytest.mark.parametrize("path", GOOD)
@pytest.mark.parametrize("fmt", ["dtb", "dts"])
def test_compiles_like_cpp_then_dtc(path: str, fmt: str, tmp_path: str) -> None:
    pp = gnu_cpp(path)
    assert pp.returncode == 0, pp.stderr
    pp_file = os.path.join(str(tmp_path), "board.pp.dts")
    with open(pp_file, "w", encoding="latin-1") as f:
        f.write(pp.stdout)
    ref = dtc(["-i", ".", "-I", "dts", "-O", fmt, pp_file], cwd=FIXTURES)
    assert ref.ok, f"fixture {path} should be accepted by cpp | dtc: {ref.err}"
    code, out, err = dtvm_cpp(path, fmt)
    assert code == 0, err
    assert out == ref.out


@needs_cpp
@pytest.mark.parametrize("path", GOOD)
def test_text_like_gnu_cpp(path: str) -> None:
    """Token for token and line for line what GNU cpp writes (blank runs compared as one blank)."""
    ref = gnu_cpp(path)
    assert ref.returncode == 0, ref.stderr
    mine = preprocess(read_source(path), CPP_DIRS, []).text
    assert normalized(mine) == normalized(ref.stdout)


@needs_cpp
@pytest.mark.parametrize("path", BAD)
def test_rejected_where_cpp_or_dtc_rejects(path: str, tmp_path: str) -> None:
    """One line FILE:LINE:COL: error: where GNU cpp rejects; dtc's own lines where dtc (after cpp) rejects."""
    pp = gnu_cpp(path)
    code, _out, err = dtvm_cpp(path, "dtb")
    assert code == 1
    assert "Traceback" not in err
    first = err.splitlines()[0]
    m = _ONE_LINE.match(first) or _DTC_ERROR.match(first)
    assert m, first
    if pp.returncode != 0:
        ref = _GNU_ERROR.search(pp.stderr)
        assert ref, pp.stderr
        assert (m["file"], m["line"]) == (ref["file"], ref["line"]), (first, pp.stderr)
        if ref["col"]:
            assert display_column(m["file"], int(m["line"]), int(m["col"])) == int(ref["col"]), (
                first,
                pp.stderr,
            )
        assert m["msg"].startswith(ref["msg"].split(" (use ")[0]), (first, pp.stderr)
        return
    if not HAVE_DTC:
        pytest.skip("dtc is not installed")
    pp_file = os.path.join(str(tmp_path), "bad.pp.dts")
    with open(pp_file, "w", encoding="latin-1") as f:
        f.write(pp.stdout)
    ref_dtc = dtc(["-i", ".", "-I", "dts", "-O", "dtb", pp_file], cwd=FIXTURES)
    assert not ref_dtc.ok, f"{path} should be rejected by cpp or by dtc"
    where = _DTC_ERROR.search(ref_dtc.err)
    assert where, ref_dtc.err
    assert (m["file"], m["line"], m["col"]) == (where["file"], where["line"], where["col"]), (
        first,
        ref_dtc.err,
    )


def test_error_in_included_dtsi_is_reported_there() -> None:
    """A dtc error after cpp names the .dtsi and its line (through the linemarkers)."""
    code, _out, err = dtvm_cpp(os.path.join("bad", "dtc-error.dts"), "dtb")
    assert code == 1
    pp = gnu_cpp(os.path.join("bad", "dtc-error.dts"))
    ref = dtc(["-i", ".", "-I", "dts", "-O", "dtb", "-"], cwd=FIXTURES, stdin=pp.stdout.encode("latin-1"))
    assert err == ref.err
    assert err.startswith("Error: bad/broken.dtsi:7."), err


@needs_cpp
def test_defines_like_cpp_minus_d() -> None:
    src = "FOO BAR BAZ QUX(2)\n#ifdef FOO\nfoo_defined\n#endif\n"
    ref = subprocess.run(
        [
            "cpp",
            "-nostdinc",
            "-undef",
            "-D__DTS__",
            "-DFOO",
            "-DBAR=7",
            "-DBAZ=",
            "-DQUX(x)=x+x",
            "-x",
            "assembler-with-cpp",
            "-",
        ],
        input=src,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ref.returncode == 0
    mine = preprocess(SourceBuffer("<stdin>", src, ""), [], ["FOO", "BAR=7", "BAZ=", "QUX(x)=x+x"]).text
    assert normalized(mine) == normalized(ref.stdout)


# ---------------------------------------------------------------------------
# Without an oracle
# ---------------------------------------------------------------------------


def _pp(text: str, defines: list[str] | None = None) -> str:
    return preprocess(SourceBuffer("t.dts", text, ""), [], defines or []).text


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("# ")]


def test_hash_lines_that_are_no_directives_are_text() -> None:
    out = _pp("#define N 2\n#address-cells = <N>; #size-cells = <N>;\n\t#gpio-cells = <N>;\n#\n")
    assert _lines(out) == ["#address-cells = <2>; #size-cells = <2>;", "#gpio-cells = <2>;"]


def test_predefined_macros() -> None:
    names = [
        "__DTS__",
        "__ASSEMBLER__",
        "__STDC__",
        "__GNUC__",
        "__linux__",
        "linux",
        "unix",
        "__PCPP__",
        "__x86_64__",
    ]
    text = "".join(f"#ifdef {n}\n{n}_yes\n#endif\n" for n in names)
    assert _lines(_pp(text)) == ["__DTS___yes", "__ASSEMBLER___yes", "__STDC___yes"]


def test_cpp_define_option() -> None:
    out = _pp("#ifdef FOO\nfoo = <BAR>;\n#endif\n", ["FOO", "BAR=0x10"])
    assert _lines(out) == ["foo = <0x10>;"]


def test_cli_cpp_define_and_include(tmp_path: str) -> None:
    d = str(tmp_path)
    os.makedirs(os.path.join(d, "inc"))
    with open(os.path.join(d, "inc", "vals.h"), "w") as f:
        f.write("#define VAL (BASE + 1)\n")
    board = os.path.join(d, "b.dts")
    with open(board, "w") as f:
        f.write("/dts-v1/;\n#include <vals.h>\n/ { v = <VAL>; };\n")
    out = io.BytesIO()
    err = io.StringIO()
    code = run(
        [
            "--cpp",
            "--cpp-include",
            os.path.join(d, "inc"),
            "--cpp-define",
            "BASE=41",
            "-O",
            "dts",
            "-o",
            "-",
            board,
        ],
        out,
        err,
    )
    assert code == 0, err.getvalue()
    assert b"v = <0x2a>;" in out.getvalue()


def test_linemarkers_name_the_included_file() -> None:
    out = preprocess(read_source("board.dts"), CPP_DIRS, []).text
    assert out.startswith('# 1 "board.dts"\n')
    assert '# 1 "common.dtsi" 1\n' in out
    assert '# 1 "sub/pins-extra.dtsi" 1\n' in out  # found next to sub/pins.dtsi
    assert '# 1 "include/dt-bindings/test/consts.h" 1\n' in out


def test_quoted_include_searches_the_including_files_directory_only() -> None:
    """GNU looks in the directory of the file with the #include, not of the files around it."""
    with pytest.raises(SourceError) as exc:
        preprocess(SourceBuffer("sub/x.dts", '#include "common.dtsi"\n', "sub"), [], [])
    assert str(exc.value) == "sub/x.dts:1:10: error: common.dtsi: No such file or directory"


@pytest.mark.parametrize("path", BAD)
def test_errors_are_one_liners(path: str) -> None:
    code, _out, err = dtvm_cpp(path, "dtb")
    assert code == 1
    assert "Traceback" not in err
    first = err.splitlines()[0]
    # cpp's errors in dtvm's form; what dtc rejects after cpp in dtc's own lines
    assert _ONE_LINE.match(first) or (_DTC_ERROR.match(first) and err.endswith("FATAL ERROR: Unable to parse input tree\n")), err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("#if 1\n", "t.dts:1:2: error: unterminated #if"),
        ("#if\n#endif\n", "t.dts:1:4: error: #if with no expression"),
        ("#ifdef\n#endif\n", "t.dts:1:7: error: no macro name given in #ifdef directive"),
        ("#endif\n", "t.dts:1:2: error: #endif without #if"),
        ("#define\n", "t.dts:1:8: error: no macro name given in #define directive"),
        ("#define 3 x\n", "t.dts:1:9: error: macro names must be identifiers"),
        ("#define F(x,x) x\n", 't.dts:1:13: error: duplicate macro parameter "x"'),
        ("#define F(x) x\nF(1,2)\n", 't.dts:2:6: error: macro "F" passed 2 arguments, but takes just 1'),
        ("#define F(x) x\nF(1\n", 't.dts:2:4: error: unterminated argument list invoking macro "F"'),
        ("a /* b\n", "t.dts:1:3: error: unterminated comment"),
        ("#if 1/0\n#endif\n", "t.dts:1:5: error: division by zero in #if"),
        ("#if 08\n#endif\n", 't.dts:1:5: error: invalid digit "8" in octal constant'),
        ("#if F(1)\n#endif\n", 't.dts:1:6: error: missing binary operator before token "("'),
        ("#if defined\n#endif\n", 't.dts:1:12: error: operator "defined" requires an identifier'),
        ("#include\n", 't.dts:1:9: error: #include expects "FILENAME" or <FILENAME>'),
        ('#include ""\n', "t.dts:1:10: error: empty filename in #include"),
        ("#line x\n", 't.dts:1:7: error: "x" after #line is not a positive integer'),
        ("#error stop here\n", "t.dts:1:2: error: #error stop here"),
    ],
)
def test_error_messages(text: str, message: str) -> None:
    with pytest.raises(DtvmError) as exc:
        _pp(text)
    assert str(exc.value) == message


def test_warnings_are_not_errors() -> None:
    out = _pp(
        '#define A 1\n#define A 2\n#warning careful\n#ifdef A junk\nA\n#endif junk\n#pragma foo\n#ident "x"\n'
    )
    assert _lines(out) == ["2"]


def test_line_directive() -> None:
    out = _pp('a\n#line 100 "other.dts"\nb __LINE__ __FILE__\n')
    assert '# 100 "other.dts"\nb 100 "other.dts"' in out


def test_gnu_lexing() -> None:
    """pp-numbers, no '$' in identifiers, unterminated quotes as plain characters."""
    out = _pp("#define P(port) 0x##port\n#define c20 X\n#define a 1\nP(1f) 1c20 a$b it's \"x\n")
    assert _lines(out) == ["0x1f 1c20 1$b it's \"x"]


def test_unterminated_quote_takes_the_rest_of_the_line() -> None:
    """In assembler-with-cpp a lone ' or " is one token to the end of its line: no expansion, no comment."""
    out = _pp("#define FOO 1\nit's FOO // c /* d\nFOO\n")
    assert _lines(out) == ["it's FOO // c /* d", "1"]


def test_stringification_like_gnu() -> None:
    out = _pp('#define S(x) #x\nS(a\\b "c\\d" \'"\') S(  spaced   out  )\n')
    assert _lines(out) == ['"a\\b \\"c\\\\d\\" \'\\"\'" "spaced out"']


def test_no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("preprocess ran a process")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(os, "system", refuse)
    assert preprocess(read_source("board.dts"), CPP_DIRS, []).text


# ---------------------------------------------------------------------------
# Generated sources against GNU cpp
# ---------------------------------------------------------------------------

_HEADER = "#ifndef H\n#define H\n#define HV 0x10\n#define HF(a,b) ((a)+(b))\n#endif\n"
_ATOMS = [
    "A", "B", "C", "F", "G", "S", "V", "HV", "HF", "x", "y", "0x10", "1", "2", "08", "1c20", "(", ")", ",",
    "+", "-", "<", ">", "<<", "&", "|", "#", "##", '"str"', "'c'", "'", '"', "/*c*/", "//c", "/* multi\nline */",
    "\\\n", " ", "  ", "\t", "{", "}", ";", "=", "@", ".", "$", "__LINE__", "__FILE__", "defined", "EMPTY",
    "&lbl", "lbl:", "#address-cells = <A>;",
]  # fmt: skip
_DIRECTIVES = [
    "#define A 1", "#define B A+1", "#define C(x) x##_c", "#define F(x,y) [x|y]", "#define G(...) <__VA_ARGS__>",
    "#define S(x) #x", "#define V(x,...) x, ## __VA_ARGS__", "#define EMPTY", "#undef A", "#if A", "#if B > 1",
    "#ifdef A", "#ifndef C", "#elif 1", "#else", "#endif", '#include "h.h"', "#line 50", "#", '# 3 "x"',
    "#error boom", "#if defined(A) && A", "#warning w", "#include_next <h.h>",
]  # fmt: skip


@st.composite
def cpp_source(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.booleans()) and draw(st.booleans()):
            lines.append(draw(st.sampled_from(_DIRECTIVES)))
        else:
            atoms = draw(st.lists(st.tuples(st.sampled_from(_ATOMS), st.booleans()), max_size=10))
            lines.append("".join(a + (" " if sp else "") for a, sp in atoms))
    return "\n".join(lines) + "\n"


@needs_cpp
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(cpp_source())
def test_generated_sources_like_gnu_cpp(source: str) -> None:
    """The same text, or both reject it; the first error at the same file and line, in the same words."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "h.h"), "w") as f:
            f.write(_HEADER)
        with open(os.path.join(d, "f.dts"), "w", encoding="latin-1") as f:
            f.write(source)
        ref = subprocess.run(
            ["cpp", "-nostdinc", "-I", ".", "-undef", "-D__DTS__", "-x", "assembler-with-cpp", "f.dts"],
            capture_output=True,
            text=True,
            encoding="latin-1",
            cwd=d,
            timeout=60,
        )
        cwd = os.getcwd()
        os.chdir(d)
        try:
            mine = preprocess(read_source("f.dts"), ["."], []).text
            err = None
        except DtvmError as exc:
            mine = None
            err = str(exc)
        finally:
            os.chdir(cwd)
    if ref.returncode != 0:
        assert err is not None, f"GNU cpp rejects: {ref.stderr}"
        g = _GNU_ERROR.search(ref.stderr)
        m = _ONE_LINE.match(err)
        assert g and m, (ref.stderr, err)
        assert (m["file"], m["line"]) == (g["file"], g["line"]), (ref.stderr, err)
        assert m["msg"] == g["msg"].split(" (use ")[0] or "unterminated argument list" in m["msg"], (
            ref.stderr,
            err,
        )
        return
    assert mine is not None, f"GNU cpp accepts, dtvm: {err}"
    assert normalized(mine) == normalized(ref.stdout)


@needs_cpp
@pytest.mark.parametrize("tail", ["C(\n", "C(\n\n", "C(\n\n\n", "C(", "C(a,\n  b", "C(a\n  \n", "C(a\\\n  \n",
                                  "C(a /* x\n */  \n\n", "C(a,\n#define Z 1\n\n"])
def test_unterminated_call_where_gnu_cpp_says(tail: str, tmp_path: Path) -> None:
    """An open call at the end of the file: GNU cpp names the end of the file's last line (blank
    lines after the call count; found by a fresh hypothesis draw)."""
    text = "#define C(x) x\n" + tail
    (tmp_path / "t.dts").write_text(text)
    ref = subprocess.run(["cpp", "-nostdinc", "-undef", "-x", "assembler-with-cpp", "t.dts"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    g = _GNU_ERROR.search(ref.stderr)
    assert ref.returncode != 0 and g, ref.stderr
    with pytest.raises(DtvmError) as exc:
        _pp(text)
    m = _ONE_LINE.match(str(exc.value))
    assert m and (m["line"], m["col"], m["msg"]) == (g["line"], g["col"], g["msg"]), (ref.stderr, str(exc.value))


@needs_cpp
@pytest.mark.parametrize("source", [
    "#define C(x,y) x y\nC(a,\n#define Z 1\nZ)\n",
    "#define C(x,y) x y\n#define Z\nC(q,\n#ifdef Z\nr)\n#endif\n",
    "#define C(x,y) x y\nC(q,\n#if 0\nr)\n#else\ns)\n#endif\nt\n",
    "#define C(x,y) x y\n#define Z\nC(Z,\n#undef Z\nZ)\n",
    "#define C(x,y) x y\nC(q,\n#define W(a) [a]\nW(r))\nW(s)\n",
])
def test_directives_inside_macro_arguments(source: str, tmp_path: Path) -> None:
    """#define, #undef and conditionals inside an open call: GNU cpp takes them and goes on
    collecting the arguments, which expand with the definitions in force when the call closes."""
    (tmp_path / "t.dts").write_text(source)
    ref = subprocess.run(["cpp", "-nostdinc", "-undef", "-x", "assembler-with-cpp", "t.dts"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert ref.returncode == 0, ref.stderr
    assert normalized(_pp(source)) == normalized(ref.stdout)
