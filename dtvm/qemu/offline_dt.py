"""Offline on the machines whose hardware QEMU writes as a DT of its own (arm/aarch64 and riscv64
virt): which recorded DT and device model a command line's machine options, CPU model and
``-smp`` make.

On these machines a machine option, a CPU model or a CPU count rewrites QEMU's DT (CPU nodes,
cpu-map, the interrupt controller's wiring, timer and PMU CPU masks, PSCI, memory map), which the
device-model deltas of ``models.py`` cannot express.  What the models record instead, all from
QEMU (scripts/gen_offline_models.py):

- per option or CPU model, its own DT (``option-variants``: the DT QEMU wrote with that one
  option under -nodefaults); options that leave the DT alone (at their defaults, dtb-randomness)
  compose as device-model deltas with anything;
- per DT-changing option (and none) and per ``-smp`` topology of a bounded set (``dt-smp``:
  ``forms``), the DT QEMU writes and what the CPU count changes in the device model (the GIC's
  num-cpu, the machine's smp property), stored once per distinct value and compressed against
  the option's own DT.

A command line takes one DT-changing option, or up to four that were recorded together
(``joint``, with fewer topologies; an option that leaves the DT alone but not beside one of them,
its=off with gic-version=3, is recorded with it the same way) -- measured: the DT-changing options
of virt touch the same nodes, the GIC, /psci, the memory map, and their phandles shift together, so
their DTs do not compose from single recordings --, options that leave the DT alone where the
recorder checked them against QEMU beside each DT-changing option (``checked``), options QEMU
takes only beside another where the command line has it (``option-requires``: mte=on with -cpu
max), and a ``-smp`` topology of the recorded set; whatever else is an error naming it.  Where the
options take the MSI controller away (``msi_lost``), PCI devices come from the ``no-msi``
profiles.  The DT of a
variant without some defaults (-net none, ...) is the -nodefaults one, which a load-time check
holds (those defaults are PCI devices, outside QEMU's DT).
"""

from __future__ import annotations

import base64
import copy
import re
import zlib
from typing import Any

from dtvm.qemu.models import OfflineError, _index, _inflate, _same_dt, apply_deltas, option_delta
from dtvm.qemu.offline_flash import FIRMWARE

__all__ = ["compose", "msi_lost", "pack_dt", "plug_dt_devices", "plug_virtio_iommu", "reprofile_without_msi", "smp_delta",
           "smp_key", "smp_text"]

#: a recorded DT may not claim more than this once padded (QEMU's virt DT is 1 MiB)
_MAX_DT = 16 << 20


def smp_key(text: str) -> tuple[int, int, int, int, int]:
    """``-smp`` as QEMU 7.2's smp_parse reads it for machine types since 6.2 (cores preferred over
    sockets; one die, one cluster): (cpus, maxcpus, sockets, cores, threads)."""
    parts = [p for p in text.strip().split(",") if p]
    given: dict[str, int] = {}
    for i, part in enumerate(parts):
        name, eq, value = part.partition("=")
        if not eq and i == 0:
            name, value = "cpus", name
        if not re.fullmatch(r"\d{1,4}", value) or name not in ("cpus", "maxcpus", "sockets", "cores", "threads",
                                                                 "dies", "clusters") or name in given:
            raise OfflineError(f"-smp {text}: only cpus, maxcpus, sockets, cores and threads (one die, one cluster) "
                               "are in the offline model (use online mode)")
        given[name] = int(value)
    if given.get("dies", 1) != 1 or given.get("clusters", 1) != 1:
        raise OfflineError(f"-smp {text}: more than one die or cluster is not in the offline model (use online mode)")
    cpus, maxcpus = given.get("cpus", 0), given.get("maxcpus", 0)
    sockets, cores, threads = given.get("sockets", 0), given.get("cores", 0), given.get("threads", 0)
    if cpus == 0 and maxcpus == 0:
        sockets, cores, threads = sockets or 1, cores or 1, threads or 1
    else:
        maxcpus = maxcpus or cpus
        if cores == 0:
            sockets, threads = sockets or 1, threads or 1
            cores = maxcpus // (sockets * threads)
        elif sockets == 0:
            threads = threads or 1
            sockets = maxcpus // (cores * threads)
        if threads == 0:
            threads = maxcpus // (sockets * cores) if sockets * cores else 0
    maxcpus = maxcpus or sockets * cores * threads
    cpus = cpus or maxcpus
    if not (sockets and cores and threads) or sockets * cores * threads != maxcpus or not 1 <= cpus <= maxcpus:
        raise OfflineError(f"-smp {text}: QEMU refuses this topology (sockets * cores * threads must be maxcpus, "
                           "and cpus at most maxcpus)")
    return cpus, maxcpus, sockets, cores, threads


