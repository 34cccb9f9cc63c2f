"""dtvm.qemu.live against real QEMU 7.2: what it reads, that it always stops what it starts, and that
every bad input or misbehaving peer ends in one DtvmError line.

Oracles: QEMU itself (the tests start their own VMs and ask them over a plain QMP socket of their
own, see qemu_helpers), and the process table (no qemu-system child of this test may survive).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dtvm.errors import DtvmError
from dtvm.qemu import live
from dtvm.qemu.qmp import QmpSession
from dtvm.qemu.snapshot import Snapshot, SnapshotFormatError

from .qemu_helpers import (
    VMs,
    child_qemu_pids,
    needs_qemu,
    pid_alive,
    qemu_pids_with,
)

X86 = "qemu-system-x86_64"
AARCH64 = "qemu-system-aarch64"
ARM = "qemu-system-arm"
RISCV64 = "qemu-system-riscv64"
PPC64 = "qemu-system-ppc64"
FDT_MAGIC = b"\xd0\x0d\xfe\xed"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def vms(tmp_path: Path) -> Iterator[VMs]:
    pool = VMs(tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture(autouse=True)
def no_leftover_qemu() -> Iterator[None]:
    """After every test: no qemu-system process started by this test process is still alive."""
    before = set(child_qemu_pids())
    yield
    left = set(child_qemu_pids()) - before
    assert not left, f"qemu processes left running: {sorted(left)}"


def marked(argv: list[str]) -> tuple[list[str], str]:
    """argv with a unique -name, to find the QEMU that read_argv starts in the process table."""
    marker = f"dtvm-live-{uuid.uuid4().hex[:12]}"
    return [*argv, "-name", marker], marker


def qtree_types(snap: Snapshot) -> set[str]:
    return set(re.findall(r'^\s*dev: ([^\s,]+), id "', snap.qtree, re.M))


# ---------------------------------------------------------------------------------------- machines

MACHINES: list[tuple[str, list[str], str, bool, set[str]]] = [
    # binary, args, machine type pattern, has a DT, devices the qtree must hold
    (X86, ["-M", "q35"], r"pc-q35-\d+\.\d+", False, {"ICH9-LPC", "mch", "q35-pcihost", "e1000e", "VGA"}),
    (X86, ["-M", "pc"], r"pc-i440fx-\d+\.\d+", False, {"PIIX3", "i440FX-pcihost", "isa-fdc", "e1000"}),
    (AARCH64, ["-M", "virt"], r"virt-\d+\.\d+", True, {"pl011", "gpex-pcihost", "virtio-net-pci"}),
    (ARM, ["-M", "virt"], r"virt-\d+\.\d+", True, {"pl011", "arm_gic", "gpex-pcihost"}),
    # riscv64 virt is not versioned in QEMU 7.2: its QOM type is "virt-machine"
    (RISCV64, ["-M", "virt"], r"virt", True, {"riscv.sifive.plic", "serial-mm", "virtio-mmio"}),
    (PPC64, ["-M", "pseries"], r"pseries-\d+\.\d+", True, {"spapr-vty", "spapr-pci-host-bridge", "spapr-vlan"}),
]


@pytest.mark.parametrize(("binary", "args", "mtype", "has_dt", "devices"), [
    pytest.param(*m, marks=needs_qemu(m[0]), id=f"{m[0][12:]}-{m[1][1]}") for m in MACHINES])
def test_read_argv_machines(binary: str, args: list[str], mtype: str, has_dt: bool, devices: set[str]) -> None:
    argv, marker = marked([binary, *args])
    snap = live.read_argv(argv)
    assert qemu_pids_with(marker) == []

    assert snap.argv == argv
    assert snap.arch == binary.removeprefix("qemu-system-")
    assert re.fullmatch(mtype, snap.machine_type), snap.machine_type
    assert snap.version["qemu"]["major"] >= 7
    assert devices <= qtree_types(snap)
    # device-list-properties for every device type in the qtree (QEMU lists them all for these)
    assert qtree_types(snap) <= set(snap.type_props)
    assert all(isinstance(p, list) for p in snap.type_props.values())
    # machine properties: scalar values, plus the structs read: -smp's topology (virt shows it
    # nowhere else), -m's size, slots and maxmem, and q35/pc's CXL windows (a list, refused when set);
    # type is the QOM type of the machine
    assert snap.machine_props["type"] == snap.machine_type + "-machine"
    assert all(isinstance(v, bool | int | str) for k, v in snap.machine_props.items() if k not in ("smp", "memory", "cxl-fmw"))
    assert snap.machine_props["smp"]["cpus"] == len(snap.cpus) and snap.machine_props["smp"]["maxcpus"] >= 1
    assert snap.machine_props["memory"]["size"] == snap.memory["base-memory"]
    # no -numa: the node pseries makes by itself (data/machines.yaml auto-numa-node), none elsewhere
    assert snap.numa.startswith("1 nodes" if binary.endswith("ppc64") else "0 nodes"), snap.numa
    assert snap.peripherals == []  # no -device
    # CPUs: one type per CPU, read from its QOM path
    assert snap.cpus and set(snap.cpu_types) == {c["qom-path"] for c in snap.cpus}
    assert all(t.endswith("-cpu") for t in snap.cpu_types.values())
    assert snap.memory["base-memory"] > 0
    assert isinstance(snap.memdevs, list) and isinstance(snap.block, list)
    assert isinstance(snap.block_nodes, list) and isinstance(snap.network, str)
    # dtvm's own QMP monitor is not part of the VM
    assert not any("dtvm-qemu-" in str(c.get("filename")) for c in snap.chardevs)
    if has_dt:
        assert snap.dtb is not None and snap.dtb[:4] == FDT_MAGIC
        assert int.from_bytes(snap.dtb[4:8], "big") == len(snap.dtb)  # totalsize: the whole blob
    else:
        assert snap.dtb is None
    # JSON round trip
    assert Snapshot.from_json(snap.to_json()) == snap
    assert Snapshot.from_dict(json.loads(json.dumps(snap.to_dict()))) == snap


@needs_qemu(X86)
def test_read_argv_q35_devices(tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    disk.write_bytes(bytes(1 << 20))
    argv, marker = marked([
        X86, "-M", "q35", "-nodefaults",
        "-device", "virtio-net-pci,id=net0,addr=03.0",
        "-device", "pcie-root-port,id=rp1,chassis=1,addr=04.0",
        "-device", "e1000e,bus=rp1",
        "-device", "qemu-xhci,id=xhci",
        "-device", "usb-tablet,id=tablet",
        "-device", "ich9-ahci,id=ahci",
        "-drive", f"if=none,id=d0,file={disk},format=raw",
        "-device", "ide-hd,drive=d0,bus=ahci.2,id=disk0",
        "-device", "virtio-serial-pci",
        "-device", "virtconsole,id=con0,nr=3",
    ])
    snap = live.read_argv(argv)
    assert qemu_pids_with(marker) == []
    by_id = {p.id: p for p in snap.peripherals if p.id}
    assert set(by_id) == {"net0", "rp1", "xhci", "tablet", "ahci", "disk0", "con0"}
    anon = [p for p in snap.peripherals if p.id is None]
    assert sorted(p.type for p in anon) == ["e1000e", "virtio-serial-pci"]
    assert all(p.qom_path.startswith("/machine/peripheral-anon/device[") for p in anon)
    assert by_id["net0"].type == "virtio-net-pci"
    assert by_id["net0"].address["addr"] == 0x18  # devfn of 03.0
    assert by_id["net0"].parent_bus == "/machine/q35/pcie.0"
    assert by_id["rp1"].address["addr"] == 0x20
    e1000e = next(p for p in anon if p.type == "e1000e")
    assert e1000e.parent_bus == "/machine/peripheral/rp1/rp1"
    assert by_id["tablet"].parent_bus == "/machine/peripheral/xhci/xhci.0"
    assert "port" in by_id["tablet"].address
    assert by_id["disk0"].parent_bus == "/machine/peripheral/ahci/ahci.2"
    assert by_id["disk0"].address == {"unit": 0}
    # chardev is read with the address (isa-serial hides it from qtree): QEMU says "" for none
    assert by_id["con0"].address == {"nr": 3, "chardev": ""}
    assert not any(p.hotplugged for p in snap.peripherals)
    assert {"virtio-net-pci", "e1000e", "usb-tablet", "ide-hd", "virtconsole"} <= set(snap.type_props)
    assert [b["device"] for b in snap.block if b.get("device")] == ["d0"]
    assert any(n.get("file") == str(disk) for n in snap.block_nodes)


@needs_qemu(X86)
def test_read_argv_tolerates_stdio_and_own_monitors(tmp_path: Path) -> None:
    # -nographic puts serial and monitor on stdio: QEMU gets /dev/null, nothing blocks; -S twice and a
    # monitor of the caller's own are fine
    extra = str(tmp_path / "mine.sock")
    argv, marker = marked([X86, "-M", "q35", "-nographic", "-S", "-qmp", f"unix:{extra},server=on,wait=off"])
    snap = live.read_argv(argv)
    assert qemu_pids_with(marker) == []
    # QEMU reports an unconnected server socket as "disconnected:unix:PATH,server=on"
    assert any(f"unix:{extra}," in c.get("filename", "") for c in snap.chardevs)
    assert any(c.get("filename") == "stdio" for c in snap.chardevs)


@needs_qemu(X86)
def test_read_argv_from_async_code() -> None:
    async def caller() -> Snapshot:
        return live.read_argv([X86, "-M", "pc", "-nodefaults"])

    snap = asyncio.run(caller())
    assert snap.machine_type.startswith("pc-i440fx-")


@needs_qemu(X86)
def test_start_argv_in_two_steps() -> None:
    argv, marker = marked([X86, "-M", "pc"])
    with live.start_argv(argv) as qemu:
        assert qemu.pid is not None and pid_alive(qemu.pid)
        time.sleep(0.05)  # the caller's own start-up work
        snap = qemu.read()
    assert snap.machine_type.startswith("pc-i440fx-") and snap.argv == argv
    assert qemu_pids_with(marker) == []
    with pytest.raises(live.QemuError, match="already stopped"):
        qemu.read()
    # closed without reading: killed all the same
    argv, marker = marked([X86, "-M", "pc"])
    qemu = live.start_argv(argv)
    pid = qemu.pid
    qemu.close()
    assert pid is not None and not pid_alive(pid)
    assert qemu_pids_with(marker) == []


@needs_qemu(X86)
def test_timings_are_reported() -> None:
    t: dict[str, float] = {}
    live.read_argv([X86, "-M", "q35"], timings=t)
    for key in ("start", "connect", "read", "stop", "total", "qtree+type-props", "machine-props", "commands"):
        assert key in t
    assert t["commands"] > 20


# ---------------------------------------------------------------------------------- running VMs


@needs_qemu(X86)
def test_read_socket_leaves_vm_running_and_marks_hotplug(vms: VMs) -> None:
    vm = vms.start([X86, "-M", "q35", "-device", "pcie-root-port,id=rp1,chassis=1",
                  "-device", "virtio-net-pci,id=cold0"], paused=False)
    assert vm.qmp("query-status")["status"] == "running"
    vm.qmp("device_add", {"driver": "virtio-net-pci", "id": "hot0", "bus": "rp1"})
    snap = live.read_socket(vm.address)
    assert pid_alive(vm.pid)
    assert vm.qmp("query-status")["status"] == "running"
    by_id = {p.id: p for p in snap.peripherals}
    assert by_id["hot0"].hotplugged is True
    assert by_id["hot0"].parent_bus == "/machine/peripheral/rp1/rp1"
    assert by_id["cold0"].hotplugged is False
    assert snap.argv is None
    # the socket dtvm read through is the VM's own: it stays in chardevs
    assert any(c.get("filename", "").startswith(f"unix:{vm.qmp_path}") for c in snap.chardevs)
    # reading it again: the device list is the same; the qtree is not, because the firmware runs and
    # programs the hardware meanwhile (q35's MCFG goes from -1 to 0xb0000000, BARs get assigned)
    again = live.read_socket(vm.address)
    assert again.peripherals == snap.peripherals and again.type_props == snap.type_props


@needs_qemu(X86)
def test_read_socket_busy_with_another_client(vms: VMs) -> None:
    # QEMU serves one client per QMP socket; the next one is accepted by the kernel but never greeted
    vm = vms.start([X86, "-M", "q35"])
    with socket.socket(socket.AF_UNIX) as other:
        other.connect(vm.qmp_path)
        assert other.recv(4096).startswith(b'{"QMP"')
        with pytest.raises(live.QemuTimeoutError, match="another QMP client"):
            live.read_socket(vm.address, timeout=1.0)
    assert vm.qmp("query-status")["status"] == "prelaunch"


@needs_qemu(X86)
def test_read_socket_keeps_device_with_pending_unplug(vms: VMs) -> None:
    # q35's ACPI PCI hot-plug waits for the guest to eject: without one the unplug stays pending
    vm = vms.start([X86, "-M", "q35", "-device", "pcie-root-port,id=rp1,chassis=1"])
    vm.qmp("device_add", {"driver": "virtio-net-pci", "id": "hot0", "bus": "rp1"})
    vm.qmp("device_del", {"id": "hot0"})
    snap = live.read_socket(vm.address)
    assert [(p.id, p.hotplugged) for p in snap.peripherals if p.id == "hot0"] == [("hot0", True)]
    assert 'id "hot0"' in snap.qtree


@needs_qemu(AARCH64)
def test_read_socket_paused_stays_paused(vms: VMs) -> None:
    vm = vms.start([AARCH64, "-M", "virt"])
    before = vm.qmp("query-status")
    snap = live.read_socket(vm.address)
    assert vm.qmp("query-status") == before
    assert snap.dtb is not None and snap.dtb[:4] == FDT_MAGIC
    assert snap.arch == "aarch64"
    # a paused VM reads the same every time, byte for byte
    assert live.read_socket(vm.address).to_json() == snap.to_json()


@needs_qemu(X86)
def test_read_socket_equals_read_argv(vms: VMs) -> None:
    args = [X86, "-M", "q35", "-nodefaults", "-device", "virtio-net-pci,id=n0", "-device", "e1000"]
    vm = vms.start(args)
    online = live.read_socket(vm.address)
    started = live.read_argv(args)
    assert online.qtree == started.qtree
    assert online.peripherals == started.peripherals
    assert online.type_props == started.type_props
    assert online.machine_type == started.machine_type
    assert online.machine_props == started.machine_props


# ---------------------------------------------------------------------------------- bad input


def test_missing_binary_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    cases = {
        X86: "qemu-system-x86", "qemu-system-i386": "qemu-system-x86", AARCH64: "qemu-system-arm",
        ARM: "qemu-system-arm", RISCV64: "qemu-system-misc", PPC64: "qemu-system-ppc",
        "qemu-system-s390x": "qemu-system-misc",
    }
    for binary, package in cases.items():
        with pytest.raises(live.QemuNotFoundError) as info:
            live.read_argv([binary, "-M", "virt"])
        message = str(info.value)
        assert binary in message and package in message and "\n" not in message
    with pytest.raises(live.QemuNotFoundError, match="qemu-system-arm"):
        live.read_argv([str(tmp_path / "nowhere" / "qemu-system-aarch64")])


@needs_qemu(X86)
def test_qemu_rejecting_args_gives_its_own_message(tmp_path: Path) -> None:
    args = [X86, "-M", "q35", "-device", "no-such-device"]
    oracle = subprocess.run([*args, "-S", "-display", "none"], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=30)
    assert oracle.returncode != 0
    expected = oracle.stderr.strip().splitlines()[0]
    with pytest.raises(live.QemuExitedError) as info:
        live.read_argv(args)
    assert str(info.value) == expected
    assert info.value.status == oracle.returncode


@needs_qemu(X86)
def test_multi_line_warning_is_not_the_error() -> None:
    """QEMU continues a warning on lines without its prefix (seen with libvirt's argv: threads=2 on
    the default AMD-family CPU); the error is QEMU's own line for the failing option, as QEMU prints
    it without the warning, with or without libvirt's ``-msg timestamp=on``."""
    bad = ["-device", "no-such-device"]
    warns = ["-smp", "2,sockets=1,cores=1,threads=2"]
    def run(args: list[str]) -> list[str]:
        proc = subprocess.run([X86, "-M", "q35", "-nodefaults", *args, "-S", "-display", "none"],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
        assert proc.returncode != 0
        return proc.stderr.strip().splitlines()
    expected = run(bad)[0]
    warned = run([*warns, *bad])
    assert len(warned) > 2 and ": warning: " in warned[0] and not warned[1].startswith(X86), warned  # the case exists
    for extra in ([], ["-msg", "timestamp=on"]):
        with pytest.raises(live.QemuExitedError) as info:
            live.read_argv([X86, "-M", "q35", "-nodefaults", *extra, *warns, *bad])
        assert str(info.value).endswith(expected), (str(info.value), warned)
        assert "Please" not in str(info.value) and "warning" not in str(info.value)


@needs_qemu(X86)
def test_qemu2dtb_cli_exits_nonzero_with_qemu_message() -> None:
    proc = subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", "--", X86, "-M", "q35", "-device", "nope"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode != 0
    assert "'nope' is not a valid device model name" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("bad", [["-daemonize"], ["--daemonize"], ["-incoming", "defer"],
                                 ["--incoming", "tcp:0:4444"], ["-preconfig"]])
def test_rejected_options_start_nothing(monkeypatch: pytest.MonkeyPatch, bad: list[str]) -> None:
    def no_spawn(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("QEMU was started")

    monkeypatch.setattr(live, "_spawn", no_spawn)
    with pytest.raises(live.QemuArgvError, match="not allowed"):
        live.read_argv([X86, "-M", "q35", *bad])


@pytest.mark.parametrize("argv", [[], [""], "qemu-system-x86_64 -M q35", [X86, 3], [X86, "a\0b"]])
def test_malformed_argv(argv: Any) -> None:
    with pytest.raises(live.QemuArgvError):
        live.read_argv(argv)


@pytest.mark.parametrize("address", ["tcp:localhost:4444", "/tmp/qmp.sock", "unix:", "", "unix:a\0b"])
def test_unsupported_address(address: str) -> None:
    with pytest.raises(DtvmError):
        live.read_socket(address)


def test_missing_or_non_socket(tmp_path: Path) -> None:
    with pytest.raises(DtvmError, match="no such socket"):
        live.read_socket(f"unix:{tmp_path / 'absent.sock'}")
    plain = tmp_path / "file"
    plain.write_text("x")
    with pytest.raises(DtvmError, match="not a socket"):
        live.read_socket(f"unix:{plain}")
    # a socket file nobody listens on any more
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()
    with pytest.raises(DtvmError, match="refused"):
        live.read_socket(f"unix:{stale}")


class FakeServer:
    """A unix socket served by a thread that plays a broken QMP server."""

    GREETING = b'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}\n'

    def __init__(self, path: Path, behaviour: str) -> None:
        self.path = str(path)
        self.behaviour = behaviour
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(0.1)
            try:
                self.play(conn)
            except OSError:
                pass

    def play(self, conn: socket.socket) -> None:
        b = self.behaviour
        if b == "garbage":
            conn.sendall(b"\x00\xffthis is not QMP\r\n" * 3)
        elif b == "json-not-qmp":
            conn.sendall(b'{"hello": "world"}\n')
        elif b == "array":
            conn.sendall(b"[1, 2, 3]\n")
        elif b == "close":
            return
        elif b == "flood":  # no newline, ever: the reply-size cap must end it
            chunk = b"x" * 65536
            while not self.stop.is_set():
                conn.sendall(chunk)
        elif b in ("silent", "greet-then-silent", "greet-then-garbage", "greet-then-close"):
            if b != "silent":
                conn.sendall(self.GREETING)
                self._read_line(conn)  # qmp_capabilities
                if b == "greet-then-silent":
                    conn.sendall(b'{"return": {}}\n')
                elif b == "greet-then-garbage":
                    conn.sendall(b'{"return": {}}\n')
                    self._read_line(conn)
                    conn.sendall(b"}}}garbage{{{\n")
                else:
                    conn.sendall(b'{"return": {}}\n')
                    self._read_line(conn)
                    return
            while not self.stop.is_set():
                try:
                    if not conn.recv(65536):
                        return
                except TimeoutError:
                    pass
        time.sleep(0.2)

    def _read_line(self, conn: socket.socket) -> None:
        """Wait for the client's next command (QMP commands need not end with a newline)."""
        while not self.stop.is_set():
            try:
                conn.recv(4096)
                return
            except TimeoutError:
                continue

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(5)


@pytest.mark.parametrize("behaviour", ["garbage", "json-not-qmp", "array", "close", "flood", "silent",
                                       "greet-then-silent", "greet-then-garbage", "greet-then-close"])
def test_fake_qmp_server_gives_dtvm_error(tmp_path: Path, behaviour: str) -> None:
    server = FakeServer(tmp_path / "fake.sock", behaviour)
    try:
        with pytest.raises(DtvmError) as info:
            live.read_socket(f"unix:{server.path}", timeout=2.0)
    finally:
        server.close()
    message = str(info.value)
    assert "\n" not in message and server.path in message


@needs_qemu(X86)
def test_timeout_when_qemu_never_answers(tmp_path: Path) -> None:
    # a chardev that waits for a client blocks QEMU before its main loop: no QMP answer, ever
    argv, marker = marked([X86, "-M", "q35", "-chardev",
                           f"socket,id=w,path={tmp_path / 'w.sock'},server=on,wait=on"])
    with pytest.raises(live.QemuTimeoutError, match="did not answer"):
        live.read_argv(argv, timeout=1.5)
    assert qemu_pids_with(marker) == []


@needs_qemu(X86)
def test_ctrl_c_stops_qemu(tmp_path: Path) -> None:
    argv, marker = marked([X86, "-M", "q35", "-chardev",
                           f"socket,id=w,path={tmp_path / 'w.sock'},server=on,wait=on"])
    script = ("import sys, json\nfrom dtvm.qemu import live\n"
              "live.read_argv(json.loads(sys.argv[1]), timeout=60)\n")
    child = subprocess.Popen([sys.executable, "-c", script, json.dumps(argv)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not qemu_pids_with(marker):
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "QEMU never started"
            time.sleep(0.02)
        time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0
    assert "KeyboardInterrupt" in err
    assert qemu_pids_with(marker) == []


def _kill_at(monkeypatch: pytest.MonkeyPatch, nth: int, pid_of: Callable[[], int]) -> None:
    """Make QEMU die (SIGKILL by pid) just before dtvm issues its nth QMP command."""
    real = QmpSession.execute

    async def execute(self: QmpSession, command: str, arguments: Any = None) -> Any:
        if self.commands + 1 == nth:
            os.kill(pid_of(), signal.SIGKILL)
        return await real(self, command, arguments)

    monkeypatch.setattr(QmpSession, "execute", execute)


@needs_qemu(X86)
@pytest.mark.parametrize("nth", [1, 5, 40])
def test_qemu_killed_mid_read_argv(monkeypatch: pytest.MonkeyPatch, nth: int) -> None:
    started: list[subprocess.Popen[bytes]] = []
    real_spawn = live._spawn

    def spawn(*args: Any) -> Any:
        group = real_spawn(*args)
        started.append(group.proc)
        return group

    monkeypatch.setattr(live, "_spawn", spawn)
    _kill_at(monkeypatch, nth, lambda: started[0].pid)
    with pytest.raises(live.QemuExitedError, match="SIGKILL") as info:
        live.read_argv([X86, "-M", "q35"], timeout=10)
    assert "while dtvm was reading it" in str(info.value)
    assert not pid_alive(started[0].pid)


@needs_qemu(X86)
def test_qemu_killed_mid_read_socket(monkeypatch: pytest.MonkeyPatch, vms: VMs) -> None:
    vm = vms.start([X86, "-M", "q35"])
    _kill_at(monkeypatch, 20, lambda: vm.pid)
    with pytest.raises(DtvmError) as info:
        live.read_socket(vm.address, timeout=10)
    assert "\n" not in str(info.value)
    vm.proc.wait(timeout=10)


@needs_qemu(X86)
def test_qemu_exits_at_once_without_message() -> None:
    with pytest.raises(live.QemuExitedError, match="before answering") as info:
        live.read_argv([X86, "-M", "help"])
    assert info.value.status == 0
    assert "Supported machines" in str(info.value)


# ---------------------------------------------------------------------------------- snapshots


def test_snapshot_dict_round_trip_and_errors() -> None:
    snap = Snapshot(
        arch="aarch64", machine_type="virt-7.2", machine_props={"acpi": "auto"}, machine_prop_defaults={},
        qtree="bus: main-system-bus\n", type_props={"pl011": [{"name": "chardev", "type": "str"}]},
        peripherals=[], cpus=[], cpu_types={}, hotpluggable_cpus=[], memory={"base-memory": 1},
        memdevs=[], block=[], block_nodes=[], chardevs=[], network="", dtb=FDT_MAGIC + bytes(1000) + b"\x01" + bytes(5000),
        argv=["qemu-system-aarch64"], version={"qemu": {"major": 7}},
    )
    data = snap.to_dict()
    assert len(data["dtb"]["base64"]) < 2000  # trailing padding is not spelled out
    assert Snapshot.from_dict(json.loads(json.dumps(data))) == snap
    for broken in [[], {"format": 99}, {**data, "qtree": 3}, {k: v for k, v in data.items() if k != "cpus"},
                   {**data, "dtb": {"size": 1, "base64": "AAAA"}}, {**data, "peripherals": [{"x": 1}]}]:
        with pytest.raises(SnapshotFormatError):
            Snapshot.from_dict(broken)
    with pytest.raises(SnapshotFormatError):
        Snapshot.from_json("{not json")


def test_saved_snapshots_load() -> None:
    saved = sorted((ROOT / "fixtures" / "qemu-snapshots").glob("*.json"))
    assert saved, "fixtures/qemu-snapshots is empty (scripts/dump_qemu_snapshots.py writes it)"
    for path in saved:
        snap = Snapshot.from_json(path.read_bytes())
        assert snap.argv and snap.qtree and snap.cpus, path.name
        assert (snap.dtb is None) == snap.arch.startswith("x86"), path.name


def test_qmp_layer_does_not_import_the_process_layer() -> None:
    """qmp (protocol and client) is below live (processes): importing it must not load live."""
    code = "import sys, dtvm.qemu.qmp; print('dtvm.qemu.live' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
