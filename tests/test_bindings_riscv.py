"""The RISC-V bindings (issue 4, item 4): QEMU's riscv64 DTs validate, broken nodes are found."""

from __future__ import annotations

from pathlib import Path

import pytest

from dtvm.bindings import load_bindings, validate_tree
from dtvm.bindings.validate import match
from dtvm.cli.validate import load_input

ROOT = Path(__file__).resolve().parent.parent
QEMU_DT = ROOT / "fixtures" / "qemu-dt"
FIX = ROOT / "fixtures" / "bindings" / "riscv"

# the bindings this file tests (bindings/<class>/<first compatible>.yaml)
MINE = {
    "board/riscv-virtio.yaml",
    "board/sifive,hifive-unleashed-a00.yaml",
    "board/ucbbar,spike-bare-dev.yaml",
    "bus/simple-bus.yaml",
    "cache/sifive,fu540-c000-ccache.yaml",
    "clock/sifive,fu540-c000-prci.yaml",
    "cpu/riscv.yaml",
    "dma/sifive,fu540-c000-pdma.yaml",
    "firmware/ucb,htif0.yaml",
    "gpio/sifive,gpio0.yaml",
    "interrupt-controller/riscv,aclint-mswi.yaml",
    "interrupt-controller/riscv,aclint-sswi.yaml",
    "interrupt-controller/riscv,aplic.yaml",
    "interrupt-controller/riscv,cpu-intc.yaml",
    "interrupt-controller/riscv,imsics.yaml",
    "interrupt-controller/sifive,plic-1.0.0.yaml",
    "mmc/mmc-spi-slot.yaml",
    "mtd/jedec,spi-nor.yaml",
    "net/sifive,fu540-c000-gem.yaml",
    "nvmem/sifive,fu540-c000-otp.yaml",
    "pmu/riscv,pmu.yaml",
    "power/sifive,test1.yaml",
    "power/syscon-poweroff.yaml",
    "power/syscon-reboot.yaml",
    "pwm/sifive,pwm0.yaml",
    "rtc/google,goldfish-rtc.yaml",
    "serial/ns16550a.yaml",
    "serial/sifive,uart0.yaml",
    "spi/sifive,spi0.yaml",
    "timer/riscv,aclint-mtimer.yaml",
    "timer/sifive,clint0.yaml",
}
# written for the arm DTs, shared by the riscv ones (not this file's business)
SHARED = {"virtio,mmio", "fixed-clock", "pci-host-ecam-generic", "qemu,fw-cfg-mmio", "cfi-flash", "gpio-restart"}
RISCV_DTBS = sorted(QEMU_DT.glob("riscv64-*.dtb"))


@pytest.fixture(scope="module")
def bindings():
    return load_bindings([str(ROOT / "bindings")])


def test_bindings_exist(bindings) -> None:
    files = {b.file.removeprefix("bindings/") for b in bindings.bindings()}
    assert sorted(MINE - files) == []
    for key in ("riscv", "sifive,plic-1.0.0", "riscv,cpu-intc", "ns16550a", "simple-bus", "riscv-virtio"):
        assert bindings.by_compatible[key].file.removeprefix("bindings/") in MINE


@pytest.mark.parametrize("path", RISCV_DTBS, ids=lambda p: p.name)
def test_qemu_riscv_dt_validates(bindings, path: Path) -> None:
    dt = load_input(str(path))
    res = validate_tree(dt, bindings, str(path))
    assert [f.format() for f in res.findings] == []
    # only the shared (arm-written) compatibles may still lack a binding
    assert {u.compatible[0] for u in res.unchecked} <= SHARED
    # the root is checked by its board binding, not by core/root.yaml's select
    root = match(bindings, dt.root, dt.root.get_property("compatible").value[:-1].decode().split("\0"))
    assert root is not None and root.file.removeprefix("bindings/") in MINE


@pytest.mark.parametrize("path", sorted(FIX.glob("*.dts")), ids=lambda p: p.name)
def test_dts_copies_validate(bindings, path: Path) -> None:
    res = validate_tree(load_input(str(path)), bindings, str(path))
    assert [f.format() for f in res.findings] == []


def variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = (FIX / name).read_text()
    assert text.count(old) >= 1, old
    p = tmp_path / name
    p.write_text(text.replace(old, new, 1))
    return p


