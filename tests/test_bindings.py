"""Binding documents and `dtvm validate` (issue 4, items 1-3, core bindings)."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from dtvm.bindings import BindingError, load_bindings, validate_tree
from dtvm.bindings.decode import DecodeError, TreeIndex, cells_property_for, decode
from dtvm.cli.validate import load_input, validate_cmd

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures" / "bindings"
VIRT = FIX / "virt.dts"


@pytest.fixture(scope="module")
def bindings():
    return load_bindings([str(ROOT / "bindings")])


def dts(tmp_path: Path, text: str, name: str = "t.dts") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def dtb(tmp_path: Path, src: Path) -> Path:
    from dtvm.cli.dtc import run

    out = tmp_path / (src.stem + ".dtb")
    err = io.StringIO()
    assert run(["-q", "-I", "dts", "-O", "dtb", "-o", str(out), str(src)], io.BytesIO(), err) == 0, err.getvalue()
    return out


def findings(path: Path, bindings) -> list[str]:
    res = validate_tree(load_input(str(path)), bindings, str(path))
    return [f.format() for f in res.findings]


def variant(tmp_path: Path, old: str, new: str) -> Path:
    text = VIRT.read_text()
    assert old in text, old
    return dts(tmp_path, text.replace(old, new, 1), "v.dts")


MYSTERY = '\tmystery { compatible = "vendor,mystery"; };\n\tchosen {'


def with_mystery(tmp_path: Path) -> Path:
    """VIRT plus one node whose compatible has no binding (QEMU's own nodes all have one)."""
    return variant(tmp_path, "\tchosen {", MYSTERY)


def line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


# -- the format -------------------------------------------------------------------
def write_bindings(tmp_path: Path, files: dict[str, str]) -> str:
    root = tmp_path / "bindings"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    (root / "common").mkdir(exist_ok=True)
    if "common/base.yaml" not in files:
        (root / "common" / "base.yaml").write_text("properties:\n  compatible: {type: string-array}\n")
    return str(root)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("compatible: [\"a,b\"]\nproperties:\n  foo:\n    type: uint33\n", 4, "properties.foo.type"),
        ("compatible: [\"a,b\"]\nproperties:\n  foo: {type: uint32}\nbogus: 1\n", 1, "additional"),
        ("compatible: [\"a,b\"]\nproperties:\n  foo: {type: uint32}\n  foo: {type: string}\n", 4, "duplicate key"),
        ("compatible: [\"a,b\"]\nproperties:\n  foo: {type: uint32\n", 4, "YAML"),
        ("compatible: [\"a,b\"]\nproperties:\n  foo: {maxItems: 1}\n", 3, "no type"),
        ("compatible: [\"a,b\"]\nrequired:\n  - bar\n", 3, "not a declared property"),
        ("compatible: [\"a,b\"]\ninclude: [common/nope.yaml]\n", 2, "not found"),
        ("compatible: [\"a,b\"]\nqemu: [1, 2]\n", 2, "qemu"),
        ("properties:\n  foo: {type: uint32}\n", 1, "compatible: or select:"),
        ("compatible: [\"a,b\"]\nnode-name: \"(\"\n", 2, "regular expression"),
    ],
)
def test_format_errors_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    root = write_bindings(tmp_path, {"x/a,b.yaml": text})
    with pytest.raises(BindingError) as ei:
        load_bindings([root])
    assert ei.value.file == "bindings/x/a,b.yaml"
    assert ei.value.line == line, str(ei.value)
    assert words in str(ei.value)
    assert str(ei.value).startswith(f"bindings/x/a,b.yaml:{line}: error: ")


def test_broken_fragment_names_the_fragment(tmp_path: Path) -> None:
    root = write_bindings(
        tmp_path,
        {"x/a,b.yaml": "compatible: [\"a,b\"]\ninclude: [common/frag.yaml]\n", "common/frag.yaml": "properties:\n\n  bar: {type: strin}\n"},
    )
    with pytest.raises(BindingError, match=r"^bindings/common/frag.yaml:3: "):
        load_bindings([root])