def smp_text(key: tuple[int, int, int, int, int]) -> str:
    """The explicit ``-smp`` of a topology (what the models are recorded with, and their key)."""
    cpus, maxcpus, sockets, cores, threads = key
    return f"cpus={cpus},maxcpus={maxcpus},sockets={sockets},cores={cores},threads={threads}"


def stripped_dtb(dtb: bytes) -> bytes:
    """A DT without QEMU's zero padding (its content is a few KiB of a 1 MiB buffer): what a
    recorded DT is compressed against."""
    return dtb.rstrip(b"\0")[-32768:]


def pack_dt(dtb: bytes, against: bytes) -> dict[str, Any]:
    """A DT as stored in ``dt-smp``: its content compressed with the DT it derives from as the
    dictionary, and its padded size."""
    packer = zlib.compressobj(9, zdict=stripped_dtb(against))
    blob = packer.compress(dtb.rstrip(b"\0")) + packer.flush()
    return {"z": base64.b64encode(blob).decode(), "size": len(dtb)}


def _unpack_dt(stored: dict[str, Any], against: bytes) -> bytes:
    size = int(stored["size"])
    if not 0 < size <= _MAX_DT:
        raise OfflineError(f"a recorded DT claims {size} bytes")
    try:
        d = zlib.decompressobj(zdict=stripped_dtb(against))
        out = d.decompress(base64.b64decode(stored["z"]), size)
    except (zlib.error, ValueError) as exc:
        raise OfflineError(f"a recorded DT does not unpack ({exc}): re-record the offline model") from None
    if d.unconsumed_tail or len(out) > size:
        raise OfflineError("a recorded DT expands beyond its size")
    return out.ljust(size, b"\0")


def smp_delta(base: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any] | None:
    """What a CPU count changes in the device model against ``base`` (the same command line
    without -smp): models.option_delta's delta, plus the devices' MMIO region lists (the GIC has
    one per CPU); None when it changes what neither carries (back-ends, PCI ids, qdev ids)."""
    delta = option_delta(base, variant)
    a_index: dict[Any, dict[str, Any]] = {}
    b_index: dict[Any, dict[str, Any]] = {}
    _index(base["root"]["devices"], (), a_index, {})
    _index(variant["root"]["devices"], (), b_index, {})
    mmio = []
    for key, dev in a_index.items():
        other = b_index.get(key)
        if other is None:
            continue
        if any(dev[f] != other[f] for f in ("pci_ids", "pci_class", "backends", "id")):
            return None
        if dev["mmio"] != other["mmio"]:
            mmio.append({"device": list(key), "mmio": other["mmio"]})
    if variant["backends"] != base["backends"]:
        return None
    out = {k: v for k, v in delta.items() if k not in ("alone", "dt-only")}
    out["mmio"] = mmio
    return out


def _apply_mmio(config: dict[str, Any], changes: list[dict[str, Any]]) -> None:
    index: dict[Any, dict[str, Any]] = {}
    _index(config["root"]["devices"], (), index, {})
    for change in changes:
        dev = index.get(tuple(change["device"]))
        if dev is None:
            raise OfflineError("-smp: a device whose MMIO regions the CPU count changes is not in this model "
                               "(use online mode)")
        dev["mmio"] = [list(r) for r in change["mmio"]]


