"""Offline: pc-dimm, where QEMU 7.2 plugs it in the machine's device-memory region.

A pc-dimm is on no bus (offline_busless.py places it); what QEMU works out for it is its slot
(the first free of ``-m slots=``) and its guest-physical ``addr`` (memory_device_get_free_addr:
the first gap of the region, from its base, aligned to its RAM back-end's alignment, 2 MiB for
anonymous RAM on this host), both described online.  The region's base on q35 and pc is the
first GiB boundary at or above the end of RAM above 4 GiB (pc_memory_init).  Measured: two dimms
of 128 MiB and 64 MiB at 4 GiB and 4 GiB + 128 MiB, slots 0 and 1.  What it does not model (an
``addr=``/``slot=``/``node=`` of the user's, another machine's region, a size not whole 2 MiB)
is refused by name.
"""

from __future__ import annotations

from dtvm.qemu.models import OfflineError
from dtvm.qemu.offline_memhp import MemoryOption
from dtvm.qemu.trust import trust
from dtvm.vm.model import Config

__all__ = ["DIMM", "check_dimm_options", "place_dimms"]

DIMM = "pc-dimm"
GiB = 1 << 30
_ALIGN = 2 << 20  # QEMU_VMALLOC_ALIGN: the alignment of an anonymous RAM block on x86_64/aarch64 hosts
_MACHINES = ("q35-pcihost", "i440FX-pcihost")


def check_dimm_options(user: dict[str, str], where: str) -> None:
    """A pc-dimm's own options the model takes: memdev (and id); QEMU's choice of the rest."""
    extra = sorted(set(user) - {"memdev", "id", "driver"})
    if extra:
        raise OfflineError(f"{where}: {extra[0]}=: a pc-dimm placed by the user is not in the offline model "
                           "(use online mode)")


def place_dimms(config: Config, option: MemoryOption | None) -> None:
    """Each pc-dimm's slot and addr, in the order of the command line; OfflineError as QEMU
    refuses (no hot-plug slots, no free slot, not enough space) or naming what is not modelled."""
    dimms = [d for d in config.root.devices if d.driver == DIMM]
    if not dimms:
        return
    where = f"-device {DIMM}"
    if option is None or option.slots is None or option.maxmem is None:
        raise OfflineError(f"{where}: no -m slots=,maxmem=: QEMU refuses a memory device without them")
    host = next((d for d in config.root.devices if d.driver in _MACHINES), None) or \
        next((d for d in config.devices() if d.driver in _MACHINES), None)
    if host is None:
        raise OfflineError(f"{where}: the device-memory region of {config.machine.type} is not in the offline model "
                           "(use online mode)")
    above = int(host.props.get("above-4g-mem-size", "0"))
    base = -(-(4 * GiB + above) // GiB) * GiB
    rule = trust().guest_link(DIMM, "link<memory-backend>")
    if rule is None:
        raise OfflineError(f"{where}: the trust model describes no pc-dimm memdev (use online mode)")
    used, at = 0, base
    for slot, dev in enumerate(dimms):
        _, options = rule.parse(dev.props.get("memdev", ""), where)
        size = int(dict(options).get("size", "0"))
        if slot >= option.slots:
            raise OfflineError(f"{where}: no free slot of the {option.slots} of -m (QEMU refuses it)")
        if size <= 0 or size % _ALIGN:
            raise OfflineError(f"{where}: a back-end of {size} bytes: only whole 2 MiB are in the offline model "
                               "(use online mode)")
        if used + size > option.maxmem - config.machine.memory:
            raise OfflineError(f"{where}: not enough space below -m maxmem (QEMU refuses it)")
        at = -(-at // _ALIGN) * _ALIGN
        dev.props["addr"], dev.props["slot"] = str(at), str(slot)
        at, used = at + size, used + size
