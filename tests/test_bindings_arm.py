"""The arm/aarch64 virt bindings (issue 4, item 4): QEMU's DTs validate clean, broken nodes do not."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from dtvm.bindings import load_bindings, validate_tree
from dtvm.cli.dtc import run as dtc_run
from dtvm.cli.validate import load_input, validate_cmd

ROOT = Path(__file__).resolve().parent.parent
QEMU = ROOT / "fixtures" / "qemu-dt"
EXTRAS = ROOT / "fixtures" / "bindings" / "arm" / "extras.dts"
FIXTURES = sorted([*QEMU.glob("aarch64-*.dtb"), *QEMU.glob("arm-*.dtb")])

SMMU = "aarch64-virt-smmuv3"  # GICv2 + v2m, SMMUv3, PSCI hvc, every virt device
GIC4 = "aarch64-virt-gic4-virt"  # GICv3 with ITS and maintenance interrupt
SECURE = "aarch64-virt-secure"  # secure pl061, gpio-poweroff, gpio-restart, secflash
ARM = "arm-virt-secure-gic3-smp2"  # Cortex-A15, arm,armv7-timer, GICv3

BINDINGS = [
    "board/linux,dummy-virt.yaml",
    "bus/qemu,platform.yaml",
    "clock/fixed-clock.yaml",
    "cpu/arm,cortex-a15.yaml",
    "firmware/arm,psci-1.0.yaml",
    "firmware/qemu,fw-cfg-mmio.yaml",
    "gpio/arm,pl061.yaml",
    "input/gpio-keys.yaml",
    "interrupt-controller/arm,gic-v3-its.yaml",
    "interrupt-controller/arm,gic-v3.yaml",
    "iommu/arm,smmu-v3.yaml",
    "mtd/cfi-flash.yaml",
    "pci/pci-host-ecam-generic.yaml",
    "pmu/arm,armv8-pmuv3.yaml",
    "power/gpio-poweroff.yaml",
    "power/gpio-restart.yaml",
    "rtc/arm,pl031.yaml",
    "timer/arm,armv7-timer.yaml",
    "timer/arm,armv8-timer.yaml",
    "virtio/virtio,mmio.yaml",
]


@pytest.fixture(scope="module")
def bindings():
    return load_bindings([str(ROOT / "bindings")])


_DTS: dict[str, str] = {}


def fixture_dts(name: str) -> str:
    """The DTS of a QEMU fixture, decompiled by dtvm's dtc."""
    if name not in _DTS:
        buf = io.BytesIO()
        err = io.StringIO()
        assert dtc_run(["-q", "-I", "dtb", "-O", "dts", str(QEMU / f"{name}.dtb")], buf, err) == 0, (
            err.getvalue()
        )
        _DTS[name] = buf.getvalue().decode()
    return _DTS[name]


def findings(path: Path, bindings) -> list[str]:
    res = validate_tree(load_input(str(path)), bindings, str(path))
    return [f.format() for f in res.all_findings(strict=True)]


def check(got: list[str], expect: list[str], path: Path) -> None:
    """Every expected finding once, nothing else (findings come in node property order)."""
    assert len(got) == len(expect), "\n".join(got)
    for want in expect:
        hits = [line for line in got if want in line]
        assert len(hits) == 1, f"{want!r} in:\n" + "\n".join(got)
        assert hits[0].startswith(f"{path}:")


def variant(tmp_path: Path, text: str, edits: list[tuple[str, str]]) -> Path:
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    p = tmp_path / "v.dts"
    p.write_text(text)
    return p


# -- good trees ----------------------------------------------------------------------
def test_arm_bindings_load(bindings) -> None:
    files = {b.file for b in bindings.bindings()}
    for rel in BINDINGS:
        assert f"bindings/{rel}" in files, rel
    # GICv2m frames stay with the GICv2 binding's child-binding
    assert "arm,gic-v2m-frame" not in bindings.by_compatible