def _dt_of(variant: dict[str, Any]) -> bytes:
    blob = variant.get("dtb-zlib")
    if not blob:
        raise OfflineError("a recorded variant of this machine has no DT (re-record its offline model)")
    return _inflate(base64.b64decode(blob))


def _opt(name: str) -> str:
    if name == FIRMWARE:
        return "firmware (pflash0 or -bios)"
    return name if name.startswith("-") else f"-machine {name}"


def _feature(model: dict[str, Any], section: dict[str, Any], name: str) -> tuple[dict[str, Any], bytes] | None:
    """The -nodefaults device model (as data) and QEMU's DT of a DT feature: "" (none), one
    recorded option or CPU model, or two of them recorded together ("A&B", ``joint``)."""
    recorded = model.get("option-variants") or {}
    if name == "":
        plain = model["variants"]["nodefaults"]
        return plain, _dt_of(plain)
    if name in recorded:
        return recorded[name], _dt_of(recorded[name])
    joint = (section.get("joint") or {}).get(name)
    if not isinstance(joint, dict):
        return None
    parent_name = joint.get("parent")
    # a joint recording derives from one of its options, or (three or four) from a joint of one fewer
    if not isinstance(parent_name, str) or parent_name.count("&") >= name.count("&") \
            or not set(parent_name.split("&")) < set(name.split("&")):
        return None
    made = _feature(model, section, parent_name)
    if made is None:
        return None
    parent, parent_dt = made
    delta = section["deltas"][joint["delta"]]
    out = apply_deltas(parent, [(name, {**delta, "alone": False})])
    _apply_mmio(out, delta.get("mmio", []))
    return out, _unpack_dt(section["dts"][joint["dt"]], parent_dt)


