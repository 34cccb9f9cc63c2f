"""The generator's census stream: the device types QEMU creates and migrates that the team's own
streams do not draw (tests/device_census.py found them, type by type, and ran each through every
stage alone), drawn into generated cases with the back-ends and controllers the census gave them.

Only types whose census round trip passed are drawn: the others fail a stage alone, and are
listed with the stage and the words in fixtures/qemu-census/round-trip-7.2.json.
"""

from __future__ import annotations

import json
import random
import re
import shlex
from functools import cache
from pathlib import Path

__all__ = ["NOT_DRAWN", "census_draw", "census_pool", "with_directories", "with_memory_slots"]

_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "qemu-census"
#: ids the census gives its controllers and back-ends (tests/device_census.py _PARENT, _NEEDS)
_IDS = ("cx", "cs", "ch", "ca", "cv", "cn", "cc", "cf", "bk", "chr", "mem", "net", "snd", "bmc", "canbus", "fs",
        "cr", "io", "tpm")


#: machine options a census type needs that no case draws: kept as the census gave them (QEMU
#: merges a second -M into the case's -machine)
_MERGED_MACHINE_OPTIONS = ("nvdimm=on",)
#: types whose memory back-end is drawn as a host file half the time (persistent memory's usual
#: back-end; the description keeps it in the overlay), in the case's directory
_FILE_BACKED = ("nvdimm", "spapr-nvdimm", "virtio-pmem-pci")
#: types whose census configuration QEMU 7.2 itself does not always migrate into itself, left out
#: of the draw (tests/test_device_census.py counts them as measured), each with what was measured
NOT_DRAWN = {
    "ipmi-bmc-extern": "alone (no interface links it), QEMU 7.2's destination dereferences the BMC's NULL "
                       "interface in its post_load (SIGSEGV in object_get_class under vmstate_load_state) when "
                       "the source had a response pending: the identical command line migrated into itself "
                       "crashed its destination 1 of 8 times (source run 1 s, read, 2.5 s more); its census round trip "
                       "on pc failed at migrate 7 of 34 runs; linked to an isa-ipmi-kcs, 8 of 8 passed",
}


@cache
def census_pool(machine: str) -> tuple[tuple[str, tuple[str, ...], str], ...]:
    """(type, the census's argv for it after the machine, the memory hot-plug options its -m
    needs: ``slots=2,maxmem=1G`` or empty) of each type to draw on ``machine``."""
    try:
        census = json.loads((_DIR / "7.2.json").read_text())[machine]
        trips = json.loads((_DIR / "round-trip-7.2.json").read_text()).get(machine, {})
    except (OSError, KeyError, ValueError):
        return ()
    out = []
    for dtype, record in sorted(trips.items()):
        if record.get("result") != "passed" or dtype in NOT_DRAWN:
            continue
        argv = shlex.split(census[dtype]["argv"])
        # the census's head: -machine TYPE -nodefaults; its -m (anywhere): the case has its own
        # size, and takes the census's memory hot-plug slots (pc-dimm, virtio-mem-pci need them)
        rest = argv[3:]
        slots = ""
        if "-m" in rest:
            at = rest.index("-m")
            slots = rest[at + 1].partition(",")[2]
            rest = rest[:at] + rest[at + 2:]
        if "-m" in rest or ("-M" in rest and rest[rest.index("-M") + 1] not in _MERGED_MACHINE_OPTIONS):
            continue  # a machine option of its own: not composable with a case's
        out.append((dtype, tuple(rest), slots))
    return tuple(out)