AC, AIA, SU, SP = "virt-aclint.dts", "virt-aia-aplic-imsic.dts", "sifive_u-default.dts", "spike-default.dts"

# (fixture, old text, new text, expected findings: each a substring of one finding, in order)
CASES = [
    # riscv-virtio root
    (AC, 'compatible = "riscv-virtio";', 'compatible = "riscv-virtio", "x";',
     ["/: compatible: has 2 entries, at most 1 allowed [maxItems] (bindings/board/riscv-virtio.yaml:"]),
    (AC, 'model = "riscv-virtio,qemu";', 'model = "qemu"; bogus;',
     ["/: model: 'qemu' does not match ^riscv-virtio [pattern] (bindings/board/riscv-virtio.yaml:",
      "/: bogus: property is not declared by the binding [additionalProperties] (bindings/board/riscv-virtio.yaml:"]),
    # sifive,hifive-unleashed-a00 root
    (SU, 'compatible = "sifive,hifive-unleashed-a00";', 'compatible = "sifive,hifive-unleashed-a00", "sifive,fu740";',
     ["/: compatible: item [1] is 'sifive,fu740', must be 'sifive,fu540-c000' [const] (bindings/board/sifive,hifive-unleashed-a00.yaml:"]),
    (SU, 'model = "SiFive HiFive Unleashed A00";', "",
     ["/: model: required property is missing [required] (bindings/common/riscv-root.yaml:"]),
    # ucbbar,spike-bare-dev root
    (SP, 'compatible = "ucbbar,spike-bare-dev";', 'compatible = "ucbbar,spike-bare-dev", "ucbbar,spike"; chassis-type = "simulator";',
     ["/: compatible: has 2 entries, at most 1 allowed [maxItems] (bindings/board/ucbbar,spike-bare-dev.yaml:",
      "/: chassis-type: is 'simulator', must be one of 'desktop'"]),
    # riscv cpu
    (AC, 'riscv,isa = "rv64imafdch_zicsr', 'riscv,isa = "rv64gc-zicsr',
     ["/cpus/cpu@0: riscv,isa: 'rv64gc-zicsr"]),
    (AC, 'mmu-type = "riscv,sv48";', 'mmu-type = "riscv,sv64"; riscv,isa-base = <1>;',
     ["/cpus/cpu@0: mmu-type: ",
      "/cpus/cpu@0: riscv,isa-base: not a NUL-terminated string (string) [type] (bindings/core/cpu.yaml:"]),
    (SU, 'riscv,isa = "rv64imac_zicsr_zifencei";', "",
     ["/cpus/cpu@0: riscv,isa: required property is missing [required] (bindings/cpu/riscv.yaml:"]),
    (AC, 'compatible = "riscv";\n\t\t\triscv,isa', 'compatible = "sifive,u54", "riscv", "x";\n\t\t\triscv,isa',
     ["/cpus/cpu@0: compatible: has 3 entries, at most 2 allowed [maxItems] (bindings/cpu/riscv.yaml:"]),
    # riscv,cpu-intc
    (AC, "#interrupt-cells = <0x01>;\n\t\t\t\tinterrupt-controller;", "#interrupt-cells = <0x01>; #address-cells = <1>;",
     ["/cpus/cpu@0/interrupt-controller: interrupt-controller: required property is missing [required] (bindings/interrupt-controller/riscv,cpu-intc.yaml:",
      "/cpus/cpu@0/interrupt-controller: #address-cells: is 1, must be 0 [const] (bindings/interrupt-controller/riscv,cpu-intc.yaml:"]),
    (SP, "interrupt-controller {\n", "intc {\n",
     ["/cpus/cpu@0/intc: node name 'intc' does not match '^interrupt-controller$' [node-name] (bindings/interrupt-controller/riscv,cpu-intc.yaml:"]),
    # sifive,plic-1.0.0
    (AC, "riscv,ndev = <0x60>;", "riscv,ndev = <0x400>;",
     ["/soc/plic@c000000: riscv,ndev: is 0x400, must be <= 0x3ff [maximum] (bindings/interrupt-controller/sifive,plic-1.0.0.yaml:"]),
    (SU, "riscv,ndev = <0x35>;", "",
     ["/soc/interrupt-controller@c000000: riscv,ndev: required property is missing [required] (bindings/interrupt-controller/sifive,plic-1.0.0.yaml:"]),
    (SU, "interrupts-extended = <0x04 0x0b 0x03 0x0b 0x03 0x09>;", "interrupts-extended = <0x04 0x0b 0x03>;",
     ["/soc/interrupt-controller@c000000: interrupts-extended: entry 1: 0 cells left, #interrupt-cells says 1 [cells]"]),
    # sifive,clint0
    (SP, 'compatible = "sifive,clint0\\0riscv,clint0";', 'compatible = "sifive,clint0\\0riscv,clint1";',
     ["/soc/clint@2000000: compatible: item [1] is 'riscv,clint1', must be one of 'sifive,clint0', 'riscv,clint0' [enum] (bindings/timer/sifive,clint0.yaml:"]),
    (SP, "interrupts-extended = <0x02 0x03 0x02 0x07>;\n\t\t\treg = <0x00 0x2000000 0x00 0x10000>;",
     "reg = <0x00 0x2000000 0x00 0x10000>; interrupts = <3>;",
     ["/soc/clint@2000000: interrupts-extended: required property is missing [required] (bindings/timer/sifive,clint0.yaml:",
      "/soc/clint@2000000: interrupts: property is not declared by the binding [additionalProperties] (bindings/timer/sifive,clint0.yaml:"]),
    # riscv,aclint-mswi
    (AC, "#interrupt-cells = <0x00>;\n\t\t\tinterrupt-controller;\n\t\t\tinterrupts-extended = <0x04 0x03",
     "#interrupt-cells = <0x01>;\n\t\t\tinterrupts-extended = <0x04 0x03",
     ["/soc/mswi@2000000: interrupt-controller: required property is missing [required] (bindings/interrupt-controller/riscv,aclint-mswi.yaml:",
      "/soc/mswi@2000000: #interrupt-cells: is 1, must be 0 [const] (bindings/interrupt-controller/riscv,aclint-mswi.yaml:"]),
    # riscv,aclint-sswi
    (AC, "sswi@2f00000 {", "ipi@2f00000 {",
     ["/soc/ipi@2f00000: node name 'ipi@2f00000' does not match '^(sswi|interrupt-controller)@[0-9a-f]+$' [node-name] (bindings/interrupt-controller/riscv,aclint-sswi.yaml:"]),
    (AC, "reg = <0x00 0x2f00000 0x00 0x4000>;", "reg = <0x00 0x2f00000 0x00 0x4000 0x00 0x2f04000 0x00 0x4000>;",
     ["/soc/sswi@2f00000: reg: has 2 entries, at most 1 allowed [maxItems] (bindings/interrupt-controller/riscv,aclint-sswi.yaml:"]),
    # riscv,aclint-mtimer
    (AC, 'compatible = "riscv,aclint-mtimer";', 'compatible = "riscv,aclint-mtimer"; reg-names = "mtimecmp";',
     ["/soc/mtimer@2004000: reg-names: item [0] is 'mtimecmp', must be 'mtime' [const] (bindings/timer/riscv,aclint-mtimer.yaml:"]),
    # riscv,aplic
    (AIA, "riscv,children = <0x08>;\n\t\t\triscv,num-sources = <0x60>;", "riscv,children = <0x08>;\n\t\t\triscv,num-sources = <0x400>; interrupts = <1 4>;",
     ["/soc/aplic@c000000: riscv,num-sources: is 0x400, must be <= 0x3ff [maximum] (bindings/interrupt-controller/riscv,aplic.yaml:",
      "/soc/aplic@c000000: interrupts: property is not declared by the binding [additionalProperties] (bindings/interrupt-controller/riscv,aplic.yaml:"]),
    (AIA, "riscv,delegate = <0x08 0x01 0x60>;", "riscv,delegate = <0x08 0x01>;",
     ["/soc/aplic@c000000: riscv,delegate: entry 0: 1 cells left, 2 says 2 [cells]"]),
    (AIA, "riscv,num-sources = <0x60>;\n\t\t\treg = <0x00 0xd000000", "reg = <0x00 0xd000000",
     ["/soc/aplic@d000000: riscv,num-sources: required property is missing [required] (bindings/interrupt-controller/riscv,aplic.yaml:"]),
    # riscv,imsics
    (AIA, "riscv,num-ids = <0xff>;\n\t\t\treg = <0x00 0x28000000", "riscv,num-ids = <0x10>;\n\t\t\treg = <0x00 0x28000000",
     ["/soc/imsics@28000000: riscv,num-ids: is 0x10, must be >= 0x3f [minimum] (bindings/interrupt-controller/riscv,imsics.yaml:"]),
    (AIA, "msi-controller;\n\t\t\tinterrupt-controller;\n\t\t\t#interrupt-cells = <0x00>;\n\t\t\tcompatible = \"riscv,imsics\";\n\t\t};\n\n\t\timsics@24000000",
     "interrupt-controller;\n\t\t\t#interrupt-cells = <0x00>;\n\t\t\triscv,num-guest-ids = <8>;\n\t\t\tcompatible = \"riscv,imsics\";\n\t\t};\n\n\t\timsics@24000000",
     ["/soc/imsics@28000000: msi-controller: required property is missing [required] (bindings/interrupt-controller/riscv,imsics.yaml:",
      "/soc/imsics@28000000: riscv,num-guest-ids: is 8, must be >= 0x3f [minimum] (bindings/interrupt-controller/riscv,imsics.yaml:"]),
    # riscv,pmu
    (AC, "riscv,event-to-mhpmcounters = <", "riscv,event-to-mhpmevent = <1 2>; riscv,event-to-mhpmcounters = <",
     ["/pmu: riscv,event-to-mhpmevent: has 2 entries, at least 3 required [minItems] (bindings/pmu/riscv,pmu.yaml:"]),
    (AC, "pmu {", "performance-counters {",
     ["/performance-counters: node name 'performance-counters' does not match '^pmu$' [node-name]"]),
    # syscon-poweroff
    (AC, "value = <0x5555>;\n\t\toffset = <0x00>;", "value = /bits/ 64 <0x5555>;",
     ["/poweroff: offset: required property is missing [required] (bindings/power/syscon-poweroff.yaml:",
      "/poweroff: value: length 8 bytes, expected 4 (uint32) [type] (bindings/power/syscon-poweroff.yaml:"]),
    # syscon-reboot
    (AC, "value = <0x7777>;", "value = <0x7777>; priority = <300>; delay-ms = <1>;",
     ["/reboot: priority: is 0x12c, must be <= 0xff [maximum] (bindings/power/syscon-reboot.yaml:",
      "/reboot: delay-ms: property is not declared by the binding [additionalProperties] (bindings/power/syscon-reboot.yaml:"]),
    # sifive,test1
    (AC, 'compatible = "sifive,test1\\0sifive,test0\\0syscon";', 'compatible = "sifive,test1";',
     ["/soc/test@100000: compatible: has 1 entries, at least 2 required [minItems] (bindings/power/sifive,test1.yaml:"]),
    # simple-bus
    (AC, "compatible = \"simple-bus\";\n\t\tranges;", "compatible = \"simple-bus\";",
     ["/soc: ranges: required property is missing [required] (bindings/bus/simple-bus.yaml:"]),
    (SP, "soc {", "chip {",
     ["/chip: node name 'chip' does not match "]),
    # google,goldfish-rtc
    (AC, "interrupts = <0x0b>;", "interrupts = <0x0b 0x0c>;",
     ["/soc/rtc@101000: interrupts: has 2 entries, at most 1 allowed [maxItems] (bindings/rtc/google,goldfish-rtc.yaml:"]),
    (AC, "rtc@101000 {", "clock@101000 {",
     ["/soc/clock@101000: node name 'clock@101000' does not match "]),
    # ns16550a
    (AC, 'clock-frequency = "\\08@";', 'clock-frequency = "\\08@"; reg-shift = <3>; reg-io-width = /bits/ 8 <4>;',
     ["/soc/serial@10000000: reg-shift: is 3, must be one of 0, 1, 2 [enum] (bindings/serial/ns16550a.yaml:",
      "/soc/serial@10000000: reg-io-width: length 1 bytes, expected 4 (uint32) [type] (bindings/serial/ns16550a.yaml:"]),
    (AC, "reg = <0x00 0x10000000 0x00 0x100>;", "",
     ["/soc/serial@10000000: reg: required property is missing [required] (bindings/serial/ns16550a.yaml:"]),
    # sifive,uart0
    (SU, "clocks = <0x05 0x03>;\n\t\t\treg = <0x00 0x10010000", "reg = <0x00 0x10010000",
     ["/soc/serial@10010000: clocks: required property is missing [required] (bindings/serial/sifive,uart0.yaml:"]),
    (SU, 'compatible = "sifive,uart0";', 'compatible = "sifive,uart0", "ns16550a";',
     ["/soc/serial@10010000: compatible: item [1] is 'ns16550a', must be 'sifive,uart0' [const] (bindings/serial/sifive,uart0.yaml:"]),
    # sifive,pwm0
    (SU, "#pwm-cells = <0x00>;", "#pwm-cells = <0x02>;",
     ["/soc/pwm@10021000: #pwm-cells: is 2, must be one of 0, 3 [enum] (bindings/pwm/sifive,pwm0.yaml:"]),
    (SU, "interrupts = <0x2e 0x2f 0x30 0x31>;", "interrupts = <0x2e 0x2f 0x30 0x31 0x32>;",
     ["/soc/pwm@10021000: interrupts: has 5 entries, at most 4 allowed [maxItems] (bindings/pwm/sifive,pwm0.yaml:"]),
    # sifive,fu540-c000-gem
    (SU, 'clock-names = "pclk\\0hclk";', 'clock-names = "pclk";',
     ["/soc/ethernet@10090000: clock-names: has 1 entries, at least 2 required [minItems] (bindings/net/sifive,fu540-c000-gem.yaml:"]),
    (SU, 'phy-mode = "gmii";', 'phy-mode = "gigabit";',
     ["/soc/ethernet@10090000: phy-mode: is 'gigabit', must be one of 'internal'"]),
    (SU, "local-mac-address = [52 54 00 12 34 56];", "local-mac-address = [52 54 00 12 34];",
     ["/soc/ethernet@10090000: local-mac-address: has 5 entries, at least 6 required [minItems]"]),
    (SU, "ethernet-phy@0 {\n\t\t\t\treg = <0x00>;", "phy@0 {\n\t\t\t\treg = <0x00>; max-speed = <1000>; foo;",
     ["/soc/ethernet@10090000/phy@0: node name 'phy@0' does not match '^ethernet-phy(@[0-9a-f]+)?$' [node-name] (bindings/net/sifive,fu540-c000-gem.yaml:",
      "/soc/ethernet@10090000/phy@0: foo: property is not declared by the binding [additionalProperties] (bindings/net/sifive,fu540-c000-gem.yaml:"]),
    # sifive,spi0
    (SU, "#size-cells = <0x00>;\n\n\t\t\tflash@0", "#size-cells = <0x01>;\n\n\t\t\tflash@0",
     ["/soc/spi@10040000: #size-cells: is 1, must be 0 [const] (bindings/common/riscv-spi-controller.yaml:",
      "/soc/spi@10040000/flash@0: reg: 1 cells is not a multiple of 2 (#address-cells = 1, #size-cells = 1 in the parent) [cells]"]),
    (SU, 'compatible = "sifive,spi0";\n\t\t\treg = <0x00 0x10040000 0x00 0x1000>;', 'compatible = "sifive,spi0";\n\t\t\treg = <0x00 0x10040000 0x00 0x1000>; sifive,fifo-depth = <16>;',
     ["/soc/spi@10040000: sifive,fifo-depth: is 0x10, must be one of 8 [enum] (bindings/spi/sifive,spi0.yaml:"]),
    # jedec,spi-nor
    (SU, "spi-tx-bus-width = <0x04>;", "spi-tx-bus-width = <0x03>; m25p,slow-read;",
     ["/soc/spi@10040000/flash@0: spi-tx-bus-width: is 3, must be one of 0, 1, 2, 4, 8 [enum] (bindings/common/riscv-spi-peripheral.yaml:",
      "/soc/spi@10040000/flash@0: m25p,slow-read: property is not declared by the binding [additionalProperties] (bindings/mtd/jedec,spi-nor.yaml:"]),
    (SU, "m25p,fast-read;", "m25p,fast-read = <1>;",
     ["/soc/spi@10040000/flash@0: m25p,fast-read: length 4 bytes, expected none (flag) [type] (bindings/mtd/jedec,spi-nor.yaml:"]),
    # mmc-spi-slot
    (SU, "spi-max-frequency = <0x1312d00>;", "",
     ["/soc/spi@10050000/mmc@0: spi-max-frequency: required property is missing [required] (bindings/mmc/mmc-spi-slot.yaml:"]),
    (SU, "voltage-ranges = <0xce4 0xce4>;\n\t\t\t\tdisable-wp;", "voltage-ranges = <0xce4>;\n\t\t\t\tdisable-wp = \"yes\";",
     ["/soc/spi@10050000/mmc@0: voltage-ranges: has 1 entries, at least 2 required [minItems] (bindings/mmc/mmc-spi-slot.yaml:",
      "/soc/spi@10050000/mmc@0: disable-wp: length 4 bytes, expected none (flag) [type] (bindings/mmc/mmc-spi-slot.yaml:"]),
    # sifive,fu540-c000-ccache
    (SU, "cache-level = <0x02>;", "cache-level = <0x03>;",
     ["/soc/cache-controller@2010000: cache-level: is 3, must be 2 [const] (bindings/cache/sifive,fu540-c000-ccache.yaml:"]),
    (SU, "cache-unified;\n", "",
     ["/soc/cache-controller@2010000: cache-unified: required property is missing [required] (bindings/cache/sifive,fu540-c000-ccache.yaml:"]),
    # sifive,fu540-c000-pdma
    (SU, "#dma-cells = <0x01>;", "#dma-cells = <0x02>; dma-channels = <5>;",
     ["/soc/dma@3000000: #dma-cells: is 2, must be 1 [const] (bindings/dma/sifive,fu540-c000-pdma.yaml:",
      "/soc/dma@3000000: dma-channels: is 5, must be <= 4 [maximum] (bindings/dma/sifive,fu540-c000-pdma.yaml:"]),
    # sifive,gpio0
    (SU, "gpio-controller;\n\t\t\t#gpio-cells = <0x02>;", "#gpio-cells = <0x02>; ngpios = <33>;",
     ["/soc/gpio@10060000: gpio-controller: required property is missing [required] (bindings/gpio/sifive,gpio0.yaml:",
      "/soc/gpio@10060000: ngpios: is 0x21, must be <= 0x20 [maximum] (bindings/gpio/sifive,gpio0.yaml:"]),
    # sifive,fu540-c000-prci
    (SU, "clocks = <0x01 0x02>;\n\t\t\t#clock-cells = <0x01>;", "clocks = <0x01>;\n\t\t\t#clock-cells = <0x01>; clock-names = \"rtcclk\", \"hfclk\";",
     ["/soc/clock-controller@10000000: clocks: has 1 entries, at least 2 required [minItems] (bindings/clock/sifive,fu540-c000-prci.yaml:",
      "/soc/clock-controller@10000000: clock-names: item [0] is 'rtcclk', must be 'hfclk' [const] (bindings/clock/sifive,fu540-c000-prci.yaml:"]),
    # sifive,fu540-c000-otp
    (SU, "fuse-count = <0x1000>;", "fuse-count = <0x00>;",
     ["/soc/otp@10070000: fuse-count: is 0, must be >= 1 [minimum] (bindings/nvmem/sifive,fu540-c000-otp.yaml:"]),
    (SU, "fuse-count = <0x1000>;", "",
     ["/soc/otp@10070000: fuse-count: required property is missing [required] (bindings/nvmem/sifive,fu540-c000-otp.yaml:"]),
    # ucb,htif0
    (SP, 'compatible = "ucb,htif0";', 'compatible = "ucb,htif0"; tohost = <0x1000>;',
     ["/htif: tohost: property is not declared by the binding [additionalProperties] (bindings/firmware/ucb,htif0.yaml:"]),
    (SP, "htif {", "host {",
     ["/host: node name 'host' does not match '^htif(@[0-9a-f]+)?$' [node-name] (bindings/firmware/ucb,htif0.yaml:"]),
]


@pytest.mark.parametrize(("name", "old", "new", "expect"), CASES)
def test_riscv_binding_broken(bindings, tmp_path: Path, name: str, old: str, new: str, expect: list[str]) -> None:
    path = variant(tmp_path, name, old, new)
    got = [f.format() for f in validate_tree(load_input(str(path)), bindings, str(path)).findings]
    assert len(got) == len(expect), "\n".join(got)
    for line, want in zip(got, expect, strict=True):
        assert want in line, f"{want!r} not in {line!r}"
        assert line.startswith(f"{path}:")


def test_every_binding_has_a_broken_case() -> None:
    covered = set()
    for _name, _old, _new, expect in CASES:
        for want in expect:
            if "(bindings/" in want:
                covered.add(want.split("(bindings/", 1)[1].split(":", 1)[0])
    assert sorted(b for b in MINE if b not in covered) == []
