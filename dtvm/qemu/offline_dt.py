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

A command line takes at most one DT-changing option (measured: the DT-changing options of virt
touch the same nodes, the GIC, /psci, the memory map, and their phandles shift together, so
their DTs do not compose from single recordings), any number of options that leave the DT alone,
and any ``-smp`` topology of the recorded set; whatever else is an error naming it.  The DT of a
variant without some defaults (-net none, ...) is the -nodefaults one, which a load-time check
holds (those defaults are PCI devices, outside QEMU's DT).
"""

from __future__ import annotations

import base64
import copy
import re
import zlib
from typing import Any

from dtvm.qemu.models import OfflineError, _inflate, _same_dt, apply_deltas, option_delta

__all__ = ["compose", "smp_key", "smp_text"]

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
    d = zlib.decompressobj(zdict=stripped_dtb(against))
    out = d.decompress(base64.b64decode(stored["z"]), size)
    if d.unconsumed_tail or len(out) > size:
        raise OfflineError("a recorded DT expands beyond its size")
    return out.ljust(size, b"\0")


def _dt_of(variant: dict[str, Any]) -> bytes:
    blob = variant.get("dtb-zlib")
    if not blob:
        raise OfflineError("a recorded variant of this machine has no DT (re-record its offline model)")
    return _inflate(base64.b64decode(blob))


def _opt(name: str) -> str:
    return name if name.startswith("-") else f"-machine {name}"


def compose(model: dict[str, Any], variant: str, bad: list[str], smp: str | None,
            alone_ok: bool) -> tuple[dict[str, Any], bytes | None] | None:
    """The device model (as data) and QEMU's DT (None: the model's own) for a DT machine's variant
    of removed defaults, the options not at their defaults (``bad``: "NAME=VALUE" and "-cpu MODEL")
    and ``-smp``; None when the model file predates ``dt-smp`` (the caller's own, narrower rules
    then answer).  OfflineError naming what is not recorded."""
    section = model.get("dt-smp")
    if not isinstance(section, dict):
        return None
    recorded = model.get("option-variants") or {}
    missing = [b for b in bad if b not in recorded]
    if missing:
        raise OfflineError(f"{_opt(missing[0])}: not in the offline model (the options and CPU models recorded are "
                           "listed under option-variants in its file; use online mode)")
    plain = model["variants"]["nodefaults"]
    deltas = [(b, option_delta(plain, recorded[b])) for b in bad]
    changing = [(b, d) for b, d in deltas if d["alone"]]
    others = [(b, d) for b, d in deltas if not d["alone"]]
    if len(changing) > 1:
        raise OfflineError(f"{', '.join(_opt(b) for b, _ in changing)}: each changes QEMU's own DT, and together they "
                           "are not in the offline model (one at a time is; use online mode)")
    feature = changing[0][0] if changing else ""
    if changing and not changing[0][1].get("dt-only"):
        # it changes devices' resources or back-ends too: only its own recording, as QEMU made it
        if others or smp is not None or not alone_ok:
            raise OfflineError(f"{_opt(feature)} changes QEMU's own DT and back-ends or resources: in the offline model "
                               "alone under -nodefaults only (use online mode)")
        return copy.deepcopy(recorded[feature]), None
    dtb: bytes | None = None
    if feature and alone_ok and not others:
        out = copy.deepcopy(recorded[feature])
    else:
        base = model["variants"][variant]
        if feature and variant != "nodefaults" and not _same_dt(base.get("dtb-zlib"), plain.get("dtb-zlib")):
            raise OfflineError(f"{_opt(feature)}: its DT is recorded under -nodefaults, and this machine's defaults "
                               "change the DT (use online mode)")
        todo = [(feature, {**changing[0][1], "alone": False})] if feature else []
        out = apply_deltas(base, todo + others) if todo or others else copy.deepcopy(base)
        if feature:
            out["dtb-zlib"] = recorded[feature]["dtb-zlib"]
    if smp is not None:
        key = smp_text(smp_key(smp))
        entry = section.get("entries", {}).get(f"{feature}|{key}")
        if entry is None:
            with_what = f" with {_opt(feature)}" if feature else ""
            raise OfflineError(f"-smp {smp}: this topology{with_what} is not recorded in the offline model of this "
                               f"machine ({len(section.get('forms', []))} topologies are, listed under dt-smp; use "
                               "online mode)")
        delta = section["deltas"][entry["delta"]]
        out = apply_deltas(out, [(f"-smp {smp}", {**delta, "alone": False})])
        against = _dt_of(recorded[feature] if feature else plain)
        dtb = _unpack_dt(section["dts"][entry["dt"]], against)
    return out, dtb
