"""What dtvm reads from one QEMU process, exactly as QEMU answered.

The snapshot is the boundary between talking to QEMU (``live``) and understanding it (``config``):
keeping QEMU's raw answers here lets tests replay a VM without starting one, and keeps protocol
details out of the device model.  Nothing in it is interpreted beyond JSON decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Peripheral:
    """A device created by ``-device`` or ``device_add`` (its QOM path is under /machine/peripheral*).

    ``parent_bus`` is the QOM path of the bus (``qom-get parent_bus``); ``address`` holds the raw
    values of the bus address properties the device has (``addr``, ``port``, ``unit``, ``scsi-id``,
    ``lun``, ``nr``, ``reg``, ``iobase``, ``index``, ``chardev`` is not an address) as QEMU returned them.
    """

    qom_path: str
    id: str | None
    type: str
    hotplugged: bool
    parent_bus: str | None
    address: dict[str, Any] = field(default_factory=dict)


@dataclass
class Snapshot:
    """QEMU's raw answers about one VM (see ``dtvm.qemu.live.read``)."""

    arch: str                                   # query-target "arch" (x86_64, aarch64, arm, riscv64, ppc64)
    machine_type: str                           # qom-get /machine type minus "-machine" ("pc-q35-7.2", "virt-7.2")
    machine_props: dict[str, Any]               # qom-get of /machine's scalar properties
    machine_prop_defaults: dict[str, Any]       # qom-list-properties of the machine type: name -> default-value
    qtree: str                                  # HMP "info qtree"
    type_props: dict[str, list[dict[str, Any]]] # device-list-properties per device type in the qtree
    peripherals: list[Peripheral]               # /machine/peripheral and /machine/peripheral-anon
    cpus: list[dict[str, Any]]                  # query-cpus-fast
    cpu_types: dict[str, str]                   # qom path of each CPU -> its QOM type ("cortex-a57-arm-cpu")
    hotpluggable_cpus: list[dict[str, Any]]     # query-hotpluggable-cpus ([] where unsupported)
    memory: dict[str, Any]                      # query-memory-size-summary
    memdevs: list[dict[str, Any]]               # query-memdev
    block: list[dict[str, Any]]                 # query-block
    block_nodes: list[dict[str, Any]]           # query-named-block-nodes
    chardevs: list[dict[str, Any]]              # query-chardev
    network: str                                # HMP "info network"
    dtb: bytes | None                           # QMP dumpdtb (None when the machine has no FDT)
    argv: list[str] | None = None               # the command line, when dtvm started the VM
    version: dict[str, Any] = field(default_factory=dict)  # query-version
