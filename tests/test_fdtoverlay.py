"""``dtvm fdtoverlay`` against Debian's ``fdtoverlay`` (dtc 1.6.1): same output bytes, same exit codes.

Bases and overlays are compiled by the real dtc from ``fixtures/fdt/`` (``-@``
bases, ``/plugin/`` overlays with labels and references both ways, hand-written
fragments with ``target-path`` and raw ``target`` phandles, stacked overlays).
The C tool and dtvm write their results to separate files, which must be
identical.  For inputs fdtoverlay rejects, dtvm must reject them too, say in
words what failed, and leave the output file untouched.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtvm.cli.fdtoverlay import OverlayError, apply_overlays, run

MISSING = [t for t in ("dtc", "fdtoverlay") if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING),
    reason=f"{', '.join(MISSING)} (Debian device-tree-compiler 1.6.1) not on PATH: fdtoverlay is the oracle",
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fdt"


@functools.cache
def compiled(name: str, *opts: str) -> bytes:
    proc = subprocess.run(
        ["dtc", "-f", "-q", "-I", "dts", "-O", "dtb", *opts, str(FIXTURES / f"{name}.dts")],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def compile_text(text: str, *opts: str) -> bytes:
    proc = subprocess.run(
        ["dtc", "-f", "-q", "-I", "dts", "-O", "dtb", *opts, "-"],
        input=text.encode(),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode() + text
    return proc.stdout


BLOBS = {
    "base": lambda: compiled("ovbase", "-@"),
    "base_nosym": lambda: compiled("ovbase"),
    "base_pad": lambda: compiled("ovbase", "-@", "-p", "64"),
    "base_v16": lambda: compiled("ovbase", "-@", "-V", "16"),
    "values": lambda: compiled("values", "-@"),
    "values_nosym": lambda: compiled("values"),
}
OVERLAYS = [
    "ov_labels",
    "ov_target",
    "ov_phandles",
    "ov_stack1",
    "ov_stack2",
    "ov_symbols",
    "ov_newsyms",
    "bad_target_path",
    "bad_target_phandle",
    "bad_no_target",
    "bad_label",
    "bad_fixup_offset",
    "bad_fixup_format",
    "bad_fixup_node",
    "bad_fixup_nophandle",
    "bad_local_fixup",
    "bad_symbol",
    "bad_phandle_len",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("overlay")
    for name, make in BLOBS.items():
        (d / f"{name}.dtb").write_bytes(make())
    for name in OVERLAYS:
        (d / f"{name}.dtbo").write_bytes(compiled(name, "-@"))
    return d


class Result:
    def __init__(self, code: int, out: bytes, err: str, blob: bytes | None) -> None:
        self.code = code
        self.out = out
        self.err = err
        self.blob = blob

    def __repr__(self) -> str:
        return f"Result(code={self.code}, err={self.err!r}, blob={'None' if self.blob is None else len(self.blob)})"


def c_overlay(d: Path, args: list[str], output: str = "c_out.dtb") -> Result:
    target = d / output
    target.unlink(missing_ok=True)
    proc = subprocess.run(["fdtoverlay", *args], capture_output=True, cwd=d, timeout=120)
    return Result(
        proc.returncode,
        proc.stdout,
        proc.stderr.decode("latin-1"),
        target.read_bytes() if target.exists() else None,
    )


def dtvm_overlay(d: Path, args: list[str], output: str = "d_out.dtb") -> Result:
    import os

    target = d / output
    target.unlink(missing_ok=True)
    out, err = io.BytesIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(d)
    try:
        code = run(args, out, err)
    finally:
        os.chdir(old)
    return Result(code, out.getvalue(), err.getvalue(), target.read_bytes() if target.exists() else None)


def same(d: Path, base: str, overlays: list[str], extra: list[str] | None = None) -> tuple[Result, Result]:
    opts = extra or []
    ref = c_overlay(d, [*opts, "-i", base, "-o", "c_out.dtb", *overlays])
    me = dtvm_overlay(d, [*opts, "-i", base, "-o", "d_out.dtb", *overlays])
    assert "Traceback" not in me.err
    assert me.code == ref.code, f"{base} + {overlays}: exit {me.code} != {ref.code}\nC: {ref}\ndtvm: {me}"
    assert me.blob == ref.blob, f"{base} + {overlays}: outputs differ\nC: {ref}\ndtvm: {me}"
    assert me.out == ref.out.replace(b"c_out.dtb", b"d_out.dtb")
    return ref, me


GOOD = ["ov_labels", "ov_target", "ov_phandles", "ov_stack1", "ov_symbols", "ov_newsyms"]


@pytest.mark.parametrize("overlay", GOOD)
@pytest.mark.parametrize("base", ["base.dtb", "base_pad.dtb", "base_v16.dtb"])
def test_single_overlay(files: Path, base: str, overlay: str) -> None:
    ref, _ = same(files, base, [f"{overlay}.dtbo"])
    assert ref.code == 0


@pytest.mark.parametrize(
    "overlays",
    [
        ["ov_stack1", "ov_stack2"],
        ["ov_labels", "ov_phandles"],
        ["ov_phandles", "ov_phandles"],  # the same overlay twice: phandles renumbered twice
        ["ov_labels", "ov_labels"],
        ["ov_symbols", "ov_stack1", "ov_stack2", "ov_newsyms"],
        ["ov_labels", "ov_phandles", "ov_symbols", "ov_stack1", "ov_stack2", "ov_target", "ov_newsyms"],
    ],
    ids=lambda o: "+".join(o),
)
def test_stacked_overlays(files: Path, overlays: list[str]) -> None:
    ref, _ = same(files, "base.dtb", [f"{o}.dtbo" for o in overlays])
    assert ref.code == 0


def test_verbose(files: Path) -> None:
    _, me = same(files, "base.dtb", ["ov_labels.dtbo", "ov_target.dtbo"], ["-v"])
    assert b"overlay[1] = ov_target.dtbo" in me.out


def test_base_without_symbols(files: Path) -> None:
    # target-path fragments and new labels only: the base gets a /__symbols__ node
    ref, _ = same(files, "base_nosym.dtb", ["ov_newsyms.dtbo"])
    assert ref.code == 0
    same(files, "base_nosym.dtb", ["ov_target.dtbo", "ov_newsyms.dtbo"])
    # a plugin with references needs the base's __symbols__
    ref, me = same(files, "base_nosym.dtb", ["ov_labels.dtbo"])
    assert ref.code == 1
    assert "label 'uart0' is not in the base tree's /__symbols__" in me.err
    ref, me = same(files, "values_nosym.dtb", ["ov_labels.dtbo"])
    assert ref.code == 1
    assert "no /__symbols__ node" in me.err and "dtc -@" in me.err
    ref, _ = same(files, "values_nosym.dtb", ["ov_newsyms.dtbo"])
    assert ref.code == 0


BAD = {
    "bad_target_path": ["fragment@0", "/nonexistent"],
    "bad_target_phandle": ["fragment@0", "0x9999"],
    "bad_no_target": ["fragment@0", "target-path"],
    "bad_label": ["nolabel", "__symbols__"],
    "bad_fixup_offset": ["offset 100", "clocks", "osc"],
    "bad_fixup_format": ["malformed", "/fragment@0/__overlay__:clocks"],
    "bad_fixup_node": ["/fragment@0/__overlay__/missing"],
    "bad_fixup_nophandle": ["nophandle", "no phandle", "/plain-node"],
    "bad_local_fixup": ["__local_fixups__", "offset 8", "ref"],
    "bad_symbol": ["symbol 'foo'", "string"],
    "bad_phandle_len": ["phandle", "8 bytes"],
    "ov_stack2": ["newdev", "__symbols__"],
}


@pytest.mark.parametrize("overlay", sorted(BAD))
def test_bad_overlay(files: Path, overlay: str) -> None:
    (files / "d_keep.dtb").write_bytes(b"previous output")
    ref = c_overlay(files, ["-i", "base.dtb", "-o", "c_out.dtb", f"{overlay}.dtbo"])
    me = dtvm_overlay(files, ["-i", "base.dtb", "-o", "d_keep.dtb", f"{overlay}.dtbo"], output="d_none.dtb")
    assert ref.code == 1 and ref.blob is None
    assert me.code == 1, me
    assert (files / "d_keep.dtb").read_bytes() == b"previous output"  # output untouched
    assert "Traceback" not in me.err
    assert f"Failed to apply '{overlay}.dtbo'" in me.err
    for word in BAD[overlay]:
        assert word in me.err, f"{word!r} not in {me.err!r}"
    # the libfdt error name is kept at the end, as fdtoverlay prints it
    c_code = ref.err.strip().rsplit(" ", 1)[-1]
    if c_code.startswith("FDT_ERR_") and overlay != "bad_fixup_offset":
        assert me.err.rstrip().endswith(f"({c_code})"), (ref.err, me.err)


@pytest.mark.parametrize("overlay", ["bad_label", "bad_fixup_offset", "bad_target_path"])
def test_bad_overlay_second_in_stack(files: Path, overlay: str) -> None:
    ref, me = same(files, "base.dtb", ["ov_labels.dtbo", f"{overlay}.dtbo"])
    assert ref.code == 1 and f"'{overlay}.dtbo'" in me.err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-h"],
        ["-V"],
        ["-i", "base.dtb"],
        ["-o", "x.dtb", "ov_labels.dtbo"],
        ["-i", "base.dtb", "-o", "c_out.dtb"],
        ["-z"],
        ["-i"],
        ["--input=base.dtb", "--output", "c_out.dtb", "--nosuch", "ov_labels.dtbo"],
    ],
)
def test_usage(files: Path, args: list[str]) -> None:
    ref = c_overlay(files, args)
    me = dtvm_overlay(files, [a.replace("c_out", "d_out") for a in args])
    assert (me.code, me.out, me.err) == (ref.code, ref.out, ref.err)


def test_unreadable_and_incomplete_inputs(files: Path) -> None:
    base = (files / "base.dtb").read_bytes()
    (files / "short.dtb").write_bytes(base[:100])  # totalsize says more than the file (and its buffer) holds
    for args in (
        ["-i", "nosuch.dtb", "-o", "c_out.dtb", "ov_labels.dtbo"],
        ["-i", "base.dtb", "-o", "c_out.dtb", "nosuch.dtbo"],
        ["-i", "short.dtb", "-o", "c_out.dtb", "ov_labels.dtbo"],
        ["-i", "base.dtb", "-o", "c_out.dtb", "short.dtb"],
        ["-i", "ov_labels.dtbo", "-o", "c_out.dtb", "ov_labels.dtbo"],  # an overlay as the base
        ["-i", "base.dtb", "-o", "c_out.dtb", "base.dtb"],  # a base as the overlay: nothing to merge
    ):
        ref = c_overlay(files, args)
        me = dtvm_overlay(files, [a.replace("c_out", "d_out") for a in args])
        assert me.code == ref.code, (args, ref, me)
        assert me.blob == ref.blob, args
        if "nosuch" in " ".join(args) or "short" in " ".join(args):
            assert me.err == ref.err


def test_corrupt_overlay_magic(files: Path) -> None:
    data = bytearray(compiled("ov_labels", "-@"))
    data[0] = 0
    (files / "nomagic.dtbo").write_bytes(bytes(data))
    ref, me = same(files, "base.dtb", ["nomagic.dtbo"])
    assert ref.code == 1 and "BADMAGIC" in me.err


def test_stdin_stdout(files: Path) -> None:
    base = (files / "base.dtb").read_bytes()
    ref = subprocess.run(
        ["fdtoverlay", "-i", "-", "-o", "-", "ov_labels.dtbo"],
        input=base,
        capture_output=True,
        cwd=files,
        timeout=60,
    )
    me = subprocess.run(
        [sys.executable, "-m", "dtvm", "fdtoverlay", "-i", "-", "-o", "-", "ov_labels.dtbo"],
        input=base,
        capture_output=True,
        cwd=files,
        timeout=60,
    )
    assert (me.returncode, me.stdout) == (ref.returncode, ref.stdout)


def test_buffer_growth_on_large_base(tmp_path: Path) -> None:
    """A 1 MB base and overlays adding more than fdtoverlay's 64 KiB steps: several NOSPACE retries."""
    lines = ["/dts-v1/;", "/ {"]
    for i in range(1500):
        lines.append(
            f'  node{i}@{i:x} {{ compatible = "vendor,dev{i}"; data = ['
            + " ".join(f"{j & 255:02x}" for j in range(200))
            + "]; };"
        )
    lines.append("  last { };")
    lines.append("};")
    (tmp_path / "big.dtb").write_bytes(compile_text("\n".join(lines), "-@"))
    huge = " ".join(f"{i & 255:02x}" for i in range(150000))
    ov = f'/dts-v1/;\n/ {{ fragment@0 {{ target-path = "/"; __overlay__ {{ huge = [{huge}]; n1 {{ p = "x"; }}; }}; }};\n fragment@1 {{ target-path = "/last"; __overlay__ {{ q = <1>; }}; }}; }};'
    (tmp_path / "big.dtbo").write_bytes(compile_text(ov))
    (tmp_path / "small.dtbo").write_bytes(compiled("ov_newsyms", "-@"))
    ref, _ = same(tmp_path, "big.dtb", ["big.dtbo", "big.dtbo"])
    assert ref.code == 0


