"""docs/python.md's Python examples, run as written, their outputs compared with dtc's and fdtoverlay's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import dtvm
from tests.api_examples import check_outputs, run_examples
from tests.oracle import dtc, needs_dtc
from tests.shared import REPO

DOC = REPO / "docs" / "python.md"


@needs_dtc
@pytest.mark.skipif(shutil.which("fdtoverlay") is None, reason="fdtoverlay (Debian device-tree-compiler) is the oracle and is not installed")
def test_doc_examples_give_dtcs_bytes(tmp_path: Path) -> None:
    assert run_examples(DOC, tmp_path) >= 6
    check_outputs(tmp_path)


def test_star_import_gives_every_listed_name() -> None:
    ns: dict[str, object] = {}
    exec("from dtvm import *", ns)
    for name in dtvm.__all__:
        assert name in ns, name
    assert "compile_dts" not in dtvm.__all__


@needs_dtc
def test_parse_resolves_like_dtc(tmp_path: Path) -> None:
    src = tmp_path / "r.dts"
    src.write_text(
        "/dts-v1/;\n/ { a: a { x; }; b { ref = <&a 1 &c>; path = &a; }; c: c { phandle = <7>; }; d { }; };\n"
        "/ { /delete-node/ d; };\n&a { /delete-property/ x; };\n"
    )
    dt = dtvm.parse_dts(src)
    assert dtvm.write_dtb(dt) == dtc(["-q", "-O", "dtb", str(src)]).out
    assert [c.name for c in dt.root.children] == ["a", "b", "c"]
    assert dt.get_node("/a").props[0].name == "phandle"
    unresolved = dtvm.parse_dts(src, resolve=False)
    assert dtvm.write_dtb(unresolved) != dtc(["-q", "-O", "dtb", str(src)]).out
    dtvm.resolve(unresolved)
    assert dtvm.write_dtb(unresolved) == dtc(["-q", "-O", "dtb", str(src)]).out


def test_errors_name_the_place(tmp_path: Path) -> None:
    with pytest.raises(dtvm.DtvmError) as exc:
        dtvm.parse_dts_string("/dts-v1/;\n/ { a = <1 2; };\n", name="bad.dts")
    assert str(exc.value).startswith("bad.dts:2:")
    with pytest.raises(dtvm.DtvmError) as exc:
        dtvm.parse_dts_string("/dts-v1/;\n/ { a = <&nowhere>; };\n", name="ref.dts")
    assert "nowhere" in str(exc.value)


@needs_dtc
@pytest.mark.parametrize("phandles", ["epapr", "legacy", "both"])
def test_parse_resolve_write_equals_dtc_on_generated_sources(phandles: str) -> None:
    """Generated sources with labels, references, deletes and /memreserve/: the API's blob is dtc's."""
    import random

    from tests.test_pylibfdt import random_dts

    rng = random.Random({"epapr": 1, "legacy": 2, "both": 3}[phandles])
    compared = 0
    for _ in range(120):
        src = random_dts(rng)
        if rng.random() < 0.5:
            src += "/ { /delete-node/ soc; };\n"
        ref = dtc(["-q", "-H", phandles, "-I", "dts", "-O", "dtb", "-"], stdin=src.encode())
        if not ref.ok:
            with pytest.raises(dtvm.DtvmError):
                dt = dtvm.parse_dts_string(src, resolve=False)
                dtvm.resolve(dt, phandles=phandles)
            continue
        dt = dtvm.parse_dts_string(src, resolve=False)
        dtvm.resolve(dt, phandles=phandles)
        assert dtvm.write_dtb(dt) == ref.out, src
        assert all(not n.deleted and not any(p.deleted for p in n.props) for n in dt.root.walk(with_deleted=True))
        compared += 1
    assert compared >= 100


@needs_dtc
@pytest.mark.skipif(shutil.which("cpp") is None, reason="GNU cpp (the kernel's preprocessor) is the oracle and is not installed")
def test_parse_dts_with_cpp_equals_cpp_then_dtc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_compile_cpp import FIXTURE_INCS, FIXTURES, kernel_pipeline

    monkeypatch.chdir(FIXTURES)  # relative names, as cpp was given them (__FILE__ shows the name)
    for name in ("board.dts", "macros.dts", "conditionals.dts"):
        ref = kernel_pipeline(FIXTURES, name, FIXTURE_INCS, ["."], tmp_path / f"{name}.dtb")
        dt = dtvm.parse_dts(name, include_dirs=["."], cpp=True, cpp_includes=FIXTURE_INCS)
        assert dtvm.write_dtb(dt) == ref, name
        text = (FIXTURES / name).read_text()
        dt = dtvm.parse_dts_string(text, name=name, include_dirs=["."], cpp=True, cpp_includes=FIXTURE_INCS)
        assert dtvm.write_dtb(dt) == ref, name


@needs_dtc
def test_readme_example_gives_dtcs_bytes(tmp_path: Path) -> None:
    """The README's Python block, run on docs/python.md's board.dts: it works as written and the
    blob it writes is dtc's."""
    from tests.api_examples import blocks, tool

    (tmp_path / "board.dts").write_text(blocks(DOC.read_text(), "dts")[0])
    readme = blocks((REPO / "README.md").read_text(), "python")
    assert len(readme) == 1
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", readme[0]], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "apb_pclk"
    assert (tmp_path / "board.dtb").read_bytes() == tool(["dtc", "-q", "-O", "dtb", "board.dts"], tmp_path)
