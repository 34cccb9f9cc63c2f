"""`dtvm validate --schemas` (issue 20): the kernel's own binding schemas, dt-validate's findings.

The oracle is dt-validate of dtschema 2022.12 (jsonschema 4.17.3) with Linux 6.1's processed
schemas, run here on a seeded handful of arm64 boards (DTVM_KERNEL_SEED moves the choice; every
board: ``make test-kernel-schemas``). dt-validate takes about 10 s of CPU a board, hence a handful.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests import kernel_corpus as kc

pytestmark = pytest.mark.skipif(not kc.available(), reason=kc.MISSING)

SEED = int(os.environ.get("DTVM_KERNEL_SEED", "20"))
N_BOARDS = 3


def dtvm(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", "validate", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def boards() -> list[tuple[str, str]]:
    """(board, dtb) of a seeded sample of arm64 boards that the kernel's build compiles."""
    out = []
    for b in kc.sample("arm64", N_BOARDS * 2, SEED):
        dtb = kc.build("arm64", b)
        if dtb is not None:
            out.append((b, dtb))
        if len(out) == N_BOARDS:
            break
    assert out, "no board of the sample compiles"
    return out


@pytest.fixture(scope="module")
def oracle(boards: list[tuple[str, str]]) -> dict[str, tuple[int | None, str]]:
    """dt-validate's (exit status, stderr) per DTB: run once for the module, or taken from the
    on-disk cache of dt-validate's verdicts (kc.dt_validate_cached) when this oracle version
    already judged the board."""
    entries = {dtb: kc.dt_validate_cached("arm64", board) for board, dtb in boards}
    return {dtb: (e["rc"], e["stderr"]) for dtb, e in entries.items()}


def test_findings_identical_to_dt_validate(boards: list[tuple[str, str]], oracle) -> None:
    """dt-validate's stderr, line for line, is what --format dt-validate prints, board by board."""
    res = dtvm("--schemas", kc.PROCESSED, "--format", "json", *(d for _, d in boards))
    assert res.returncode in (0, 1), res.stderr
    files = json.loads(res.stdout)["files"]
    compared = 0
    for (board, dtb), rep in zip(boards, files, strict=True):
        rc, want = oracle[dtb]
        if kc.crashed(rc, want):
            continue  # counted by the all-boards run; nothing to compare
        assert rep["error"] is None, rep["error"]
        assert kc.normalise("".join(line + "\n" for line in rep["dt_validate"])) == kc.normalise(want), board
        compared += 1
        # dtvm's layout: one finding per dt-validate finding, each naming the node's full path
        assert len(rep["findings"]) == want.count("\n\tFrom schema: ")
    assert compared, "dt-validate crashed on every board of the sample"


def test_dt_validate_layout_on_stdout(boards: list[tuple[str, str]], oracle) -> None:
    """--format dt-validate prints dt-validate's lines (stdout), exit 1 with findings as dtvm does."""
    board, dtb = boards[0]
    rc, want = oracle[dtb]
    if kc.crashed(rc, want):
        pytest.skip(f"dt-validate crashes on {board}")
    res = dtvm("--schemas", kc.PROCESSED, "--format", "dt-validate", dtb)
    assert kc.normalise(res.stdout) == kc.normalise(want)
    assert res.returncode == (1 if "From schema:" in want else 0)
    assert "Traceback" not in res.stderr


