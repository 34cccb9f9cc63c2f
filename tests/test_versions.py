"""QEMU 7.2 and 10.0 side by side: the private 10.0, and one VM reading the same on both.

The oracle is QEMU itself, twice: the same loose command line with a pinned machine type
(``pc-q35-7.2``, ``pc-i440fx-7.2``) is started on the system's 7.2 and on the 10.0 that
``scripts/install-qemu10`` unpacks, each is described by dtvm, and the guest DTBs must be
byte-identical; an unpinned type must describe what 10.0 really builds (the type 10.0's own
``query-machines`` names for the alias).  The data that makes them equal
(``dtvm/qemu/data/versions.yaml``) is held to 10.0's ``device-list-properties``.
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
def test_10_drops_privileges_with_run_with(monkeypatch: pytest.MonkeyPatch) -> None:
    """QEMU 10.0 has no -runas ("-runas: invalid option"): dtvm says -run-with user=nobody."""
    monkeypatch.setattr(live, "_RUN_WITH", {})
    with live.start_argv([X86_10, "-M", "q35"]) as qemu:
        qemu.read()
        assert qemu.pid is not None
        cmdline = Path(f"/proc/{qemu.pid}/cmdline").read_bytes().split(b"\0")
        assert b"-runas" not in cmdline
        assert cmdline[cmdline.index(b"-run-with") + 1] == b"user=nobody"
        status = Path(f"/proc/{qemu.pid}/status").read_text()
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        assert int(uid) == pwd.getpwnam("nobody").pw_uid


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


@needs_qemu10(X86, "qemu-system-riscv64")
def test_version_data_names_real_10_0_properties() -> None:
    import yaml

    data = yaml.safe_load((REPO / "dtvm" / "qemu" / "data" / "versions.yaml").read_text())
    catalog = json.loads((REPO / "dtvm" / "qemu" / "data" / "qdev-7.2.json").read_text())["types"]
    entries = [e for e in data["derived"] + data["instance-defaults"] if "driver" in e]
    by_binary: dict[str, list[str]] = {}
    for e in entries:
        binary = "qemu-system-riscv64" if e["driver"] == "gpex-pcihost" else X86
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
