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
from dtvm.qemu.schemafiles import machine_file
from dtvm.vm.model import Backend, Bus, Config, Device

__all__ = [
    "OfflineError",
    "apply_deltas",
    "config_from_dict",
    "config_to_dict",
    "device_from_dict",
    "device_to_dict",
    "load_model",
    "model_versions",
    "offline_machine",
    "option_delta",
    "option_deltas",
    "selected_version",
    "use_version",
]


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
    # and so are options moot beside another (vmport while i8042=off), as the online reading drops them
    for name in versions().machine_moot_props({k: str(v) for k, v in options.items()}):
        options.pop(name, None)
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


#: the models read in this process, by file name: parsing one (up to 5 MB of JSON) took half of an
#: offline answer's time, and a process that answers many (the tests, the API) read each again.
#: Shared, so read-only by contract: the offline reader copies what it changes (config_from_dict,
#: apply_deltas), and tests/conftest.py checks every model a test session read against its file.
MODELS: dict[str, dict[str, Any]] = {}
_MAX_MODELS = 8


def load_model(machine: MachineInfo) -> dict[str, Any]:
    """The offline model of ``machine`` (the selected QEMU version's), parsed once per process;
    never to be changed by the caller (see ``MODELS``)."""
    name = _model_name(machine)
    if name in MODELS:
        return MODELS[name]
    try:
        text = machine_file(name)
    except OSError:
        on = f" on QEMU {_SELECTED.get()}" if _SELECTED.get() else ""
        raise OfflineError(f"no offline model for {machine.arch} {machine.type}{on} (dtvm/qemu/machines/{name}): "
                           "use online mode") from None
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != 1:
        raise OfflineError(f"dtvm/qemu/machines/{name}: not a format-1 offline model")
    if len(MODELS) >= _MAX_MODELS:
        MODELS.clear()
    MODELS[name] = data
    return data


# -- machine options as deltas -------------------------------------------------------------------
# A machine option is recorded once, as the device model QEMU builds with -nodefaults and that one
# option.  What it changes against plain -nodefaults (devices removed and added, properties,
# machine options, inputs) is its delta; a command line with several options gets the deltas of
# each applied in turn, which holds where options touch different devices (x86: sata, smbus,
# i8042, hpet, vmport, pit, pic, smm, acpi, ...; held to online qemu2dtb by tests/qemu_random.py).
# Two deltas that touch one device, or a delta that changes QEMU's own DT, are not composed: the
# caller refuses the combination by name.

_Path = tuple[Any, ...]


def _index(devices: list[dict[str, Any]], prefix: _Path, out: dict[_Path, dict[str, Any]],
           parents: dict[_Path, tuple[_Path, int]], depth: int = 0) -> None:
    if depth > 32:
        raise OfflineError("model nested too deep")
    for i, dev in enumerate(devices):
        key = (*prefix, dev["driver"], json.dumps(dev["address"]))
        out[key] = dev
        parents[key] = (prefix, i)
        for bus in dev["buses"]:
            _index(bus["devices"], (*key, bus["name"]), out, parents, depth + 1)


def _bus_list(root: dict[str, Any], index: dict[_Path, dict[str, Any]], bus_path: _Path) -> list[dict[str, Any]] | None:
    if not bus_path:
        devices: list[dict[str, Any]] = root["root"]["devices"]
        return devices
    owner = index.get(bus_path[:-1])
    if owner is None:
        return None
    for bus in owner["buses"]:
        if bus["name"] == bus_path[-1]:
            found: list[dict[str, Any]] = bus["devices"]
            return found
    return None


