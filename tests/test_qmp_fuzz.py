"""Hostile QMP peers: seeded sessions through a proxy that mutates a real QEMU 7.2's answers, and a
fake peer that speaks QMP badly.

Oracle: QEMU itself for everything the proxy leaves alone (an unmutated session must succeed and
describe the VM as a direct read does), and the contract for the rest: every session ends in
success or in one line on stderr naming what went wrong, with a nonzero exit, within the
deadline, without a traceback, and leaves nothing behind (no thread, no private directory, the
VM still answering).

``DTVM_FUZZ_QMP_SESSIONS`` sets the number of proxy sessions (default 240; ``make fuzz-qmp`` runs
3000); ``DTVM_FUZZ_QMP_SEED`` the first seed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dtvm.cli.group import cli
from dtvm.errors import DtvmError

from .qemu_helpers import VM, QmpFailed, needs_qemu, start_vm, stop_vm
from .qmp_proxy import MutatingProxy, Plan

X86 = "qemu-system-x86_64"
AARCH64 = "qemu-system-aarch64"

SESSIONS = int(os.environ.get("DTVM_FUZZ_QMP_SESSIONS", "240"))
FIRST_SEED = int(os.environ.get("DTVM_FUZZ_QMP_SEED", "1900"))
TIMEOUT = 1.5  # dtvm's --timeout per session: stalls end here


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # short: unix socket paths are limited to 107 bytes
    path = Path(tempfile.mkdtemp(prefix="q19-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _start(argv: list[str], where: Path) -> VM:
    return start_vm(argv, where, paused=True, timeout=20)


def _outcome(result: Any, command: str, plan: Plan | None) -> str:
    """'ok' or 'error'; fails the test on a traceback or a message that is not one line."""
    what = f"seed {plan.seed} ({plan.how} at message {plan.at})" if plan else "no mutation"
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        import traceback

        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        pytest.fail(f"{command}, {what}: traceback\n{trace}")
    assert "Traceback" not in result.stderr, f"{command}, {what}: {result.stderr}"
    if result.exit_code == 0:
        return "ok"
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"{command}, {what}: expected one line, got {result.stderr!r}"
    assert lines[0].startswith(f"dtvm {command}: "), f"{command}, {what}: {lines[0]!r}"
    return "error"


@contextlib.contextmanager
def _tempdir(path: Path) -> Iterator[None]:
    """dtvm's private directories go here (tempfile caches TMPDIR: set its own variable too)."""
    old = tempfile.tempdir
    tempfile.tempdir = str(path)
    try:
        yield
    finally:
        tempfile.tempdir = old


def _leftovers(tmp: Path) -> list[str]:
    return sorted(os.listdir(tmp))


class Harness:
    def __init__(self, vm: VM, proxy_path: Path, tmp: Path) -> None:
        self.vm = vm
        self.proxy = MutatingProxy(vm.qmp_path, str(proxy_path))
        self.address = f"unix:{proxy_path}"
        self.tmp = tmp
        self.runner = CliRunner()

    def run(self, args: list[str], plan: Plan | None) -> Any:
        self.proxy.expect(plan)
        start = time.monotonic()
        with _tempdir(self.tmp):
            result = self.runner.invoke(cli, args, catch_exceptions=True)
        elapsed = time.monotonic() - start
        assert self.proxy.wait_session_end(10), "the proxy session did not end"
        # bounded: connect + read + (hotplug) a second read + describe; stalls end at --timeout
        assert elapsed < 4 * TIMEOUT + 10, f"{args}, {plan}: took {elapsed:.1f} s"
        return result


def _assert_clean(h: Harness, threads: int) -> None:
    assert _leftovers(h.tmp) == [], "private directories left behind"
    deadline = time.monotonic() + 5
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= threads, [t.name for t in threading.enumerate()]
    assert h.vm.proc.poll() is None, "the VM died"
    assert h.vm.qmp("query-status")["status"] in ("prelaunch", "paused", "running")