def census_draw(rng: random.Random, machine: str, token: str) -> tuple[list[str], str]:
    """The argv of one census type for a case, its ids suffixed with ``token`` (unique in the case),
    and the memory hot-plug options (``slots=...,maxmem=...``) the case's -m must take for it."""
    pool = census_pool(machine)
    if not pool:
        return [], ""
    dtype, argv, slots = rng.choice(pool)
    ids = "|".join(_IDS)
    drawn = [re.sub(rf"(?<=[=,])({ids})(?=[,.]|$)", rf"\g<1>{token}", a) for a in argv]
    if dtype in _FILE_BACKED and rng.random() < 0.5:
        share = rng.choice(["on", "off"])
        drawn = [re.sub(r"^memory-backend-ram,id=([^,]+)", rf"memory-backend-file,id=\1,mem-path=@IMG@\1.img,share={share}", a)
                 for a in drawn]
    for i, arg in enumerate(drawn):
        if arg.startswith(("virtio-mem,", "virtio-mem-pci,")) and rng.random() < 0.5:
            # the size the host asks the guest to plug (a setting info qtree does not show): whole
            # blocks of the census's 128M back-end, or past it, as QEMU takes it at realize
            drawn[i] += ",requested-size=" + rng.choice(("0", "2M", "64M", "128M", "256M"))
    for i, arg in enumerate(drawn):
        if arg.startswith("usb-host") and arg.split(",", 1)[0] == "usb-host":
            # the host device it takes, as users select one (none matches on a host without USB;
            # never hostbus/hostaddr alone, or hostdevice: QEMU opens those when it makes the
            # device, and refuses it without one)
            drawn[i] += rng.choice(("", ",vendorid=0x046d,productid=0xc52b", ",vendorid=0x0781",
                                    ",hostbus=1,hostport=1.4", ",hostport=2.1", ",hostbus=2,hostaddr=3,vendorid=0x1d6b"))
    return drawn, slots


def with_memory_slots(args: list[str], slots: str, size: str = "128M") -> None:
    """Give a case's -m the memory hot-plug options ``slots`` (its size stays; without -m, the
    census's ``size``): the case sizes are all below the census's maxmem."""
    if "-m" in args:
        at = args.index("-m") + 1
        args[at] = f"{args[at]},{slots}"
    else:
        args[1:1] = ["-m", f"{size},{slots}"]


#: the security models of -fsdev local (what QEMU does with the guest's file ownership and modes)
_SECURITY_MODELS = ("none", "mapped-xattr", "mapped-file", "passthrough")


def with_directories(rng: random.Random, args: list[str], images: dict[str, tuple[str, int]]) -> list[str]:
    """A census fsdev (the census exports /usr/share/doc) as users write one: a directory of its
    own under the case's directory (``@IMG@NAME``, made by Case.materialize), a security model,
    read-only or not, and for a plain virtio-9p-pci half the time ``-virtfs`` (the fsdev and the
    device in one option; its fsdev id the mount tag unless ``id=``).  Draws nothing without one,
    so the cases of the other types stay as they were."""
    if "-fsdev" not in args:
        return args
    at = args.index("-fsdev")
    found = re.search(r"(?:^|,)id=([^,]+)", args[at + 1])
    dev_at = next((i for i, a in enumerate(args[:-1]) if a == "-device" and found and f"fsdev={found.group(1)}" in args[i + 1]), None)
    if found is None or dev_at is None:
        return args
    ident = found.group(1)
    name = f"share{len(images)}"
    images[name] = ("dir", 0)
    options = f"path=@IMG@{name},security_model={rng.choice(_SECURITY_MODELS)}" + \
        (",readonly=on" if rng.random() < 0.5 else "")
    device = args[dev_at + 1]
    tag = re.search(r"mount_tag=([^,]+)", device)
    if device.split(",", 1)[0] == "virtio-9p-pci" and "bus=" not in device and tag and rng.random() < 0.5:
        named = f",id={ident}" if rng.random() < 0.5 else ""
        virtfs = ["-virtfs", f"local,{options},mount_tag={tag.group(1)}{named}"]
        rest = [a for i, a in enumerate(args) if i not in (at, at + 1, dev_at, dev_at + 1)]
        return [*rest, *virtfs]
    out = list(args)
    out[at + 1] = f"local,id={ident},{options}"
    return out
