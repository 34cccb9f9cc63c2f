"""``-O yaml``, ``-O asm`` and ``-T``/``-T -T`` annotations against Debian's dtc 1.6.1, byte for byte.

Every fixture under fixtures/dts, fixtures/overlay and fixtures/outputs goes
through each of these outputs in dtc and in dtvm; the outputs must be
identical, or both tools must reject the input (dtc aborts on some values
in its YAML writer; dtvm refuses them with a message). Expected outputs are
never written by hand: dtc is the oracle.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings

from .oracle import assert_same, dtc, dtvm, needs_dtc
from .test_dts_hypothesis import dts_source

pytestmark = needs_dtc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures")
OUTPUTS = os.path.join(FIXTURES, "outputs")
ANNOTATE = os.path.join(OUTPUTS, "annotate")

ALL = sorted(
    glob.glob(os.path.join(FIXTURES, "dts", "*.dts"))
    + glob.glob(os.path.join(FIXTURES, "dts", "bad", "*.dts"))
    + glob.glob(os.path.join(FIXTURES, "overlay", "*.dts"))
    + glob.glob(os.path.join(FIXTURES, "dtb", "*.dts"))
    + glob.glob(os.path.join(OUTPUTS, "*.dts"))
    + glob.glob(os.path.join(OUTPUTS, "reject", "*.dts"))
)
GOOD_OUTPUTS = sorted(glob.glob(os.path.join(OUTPUTS, "*.dts")))
REJECT_YAML = sorted(glob.glob(os.path.join(OUTPUTS, "reject", "*.dts")))

FORMATS = {
    "yaml": ["-O", "yaml"],
    "asm": ["-O", "asm"],
    "T": ["-T", "-O", "dts"],
    "TT": ["-T", "-T", "-O", "dts"],
}


def _id(path: str) -> str:
    return os.path.relpath(path, FIXTURES)


def _same_in(cwd: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """dtc and dtvm agree, both run from ``cwd`` (where /include/ and /incbin/ resolve)."""
    monkeypatch.chdir(cwd)
    assert_same(args, cwd=cwd)


@pytest.mark.parametrize("path", ALL, ids=_id)
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_fixture(path: str, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _same_in(os.path.dirname(path), ["-I", "dts", *FORMATS[fmt], path], monkeypatch)


@pytest.mark.parametrize("path", ALL, ids=_id)
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_fixture_forced_with_symbols(path: str, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """-f -@ -A: generated nodes (__symbols__, aliases, __fixups__) have no source position."""
    _same_in(os.path.dirname(path), ["-f", "-@", "-A", "-I", "dts", *FORMATS[fmt], path], monkeypatch)


@pytest.mark.parametrize("path", GOOD_OUTPUTS, ids=_id)
def test_output_fixtures_are_accepted(path: str) -> None:
    """The layout fixtures must reach the writers in dtc (else they test nothing)."""
    for fmt in ("yaml", "asm"):
        ref = dtc(["-f", "-I", "dts", *FORMATS[fmt], path], cwd=os.path.dirname(path))
        assert ref.ok, ref.err


@pytest.mark.parametrize("path", REJECT_YAML, ids=_id)
def test_yaml_rejections(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Values dtc's YAML writer aborts on: dtvm refuses them with a message, no traceback."""
    monkeypatch.chdir(os.path.dirname(path))
    ref = dtc(["-O", "yaml", path], cwd=os.path.dirname(path))
    assert not ref.ok
    me = dtvm(["-O", "yaml", path])
    assert me.code == 1
    assert "cannot be written as YAML" in me.err
    assert "Traceback" not in me.err
    # the same value is fine in the other outputs
    assert_same(["-O", "dts", path], cwd=os.path.dirname(path))
    assert_same(["-O", "asm", path], cwd=os.path.dirname(path))


ASM_OPTIONS = [
    ["-V", "1"],
    ["-V", "2"],
    ["-V", "3"],
    ["-V", "16"],
    ["-V", "17"],
    ["-R", "3"],
    ["-S", "4096"],
    ["-S", "10"],
    ["-p", "100"],
    ["-a", "64"],
    ["-a", "8", "-p", "3"],
    ["-b", "7"],
    ["-H", "both"],
    ["-H", "legacy", "-s"],
    ["-@", "-V", "1"],
    ["-@", "-A", "-V", "2"],
    ["-S", "-5", "-p", "-1"],
]


