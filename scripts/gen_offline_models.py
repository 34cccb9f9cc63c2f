#!/usr/bin/env python3
"""Write dtvm/qemu/machines/ARCH-TYPE.offline.json: the offline model of each machine, from QEMU.

For each machine: the device model QEMU builds with the defaults, with -nodefaults and with each
default-removing option (variants), and for each supported device type and bus context a device
instance exactly as QEMU built it (profiles), with its type's property defaults and types.
``dtvm qemu2dtb --offline`` composes these; tests hold its output to online qemu2dtb.
Run after a QEMU update and review the diff.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dtvm.qemu.config import Device, from_snapshot
from dtvm.qemu.live import read_argv
from dtvm.qemu.machine import find_machine
from dtvm.qemu.offline import config_to_dict, device_to_dict

PCI_DEVICES = ["virtio-net-pci", "virtio-rng-pci", "virtio-balloon-pci", "virtio-serial-pci", "virtio-scsi-pci",
               "e1000", "e1000e", "qemu-xhci", "pci-bridge"]
PCIE_ONLY = ["pcie-root-port", "pcie-pci-bridge"]
USB_DEVICES = ["usb-kbd", "usb-tablet", "usb-mouse", "usb-hub"]
VSERIAL_DEVICES = ["virtconsole", "virtserialport"]
SCSI_DEVICES = ["scsi-cd"]
MMIO_DEVICES = ["virtio-net-device", "virtio-rng-device", "virtio-balloon-device"]
#: properties a probe must give, dropped from the profile (the user gives their own)
REQUIRED = {"pci-bridge": "chassis_nr=9"}

MACHINES = [("pc-q35-7.2", "qemu-system-x86_64", True, False), ("pc-i440fx-7.2", "qemu-system-x86_64", False, False),
            ("virt-7.2", "qemu-system-aarch64", True, True), ("virt", "qemu-system-riscv64", True, True)]
REMOVERS = {"net": ["-net", "none"], "parallel": ["-parallel", "none"], "serial": ["-serial", "none"], "vga": ["-vga", "none"]}


def _variants() -> dict[str, list[str]]:
    """Every combination of the default-removing options (their effects interact: -vga none moves
    q35's default NIC), keyed by the removed defaults joined with '+'."""
    out: dict[str, list[str]] = {"nodefaults": ["-nodefaults"]}
    names = sorted(REMOVERS)
    for mask in range(1 << len(names)):
        chosen = [n for i, n in enumerate(names) if mask >> i & 1]
        out["+".join(chosen) or "defaults"] = [a for n in chosen for a in REMOVERS[n]]
    return out


VARIANTS = _variants()
KIND = {"PCI": "pci", "PCIE": "pci", "usb-bus": "usb", "SCSI": "scsi", "virtio-serial-bus": "virtio-serial",
        "virtio-mmio-bus": "virtio-mmio"}


def _find(dev: Device, qid: str) -> Device | None:
    if dev.qdev_id == qid:
        return dev
    for bus in dev.buses:
        for child in bus.devices:
            found = _find(child, qid)
            if found is not None:
                return found
    return None


def probe(binary: str, mtype: str, setup: list[str], device: str, context: str) -> tuple[str, dict[str, Any]]:
    extra = REQUIRED.get(device)
    spec = f"{device},id=probe" + (f",{extra}" if extra else "")
    if context not in ("pci-root", "virtio-mmio-bus"):
        spec += ",bus=" + {"pci-port": "ctx", "pci-bridge": "ctx", "usb-bus": "ctx.0",
                           "virtio-serial-bus": "ctx.0", "SCSI": "ctx.0"}[context]
    if context == "pci-bridge":
        spec += ",addr=1"  # slot 0 of a bridge with an SHPC is refused on virt
    snapshot = read_argv([binary, "-M", mtype, "-nodefaults", *setup, "-device", spec])
    config = from_snapshot(snapshot)
    found = None
    for dev in config.root.devices:
        found = _find(dev, "probe")
        if found is not None:
            break
    if found is None or found.parent is None:
        raise SystemExit(f"{mtype}: probe {device} on {context}: not found")
    data = device_to_dict(found)
    data["id"] = None
    if extra:
        data["props"].pop(extra.split("=")[0], None)
    drivers = {found.driver} | {c.driver for b in found.buses for c in b.devices}
    types = {d: {e["name"]: e.get("type", "") for e in snapshot.type_props.get(d) or []} for d in drivers}
    defaults = {d: {e["name"]: ("on" if e["default-value"] is True else "off" if e["default-value"] is False else str(e["default-value"]))
                    for e in snapshot.type_props.get(d) or [] if "default-value" in e} for d in drivers}
    return f"{device}@{context}", {"kind": KIND[found.parent.type], "device": data, "types": types,
                                    "defaults": defaults, "props-of": {d: sorted(types[d]) for d in drivers}}


def model(mtype: str, binary: str, pcie: bool, mmio: bool) -> dict[str, Any]:
    variants = {name: config_to_dict(from_snapshot(read_argv([binary, "-M", mtype, *opts])))
                for name, opts in VARIANTS.items()}
    port = ["-device", "pcie-root-port,id=ctx,chassis=9"]
    bridge = (["-device", "pcie-root-port,id=rp9,chassis=9", "-device", "pcie-pci-bridge,id=ctx,bus=rp9"] if pcie
              else ["-device", "pci-bridge,id=ctx,chassis_nr=8"])
    jobs: list[tuple[list[str], str, str]] = []
    for dev in PCI_DEVICES + (PCIE_ONLY if pcie else []):
        jobs.append(([], dev, "pci-root"))
        if pcie and dev != "pcie-root-port":
            jobs.append((port, dev, "pci-port"))
        if dev not in PCIE_ONLY:
            jobs.append((bridge, dev, "pci-bridge"))
    jobs += [(["-device", "qemu-xhci,id=ctx"], d, "usb-bus") for d in USB_DEVICES]
    jobs += [(["-device", "virtio-serial-pci,id=ctx"], d, "virtio-serial-bus") for d in VSERIAL_DEVICES]
    jobs += [(["-device", "virtio-scsi-pci,id=ctx"], d, "SCSI") for d in SCSI_DEVICES]
    if mmio:
        jobs += [([], d, "virtio-mmio-bus") for d in MMIO_DEVICES]
    with ThreadPoolExecutor(max_workers=2) as pool:
        profiles = dict(pool.map(lambda j: probe(binary, mtype, j[0], j[1], j[2]), jobs))
    first = variants["defaults"]
    return {"format": 1, "type": mtype, "binary": binary,
            "qemu": read_argv([binary, "-M", mtype, "-nodefaults"]).version.get("package", ""),
            "machine-options": first["machine"]["options"], "accepts": {}, "first-mac": 0x525400123456,
            "variants": variants, "profiles": dict(sorted(profiles.items()))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "dtvm", "qemu", "machines"))
    args = parser.parse_args()
    for mtype, binary, pcie, mmio in MACHINES:
        machine = find_machine(mtype, binary)
        data = model(mtype, binary, pcie, mmio)
        path = os.path.join(args.out, f"{machine.arch}-{machine.type}.offline.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=False)
            f.write("\n")
        os.replace(path + ".tmp", path)
        print(f"wrote {path}: {len(data['variants'])} variants, {len(data['profiles'])} profiles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