def test_dts_input_names_lines(boards: list[tuple[str, str]]) -> None:
    """DTS through cpp: the same findings as the board's DTB, each at a FILE:LINE that exists."""
    board, dtb = boards[0]
    dts = kc.dts_path("arm64", board)
    blob = json.loads(dtvm("--schemas", kc.PROCESSED, "--format", "json", dtb).stdout)["files"][0]
    res = dtvm("--schemas", kc.PROCESSED, "--format", "json", *kc.cpp_args("arm64", board), dts)
    assert res.returncode in (0, 1), res.stderr
    src = json.loads(res.stdout)["files"][0]
    key = ("path", "prop", "message", "binding")
    assert [tuple(f[k] for k in key) for f in src["findings"]] == [tuple(f[k] for k in key) for f in blob["findings"]]
    for f in src["findings"]:
        assert f["line"] > 0, f
        assert os.path.isfile(f["file"]), f
        with open(f["file"], encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
        assert f["line"] <= len(lines), f
        text = lines[f["line"] - 1]
        # the line holds the property's name, or the node's name, that the finding is about
        name = (f["prop"] or "").split(":")[0] or f["path"].rsplit("/", 1)[-1]
        assert name.split("@")[0] in text or f["path"].rsplit("/", 1)[-1].split("@")[0] in text, (f, text)


def test_jobs_gives_the_same_output(boards: list[tuple[str, str]]) -> None:
    files = [d for _, d in boards]
    one = dtvm("--schemas", kc.PROCESSED, "--format", "dt-validate", *files)
    two = dtvm("--schemas", kc.PROCESSED, "--format", "dt-validate", "--jobs", "2", *files)
    assert one.returncode == two.returncode
    assert one.stdout == two.stdout


# -- bad input: one line naming the file, no traceback, the other files still validated ----------


def test_schema_file_that_does_not_load(tmp_path, boards: list[tuple[str, str]]) -> None:
    bad = tmp_path / "processed-schema.json"
    bad.write_text('{"http://devicetree.org/schemas/x.yaml#": {"select": tru\n')
    res = dtvm("--schemas", str(bad), boards[0][1])
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and str(bad) in res.stderr and "Traceback" not in res.stderr
    res = dtvm("--schemas", str(tmp_path / "nowhere"), boards[0][1])
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "nowhere" in res.stderr
    empty = tmp_path / "dir"
    empty.mkdir()
    res = dtvm("--schemas", str(empty), boards[0][1])
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "processed-schema.json" in res.stderr


def _blocks(text: str) -> list[str]:
    """dt-validate's output cut into findings (each ends with its From schema line)."""
    out, cur = [], []
    for line in text.splitlines():
        cur.append(line)
        if line.startswith("\tFrom schema: "):
            out.append("\n".join(cur))
            cur = []
    return out


def test_ref_to_nowhere(tmp_path, boards: list[tuple[str, str]]) -> None:
    """A $ref whose target does not exist: dt-validate stops with a traceback; dtvm names the schema
    in one line and goes on with the other schemas and files."""
    with open(kc.PROCESSED, encoding="utf-8") as f:
        doc = json.load(f)
    # the schema every node meets (select: true) gets a broken reference
    sid = "http://devicetree.org/schemas/dt-core.yaml#"
    assert doc[sid]["select"] is True
    doc[sid] = {**doc[sid], "allOf": [*doc[sid].get("allOf", []), {"$ref": "/schemas/types.yaml#/definitions/no-such-type"}]}
    broken = tmp_path / "processed-schema.json"
    broken.write_text(json.dumps(doc))
    dtb = boards[0][1]
    rc, err = kc.dt_validate_with(str(broken), dtb)
    assert kc.crashed(rc, err)  # the oracle does not survive it
    res = dtvm("--schemas", str(broken), "--format", "dt-validate", dtb)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    problems = res.stderr.splitlines()
    assert len(problems) == 1, problems
    assert "dt-core.yaml: error: $ref '/schemas/types.yaml#/definitions/no-such-type' resolves to nothing" in problems[0]
    # the other schemas still ran: every finding that does not come from dt-core is there
    good = dtvm("--schemas", kc.PROCESSED, "--format", "dt-validate", dtb).stdout
    want = [b for b in _blocks(kc.normalise(good)) if not b.endswith("/dt-core.yaml")]
    got = [b for b in _blocks(kc.normalise(res.stdout)) if not b.endswith("/dt-core.yaml")]
    assert got == want


def test_blob_that_does_not_decode(tmp_path, boards: list[tuple[str, str]], oracle) -> None:
    _board, dtb = boards[0]
    with open(dtb, "rb") as f:
        data = f.read()
    cut = tmp_path / "cut.dtb"
    cut.write_bytes(data[: len(data) // 2])
    res = dtvm("--schemas", kc.PROCESSED, "--format", "dt-validate", str(cut), dtb)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    errs = [line for line in res.stderr.splitlines() if "cut.dtb" in line]
    assert len(errs) == 1 and errs[0].startswith(str(cut)), res.stderr
    rc, want = oracle[dtb]
    if not kc.crashed(rc, want):
        assert kc.normalise(res.stdout) == kc.normalise(want)  # the good file after it is validated in full


def test_undecodable_value_is_dt_validate_crash(tmp_path, boards: list[tuple[str, str]]) -> None:
    """A blob dtschema's decoder raises on (a *-gpios phandle that names no node): dt-validate dies
    with a traceback; dtvm says so in one line for that file."""
    if shutil.which("dtc") is None:
        pytest.skip("dtc is not installed")
    src = tmp_path / "bad.dts"
    src.write_text('/dts-v1/;\n/ { compatible = "foo,bar"; model = "x"; #address-cells = <1>; #size-cells = <1>;\n'
                   "  led { reset-gpios = <0x1234 1 0>; };\n};\n")
    blob = tmp_path / "bad.dtb"
    subprocess.run(["dtc", "-q", "-O", "dtb", "-o", str(blob), str(src)], check=True)
    rc, err = kc.dt_validate(str(blob))
    assert kc.crashed(rc, err)
    res = dtvm("--schemas", kc.PROCESSED, str(blob), boards[0][1])
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if "bad.dtb" in line]
    assert len(lines) == 1 and "dtschema cannot decode" in lines[0]


def test_with_dtvm_bindings_too(boards: list[tuple[str, str]]) -> None:
    """--schemas and --bindings together: the kernel schema's findings and dtvm's binding's both."""
    dtb = boards[0][1]
    kernel = json.loads(dtvm("--schemas", kc.PROCESSED, "--format", "json", dtb).stdout)["files"][0]["findings"]
    mine = json.loads(dtvm("--format", "json", "--bindings", _dtvm_bindings(), dtb).stdout)["files"][0]["findings"]
    both = json.loads(dtvm("--schemas", kc.PROCESSED, "--bindings", _dtvm_bindings(), "--format", "json", dtb).stdout)
    got = both["files"][0]["findings"]
    assert got == kernel + mine
    assert any(f["rule"] == "kernel-schema" for f in got) or not kernel


def _dtvm_bindings() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bindings")
