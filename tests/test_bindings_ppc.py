"""PowerPC bindings (issue 4, item 4): QEMU's pseries and ppce500 trees, and each binding broken."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from dtvm.bindings import load_bindings, validate_tree
from dtvm.cli.validate import load_input, validate_cmd

ROOT = Path(__file__).resolve().parent.parent
QEMU_DT = ROOT / "fixtures" / "qemu-dt"
PSERIES = sorted(QEMU_DT.glob("ppc64-*.dtb"))
E500 = sorted(QEMU_DT.glob("ppc-*.dtb"))

# QEMU's ppce500 writes `rtc = "i2c/rtc@68"` into /aliases (hw/ppc/e500.c). The DT spec wants a
# full path there, but that is dtc's alias_paths check (`dtvm dtc` reports it); the binding types
# alias values as strings only, as dt-schema's aliases.yaml does, so the tree validates clean.
E500_ALIAS = 'rtc = "i2c/rtc@68"'

# pseries' /chosen, /cpus and memory nodes carry PAPR properties the generic core bindings do not
# declare; bindings/ppc-papr/ selects them on machines whose root is "qemu,pseries" only.
ARM_VIRT = QEMU_DT / "aarch64-virt-default.dtb"

MY_BINDINGS = {
    "board/qemu,pseries.yaml",
    "board/fsl,qemu-e500.yaml",
    "core/PowerPC,cpu.yaml",
    "pci/IBM,Logical_PHB.yaml",
    "pci/fsl,mpc8540-pci.yaml",
    "interrupt-controller/IBM,ppc-xicp.yaml",
    "interrupt-controller/fsl,mpic.yaml",
    "interrupt-controller/fsl,mpic-msi.yaml",
    "interrupt-controller/event-sources.yaml",
    "bus/IBM,vdevice.yaml",
    "bus/fsl,mpc8544-immr.yaml",
    "serial/hvterm1.yaml",
    "serial/ns16550.yaml",
    "nvram/qemu,spapr-nvram.yaml",
    "net/IBM,l-lan.yaml",
    "scsi/IBM,v-scsi.yaml",
    "firmware/rtas.yaml",
    "memory/ibm,persistent-memory.yaml",
    "soc/fsl,mpc8544-guts.yaml",
    "gpio/fsl,qoriq-gpio.yaml",
    "i2c/fsl-i2c.yaml",
    "rtc/pericom,pt7c4338.yaml",
    # fragments
    "common/ppc-drc.yaml",
    "common/ppc-vio.yaml",
    "common/ppc-chosen.yaml",
    "common/ppc-memory.yaml",
}


@pytest.fixture(scope="module")
def shipped():
    return load_bindings([str(ROOT / "bindings")])


@pytest.fixture(scope="module")
def overlaid():
    # the PAPR select bindings now ship in bindings/ppc-papr/
    return load_bindings([str(ROOT / "bindings")])


@pytest.fixture(scope="module")
def dts_dir(tmp_path_factory) -> Path:
    """QEMU's ppc blobs decompiled with dtvm's dtc (the DTS the broken-node cases edit)."""
    from dtvm.cli.dtc import run

    out = tmp_path_factory.mktemp("ppc-dts")
    for blob in [*PSERIES, *E500]:
        err = io.StringIO()
        rc = run(
            ["-q", "-I", "dtb", "-O", "dts", "-o", str(out / (blob.stem + ".dts")), str(blob)],
            io.BytesIO(),
            err,
        )
        assert rc == 0, err.getvalue()
    return out


def findings(path: Path, bindings) -> list[str]:
    res = validate_tree(load_input(str(path)), bindings, str(path))
    return [f.format() for f in res.all_findings(strict=True)]


def strip(lines: list[str], path: Path) -> list[str]:
    """Drop the `FILE:` or `FILE:LINE:` prefix."""
    out = []
    for line in lines:
        assert line.startswith(f"{path}:"), line
        rest = line[len(str(path)) + 1 :]
        head, _, tail = rest.partition(":")
        out.append(tail if head.isdigit() else rest)
    return out


# -- QEMU's trees ---------------------------------------------------------------------------
def test_ppc_bindings_load(shipped) -> None:
    files = {b.file for b in shipped.bindings()}
    for rel in MY_BINDINGS:
        assert (ROOT / "bindings" / rel).is_file(), rel
        if not rel.startswith("common/"):
            assert f"bindings/{rel}" in files, rel
    for compat in (
        "IBM,Logical_PHB",
        "IBM,l-lan",
        "IBM,ppc-xicp",
        "IBM,v-scsi",
        "IBM,vdevice",
        "fsl,mpc8540-pci",
        "fsl,mpc8544-guts",
        "fsl,mpc8544-immr",
        "fsl,mpic",
        "fsl,mpic-msi",
        "fsl,qemu-e500",
        "fsl,qoriq-gpio",
        "fsl-i2c",
        "hvterm1",
        "ns16550",
        "pericom,pt7c4338",
        "qemu,pseries",
        "qemu,spapr-nvram",
    ):
        assert compat in shipped.by_compatible, compat


@pytest.mark.parametrize("blob", E500, ids=lambda p: p.name)
def test_ppce500_validates_clean(shipped, blob: Path) -> None:
    assert findings(blob, shipped) == []


def test_ppce500_relative_alias_is_dtcs_finding(tmp_path: Path) -> None:
    """The relative alias is left to dtc's alias_paths check, which does report it."""
    from dtvm.cli.dtc import run

    blob = E500[0]
    out, err = io.BytesIO(), io.StringIO()
    run(["-I", "dtb", "-O", "dts", "-o", str(tmp_path / "e500.dts"), str(blob)], out, err)
    assert E500_ALIAS in (tmp_path / "e500.dts").read_text()
    # dtvm dtc prints dtc's own line (a blob has no positions: the output file names it), as dtc does
    line = f"{tmp_path / 'e500.dts'}: Warning (alias_paths): /aliases:rtc: aliases property is not a valid node (i2c/rtc@68)"
    assert line in err.getvalue().splitlines()
    import shutil
    import subprocess

    if shutil.which("dtc") is not None:  # the oracle, where installed
        ref = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", "-o", str(tmp_path / "ref.dts"), str(blob)], capture_output=True)
        assert ref.stderr.decode("latin-1").replace("ref.dts", "e500.dts") == err.getvalue()


