"""`dtvm validate --schemas --cpp`: every finding names FILE:LINE and the #include chain to it.

Oracles: GNU cpp (its linemarkers' flags 1 and 2 carry the include stack: the test runs cpp on the
board and rebuilds, for every output line, the file, the line and the stack of ``#include`` sites,
taking each site's line from the marker that returns to it, ``# N "file" 2``, N - 1), and the source
files themselves (the line named holds the property or node; every site holds an ``#include`` of
the next file). dtvm preprocesses with its own cpp, so nothing of GNU cpp's output is reused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests import kernel_corpus as kc

needs_kernel = pytest.mark.skipif(not kc.available(), reason=kc.MISSING)

SEED = int(os.environ.get("DTVM_KERNEL_SEED", "20"))
N_BOARDS = 3

_MARK = re.compile(r'^# (\d+) "((?:[^"\\]|\\.)*)"((?: \d+)*)$')


def gnu_cpp_lines(src: str, *includes: str) -> dict[tuple[str, int], set[tuple[tuple[str, int], ...]]]:
    """(file, line) -> every include stack (innermost first) cpp reaches that line through."""
    out = subprocess.run(
        ["cpp", "-nostdinc", *(a for d in includes for a in ("-I", d)), "-undef", "-D__DTS__", "-x", "assembler-with-cpp", src],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    # first pass: each flag-1 marker's include site, from the flag-2 marker that closes it
    opened: list[int] = []
    site: dict[int, tuple[str, int]] = {}
    for i, text in enumerate(out):
        m = _MARK.match(text)
        if not m:
            continue
        flags = m.group(3).split()
        if "1" in flags:
            opened.append(i)
        elif "2" in flags and opened:
            site[opened.pop()] = (m.group(2), int(m.group(1)) - 1)
    seen: dict[tuple[str, int], set[tuple[tuple[str, int], ...]]] = {}
    stack: list[tuple[str, int]] = []
    fname, line = src, 1
    for i, text in enumerate(out):
        m = _MARK.match(text)
        if m:
            flags = m.group(3).split()
            if "1" in flags:
                stack.append(site.get(i, ("?", 0)))
            elif "2" in flags and stack:
                stack.pop()
            fname, line = m.group(2), int(m.group(1))
            continue
        seen.setdefault((fname, line), set()).add(tuple(reversed(stack)))
        line += 1
    return seen


# a corner the seeded sample may miss: dtc's own /include/ inside a cpp'd board (cpp passes the
# directive through; dtc reads the file), so part of the chain is not in cpp's markers
DTC_INCLUDES = "amd/amd-overdrive-rev-b1.dts"


def dtvm_report(board: str) -> dict:
    res = subprocess.run(
        [sys.executable, "-m", "dtvm", "validate", "--schemas", kc.PROCESSED, "--format", "json",
         *kc.cpp_args("arm64", board), kc.dts_path("arm64", board)],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode in (0, 1), res.stderr
    return json.loads(res.stdout)["files"][0]


@pytest.fixture(scope="module")
def reports() -> list[tuple[str, dict]]:
    """(board, dtvm's JSON report of the board's DTS) for a seeded sample of arm64 boards."""
    out = []
    for b in kc.sample("arm64", N_BOARDS * 3, SEED + 1):
        rep = dtvm_report(b)
        if any(f.get("included_from") for f in rep["findings"]):
            out.append((b, rep))
        if len(out) == N_BOARDS:
            break
    assert out, "no board of the sample has a finding in an included file"
    if os.path.isfile(kc.dts_path("arm64", DTC_INCLUDES)):
        out.append((DTC_INCLUDES, dtvm_report(DTC_INCLUDES)))
    return out


def _line(path: str, n: int) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    assert 0 < n <= len(lines), (path, n)
    return lines[n - 1]


def against_cpp(f: dict, seen: dict[tuple[str, int], set[tuple[tuple[str, int], ...]]]) -> str | None:
    """What is wrong with finding F's file, line and chain by GNU cpp's markers (None: nothing).

    A file that dtc's /include/ read is not in cpp's output: its sites must hold that directive,
    and the chain from the first site cpp knows on must be one of cpp's stacks for that line."""
    loc = (f["file"], f["line"])
    chain = [(a, b) for a, b in f.get("included_from", [])]
    while loc not in seen:
        if not chain:
            return f"{loc} is on no line of cpp's output"
        site = chain.pop(0)
        if not re.match(r'\s*/include/\s*"' + re.escape(os.path.basename(loc[0])) + '"', _line(*site)):
            return f"{loc}: {site} holds no /include/ of it"
        loc = site
    if tuple(chain) not in seen[loc]:
        return f"{loc}: chain {chain} is not one of cpp's {seen[loc]}"
    return None