@needs_qemu(X86, AARCH64)
def test_mutating_proxy_sessions(workdir: Path) -> None:
    """qemu2dtb --qmp, hotplug add/del and watch through the mutating proxy: a few hundred seeded sessions."""
    q35 = _start([X86, "-M", "q35", "-device", "virtio-net-pci,id=n0", "-device", "qemu-xhci,id=usb",
                  "-device", "usb-tablet,id=tab", "-drive", "if=none,id=d0,driver=null-co",
                  "-device", "virtio-blk-pci,drive=d0,id=blk0"], workdir / "q35")
    virt = _start([AARCH64, "-M", "virt", "-device", "pcie-root-port,id=rp1,chassis=1",
                   "-device", "pcie-root-port,id=rp2,chassis=2"], workdir / "virt")
    tmp = workdir / "tmp"
    tmp.mkdir()
    harnesses = {"q35": Harness(q35, workdir / "p1.sock", tmp), "virt": Harness(virt, workdir / "p2.sock", tmp)}
    threads = threading.active_count() + 2  # the two proxies' accept threads
    counts: dict[str, int] = {}
    try:
        # unmutated sessions succeed: the proxy itself is transparent
        for h in harnesses.values():
            r = h.run(["qemu2dtb", "--qmp", h.address, "--timeout", "20"], None)
            assert _outcome(r, "qemu2dtb", None) == "ok", r.stderr
        for n in range(SESSIONS):
            seed = FIRST_SEED + n
            plan = Plan.make(seed)
            began = time.monotonic()
            job = ("qemu2dtb", "qemu2dtb", "hotplug", "qemu2dtb", "qemu2dtb", "watch")[seed % 6]
            h = harnesses["virt" if job == "hotplug" or seed % 4 == 0 else "q35"]
            if job == "watch":
                outcome = _watch_session(h, plan, tmp)
            elif job == "qemu2dtb":
                args = ["qemu2dtb", "--qmp", h.address, "--timeout", str(TIMEOUT)]
                if seed % 5 == 0:
                    args += ["-o", str(tmp / "vm.dtb")]
                outcome = _outcome(h.run(args, plan), "qemu2dtb", plan)
            else:
                outcome = _hotplug_session(h, plan)
            if os.environ.get("DTVM_FUZZ_QMP_VERBOSE"):
                print(f"seed {seed} {job} {plan.how}@{plan.at} {outcome} {time.monotonic() - began:.2f}s")
            key = f"{job}:{outcome}"
            counts[key] = counts.get(key, 0) + 1
            for name in ("vm.dtb", "vm.backend.dtbo"):
                (tmp / name).unlink(missing_ok=True)
            _assert_clean(h, threads)
    finally:
        for h in harnesses.values():
            h.proxy.close()
        stop_vm(q35)
        stop_vm(virt)
    print(f"\nmutating QMP proxy: {SESSIONS} sessions: {counts}")
    # the mix is real: both outcomes happen for both commands
    assert counts.get("qemu2dtb:ok", 0) and counts.get("qemu2dtb:error", 0)
    assert counts.get("hotplug:ok", 0) and counts.get("hotplug:error", 0)
    assert counts.get("watch:ok", 0) and counts.get("watch:error", 0)


def _watch_session(h: Harness, plan: Plan, tmp: Path) -> str:
    """hotplug watch for two reads (the API: the command runs until Ctrl-C or QEMU goes away)."""
    from dtvm.qemu.hotplug import Outputs, watch

    h.proxy.expect(plan)
    start = time.monotonic()
    try:
        with _tempdir(tmp):
            watch(h.address, Outputs.from_options(str(tmp / "vm.dtb"), None), interval=0.05, timeout=TIMEOUT,
                  max_rounds=2)
        outcome = "ok"
    except DtvmError as exc:
        assert "\n" not in str(exc), (plan, str(exc))
        outcome = "error"
    assert h.proxy.wait_session_end(10), "the proxy session did not end"
    assert time.monotonic() - start < 4 * TIMEOUT + 10, plan
    return outcome