def test_apply_overlays_api(files: Path) -> None:
    base = (files / "base.dtb").read_bytes()
    out = apply_overlays(
        base, [("a", (files / "ov_stack1.dtbo").read_bytes()), ("b", (files / "ov_stack2.dtbo").read_bytes())]
    )
    ref = c_overlay(files, ["-i", "base.dtb", "-o", "c_out.dtb", "ov_stack1.dtbo", "ov_stack2.dtbo"])
    assert out == ref.blob
    with pytest.raises(OverlayError, match="newdev"):
        apply_overlays(base, [("b", (files / "ov_stack2.dtbo").read_bytes())])


# -- random overlays (hypothesis) ----------------------------------------------

BASE_LABELS = ["soc", "uart0", "i2c0", "eeprom", "intc", "osc"]
BASE_PATHS = ["/", "/soc", "/chosen", "/clocks/oscillator", "/soc/i2c@3000", "/soc/serial@2000"]
NAMES = ["status", "compatible", "reg", "new-prop", "x", "clocks", "a-long-property-name-for-strings"]
NODE_NAMES = ["child", "eeprom@50", "serial", "new@1", "n"]
_val = st.sampled_from(
    ['"okay"', '"a", "bc"', "<1 2>", "[01 02 03]", "<&osc>", "<&local 5>", "", '"x"', "<&uart0 &intc>"]
)