def test_duplicate_compatible_key(tmp_path: Path) -> None:
    root = write_bindings(tmp_path, {"x/a,b.yaml": "compatible: [\"a,b\"]\n", "y/a,b.yaml": "compatible: [\"a,b\", \"c\"]\n"})
    with pytest.raises(BindingError, match="already the key"):
        load_bindings([root])


def test_shipped_bindings_load(bindings) -> None:
    files = {b.file for b in bindings.bindings()}
    for name in ("root", "cpus", "cpu", "memory", "chosen", "aliases", "reserved-memory"):
        assert f"bindings/core/{name}.yaml" in files
    assert bindings.by_compatible["arm,pl011"].qemu == {"driver": "pl011", "bus": "sysbus"}
    assert "arm,cortex-a15-gic" in bindings.by_compatible
    assert "arm,cortex-a57" in bindings.by_compatible


# -- good trees ---------------------------------------------------------------------
def test_virt_validates_clean(bindings, tmp_path: Path) -> None:
    for path in (VIRT, dtb(tmp_path, VIRT)):
        res = validate_tree(load_input(str(path)), bindings, str(path))
        assert [f.format() for f in res.findings] == []
        assert res.unchecked == []
        assert res.checked >= 14
    res = validate_tree(load_input(str(with_mystery(tmp_path))), bindings, "m.dts")
    assert [u.path for u in res.unchecked] == ["/mystery"]