def _hotplug_session(h: Harness, plan: Plan) -> str:
    """hotplug add of a NIC on a root port, then del; the oracle QMP connection tidies up after."""
    ident = f"hp{plan.seed}"
    add = h.run(["hotplug", "--qmp", h.address, "--timeout", str(TIMEOUT), "add",
                 f"virtio-net-pci,id={ident},bus=rp{1 + plan.seed % 2}"], plan)
    outcome = _outcome(add, "hotplug", plan)
    if outcome == "ok":
        again = Plan.make(plan.seed * 7 + 1)
        delete = h.run(["hotplug", "--qmp", h.address, "--timeout", str(TIMEOUT), "del", ident, "--wait", "1"], again)
        _outcome(delete, "hotplug", again)
    # whatever happened, the next session starts from the same VM: remove the device directly
    try:
        h.vm.qmp("device_del", {"id": ident})
    except QmpFailed:
        pass
    return outcome


# ------------------------------------------------------------------------- a peer that speaks badly

GREETING = {"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""},
                    "capabilities": []}}
OK = {"return": {}}


class BadPeer:
    """A scripted QMP server: ``script`` maps the n-th client message (0: before any) to raw bytes."""

    def __init__(self, path: Path, greeting: bytes | None, answer: Any) -> None:
        self.path = str(path)
        self.greeting = greeting
        self.answer = answer  # callable(n, request) -> bytes | None (None: hang up)
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
            try:
                if self.greeting is not None:
                    conn.sendall(self.greeting)
                for n, request in enumerate(_requests(conn, self.stop)):
                    data = self.answer(n, request)
                    if data is None:
                        return
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(5)


def _requests(conn: socket.socket, stop: threading.Event) -> Iterator[dict[str, Any]]:
    """The client's JSON objects as they come (qemu.qmp sends them without a newline)."""
    decoder = json.JSONDecoder()
    buffer = ""
    while not stop.is_set():
        data = conn.recv(65536)
        if not data:
            return
        buffer += data.decode("utf-8", "replace")
        while True:
            buffer = buffer.lstrip()
            try:
                obj, end = decoder.raw_decode(buffer)
            except ValueError:
                break
            buffer = buffer[end:]
            yield obj


def _line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def _reply(request: dict[str, Any], value: Any) -> bytes:
    return _line({"return": value, "id": request.get("id")})


def _after_negotiation(then: Any) -> Any:
    def answer(n: int, request: dict[str, Any]) -> bytes | None:
        if n == 0:
            return _line({**OK, "id": request.get("id")})
        return then(n, request)

    return answer


