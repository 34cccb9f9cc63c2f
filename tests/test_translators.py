"""A device type is added by a binding file alone: its translator (``qemu:``) is data.

The binding of a device type QEMU has but dtvm has no binding for (pvpanic-pci) goes into a
directory of the user's own (``$DTVM_BINDINGS``); with it, and nothing else changed, the node
dtvm writes takes the binding's name, ``dtvm validate`` checks it against the binding instead of
listing it unchecked, ``dtb2qemu`` reads the back-end it says the device needs, and the VM still
round-trips: rebuilt from the description, the original migrates into it (QEMU 7.2 the oracle).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dtvm.dt.dtb import read_dtb

pytest.importorskip("qemu.qmp")

from tests.test_dtb2qemu import Q35, _migrate

VM_ARGV = [*Q35, "-nodefaults", "-device", "pvpanic-pci,addr=3.0"]

BINDING = """description: QEMU's pvpanic-pci, the guest's panic notifier (a binding of the user's own)
compatible: ["qemu,pvpanic-pci"]
include: [common/qemu-device.yaml]
qemu:
  driver: pvpanic-pci
  bus: pci
  node-name: panic-notifier
"""


def _dtvm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", *args], capture_output=True, text=True, timeout=120, env=env)


def _env(tmp_path: Path, binding: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["DTVM_CACHE_DIR"] = str(tmp_path / "cache")
    env.pop("DTVM_BINDINGS", None)
    if binding is not None:
        mine = tmp_path / f"my-bindings-{len(list(tmp_path.glob('my-bindings-*')))}"
        mine.mkdir()
        (mine / "qemu,pvpanic-pci.yaml").write_text(binding)
        env["DTVM_BINDINGS"] = str(mine)
    return env


def _node(guest: Path) -> Any:
    tree = read_dtb(guest.read_bytes())
    nodes = [n for n in tree.root.walk() if n.get_property("qemu,driver") is not None
             and n["qemu,driver"].as_string() == "pvpanic-pci"]
    assert len(nodes) == 1
    return nodes[0]


def test_device_type_added_by_binding_alone(tmp_path: Path, vm_factory: Any) -> None:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (its oracle cannot run)")
    before, after = tmp_path / "before.dtb", tmp_path / "after.dtb"
    plain, mine = _env(tmp_path, None), _env(tmp_path, BINDING)
    for env, out in ((plain, before), (mine, after)):
        res = _dtvm(env, "qemu2dtb", "-o", str(out), "--", *VM_ARGV)
        assert res.returncode == 0, res.stderr
    assert _node(before).name == "pci-device@3"  # no binding: the generic name of its PCI class
    assert _node(after).name == "panic-notifier@3"  # the binding's node-name

    res = _dtvm(plain, "validate", str(before))
    assert 'no binding for compatible "qemu,pvpanic-pci"' in res.stdout + res.stderr, res.stdout + res.stderr
    res = _dtvm(mine, "validate", str(after))
    assert res.returncode == 0 and "pvpanic" not in res.stdout + res.stderr, res.stdout + res.stderr

    # the binding's needs: is what dtb2qemu asks of the overlay
    needy = _env(tmp_path, BINDING + "  needs: chardev\n")
    res = _dtvm(needy, "dtb2qemu", str(after), "-b", str(after.with_suffix(".backend.dtbo")), "--no-check")
    assert res.returncode != 0 and "pvpanic-pci needs a chardev back-end" in res.stderr, res.stderr

    # and the VM round-trips with the binding in place
    a = vm_factory(VM_ARGV)
    desc = tmp_path / "a.dtb"
    res = _dtvm(mine, "qemu2dtb", "-o", str(desc), "--qmp", f"unix:{a.sock}")
    assert res.returncode == 0, res.stderr
    assert desc.read_bytes() == after.read_bytes()
    res = _dtvm(mine, "dtb2qemu", str(desc), "-b", str(desc.with_suffix(".backend.dtbo")))
    assert res.returncode == 0, res.stderr
    b = vm_factory([*json.loads(res.stdout), "-incoming", "defer"])
    assert _migrate(a, b, tmp_path)["status"] == "completed"
