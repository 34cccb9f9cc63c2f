"""dtc's semantic checks against Debian's dtc 1.6.1: the same findings, the same verdicts.

Each fixture in fixtures/checks/ is compiled by the real dtc and by dtvm; the
checks' findings, as (check name, node path, property or None) with their
counts, must be equal, and so must the exit codes and, when both accept, the
output. A first line ``// args: ...`` gives extra arguments. The inputs in
fixtures/checks/abort/ make dtc 1.6.1 abort, crash or never finish: dtvm must
reject them with an error naming the node. Expected findings are never written
by hand: dtc's stderr is the oracle.
"""

from __future__ import annotations

import glob
import io
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

import dtvm
from dtvm.cli.dtc import run
from dtvm.dt.checks import _TABLE, CHECK_NAMES, CheckRunner

from .oracle import needs_dtc

pytestmark = needs_dtc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures", "checks")
GOOD = sorted(glob.glob(os.path.join(FIXTURES, "*.dts")))
ABORT = sorted(glob.glob(os.path.join(FIXTURES, "abort", "*.dts")))

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from checks_parity import parse_dtc, parse_dtvm  # noqa: E402

Key = tuple[str, str, str | None]


def _id(path: str) -> str:
    return os.path.relpath(path, FIXTURES)


def fixture_args(path: str) -> list[str]:
    with open(path) as f:
        first = f.readline()
    return first.split("args:", 1)[1].split() if first.startswith("// args:") else []


class Run:
    def __init__(self, code: int | None, out: bytes, err: str, found: Counter[Key], other: list[str]) -> None:
        self.code = code  # None: dtc did not finish
        self.out = out
        self.err = err
        self.found = found
        self.other = other


