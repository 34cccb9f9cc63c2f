"""A QMP proxy that mutates a real QEMU's answers, with seeded choices (the fuzz target for QMP replies).

It listens on a unix socket, connects each client to the real QEMU's QMP socket, passes the
client's commands through unchanged and, for the messages QEMU sends back, applies the session's
:class:`Plan`: at one (seeded) message index it changes what QEMU said.  The mutations are the
ways a peer can be wrong: a value of another type, a member missing or renamed, huge or deeply
nested values, broken ``info qtree`` text, a reply id or event name of the wrong type, unknown
ids, truncated lines, bytes that are not JSON or not UTF-8, floods of events, delays, stalls and
hang-ups.  Everything else is QEMU's own answer, so each session is the real protocol up to the
point where it goes wrong.
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MUTATIONS", "VALUE_MUTATIONS", "MutatingProxy", "Plan", "mutate_value"]

MUTATIONS = [
    "type", "type", "type", "drop-key", "drop-key", "rename-key", "huge-string", "long-list", "deep",
    "very-deep", "qtree-lines", "qtree-lines", "surrogate", "error-reply", "bad-error", "bad-id",
    "unknown-id", "event", "bad-event", "event-flood", "truncate-close", "garbage", "not-utf8",
    "array", "duplicate", "delay", "stall", "close", "no-newline-close",
]

#: the mutations ``mutate_value`` applies to a parsed message
VALUE_MUTATIONS = ["type", "type", "drop-key", "rename-key", "huge-string", "long-list", "deep", "qtree-lines",
                   "surrogate"]

_BAD_VALUES: list[Any] = [0, -1, 2**70, 1.5, "", "x", [], {}, None, True, False, [1, [2]], {"a": 1},
                          "\u2028", "-1", "0x10", "²", "1e400"]


@dataclass
class Plan:
    """What one session does: mutate the ``at``-th message from QEMU (0 is the greeting) with ``how``."""

    seed: int
    at: int
    how: str
    rng: random.Random = field(repr=False, default_factory=random.Random)
    applied: str = ""  # what was done, for the failure message
    deep: int = 0

    @classmethod
    def make(cls, seed: int, span: int = 120) -> Plan:
        rng = random.Random(seed)
        how = rng.choice(MUTATIONS)
        # the first messages (greeting, negotiation, first answers) are the most interesting
        at = rng.randrange(3) if rng.random() < 0.25 else rng.randrange(span)
        return cls(seed, at, how, rng)


_DEEP = "__deeply nested__"


def _paths(value: Any, limit: int = 20000) -> list[tuple[Any, Any]]:
    """(container, key) of every value inside ``value``, breadth first, bounded."""
    out: list[tuple[Any, Any]] = []
    queue = [value]
    while queue and len(out) < limit:
        item = queue.pop(0)
        if isinstance(item, dict):
            for k, v in item.items():
                out.append((item, k))
                queue.append(v)
        elif isinstance(item, list):
            for i, v in enumerate(item):
                out.append((item, i))
                queue.append(v)
    return out


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


class MutatingProxy:
    """Serves one client at a time on ``path``, forwarding to the QMP socket ``upstream``."""

    def __init__(self, upstream: str, path: str) -> None:
        self.upstream = upstream
        self.path = path
        self.plan: Plan | None = None
        self.sessions = 0
        self.done = threading.Event()
        self.done.set()
        self._sock = socket.socket(socket.AF_UNIX)
        self._sock.bind(path)
        self._sock.listen(4)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the serving thread
        except OSError:
            pass
        self._sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
        self._thread.join(10)

    def expect(self, plan: Plan | None) -> None:
        self.plan = plan
        self.done.clear()

    def wait_session_end(self, timeout: float = 10.0) -> bool:
        return self.done.wait(timeout)

    # ------------------------------------------------------------------------------------ serving

    def _serve(self) -> None:
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                self._session(client)
            except OSError:
                pass
            finally:
                client.close()
                self.sessions += 1
                self.done.set()

    def _session(self, client: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX)
        upstream.settimeout(10)
        try:
            upstream.connect(self.upstream)
        except OSError:
            upstream.close()
            return
        closing = threading.Event()

        def pump() -> None:  # client -> QEMU, unchanged
            try:
                while True:
                    data = client.recv(65536)
                    if not data:
                        break
                    upstream.sendall(data)
            except OSError:
                pass
            closing.set()
            try:
                upstream.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        plan = self.plan
        reader = upstream.makefile("rb")
        index = 0
        try:
            while True:
                try:
                    line = reader.readline()
                except OSError:
                    break
                if not line:
                    break
                if plan is not None and index == plan.at:
                    if not self._mutate(plan, line, client, closing):
                        break
                else:
                    client.sendall(line)
                index += 1
        except OSError:
            pass
        finally:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            t.join(10)
            reader.close()
            upstream.close()

    # ---------------------------------------------------------------------------------- mutations

    def _mutate(self, plan: Plan, line: bytes, client: socket.socket, closing: threading.Event) -> bool:
        """Send the mutated message; False ends the session (the proxy hangs up)."""
        rng = plan.rng
        how = plan.how
        plan.applied = how
        msg = json.loads(line)
        send = client.sendall
        if how == "close":
            return False
        if how == "truncate-close":
            send(line[: rng.randrange(1, max(2, len(line) - 1))])
            return False
        if how == "no-newline-close":
            send(line.rstrip(b"\n"))
            return False
        if how == "garbage":
            send(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) + b"\n")
            return True
        if how == "not-utf8":
            send(line.replace(b'"', b'"\xff\xfe', 1))
            return True
        if how == "array":
            send(b"[" + line.rstrip(b"\n") + b"]\n")
            return True
        if how == "duplicate":
            send(line + line)
            return True
        if how == "delay":
            time.sleep(rng.choice([0.01, 0.05, 0.2]))
            send(line)
            return True
        if how == "stall":  # never answer again: the client's deadline must end it
            closing.wait(30)
            return False
        if how == "event":
            send(b'{"event": "DEVICE_DELETED", "data": {"path": "/machine/peripheral/x"}, '
                 b'"timestamp": {"seconds": 1, "microseconds": 2}}\n' + line)
            return True
        if how == "bad-event":
            bad = rng.choice([[1], {"a": 1}, 5, None])
            send(json.dumps({"event": bad, "data": rng.choice([[], 3, {}])}).encode() + b"\n" + line)
            return True
        if how == "event-flood":
            ev = b'{"event": "RTC_CHANGE", "data": {"offset": 1}, "timestamp": {"seconds": 1, "microseconds": 2}}\n'
            send(ev * 20000 + line)
            return True
        if how == "bad-id" and "id" in msg:
            msg["id"] = rng.choice([[msg["id"]], {"x": 1}, 7, None, True])
        elif how == "unknown-id" and "id" in msg:
            msg["id"] = "__qmp#99999"
        elif how == "error-reply" and "return" in msg:
            del msg["return"]
            msg["error"] = {"class": "GenericError", "desc": rng.choice(["boom", "", "a\nb", "x" * 5000])}
        elif how == "bad-error" and ("return" in msg or "QMP" in msg):
            msg.pop("return", None)
            msg["error"] = rng.choice([{"class": 1, "desc": []}, [], "oops", {"desc": "no class"}])
        else:
            mutate_value(plan, msg)
        data = json.dumps(msg).encode()
        if plan.deep:
            data = data.replace(json.dumps(_DEEP).encode(), b"[" * plan.deep + b"0" + b"]" * plan.deep, 1)
        send(data + b"\n")
        return True


def mutate_value(plan: Plan, msg: dict[str, Any]) -> None:
    """Change one value of a parsed message in place (the mutations that keep it valid JSON)."""
    rng = plan.rng
    how = plan.how
    root_key = "return" if "return" in msg else ("QMP" if "QMP" in msg else next(iter(msg), None))
    if root_key is None:
        return
    holder: Any = msg
    key: Any = root_key
    if how == "qtree-lines" or how == "surrogate":
        strings = [(c, k) for c, k in [(msg, root_key), *_paths(msg[root_key])] if isinstance(c[k], str)]
        if strings:
            holder, key = rng.choice(strings)
            text: str = holder[key]
            if how == "surrogate":
                pos = rng.randrange(len(text) + 1)
                holder[key] = text[:pos] + rng.choice(["\udc80", "\x00", "\x1b[2J", "\n"]) + text[pos:]
                return
            lines = text.split("\n")
            for _ in range(rng.randrange(1, 4)):
                i = rng.randrange(len(lines))
                op = rng.randrange(6)
                if op == 0:
                    del lines[i]
                elif op == 1:
                    lines.insert(i, lines[i])
                elif op == 2:
                    lines[i] = " " * rng.randrange(0, 40) + lines[i].lstrip()
                elif op == 3:
                    lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
                elif op == 4:
                    lines.insert(i, rng.choice(["bus: x", "  dev: , id \"\"", "addr = ²", "  bus: pci.0",
                                                '    addr = "zz.9"', "    unit = ٣", "dev: a, id \"b\""]))
                else:
                    lines[i] = lines[i].replace("0x", "0y").replace(".", ",")
                if not lines:
                    lines = [""]
            holder[key] = "\n".join(lines)
            return
    paths = _paths(msg[root_key])
    if paths and rng.random() < 0.8:
        holder, key = rng.choice(paths)
    if how == "drop-key" or how == "rename-key":
        dicts = [d for d in [msg[root_key], *[c[k] for c, k in paths]] if isinstance(d, dict) and d]
        if dicts:
            d = rng.choice(dicts)
            k = rng.choice(list(d))
            value = d.pop(k)
            if how == "rename-key":
                d[k + "_"] = value
        return
    if how == "huge-string":
        holder[key] = "y" * rng.choice([70000, 2_000_000])
    elif how == "long-list":
        holder[key] = list(range(rng.choice([70000, 600_000])))
    elif how == "deep":
        holder[key] = _nested(rng.choice([33, 40, 200]))
    elif how == "very-deep":  # too deep for json.dumps: spliced in as text by _mutate
        plan.deep = rng.choice([3000, 100_000])
        holder[key] = _DEEP
    else:  # "type" and the id/error mutations that did not apply to this message
        current = holder[key]
        choices = [v for v in _BAD_VALUES if type(v) is not type(current)]
        holder[key] = rng.choice(choices)