# -- each core binding, broken --------------------------------------------------------
CASES = [
    # root
    ('model = "linux,dummy-virt";', "", ["/: model: required property is missing [required] (bindings/board/linux,dummy-virt.yaml:"]),
    ('compatible = "linux,dummy-virt";', 'compatible = "linux,dummy-virt"; chassis-type = "boat";',
     ["/: chassis-type: is 'boat', must be one of 'desktop'"]),
    # cpus
    ("#size-cells = <0>;\n\t\t#address-cells = <1>;", "#size-cells = <1>;\n\t\t#address-cells = <1>;",
     ["/cpus: #size-cells: is 1, must be 0 [const] (bindings/core/cpus.yaml:",
      "/cpus/cpu@0: reg: 1 cells is not a multiple of 2 (#address-cells = 1, #size-cells = 1 in the parent) [cells] (bindings/cpu/arm,cortex-a57.yaml:6)"]),
    # cpu (generic, by select) and arm,cortex-a57
    ('compatible = "arm,cortex-a57"; device_type = "cpu";', 'compatible = "arm,cortex-a57"; enable-method = "smp";',
     ["/cpus/cpu@0: device_type: required property is missing [required] (bindings/cpu/arm,cortex-a57.yaml:",
      "/cpus/cpu@0: enable-method: item [0] is 'smp', must be one of 'psci', 'spin-table' [enum] (bindings/cpu/arm,cortex-a57.yaml:"]),
    ('compatible = "arm,cortex-a57"; device_type = "cpu";', 'compatible = "arm,max"; device_type = "cpux"; cpu-release-addr = <1>;',
     ["/cpus/cpu@0: device_type: is 'cpux', must be 'cpu' [const] (bindings/core/cpu.yaml:",
      "/cpus/cpu@0: cpu-release-addr: length 4 bytes, expected 8 (uint64) [type] (bindings/core/cpu.yaml:"]),
    ("core0 { cpu = <&cpu0>; };", "core0 { cpu = <&cpu0>; }; bogus0 { };",
     ["/cpus/cpu-map/socket0/cluster0/bogus0: node name 'bogus0' does not match"]),
    # memory
    ('device_type = "memory";', 'device_type = "ram";',
     ["/memory@40000000: device_type: is 'ram', must be 'memory' [const] (bindings/core/memory.yaml:"]),
    ("reg = <0 0x40000000 0 0x8000000>;", "reg = <0 0x40000000 0x8000000>;",
     ["/memory@40000000: reg: 3 cells is not a multiple of 4 (#address-cells = 2, #size-cells = 2 in the parent) [cells]"]),
    # chosen
    ("kaslr-seed = /bits/ 64 <0x1234>;", "kaslr-seed = <0x1234>; bootargs = <1>; linux,foo;",
     ["/chosen: kaslr-seed: length 4 bytes, expected 8 (uint64) [type] (bindings/core/chosen.yaml:",
      "/chosen: bootargs: not a NUL-terminated string (string) [type]",
      "/chosen: linux,foo: property is not declared by the binding [additionalProperties] (bindings/core/chosen.yaml:"]),
    # aliases
    # (a relative path is dtc's alias_paths check, not the binding's, as in dt-schema)
    ('serial0 = "/pl011@9000000";', 'serial0 = <1>; uart = "pl011@9000000"; Bad_Alias = "/cpus";',
     ["/aliases: serial0: not a NUL-terminated string (string) [type] (bindings/core/aliases.yaml:",
      "/aliases: Bad_Alias: property is not declared by the binding"]),
    # pl011
    ('clock-names = "uartclk", "apb_pclk";', 'clock-names = "uartclk", "apb", "x";',
     # one finding per property: fastjsonschema reports the first broken rule of a value
     ["/pl011@9000000: clock-names: has 3 entries, at most 2 allowed [maxItems] (bindings/serial/arm,pl011.yaml:"]),
    ('clock-names = "uartclk", "apb_pclk";', 'clock-names = "uartclk", "apb";',
     ["/pl011@9000000: clock-names: item [1] is 'apb', must be 'apb_pclk' [const] (bindings/serial/arm,pl011.yaml:"]),
    ("reg = <0 0x9000000 0 0x1000>;\n\t\tcompatible", "reg = <0 0x9000000 0 0x1000 0 0 0 1>;\n\t\tcompatible",
     ["/pl011@9000000: reg: has 2 entries, at most 1 allowed [maxItems] (bindings/serial/arm,pl011.yaml:"]),
    ('pl011@9000000 {\n\t\tclock-names = "uartclk", "apb_pclk";\n\t\tclocks = <&clk &clk>;\n\t\tinterrupts = <0 1 4>;',
     'serial@9000000 {\n\t\tclock-names = "uartclk", "apb_pclk";\n\t\tclocks = <&clk &clk>;\n\t\tinterrupts = <0 1 4>;',
     ["/aliases: serial0: "]),  # nothing: the node is renamed fine
    # gic
    ("#interrupt-cells = <3>;", "#interrupt-cells = <3>; interrupts = <1 9 4 1 10 4>;",
     ["/intc@8000000: interrupts: has 2 entries, at most 1 allowed [maxItems] (bindings/interrupt-controller/arm,cortex-a15-gic.yaml:"]),
    # a wrong cell count breaks the consumers too: every one is reported
    ("#interrupt-cells = <3>;", "#interrupt-cells = <2>; interrupts = <1 9 4>;",
     ["/pl011@9000000: interrupts: 3 cells is not a multiple of 2 (#interrupt-cells = 2 in /intc@8000000) [cells] (bindings/serial/arm,pl011.yaml:",
      "/intc@8000000: #interrupt-cells: is 2, must be 3 [const] (bindings/interrupt-controller/arm,cortex-a15-gic.yaml:",
      "/intc@8000000: interrupts: 3 cells is not a multiple of 2 (#interrupt-cells = 2 in /intc@8000000) [cells]",
      "/timer: interrupts: has 6 entries, at most 5 allowed [maxItems]"]),
    ("msi-controller; compatible", "compatible",
     ["/intc@8000000/v2m@8020000: msi-controller: required property is missing [required] (bindings/interrupt-controller/arm,cortex-a15-gic.yaml:"]),
    ("gic: intc@8000000 {", "gic: gic@8000000 {",
     ["/gic@8000000: node name 'gic@8000000' does not match '^(interrupt-controller|intc)@[0-9a-f]+$' [node-name]"]),
]


