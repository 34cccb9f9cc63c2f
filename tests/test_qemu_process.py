"""The QEMU processes dtvm starts: confined, in their own process group, gone whatever happens to dtvm.

Oracles: the process table (``/proc/PID/cmdline``, ``status``, ``cwd``, process groups; no process
with the test's unique ``-name`` marker may survive), the file system (no private directory left in
the test's own TMPDIR), and QEMU itself run directly by the test (what it does in the user's
working directory).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dtvm.qemu import live, process

from .qemu_helpers import child_qemu_pids, needs_qemu, pid_alive, qemu_pids_with

X86 = "qemu-system-x86_64"
AARCH64 = "qemu-system-aarch64"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_leftover_qemu() -> Iterator[None]:
    before = set(child_qemu_pids())
    yield
    left = set(child_qemu_pids()) - before
    assert not left, f"qemu processes left running: {sorted(left)}"


@pytest.fixture
def tmpdir_env() -> Iterator[Path]:
    """A private TMPDIR (short: socket paths) that must be empty again after each run."""
    path = Path(tempfile.mkdtemp(prefix="q19t-", dir="/tmp"))
    path.chmod(0o755)  # as /tmp's own subdirectories usually are: QEMU after -runas can reach it
    yield path
    shutil.rmtree(path, ignore_errors=True)


def marked(argv: list[str]) -> tuple[list[str], str]:
    marker = f"dtvm-proc-{uuid.uuid4().hex[:12]}"
    return [*argv, "-name", marker], marker


def wait_gone(marker: str, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not qemu_pids_with(marker):
            return []
        time.sleep(0.02)
    return qemu_pids_with(marker)


def wait_for(marker: str, child: subprocess.Popen[str], timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p in qemu_pids_with(marker) if _comm(p).startswith("qemu-system")]
        if pids:
            return pids[0]
        assert child.poll() is None, child.communicate()[1]
        assert time.monotonic() < deadline, "QEMU never started"
        time.sleep(0.01)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _status(pid: int, key: str) -> list[str]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split()[1:]
    return []


def wrapper(tmp: Path, body: str = 'qemu-system-x86_64 "$@"') -> str:
    """A "QEMU binary" that is a shell script which does not exec (QEMU is its child)."""
    path = tmp / "qemu-wrapper"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


# ------------------------------------------------------------------------------------ confinement


@needs_qemu(X86)
def test_started_qemu_is_confined(tmpdir_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir_env))
    argv, marker = marked([X86, "-M", "q35"])
    with live.start_argv(argv) as qemu:
        snap = qemu.read()
        pid = qemu.pid
        assert pid is not None and qemu.group is not None
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        sandbox = cmdline[cmdline.index(b"-sandbox") + 1].decode()
        # its own process group (led by the reaper), not dtvm's
        assert os.getpgid(pid) == qemu.group.pgid != os.getpgid(0)
        assert qemu.group.reaper is not None and os.getpgid(qemu.group.reaper.pid) == qemu.group.pgid
        # the working directory is the private directory, nothing of the user's
        assert os.readlink(f"/proc/{pid}/cwd") == qemu.dir
        assert Path(qemu.dir).parent == tmpdir_env
        assert _status(pid, "Seccomp") == ["2"]  # a seccomp filter is in force
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            assert cmdline[cmdline.index(b"-runas") + 1] == b"nobody"
            assert _status(pid, "Uid") == [str(nobody.pw_uid)] * 4
            assert set(sandbox.split(",")) == {"on", "obsolete=deny", "spawn=deny", "resourcecontrol=deny"}
        else:
            assert b"-runas" not in cmdline
            assert set(sandbox.split(",")) == {"on", "obsolete=deny", "elevateprivileges=deny", "spawn=deny",
                                               "resourcecontrol=deny"}
    assert snap.machine_type.startswith("pc-q35-")
    assert qemu_pids_with(marker) == []
    assert os.listdir(tmpdir_env) == []


@needs_qemu(X86)
def test_kill_then_close(tmpdir_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """qemu2dtb kills QEMU once it is read and describes while the kernel tears QEMU down: after
    kill() the process is dead (a zombie until close() reaps it) and the private directory still
    there; close() then leaves no process and no directory.  Oracle: the process table."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir_env))
    argv, marker = marked([X86, "-M", "q35"])
    with live.start_argv(argv) as qemu:
        qemu.read()
        pid = qemu.pid
        assert pid is not None and pid_alive(pid)
        qemu.kill()
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not pid_alive(pid)
        assert os.path.isdir(qemu.dir)
    assert qemu_pids_with(marker) == []
    assert os.listdir(tmpdir_env) == []