_GOOD_GREETING = _line(GREETING)
BAD_PEERS: dict[str, tuple[bytes | None, Any]] = {
    "greeting-qmp-not-object": (_line({"QMP": [1, 2]}), lambda n, r: _line(OK)),
    "greeting-capabilities-string": (_line({"QMP": {"version": {}, "capabilities": "oob"}}),
                                     lambda n, r: _line({**OK, "id": r.get("id")})),
    "greeting-version-list": (_line({"QMP": {"version": [], "capabilities": []}}),
                              _after_negotiation(lambda n, r: None)),
    "greeting-deep": (b'{"QMP": ' + b"[" * 50000 + b"]" * 50000 + b"}\n", lambda n, r: None),
    "greeting-twice": (_GOOD_GREETING * 2, lambda n, r: _line({**OK, "id": r.get("id")})),
    "greeting-not-utf8": (b'{"QMP": "\xff\xfe"}\n', lambda n, r: None),
    "greeting-huge": (b'{"QMP": "' + b"a" * (9 << 20) + b'"}\n', lambda n, r: None),
    "negotiation-error": (_GOOD_GREETING, lambda n, r: _line({"error": {"class": "GenericError", "desc": "no"},
                                                               "id": r.get("id")})),
    "negotiation-bad-error": (_GOOD_GREETING, lambda n, r: _line({"error": [1], "id": r.get("id")})),
    "negotiation-list-id": (_GOOD_GREETING, lambda n, r: _line({**OK, "id": [r.get("id")]})),
    "negotiation-event-instead": (_GOOD_GREETING, lambda n, r: _line({"event": "STOP", "data": {}})),
    "negotiation-hangup": (_GOOD_GREETING, lambda n, r: None),
    "negotiation-null": (_GOOD_GREETING, lambda n, r: b"null\n"),
    "reply-list-id": (_GOOD_GREETING, _after_negotiation(lambda n, r: _line({"return": {}, "id": [1]}))),
    "reply-dict-id": (_GOOD_GREETING, _after_negotiation(lambda n, r: _line({"return": {}, "id": {"a": 1}}))),
    "reply-no-return": (_GOOD_GREETING, _after_negotiation(lambda n, r: _line({"id": r.get("id")}))),
    "reply-unknown-id-then-hangup": (_GOOD_GREETING, _after_negotiation(
        lambda n, r: _line({"return": {}, "id": "other"}) if n < 3 else None)),
    "reply-event-name-list": (_GOOD_GREETING, _after_negotiation(
        lambda n, r: _line({"event": ["x"], "data": {}}) + _reply(r, {}))),
    "reply-event-data-list": (_GOOD_GREETING, _after_negotiation(
        lambda n, r: _line({"event": "DEVICE_DELETED", "data": [1]}) + _reply(r, {}))),
    "reply-event-flood": (_GOOD_GREETING, _after_negotiation(
        lambda n, r: _line({"event": "RTC_CHANGE", "data": {}}) * 50000 + _reply(r, 5))),
    "reply-error-without-id": (_GOOD_GREETING, _after_negotiation(
        lambda n, r: _line({"error": {"class": "GenericError", "desc": "JSON parse error"}}))),
    "reply-wrong-types": (_GOOD_GREETING, _after_negotiation(lambda n, r: _reply(r, [{"name": 5, "type": None}]))),
    "reply-int-everywhere": (_GOOD_GREETING, _after_negotiation(lambda n, r: _reply(r, 1))),
    "reply-string-everywhere": (_GOOD_GREETING, _after_negotiation(lambda n, r: _reply(r, "bus: main-system-bus"))),
    "reply-deep": (_GOOD_GREETING, _after_negotiation(
        lambda n, r: b'{"return": ' + b"[" * 5000 + b"]" * 5000 + b', "id": ' + json.dumps(r.get("id")).encode() + b"}\n")),
}


@pytest.mark.parametrize("name", sorted(BAD_PEERS))
def test_bad_peer(tmp_path: Path, name: str) -> None:
    """A peer that abuses the greeting, the negotiation or the reply routing: one line, bounded time."""
    greeting, answer = BAD_PEERS[name]
    sock_dir = Path(tempfile.mkdtemp(prefix="q19p-", dir="/tmp"))
    peer = BadPeer(sock_dir / "s", greeting, answer)
    runner = CliRunner()
    try:
        for args in (["qemu2dtb", "--qmp", f"unix:{peer.path}", "--timeout", "2"],):
            start = time.monotonic()
            with _tempdir(tmp_path):
                result = runner.invoke(cli, args)
            elapsed = time.monotonic() - start
            assert elapsed < 8, f"{name}: {elapsed:.1f} s"
            assert _outcome(result, "qemu2dtb", None) == "error", result.stdout
            assert peer.path in result.stderr or "QEMU" in result.stderr, result.stderr
    finally:
        peer.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["reply-wrong-types", "reply-list-id", "reply-event-name-list", "reply-deep"])
