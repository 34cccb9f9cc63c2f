"""Shared fixtures: QEMU VMs started paused with a private QMP socket, stopped by pid."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

# Hypothesis draws its examples from a seed: fixed in `make test` (CI lands or fails on the
# code, never on the draw), fresh with DTVM_HYPOTHESIS=random (`make fuzz` and while developing);
# a failure prints the example, and `--hypothesis-seed=N` replays a random run.
settings.register_profile("fixed", derandomize=True)
settings.register_profile("random", derandomize=False)
settings.load_profile(os.environ.get("DTVM_HYPOTHESIS", "fixed"))

pytest.importorskip("qemu.qmp")
from qemu.qmp.legacy import QEMUMonitorProtocol  # noqa: E402 (after the skip above)


class VM:
    """A QEMU started paused with a private QMP socket; stopped by pid."""

    def __init__(self, argv: list[str]) -> None:
        self.dir = tempfile.mkdtemp(prefix="dtvm-test-")
        self.sock = os.path.join(self.dir, "qmp.sock")
        self.proc = subprocess.Popen(
            [*argv, "-S", "-display", "none", "-qmp", f"unix:{self.sock},server=on,wait=off"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"QEMU exited: {err}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("QEMU did not create its QMP socket")
            time.sleep(0.01)
        # the socket file exists before QEMU listens on it: wait until a connection is taken, so
        # that a test's first client is not refused on a loaded machine
        while True:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.sock)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("QEMU does not listen on its QMP socket") from None
                time.sleep(0.01)
            finally:
                probe.close()

    def qmp(self) -> QEMUMonitorProtocol:
        """A QMP client; retried briefly, as QEMU creates the socket file before it listens."""
        deadline = time.monotonic() + 10
        while True:
            mon = QEMUMonitorProtocol(self.sock)
            try:
                mon.connect()
                return mon
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


#: markers of opt-in runs (minutes of oracle work each): deselected unless ``-m`` names them, so
#: that `make test` stays short and each has its own make target
OPT_IN = ("versions_full", "libvirt_slow", "kernel_all", "pmem_full")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the opt-in runs (:data:`OPT_IN`) that ``-m`` does not ask for."""
    asked = config.getoption("markexpr") or ""
    skipped = [m for m in OPT_IN if m not in asked]
    drop = [i for i in items if any(i.get_closest_marker(m) is not None for m in skipped)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if i not in drop]


@pytest.fixture
def vm_factory() -> Iterator[Any]:
    vms: list[VM] = []

    def start(argv: list[str]) -> VM:
        if shutil.which(argv[0]) is None:
            pytest.skip(f"{argv[0]} is not installed (its oracle cannot run)")
        vm = VM(argv)
        vms.append(vm)
        return vm

    yield start
    for vm in vms:
        vm.stop()
        assert vm.proc.poll() is not None




@pytest.fixture(scope="session", autouse=True)
def offline_models_stay_read_only() -> Iterator[None]:
    """Each offline model is parsed once per process and shared (dtvm.qemu.models.MODELS): an
    answer that changed it would change every later answer. At the end of the session every model
    still held must equal its file, or the session fails here (naming the model)."""
    yield
    import json

    from dtvm.qemu.models import MODELS
    from dtvm.qemu.schemafiles import machine_file

    changed = [name for name, data in list(MODELS.items()) if data != json.loads(machine_file(name))]
    assert not changed, f"offline models changed by the code that read them: {changed}"