@st.composite
def overlay_source(draw: st.DrawFn) -> str:
    frags = []
    uses_local = False
    for i in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            head = "&" + draw(st.sampled_from(BASE_LABELS))
        else:
            head = "&{" + draw(st.sampled_from(BASE_PATHS)) + "}"
        body = []
        for name in draw(st.lists(st.sampled_from(NAMES), max_size=4, unique=True)):
            val = draw(_val)
            uses_local |= "&local" in val
            body.append(f"{name} = {val};" if val else f"{name};")
        for j, node_name in enumerate(draw(st.lists(st.sampled_from(NODE_NAMES), max_size=2, unique=True))):
            label = f"l{i}_{j}: " if draw(st.booleans()) else ""
            inner = draw(st.sampled_from(["", "p = <&l0_0>;", 'q = "x";', "r = <&local>;"]))
            uses_local |= "&local" in inner
            body.append(f"{label}{node_name} {{ {inner} }};")
        frags.append(f"{head} {{\n" + "\n".join(body) + "\n};")
    if uses_local:
        frags.append("&{/} { local: local-node { phandle-target; }; };")
    return "/dts-v1/;\n/plugin/;\n" + "\n".join(frags) + "\n"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sources=st.lists(overlay_source(), min_size=1, max_size=3))
def test_random_overlays(files: Path, sources: list[str]) -> None:
    names = []
    for k, text in enumerate(sources):
        proc = subprocess.run(
            ["dtc", "-q", "-@", "-I", "dts", "-O", "dtb", "-"],
            input=text.encode(),
            capture_output=True,
            timeout=60,
        )
        if proc.returncode != 0:
            return  # dtc rejects it (e.g. a reference to a label of a later fragment): nothing to compare
        (files / f"rand{k}.dtbo").write_bytes(proc.stdout)
        names.append(f"rand{k}.dtbo")
    same(files, "base.dtb", names)