@pytest.mark.parametrize(("old", "new", "expect"), CASES)
def test_core_binding_broken(bindings, tmp_path: Path, old: str, new: str, expect: list[str]) -> None:
    path = variant(tmp_path, old, new)
    got = findings(path, bindings)
    if expect == ["/aliases: serial0: "]:
        # the renamed UART is fine; the alias now points to a missing path, which is dtc's job
        assert got == []
        return
    assert len(got) == len(expect), "\n".join(got)
    for line, want in zip(got, expect, strict=True):
        assert want in line, f"{want!r} not in {line!r}"
        assert line.startswith(f"{path}:")


def test_reserved_memory(bindings, tmp_path: Path) -> None:
    good = (
        "reserved-memory {\n"
        "\t#address-cells = <2>;\n"
        "\t#size-cells = <2>;\n"
        "\tranges;\n"
        "\tfw@48000000 { reg = <0 0x48000000 0 0x100000>; no-map; };\n"
        '\tpool { compatible = "shared-dma-pool"; size = <0 0x400000>; reusable; linux,cma-default; };\n'
        "};\n"
    )
    text = VIRT.read_text().replace("\taliases {", textwrap.indent(good, "\t") + "\taliases {")
    path = dts(tmp_path, text, "rm.dts")
    assert findings(path, bindings) == []
    bad = text.replace("ranges;\n\t\tfw", "fw").replace("no-map;", "no-map = <1>; bogus;")
    path = dts(tmp_path, bad, "rm-bad.dts")
    got = findings(path, bindings)
    assert len(got) == 3, got
    assert "/reserved-memory: ranges: required property is missing [required] (bindings/core/reserved-memory.yaml:" in got[0]
    assert "/reserved-memory/fw@48000000: no-map: length 4 bytes, expected none (flag) [type]" in got[1]
    assert "/reserved-memory/fw@48000000: bogus: property is not declared by the binding" in got[2]


# -- unknown properties and all findings -------------------------------------------------
def test_all_failing_properties_reported(bindings, tmp_path: Path) -> None:
    text = VIRT.read_text()
    for old, new in [
        ('clock-names = "uartclk", "apb_pclk";', 'clock-names = "uartclk", "bad";'),
        ("interrupts = <0 1 4>;", "interrupts = <0 1 4 0 2 4>; current-speed = <115200>; x-foo = <1>; y-bar;"),
        ("clocks = <&clk &clk>;", "clocks = <&clk &clk &clk>;"),
    ]:
        text = text.replace(old, new, 1)
    path = dts(tmp_path, text)
    got = findings(path, bindings)
    props = [line.split(": ")[1] for line in got]
    assert props == ["clock-names", "clocks", "interrupts", "x-foo", "y-bar"], got


def test_common_properties_are_declared(bindings, tmp_path: Path) -> None:
    path = variant(tmp_path, "interrupts = <0 1 4>;", 'interrupts = <0 1 4>; status = "okay"; label = "uart";')
    assert findings(path, bindings) == []
    path = variant(tmp_path, "interrupts = <0 1 4>;", 'interrupts = <0 1 4>; status = "broken";')
    assert "status: 'broken' does not match" in findings(path, bindings)[0]


# -- cell-aware decoding ----------------------------------------------------------------
CELLS_DTS = """\
/dts-v1/;
/ {
	#address-cells = <1>;
	#size-cells = <1>;
	bus@0 {
		#address-cells = <2>;
		#size-cells = <1>;
		ranges = <0 0 0x1000 0x100>;
		dev@1,2 { reg = <1 2 0x10>; };
	};
	cpus {
		#address-cells = <1>;
		#size-cells = <0>;
		cpu@3 { reg = <3>; };
	};
	dev@10 { reg = <0x10 0x20 0x30 0x40>; clocks = <&c1 5 &c0 &c2 7 8>; gpios = <&g 1 2>; };
	c0: c0 { #clock-cells = <0>; };
	c1: c1 { #clock-cells = <1>; };
	c2: c2 { #clock-cells = <2>; };
	g: g { #gpio-cells = <2>; };
	nocells: n { };
	bad { clocks = <&nocells 1>; };
	short { clocks = <&c2 1>; };
};
"""