def compose(model: dict[str, Any], variant: str, bad: list[str], smp: str | None, alone_ok: bool,
            checked_only: bool = True) -> tuple[dict[str, Any], bytes | None, str] | None:
    """The device model (as data), QEMU's DT (None: the model's own) and the DT feature they come
    from ("" none, an option, or options joined by "&", as ``joint`` names them) for a DT machine's variant
    of removed defaults, the options not at their defaults (``bad``: "NAME=VALUE" and "-cpu MODEL")
    and ``-smp``; None when the model file predates ``dt-smp`` (the caller's own, narrower rules
    then answer).  OfflineError naming what is not recorded.  ``checked_only=False`` lets an option
    that leaves the DT alone go with a DT-changing one without the recorded check that QEMU agrees
    (only the recorder itself, to make that check)."""
    section = model.get("dt-smp")
    if not isinstance(section, dict):
        return None
    recorded = model.get("option-variants") or {}
    missing = [b for b in bad if b not in recorded]
    if missing:
        raise OfflineError(f"{_opt(missing[0])}: not in the offline model (the options and CPU models recorded are "
                           "listed under option-variants in its file; use online mode)")
    # an option QEMU takes only beside another (mte=on with -cpu max) is recorded with it: the
    # partner is part of its recording, and without the partner QEMU refuses the command line
    requires = model.get("option-requires") or {}
    # beside firmware QEMU may take it alone (ras=on with an AArch64 CPU's acpi-ged): recorded per
    # DT feature (``waived``), where it is then one machine option more
    waivers = section.get("waived") or {}
    waived = []
    for b in list(bad):
        partner = requires.get(b)
        if partner is not None and partner not in bad:
            if FIRMWARE in bad and b in waivers:
                waived.append(b)
                bad.remove(b)
                continue
            raise OfflineError(f"{_opt(b)}: recorded only beside {_opt(partner)}, which QEMU needs with it on this machine "
                               "(without it QEMU refuses or aborts; use online mode)")
    partners = {requires[b] for b in bad if b in requires}
    bad = [b for b in bad if b not in partners]
    plain = model["variants"]["nodefaults"]
    deltas = [(b, option_delta(plain, recorded[b])) for b in bad]
    changing = sorted(b for b, d in deltas if d["alone"])
    # an option that leaves the DT alone but not beside a DT-changing one (its=off with
    # gic-version=3) is recorded with it, as two DT-changing options are
    joint_names = section.get("joint") or {}
    dt_changing = list(changing)  # what the neutral options were checked with
    for b, d in list(deltas):
        if not d["alone"] and changing and "&".join(sorted([*changing, b])) in joint_names:
            changing = sorted([*changing, b])
    others = [(b, d) for b, d in deltas if b not in changing]
    if len(changing) == 1 and not dict(deltas)[changing[0]].get("dt-only") \
            and smp_delta(plain, recorded[changing[0]]) is None:
        # it changes devices' resources or back-ends too: only its own recording, as QEMU made it
        if others or smp is not None or not alone_ok or waived:
            raise OfflineError(f"{_opt(changing[0])} changes QEMU's own DT and back-ends or resources: in the offline "
                               "model alone under -nodefaults only (use online mode)")
        return copy.deepcopy(recorded[changing[0]]), None, changing[0]
    feature = "&".join(changing)
    made = _feature(model, section, feature)
    if made is None:
        raise OfflineError(f"{', '.join(_opt(b) for b in changing)}: each changes QEMU's own DT, and together they are "
                           f"not in the offline model (one, or up to four recorded together, is; use online mode)")
    fdict, fdt = made
    for b in waived:
        if feature not in waivers[b]:
            raise OfflineError(f"{_opt(b)}: recorded only beside {_opt(requires[b])}, which QEMU needs with it here "
                               "(without it QEMU refuses or aborts; use online mode)")
    checked = set(section.get("checked") or [])
    for name, odelta in others:
        if not any(v for k, v in odelta.items() if k not in ("alone", "dt-only")):
            continue  # an option at its default value: QEMU builds the same machine with or without it
        for c in dt_changing:
            if checked_only and f"{c}&{name}" not in checked:
                raise OfflineError(f"{_opt(name)} with {_opt(c)}: not checked against QEMU in the offline model "
                                   "(it changes what the other writes into QEMU's DT; use online mode)")
        # with firmware, what one option makes depends on others (ACPI takes the GPIO away only with
        # an AArch64 CPU): beside firmware and more, an option is checked beside all of them
        if checked_only and FIRMWARE in changing and "&" in feature and f"{feature}&{name}" not in checked:
            raise OfflineError(f"{_opt(name)} with {', '.join(_opt(b) for b in changing)}: not checked against QEMU "
                               "together in the offline model (use online mode)")
    dtb: bytes | None = fdt if feature else None
    if feature and alone_ok and not others:
        out = copy.deepcopy(fdict)
    else:
        base = model["variants"][variant]
        if feature and variant != "nodefaults" and not _same_dt(base.get("dtb-zlib"), plain.get("dtb-zlib")):
            raise OfflineError(f"{_opt(changing[0])}: its DT is recorded under -nodefaults, and this machine's defaults "
                               "change the DT (use online mode)")
        todo = list(others)
        mmio: list[dict[str, Any]] = []
        if feature:
            # what it changes in the device model, MMIO region lists included (virtualization=on
            # gives the GIC its hypervisor regions)
            fdelta = smp_delta(plain, {**fdict, "dtb-zlib": plain.get("dtb-zlib")})
            if fdelta is None:
                raise OfflineError(f"{', '.join(_opt(b) for b in changing)}: changes QEMU's own DT and back-ends or "
                                   "resources: in the offline model alone under -nodefaults only (use online mode)")
            mmio = fdelta["mmio"]
            todo.insert(0, (feature, {**fdelta, "alone": False}))
        out = apply_deltas(base, todo) if todo else copy.deepcopy(base)
        _apply_mmio(out, mmio)
    if smp is not None:
        key = smp_text(smp_key(smp))
        entry = section.get("entries", {}).get(f"{feature}|{key}")
        if entry is None:
            with_what = f" with {', '.join(_opt(b) for b in changing)}" if feature else ""
            raise OfflineError(f"-smp {smp}: this topology{with_what} is not recorded in the offline model of this "
                               f"machine (the topologies recorded are listed under dt-smp; use online mode)")
        delta = section["deltas"][entry["delta"]]
        out = apply_deltas(out, [(f"-smp {smp}", {**delta, "alone": False})])
        _apply_mmio(out, delta.get("mmio", []))
        dtb = _unpack_dt(section["dts"][entry["dt"]], fdt)
    for b in waived:
        key, _, value = b.partition("=")
        out["machine"]["options"] = dict(sorted({**out["machine"]["options"], key: value}.items()))
    return out, dtb, feature


