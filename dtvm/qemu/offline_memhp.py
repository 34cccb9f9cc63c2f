"""Offline: memory hot-plug slots (``-m SIZE,slots=N,maxmem=M``), as QEMU 7.2 builds them.

The slots and the hot-plug ceiling are guest-visible only as the /qemu ``memory-slots`` and
``max-memory-size`` (what online reads from the machine's QOM ``memory`` property); measured with
QEMU 7.2 (online qemu2dtb, with and without them): on q35 and pc nothing else of the description
changes; on riscv64 virt neither (7.2 has no device-memory region there); on aarch64/arm virt the
machine turns NUMA on by itself (``auto_enable_numa_with_memhp``), so QEMU's DT gives the /memory
node and every CPU node ``numa-node-id = <0>``, and a device-memory region that reaches past
256 GiB moves the high PCIe windows (measured: maxmem=300G moves the high ECAM), which this model
refuses by name rather than guess; with highmem=off QEMU refuses device memory past 4 GiB
(measured: "Addressing limited to 32 bits"); the acpi-ged virt makes beside firmware signals
memory hot-plug too (its ``ged-event``).
"""

from __future__ import annotations

import re

from dtvm.qemu.models import OfflineError
from dtvm.vm.model import Config

__all__ = ["MemoryOption", "parse_memory", "set_memory_slots", "size_bytes"]

GiB = 1 << 30
#: ACPI_MAX_RAM_SLOTS: the most slots q35, pc and arm virt take
_MAX_SLOTS = 256
#: virt's high IO regions start here unless the device-memory region reaches past it
_VIRT_HIGH_IO = 256 * GiB


class MemoryOption:
    """``-m`` read as QEMU's parse_memory_options reads it: the RAM's size text, and the hot-plug
    slots and ceiling (None when not given)."""

    def __init__(self, size: str, slots: int | None, maxmem: int | None, text: str) -> None:
        self.size, self.slots, self.maxmem, self.text = size, slots, maxmem, text


def size_bytes(text: str, where: str) -> int:
    """A QemuOpts size (maxmem, requested-size): bytes without a suffix, else one B/K/M/G/T suffix."""
    m = re.fullmatch(r"(\d+)([BKMGT]?)", text.strip(), re.IGNORECASE)
    if not m:
        raise OfflineError(f"{where}: only a whole size (1G, 1073741824) is in the offline model (use online mode)")
    return int(m.group(1)) * {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": GiB, "T": 1 << 40}[m.group(2).upper()]


def parse_memory(text: str) -> MemoryOption:
    """``-m [size=]SIZE[,slots=N,maxmem=M]``; OfflineError naming the key for anything else."""
    from dtvm.qemu.opts import parse

    head, pairs = parse(text, implied="size", where="-m")
    found: dict[str, str] = {} if head is None else {"size": head}
    for key, value in pairs:
        if key not in ("size", "slots", "maxmem"):
            raise OfflineError(f"-m {text}: {key}: not a parameter of -m (QEMU refuses it)")
        found[key] = value  # QemuOpts: the last one counts
    if "size" not in found:
        raise OfflineError(f"-m {text}: no size: only -m with a size is in the offline model (use online mode)")
    slots = maxmem = None
    if "slots" in found or "maxmem" in found:
        if "slots" not in found or "maxmem" not in found:
            raise OfflineError(f"-m {text}: slots and maxmem only together are in the offline model (use online mode)")
        if not found["slots"].isdigit():
            raise OfflineError(f"-m {text}: slots={found['slots']}: not a number (QEMU refuses it)")
        slots, maxmem = int(found["slots"]), size_bytes(found["maxmem"], f"-m {text}: maxmem")
    return MemoryOption(found["size"], slots, maxmem, text)


def set_memory_slots(config: Config, option: MemoryOption, ram: int, virt_dt: bool) -> None:
    """The machine's hot-plug slots and ceiling as online describes them; on arm/aarch64 virt the
    NUMA node QEMU then adds to its DT.  OfflineError naming what the model leaves to online mode."""
    if option.slots is None or option.maxmem is None:
        return
    where = f"-m {option.text}"
    if not 0 < option.slots <= _MAX_SLOTS:
        raise OfflineError(f"{where}: slots={option.slots}: only 1 to {_MAX_SLOTS} slots are in the offline model "
                        "(use online mode)")
    if option.maxmem <= ram or option.maxmem % (1 << 20):
        raise OfflineError(f"{where}: maxmem must be whole MiB above the RAM size in the offline model (use online mode)")
    arch = config.machine.arch
    if virt_dt and arch in ("aarch64", "arm"):
        # hw/arm/virt.c virt_set_memmap: device memory from RAM's end (rounded to a GiB), one GiB per slot
        top = -(-(GiB + ram) // GiB) * GiB + -(-(option.maxmem - ram + option.slots * GiB) // GiB) * GiB
        if config.machine.options.get("highmem") == "off" and top > 4 * GiB:
            raise OfflineError(f"{where}: device memory up to {top >> 30} GiB with highmem=off: QEMU refuses it "
                               "('Addressing limited to 32 bits')")
        if top > _VIRT_HIGH_IO:
            raise OfflineError(f"{where}: device memory up to {top >> 30} GiB moves virt's high PCIe windows, which "
                            "the offline model does not (use online mode)")
        _numa_node_zero(config, where)
        _ged_memory_hotplug(config)
    config.machine.memory_slots, config.machine.max_memory = option.slots, option.maxmem


#: ACPI_GED_MEM_HOTPLUG_EVT: the event virt's acpi-ged signals memory hot-plug with
_GED_MEM_HOTPLUG = 1


def _ged_memory_hotplug(config: Config) -> None:
    """virt's acpi-ged (made with firmware and an AArch64 CPU) gains the memory hot-plug event
    with slots (hw/arm/virt.c create_acpi_ged: ``if (ms->ram_slots)``; measured: ``ged-event``
    3 for 2 with -m slots=2,maxmem=1G beside firmware)."""
    for dev in config.devices():
        if dev.driver == "acpi-ged":
            dev.props["ged-event"] = str(int(dev.props.get("ged-event", "0"), 0) | _GED_MEM_HOTPLUG)


def _numa_node_zero(config: Config, where: str) -> None:
    """``numa-node-id = <0>`` where QEMU 7.2's virt writes it with one NUMA node: last on /memory
    (libfdt puts a new property first), and on each CPU after its ``reg`` (so before it)."""
    from dtvm.dt.dtb import read_dtb, write_dtb
    from dtvm.dt.tree import Property

    if config.dtb is None:
        raise OfflineError(f"{where}: this machine's model has no DT to give the NUMA node (use online mode)")
    tree = read_dtb(config.dtb)
    memory = [n for n in tree.root.live_children() if n.name.startswith("memory@")]
    cpus_node = tree.root.get_child("cpus")
    cpus = [n for n in cpus_node.live_children() if n.name.startswith("cpu@")] if cpus_node is not None else []
    if len(memory) != 1 or not cpus or any(n.get_property("reg") is None or "numa-node-id" in n
                                           for n in [*memory, *cpus]):
        raise OfflineError(f"{where}: this machine's DT is not the one the NUMA node is modelled on (use online mode)")
    zero = (0).to_bytes(4, "big")
    memory[0].props.insert(0, Property("numa-node-id", zero))
    for cpu in cpus:
        at = next(i for i, p in enumerate(cpu.props) if p.name == "reg")
        cpu.props.insert(at, Property("numa-node-id", zero))
    config.dtb = write_dtb(tree)