@pytest.mark.parametrize("blob", PSERIES, ids=lambda p: p.name)
def test_pseries_validates_clean(shipped, blob: Path) -> None:
    assert findings(blob, shipped) == []


def test_papr_selects_only_on_pseries(shipped) -> None:
    """On another machine /chosen and /cpus get the core bindings, not the PAPR ones."""
    from dtvm.bindings.validate import match
    from dtvm.dt.dtb import read_dtb

    for blob, want in ((PSERIES[0], "ppc-papr/pseries-"), (ARM_VIRT, "core/")):
        dt = read_dtb(blob.read_bytes())
        for path in ("/chosen", "/cpus"):
            node = dt.get_node(path)
            assert node is not None
            b = match(shipped, node, [])
            assert b is not None and want in b.file, (blob.name, path, b.file if b else None)


def test_cli_strict_ppc() -> None:
    args = [
        "--strict",
        "-q",
        *map(str, PSERIES + E500),
    ]
    r = CliRunner().invoke(validate_cmd, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert r.stdout == "", r.stdout


# -- each binding, broken ---------------------------------------------------------------------
P = "ppc64-pseries-default"
E = "ppc-ppce500-default"

CASES = [
    # qemu,pseries root
    (
        "board/qemu,pseries.yaml",
        P,
        'device_type = "chrp";',
        'device_type = "rs6000"; bogus-root;',
        [
            "/: device_type: is 'rs6000', must be 'chrp' [const] (bindings/board/qemu,pseries.yaml:",
            "/: bogus-root: property is not declared by the binding [additionalProperties] (bindings/board/qemu,pseries.yaml:",
        ],
    ),
    (
        "board/qemu,pseries.yaml",
        P,
        'vm,uuid = "00000000-0000-0000-0000-000000000000";',
        'vm,uuid = "xyz";',
        ["/: vm,uuid: 'xyz' does not match ^[0-9a-f]{8}-"],
    ),
    (
        "board/qemu,pseries.yaml",
        P,
        'model = "IBM pSeries (emulated by qemu)";',
        "",
        ["/: model: required property is missing [required] (bindings/board/qemu,pseries.yaml:"],
    ),
    # DR connectors (fragment)
    # (on the root; /cpus has its own PAPR select binding in bindings/ppc-papr/)
    (
        "common/ppc-drc.yaml",
        P,
        r"re:ibm,drc-names = \[00 00 00 1f [^\]]*\];",
        "ibm,drc-names = [00 01];",
        ["/: ibm,drc-names: has 2 entries, at least 4 required [minItems] (bindings/common/ppc-drc.yaml:"],
    ),
    (
        "common/ppc-drc.yaml",
        P,
        "re:ibm,drc-power-domains = <0x1f [^>]*>;",
        'ibm,drc-power-domains = "none";',
        [
            "/: ibm,drc-power-domains: length 5 bytes, expected a multiple of 4 (uint32-array) [type] (bindings/common/ppc-drc.yaml:"
        ],
    ),
    # PowerPC CPUs
    (
        "core/PowerPC,cpu.yaml",
        P,
        "ibm,pft-size = <0x00 0x16>;",
        "ibm,pft-size = <0x16>; ibm,frob = <1>;",
        [
            "/cpus/PowerPC,POWER9@0: ibm,pft-size: has 1 entries, at least 2 required [minItems] (bindings/core/PowerPC,cpu.yaml:",
            "/cpus/PowerPC,POWER9@0: ibm,frob: property is not declared by the binding [additionalProperties] (bindings/core/PowerPC,cpu.yaml:",
        ],
    ),
    (
        "core/PowerPC,cpu.yaml",
        P,
        "\t\t\t64-bit;",
        "\t\t\t64-bit = <1>;",
        [
            "/cpus/PowerPC,POWER9@0: 64-bit: length 4 bytes, expected none (flag) [type] (bindings/core/PowerPC,cpu.yaml:"
        ],
    ),
    (
        "core/PowerPC,cpu.yaml",
        P,
        'device_type = "cpu";\n\t\t\treg = <0x00>;',
        'device_type = "cpu";',
        [
            "/cpus/PowerPC,POWER9@0: reg: required property is missing [required] (bindings/core/PowerPC,cpu.yaml:"
        ],
    ),
    (
        "core/PowerPC,cpu.yaml",
        E,
        "bus-frequency = <0x00>;\n\t\t\ti-cache",
        'bus-frequency = "fast";\n\t\t\ti-cache',
        [
            "/cpus/PowerPC,8544@0: bus-frequency: length 5 bytes, expected a multiple of 4 (uint32-array) [type] (bindings/core/PowerPC,cpu.yaml:"
        ],
    ),
    # the PHB and its PCI functions
    (
        "pci/IBM,Logical_PHB.yaml",
        P,
        "ibm,dma-window = <0x80000000 0x00 0x00 0x00 0x40000000>;",
        "",
        [
            "/pci@800000020000000: ibm,dma-window: required property is missing [required] (bindings/pci/IBM,Logical_PHB.yaml:"
        ],
    ),
    (
        "pci/IBM,Logical_PHB.yaml",
        P,
        "bus-range = <0x00 0xff>;",
        "bus-range = <0x00 0x1ff>;",
        [
            "/pci@800000020000000: bus-range: item [1] is 0x1ff, must be <= 0xff [maximum] (bindings/pci/IBM,Logical_PHB.yaml:"
        ],
    ),
    (
        "pci/IBM,Logical_PHB.yaml",
        P,
        "vendor-id = <0x1234>;",
        "vendor-id = <0x12345>; bogus-pci;",
        [
            "/pci@800000020000000/vga@0: vendor-id: is 0x12345, must be <= 0xffff [maximum] (bindings/pci/IBM,Logical_PHB.yaml:",
            "/pci@800000020000000/vga@0: bogus-pci: property is not declared by the binding [additionalProperties] (bindings/pci/IBM,Logical_PHB.yaml:",
        ],
    ),
    (
        "pci/IBM,Logical_PHB.yaml",
        P,
        "class-code = <0xc0330>;",
        "",
        [
            "/pci@800000020000000/usb-xhci@1: class-code: required property is missing [required] (bindings/pci/IBM,Logical_PHB.yaml:"
        ],
    ),
    # XICS
    (
        "interrupt-controller/IBM,ppc-xicp.yaml",
        P,
        "ibm,interrupt-server-ranges = <0x00 0x01>;",
        "",
        [
            "/interrupt-controller: ibm,interrupt-server-ranges: required property is missing [required] (bindings/interrupt-controller/IBM,ppc-xicp.yaml:"
        ],
    ),
    (
        "interrupt-controller/IBM,ppc-xicp.yaml",
        P,
        'device_type = "PowerPC-External-Interrupt-Presentation";',
        'device_type = "xics";',
        [
            "/interrupt-controller: device_type: is 'xics', must be 'PowerPC-External-Interrupt-Presentation' [const]"
        ],
    ),
    # event sources
    (
        "interrupt-controller/event-sources.yaml",
        P,
        "interrupt-ranges = <0x1000 0x01 0x1001 0x01>;",
        "",
        [
            "/event-sources: interrupt-ranges: required property is missing [required] (bindings/interrupt-controller/event-sources.yaml:"
        ],
    ),
    (
        "interrupt-controller/event-sources.yaml",
        P,
        "epow-events {\n\t\t\tinterrupts = <0x1000 0x00>;",
        'epow@0 {\n\t\t\tstatus = "okay";',
        [
            "/event-sources/epow@0: node name 'epow@0' does not match",
            "/event-sources/epow@0: interrupts: required property is missing [required] (bindings/interrupt-controller/event-sources.yaml:",
        ],
    ),
    # RTAS
    (
        "firmware/rtas.yaml",
        P,
        "rtas-size = <0x82c>;",
        'rtas-size = "bigger"; ibm,frobnicate = <0x3000>;',
        [
            "/rtas: rtas-size: length 7 bytes, expected 4 (uint32) [type] (bindings/firmware/rtas.yaml:",
            "/rtas: ibm,frobnicate: property is not declared by the binding [additionalProperties] (bindings/firmware/rtas.yaml:",
        ],
    ),
    (
        "firmware/rtas.yaml",
        P,
        'qemu,hypertas-functions = "hcall-memop1";',
        'qemu,hypertas-functions = "memop1";',
        [
            "/rtas: qemu,hypertas-functions: item [0] 'memop1' does not match ^hcall-[a-z0-9-]+$ [pattern] (bindings/firmware/rtas.yaml:"
        ],
    ),
    (
        "firmware/rtas.yaml",
        P,
        "ibm,lrdr-capacity = <0x00 0x00 0x00 0x10000000 0x01>;",
        "ibm,lrdr-capacity = <0x00 0x10000000 0x01>;",
        [
            "/rtas: ibm,lrdr-capacity: has 3 entries, at least 5 required [minItems] (bindings/firmware/rtas.yaml:"
        ],
    ),
    # persistent memory
    (
        "memory/ibm,persistent-memory.yaml",
        P,
        "#size-cells = <0x00>;\n\t\t#address-cells = <0x01>;\n\t};\n\n\tchosen",
        "#size-cells = <0x00>;\n\t\t#address-cells = <0x02>;\n\t};\n\n\tchosen",
        [
            "/ibm,persistent-memory: #address-cells: is 2, must be 1 [const] (bindings/memory/ibm,persistent-memory.yaml:"
        ],
    ),
    # VIO
    (
        "bus/IBM,vdevice.yaml",
        P,
        'device_type = "vdevice";',
        'device_type = "vio";',
        ["/vdevice: device_type: is 'vio', must be 'vdevice' [const] (bindings/bus/IBM,vdevice.yaml:"],
    ),
    (
        "serial/hvterm1.yaml",
        P,
        'device_type = "serial";\n\t\t\treg = <0x71000000>;',
        'device_type = "serial";\n\t\t\tcurrent-speed = <9600>;',
        [
            "/vdevice/vty@71000000: reg: required property is missing [required] (bindings/serial/hvterm1.yaml:",
            "/vdevice/vty@71000000: current-speed: property is not declared by the binding [additionalProperties] (bindings/serial/hvterm1.yaml:",
        ],
    ),
    (
        "common/ppc-vio.yaml",
        P,
        "interrupts = <0x1100 0x00>;",
        "interrupts = <0x1100 0x00 0x1101>;",
        [
            "/vdevice/vty@71000000: interrupts: 3 cells is not a multiple of 2 (#interrupt-cells = 2 in /vdevice) [cells] (bindings/common/ppc-vio.yaml:"
        ],
    ),
    (
        "nvram/qemu,spapr-nvram.yaml",
        P,
        "#bytes = <0x10000>;",
        '#bytes = "64 KiB";',
        [
            "/vdevice/nvram@71000001: #bytes: length 7 bytes, expected 4 (uint32) [type] (bindings/nvram/qemu,spapr-nvram.yaml:"
        ],
    ),
    (
        "nvram/qemu,spapr-nvram.yaml",
        P,
        "#bytes = <0x10000>;",
        "",
        [
            "/vdevice/nvram@71000001: #bytes: required property is missing [required] (bindings/nvram/qemu,spapr-nvram.yaml:"
        ],
    ),
    (
        "net/IBM,l-lan.yaml",
        P,
        "local-mac-address = [52 54 00 12 34 56];",
        "local-mac-address = [52 54 00 12 34];",
        [
            "/vdevice/l-lan@71000002: local-mac-address: has 5 entries, at least 6 required [minItems] (bindings/net/IBM,l-lan.yaml:"
        ],
    ),
    (
        "net/IBM,l-lan.yaml",
        P,
        'device_type = "network";',
        'device_type = "net";',
        [
            "/vdevice/l-lan@71000002: device_type: is 'net', must be 'network' [const] (bindings/net/IBM,l-lan.yaml:"
        ],
    ),
    (
        "scsi/IBM,v-scsi.yaml",
        P,
        "#address-cells = <0x02>;\n\t\t\tibm,my-dma-window = <0x71000003",
        "#address-cells = <0x01>;\n\t\t\tibm,my-dma-window = <0x71000003",
        ["/vdevice/v-scsi@71000003: #address-cells: is 1, must be 2 [const] (bindings/scsi/IBM,v-scsi.yaml:"],
    ),
    (
        "scsi/IBM,v-scsi.yaml",
        P,
        "ibm,my-dma-window = <0x71000003 0x00 0x00 0x00 0x10000000>;",
        "",
        [
            "/vdevice/v-scsi@71000003: ibm,my-dma-window: required property is missing [required] (bindings/scsi/IBM,v-scsi.yaml:"
        ],
    ),
    # ppce500
    (
        "board/fsl,qemu-e500.yaml",
        E,
        'compatible = "fsl,qemu-e500";\n\tmodel = "QEMU ppce500";',
        'compatible = "fsl,qemu-e500", "fsl,mpc8544ds";',
        # a missing required property is reported before the node's properties
        [
            "/: model: required property is missing [required] (bindings/board/fsl,qemu-e500.yaml:",
            "/: compatible: has 2 entries, at most 1 allowed [maxItems] (bindings/board/fsl,qemu-e500.yaml:",
        ],
    ),
    (
        "pci/fsl,mpc8540-pci.yaml",
        E,
        "fsl,msi = <0x8004>;",
        "fsl,msi = <0x9999>;",
        [
            "/pci@fe0008000: fsl,msi: phandle 0x9999 does not point to a node [phandle] (bindings/pci/fsl,mpc8540-pci.yaml:"
        ],
    ),
    (
        "pci/fsl,mpc8540-pci.yaml",
        E,
        'device_type = "pci";',
        "",
        [
            "/pci@fe0008000: device_type: required property is missing [required] (bindings/pci/fsl,mpc8540-pci.yaml:"
        ],
    ),
    (
        "bus/fsl,mpc8544-immr.yaml",
        E,
        'compatible = "fsl,mpc8544-immr\\0simple-bus";\n\t\tdevice_type = "soc";',
        'compatible = "fsl,mpc8544-immr"; device_type = "bus";',
        [
            "/soc@fe0000000: compatible: has 1 entries, at least 2 required [minItems] (bindings/bus/fsl,mpc8544-immr.yaml:",
            "/soc@fe0000000: device_type: is 'bus', must be 'soc' [const] (bindings/bus/fsl,mpc8544-immr.yaml:",
        ],
    ),
    (
        "soc/fsl,mpc8544-guts.yaml",
        E,
        "fsl,has-rstcr;",
        "fsl,has-rstcr = <1>;",
        [
            "/soc@fe0000000/global-utilities@e0000: fsl,has-rstcr: length 4 bytes, expected none (flag) [type] (bindings/soc/fsl,mpc8544-guts.yaml:"
        ],
    ),
    (
        "gpio/fsl,qoriq-gpio.yaml",
        E,
        "gpio-controller;",
        "",
        [
            "/soc@fe0000000/gpio@ff000: gpio-controller: required property is missing [required] (bindings/gpio/fsl,qoriq-gpio.yaml:"
        ],
    ),
    (
        "interrupt-controller/fsl,mpic-msi.yaml",
        E,
        "msi-available-ranges = <0x00 0x100>;",
        "msi-available-ranges = <0x00>;",
        [
            "/soc@fe0000000/msi@41600: msi-available-ranges: has 1 entries, at least 2 required [minItems] (bindings/interrupt-controller/fsl,mpic-msi.yaml:"
        ],
    ),
    (
        "interrupt-controller/fsl,mpic.yaml",
        E,
        'device_type = "open-pic";',
        'device_type = "openpic"; bogus-pic;',
        [
            "/soc@fe0000000/pic@40000: device_type: is 'openpic', must be 'open-pic' [const] (bindings/interrupt-controller/fsl,mpic.yaml:",
            "/soc@fe0000000/pic@40000: bogus-pic: property is not declared by the binding [additionalProperties] (bindings/interrupt-controller/fsl,mpic.yaml:",
        ],
    ),
    (
        "i2c/fsl-i2c.yaml",
        E,
        "interrupts = <0x2b 0x02>;",
        "interrupts = <0x2b 0x02>; clock-frequency = <10>;",
        [
            "/soc@fe0000000/i2c@3000: clock-frequency: is 0xa, must be >= 0x3e8 [minimum] (bindings/i2c/fsl-i2c.yaml:"
        ],
    ),
    (
        "rtc/pericom,pt7c4338.yaml",
        E,
        "reg = <0x68>;",
        "reg = <0x80>; trickle-resistor-ohms = <100>;",
        [
            "/soc@fe0000000/i2c@3000/rtc@68: reg: is 0x80, must be <= 0x7f [maximum] (bindings/rtc/pericom,pt7c4338.yaml:",
            "/soc@fe0000000/i2c@3000/rtc@68: trickle-resistor-ohms: is 0x64, must be one of 0xfa, 0x7d0, 0xfa0 [enum] (bindings/rtc/pericom,pt7c4338.yaml:",
        ],
    ),
    (
        "serial/ns16550.yaml",
        E,
        "interrupts = <0x2a 0x02>;",
        "reg-shift = <3>;",
        [
            "/soc@fe0000000/serial@4500: interrupts: required property is missing [required] (bindings/serial/ns16550.yaml:",
            "/soc@fe0000000/serial@4500: reg-shift: is 3, must be one of 0, 1, 2 [enum] (bindings/serial/ns16550.yaml:",
        ],
    ),
]


@pytest.mark.parametrize(
    ("binding", "base", "old", "new", "expect"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_ppc_binding_broken(
    shipped, dts_dir: Path, tmp_path: Path, binding: str, base: str, old: str, new: str, expect: list[str]
) -> None:
    text = (dts_dir / f"{base}.dts").read_text()
    if old.startswith("re:"):
        text, n = re.subn(old[3:], lambda _m: new, text, count=1)
        assert n == 1, old
    else:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / f"{base}-broken.dts"
    path.write_text(text)
    good = strip(findings(dts_dir / f"{base}.dts", shipped), dts_dir / f"{base}.dts")
    got = [g for g in strip(findings(path, shipped), path) if g not in good]
    assert len(got) == len(expect), "\n".join(got)
    for line, want in zip(got, expect, strict=True):
        assert want in line, f"{want!r} not in {line!r}"


def test_every_ppc_binding_has_a_broken_case() -> None:
    assert {c[0] for c in CASES} == MY_BINDINGS - {"common/ppc-chosen.yaml", "common/ppc-memory.yaml"}


# the fragments that only the PAPR select bindings use
OVERLAY_CASES = [
    (
        "qemu,graphic-depth = <0x20>;",
        "qemu,graphic-depth = <0x11>;",
        [
            "/chosen: qemu,graphic-depth: is 0x11, must be one of 8, 0xf, 0x10, 0x18, 0x20 [enum] (bindings/common/ppc-chosen.yaml:"
        ],
    ),
    (
        "ibm,architecture-vec-5 = [00 00];",
        "ibm,architecture-vec-5 = [00 00]; ibm,bogus-vec;",
        [
            "/chosen: ibm,bogus-vec: property is not declared by the binding [additionalProperties] (bindings/ppc-papr/pseries-chosen.yaml:"
        ],
    ),
    (
        "ibm,associativity = <0x04 0x00 0x00 0x00 0x00>;",
        'ibm,associativity = "node0";',
        [
            "/memory@0: ibm,associativity: length 6 bytes, expected a multiple of 4 (uint32-array) [type] (bindings/common/ppc-memory.yaml:"
        ],
    ),
    (
        "ibm,drc-indexes = <0x01 0x10000000>;",
        "ibm,drc-indexes = [01];",
        [
            "/cpus: ibm,drc-indexes: length 1 bytes, expected a multiple of 4 (uint32-array) [type] (bindings/common/ppc-drc.yaml:"
        ],
    ),
]


@pytest.mark.parametrize(("old", "new", "expect"), OVERLAY_CASES)
def test_pseries_overlay_broken(
    overlaid, dts_dir: Path, tmp_path: Path, old: str, new: str, expect: list[str]
) -> None:
    text = (dts_dir / f"{P}.dts").read_text()
    assert text.count(old) == 1, old
    path = tmp_path / "overlay-broken.dts"
    path.write_text(text.replace(old, new))
    got = strip(findings(path, overlaid), path)
    assert len(got) == len(expect), "\n".join(got)
    for line, want in zip(got, expect, strict=True):
        assert want in line, f"{want!r} not in {line!r}"