def test_fixtures_present() -> None:
    assert len(FIXTURES) == 13


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_qemu_fixture_validates_clean_strict(path: Path) -> None:
    r = CliRunner().invoke(validate_cmd, ["--strict", "-q", str(path)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert r.stdout == ""


def test_all_fixtures_at_once() -> None:
    r = CliRunner().invoke(validate_cmd, ["--strict", "-q", *map(str, FIXTURES)], catch_exceptions=False)
    assert r.exit_code == 0, r.output


def test_every_node_with_a_compatible_is_checked(bindings) -> None:
    for path in FIXTURES:
        res = validate_tree(load_input(str(path)), bindings, str(path))
        assert res.findings == [] and res.unchecked == [], path


def test_extras_validate_clean(bindings, tmp_path: Path) -> None:
    res = validate_tree(load_input(str(EXTRAS)), bindings, str(EXTRAS))
    assert [f.format() for f in res.all_findings(strict=True)] == []
    # root, cpus, 2 cpus, psci + 2 domains, gic + ppi-partitions + 2 partitions + its, timer, pmu, flash + 2 partitions
    assert res.checked == 17


# -- each binding, broken -------------------------------------------------------------
CASES = [
    # linux,dummy-virt (the root node)
    (
        "dummy-virt",
        SMMU,
        [
            ('\tmodel = "linux,dummy-virt";\n', ""),
            (
                'compatible = "linux,dummy-virt";\n\n\tpsci',
                'compatible = "linux,dummy-virt\\0other,board";\n\tchassis-type = "boat";\n\tbogus;\n\n\tpsci',
            ),
        ],
        [
            "/: compatible: has 2 entries, at most 1 allowed [maxItems] (bindings/board/linux,dummy-virt.yaml:",
            "/: chassis-type: is 'boat', must be one of 'desktop'",
            "/: bogus: property is not declared by the binding [additionalProperties] (bindings/board/linux,dummy-virt.yaml:",
            "/: model: required property is missing [required] (bindings/board/linux,dummy-virt.yaml:",
        ],
    ),
    # arm,armv8-timer
    (
        "armv8-timer",
        SMMU,
        [
            (
                'always-on;\n\t\tcompatible = "arm,armv8-timer\\0arm,armv7-timer";',
                'always-on = <1>;\n\t\tinterrupt-names = "phys", "bogus";\n\t\tcompatible = "arm,armv8-timer\\0arm,armv9-timer";',
            ),
        ],
        [
            "/timer: always-on: length 4 bytes, expected none (flag) [type] (bindings/common/arm-arch-timer.yaml:",
            "/timer: interrupt-names: item [1] is 'bogus', must be one of 'sec-phys', 'phys', 'virt', 'hyp-phys', 'hyp-virt' [enum] (bindings/common/arm-arch-timer.yaml:",
            "/timer: compatible: item [1] is 'arm,armv9-timer', must be 'arm,armv7-timer' [const] (bindings/timer/arm,armv8-timer.yaml:",
        ],
    ),
    # arm,armv7-timer
    (
        "armv7-timer",
        ARM,
        [
            (
                "timer {\n\t\tinterrupts = <0x01 0x0d 0x04 0x01 0x0e 0x04 0x01 0x0b 0x04 0x01 0x0a 0x04>;",
                "tick {\n\t\tinterrupts = <0x01 0x0d 0x04 0x01 0x0e 0x04 0x01 0x0b 0x04 0x01 0x0a 0x04 0x01 0x0c 0x04 0x01 0x09 0x04>;\n\t\tclock-frequency = <0>;",
            ),
            ('compatible = "arm,armv7-timer";', 'compatible = "arm,cortex-a9-timer\\0arm,armv7-timer";'),
        ],
        [
            "/tick: node name 'tick' does not match '^timer(@[0-9a-f]+)?$' [node-name] (bindings/timer/arm,armv7-timer.yaml:",
            "/tick: interrupts: has 6 entries, at most 5 allowed [maxItems] (bindings/common/arm-arch-timer.yaml:",
            "/tick: clock-frequency: is 0, must be >= 1 [minimum] (bindings/common/arm-arch-timer.yaml:",
            "/tick: compatible: item [0] is 'arm,cortex-a9-timer', must be one of 'arm,cortex-a15-timer', 'arm,armv7-timer' [enum] (bindings/timer/arm,armv7-timer.yaml:",
        ],
    ),
    # arm,armv8-pmuv3
    (
        "pmu",
        SMMU,
        [
            (
                "pmu {\n\t\tinterrupts = <0x01 0x07 0x104>;",
                'perf {\n\t\tinterrupts = <0x01 0x07 0x104>;\n\t\tinterrupt-affinity = "cpu0";\n\t\tsecure-reg-access = "yes";',
            ),
            ('compatible = "arm,armv8-pmuv3";', 'compatible = "arm,armv8-pmuv3\\0arm,armv7-pmu";'),
        ],
        [
            "/perf: node name 'perf' does not match",
            "/perf: interrupt-affinity: length 5 is not a multiple of 4 (cells) [type] (bindings/pmu/arm,armv8-pmuv3.yaml:",
            "/perf: secure-reg-access: length 4 bytes, expected none (flag) [type] (bindings/pmu/arm,armv8-pmuv3.yaml:",
            "/perf: compatible: has 2 entries, at most 1 allowed [maxItems] (bindings/pmu/arm,armv8-pmuv3.yaml:",
        ],
    ),
    # arm,cortex-a15
    (
        "cortex-a15",
        ARM,
        [
            (
                'enable-method = "psci";\n\t\t\tcompatible = "arm,cortex-a15";\n\t\t\tdevice_type = "cpu";',
                'enable-method = "psci\\0spin-table";\n\t\t\tcompatible = "arm,cortex-a15";\n\t\t\tcci-control-port = <1 2>;',
            ),
        ],
        [
            "/cpus/cpu@0: enable-method: has 2 entries, at most 1 allowed [maxItems] (bindings/cpu/arm,cortex-a15.yaml:",
            "/cpus/cpu@0: cci-control-port: length 8 bytes, expected 4 (phandle) [type] (bindings/cpu/arm,cortex-a15.yaml:",
            "/cpus/cpu@0: device_type: required property is missing [required] (bindings/cpu/arm,cortex-a15.yaml:",
        ],
    ),
    # arm,gic-v3
    (
        "gic-v3",
        GIC4,
        [
            (
                "interrupts = <0x01 0x09 0x04>;\n\t\treg",
                "interrupts = <0x01 0x09 0x04 0x01 0x0a 0x04>;\n\t\tredistributor-stride = <0x20000>;\n\t\treg",
            ),
            ("#redistributor-regions = <0x01>;", "#redistributor-regions = <0x00>;"),
            (
                "interrupt-controller;\n\t\t#interrupt-cells = <0x03>;\n\n\t\tits",
                "#interrupt-cells = <0x03>;\n\n\t\tits",
            ),
        ],
        [
            "/intc@8000000: interrupts: has 2 entries, at most 1 allowed [maxItems] (bindings/interrupt-controller/arm,gic-v3.yaml:",
            "/intc@8000000: redistributor-stride: length 4 bytes, expected 8 (uint64) [type] (bindings/interrupt-controller/arm,gic-v3.yaml:",
            "/intc@8000000: #redistributor-regions: is 0, must be >= 1 [minimum] (bindings/interrupt-controller/arm,gic-v3.yaml:",
            "/intc@8000000: interrupt-controller: required property is missing [required] (bindings/interrupt-controller/arm,gic-v3.yaml:",
        ],
    ),
    # arm,gic-v3-its
    (
        "gic-v3-its",
        GIC4,
        [
            ("its@8080000 {", "translator@8080000 {"),
            (
                "reg = <0x00 0x8080000 0x00 0x20000>;\n\t\t\t#msi-cells = <0x01>;",
                "reg = <0x00 0x8080000 0x00 0x20000 0x00 0x80a0000 0x00 0x20000>;",
            ),
        ],
        [
            "/intc@8000000/translator@8080000: node name 'translator@8080000' does not match",
            "/intc@8000000/translator@8080000: reg: has 2 entries, at most 1 allowed [maxItems] (bindings/interrupt-controller/arm,gic-v3-its.yaml:",
            "/intc@8000000/translator@8080000: #msi-cells: required property is missing [required] (bindings/interrupt-controller/arm,gic-v3-its.yaml:",
        ],
    ),
    # arm,gic-v2m-frame: covered by the arm,cortex-a15-gic child-binding
    (
        "gic-v2m-frame",
        SMMU,
        [
            (
                'msi-controller;\n\t\t\tcompatible = "arm,gic-v2m-frame";',
                'msi-controller;\n\t\t\tarm,msi-base-spi = "x";\n\t\t\tcompatible = "arm,gic-v2m-frame\\0arm,other";',
            ),
        ],
        [
            "/intc@8000000/v2m@8020000: arm,msi-base-spi: length 2 bytes, expected 4 (uint32) [type] (bindings/interrupt-controller/arm,cortex-a15-gic.yaml:",
            "/intc@8000000/v2m@8020000: compatible: has 2 entries, at most 1 allowed [maxItems] (bindings/interrupt-controller/arm,cortex-a15-gic.yaml:",
        ],
    ),
    # arm,smmu-v3
    (
        "smmu-v3",
        SMMU,
        [
            ("#iommu-cells = <0x01>;", "#iommu-cells = <0x02>;"),
            (
                'interrupt-names = "eventq\\0priq\\0cmdq-sync\\0gerror";',
                'interrupt-names = "eventq\\0priq\\0cmdq\\0gerror";',
            ),
            ("reg = <0x00 0x9050000 0x00 0x20000>;", ""),
        ],
        [
            "/smmuv3@9050000: #iommu-cells: is 2, must be 1 [const] (bindings/iommu/arm,smmu-v3.yaml:",
            "/smmuv3@9050000: interrupt-names: item [2] is 'cmdq', must be one of 'combined', 'eventq', 'gerror', 'priq', 'cmdq-sync' [enum] (bindings/iommu/arm,smmu-v3.yaml:",
            "/smmuv3@9050000: reg: required property is missing [required] (bindings/iommu/arm,smmu-v3.yaml:",
        ],
    ),
    # arm,pl031
    (
        "pl031",
        SMMU,
        [
            (
                'pl031@9010000 {\n\t\tclock-names = "apb_pclk";\n\t\tclocks = <0x8000>;',
                'pl031@9010000 {\n\t\tstart-year = "2000";',
            ),
        ],
        [
            "/pl031@9010000: start-year: length 5 bytes, expected 4 (uint32) [type] (bindings/rtc/arm,pl031.yaml:",
            "/pl031@9010000: clocks: required property is missing [required] (bindings/rtc/arm,pl031.yaml:",
            "/pl031@9010000: clock-names: required property is missing [required] (bindings/rtc/arm,pl031.yaml:",
        ],
    ),
    # arm,pl061
    (
        "pl061",
        SMMU,
        [
            (
                'clock-names = "apb_pclk";\n\t\tclocks = <0x8000>;\n\t\tinterrupts = <0x00 0x07 0x04>;\n\t\tgpio-controller;',
                'clock-names = "pclk";\n\t\tclocks = <0x8000>;\n\t\tinterrupts = <0x00 0x07 0x04>;\n\t\tngpios = <9>;',
            ),
        ],
        [
            "/pl061@9030000: clock-names: item [0] is 'pclk', must be 'apb_pclk' [const] (bindings/gpio/arm,pl061.yaml:",
            "/pl061@9030000: ngpios: is 9, must be <= 8 [maximum] (bindings/gpio/arm,pl061.yaml:",
            "/pl061@9030000: gpio-controller: required property is missing [required] (bindings/gpio/arm,pl061.yaml:",
        ],
    ),
    # a wrong #gpio-cells on the pl061 breaks its consumer too
    (
        "pl061-cells",
        SMMU,
        [
            (
                '#gpio-cells = <0x02>;\n\t\tcompatible = "arm,pl061',
                '#gpio-cells = <0x03>;\n\t\tcompatible = "arm,pl061',
            )
        ],
        [
            "/gpio-keys/poweroff: gpios: entry 0: 2 cells left, #gpio-cells says 3 [cells] (bindings/input/gpio-keys.yaml:",
            "/pl061@9030000: #gpio-cells: is 3, must be 2 [const] (bindings/gpio/arm,pl061.yaml:",
        ],
    ),
    # arm,psci-1.0
    (
        "psci",
        SMMU,
        [
            (
                'method = "hvc";\n\t\tcompatible = "arm,psci-1.0\\0arm,psci-0.2\\0arm,psci";',
                'method = "svc";\n\t\tcompatible = "arm,psci-1.0\\0arm,psci";\n\t\tsys_reset = <0x84000009>;',
            ),
            ("cpu_on = <0xc4000003>;", 'cpu_on = "on";'),
        ],
        [
            "/psci: cpu_on: length 3 bytes, expected 4 (uint32) [type] (bindings/firmware/arm,psci-1.0.yaml:",
            "/psci: method: is 'svc', must be one of 'smc', 'hvc' [enum] (bindings/firmware/arm,psci-1.0.yaml:",
            "/psci: compatible: item [1] is 'arm,psci', must be 'arm,psci-0.2' [const] (bindings/firmware/arm,psci-1.0.yaml:",
            "/psci: sys_reset: property is not declared by the binding [additionalProperties] (bindings/firmware/arm,psci-1.0.yaml:",
        ],
    ),
    # cfi-flash
    (
        "cfi-flash",
        SECURE,
        [
            (
                "bank-width = <0x04>;\n\t\treg = <0x00 0x4000000",
                "bank-width = <0x03>;\n\t\treg = <0x00 0x4000000",
            ),
            (
                'secflash@0 {\n\t\tsecure-status = "okay";\n\t\tstatus = "disabled";\n\t\tbank-width = <0x04>;',
                'secflash@0 {\n\t\tsecure-status = "okay";\n\t\tstatus = "disabled";',
            ),
        ],
        [
            "/flash@4000000: bank-width: is 3, must be one of 1, 2, 4 [enum] (bindings/mtd/cfi-flash.yaml:",
            "/secflash@0: bank-width: required property is missing [required] (bindings/mtd/cfi-flash.yaml:",
        ],
    ),
    # fixed-clock
    (
        "fixed-clock",
        SMMU,
        [
            (
                'clock-output-names = "clk24mhz";\n\t\tclock-frequency = <0x16e3600>;',
                'clock-output-names = "clk24mhz", "clk48mhz";\n\t\tclock-accuracy = /bits/ 64 <100>;',
            ),
        ],
        [
            "/apb-pclk: clock-output-names: has 2 entries, at most 1 allowed [maxItems] (bindings/clock/fixed-clock.yaml:",
            "/apb-pclk: clock-accuracy: length 8 bytes, expected 4 (uint32) [type] (bindings/clock/fixed-clock.yaml:",
            "/apb-pclk: clock-frequency: required property is missing [required] (bindings/clock/fixed-clock.yaml:",
        ],
    ),
    # gpio-keys (and its child-binding)
    (
        "gpio-keys",
        SMMU,
        [
            (
                'compatible = "gpio-keys";\n\n\t\tpoweroff {\n\t\t\tgpios = <0x8005 0x03 0x00>;\n\t\t\tlinux,code = <0x74>;',
                'compatible = "gpio-keys";\n\t\tautorepeat = <1>;\n\n\t\tpower {\n\t\t\tgpios = <0x8005 0x03 0x00>;\n\t\t\tdebounce-interval = /bits/ 64 <5>;',
            ),
        ],
        [
            "/gpio-keys: autorepeat: length 4 bytes, expected none (flag) [type] (bindings/input/gpio-keys.yaml:",
            "/gpio-keys/power: node name 'power' does not match",
            "/gpio-keys/power: debounce-interval: length 8 bytes, expected 4 (uint32) [type] (bindings/input/gpio-keys.yaml:",
            "/gpio-keys/power: linux,code: required property is missing [required] (bindings/input/gpio-keys.yaml:",
        ],
    ),
    # gpio-poweroff
    (
        "gpio-poweroff",
        SECURE,
        [
            (
                'gpios = <0x8005 0x00 0x00>;\n\t\tcompatible = "gpio-poweroff";',
                'gpios = <0x8005 0x00 0x00 0x8005 0x02 0x00>;\n\t\ttimeout-ms = "3000";\n\t\tcompatible = "gpio-poweroff";',
            ),
        ],
        [
            "/gpio-poweroff: gpios: has 2 entries, at most 1 allowed [maxItems] (bindings/power/gpio-poweroff.yaml:",
            "/gpio-poweroff: timeout-ms: length 5 bytes, expected 4 (uint32) [type] (bindings/power/gpio-poweroff.yaml:",
        ],
    ),
    # gpio-restart
    (
        "gpio-restart",
        SECURE,
        [
            (
                'gpios = <0x8005 0x01 0x00>;\n\t\tcompatible = "gpio-restart";',
                'priority = <256>;\n\t\tcompatible = "gpio-restart";',
            ),
        ],
        [
            "/gpio-restart: priority: is 0x100, must be <= 0xff [maximum] (bindings/power/gpio-restart.yaml:",
            "/gpio-restart: gpios: required property is missing [required] (bindings/power/gpio-restart.yaml:",
        ],
    ),
    # pci-host-ecam-generic
    (
        "pci-host-ecam-generic",
        SMMU,
        [
            (
                "reg = <0x40 0x10000000 0x00 0x10000000>;",
                "reg = <0x40 0x10000000 0x00 0x10000000 0x00 0x3eff0000 0x00 0x10000>;",
            ),
            ("bus-range = <0x00 0xff>;", "bus-range = <0x00 0x100>;"),
            (
                'device_type = "pci";\n\t\tcompatible = "pci-host-ecam-generic";',
                'device_type = "pcie";\n\t\tcompatible = "pci-host-ecam-generic";',
            ),
        ],
        [
            "/pcie@10000000: reg: has 2 entries, at most 1 allowed [maxItems] (bindings/pci/pci-host-ecam-generic.yaml:",
            "/pcie@10000000: bus-range: item [1] is 0x100, must be <= 0xff [maximum] (bindings/pci/pci-host-ecam-generic.yaml:",
            "/pcie@10000000: device_type: is 'pcie', must be 'pci' [const] (bindings/pci/pci-host-ecam-generic.yaml:",
        ],
    ),
    # qemu,fw-cfg-mmio
    (
        "fw-cfg",
        SMMU,
        [
            ("dma-coherent;\n\t\treg = <0x00 0x9020000 0x00 0x18>;", "dma-coherent = <1>;"),
            ("fw-cfg@9020000 {", "firmware@9020000 {"),
        ],
        [
            "/firmware@9020000: node name 'firmware@9020000' does not match '^fw-cfg@[0-9a-f]+$' [node-name] (bindings/firmware/qemu,fw-cfg-mmio.yaml:",
            "/firmware@9020000: dma-coherent: length 4 bytes, expected none (flag) [type] (bindings/common/dma.yaml:",
            "/firmware@9020000: reg: required property is missing [required] (bindings/firmware/qemu,fw-cfg-mmio.yaml:",
        ],
    ),
    # qemu,platform
    (
        "qemu,platform",
        SMMU,
        [
            (
                'ranges = <0x00 0x00 0xc000000 0x2000000>;\n\t\t#address-cells = <0x01>;\n\t\t#size-cells = <0x01>;\n\t\tcompatible = "qemu,platform\\0simple-bus";',
                '#address-cells = <0x01>;\n\t\t#size-cells = <0x01>;\n\t\tcompatible = "qemu,platform";',
            ),
        ],
        [
            "/platform-bus@c000000: compatible: has 1 entries, at least 2 required [minItems] (bindings/bus/qemu,platform.yaml:",
            "/platform-bus@c000000: ranges: required property is missing [required] (bindings/bus/qemu,platform.yaml:",
        ],
    ),
    # virtio,mmio
    (
        "virtio,mmio",
        SMMU,
        [
            (
                "virtio_mmio@a000000 {\n\t\tdma-coherent;\n\t\tinterrupts = <0x00 0x10 0x01>;",
                "virtio-dev@a000000 {\n\t\tdma-coherent;\n\t\t#iommu-cells = <0x02>;",
            ),
        ],
        [
            "/virtio-dev@a000000: node name 'virtio-dev@a000000' does not match",
            "/virtio-dev@a000000: #iommu-cells: is 2, must be 1 [const] (bindings/virtio/virtio,mmio.yaml:",
            "/virtio-dev@a000000: interrupts: required property is missing [required] (bindings/virtio/virtio,mmio.yaml:",
        ],
    ),
]


@pytest.mark.parametrize(("name", "fixture", "edits", "expect"), CASES, ids=[c[0] for c in CASES])
def test_arm_binding_broken(
    bindings, tmp_path: Path, name: str, fixture: str, edits, expect: list[str]
) -> None:
    path = variant(tmp_path, fixture_dts(fixture), edits)
    check(findings(path, bindings), expect, path)
    r = CliRunner().invoke(validate_cmd, ["--strict", "-q", str(path)], catch_exceptions=False)
    assert r.exit_code == 1


EXTRA_CASES = [
    # GICv3 ppi-partitions (nested child-bindings)
    (
        "ppi-partitions",
        [("part1: interrupt-partition-1 { affinity = <&cpu1>; };", "part1: partition-1 { affinity; };")],
        [
            "/interrupt-controller@8000000/ppi-partitions/partition-1: node name 'partition-1' does not match '^interrupt-partition-[0-9]+$' [node-name]",
            "/interrupt-controller@8000000/ppi-partitions/partition-1: affinity: has 0 entries, at least 1 required [minItems] (bindings/interrupt-controller/arm,gic-v3.yaml:",
        ],
    ),
    (
        "gic-v3-cells",
        [("#interrupt-cells = <4>;", "#interrupt-cells = <4>; #msi-cells = <2>;")],
        [
            "/interrupt-controller@8000000: #msi-cells: is 2, must be 1 [const] (bindings/interrupt-controller/arm,gic-v3.yaml:",
        ],
    ),
    # PSCI power domains
    (
        "psci-domains",
        [
            (
                "pdc: power-domain-cluster { #power-domain-cells = <0>; };",
                "pdc: power-domain-cluster { #power-domain-cells = <1>; };",
            )
        ],
        [
            "/psci/power-domain-cpu0: power-domains: entry 0: 0 cells left, #power-domain-cells says 1 [cells] (bindings/firmware/arm,psci-1.0.yaml:",
            "/psci/power-domain-cluster: #power-domain-cells: is 1, must be 0 [const] (bindings/firmware/arm,psci-1.0.yaml:",
        ],
    ),
    # legacy flash partitions
    (
        "flash-partitions",
        [
            (
                'partition@100000 { label = "vars"; reg = <0x100000 0x40000>; };',
                'partition@100000 { label = "vars"; read-only = "yes"; };',
            )
        ],
        [
            "/flash@0/partition@100000: read-only: length 4 bytes, expected none (flag) [type] (bindings/mtd/cfi-flash.yaml:",
            "/flash@0/partition@100000: reg: required property is missing [required] (bindings/mtd/cfi-flash.yaml:",
        ],
    ),
    # the per-CPU SPI PMU
    (
        "pmu-affinity",
        [
            (
                "interrupt-affinity = <&cpu0>, <&cpu1>;",
                "interrupt-affinity = <&cpu0>, <&cpu1>, <&cpu0>, <&cpu1>, <&cpu0>, <&cpu1>, <&cpu0>, <&cpu1>, <&cpu0>;",
            )
        ],
        [
            "/pmu: interrupt-affinity: has 9 entries, at most 8 allowed [maxItems] (bindings/pmu/arm,armv8-pmuv3.yaml:",
        ],
    ),
    # the ppi-partitions node itself
    (
        "ppi-partitions-node",
        [("ppi-partitions {", "ppi-partitions { bogus = <1>;")],
        [
            "/interrupt-controller@8000000/ppi-partitions: bogus: property is not declared by the binding [additionalProperties] (bindings/interrupt-controller/arm,gic-v3.yaml:",
        ],
    ),
    # the armv7 timer needs arm,armv7-timer
    (
        "armv7-timer-compatible",
        [
            (
                'compatible = "arm,cortex-a15-timer", "arm,armv7-timer";',
                'compatible = "arm,armv7-timer", "arm,cortex-a15-timer", "arm,armv7-timer";',
            )
        ],
        [
            "/timer: compatible: has 3 entries, at most 2 allowed [maxItems] (bindings/timer/arm,armv7-timer.yaml:",
        ],
    ),
]


@pytest.mark.parametrize(("name", "edits", "expect"), EXTRA_CASES, ids=[c[0] for c in EXTRA_CASES])
def test_arm_extras_broken(bindings, tmp_path: Path, name: str, edits, expect: list[str]) -> None:
    path = variant(tmp_path, EXTRAS.read_text(), edits)
    check(findings(path, bindings), expect, path)