def holds_the_name(f: dict) -> bool:
    """The line named holds the property, or the node (its name, or a macro-named node's opening)."""
    text = _line(f["file"], f["line"])
    name = (f["prop"] or "").split(":")[0] or f["path"].rsplit("/", 1)[-1]
    node = f["path"].rsplit("/", 1)[-1].split("@")[0]
    if name.split("@")[0] in text or node in text:
        return True
    # a node named by a macro (armada-ap80x.dtsi: AP_NAME {): the line opens the node
    return (not f["prop"] or f["prop"].startswith("$nodename")) and re.search(r"\b[A-Z_][A-Z0-9_]*\s*\{", text) is not None


@needs_kernel
def test_every_finding_has_gnu_cpps_file_line_and_include_chain(reports: list[tuple[str, dict]]) -> None:
    for board, rep in reports:
        seen = gnu_cpp_lines(kc.dts_path("arm64", board), kc.PREFIXES)
        assert rep["findings"], board
        for f in rep["findings"]:
            assert f["line"] > 0, (board, f)
            assert against_cpp(f, seen) is None, (board, f, against_cpp(f, seen))


@needs_kernel
def test_the_lines_named_hold_the_property_and_the_includes(reports: list[tuple[str, dict]]) -> None:
    for board, rep in reports:
        for f in rep["findings"]:
            assert holds_the_name(f), (f, _line(f["file"], f["line"]))
            inner = f["file"]
            for site, n in f.get("included_from", []):
                directive = _line(site, n)
                assert re.match(r'\s*(#\s*include\s*[<"]|/include/\s*")', directive), (site, n, directive)
                assert os.path.basename(inner) in directive, (site, n, directive, inner)
                inner = site
            assert os.path.realpath(inner) == os.path.realpath(kc.dts_path("arm64", board))


@needs_kernel
def test_text_layout_names_the_chain(reports: list[tuple[str, dict]]) -> None:
    """The default layout: FILE:LINE first (what editors jump to), the chain at the end of the line."""
    board, rep = reports[0]
    res = subprocess.run(
        [sys.executable, "-m", "dtvm", "validate", "--schemas", kc.PROCESSED, *kc.cpp_args("arm64", board), kc.dts_path("arm64", board)],
        capture_output=True, text=True, timeout=600,
    )
    lines = res.stdout.splitlines()
    assert len(lines) == len(rep["findings"])
    for text, f in zip(lines, rep["findings"], strict=True):
        assert text.startswith(f"{f['file']}:{f['line']}:{f['path']}: ")
        chain = f.get("included_from", [])
        if chain:
            assert text.endswith(" (included from " + ", from ".join(f"{a}:{b}" for a, b in chain) + ")")
        else:
            assert "(included from" not in text