@needs_qemu(AARCH64)
def test_confined_qemu_still_dumps_its_dt(tmpdir_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # with -runas, QEMU writes dumpdtb as nobody: into a directory of its own inside dtvm's; a
    # TMPDIR nobody cannot traverse (mode 0700) sends the private directory to /tmp
    tmpdir_env.chmod(0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir_env))
    snap = live.read_argv([AARCH64, "-M", "virt"])
    assert snap.dtb is not None and snap.dtb[:4] == b"\xd0\x0d\xfe\xed"
    assert os.listdir(tmpdir_env) == []


@needs_qemu(X86)
def test_relative_names_do_not_reach_the_users_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bare romfile name: QEMU run in the user's directory loads the user's file; dtvm's QEMU runs
    in the private directory and finds nothing."""
    (tmp_path / "myrom.bin").write_bytes(bytes(4096))
    args = [X86, "-M", "q35", "-nodefaults", "-device", "e1000,romfile=myrom.bin"]
    oracle = subprocess.Popen([*args, "-S", "-display", "none"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            oracle.wait(timeout=1.5)  # it runs: the ROM was found in the working directory
    finally:
        oracle.kill()
        oracle.wait()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(live.QemuExitedError, match=re.escape('failed to find romfile "myrom.bin"')):
        live.read_argv(args)


@needs_qemu(X86)
def test_qemu_without_seccomp_is_started_again_without_sandbox(tmp_path: Path) -> None:
    fake = wrapper(tmp_path, 'for a in "$@"; do [ "$a" = -sandbox ] && { '
                             'echo "qemu-system-x86_64: -sandbox support is not enabled in this QEMU binary" >&2; '
                             'exit 1; }; done\nexec qemu-system-x86_64 "$@"')
    argv, marker = marked([fake, "-M", "q35"])
    snap = live.read_argv(argv)
    assert snap.machine_type.startswith("pc-q35-")
    assert live._SANDBOX_OK[fake] is False
    assert qemu_pids_with(marker) == []


# ------------------------------------------------------------------------------ process lifetime


@needs_qemu(X86)
@pytest.mark.parametrize("how", ["success", "timeout"])
def test_wrapper_script_does_not_leak_qemu(tmp_path: Path, how: str) -> None:
    fake = wrapper(tmp_path)
    if how == "success":
        argv, marker = marked([fake, "-M", "q35"])
        live.read_argv(argv)
    else:
        argv, marker = marked([fake, "-M", "q35", "-chardev",
                               f"socket,id=w,path={tmp_path / 'w.sock'},server=on,wait=on"])
        with pytest.raises(live.QemuTimeoutError):
            live.read_argv(argv, timeout=1.0)
    assert wait_gone(marker, 1.0) == []


_HOLD = """
import json, sys, time
from dtvm.qemu import live
q = live.start_argv(json.loads(sys.argv[1]), timeout=120)
print(q.pid, flush=True)
time.sleep(120)
"""


@needs_qemu(X86)
@pytest.mark.parametrize("binary", ["direct", "wrapper"])
def test_sigkill_of_dtvm_kills_qemu(tmp_path: Path, tmpdir_env: Path, binary: str) -> None:
    exe = X86 if binary == "direct" else wrapper(tmp_path)
    argv, marker = marked([exe, "-M", "q35"])
    env = {**os.environ, "TMPDIR": str(tmpdir_env)}
    child = subprocess.Popen([sys.executable, "-c", _HOLD, json.dumps(argv)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        qemu = wait_for(marker, child)
        assert pid_alive(qemu)
        assert os.getpgid(qemu) != os.getpgid(child.pid)
        child.kill()
        child.wait(timeout=10)
        assert wait_gone(marker) == [], "QEMU outlived dtvm"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


_SPAWN = """
import subprocess, sys, time
from dtvm.qemu import process
if sys.argv[1] == "preexec":
    process._setpriv = lambda: None