def test_cell_aware_decoding(tmp_path: Path) -> None:
    src = dts(tmp_path, CELLS_DTS)
    for path in (src, dtb(tmp_path, src)):
        dt = load_input(str(path))
        idx = TreeIndex(dt)

        def get(p: str, name: str, t: str, dt=dt, idx=idx):
            node = dt.get_node(p)
            return decode(node.get_property(name), t, None, node, idx)

        assert get("/dev@10", "reg", "address") == [[0x10, 0x20], [0x30, 0x40]]
        assert get("/bus@0/dev@1,2", "reg", "address") == [[(1 << 32) | 2, 0x10]]
        assert get("/cpus/cpu@3", "reg", "address") == [[3]]
        assert get("/bus@0", "ranges", "ranges") == [[0, 0x1000, 0x100]]
        c0, c1, c2 = (dt.get_node(f"/c{i}").get_property("phandle").as_u32() for i in range(3))
        assert get("/dev@10", "clocks", "phandle-array") == [[c1, 5], [c0], [c2, 7, 8]]
        assert get("/dev@10", "gpios", "phandle-array") == [[dt.get_node("/g").get_property("phandle").as_u32(), 1, 2]]
        with pytest.raises(DecodeError, match=r"provider /n has no #clock-cells") as ei:
            get("/bad", "clocks", "phandle-array")
        assert ei.value.rule == "cells"
        with pytest.raises(DecodeError, match="1 cells left, #clock-cells says 2"):
            get("/short", "clocks", "phandle-array")
        with pytest.raises(DecodeError, match=r"not a multiple of 2 \(#address-cells = 1, #size-cells = 1"):
            dt.get_node("/dev@10").get_property("reg").value += b"\0\0\0\1"
            get("/dev@10", "reg", "address")


def test_cells_property_names() -> None:
    assert cells_property_for("clocks") == "#clock-cells"
    assert cells_property_for("reset-gpios") == "#gpio-cells"
    assert cells_property_for("gpios") == "#gpio-cells"
    assert cells_property_for("resets") == "#reset-cells"
    assert cells_property_for("mboxes") == "#mbox-cells"
    assert cells_property_for("interrupts-extended") == "#interrupt-cells"
    assert cells_property_for("power-domains") == "#power-domain-cells"


def test_dangling_phandle_in_dtb(bindings, tmp_path: Path) -> None:
    src = variant(tmp_path, "clocks = <&clk &clk>;", "clocks = <0x77 &clk>;")
    got = findings(dtb(tmp_path, src), bindings)
    assert len(got) == 1
    assert got[0].startswith(f"{tmp_path}/v.dtb:/pl011@9000000: clocks: entry 0: phandle 0x77 does not point to a node [phandle]")


# -- DTS line numbers ----------------------------------------------------------------------
def test_dts_line_numbers(bindings, tmp_path: Path) -> None:
    path = variant(tmp_path, "interrupts = <0 1 4>;", "interrupts = <0 1 4>;\n\t\tcurrent-speed = \"fast\";")
    got = findings(path, bindings)
    bline = line_of(ROOT / "bindings/serial/arm,pl011.yaml", "current-speed")
    assert got == [f"{path}:{line_of(path, 'current-speed')}:/pl011@9000000: current-speed: length 5 bytes, expected 4 (uint32) [type] (bindings/serial/arm,pl011.yaml:{bline})"]
    path = variant(tmp_path, 'device_type = "memory";', "")
    got = findings(path, bindings)
    assert got[0].startswith(f"{path}:{line_of(path, 'memory@40000000')}:/memory@40000000: device_type: required")


def test_dts_include_names_the_included_file(bindings, tmp_path: Path) -> None:
    inc = tmp_path / "board.dtsi"
    inc.write_text("/ { chosen { bootargs = <1>; }; };\n")
    text = VIRT.read_text().replace("/dts-v1/;\n", "/dts-v1/;\n/include/ \"board.dtsi\"\n")
    text = text.replace("chosen { stdout-path", "chosen { stdout-path").replace("rng-seed", "rng-seed")
    path = dts(tmp_path, text)
    got = findings(path, bindings)
    assert got and got[0].startswith(f"{inc}:1:/chosen: bootargs: not a NUL-terminated string")