@needs_kernel
def test_dtc_include_directive_is_in_the_chain(tmp_path) -> None:
    """dtc's own /include/ (no cpp): the chain names the directive's line."""
    (tmp_path / "inner.dtsi").write_text('/ {\n\tled {\n\t\tcompatible = "gpio-leds";\n\t\tbogus-prop = <1>;\n\t};\n};\n')
    (tmp_path / "mid.dtsi").write_text('\n/include/ "inner.dtsi"\n')
    (tmp_path / "top.dts").write_text('/dts-v1/;\n/ {\n\tmodel = "m";\n\tcompatible = "x,y";\n'
                                      '\t#address-cells = <1>;\n\t#size-cells = <1>;\n};\n\n/include/ "mid.dtsi"\n')
    res = subprocess.run(
        [sys.executable, "-m", "dtvm", "validate", "--schemas", kc.PROCESSED, "--format", "json", str(tmp_path / "top.dts")],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 1, res.stderr
    led = [f for f in json.loads(res.stdout)["files"][0]["findings"] if f["path"] == "/led"]
    assert led, res.stdout
    for f in led:
        assert f["file"] == str(tmp_path / "inner.dtsi")
        assert f["included_from"] == [[str(tmp_path / "mid.dtsi"), 2], [str(tmp_path / "top.dts"), 9]]


@pytest.mark.skipif(shutil.which("cpp") is None, reason="GNU cpp (the oracle of the include chain) is not installed")
def test_dtvm_bindings_findings_carry_the_chain_too(tmp_path) -> None:
    """dtvm's own bindings (no --schemas): the same chain, held to GNU cpp's markers."""
    (tmp_path / "c.dtsi").write_text("/ {\n\tz = <1>;\n};\n")
    (tmp_path / "a.dtsi").write_text('/* a */\n\n#include "c.dtsi"\n/ { y; };\n')
    board = tmp_path / "b.dts"
    board.write_text('/dts-v1/;\n' + "\n" * 12 + '#include "a.dtsi"\n/ { x = <1>; };\n')
    res = subprocess.run([sys.executable, "-m", "dtvm", "validate", "--format", "json", "--cpp", str(board)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 1, res.stderr
    findings = json.loads(res.stdout)["files"][0]["findings"]
    seen = gnu_cpp_lines(str(board))
    by_prop = {f["prop"]: f for f in findings}
    assert by_prop["z"]["included_from"] == [[str(tmp_path / "a.dtsi"), 3], [str(board), 14]]
    assert by_prop["y"]["included_from"] == [[str(board), 14]]
    assert "included_from" not in by_prop["x"]
    for f in findings:
        assert tuple((a, b) for a, b in f.get("included_from", [])) in seen[(f["file"], f["line"])], f


@needs_kernel
@pytest.mark.kernel_all
def test_every_board_lines_and_chains() -> None:
    """Every board of an architecture (make test-kernel-schemas; DTVM_KERNEL_ARCH, DTVM_KERNEL_BOARDS,
    DTVM_KERNEL_SEED as there): every finding of its DTS at a line cpp's markers confirm."""
    arch = os.environ.get("DTVM_KERNEL_ARCH", "arm64")
    chosen = kc.sample(arch, int(os.environ.get("DTVM_KERNEL_BOARDS", "0")), int(os.environ.get("DTVM_KERNEL_SEED", "20")))
    wrong, findings, boards = [], 0, 0
    for board in chosen:
        if kc.build(arch, board) is None:
            continue  # the kernel's own build cannot compile it
        res = subprocess.run(
            [sys.executable, "-m", "dtvm", "validate", "--schemas", kc.PROCESSED, "--format", "json",
             *kc.cpp_args(arch, board), kc.dts_path(arch, board)],
            capture_output=True, text=True, timeout=600,
        )
        assert res.returncode in (0, 1), (board, res.stderr)
        seen = gnu_cpp_lines(kc.dts_path(arch, board), kc.PREFIXES)
        boards += 1
        for f in json.loads(res.stdout)["files"][0]["findings"]:
            findings += 1
            why = against_cpp(f, seen) if f["line"] > 0 else "no line"
            if why is None and not holds_the_name(f):
                why = "the line does not hold the property or node"
            if why is not None:
                wrong.append(f"{board}: {f['path']} {f['prop']}: {why}")
    print(f"\n{arch}: {boards} boards, {findings} findings, {len(wrong)} without a confirmed FILE:LINE and chain")
    assert not wrong, wrong[:20]
