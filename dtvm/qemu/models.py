"""The offline models on disk (``machines/*.offline.json``): device models and device profiles
recorded from QEMU by scripts/gen_offline_models.py, as data and back, bounded when read."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import zlib
from collections.abc import Iterator
from contextvars import ContextVar
from importlib import resources
from typing import Any

from dtvm.errors import DtvmError
from dtvm.qemu.machine import MachineInfo
from dtvm.vm.model import Backend, Bus, Config, Device

__all__ = ["OfflineError", "config_from_dict", "config_to_dict", "device_from_dict", "device_to_dict", "load_model",
           "model_versions", "offline_machine", "selected_version", "use_version"]


class OfflineError(DtvmError):
    """A command line the offline model cannot make precise (names the option)."""

    exit_code = 2


# -- device subtrees as data ---------------------------------------------------------------------
def device_to_dict(dev: Device) -> dict[str, Any]:
    """A device and everything below it, without parent links (JSON-ready)."""
    return {
        "driver": dev.driver, "address": [dev.address[0], list(dev.address[1])],
        "props": dict(sorted(dev.props.items())), "backends": dict(sorted(dev.backends.items())),
        "id": dev.qdev_id, "mmio": [list(r) for r in dev.mmio],
        "pci_ids": list(dev.pci_ids) if dev.pci_ids else None, "pci_class": dev.pci_class,
        "buses": [{"name": b.name, "type": b.type, "index": b.index,
                   "devices": [device_to_dict(d) for d in b.devices]} for b in dev.buses],
    }


def device_from_dict(data: dict[str, Any], parent: Bus | None = None, depth: int = 0) -> Device:
    if depth > 32:
        raise OfflineError("profile nested too deep")
    kind, values = data["address"]
    ids = data.get("pci_ids")
    dev = Device(
        str(data["driver"]), (str(kind), tuple(int(v) for v in values)),
        {str(k): str(v) for k, v in data["props"].items()}, {str(k): str(v) for k, v in data["backends"].items()},
        qdev_id=data.get("id"), mmio=[(int(a), int(b)) for a, b in data["mmio"]],
        pci_ids=(int(ids[0]), int(ids[1]), int(ids[2]), int(ids[3])) if ids else None,
        pci_class=data.get("pci_class"), parent=parent,
    )
    for b in data["buses"]:
        bus = Bus(str(b["name"]), str(b["type"]), int(b["index"]), parent=dev)
        bus.devices = [device_from_dict(d, bus, depth + 1) for d in b["devices"]]
        dev.buses.append(bus)
    return dev


def config_to_dict(config: Config) -> dict[str, Any]:
    """A whole device model as data (the machine's own devices of one variant)."""
    import base64

    m = config.machine
    return {
        "machine": {"type": m.type, "arch": m.arch, "options": m.options, "cpu_type": m.cpu_type, "cpus": m.cpus,
                    "max_cpus": m.max_cpus, "topology": m.topology, "memory": m.memory},
        "root": {"name": config.root.name, "type": config.root.type,
                 "devices": [device_to_dict(d) for d in config.root.devices]},
        # generated netdev ids (#net0, ...) are stable since the reader numbers them (config.py)
        "backends": [{"kind": b.kind, "id": b.id, "options": b.options} for b in config.backends],
        "inputs": config.inputs,
        # QEMU's DT is a mostly-zero 1 MiB buffer on arm virt: stored compressed
        "dtb-zlib": base64.b64encode(zlib.compress(config.dtb, 9)).decode() if config.dtb is not None else None,
    }


def _inflate(blob: bytes, limit: int = 16 << 20) -> bytes:
    """zlib, bounded: a model file is data and must not expand without limit."""
    d = zlib.decompressobj()
    out = d.decompress(blob, limit)
    if d.unconsumed_tail:
        raise OfflineError(f"a stored DT expands beyond {limit >> 20} MiB")
    return out


def config_from_dict(data: dict[str, Any]) -> Config:
    import base64

    from dtvm.qemu.versions import REFERENCE, versions
    from dtvm.vm.model import Machine

    m = data["machine"]
    # the models were read with an older dtvm: options it now knows to be derived are dropped
    options = {k: v for k, v in m["options"].items() if not versions().machine_ignored(k, str(v))}
    machine = Machine(str(m["type"]), str(m["arch"]), options, m["cpu_type"], int(m["cpus"]),
                      int(m["max_cpus"]), {str(k): int(v) for k, v in m["topology"].items()}, int(m["memory"]))
    root = Bus(str(data["root"]["name"]), str(data["root"]["type"]))
    root.devices = [device_from_dict(d, root) for d in data["root"]["devices"]]
    backends = [Backend(str(b["kind"]), str(b["id"]), dict(b["options"])) for b in data["backends"]]
    dtb = _inflate(base64.b64decode(data["dtb-zlib"])) if data.get("dtb-zlib") else None
    # the description says which QEMU the model answers for: that version's models were recorded from it
    return Config(machine, root, backends, dict(data["inputs"]), dtb, qemu_version=_SELECTED.get() or REFERENCE)


# -- which QEMU version's models answer ---------------------------------------------------------
#: the QEMU version (major.minor) whose models answer; "" is the reference (7.2), whose models sit
#: directly in dtvm/qemu/machines; another version's sit in machines/VERSION/.  A context variable,
#: not an argument: the offline reader's many functions stay as they are, and a caller selects the
#: version once (``with use_version("10.0"):``) for everything it asks inside.
_SELECTED: ContextVar[str] = ContextVar("dtvm_offline_qemu", default="")


def model_versions() -> list[str]:
    """The QEMU versions (major.minor) with offline models, the reference first."""
    from dtvm.qemu.versions import REFERENCE

    found = [REFERENCE]
    root = resources.files("dtvm.qemu").joinpath("machines")
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if re.fullmatch(r"\d{1,3}\.\d{1,3}", entry.name) and entry.is_dir() and \
                any(f.name.endswith(".offline.json") for f in entry.iterdir()):
            found.append(entry.name)
    return found


def selected_version() -> str:
    """The QEMU version (major.minor) the offline models answer for in this context."""
    from dtvm.qemu.versions import REFERENCE

    return _SELECTED.get() or REFERENCE


@contextlib.contextmanager
def use_version(version: tuple[int, ...] | str | None) -> Iterator[str]:
    """Answer with the models recorded from QEMU ``version`` (10.0.2, (10, 0, 2) or 10.0; None:
    the reference) inside the block; OfflineError naming the versions there are models for."""
    if version is None:
        text = ""
    elif isinstance(version, str):
        text = ".".join(version.strip().split(".")[:2])
    else:
        text = f"{version[0]}.{version[1]}"
    have = model_versions()
    if text and text not in have:
        raise OfflineError(f"no offline models for QEMU {text} (dtvm has them for QEMU {', '.join(have)}): "
                           "leave out --offline to ask that QEMU")
    token = _SELECTED.set("" if text == have[0] else text)
    try:
        yield text or have[0]
    finally:
        _SELECTED.reset(token)


def offline_machine(name: str, binary: str | None) -> MachineInfo:
    """The machine ``name`` as the selected version builds it: an alias (``-M q35``) is that
    version's own type there (pc-q35-10.0 on 10.0), not the reference's pc-q35-7.2."""
    from dtvm.qemu.machine import find_machine
    from dtvm.qemu.versions import REFERENCE

    machine = find_machine(name, binary)
    version = _SELECTED.get()
    if version and name == machine.alias and machine.type.endswith("-" + REFERENCE):
        machine = dataclasses.replace(machine, type=machine.type[: -len(REFERENCE)] + version)
    return machine


# -- the stored model ----------------------------------------------------------------------------
def _model_name(machine: MachineInfo) -> str:
    version = _SELECTED.get()
    return (f"{version}/" if version else "") + f"{machine.arch}-{machine.type}.offline.json"


def load_model(machine: MachineInfo) -> dict[str, Any]:
    name = _model_name(machine)
    try:
        where = resources.files("dtvm.qemu").joinpath("machines")
        for part in name.split("/"):
            where = where.joinpath(part)
        text = where.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        on = f" on QEMU {_SELECTED.get()}" if _SELECTED.get() else ""
        raise OfflineError(f"no offline model for {machine.arch} {machine.type}{on} (dtvm/qemu/machines/{name}): "
                           "use online mode") from None
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != 1:
        raise OfflineError(f"dtvm/qemu/machines/{name}: not a format-1 offline model")
    return data
