"""QEMU 7.2 and 10.0 side by side: the private 10.0, and one VM reading the same on both.

The oracle is QEMU itself, twice: the same loose command line with a pinned machine type
(``pc-q35-7.2``, ``pc-i440fx-7.2``) is started on the system's 7.2 and on the 10.0 that
``scripts/install-qemu10`` unpacks, each is described by dtvm, and the guest DTBs must be
byte-identical; an unpinned type must describe what 10.0 really builds (the type 10.0's own
``query-machines`` names for the alias).  The data that makes them equal
(``dtvm/qemu/data/versions.json``) is held to 10.0's ``device-list-properties``.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from dtvm.dt.dtb import write_dtb
from tests.qemu_helpers import VMs, needs_qemu, needs_qemu10, qemu10, qemu10_prefix
from tests.shared import REPO

pytest.importorskip("qemu.qmp")

from dtvm.qemu import live
from dtvm.qemu.describe import describe_snapshot
from tests.test_dtb2qemu import CASES

X86 = "qemu-system-x86_64"
X86_10 = qemu10(X86)

#: the round-trip suite's x86 configurations (all have pinned 7.2 types), hot-plug aside
X86_CASES = sorted(n for n, (argv, hot) in CASES.items() if argv[0] == X86 and not hot)


@pytest.fixture
def vms(tmp_path: Path) -> Any:
    pool = VMs(tmp_path)
    yield pool
    pool.stop_all()


def _guest(argv: list[str]) -> bytes:
    return write_dtb(describe_snapshot(live.read_argv(argv)).guest)


# ------------------------------------------------------------------------------------ the install


@needs_qemu10(X86)
def test_installer_is_idempotent() -> None:
    stamp = Path(qemu10_prefix()) / ".dtvm-installed"
    before = stamp.stat().st_mtime_ns
    env = {**os.environ, "DTVM_QEMU10": qemu10_prefix()}
    check = subprocess.run([str(REPO / "scripts" / "install-qemu10"), "--check"], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    again = subprocess.run([str(REPO / "scripts" / "install-qemu10")], env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    assert "already in" in again.stderr
    assert stamp.stat().st_mtime_ns == before  # nothing fetched or unpacked again


@needs_qemu10(X86)
def test_wrapper_runs_10_with_its_own_firmware_and_modules(vms: VMs) -> None:
    vm = vms.start([X86_10, "-M", "q35"])
    version = vm.qmp("query-version")
    assert (version["qemu"]["major"], version["qemu"]["minor"], version["qemu"]["micro"]) == (10, 0, 2)
    # without -L it would load bookworm's SeaBIOS (and 7.2's kvmvapic.bin): the BIOS the guest
    # sees at the top of 4 GiB is the prefix's file, not the system's
    dump = vm.directory / "bios.bin"
    vm.qmp("pmemsave", {"val": 0xFFFC0000, "size": 0x40000, "filename": str(dump)})
    ours = (Path(qemu10_prefix()) / "usr/share/seabios/bios-256k.bin").read_bytes()
    system = Path("/usr/share/seabios/bios-256k.bin")
    assert dump.read_bytes() == ours
    if system.exists():
        assert system.read_bytes() != ours
    # modules from the prefix: qom-list-types loads every one (with 7.2's it aborts)
    types = {t["name"] for t in vm.qmp("qom-list-types")}
    assert "qemu-xhci" in types
    assert "module" not in vm.stderr()


# ---------------------------------------------------------------------- reading 10.0 as it is


@needs_qemu10(X86)
def test_x86_machines_have_no_fdt_in_10_s_words(vms: VMs) -> None:
    vm = vms.start([X86_10, "-M", "q35"])
    from tests.qemu_helpers import QmpFailed

    with pytest.raises(QmpFailed, match="This machine doesn't have an FDT"):
        vm.qmp("dumpdtb", {"filename": str(vm.directory / "x.dtb")})
    assert live.read_socket(vm.address).dtb is None


@needs_qemu10(X86)
@pytest.mark.skipif(os.geteuid() != 0, reason="dtvm drops QEMU's privileges only when it runs as root")
def test_10_drops_privileges_with_run_with(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """QEMU 10.0 has no -runas ("-runas: invalid option"): dtvm says -run-with user=nobody."""
    monkeypatch.setattr(live, "_RUN_WITH", {})
    monkeypatch.setenv("DTVM_CACHE_DIR", str(tmp_path))  # learnt from QEMU's refusal, then remembered
    with live.start_argv([X86_10, "-M", "q35"]) as qemu:
        qemu.read()
        assert qemu.pid is not None
        cmdline = Path(f"/proc/{qemu.pid}/cmdline").read_bytes().split(b"\0")
        assert b"-runas" not in cmdline
        assert cmdline[cmdline.index(b"-run-with") + 1] == b"user=nobody"
        status = Path(f"/proc/{qemu.pid}/status").read_text()
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        assert int(uid) == pwd.getpwnam("nobody").pw_uid
    # the next dtvm (a fresh process: nothing learnt in memory) starts it right the first time
    monkeypatch.setattr(live, "_RUN_WITH", {})
    assert live._run_with(X86_10) is True
    assert live._run_with(X86) is False


@needs_qemu10(X86)
@pytest.mark.parametrize("alias", ["q35", "pc"])
def test_unpinned_type_describes_what_10_builds(alias: str, vms: VMs) -> None:
    vm = vms.start([X86_10, "-M", "none"])
    named = next(m["name"] for m in vm.qmp("query-machines") if m.get("alias") == alias)
    assert named.endswith("-10.0")
    snapshot = live.read_argv([X86_10, "-M", alias])
    desc = describe_snapshot(snapshot)
    qemu = desc.guest.get_node("/qemu")
    assert qemu is not None and qemu["machine"].as_string() == named


@needs_qemu(X86)
@needs_qemu10(X86)
@pytest.mark.parametrize("name", X86_CASES)
def test_pinned_type_reads_the_same_on_7_2_and_10_0(name: str) -> None:
    argv = CASES[name][0]
    old = _guest(argv)
    new = _guest([X86_10, *argv[1:]])
    assert new == old


@needs_qemu(X86)
@needs_qemu10(X86)
@pytest.mark.parametrize("pinned,unpinned", [("pc-q35-7.2", "pc-q35-10.0"), ("pc-i440fx-7.2", "pc-i440fx-10.0")])
def test_compat_properties_are_the_machine_types(pinned: str, unpinned: str, vms: VMs) -> None:
    """A property a versioned type sets through its compat properties is that type's default: an
    explicit value that equals it is not described, one that differs is (10.0's own answer says
    which properties pc-*-7.2 changes and to what)."""
    vm = vms.start([X86_10, "-M", "none"])
    compat = next(m["compat-props"] for m in vm.qmp("query-machines", {"compat-props": True}) if m["name"] == pinned)
    ext_tag = [c["value"] for c in compat if c["qom-type"] == "pci-device" and c["property"] == "x-pcie-ext-tag"]
    assert ext_tag == ["false"]
    for machine, value, described in [(pinned, "off", False), (pinned, "on", True),
                                      (unpinned, "on", False), (unpinned, "off", True)]:
        argv = [X86_10, "-M", machine, "-nodefaults", "-device", f"virtio-rng-pci,addr=5.0,x-pcie-ext-tag={value}"]
        desc = describe_snapshot(live.read_argv(argv))
        node = next(n for n in desc.guest.root.walk() if "qemu,driver" in n
                    and n["qemu,driver"].as_string() == "virtio-rng-pci")
        assert ("qemu,x-pcie-ext-tag" in node) == described, (machine, value)
        if described:
            assert node["qemu,x-pcie-ext-tag"].as_string() == value


# --------------------------------------------------------------------------- the data, held to 10.0


def _type_props(binary: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """device-list-properties of each type, from a bare QEMU (plain QMP over stdio)."""
    lines = [json.dumps({"execute": "qmp_capabilities"})]
    lines += [json.dumps({"execute": "device-list-properties", "arguments": {"typename": n}, "id": n}) for n in names]
    lines.append(json.dumps({"execute": "quit"}))
    proc = subprocess.Popen([binary, "-M", "none", "-S", "-display", "none", "-nodefaults", "-qmp", "stdio"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    for line in lines[:-1]:
        proc.stdin.write(line + "\n")
    proc.stdin.flush()
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 30
    while len(found) < len(names) and time.monotonic() < deadline:
        msg = json.loads(proc.stdout.readline())
        if msg.get("id") in names:
            found[msg["id"]] = {p["name"]: p for p in msg.get("return", [])}
    proc.stdin.write(lines[-1] + "\n")
    proc.stdin.flush()
    proc.wait(timeout=10)
    return found


@needs_qemu10(X86, "qemu-system-riscv64", "qemu-system-ppc64")
def test_version_data_names_real_10_0_properties() -> None:
    data = json.loads((REPO / "dtvm" / "qemu" / "data" / "versions.json").read_text())
    catalog = json.loads((REPO / "dtvm" / "qemu" / "data" / "qdev-7.2.json").read_text())["types"]
    entries = [e for e in data["derived"] + data["instance-defaults"] if "driver" in e]
    by_binary: dict[str, list[str]] = {}
    for e in entries:
        binary = {"gpex-pcihost": "qemu-system-riscv64", "spapr-nvdimm": "qemu-system-ppc64"}.get(e["driver"], X86)
        by_binary.setdefault(binary, []).append(e["driver"])
    props = {}
    for binary, names in by_binary.items():
        props.update(_type_props(qemu10(binary), sorted(set(names))))
    for e in entries:
        assert e["prop"] in props[e["driver"]], e
        if e.get("since") == "10.0":
            old = {p for group in catalog.get(e["driver"], {}).get("props", {}).values() for p in group}
            assert e["prop"] not in old, e
    for e in data["instance-defaults"]:
        declared = props[e["driver"]][e["prop"]].get("default-value")
        assert str(declared) != e["value"], e  # otherwise the entry is not needed


@needs_qemu10(X86, "qemu-system-aarch64", "qemu-system-arm", "qemu-system-riscv64", "qemu-system-ppc64")
def test_10_0_catalog_is_qemus(tmp_path: Path) -> None:
    """dtb2qemu --binary 10.0 holds descriptions to qdev-10.0.json: it must be what 10.0 says
    (regenerate with scripts/gen_qdev_catalog.py --bin-dir PREFIX/bin)."""
    import sys

    out = tmp_path / "qdev.json"
    res = subprocess.run([sys.executable, "scripts/gen_qdev_catalog.py", "--out", str(out), "--bin-dir",
                          str(Path(qemu10_prefix()) / "bin")], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr
    fresh = json.loads(out.read_text())
    assert fresh["qemu"] == "10.0"
    assert fresh == json.loads((REPO / "dtvm/qemu/data/qdev-10.0.json").read_text())


# ------------------------------------------------------------------------ machine data per version


def _dtvm(*args: str) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run([sys.executable, "-m", "dtvm", *args], capture_output=True, text=True, timeout=300)


@needs_qemu10(X86)
def test_machine_diff_is_qemus_compat_properties(vms: VMs) -> None:
    """pc-q35-7.2 vs pc-q35-10.0 on 10.0: the compat properties that differ are exactly those of
    10.0's own query-machines, applied in order (a later one wins, as in QEMU)."""
    res = _dtvm("machine", "diff", "pc-q35-7.2", "pc-q35-10.0", "--binary", X86_10, "--format", "json")
    assert res.returncode == 1, res.stderr  # different machines
    diff = json.loads(res.stdout)
    vm = vms.start([X86_10, "-M", "none"])
    machines = {m["name"]: m for m in vm.qmp("query-machines", {"compat-props": True})}

    def effective(name: str) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        for c in machines[name]["compat-props"]:
            out[(c["qom-type"], c["property"])] = c["value"]
        return out

    a, b = effective("pc-q35-7.2"), effective("pc-q35-10.0")
    expected = {(t, p): (a.get((t, p)), b.get((t, p))) for t, p in set(a) | set(b) if a.get((t, p)) != b.get((t, p))}
    got = {(c["qom-type"], c["property"]): (c["a"], c["b"]) for c in diff["compat-props"]}
    assert got == expected
    assert ("pci-device", "x-pcie-ext-tag") in got and len(got) > 30
    # the same devices at the same positions: the two versions differ in defaults, not in what they make
    assert diff["devices"]["added"] == [] and diff["devices"]["removed"] == []
    assert diff["complete"] is True
    text = _dtvm("machine", "diff", "pc-q35-7.2", "pc-q35-10.0", "--binary", X86_10).stdout
    assert "pci-device.x-pcie-ext-tag: false -> (none)" in text


