"""``dtvm compile --cpp`` and ``dtvm validate --cpp``: kernel trees as the kernel's build compiles them.

The oracle is the kernel's own pipeline, GNU ``cpp -nostdinc -I ... -undef
-D__DTS__ -x assembler-with-cpp`` followed by Debian's dtc: ``dtvm compile
--cpp`` must write dtc's blob for each board, on the small kernel-style
fixtures in fixtures/cpp (so the test runs without ../shared) and on boards of
the kernel corpus in ../shared when it is there.  ``dtvm validate --cpp`` must
find on the source what it finds on dtc's blob of the preprocessed source.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dtvm.cli import compile as compile_mod
from dtvm.cli.compile import compile_cmd
from dtvm.cli.validate import validate_cmd
from tests.oracle import needs_dtc
from tests.shared import REPO, shared_dir

needs_cpp = pytest.mark.skipif(shutil.which("cpp") is None, reason="GNU cpp (the kernel's preprocessor) is the oracle and is not installed")
FIXTURES = REPO / "fixtures" / "cpp"
CORPUS = (shared_dir() or Path("/nonexistent")) / "corpus" / "linux-dts"
BOARDS = [
    "src/arm/am335x-boneblack.dts",
    "src/arm/bcm2837-rpi-3-b.dts",
    "src/arm/imx6q-sabresd.dts",
    "src/arm/sun8i-h3-orangepi-pc.dts",
    "src/arm/rk3288-firefly.dts",
    "src/arm/tegra124-jetson-tk1.dts",
    "src/arm/vexpress-v2p-ca9.dts",
]


def kernel_pipeline(cwd: Path, dts: str, incs: list[str], dtc_incs: list[str], out: Path) -> bytes:
    """cpp | dtc exactly as the kernel's Makefile.lib runs them: the oracle's blob."""
    pp = out.with_suffix(".pp")
    cmd = ["cpp", "-nostdinc"]
    for d in [*incs, os.path.dirname(dts) or "."]:
        cmd += ["-I", d]
    cmd += ["-undef", "-D__DTS__", "-x", "assembler-with-cpp", dts, "-o", str(pp)]
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, timeout=60)
    args = ["dtc", "-q", "-I", "dts", "-O", "dtb"]
    for d in dtc_incs:
        args += ["-i", d]
    p = subprocess.run([*args, "-o", str(out), str(pp)], cwd=cwd, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return out.read_bytes()


def invoke(cmd: Any, args: list[str], cwd: Path) -> Any:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cmd, args, catch_exceptions=False)
    finally:
        os.chdir(old)


def cpp_opts(incs: list[str]) -> list[str]:
    out = ["--cpp"]
    for d in incs:
        out += ["--cpp-include", d]
    return out


FIXTURE_INCS = ["include", "sub"]


@needs_cpp
@needs_dtc
@pytest.mark.parametrize("name", ["board.dts", "macros.dts", "conditionals.dts", "comments.dts"])
def test_compile_cpp_fixture_gives_dtcs_blob(name: str, tmp_path: Path) -> None:
    ref = kernel_pipeline(FIXTURES, name, FIXTURE_INCS, ["."], tmp_path / "ref.dtb")
    r = invoke(compile_cmd, [*cpp_opts(FIXTURE_INCS), "-j", "1", "-i", ".", "-o", str(tmp_path / "out"), name], FIXTURES)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / name.replace(".dts", ".dtb")).read_bytes() == ref


@needs_cpp
@needs_dtc
def test_compile_cpp_kernel_boards(tmp_path: Path) -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"the kernel corpus is not beside the repository ({CORPUS} is missing)")
    incs = ["include", "src/arm", "src/arm/include"]
    # the README's command, on several boards at once, with --jobs left at its default (all cores)
    r = invoke(compile_cmd, [*cpp_opts(incs), "-q", "-i", "src/arm", "-o", str(tmp_path / "out"), *BOARDS], CORPUS)
    assert r.exit_code == 0, r.output
    for board in BOARDS:
        stem = Path(board).stem
        ref = kernel_pipeline(CORPUS, board, incs, ["src/arm"], tmp_path / f"{stem}.ref.dtb")
        assert (tmp_path / "out" / f"{stem}.dtb").read_bytes() == ref, board


def test_include_without_cpp_gives_a_hint(tmp_path: Path) -> None:
    r = invoke(compile_cmd, ["-j", "1", "-o", str(tmp_path / "out"), "board.dts"], FIXTURES)
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    hint = [line for line in r.output.splitlines() if "hint:" in line]
    assert hint == ["board.dts:8: hint: this file uses the C preprocessor (#include): add --cpp (with --cpp-include DIR for its headers)"]
    assert not (tmp_path / "out" / "board.dtb").exists()
    r = invoke(validate_cmd, ["board.dts"], FIXTURES)
    assert r.exit_code == 2
    assert any(line.startswith("board.dts:8: hint:") for line in r.output.splitlines())


def test_cpp_options_need_cpp(tmp_path: Path) -> None:
    for cmd, args in ((compile_cmd, ["-o", str(tmp_path)]), (validate_cmd, ["-q"])):
        r = invoke(cmd, ["--cpp-include", "include", *args, "board.dts"], FIXTURES)
        assert r.exit_code == 2
        assert "--cpp-include and --cpp-define need --cpp" in r.output


def test_compile_jobs_defaults_to_all_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    class Pool:
        def __init__(self, max_workers: int) -> None:
            seen.append(max_workers)

        def map(self, fn: Any, work: Any, chunksize: int = 1) -> Any:
            return map(fn, work)

        def shutdown(self) -> None:
            pass

    monkeypatch.setattr(compile_mod, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(compile_mod.os, "cpu_count", lambda: 5)
    (tmp_path / "a.dts").write_text("/dts-v1/;\n/ { a; };\n")
    (tmp_path / "b.dts").write_text("/dts-v1/;\n/ { b; };\n")
    r = invoke(compile_cmd, ["-o", "out", "a.dts", "b.dts"], tmp_path)
    assert r.exit_code == 0, r.output
    assert seen == [5]


def findings(output: str) -> list[tuple[str, str, str]]:
    doc = json.loads(output)
    return sorted((f["path"], f["prop"] or "", f["message"]) for fl in doc["files"] for f in fl["findings"])


@needs_cpp
@needs_dtc
def test_validate_cpp_finds_what_the_blob_shows(tmp_path: Path) -> None:
    cases: list[tuple[Path, str, list[str], list[str]]] = [(FIXTURES, "board.dts", FIXTURE_INCS, ["."])]
    if CORPUS.is_dir():
        cases += [(CORPUS, b, ["include", "src/arm", "src/arm/include"], ["src/arm"]) for b in BOARDS[:3]]
    for cwd, dts, incs, dtc_incs in cases:
        blob = tmp_path / (Path(dts).stem + ".dtb")
        kernel_pipeline(cwd, dts, incs, dtc_incs, blob)
        ref = invoke(validate_cmd, ["--format", "json", "-q", str(blob)], cwd)
        args = ["--format", "json", "-q", *cpp_opts(incs)]
        for d in dtc_incs:
            args += ["-i", d]
        me = invoke(validate_cmd, [*args, dts], cwd)
        assert me.exit_code == ref.exit_code, me.output[-500:]
        assert me.exit_code in (0, 1)
        assert findings(me.output) == findings(ref.output), dts


def _on_a_terminal(argv: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``argv`` with stderr on a pseudo-terminal (the progress bar is drawn only there)."""
    import pty
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dtvm", *argv], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def test_messages_never_inside_the_progress_bar(tmp_path: Path) -> None:
    """On a terminal, compile draws a bar on stderr; each error starts a line of its own."""
    for i in range(6):
        (tmp_path / f"ok{i}.dts").write_text("/dts-v1/;\n/ { x = <1>; };\n")
    (tmp_path / "bad.dts").write_text("/dts-v1/;\n/ { x = <1> };\n")
    (tmp_path / "inc.dts").write_text('/dts-v1/;\n#include "a.h"\n/ { };\n')
    code, err = _on_a_terminal(["compile", "-j", "1", "-o", str(tmp_path / "out"),
                                *sorted(p.name for p in tmp_path.glob("*.dts"))], tmp_path)
    assert code == 1
    assert "compiling" in err, "no bar drawn: the test would prove nothing"
    lines = err.replace("\r\n", "\n").split("\n")
    messages = [ln for ln in lines if "error" in ln or "hint:" in ln]
    assert messages, err
    for line in messages:
        # what follows the last carriage return (+ erase) is what the terminal shows on that line
        shown = line.split("\r")[-1].replace("\x1b[K", "")
        assert shown.startswith(("bad.dts", "inc.dts")), repr(line)