def _has_msi(dtb: bytes) -> bool:
    """Whether QEMU's DT gives its PCI host an MSI controller (msi-map or msi-parent)."""
    from dtvm.dt.dtb import read_dtb

    tree = read_dtb(dtb, "an offline model's DT")
    hosts = [n for n in tree.root.walk() if n.get_property("device_type") is not None
             and bytes(n["device_type"].value).rstrip(b"\0") == b"pci"]
    return any(n.get_property(p) is not None for n in hosts for p in ("msi-map", "msi-parent"))


def msi_lost(model: dict[str, Any], dtb: bytes | None) -> bool:
    """Whether the options of a command line take away the MSI controller the device profiles
    were recorded with (gic-version=3 with its=off: no ITS, no GICv2m).  Measured: QEMU then
    realizes PCI devices otherwise (virtio's vectors 0, megasas without msi/msix, no root port at
    all: "MSI-X is not supported by interrupt controller"), which no profile holds."""
    if dtb is None:
        return False
    return _has_msi(_dt_of(model["variants"]["nodefaults"])) and not _has_msi(dtb)


def reprofile_without_msi(dev: Any, profiles: dict[str, Any], no_msi: dict[str, Any]) -> bool:
    """A PCI device the machine's defaults made (virt's default NIC, which QEMU realizes as a
    -device on the root bus, not as machine init makes -nic's) as QEMU makes it without an MSI
    controller: what its root-bus profile changes there (``no-msi``), on it and its children;
    False where the model does not hold that (measured: the default virtio-net-pci's vectors go
    from 4 to 0, as a -device virtio-net-pci's do)."""
    key = f"{dev.driver}@pci-root"
    if key in no_msi.get("same", []):
        return True
    now, was = (no_msi.get("profiles") or {}).get(key), profiles.get(key)
    if now is None or was is None:
        return False
    pairs: list[tuple[Any, dict[str, Any], dict[str, Any]]] = [(dev, was["device"], now["device"])]
    while pairs:
        target, a, b = pairs.pop()
        if not target.driver == a["driver"] == b["driver"] or not len(target.buses) == len(a["buses"]) == len(b["buses"]):
            return False
        for name in set(a["props"]) | set(b["props"]):
            if a["props"].get(name) != b["props"].get(name):
                if name in b["props"]:
                    target.props[name] = str(b["props"][name])
                else:
                    target.props.pop(name, None)
        for bus, abus, bbus in zip(target.buses, a["buses"], b["buses"], strict=True):
            if not len(bus.devices) == len(abus["devices"]) == len(bbus["devices"]):
                return False
            pairs += list(zip(bus.devices, abus["devices"], bbus["devices"], strict=True))
    return True


#: what virt writes into its DT when a virtio-iommu-pci is plugged (hw/arm/virt.c
#: create_virtio_iommu_dt_bindings, at plug time, after the DT was built)
_VIOMMU_COMPAT = b"virtio,pci-iommu\0pci1af4,1057\0"