@pytest.mark.parametrize("opts", ASM_OPTIONS, ids=" ".join)
@pytest.mark.parametrize(
    "name",
    ["outputs/asm-labels.dts", "dts/labels.dts", "dts/memreserve.dts", "dts/names.dts", "dts/plugin.dts"],
)
def test_asm_options(opts: list[str], name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = os.path.join(FIXTURES, name)
    _same_in(os.path.dirname(path), [*opts, "-I", "dts", "-O", "asm", path], monkeypatch)


def test_asm_from_blob(tmp_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """-I dtb -O asm: every node of a blob has a full path, generated or not."""
    src = os.path.join(FIXTURES, "dts", "plugin.dts")
    ref = dtc(["-@", "-O", "dtb", src], cwd=os.path.dirname(src))
    assert ref.ok
    blob = os.path.join(str(tmp_path), "in.dtb")
    with open(blob, "wb") as f:
        f.write(ref.out)
    for opts in ([], ["-V", "1"], ["-A", "-V", "3"]):
        _same_in(str(tmp_path), [*opts, "-I", "dtb", "-O", "asm", blob], monkeypatch)
        _same_in(str(tmp_path), [*opts, "-I", "dtb", "-O", "yaml", blob], monkeypatch)


HAVE_BINUTILS = shutil.which("as") is not None and shutil.which("objcopy") is not None


@pytest.mark.skipif(not HAVE_BINUTILS, reason="binutils (as, objcopy) not installed")
@pytest.mark.parametrize(
    "opts", [[], ["-V", "16"], ["-R", "2", "-p", "64"], ["-a", "256"], ["-S", "2048"]], ids=" ".join
)
@pytest.mark.parametrize("name", ["outputs/asm-labels.dts", "dts/labels.dts", "dts/strings.dts"])
def test_asm_assembles_to_the_blob(
    opts: list[str], name: str, tmp_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dtvm's assembler source, assembled, is dtvm's (= dtc's) blob."""
    path = os.path.join(FIXTURES, name)
    monkeypatch.chdir(os.path.dirname(path))
    asm = dtvm([*opts, "-O", "asm", path])
    blob = dtvm([*opts, "-O", "dtb", path])
    assert asm.ok and blob.ok
    d = str(tmp_path)
    with open(os.path.join(d, "t.S"), "wb") as f:
        f.write(asm.out)
    subprocess.run(["as", "t.S", "-o", "t.o"], cwd=d, check=True, capture_output=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", "t.o", "t.bin"], cwd=d, check=True)
    with open(os.path.join(d, "t.bin"), "rb") as f:
        assert f.read() == blob.out


# -- -T: file names, columns, merged positions ------------------------------------------

ANNOTATE_RUNS = [
    # (working directory, arguments before the output options)
    (ANNOTATE, ["-i", "lib", "main.dts"]),
    (OUTPUTS, ["-i", "annotate/lib", "annotate/main.dts"]),
    (OUTPUTS, ["-i", os.path.join(ANNOTATE, "lib"), os.path.join(ANNOTATE, "main.dts")]),
    (ANNOTATE, ["-i", "lib", "./main.dts"]),
    (ANNOTATE, ["linemarkers.dts"]),
    (OUTPUTS, ["annotate/linemarkers.dts"]),
    (ANNOTATE, ["plugin.dts"]),
    (ANNOTATE, ["../../dts/include.dts"]),
    (os.path.join(FIXTURES, "dts"), ["../outputs/annotate/linemarkers.dts"]),
]


@pytest.mark.parametrize(
    "cwd,args",
    ANNOTATE_RUNS,
    ids=[
        f"{os.path.relpath(c, FIXTURES)}:{os.path.basename(a[-1])}:{i}"
        for i, (c, a) in enumerate(ANNOTATE_RUNS)
    ],
)
@pytest.mark.parametrize("level", [["-T"], ["-T", "-T"], ["-T", "-T", "-T"]], ids=" ".join)
@pytest.mark.parametrize("extra", [[], ["-@"], ["-s", "-H", "both"]], ids=lambda e: " ".join(e) or "plain")
def test_annotate(
    cwd: str, args: list[str], level: list[str], extra: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _same_in(cwd, [*level, *extra, "-O", "dts", *args], monkeypatch)


def test_annotate_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Standard input is named <stdin>, as in dtc."""
    import io
    import sys

    path = os.path.join(ANNOTATE, "plugin.dts")
    with open(path, "rb") as f:
        data = f.read()
    for level in (["-T"], ["-T", "-T"]):
        p = subprocess.run(["dtc", *level, "-O", "dts", "-"], input=data, capture_output=True)
        assert p.returncode == 0
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        me = dtvm([*level, "-O", "dts", "-"])
        assert me.ok, me.err
        assert me.out == p.stdout


def test_annotate_needs_dts_in_and_out() -> None:
    src = os.path.join(ANNOTATE, "plugin.dts")
    for args in (["-T", "-O", "dtb", src], ["-T", "-O", "yaml", src], ["-T", "-O", "asm", src]):
        assert not dtc(args).ok
        assert not dtvm(args).ok


# -- generated sources ----------------------------------------------------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(dts_source())
def test_generated_sources(source: str) -> None:
    """The DTS generator of test_dts_hypothesis, through every output of this module."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "gen.dts")
        with open(path, "w", encoding="utf-8") as f:
            f.write(source)
        runs = (
            ["-O", "yaml", path],
            ["-f", "-O", "yaml", path],
            ["-O", "asm", path],
            ["-f", "-V", "1", "-O", "asm", path],
            ["-T", "-O", "dts", path],
            ["-f", "-@", "-T", "-T", "-O", "dts", path],
        )
        for args in runs:
            ref = dtc(args)
            if ref.code < 0 and "Assertion" not in ref.err:
                continue  # dtc crashed outside an assertion: no oracle
            me = dtvm(args)
            assert "Traceback" not in me.err
            if ref.code == 0:
                assert me.code == 0, f"dtc accepts {args}, dtvm rejects ({me.err.strip()}):\n{source}"
                assert me.out == ref.out, f"output differs for {args}:\n{source}"
            else:
                assert me.code != 0, f"dtc rejects {args} ({ref.err.strip()}), dtvm accepts:\n{source}"