g = process.spawn_group(["sleep", "120"], cwd="/", stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
print(g.proc.pid, g.reaper.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("how", ["setpriv", "preexec"])
def test_parent_death_signal_without_the_reaper(how: str) -> None:
    """The reaper killed first, then dtvm by SIGKILL: the child dies by its parent-death signal
    alone (set by setpriv, or by prctl in a preexec_fn where setpriv cannot be used).  Oracle: the
    process table (the child is gone; with no parent-death signal, sleep would run for 120 s)."""
    if how == "setpriv" and shutil.which("setpriv") is None:
        pytest.skip("util-linux's setpriv is not installed (that path cannot run)")
    child = subprocess.Popen([sys.executable, "-c", _SPAWN, how], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid = 0
    try:
        assert child.stdout is not None
        pid, reaper = (int(x) for x in child.stdout.readline().split())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        for _ in range(200):  # setpriv executes sleep in the same process
            if cmdline[0] == b"sleep":
                break
            time.sleep(0.01)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[:2] == [b"sleep", b"120"]
        assert os.getpgid(pid) == reaper
        os.kill(reaper, signal.SIGKILL)
        child.kill()
        child.wait(timeout=10)
        deadline = time.monotonic() + 5
        while pid_alive(pid) and _comm(pid) == "sleep" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not (pid_alive(pid) and _comm(pid) == "sleep"), "the child outlived its parent"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if pid and pid_alive(pid) and _comm(pid) == "sleep":
            os.kill(pid, signal.SIGKILL)


@needs_qemu(X86)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT],
                         ids=lambda s: s.name)
@pytest.mark.parametrize("when", ["waiting", "0ms", "30ms", "80ms", "150ms"])
def test_signal_ends_qemu2dtb_as_ctrl_c(tmp_path: Path, tmpdir_env: Path, sig: signal.Signals, when: str) -> None:
    """The signal lands while dtvm waits for QEMU (a chardev holds QEMU before its main loop) or at
    a moment after QEMU appeared: QEMU is killed, the private directory removed, one line, exit 128 + the
    signal's number (or the read finished first: exit 0, or the signal's own status once nothing is held); never a
    traceback or a left-over."""
    args = [X86, "-M", "q35"]
    if when == "waiting":
        args += ["-chardev", f"socket,id=w,path={tmp_path / 'w.sock'},server=on,wait=on"]
    argv, marker = marked(args)
    env = {**os.environ, "TMPDIR": str(tmpdir_env)}
    child = subprocess.Popen([sys.executable, "-m", "dtvm", "qemu2dtb", "--timeout", "60", "--", *argv],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(marker, child)
        if when == "waiting":
            time.sleep(0.3)
        else:
            time.sleep(int(when[:-2]) / 1000)
        child.send_signal(sig)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "Traceback" not in err, err
    if when == "waiting" or child.returncode not in (0, -sig):
        assert child.returncode == 128 + sig, (child.returncode, err)  # as a shell reports the signal
        assert err.strip() == "dtvm qemu2dtb: interrupted", err
    # else the read had finished (exit 0), or QEMU and the directory were already gone and dtvm was
    # describing what it read: nothing held, the signal's default action ends dtvm (-sig)
    assert wait_gone(marker, 2.0) == []
    assert os.listdir(tmpdir_env) == []


def test_signal_guard_restores_handlers() -> None:
    before = {s: signal.getsignal(s) for s in process.SIGNALS}
    with process.signals_as_interrupt():
        with process.signals_as_interrupt():
            assert all(signal.getsignal(s) is process._on_signal for s in process.SIGNALS)
        assert all(signal.getsignal(s) is process._on_signal for s in process.SIGNALS)
        with pytest.raises(process.Terminated) as info:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        assert info.value.signum == signal.SIGTERM
        assert isinstance(info.value, KeyboardInterrupt)
    assert {s: signal.getsignal(s) for s in process.SIGNALS} == before


def test_ctrl_c_before_the_loop_starts_leaves_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C can land inside ``asyncio.run`` before it has started our task (CI saw it once, 80 ms
    after QEMU appeared): the interrupt must reach the user alone, without Python's "coroutine was
    never awaited" warning on stderr."""
    import asyncio
    import gc
    import warnings

    from dtvm.qemu import qmp

    def interrupted_before_start(coro: object) -> object:
        raise KeyboardInterrupt

    async def never_run() -> int:
        return 1

    monkeypatch.setattr(asyncio, "run", interrupted_before_start)
    gc.collect()  # earlier tests' garbage (their event loops) warns here, not in the block below
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(KeyboardInterrupt):
            qmp._run_here(never_run)
        gc.collect()
    assert [str(w.message) for w in seen] == []


@needs_qemu(X86)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT], ids=lambda s: s.name)
def test_signal_ends_qmp_sessions_cleanly(tmp_path: Path, tmpdir_env: Path, sig: signal.Signals) -> None:
    """hotplug watch (runs until stopped) and qemu2dtb --qmp on a VM that stopped answering: the
    signal ends them as Ctrl-C does, the private directories go, the VM keeps running."""
    from .qemu_helpers import start_vm, stop_vm

    vm = start_vm([X86, "-M", "q35"], tmpdir_env / "vm")
    env = {**os.environ, "TMPDIR": str(tmpdir_env / "t")}
    (tmpdir_env / "t").mkdir()
    try:
        watch = subprocess.Popen([sys.executable, "-m", "dtvm", "hotplug", "--qmp", vm.address, "-o",
                                  str(tmp_path / "vm.dtb"), "watch", "--interval", "0.2"],
                                 cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not (tmp_path / "vm.dtb").exists():
            assert watch.poll() is None and time.monotonic() < deadline, watch.communicate()
            time.sleep(0.02)
        watch.send_signal(sig)
        _, err = watch.communicate(timeout=30)
        assert "Traceback" not in err, err
        assert watch.returncode == 0 and "stopped watching: interrupted" in err, (watch.returncode, err)
        assert os.listdir(tmpdir_env / "t") == []
        # the VM stops answering (SIGSTOP): qemu2dtb --qmp waits on it until the signal comes
        os.kill(vm.pid, signal.SIGSTOP)
        try:
            read = subprocess.Popen([sys.executable, "-m", "dtvm", "qemu2dtb", "--qmp", vm.address,
                                     "--timeout", "60"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            time.sleep(1.5)
            assert read.poll() is None
            read.send_signal(sig)
            _, err = read.communicate(timeout=30)
        finally:
            os.kill(vm.pid, signal.SIGCONT)
        assert read.returncode == 128 + sig and err.strip() == "dtvm qemu2dtb: interrupted", (read.returncode, err)
        assert os.listdir(tmpdir_env / "t") == []
        assert vm.qmp("query-status")["status"] == "prelaunch"
    finally:
        stop_vm(vm)


@needs_qemu(X86)
@pytest.mark.skipif(not os.path.exists("/dev/net/tun") or os.geteuid() != 0,
                    reason="a tap netdev needs /dev/net/tun and root before QEMU gets to its script")
def test_sandbox_stops_helpers() -> None:
    """A tap netdev's script= is a program QEMU would run: the sandbox (spawn=deny) kills QEMU first."""
    argv, marker = marked([X86, "-M", "q35", "-netdev", "tap,id=t0,script=/bin/true,downscript=no",
                           "-device", "e1000,netdev=t0"])
    with pytest.raises(live.QemuExitedError, match="SIGSYS") as info:
        live.read_argv(argv)
    assert info.value.status == -signal.SIGSYS
    assert qemu_pids_with(marker) == []


_FINALIZER_SCRIPT = """
import os, signal, sys, time
from dtvm import cli
cli._install_signal_handlers()
class Finalized:
    def __del__(self):
        os.kill(os.getpid(), SIG)
        time.sleep(0.2)   # the signal lands here, inside the finalizer
try:
    x = Finalized()
    del x
    for _ in range(200):
        time.sleep(0.01)
    print("not interrupted")
except KeyboardInterrupt as exc:
    print("interrupted", getattr(exc, "signum", "SIGINT"))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT], ids=lambda s: s.name)
def test_signal_inside_a_finalizer_still_interrupts(sig: signal.Signals) -> None:
    """A signal that lands while Python runs a finalizer (a file the garbage collector closes: CI saw
    it in the bindings cache) is not lost with an "Exception ignored ... Traceback": it is delivered
    again once the finalizer is left, and unwinds as Ctrl-C does."""
    res = subprocess.run([sys.executable, "-c", f"SIG = {int(sig)}\n" + _FINALIZER_SCRIPT], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert "Exception ignored" not in res.stderr and "Traceback" not in res.stderr, res.stderr
    expected = "SIGINT" if sig == signal.SIGINT else str(int(sig))
    assert res.stdout.strip() == f"interrupted {expected}", (res.stdout, res.stderr)


@needs_qemu(X86)
def test_messages_name_qemu_not_its_launcher(tmp_path: Path) -> None:
    """QEMU may be started through util-linux's setpriv (its parent-death signal): what dtvm says
    about the process names the QEMU binary the user gave, never the launcher."""
    res = subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", "-o", str(tmp_path / "x.dtb"), "--timeout", "1", "--",
                          X86, "-M", "q35", "-chardev", f"socket,id=w,path={tmp_path / 'w.sock'},server=on,wait=on"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert res.stderr.startswith(f"dtvm qemu2dtb: {X86} did not answer on its QMP socket within 1 s"), res.stderr


def test_ctrl_c_wrapped_by_class_creation_is_still_an_interrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C landing in a lazy import's class creation reaches dtvm as Python 3.11's RuntimeError
    ("Error calling __set_name__") caused by KeyboardInterrupt (CI, 0 ms after QEMU appeared): one
    line, exit 130, no traceback."""
    from dtvm.cli import qemu2dtb

    def interrupted(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Error calling __set_name__ on 'Field' instance") from KeyboardInterrupt()

    monkeypatch.setattr(live, "start_argv", interrupted)
    said: list[str] = []
    with pytest.raises(SystemExit) as info:
        qemu2dtb.describe_vm(None, None, None, None, None, "text", 5.0, False, None, None, [X86, "-M", "q35"],
                             lambda text="", err=False, **kw: said.append(str(text)))
    assert info.value.code == 130 and said == ["dtvm qemu2dtb: interrupted"], (info.value.code, said)