def plug_virtio_iommu(dtb: bytes, devfn: int, bypass: bool) -> bytes:
    """QEMU's DT once a virtio-iommu-pci is plugged at ``devfn`` of the root bus: a
    ``virtio_iommu@S,F`` node under the PCIe host with the next phandle QEMU allocates (one past
    the highest: qemu_fdt_alloc_phandle counts up from 0x8000), and, unless the root bus
    bypasses IOMMUs, the host's ``iommu-map`` around the IOMMU's own id.  libfdt puts a property
    it adds first in its node, and the node last under its parent.  The recorder holds this to
    QEMU (``virtio-iommu`` in the DT machines' models) for each DT-changing option."""
    from dtvm.dt.dtb import read_dtb, write_dtb
    from dtvm.dt.tree import Node, Property

    tree = read_dtb(dtb, "QEMU's DT")
    hosts = [n for n in tree.root.walk() if n.get_property("device_type") is not None
             and bytes(n["device_type"].value).rstrip(b"\0") == b"pci"]
    if len(hosts) != 1:
        raise OfflineError("virtio-iommu-pci: QEMU's DT has no single PCIe host here (use online mode)")
    host = hosts[0]
    phandles = [n["phandle"].as_u32() for n in tree.root.walk() if n.get_property("phandle") is not None]
    phandle = max([0x7FFF, *phandles]) + 1
    node = Node(f"virtio_iommu@{devfn >> 3:x},{devfn & 7:x}")

    def cells(*values: int) -> bytes:
        return b"".join(v.to_bytes(4, "big") for v in values)

    for name, value in (("compatible", _VIOMMU_COMPAT), ("reg", cells(devfn << 8, 0, 0, 0, 0)),
                        ("#iommu-cells", cells(1)), ("phandle", cells(phandle))):
        node.props.insert(0, Property(name, value))
    host.add_child(node)
    if not bypass:
        host.props.insert(0, Property("iommu-map", cells(0, phandle, 0, devfn, devfn + 1, phandle, devfn + 1,
                                                         0xFFFF - devfn)))
    out = write_dtb(tree)
    return out.ljust(len(dtb), b"\0") if len(out) <= len(dtb) else out


def plug_dt_devices(config: Any, model: dict[str, Any], feature: str) -> None:
    """What plugging devices writes into QEMU's own DT on virt: a virtio-iommu-pci's node and the
    host's ``iommu-map`` (plug_virtio_iommu), where the recorder checked that against QEMU with
    the command line's DT feature (``virtio-iommu`` in ``dt-smp``); the machine's ``iommu``
    option is then not described, as online (its getter aborts QEMU: data/machines.yaml
    ``getter-aborts``)."""
    iommus = [d for d in config.devices() if d.driver == "virtio-iommu-pci"]
    if not iommus:
        return
    options = config.machine.options
    if len(iommus) > 1 or options.get("iommu", "none") != "none":
        raise OfflineError("-device virtio-iommu-pci: a second IOMMU (QEMU refuses it: \"virt machine does not support "
                           "multiple IOMMUs\")")
    checked = (model.get("dt-smp") or {}).get("virtio-iommu") or []
    if feature not in checked:
        with_what = f" with {', '.join(_opt(b) for b in feature.split('&'))}" if feature else ""
        raise OfflineError(f"-device virtio-iommu-pci{with_what}: what it writes into QEMU's DT is not checked against "
                           "QEMU in the offline model (the DT features checked are listed under dt-smp virtio-iommu; "
                           "use online mode)")
    dev = iommus[0]
    if dev.address[0] != "pci" or config.dtb is None:
        raise OfflineError("-device virtio-iommu-pci: not on the PCIe root bus (QEMU refuses it)")
    slot, func = dev.address[1][-2:]
    config.dtb = plug_virtio_iommu(config.dtb, slot << 3 | func, options.get("default-bus-bypass-iommu") == "on")
    options.pop("iommu", None)