def test_bad_peer_hotplug(tmp_path: Path, name: str) -> None:
    greeting, answer = BAD_PEERS[name]
    sock_dir = Path(tempfile.mkdtemp(prefix="q19p-", dir="/tmp"))
    peer = BadPeer(sock_dir / "s", greeting, answer)
    try:
        with _tempdir(tmp_path):
            result = CliRunner().invoke(cli, ["hotplug", "--qmp", f"unix:{peer.path}", "--timeout", "2", "add",
                                              "virtio-net-pci,id=x"])
        assert _outcome(result, "hotplug", None) == "error"
    finally:
        peer.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("command", "arguments", "value", "expected"), [
    ("query-target", None, {"arch": ["x86_64"]}, "the answer to query-target is not what QEMU answers: "
                                                  "arch: expected a string, got an array"),
    ("qom-get", {"path": "/machine", "property": "type"}, 5,
     "the answer to qom-get /machine type is not what QEMU answers: the answer: expected a string, got an integer"),
    ("query-block", None, [{"device": "d0", "removable": False, "inserted": {"file": "f", "drv": "raw", "ro": "no"}}],
     "the answer to query-block is not what QEMU answers: [0].inserted.ro: expected a boolean, got a string"),
    ("qom-list", {"path": "/machine"}, {"name": "x"},
     "the answer to qom-list /machine is not what QEMU answers: the answer: expected an array, got an object"),
    ("query-cpus-fast", None, [{"qom-path": "/machine/cpu"}],
     "the answer to query-cpus-fast is not what QEMU answers: [0]: member 'cpu-index' is missing"),
])
def test_reply_error_names_the_command(command: str, arguments: Any, value: Any, expected: str) -> None:
    """The message of a wrong answer names the command and the place in the answer."""
    from dtvm.qemu import qmp
    from dtvm.qemu.errors import QmpReplyError

    def answer(n: int, request: dict[str, Any]) -> bytes | None:
        if n == 0:
            return _line({**OK, "id": request.get("id")})
        return _reply(request, value)

    sock_dir = Path(tempfile.mkdtemp(prefix="q19p-", dir="/tmp"))
    peer = BadPeer(sock_dir / "s", _GOOD_GREETING, answer)

    async def ask() -> Any:
        session = qmp.QmpSession("peer")
        try:
            await session.connect(peer.path)
            return await session.execute(command, arguments)
        finally:
            await session.close()

    try:
        with pytest.raises(QmpReplyError) as info:
            qmp.run(ask)
    finally:
        peer.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
    assert str(info.value) == f"peer: {expected}"


# ------------------------------------------------------------ the QEMU that dtvm starts itself

STARTED_SESSIONS = int(os.environ.get("DTVM_FUZZ_QMP_STARTED", "30"))


@needs_qemu(X86)
def test_mutated_answers_of_started_qemu(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    """``qemu2dtb -- ARGV`` (and so ``machine show --online`` and dtb2qemu's check, which read the
    same way) talks to the QEMU it starts over a private socket, where no proxy can sit: here the
    client's reader mutates one seeded answer instead. Each run: success or one line, and the QEMU
    killed and its directory removed."""
    import random

    from qemu.qmp.message import Message

    from dtvm.qemu import qmp

    from .qemu_helpers import qemu_pids_with
    from .qmp_proxy import VALUE_MUTATIONS, mutate_value

    state: dict[str, Any] = {"plan": None, "n": 0}
    real = qmp._QuietClient._do_recv

    async def do_recv(self: Any) -> Message:
        msg = await real(self)
        plan = state["plan"]
        if plan is not None and state["n"] == plan.at:
            data = dict(msg)
            mutate_value(plan, data)
            msg = Message(data)
        state["n"] += 1
        return msg

    monkeypatch.setattr(qmp._QuietClient, "_do_recv", do_recv)
    tmp = workdir / "started"
    tmp.mkdir()
    runner = CliRunner()
    counts: dict[str, int] = {}
    for n in range(STARTED_SESSIONS):
        rng = random.Random(4200 + n)
        plan = Plan(4200 + n, rng.randrange(2, 150), rng.choice(VALUE_MUTATIONS), rng)
        state.update(plan=plan, n=0)
        marker = f"dtvm-fuzz-{plan.seed}"
        binary, machine = ((X86, "q35"), (X86, "pc"), (AARCH64, "virt"))[n % 3]
        with _tempdir(tmp):
            result = runner.invoke(cli, ["qemu2dtb", "--timeout", "20", "--", binary, "-M", machine,
                                         "-name", marker])
        outcome = _outcome(result, "qemu2dtb", plan)
        counts[outcome] = counts.get(outcome, 0) + 1
        assert qemu_pids_with(marker) == [], plan
        assert os.listdir(tmp) == [], plan
    print(f"\nmutated answers of started QEMU: {STARTED_SESSIONS} runs: {counts}")
    assert counts.get("ok") and counts.get("error")