def run_dtc(args: list[str], timeout: float = 20) -> Run:
    try:
        p = subprocess.run(["dtc", *args], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Run(None, b"", "", Counter(), [])
    err = p.stderr.decode("latin-1")
    found, other = parse_dtc(err)
    return Run(p.returncode, p.stdout, err, found, other)


def run_dtvm(args: list[str]) -> Run:
    out = io.BytesIO()
    err = io.StringIO()
    code = run(args, out, err)
    found, other = parse_dtvm(err.getvalue())
    return Run(code, out.getvalue(), err.getvalue(), found, other)


def assert_same_findings(args: list[str]) -> Run:
    """dtc and dtvm: equal findings (with counts), exit codes and, when accepted, output."""
    ref = run_dtc(args)
    me = run_dtvm(args)
    assert "Traceback" not in me.err
    assert ref.code is not None and ref.code >= 0, f"dtc did not finish normally on {args}: {ref.err[-300:]}"
    assert me.code == ref.code, (
        f"{args}: dtc exits {ref.code}, dtvm {me.code}\ndtc:\n{ref.err}\ndtvm:\n{me.err}"
    )
    only_dtc = sorted(set(ref.found) - set(me.found), key=str)
    only_dtvm = sorted(set(me.found) - set(ref.found), key=str)
    assert not only_dtc and not only_dtvm, f"{args}: only dtc {only_dtc}, only dtvm {only_dtvm}"
    assert me.found == ref.found, f"{args}: counts differ: dtc {ref.found}, dtvm {me.found}"
    assert me.err == ref.err, f"{args}: stderr differs"
    if ref.code == 0:
        assert me.out == ref.out, f"{args}: output differs"
    return ref


# -- every fixture, as source and as a blob -----------------------------------------------


@pytest.mark.parametrize("path", GOOD, ids=_id)
def test_fixture_findings(path: str) -> None:
    assert_same_findings([*fixture_args(path), "-I", "dts", "-O", "dtb", path])


@pytest.mark.parametrize("path", GOOD, ids=_id)
def test_fixture_findings_from_blob(path: str, tmp_path: str) -> None:
    """From a blob: no source positions, no markers (no 'cell N is not a phandle reference')."""
    ref = run_dtc(["-f", "-q", *fixture_args(path), "-I", "dts", "-O", "dtb", path])
    if not ref.out:
        pytest.skip("dtc writes no blob for this input")
    blob = os.path.join(str(tmp_path), "in.dtb")
    with open(blob, "wb") as f:
        f.write(ref.out)
    assert_same_findings(["-I", "dtb", "-O", "dtb", blob])


def test_fixtures_exercise_every_check() -> None:
    """Each check of dtc's table fails on some fixture (with the checks that are off turned on)."""
    on = [f"-W{name}" for name, level, _ in _TABLE if not level]
    seen: set[str] = set()
    for path in GOOD:
        found = run_dtc([*on, *fixture_args(path), "-O", "dtb", "-o", "/dev/null", path]).found
        seen |= {check for check, node, _ in found if node}  # not "Failed prerequisite"
    # fixups that never fail: they only record cells and buses, or delete nodes
    never = {"addr_size_cells", "simple_bus_bridge", "graph_nodes", "omit_unused_nodes"}
    missing = set(CHECK_NAMES) - seen - never
    assert not missing, f"no fixture makes these checks fail: {sorted(missing)}"


# -- where dtc 1.6.1 aborts, crashes or never finishes ----------------------------------------


@pytest.mark.parametrize("path", ABORT, ids=_id)
def test_dtc_stops_dtvm_rejects(path: str) -> None:
    args = [*fixture_args(path), "-I", "dts", "-O", "dtb", path]
    ref = run_dtc(args, timeout=5)
    assert ref.code is None or ref.code < 0, f"dtc was expected to abort, crash or hang: exit {ref.code}"
    me = run_dtvm(args)
    assert me.code not in (0, None), "dtc does not finish this input, dtvm must reject it"
    assert "Traceback" not in me.err
    last = me.err.strip().splitlines()[-1]
    assert re.match(r"^.+:\d+:\d+: error: /\S*: dtc 1\.6\.1 .+; input rejected$", last), last


# -- -W / -E / -q / -f --------------------------------------------------------------------

# inputs on which the options below change something
OPTION_FIXTURES = [
    os.path.join(FIXTURES, name)
    for name in (
        "graph.dts",
        "interrupts.dts",
        "providers_is_cell.dts",
        "pci.dts",
        "simple_bus.dts",
        "unique_unit_address.dts",
        "address_cells_is_cell.dts",
        "errors_first.dts",
        "strict_names.dts",
        "gpios.dts",
    )
]


@pytest.mark.parametrize("mode", ["-Wno-", "-W", "-Eno-", "-E"])
@pytest.mark.parametrize("name", CHECK_NAMES)
def test_check_option(name: str, mode: str) -> None:
    """Raising a level raises it on the prerequisites; lowering it lowers it on the dependents."""
    for path in OPTION_FIXTURES:
        assert_same_findings([f"{mode}{name}", "-O", "dtb", path])


@pytest.mark.parametrize(
    "opts",
    [
        ["-W", "no_unit_address_vs_reg"],
        ["-E", "no_explicit_phandles"],
        ["-W", "no-reg_format", "-W", "reg_format"],
        ["-W", "reg_format", "-W", "no-addr_size_cells"],
        ["-W", "no-address_cells_is_cell", "-W", "addr_size_cells"],
        ["-E", "no-phandle_references"],
        ["-E", "no-phandle_references", "-W", "no-phandle_references"],
        ["-E", "unique_unit_address", "-f"],
        ["-E", "interrupt_provider", "-E", "no-interrupt_provider"],
        ["-E", "unit_address_vs_reg", "-q"],
        ["-E", "unit_address_vs_reg", "-qq"],
        ["-E", "unit_address_vs_reg", "-f", "-qq"],
        ["-E", "unit_address_vs_reg", "-f", "-qqq"],
        ["-q"],
        ["-qq"],
        ["-W", "always_fail"],
        ["-E", "always_fail", "-f"],
        ["-W", "unique_unit_address_if_enabled", "-W", "no-unique_unit_address"],
    ],
    ids=lambda o: " ".join(o),
)
def test_option_combinations(opts: list[str]) -> None:
    for path in OPTION_FIXTURES:
        assert_same_findings([*opts, "-O", "dtb", path])


@pytest.mark.parametrize(
    "name", ["bogus", "no-no_reg_format", "no_", "interrupt_cells_is_cell", "interrupt_map"]
)
def test_unknown_check_names(name: str) -> None:
    path = os.path.join(FIXTURES, "chosen_good.dts")
    ref = run_dtc(["-W", name, "-O", "dtb", path])
    me = run_dtvm(["-W", name, "-O", "dtb", path])
    assert ref.code == 1 and me.code == 1
    assert "Unrecognized check name" in ref.err and "Unrecognized check name" in me.err


def test_quiet_suppresses_like_dtc() -> None:
    path = os.path.join(FIXTURES, "interrupts.dts")
    assert run_dtvm(["-O", "dtb", path]).found
    for q in ("-q", "-qq", "-qqq"):
        assert not run_dtvm([q, "-O", "dtb", path]).found
        assert not run_dtc([q, "-O", "dtb", path]).found


# -- the form of the messages ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["interrupts.dts", "address_cells_is_cell.dts", "graph.dts", "pci.dts"])
def test_message_bytes_and_rich_form(name: str) -> None:
    """By default dtc's stderr exactly; --diagnostics=rich adds the source line and a caret after each finding."""
    path = os.path.join(FIXTURES, name)
    ref = run_dtc(["-O", "dtb", "-o", "/dev/null", path])
    plain = run_dtvm(["-O", "dtb", "-o", "/dev/null", path])
    assert plain.err == ref.err
    rich = run_dtvm(["--diagnostics=rich", "-O", "dtb", "-o", "/dev/null", path])
    ref_lines = ref.err.splitlines()
    # rich = dtc's lines in order, each positioned one followed by two lines of context
    it = iter(rich.err.splitlines())
    for line in ref_lines:
        assert next(it) == line
        if re.match(r"^\S+:\d+\.\d+(-\d+(\.\d+)?)?: ", line):
            src_line = next(it)
            caret = next(it)
            assert caret.strip() == "^"
            col = int(re.match(r"^\S+:\d+\.(\d+)", line).group(1))  # type: ignore[union-attr]
            assert len(caret) == col and src_line
    assert next(it, None) is None


def test_prerequisite_message_names_the_output() -> None:
    """A finding without a node is named by the output file, as dtc names it ("<stdout>" for -)."""
    path = os.path.join(FIXTURES, "address_cells_is_cell.dts")
    for out in ("/dev/null", "-"):
        ref = run_dtc(["-O", "dtb", "-o", out, path])
        me = run_dtvm(["-O", "dtb", "-o", out, path])
        assert "Failed prerequisite" in ref.err
        assert me.err == ref.err


def test_runner_findings_keys() -> None:
    """The in-process API: CheckRunner.findings carry dtc's (check, path, property)."""
    dt = dtvm.parse_dts_string(
        "/dts-v1/;\n/ { #address-cells = <1>; #size-cells = <0>; a@1 { reg = <1>; }; b@1 { reg = <1>; }; };\n"
    )
    r = CheckRunner(dt)
    assert not r.run_all()
    assert [f.key for f in r.findings] == [("unique_unit_address", "/a@1", None)]