# -- the command line -------------------------------------------------------------------------
def run_cli(*args: str):
    return CliRunner().invoke(validate_cmd, list(args), catch_exceptions=False)


def test_cli_exit_codes(tmp_path: Path) -> None:
    r = run_cli(str(with_mystery(tmp_path)))
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    assert "/mystery: no binding for compatible" in r.stderr
    bad = variant(tmp_path, 'device_type = "memory";', "")
    r = run_cli("-q", str(bad))
    assert r.exit_code == 1
    assert r.stdout.count("\n") == 1 and "[required]" in r.stdout
    # unusable input: one line, no traceback
    garbage = tmp_path / "garbage.dtb"
    garbage.write_bytes(b"\xd0\x0d\xfe\xed" + b"\0" * 12)
    syntax = dts(tmp_path, "/dts-v1/;\n/ { foo = ; };\n", "syntax.dts")
    for f in (str(tmp_path / "missing.dtb"), str(garbage), str(syntax)):
        r = run_cli(f)
        assert r.exit_code == 2, (f, r.output)
        assert "Traceback" not in r.output
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert f in r.stderr
    # unusable wins over findings
    assert run_cli(str(bad), str(garbage)).exit_code == 2


def test_cli_strict(tmp_path: Path) -> None:
    assert run_cli("--strict", str(VIRT)).exit_code == 0
    r = run_cli("--strict", str(with_mystery(tmp_path)))
    assert r.exit_code == 1
    assert '/mystery: compatible: no binding for "vendor,mystery" [unchecked]' in r.stdout


def test_cli_broken_binding_dir(tmp_path: Path) -> None:
    root = write_bindings(tmp_path, {"x/a,b.yaml": "compatible: [\"a,b\"]\nproperties:\n  foo: {type: nope}\n"})
    r = run_cli("--bindings", root, str(VIRT))
    assert r.exit_code == 2
    assert r.stderr.startswith("bindings/x/a,b.yaml:3: error: properties.foo.type")


def test_cli_user_bindings_dir(tmp_path: Path) -> None:
    root = write_bindings(tmp_path, {"timer/arm,armv8-timer.yaml": """\
        compatible: ["arm,armv8-timer", "arm,armv7-timer"]
        include: [common/interrupts.yaml]
        properties:
          always-on: {type: flag}
        """, "common/interrupts.yaml": (ROOT / "bindings/common/interrupts.yaml").read_text()})
    r = run_cli("--bindings", root, "--bindings", str(ROOT / "bindings"), "--strict", str(VIRT))
    assert r.exit_code == 1
    assert "/apb-pclk" in r.stdout and "/timer" not in r.stdout


def test_cli_json(tmp_path: Path) -> None:
    bad = variant(tmp_path, 'device_type = "memory";', "")
    (tmp_path / "m").mkdir()  # variant() writes v.dts: keep the two files apart
    mystery = with_mystery(tmp_path / "m")
    r = run_cli("--format", "json", str(mystery), str(bad))
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["findings"] == 1 and doc["errors"] == 0
    a, b = doc["files"]
    assert a["file"] == str(mystery) and a["findings"] == [] and {u["path"] for u in a["unchecked"]} == {"/mystery"}
    (f,) = b["findings"]
    assert f == {
        "file": str(bad),
        "line": line_of(bad, "memory@40000000"),
        "path": "/memory@40000000",
        "prop": "device_type",
        "message": "required property is missing",
        "rule": "required",
        "binding": "bindings/core/memory.yaml",
        "binding_line": 11,
    }


def test_cli_jobs(tmp_path: Path) -> None:
    bad = variant(tmp_path, 'device_type = "memory";', "")
    virt_dtb = dtb(tmp_path, VIRT)
    r = run_cli("--jobs", "2", "-q", str(VIRT), str(bad), str(virt_dtb), str(bad))
    assert r.exit_code == 1
    assert r.stdout.count("[required]") == 2
    assert "4 files: 2 findings, 0 unusable" in r.stderr