@needs_qemu10(X86)
def test_machine_diff_across_binaries_says_what_it_cannot_know() -> None:
    res = _dtvm("machine", "diff", "pc-q35-7.2", "pc-q35-7.2", "--binary", X86, "--binary-b", X86_10, "--format", "json")
    diff = json.loads(res.stdout)
    assert diff["a"]["qemu"].startswith("7.2.") and diff["b"]["qemu"].startswith("10.0.2")
    assert diff["complete"] is False and diff["compat-props"] == []
    text = _dtvm("machine", "diff", "pc-q35-7.2", "pc-q35-7.2", "--binary", X86, "--binary-b", X86_10).stdout
    assert "does not report them (query-machines compat-props needs QEMU 9.1)" in text


@needs_qemu10(X86)
@pytest.mark.parametrize("name", [pytest.param("pc-q35-7.2", marks=pytest.mark.versions_full), "pc-q35-10.0",
                                  pytest.param("pc-i440fx-10.0", marks=pytest.mark.versions_full)])
def test_machine_schema_of_10_0_is_current(name: str) -> None:
    """dtvm/qemu/machines/10.0/ is what 10.0 answers now (scripts/gen_machine_schemas.py --bin-dir)."""
    from dtvm.qemu.machine import explain, find_machine
    from dtvm.qemu.schema import load_schema, to_schema

    machine = find_machine(name, X86)
    fresh = to_schema(explain(machine, binary=X86_10))
    stored = to_schema(load_schema(machine, "10.0"))
    assert fresh["generated-from"]["qemu"].startswith("10.0.2")
    fresh["generated-from"] = stored["generated-from"] = None
    assert fresh == stored


