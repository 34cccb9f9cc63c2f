"""``dtvm diff``: same hardware for the guest or not, and what differs, in words.

Description pairs come from the real ``dtvm qemu2dtb`` against QEMU 7.2 (each run starts QEMU
paused and kills it): identical command lines, a changed MAC, a moved device, a dropped device,
another machine version, an added property, aarch64 ``virt`` pairs.  Phandle renumbering is
checked against an oracle that does not depend on dtvm: QEMU's own ``phandle-start`` (the cells
where two dumps differ are the phandle cells), and dtc-style compiles of one source in two node
orders.  The tests that need no QEMU use ``fixtures/diff/`` and edit the trees themselves.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dtvm.bindings import load_bindings
from dtvm.cli.group import cli
from dtvm.dt.dtb import read_dtb, write_dtb
from dtvm.dt.tree import DeviceTree, Node, Property
from dtvm.vm.diff import DiffResult, compare, read_description, render_json, render_text

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures" / "diff"
X86 = ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults"]
ARM = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-nodefaults"]


def needs(binary: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(binary) is None, reason=f"{binary} is not installed")


@pytest.fixture(scope="module")
def bindings() -> Any:
    return load_bindings(cache=True)


class Describer:
    """Runs the real ``dtvm qemu2dtb -o`` once per distinct command line (module-wide cache)."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.done: dict[tuple[str, ...], Path] = {}

    def __call__(self, argv: list[str], fresh: bool = False) -> Path:
        key = tuple(argv)
        if key in self.done and not fresh:
            return self.done[key]
        out = self.where / f"vm{len(list(self.where.glob('vm*.dtb')))}.dtb"
        proc = subprocess.run(
            [sys.executable, "-m", "dtvm", "qemu2dtb", "-o", str(out), "--", *argv],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        self.done[key] = out
        return out


@pytest.fixture(scope="module")
def describe(tmp_path_factory: pytest.TempPathFactory) -> Describer:
    return Describer(tmp_path_factory.mktemp("diff-vms"))


def backend_of(dtb: Path) -> Path:
    return dtb.with_name(dtb.name[: -len(".dtb")] + ".backend.dtbo")


def run_diff(*args: str) -> tuple[int, str, str]:
    """``dtvm diff`` in a real process: exit status, stdout, stderr."""
    proc = subprocess.run([sys.executable, "-m", "dtvm", "diff", *args], capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def invoke(*args: str) -> tuple[int, str]:
    """``dtvm diff`` in process (fast): exit status and stdout."""
    res = CliRunner().invoke(cli, ["diff", *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.output


def diff_files(a: Path, b: Path, bindings: Any, ba: Path | None = None, bb: Path | None = None) -> DiffResult:
    ta, tb = read_description(str(a)), read_description(str(b))
    oa = read_description(str(ba), overlay=True) if ba else None
    ob = read_description(str(bb), overlay=True) if bb else None
    return compare(ta, tb, oa, ob, bindings=bindings)


def texts(result: DiffResult) -> list[str]:
    return [e.text for e in result.guest]


def load(path: Path) -> DeviceTree:
    return read_dtb(path.read_bytes(), str(path))


def save(dt: DeviceTree, path: Path) -> Path:
    path.write_bytes(write_dtb(dt))
    return path


# ---------------------------------------------------------------------------------------------
# against QEMU: pairs from real qemu2dtb runs


@needs("qemu-system-x86_64")
def test_identical_command_lines_are_the_same(describe: Describer, tmp_path: Path) -> None:
    argv = [*X86, "-nic", "user,model=virtio-net-pci", "-drive", "file=/dev/null,format=raw,if=virtio",
            "-netdev", "user,id=u1", "-device", "e1000,netdev=u1"]
    a = describe(argv)
    b = describe(argv, fresh=True)
    assert a != b
    code, out, err = run_diff(str(a), str(b), "-b", str(backend_of(a)), "-b", str(backend_of(b)))
    assert (code, err) == (0, ""), out
    assert out == f"{a} and {b}: the same hardware for the guest\nback-ends: no differences\n"


@needs("qemu-system-x86_64")
def test_changed_mac_is_caught(describe: Describer, bindings: Any) -> None:
    a = describe([*X86, "-device", "virtio-net-pci,mac=52:54:00:00:00:01", "-device", "e1000,addr=5"])
    b = describe([*X86, "-device", "virtio-net-pci,mac=52:54:00:00:00:02", "-device", "e1000,addr=5"])
    result = diff_files(a, b, bindings)
    assert texts(result) == [
        "/pcie/ethernet@1/virtio (virtio-net-device): local-mac-address 52:54:00:00:00:01 -> 52:54:00:00:00:02"
    ]
    entry = render_json(result)["guest"][0]
    assert entry["kind"] == "property-changed"
    assert (entry["path"], entry["property"], entry["old"], entry["new"]) == (
        "/pcie/ethernet@1/virtio", "local-mac-address", "52:54:00:00:00:01", "52:54:00:00:00:02")
    code, out, _ = run_diff(str(a), str(b))
    assert code == 1 and "different hardware for the guest (1 difference)" in out


@needs("qemu-system-x86_64")
def test_device_moved_to_another_slot(describe: Describer, bindings: Any) -> None:
    a = describe([*X86, "-device", "virtio-net-pci,mac=52:54:00:00:00:01", "-device", "e1000,addr=5"])
    b = describe([*X86, "-device", "virtio-net-pci,mac=52:54:00:00:00:01,addr=7", "-device", "e1000,addr=5"])
    result = diff_files(a, b, bindings)
    assert texts(result) == ["device virtio-net-pci moved from /pcie/ethernet@1 to /pcie/ethernet@7"]
    assert render_json(result)["guest"][0] == {
        "kind": "device-moved", "from": "/pcie/ethernet@1", "to": "/pcie/ethernet@7",
        "compatible": ["qemu,virtio-net-pci", "pci1af4,1000"],
        "text": "device virtio-net-pci moved from /pcie/ethernet@1 to /pcie/ethernet@7",
    }


@needs("qemu-system-x86_64")
def test_moved_and_changed_device_is_found_by_its_mac(describe: Describer, bindings: Any) -> None:
    a = describe([*X86, "-device", "virtio-net-pci,mac=52:54:00:00:00:01", "-device", "e1000,addr=5",
                  "-device", "e1000,addr=6"])
    b = describe([*X86, "-device", "virtio-net-pci,mac=52:54:00:00:00:01,addr=7,mq=on", "-device", "e1000,addr=5",
                  "-device", "e1000,addr=6"])
    assert texts(diff_files(a, b, bindings)) == [
        "device virtio-net-pci moved from /pcie/ethernet@1 to /pcie/ethernet@7",
        '/pcie/ethernet@7/virtio (virtio-net-device): qemu,mq added = "on"',
    ]


@needs("qemu-system-x86_64")
def test_dropped_device(describe: Describer, bindings: Any) -> None:
    a = describe([*X86, "-device", "virtio-net-pci,mac=52:54:00:00:00:01", "-device", "e1000,addr=5"])
    b = describe([*X86, "-device", "virtio-net-pci,mac=52:54:00:00:00:01"])
    result = diff_files(a, b, bindings)
    assert texts(result) == ["device removed: /pcie/ethernet@5 (e1000)"]
    assert render_json(result)["guest"][0]["compatible"] == ["qemu,e1000", "pci8086,100e"]
    assert texts(diff_files(b, a, bindings)) == ["device added: /pcie/ethernet@5 (e1000)"]


@needs("qemu-system-x86_64")
def test_another_device_in_the_same_slot_is_removed_and_added(describe: Describer, bindings: Any) -> None:
    a = describe([*X86, "-device", "e1000,addr=5,mac=52:54:00:00:00:05"])
    b = describe([*X86, "-device", "rtl8139,addr=5,mac=52:54:00:00:00:05"])
    assert texts(diff_files(a, b, bindings)) == [
        "device removed: /pcie/ethernet@5 (e1000)",
        "device added: /pcie/ethernet@5 (rtl8139)",
    ]


@needs("qemu-system-x86_64")
def test_changed_machine_version(describe: Describer, bindings: Any) -> None:
    tail = ["-nodefaults", "-device", "virtio-net-pci,mac=52:54:00:00:00:01", "-device", "e1000,addr=5"]
    a = describe(["qemu-system-x86_64", "-M", "pc-q35-7.2", *tail])
    b = describe(["qemu-system-x86_64", "-M", "pc-q35-7.1", *tail])
    result = diff_files(a, b, bindings)
    found = texts(result)
    assert found[0] == "machine type pc-q35-7.2 -> pc-q35-7.1"
    # 7.1's compat properties are real differences for the guest; the root's compatible and
    # model only repeat the machine type
    assert not any(t.startswith("/ ") or t.startswith("/:") for t in found)
    assert render_json(result)["guest"][0] == {
        "kind": "machine-changed", "property": "machine", "old": "pc-q35-7.2", "new": "pc-q35-7.1",
        "text": "machine type pc-q35-7.2 -> pc-q35-7.1",
    }
    code, _, _ = run_diff(str(a), str(b))
    assert code == 1


@needs("qemu-system-x86_64")
def test_added_property(describe: Describer, bindings: Any) -> None:
    a = describe([*X86, "-device", "virtio-net-pci,mac=52:54:00:00:00:01", "-device", "e1000,addr=5"])
    b = describe([*X86, "-device", "virtio-net-pci,mac=52:54:00:00:00:01,mq=on", "-device", "e1000,addr=5"])
    result = diff_files(a, b, bindings)
    assert texts(result) == ['/pcie/ethernet@1/virtio (virtio-net-device): qemu,mq added = "on"']
    assert texts(diff_files(b, a, bindings)) == ['/pcie/ethernet@1/virtio (virtio-net-device): qemu,mq removed (was "on")']


@needs("qemu-system-x86_64")
def test_machine_cpus_and_memory_in_words(describe: Describer, bindings: Any) -> None:
    a = describe([*X86, "-device", "e1000,addr=5"])
    b = describe([*X86, "-smp", "2", "-m", "256", "-device", "e1000,addr=5"])
    found = texts(diff_files(a, b, bindings))
    assert found[:3] == ["CPUs 1 -> 2", "cores 1 -> 2", "memory 128 MiB -> 256 MiB"]
    assert "device added: /cpus/cpu@1 (qemu64)" in found


@needs("qemu-system-x86_64")
def test_backend_differences_are_listed_but_do_not_count(describe: Describer) -> None:
    a = describe([*X86, "-drive", "file=/dev/null,format=raw,if=virtio", "-netdev", "user,id=u1",
                  "-device", "e1000,netdev=u1"])
    b = describe([*X86, "-drive", "file=/dev/zero,format=raw,if=virtio", "-netdev", "user,id=u2",
                  "-device", "e1000,netdev=u2"])
    code, out, _ = run_diff(str(a), str(b), "-b", str(backend_of(a)), "-b", str(backend_of(b)))
    assert code == 0
    assert out.splitlines() == [
        f"{a} and {b}: the same hardware for the guest",
        "back-end differences (host side; they do not change the exit status):",
        "  /pcie/ethernet@1: qemu,netdev u1 -> u2",
        "  drive virtio0: file /dev/null -> /dev/zero",
        "  netdev id u1 -> u2",
    ]
    code, out, _ = run_diff(str(a), str(b), "-b", str(backend_of(a)), "-b", str(backend_of(b)), "--guest-only")
    assert (code, out) == (0, f"{a} and {b}: the same hardware for the guest\n")
    code, out, _ = run_diff(str(a), str(b), "-b", str(backend_of(a)), "-b", str(backend_of(b)), "--format", "json")
    doc = json.loads(out)
    assert doc["same"] is True and doc["guest"] == []
    assert [e["kind"] for e in doc["backend"]] == ["device-backend-changed", "backend-changed", "backend-changed"]
    assert doc["backend"][1]["property"] == "file" and doc["backend"][1]["new"] == "/dev/zero"


@needs("qemu-system-aarch64")
def test_aarch64_virt_pairs(describe: Describer, bindings: Any) -> None:
    devices = ["-device", "virtio-net-pci,mac=52:54:00:00:00:01", "-device", "virtio-rng-device"]
    a = describe([*ARM, *devices])
    renumbered = describe(["qemu-system-aarch64", "-M", "virt,phandle-start=0x1234", "-cpu", "cortex-a57",
                           "-nodefaults", *devices])
    assert a.read_bytes() != renumbered.read_bytes()
    assert diff_files(a, renumbered, bindings).same
    code, _, _ = run_diff(str(a), str(renumbered))
    assert code == 0

    bigger = describe([*ARM, "-smp", "2", "-m", "256", "-device", "virtio-net-pci,mac=52:54:00:00:00:02",
                       "-device", "virtio-rng-device"])
    found = texts(diff_files(a, bigger, bindings))
    assert found[:2] == ["CPUs 1 -> 2", "memory 128 MiB -> 256 MiB"]
    assert "device added: /cpus/cpu@1 (arm,cortex-a57)" in found
    assert "/memory@40000000: reg <0x0 0x40000000 0x0 0x8000000> -> <0x0 0x40000000 0x0 0x10000000>" in found
    assert ("/pcie@10000000/ethernet@1/virtio (virtio-net-device): local-mac-address "
            "52:54:00:00:00:01 -> 52:54:00:00:00:02") in found

    gic3 = describe(["qemu-system-aarch64", "-M", "virt,gic-version=3", "-cpu", "cortex-a57", "-nodefaults", *devices])
    found = texts(diff_files(a, gic3, bindings))
    assert found[:3] == [
        "machine option gic-version: 2 -> 3",
        "device removed: /intc@8000000 (arm,cortex-a15-gic)",
        "device added: /intc@8000000 (arm,gic-v3)",
    ]
    # a reference is shown as the path it points to; interrupt-parent still names /intc@8000000
    assert ("/pcie@10000000 (pci-host-ecam-generic): msi-map <0x0 &/intc@8000000/v2m@8020000 0x0 0x10000> -> "
            "<0x0 &/intc@8000000/its@8080000 0x0 0x10000>") in found
    assert not any("interrupt-parent" in t for t in found)


@needs("qemu-system-aarch64")
def test_virtio_mmio_device_moved_between_transports(describe: Describer, bindings: Any) -> None:
    a = describe([*ARM, "-device", "virtio-rng-device", "-device", "virtio-balloon-device"])
    b = describe([*ARM, "-device", "virtio-balloon-device", "-device", "virtio-rng-device"])
    found = texts(diff_files(a, b, bindings))
    assert len(found) == 2 and all(" moved from /virtio_mmio@" in t for t in found), found


@needs("qemu-system-ppc64")
def test_pseries_pci_function_without_compatible_moves(describe: Describer, bindings: Any) -> None:
    """QEMU's pseries DT has PCI function nodes without a compatible: dtvm's qemu,driver names
    the device, and its MAC (on the virtio child) finds it at its new slot."""
    ppc = ["qemu-system-ppc64", "-M", "pseries", "-nodefaults"]
    a = describe([*ppc, "-device", "virtio-net-pci,mac=52:54:00:00:00:01"])
    b = describe([*ppc, "-device", "virtio-net-pci,mac=52:54:00:00:00:01,addr=3"])
    assert texts(diff_files(a, b, bindings)) == [
        "device virtio-net-pci moved from /pci@800000020000000/ethernet@0 to /pci@800000020000000/ethernet@3",
        '/pci@800000020000000/ethernet@3 (virtio-net-pci): ibm,loc-code "qemu_virtio-net-pci:0000:00:00.0" -> '
        '"qemu_virtio-net-pci:0000:00:03.0"',
        "/pci@800000020000000/ethernet@3 (virtio-net-pci): ibm,my-drc-index <0x40000000> -> <0x40000018>",
    ]


# ---------------------------------------------------------------------------------------------
# phandle renumbering, with oracles independent of dtvm


def _cells(prop: Property) -> list[int] | None:
    n, rem = divmod(len(prop.value), 4)
    return None if rem else list(struct.unpack(f">{n}I", prop.value))


def _pairs(a: Node, b: Node) -> list[tuple[Node, Node]]:
    out, stack = [], [(a, b)]
    while stack:
        x, y = stack.pop()
        out.append((x, y))
        for c in x.nodes:
            stack.append((c, y.get_child(c.name)))
    return out


def phandle_cells_by_qemu(a: DeviceTree, b: DeviceTree) -> dict[tuple[str, str], list[int]]:
    """(path, property) -> cell indexes that hold phandles: where QEMU's two numberings differ."""
    out: dict[tuple[str, str], list[int]] = {}
    for x, y in _pairs(a.root, b.root):
        for p in x.properties:
            q = y.get_property(p.name)
            assert q is not None and len(q.value) == len(p.value), (x.path, p.name)
            cp, cq = _cells(p), _cells(q)
            if cp is not None and cq is not None and cp != cq:
                out[(x.path, p.name)] = [i for i, (u, v) in enumerate(zip(cp, cq, strict=True)) if u != v]
            elif cp is None:
                assert p.value == q.value
    return out


def renumber(dt: DeviceTree, where: dict[tuple[str, str], list[int]], seed: int) -> dict[int, int]:
    """Give every phandle a new number (a shuffled, sparse set), rewriting the known cells."""
    old = sorted({c[i] for (path, name), idx in where.items() for i in idx
                  for c in [_cells(dt.get_node(path)[name]) or []]})
    new = random.Random(seed).sample(range(0x10, 0x10 + 64 * len(old)), len(old))
    mapping = dict(zip(old, new, strict=True))
    for (path, name), idx in where.items():
        node = dt.get_node(path)
        assert node is not None
        cells = _cells(node[name]) or []
        for i in idx:
            cells[i] = mapping[cells[i]]
        node.set_property(name, struct.pack(f">{len(cells)}I", *cells))
    return mapping


def test_phandle_renumbering_is_ignored(tmp_path: Path, bindings: Any) -> None:
    base = load(FIX / "virt.dtb")
    where = phandle_cells_by_qemu(base, load(FIX / "virt-phandle-start.dtb"))
    assert ("/", "interrupt-parent") in where and ("/pcie@10000000", "interrupt-map") in where
    assert ("/gpio-keys/poweroff", "gpios") in where and ("/intc@8000000", "phandle") in where
    for seed in range(3):
        dt = load(FIX / "virt.dtb")
        mapping = renumber(dt, where, seed)
        assert any(k != v for k, v in mapping.items())
        out = save(dt, tmp_path / f"renumbered{seed}.dtb")
        assert out.read_bytes() != (FIX / "virt.dtb").read_bytes()
        assert diff_files(FIX / "virt.dtb", out, bindings).same
        # the standard phandle-bearing properties are known without any binding, too
        assert compare(base, load(out), bindings=None).same
        code, text = invoke(str(FIX / "virt.dtb"), str(out))
        assert code == 0, text


def test_a_reference_to_another_node_is_a_difference(tmp_path: Path, bindings: Any) -> None:
    base = load(FIX / "virt.dtb")
    where = phandle_cells_by_qemu(base, load(FIX / "virt-phandle-start.dtb"))
    dt = load(FIX / "virt.dtb")
    mapping = renumber(dt, where, 1)
    clock = dt.get_node("/apb-pclk")
    assert clock is not None
    dt.root.set_property("interrupt-parent", clock["phandle"].value)
    out = save(dt, tmp_path / "wrong.dtb")
    assert texts(diff_files(FIX / "virt.dtb", out, bindings)) == [
        "/: interrupt-parent <&/intc@8000000> -> <&/apb-pclk>"
    ]
    assert mapping  # the numbers themselves were all changed, and only this reference is reported


DTS_APLIC = """/dts-v1/;
/ {
	#address-cells = <2>;
	#size-cells = <2>;
	cpus {
		#address-cells = <1>;
		#size-cells = <0>;
		cpu@0 {
			device_type = "cpu";
			reg = <0>;
			compatible = "riscv";
			intc0: interrupt-controller {
				compatible = "riscv,cpu-intc";
				interrupt-controller;
				#interrupt-cells = <1>;
			};
		};
	};
%s
};
"""
APLIC_NODES = [
    """	aplic_m: interrupt-controller@c000000 {
		compatible = "riscv,aplic";
		reg = <0 0xc000000 0 0x4000>;
		interrupt-controller;
		#interrupt-cells = <2>;
		riscv,num-sources = <96>;
		interrupts-extended = <&intc0 11>;
		riscv,children = <&aplic_s>;
		riscv,delegate = <&aplic_s 1 96>;
	};""",
    """	aplic_s: interrupt-controller@d000000 {
		compatible = "riscv,aplic";
		reg = <0 0xd000000 0 0x4000>;
		interrupt-controller;
		#interrupt-cells = <2>;
		riscv,num-sources = <96>;
		interrupts-extended = <&intc0 9>;
	};""",
    """	serial@10000000 {
		compatible = "ns16550a";
		reg = <0 0x10000000 0 0x100>;
		interrupt-parent = <&aplic_s>;
		interrupts = <10 4>;
	};""",
]


def compile_dts(text: str, path: Path) -> Path:
    from dtvm.cli.dtc import run

    src = path.with_suffix(".dts")
    src.write_text(text)
    assert run(["-q", "-I", "dts", "-O", "dtb", "-o", str(path), str(src)]) == 0
    return path


def test_binding_typed_phandles_and_node_order(tmp_path: Path, bindings: Any) -> None:
    """riscv,delegate is a phandle-array only because the aplic binding says so."""
    a = compile_dts(DTS_APLIC % "\n".join(APLIC_NODES), tmp_path / "a.dtb")
    b = compile_dts(DTS_APLIC % "\n".join(reversed(APLIC_NODES)), tmp_path / "b.dtb")
    ta, tb = load(a), load(b)
    assert ta.get_node("/interrupt-controller@d000000")["phandle"].value != tb.get_node(
        "/interrupt-controller@d000000")["phandle"].value
    assert compare(ta, tb, bindings=bindings).same
    without = texts(compare(ta, tb, bindings=None))
    assert without and all("riscv," in t for t in without), without
    code, _ = invoke(str(a), str(b))
    assert code == 0


# ---------------------------------------------------------------------------------------------
# what is ignored


def test_node_and_property_order_are_ignored(tmp_path: Path, bindings: Any) -> None:
    dt = load(FIX / "q35.dtb")
    for node in dt.root.walk():
        node.children.reverse()
        node.props.reverse()
    out = save(dt, tmp_path / "reversed.dtb")
    assert out.read_bytes() != (FIX / "q35.dtb").read_bytes()
    assert diff_files(FIX / "q35.dtb", out, bindings).same


def test_backend_facts_seeds_and_label_nodes_are_ignored(tmp_path: Path, bindings: Any) -> None:
    dt = load(FIX / "virt.dtb")
    chosen = dt.get_node("/chosen")
    assert chosen is not None
    chosen.set_property("rng-seed", bytes(range(32)))
    chosen.set_property("kaslr-seed", b"\1" * 8)
    nic = dt.get_node("/pcie@10000000/ethernet@1")
    assert nic is not None
    nic.set_property("qemu,id", b"nic0\0")
    nic.set_property("qemu,hotplugged", b"")
    nic.set_property("qemu,netdev", b"#net042\0")
    symbols = dt.root.add_child(Node("__symbols__"))
    symbols.set_property("nic", b"/pcie@10000000/ethernet@1\0")
    backends = dt.root.add_child(Node("qemu-backends"))
    backends.set_property("compatible", b"qemu,backends\0")
    out = save(dt, tmp_path / "noise.dtb")
    assert diff_files(FIX / "virt.dtb", out, bindings).same
    # a seed elsewhere than /chosen is not random noise
    node = dt.get_node("/pl061@9030000")
    assert node is not None
    node.set_property("rng-seed", b"\1\2\3\4")
    out = save(dt, tmp_path / "seed.dtb")
    assert texts(diff_files(FIX / "virt.dtb", out, bindings)) == [
        "/pl061@9030000 (arm,pl061): rng-seed added = <0x1020304>"
    ]


def test_merged_description_is_the_same_guest(tmp_path: Path, bindings: Any) -> None:
    """``fdtoverlay`` puts the back-end facts into the guest tree: still the same guest, and the
    back-ends compare with those of the separate overlay."""
    from dtvm.cli.fdtoverlay import run

    merged = tmp_path / "merged.dtb"
    assert run(["-i", str(FIX / "q35.dtb"), "-o", str(merged), str(FIX / "q35.backend.dtbo")]) == 0
    result = compare(load(FIX / "q35.dtb"), load(merged), read_description(str(FIX / "q35.backend.dtbo"), overlay=True),
                     None, bindings=bindings)
    assert result.same and result.backend == []
    code, out = invoke(str(FIX / "q35.dtb"), str(merged))
    assert code == 0 and "back-end" not in out


def test_generated_backend_ids_are_not_differences(tmp_path: Path, bindings: Any) -> None:
    text = (FIX / "q35.backend.dtbo").read_bytes()
    overlay = load(FIX / "q35.backend.dtbo")
    generated = sorted({v for node in overlay.root.walk() for p in node.properties
                        for v in [p.value.rstrip(b"\0")] if v.startswith((b"#net", b"#block"))})
    assert len(generated) == 2, generated  # one generated netdev id, one block node-name
    for node in overlay.root.walk():
        for p in node.properties:
            if p.value.rstrip(b"\0") in generated:
                p.value = p.value.replace(b"0", b"7").replace(b"9", b"1")
    other = save(overlay, tmp_path / "other.backend.dtbo")
    assert other.read_bytes() != text
    result = diff_files(FIX / "q35.dtb", FIX / "q35.dtb", bindings, FIX / "q35.backend.dtbo", other)
    assert result.same and result.backend == []
    # a real host change is listed, and still does not count
    overlay2 = load(other)
    drive = next(n for n in overlay2.root.walk() if n.name == "drive-0")
    drive.set_property("file", b"/srv/images/vm.img\0")
    changed = save(overlay2, tmp_path / "changed.backend.dtbo")
    code, out = invoke(str(FIX / "q35.dtb"), str(FIX / "q35.dtb"), "-b", str(FIX / "q35.backend.dtbo"), "-b", str(changed))
    assert code == 0
    assert out.splitlines()[1:] == [
        "back-end differences (host side; they do not change the exit status):",
        "  drive d0: file /dev/null -> /srv/images/vm.img",
    ]


# ---------------------------------------------------------------------------------------------
# output


def test_text_and_json_are_deterministic_and_escaped(tmp_path: Path, bindings: Any) -> None:
    dt = load(FIX / "q35.dtb")
    nic = dt.get_node("/pcie/ethernet@5")
    assert nic is not None
    nic.set_property("local-mac-address", bytes.fromhex("525400abcdef"))
    nic.set_property("qemu,x-evil", b"\x1b[31mred\x1b[0m\nnext\0")
    dt.root.get_child("pcie").children = [c for c in dt.root.get_child("pcie").children if c.name != "scsi@3"]
    out = save(dt, tmp_path / "b.dtb")
    code, first = invoke(str(FIX / "q35.dtb"), str(out))
    code2, second = invoke(str(FIX / "q35.dtb"), str(out))
    assert code == code2 == 1 and first == second
    assert "\x1b" not in first
    assert first.splitlines()[1:] == [
        "  /pcie/ethernet@5 (e1000): local-mac-address 52:54:00:12:34:57 -> 52:54:00:ab:cd:ef",
        '  /pcie/ethernet@5 (e1000): qemu,x-evil added = "\\x1b[31mred\\x1b[0m\\x0anext"',
        "  device removed: /pcie/scsi@3 (virtio-blk-pci)",
    ]
    code, raw = invoke(str(FIX / "q35.dtb"), str(out), "--format", "json")
    doc = json.loads(raw)
    assert code == 1 and set(doc) >= {"same", "guest", "backend"} and doc["same"] is False
    assert [e["kind"] for e in doc["guest"]] == ["property-changed", "property-added", "device-removed"]
    assert all(isinstance(e["text"], str) for e in doc["guest"])


def test_help_says_backends_do_not_change_the_status() -> None:
    res = CliRunner().invoke(cli, ["diff", "--help"])
    assert res.exit_code == 0
    assert "never change the exit status" in " ".join(res.output.split())


def test_render_text_of_same() -> None:
    assert render_text(DiffResult([], None), "a", "b") == "a and b: the same hardware for the guest\n"


# ---------------------------------------------------------------------------------------------
# unusable input and hostile trees


def _dup_tree(tmp_path: Path) -> Path:
    root = Node("")
    root.add_child(Node("x"))
    root.add_child(Node("x"))
    return save(DeviceTree(root), tmp_path / "dup.dtb")


@pytest.mark.parametrize("case", ["missing", "directory", "garbage", "truncated", "huge", "overlay-as-guest",
                                  "guest-as-backend", "duplicate"])
def test_bad_input_is_one_line_and_status_2(tmp_path: Path, case: str) -> None:
    good = str(FIX / "q35.dtb")
    args: list[str]
    if case == "missing":
        bad = str(tmp_path / "nope.dtb")
        args = [good, bad]
    elif case == "directory":
        bad = str(tmp_path)
        args = [bad, good]
    elif case == "garbage":
        bad = str(tmp_path / "garbage.dtb")
        Path(bad).write_bytes(b"this is not a blob")
        args = [good, bad]
    elif case == "truncated":
        bad = str(tmp_path / "short.dtb")
        Path(bad).write_bytes((FIX / "q35.dtb").read_bytes()[:300])
        args = [good, bad]
    elif case == "huge":
        bad = str(tmp_path / "huge.dtb")
        Path(bad).write_bytes(struct.pack(">II", 0xD00DFEED, 0xFFFFFFF0) + bytes(64))
        args = [good, bad]
    elif case == "overlay-as-guest":
        bad = str(FIX / "q35.backend.dtbo")
        args = [bad, good]
    elif case == "guest-as-backend":
        bad = good
        args = [good, good, "-b", good, "-b", str(FIX / "q35.backend.dtbo")]
    else:
        bad = str(_dup_tree(tmp_path))
        args = [good, bad]
    code, out, err = run_diff(*args)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"dtvm diff: {bad}: "), err
    assert "Traceback" not in err


def test_one_backend_is_a_usage_error() -> None:
    code, _out, err = run_diff(str(FIX / "q35.dtb"), str(FIX / "q35.dtb"), "-b", str(FIX / "q35.backend.dtbo"))
    assert code == 2 and "give -b twice" in err and "Traceback" not in err


def test_deep_and_wide_trees_are_bounded(tmp_path: Path, bindings: Any) -> None:
    """A 10000-deep chain of devices and a 10000-wide bus: no recursion, bounded time."""
    def chain(depth: int, tail: str) -> DeviceTree:
        root = Node("")
        cur = root
        for i in range(depth):
            child = Node(f"n{i}@{i:x}")
            child.set_property("compatible", b"vendor,dev\0")
            child.set_property("reg", struct.pack(">I", i))
            cur.add_child(child)
            cur = child
        cur.set_property("tail", tail.encode() + b"\0")
        wide = root.add_child(Node("bus"))
        for i in range(10000):
            leaf = wide.add_child(Node(f"leaf@{i:x}"))
            leaf.set_property("compatible", b"vendor,leaf\0")
        return DeviceTree(root)

    a = save(chain(10000, "a"), tmp_path / "a.dtb")
    b = save(chain(10000, "b"), tmp_path / "b.dtb")
    start = time.perf_counter()
    result = diff_files(a, b, bindings)
    elapsed = time.perf_counter() - start
    assert len(result.guest) == 1 and result.guest[0].text.endswith('tail "a" -> "b"')
    assert result.guest[0].text.startswith("...")  # the path is shown by its last levels
    assert elapsed < 20, elapsed
    # everything moved: a different root name for the chain's top, the whole chain is one move
    tb = chain(10000, "a")
    tb.root.children[0].name = "n0@77"
    start = time.perf_counter()
    found = texts(compare(load(a), tb, bindings=bindings))
    assert found == ["device vendor,dev moved from /n0@0 to /n0@77"]
    assert time.perf_counter() - start < 20


def test_many_differences_are_cut(tmp_path: Path) -> None:
    from dtvm.vm import diff as diffmod

    root_a, root_b = Node(""), Node("")
    for i in range(diffmod.MAX_ENTRIES + 5):
        root_a.add_child(Node(f"x{i}"))
    result = compare(DeviceTree(root_a), DeviceTree(root_b))
    assert len(result.guest) == diffmod.MAX_ENTRIES + 1
    assert result.guest[-1].kind == "truncated" and result.guest[-1].fields["count"] == 5
    assert "(10005 differences)" in render_text(result, "a", "b").splitlines()[0]


def test_fixture_files_exist() -> None:
    for name in ("virt.dtb", "virt-phandle-start.dtb", "q35.dtb", "q35.backend.dtbo", "virt.backend.dtbo"):
        assert (FIX / name).is_file(), name
    assert os.path.getsize(FIX / "virt.dtb") < 64 * 1024
