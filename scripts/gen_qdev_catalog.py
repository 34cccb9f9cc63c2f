#!/usr/bin/env python3
"""Write dtvm/qemu/data/qdev-VERSION.json: QEMU's device types and their qdev properties.

Properties are grouped by their QEMU type (``{"bool": [...], "str": [...]}``); CPU models are left
out (they are ``-cpu``, not ``-device``).

For each supported target binary: every device type ``-device help`` lists (with the bus it
needs), plus the machine-made types of the supported machines, each with its properties and
their QEMU types (``device-list-properties``).  ``dtb2qemu`` takes the device types and
properties a guest tree may state from this catalog, minus what ``data/trust.json`` keeps for the
host.  Run after a QEMU update and review the diff.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from qemu.qmp.legacy import QEMUMonitorProtocol
from qemu.qmp.protocol import ConnectError

BINARIES = ["qemu-system-x86_64", "qemu-system-aarch64", "qemu-system-arm", "qemu-system-riscv64", "qemu-system-ppc64"]


def _device_help(binary: str) -> dict[str, str | None]:
    out = subprocess.run([binary, "-device", "help"], capture_output=True, text=True, timeout=60).stdout
    types: dict[str, str | None] = {}
    for line in out.splitlines():
        m = re.match(r'name "([^"]+)"(?:, bus ([^,]+))?', line.strip())
        if m:
            types[m.group(1)] = m.group(2)
    return types


def _machine_made() -> dict[str, str | None]:
    """The machine-made types of the supported machines (not in ``-device help``)."""
    import yaml

    from dtvm.qemu.machine import load_machines
    from dtvm.qemu.models import load_model

    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "dtvm", "vm", "data", "buses.yaml"), encoding="utf-8") as f:
        data = yaml.safe_load(f)
    out: dict[str, str | None] = {}
    for bus, names in data["machine-made"].items():
        for name in names:
            out[name] = bus

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "driver" in node and "address" in node:
                out.setdefault(str(node["driver"]), None)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for machine in load_machines():
        walk(load_model(machine))
    return out


def _properties(binary: str, types: list[str]) -> dict[str, dict[str, str]]:
    tmp = tempfile.mkdtemp(prefix="dtvm-catalog-")
    sock = os.path.join(tmp, "qmp")
    proc = subprocess.Popen([binary, "-M", "none", "-S", "-display", "none", "-nodefaults",
                             "-qmp", f"unix:{sock},server=on,wait=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.01)
        qmp = QEMUMonitorProtocol(sock)
        for attempt in range(500):
            try:
                qmp.connect()
                break
            except (OSError, ConnectError):
                # the socket file exists from bind(), before QEMU listens: refused until then
                # (qemu.qmp wraps the refusal in a ConnectError; seen under load in CI)
                if attempt == 499:
                    raise
                time.sleep(0.02)
        out: dict[str, dict[str, str]] = {}
        for name in types:
            reply = qmp.cmd_raw("device-list-properties", {"typename": name})
            if "return" in reply:
                out[name] = {p["name"]: p["type"] for p in reply["return"]}
                # device-list-properties skips every name starting "legacy-" (the string forms
                # of printable properties, "legacy-addr"), and with them real ones: nvme's
                # legacy-cmb. qom-list-properties has both; a "legacy-X" whose X is not a
                # property of the type is a property of its own.
                more = qmp.cmd_raw("qom-list-properties", {"typename": name})
                for p in more.get("return", []):
                    pname = str(p["name"])
                    if pname.startswith("legacy-") and pname[len("legacy-"):] not in out[name]:
                        out[name][pname] = p["type"]
        qmp.close()
        return out
    finally:
        proc.kill()
        proc.wait()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="output file (default: dtvm/qemu/data/qdev-VERSION.json)")
    ap.add_argument("--bin-dir", default=None,
                    help="take the qemu-system-* binaries from here (QEMU 10.0: the bin/ of scripts/install-qemu10's prefix)")
    args = ap.parse_args()
    made = _machine_made()
    catalog: dict[str, Any] = {}
    version = None
    for target in BINARIES:
        binary = os.path.join(args.bin_dir, target) if args.bin_dir else target
        text = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        m = re.search(r"version (\d+\.\d+)", text)
        version = version or (m.group(1) if m else "unknown")
        listed = _device_help(binary)
        wanted = dict(listed)
        for name, bus in made.items():
            wanted.setdefault(name, bus)
        props = _properties(binary, sorted(wanted))
        arch = target.removeprefix("qemu-system-")
        for name in sorted(props):
            if name.endswith("-cpu") and wanted[name] is None:
                continue  # CPU models: -cpu, not -device (their features are not qdev options here)
            entry = catalog.setdefault(name, {"bus": wanted[name], "user": name in listed, "arches": [], "props": {}})
            entry["arches"].append(arch)
            entry["user"] = entry["user"] or name in listed
            entry["props"].update(props[name])
    for entry in catalog.values():
        by_type: dict[str, list[str]] = {}
        for prop, kind in entry["props"].items():
            by_type.setdefault(kind, []).append(prop)
        entry["props"] = {kind: sorted(names) for kind, names in sorted(by_type.items())}
    here = os.path.dirname(os.path.abspath(__file__))
    out = args.out or os.path.join(here, "..", "dtvm", "qemu", "data", f"qdev-{version}.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"format": 1, "qemu": version, "types": catalog}, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    print(f"{out}: {len(catalog)} device types")
    return 0


if __name__ == "__main__":
    sys.exit(main())