def option_delta(plain: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
    """What one recorded option changes against the -nodefaults model (see above)."""
    a_index: dict[_Path, dict[str, Any]] = {}
    b_index: dict[_Path, dict[str, Any]] = {}
    a_par: dict[_Path, tuple[_Path, int]] = {}
    b_par: dict[_Path, tuple[_Path, int]] = {}
    _index(plain["root"]["devices"], (), a_index, a_par)
    _index(variant["root"]["devices"], (), b_index, b_par)
    # the top-most devices gone or new (a device's subtree goes or comes with it)
    removed = [k for k in a_index if k not in b_index
               and not any(k[:n] not in b_index for n in range(2, len(k) - 2, 3))]
    added = []
    for key, dev in b_index.items():
        if key in a_index or any(key[:n] not in a_index for n in range(2, len(key) - 2, 3)):
            continue
        bus_path, pos = b_par[key]
        siblings = _bus_list(variant, b_index, bus_path) or []
        after = next((k for k in ((*bus_path, s["driver"], json.dumps(s["address"])) for s in reversed(siblings[:pos]))
                      if k in a_index), None)
        added.append({"bus": list(bus_path), "after": list(after) if after else None, "device": dev})
    props = []
    dt_changed = not _same_dt(plain.get("dtb-zlib"), variant.get("dtb-zlib"))
    alone = variant["backends"] != plain["backends"]
    for key, dev in a_index.items():
        other = b_index.get(key)
        if other is None:
            continue
        # what a delta does not carry: such an option is used alone (its own recorded variant)
        alone = alone or any(dev[f] != other[f] for f in ("mmio", "pci_ids", "pci_class", "backends", "id"))
        if dev["props"] != other["props"]:
            props.append({"device": list(key), "set": {k: v for k, v in other["props"].items() if dev["props"].get(k) != v},
                          "unset": [k for k in dev["props"] if k not in other["props"]]})
    am, bm = plain["machine"], variant["machine"]
    machine = {k: bm[k] for k in bm if k != "options" and am.get(k) != bm[k]}
    return {"removed": [list(k) for k in removed], "added": added, "props": props, "machine": machine,
            "options": {k: v for k, v in bm["options"].items() if am["options"].get(k) != v},
            "unset-options": [k for k in am["options"] if k not in bm["options"]],
            "inputs": {k: v for k, v in variant["inputs"].items() if plain["inputs"].get(k) != v},
            # dt-only: alone for QEMU's own DT alone, which dtvm/qemu/offline_dt.py takes whole
            "alone": alone or dt_changed, "dt-only": dt_changed and not alone}


def _same_dt(a: str | None, b: str | None) -> bool:
    """Whether two recorded DTs are the same but for the random seeds QEMU writes on every start
    (an option at its default value, or dtb-randomness=off, changes nothing else)."""
    if a == b:
        return True
    if a is None or b is None:
        return False
    import base64

    from dtvm.dt.dtb import read_dtb, write_dtb
    from dtvm.vm.translate import drop_seeds

    trees = [read_dtb(_inflate(base64.b64decode(x)), "an offline model's DT") for x in (a, b)]
    for dt in trees:
        drop_seeds(dt)
    return write_dtb(trees[0]) == write_dtb(trees[1])


def _touched(delta: dict[str, Any]) -> set[_Path]:
    """Devices whose properties a delta changes (removing one device twice composes: i8042=off and
    vmport=off both remove vmport; devices added to one bus keep their places after the devices
    they follow in QEMU's order)."""
    return {tuple(p["device"]) for p in delta["props"]}


def apply_deltas(base: dict[str, Any], deltas: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """``base`` (a model's variant) with each named delta applied; OfflineError naming the options
    when they cannot be composed."""
    import copy

    out = copy.deepcopy(base)
    def opt(name: str) -> str:
        return name if name.startswith("-") else f"-machine {name}"

    changed: dict[_Path, str] = {}  # device -> the option that changes its properties
    removed: dict[_Path, str] = {}  # device -> an option that removes it
    for name, delta in deltas:
        if delta["alone"]:
            others = ", ".join(n for n, _ in deltas if n != name)
            raise OfflineError(f"{opt(name)} changes QEMU's own DT, back-ends or memory map: in the offline model alone under "
                               f"-nodefaults only{', not with ' + others if others else ''} (use online mode)")
        touched = _touched(delta)
        gone = {tuple(k) for k in delta["removed"]}
        for key in sorted(touched, key=str):
            if key in changed:
                raise OfflineError(f"{opt(name)} and {changed[key]} both change {key[-2]}: "
                                   "not composed in the offline model (use online mode)")
        # a device one option removes and another changes is not made at all (pc's acpi=off with
        # smm=off: no PIIX4_PM; held to QEMU by the random configurations)
        changed.update({k: name for k in touched})
        removed.update({k: name for k in gone})
    for name, delta in deltas:
        index: dict[_Path, dict[str, Any]] = {}
        parents: dict[_Path, tuple[_Path, int]] = {}
        _index(out["root"]["devices"], (), index, parents)
        for key in map(tuple, delta["removed"]):
            if key in parents:
                bus_path, _ = parents[key]
                devices = _bus_list(out, index, bus_path)
                if devices is not None:
                    devices[:] = [d for d in devices if d is not index[key]]
        last: dict[tuple[Any, ...], dict[str, Any]] = {}  # (bus, anchor) -> the device added there last
        for item in delta["added"]:
            devices = _bus_list(out, index, tuple(item["bus"]))
            if devices is None:
                raise OfflineError(f"{opt(name)}: the bus it adds a device to is not in this model (use online mode)")
            spot = (tuple(item["bus"]), tuple(item["after"]) if item["after"] else None)
            # devices added one after another after one anchor keep their order (a CPU's per-hart
            # IMSICs on riscv64 virt)
            after = last.get(spot) or (index.get(tuple(item["after"])) if item["after"] else None)
            pos = next((i + 1 for i, d in enumerate(devices) if d is after), 0)
            devices.insert(pos, copy.deepcopy(item["device"]))
            last[spot] = devices[pos]
        for change in delta["props"]:
            dev = index.get(tuple(change["device"]))
            if dev is None and tuple(change["device"]) in removed:
                continue
            if dev is None:
                raise OfflineError(f"{opt(name)}: a device it changes is not in this model (use online mode)")
            dev["props"].update(change["set"])
            for k in change["unset"]:
                dev["props"].pop(k, None)
            dev["props"] = dict(sorted(dev["props"].items()))
        out["machine"].update(delta["machine"])
        out["machine"]["options"].update(delta["options"])
        for k in delta["unset-options"]:
            out["machine"]["options"].pop(k, None)
        out["inputs"].update(delta["inputs"])
    return out


def option_deltas(model: dict[str, Any], bad: list[str], alone_ok: bool) -> tuple[str | None, list[tuple[str, dict[str, Any]]]]:
    """What the offline model makes of the options not at their defaults (``bad``: "NAME=VALUE"
    machine options and "-cpu MODEL" on DT machines): (the one recorded variant to use as it is,
    when ``alone_ok``: -nodefaults without USB) or the deltas to compose; OfflineError naming the
    options the model lacks."""
    recorded = model.get("option-variants") or {}
    missing = [b for b in bad if b not in recorded]
    if missing:
        cpu = [m for m in missing if m.startswith("-cpu ")]
        raise OfflineError(f"{cpu[0] if cpu else '-machine ' + ','.join(missing)}: not in the offline model (the options "
                           "and CPU models recorded are listed under option-variants in its file; use online mode)")
    if len(bad) == 1 and alone_ok:
        return bad[0], []  # recorded from QEMU with -nodefaults and this one option
    return None, [(b, option_delta(model["variants"]["nodefaults"], recorded[b])) for b in bad]