@needs_qemu10(X86)
def test_machine_show_names_the_version_it_answers_for() -> None:
    res = _dtvm("machine", "show", "pc-q35-10.0", "--binary", X86_10)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[1].startswith("from dtvm/qemu/machines/10.0/x86_64-pc-q35-10.0.yaml (generated from QEMU 10.0.2")
    assert "compat properties" in res.stdout  # pc-q35-10.0 has one (its own, on 10.0)
    old = _dtvm("machine", "show", "pc-q35-7.2")
    assert "generated from QEMU 7.2." in old.stdout.splitlines()[1]
    # an alias names what that QEMU means by it (10.0's query-machines: q35 is pc-q35-10.0)
    assert _dtvm("machine", "show", "q35", "--binary", X86_10).stdout.startswith("pc-q35-10.0 ")
    assert _dtvm("machine", "show", "q35", "--binary", X86).stdout.startswith("pc-q35-7.2 ")


@needs_qemu10(X86)
def test_offline_answers_for_the_binarys_version() -> None:
    """--offline with a binary by path answers from the models of its version (asked with
    --version) and names it in the overlay (qemu-version); test_versions_offline.py holds those
    models to QEMU 10.0 itself."""
    res = _dtvm("qemu2dtb", "--offline", "--format", "dts", "--", X86_10, "-M", "q35")
    assert res.returncode == 0, res.stderr
    assert 'model = "QEMU pc-q35-10.0"' in res.stdout
    old = _dtvm("qemu2dtb", "--offline", "--format", "dts", "--", X86, "-M", "q35")
    assert 'model = "QEMU pc-q35-7.2"' in old.stdout
