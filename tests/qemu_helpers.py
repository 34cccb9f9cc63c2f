"""Starting and stopping real QEMU in tests, independently of dtvm's own QMP code.

Tests that need a VM of their own (to read it with ``read_socket``, to hot-plug into it, to compare
dtvm's answers with QEMU's) start it here: paused by default, ``-display none``, a QMP socket in the
test's ``tmp_path``, stdin from /dev/null and stdout/stderr in files.  The ``qemu_vm`` fixture stops
every VM it started by pid in its finalizer and checks the process is gone.

``VM.qmp`` talks to the VM over a plain socket (one connection per command), so oracle facts do not
depend on the code under test.  Usage::

    from .qemu_helpers import VMs, needs_qemu

    @pytest.fixture
    def vms(tmp_path):
        pool = VMs(tmp_path)
        yield pool
        pool.stop_all()

    @needs_qemu("qemu-system-x86_64")
    def test_x(vms):
        vm = vms.start(["qemu-system-x86_64", "-M", "q35"])
        assert vm.qmp("query-status")["status"] == "prelaunch"

(or import the ready-made ``qemu_vm`` factory fixture, with ``# noqa: F811`` where a test takes it).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dtvm.qemu.live import debian_package

_tags = itertools.count()

__all__ = [
    "VM",
    "VMs",
    "child_qemu_pids",
    "have_qemu",
    "migrate_qmp",
    "needs_qemu",
    "needs_qemu10",
    "pid_alive",
    "qemu10",
    "qemu10_prefix",
    "qemu_pids_with",
    "qemu_vm",
    "start_vm",
    "stop_vm",
]


def have_qemu(binary: str) -> bool:
    return shutil.which(binary) is not None


def needs_qemu(*binaries: str) -> pytest.MarkDecorator:
    """Skip unless every binary is installed; the reason names the Debian package to install."""
    missing = [b for b in binaries if not have_qemu(b)]
    reason = ", ".join(f"{b} is not installed (Debian package {debian_package(b) or '?'})" for b in missing)
    return pytest.mark.skipif(bool(missing), reason=reason or "QEMU present")


#: where ``scripts/install-qemu10`` puts QEMU 10.0 unless ``$DTVM_QEMU10`` names another prefix
QEMU10_DEFAULT_PREFIX = "/opt/dtvm/qemu-10.0.2"


def qemu10_prefix() -> str:
    """The prefix of the private QEMU 10.0 (``$DTVM_QEMU10``, else the installer's default)."""
    return os.environ.get("DTVM_QEMU10") or QEMU10_DEFAULT_PREFIX


def qemu10(binary: str) -> str:
    """The wrapper of QEMU 10.0's ``binary`` (``qemu-system-x86_64``): a path, for argv[0]."""
    return os.path.join(qemu10_prefix(), "bin", binary)


def needs_qemu10(*binaries: str) -> pytest.MarkDecorator:
    """Skip unless QEMU 10.0's wrappers are installed; the reason says how to get them."""
    missing = [b for b in binaries if not os.access(qemu10(b), os.X_OK)]
    reason = (f"QEMU 10.0's {', '.join(missing)} is not installed in {qemu10_prefix()} "
              "(scripts/install-qemu10 installs it there, make test runs it; $DTVM_QEMU10 names another prefix)")
    return pytest.mark.skipif(bool(missing), reason=reason if missing else "QEMU 10.0 present")


def pid_alive(pid: int) -> bool:
    """True while a process with this pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # the state letter follows the command name in parentheses (which may contain spaces)
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"


def child_qemu_pids() -> list[int]:
    """Live ``qemu-system-*`` processes whose parent is this (test) process."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index(b"(") + 1 : stat.rindex(b")")]
        rest = stat[stat.rindex(b")") + 2 :].split()
        if comm.startswith(b"qemu-system") and int(rest[1]) == me and rest[0] != b"Z":
            found.append(int(entry))
    return found


def qemu_pids_with(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker`` (e.g. a unique ``-name``)."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if needle in cmdline and pid_alive(int(entry)):
            found.append(int(entry))
    return found


class QmpFailed(Exception):
    """QEMU answered a command with an error (``error_class``, ``desc``)."""

    def __init__(self, command: str, error: dict[str, Any]) -> None:
        self.error_class = str(error.get("class"))
        self.desc = str(error.get("desc"))
        super().__init__(f"{command}: {self.error_class}: {self.desc}")


@dataclass
class VM:
    """A QEMU process with a QMP socket of its own."""

    argv: list[str]
    proc: subprocess.Popen[bytes]
    qmp_path: str
    directory: Path
    stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> str:
        """What ``read_socket`` and ``dtvm qemu2dtb --qmp`` take."""
        return f"unix:{self.qmp_path}"

    def stderr(self) -> str:
        return (self.directory / "qemu.stderr").read_text(errors="replace")

    def qmp(self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float = 10.0) -> Any:
        """Run one QMP command on a fresh connection and return its ``return`` value."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.qmp_path)
            f = s.makefile("rwb")
            _read_reply(f)  # greeting
            # QEMU can hand a fresh connection the reply to a command the previous client sent
            # just before it hung up (measured: the QMP fuzz's proxy sessions); ids tell them apart
            tag = f"t{next(_tags)}"
            _send(f, {"execute": "qmp_capabilities", "id": f"{tag}c"})
            _read_reply(f, f"{tag}c")
            msg: dict[str, Any] = {"execute": command, "id": tag}
            if arguments is not None:
                msg["arguments"] = arguments
            _send(f, msg)
            reply = _read_reply(f, tag)
        if "error" in reply:
            raise QmpFailed(command, reply["error"])
        return reply["return"]

    def hmp(self, command_line: str) -> str:
        return str(self.qmp("human-monitor-command", {"command-line": command_line}))

    def stop(self) -> None:
        stop_vm(self)


#: a QMP command sender: ``send("migrate", uri=...)`` returns the reply's ``return`` value
QmpSend = Callable[..., Any]


def migrate_qmp(source: QmpSend, dest: QmpSend, uri: str, dest_exited: Callable[[], bool], *,
                timeout: float = 60.0) -> dict[str, Any]:
    """Migrate one running QEMU into another waiting with ``-incoming defer``, over QMP.

    "completed" only when both sides say so: the source can finish sending before the destination
    refuses what it loaded (the destination then exits, which ``dest_exited`` tells). The senders
    hide how each side is reached (a QMP socket, libvirt's monitor passthrough), so the plain-QEMU
    and the libvirt tests share this one loop. Returns the last ``query-migrate`` that decided it.
    """
    dest("migrate-incoming", uri=uri)
    source("migrate", uri=uri)
    deadline = time.monotonic() + timeout
    while True:
        status = source("query-migrate")
        assert isinstance(status, dict), status
        if status.get("status") in ("completed", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, f"migration still running after {timeout} s: {status}"
        time.sleep(0.02)
    if status.get("status") != "completed":
        return status
    while True:
        if dest_exited():
            return {"status": "failed", "destination": "exited"}
        try:
            answer = dest("query-migrate")
        except Exception:  # the destination's monitor goes with it when the load fails
            if dest_exited():
                return {"status": "failed", "destination": "exited"}
            return {"status": "failed", "destination": "lost its monitor"}
        if isinstance(answer, dict) and answer.get("status") in ("completed", "failed"):
            return answer
        assert time.monotonic() < deadline, f"destination still loading after {timeout} s: {answer}"
        time.sleep(0.02)


def _send(f: Any, msg: dict[str, Any]) -> None:
    f.write(json.dumps(msg).encode() + b"\n")
    f.flush()


def _read_reply(f: Any, tag: str | None = None) -> dict[str, Any]:
    """The next message that is not an event (and carries ``tag`` as its id, when given)."""
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("QEMU closed the QMP connection")
        msg = json.loads(line)
        if "event" in msg:
            continue
        if tag is None or msg.get("id") == tag:
            return msg  # type: ignore[no-any-return]


def start_vm(argv: list[str], directory: Path | str, *, paused: bool = True, timeout: float = 10.0,
             qmp_name: str = "qmp.sock") -> VM:
    """Start ``argv`` with ``-display none`` and a QMP socket in ``directory`` (``-S`` when paused).

    Returns once QEMU answers on the socket; raises RuntimeError with QEMU's stderr if it exits
    first, and kills it if it does not answer within ``timeout``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sock = str(directory / qmp_name)
    if len(sock.encode()) > 100:  # a unix socket path may not exceed 107 bytes
        sock = os.path.join(tempfile.mkdtemp(prefix="dtvm-vm-", dir="/tmp"), qmp_name)
    extra = ["-S"] if paused else []
    cmd = [*argv, *extra, "-display", "none", "-qmp", f"unix:{sock},server=on,wait=off"]
    with open(directory / "qemu.stdout", "wb") as out, open(directory / "qemu.stderr", "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    vm = VM(list(argv), proc, sock, directory)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            message = vm.stderr().strip()
            raise RuntimeError(f"QEMU exited with {proc.returncode}: {message}")
        if os.path.exists(sock):
            try:
                vm.qmp("query-status", timeout=max(0.1, deadline - time.monotonic()))
                return vm
            except (OSError, ConnectionError):
                pass
        if time.monotonic() > deadline:
            stop_vm(vm)
            raise RuntimeError(f"QEMU did not answer on {sock} within {timeout} s")
        time.sleep(0.005)


def stop_vm(vm: VM) -> None:
    """Kill by pid, reap, and check the process is gone."""
    if not vm.stopped:
        if vm.proc.poll() is None:
            vm.proc.kill()
        vm.proc.wait(timeout=10)
        vm.stopped = True
        if not vm.qmp_path.startswith(str(vm.directory)):
            shutil.rmtree(os.path.dirname(vm.qmp_path), ignore_errors=True)
    assert not pid_alive(vm.pid), f"QEMU pid {vm.pid} still running after kill"


class VMs:
    """VMs started for one test, all stopped by pid (and checked gone) by ``stop_all``.

    A test module's fixture is three lines (importing a fixture by name trips ruff's F811)::

        @pytest.fixture
        def vms(tmp_path):
            pool = VMs(tmp_path)
            yield pool
            pool.stop_all()
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.started: list[VM] = []

    def start(self, argv: list[str], *, paused: bool = True, timeout: float = 10.0) -> VM:
        vm = start_vm(argv, self.directory / f"vm{len(self.started)}", paused=paused, timeout=timeout)
        self.started.append(vm)
        return vm

    def stop_all(self) -> None:
        for vm in self.started:
            stop_vm(vm)


@pytest.fixture
def qemu_vm(tmp_path: Path) -> Iterator[Callable[..., VM]]:
    """Factory fixture: ``qemu_vm(argv, paused=True)`` starts a VM; all are stopped by pid afterwards."""
    pool = VMs(tmp_path)
    yield pool.start
    pool.stop_all()


def qemu2dtb_run(argv: list[str], out: Path, offline: bool) -> subprocess.CompletedProcess[str]:
    """``dtvm qemu2dtb [--offline] -o OUT -- ARGV`` in a process of its own (its messages and exit)."""
    import sys

    flags = ["--offline"] if offline else []
    return subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", *flags, "-o", str(out), "--", *argv],
                          capture_output=True, text=True, timeout=120)


def assert_offline_matches_online(argv: list[str], directory: Path) -> None:
    """Offline writes what online reads from QEMU (guest tree and back-end overlay, byte for
    byte); where QEMU refuses the command line, offline refuses it too, in one line. Skipped
    where the QEMU binary, the online oracle, is not installed."""
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} (the online oracle) is not installed")
    online = qemu2dtb_run(argv, directory / "on.dtb", offline=False)
    offline = qemu2dtb_run(argv, directory / "off.dtb", offline=True)
    assert "Traceback" not in offline.stderr
    if online.returncode != 0:
        assert offline.returncode != 0, (argv, online.stderr)
        assert len(offline.stderr.strip().splitlines()) == 1, offline.stderr
        return
    assert offline.returncode == 0, (argv, offline.stderr)
    assert (directory / "off.dtb").read_bytes() == (directory / "on.dtb").read_bytes(), argv
    assert (directory / "off.backend.dtbo").read_bytes() == (directory / "on.backend.dtbo").read_bytes(), argv
