"""What dtvm reads from one QEMU process, exactly as QEMU answered.

The snapshot is the boundary between talking to QEMU (``live``) and understanding it (``config``):
keeping QEMU's raw answers here lets tests replay a VM without starting one, and keeps protocol
details out of the device model.  Nothing in it is interpreted beyond JSON decoding.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from dtvm.errors import DtvmError

#: Version of the JSON form written by ``Snapshot.to_dict`` (``from_dict`` refuses other versions).
SNAPSHOT_FORMAT = 1


class SnapshotFormatError(DtvmError):
    """A saved snapshot that is not in the form ``Snapshot.to_dict`` writes."""


@dataclass
class Peripheral:
    """A device created by ``-device`` or ``device_add`` (its QOM path is under /machine/peripheral*).

    ``parent_bus`` is the QOM path of the bus (``qom-get parent_bus``); ``address`` holds the raw
    values of the bus address properties the device has (``addr``, ``port``, ``unit``, ``scsi-id``,
    ``lun``, ``nr``, ``reg``, ``iobase``, ``index``) as QEMU returned them, and ``chardev`` where the
    type has one (not an address: isa-serial's is an alias ``info qtree`` does not show).
    ``props`` holds, for a device on no bus (vmcoreinfo, vmgenid: ``info qtree`` never shows
    them), the ``qom-get`` value of each of its type's qdev properties but links; for a device on
    a bus, those of its settings no qdev property holds (``qom-settings`` in devices.yaml).
    ``links`` holds each QOM link property of its type (``canbus``, ``memdev``): its QOM type
    (``link<can-bus>``) and the ``qom-get`` answer, the linked object's path ("" when unset).
    """

    qom_path: str
    id: str | None
    type: str
    hotplugged: bool
    parent_bus: str | None
    address: dict[str, Any] = field(default_factory=dict)
    props: dict[str, Any] = field(default_factory=dict)
    links: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Snapshot:
    """QEMU's raw answers about one VM (see ``dtvm.qemu.live.read``)."""

    arch: str                                   # query-target "arch" (x86_64, aarch64, arm, riscv64, ppc64)
    machine_type: str                           # qom-get /machine type minus "-machine" ("pc-q35-7.2", "virt-7.2")
    machine_props: dict[str, Any]               # qom-get of /machine's scalar properties, and smp (a struct)
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
    binary: str | None = None                   # the VM's QEMU executable, when known (argv[0], the QMP peer's)
    version: dict[str, Any] = field(default_factory=dict)  # query-version
    #: query-machines' compat-props of this machine type, in QEMU's order (QEMU >= 9.1; [] before)
    compat_props: list[dict[str, Any]] = field(default_factory=list)
    #: QOM ancestors of the device types in the qtree that a compat property names (qom-list-types)
    type_ancestors: dict[str, list[str]] = field(default_factory=dict)
    #: the user's QOM objects (``qom-list /objects``): id -> {"type": QOM type ("can-bus",
    #: "memory-backend-ram")}, and a memory-backend-file's own properties (``qom-get``: mem-path, ...)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: HMP "info numa" ("0 nodes" without -numa): read so that a VM with NUMA nodes, which the
    #: description does not hold yet, is refused by name instead of rebuilt without them
    numa: str = ""
    #: the command line of the QMP socket's peer process (/proc), when readable: the options of
    #: back-ends QMP reports only by id (fsdevs)
    peer_argv: list[str] | None = None

    # A saved snapshot replays a VM without QEMU (tests, bug reports).  Every field is already JSON
    # except the DT blob: it is stored as base64 of its bytes up to the last non-zero byte plus its
    # full size, because QEMU's arm virt DT is 1 MiB of which all but ~8 KB is zero padding.

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (``json.dumps`` works on it) that ``from_dict`` turns back into an equal Snapshot."""
        out: dict[str, Any] = {"format": SNAPSHOT_FORMAT}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "peripherals":
                value = [asdict(p) for p in value]
            elif f.name == "dtb":
                value = None if value is None else _encode_blob(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Snapshot:
        """The Snapshot ``to_dict`` made; :class:`SnapshotFormatError` names what is wrong otherwise."""
        if not isinstance(data, dict):
            raise SnapshotFormatError("snapshot: expected a JSON object")
        if data.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotFormatError(f"snapshot: unsupported format {data.get('format')!r} "
                                      f"(expected {SNAPSHOT_FORMAT})")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                if f.name in ("argv", "binary", "version", "compat_props", "type_ancestors", "objects", "numa",
                              "peer_argv"):
                    continue
                raise SnapshotFormatError(f"snapshot: missing field {f.name!r}")
            value = data[f.name]
            expected = _FIELD_TYPES.get(f.name)
            if expected is not None and not isinstance(value, expected):
                raise SnapshotFormatError(f"snapshot: field {f.name!r} has the wrong type")
            if f.name == "peripherals":
                value = [_peripheral(p) for p in value]
            elif f.name == "dtb":
                value = None if value is None else _decode_blob(value)
            kwargs[f.name] = value
        return cls(**kwargs)

    def to_json(self) -> str:
        """``to_dict`` as indented JSON text (one key per line: saved snapshots diff well)."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Snapshot:
        """Inverse of ``to_json``."""
        try:
            data = json.loads(text)
        except ValueError as err:
            raise SnapshotFormatError(f"snapshot: not JSON: {err}") from None
        return cls.from_dict(data)


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "arch": str, "machine_type": str, "machine_props": dict, "machine_prop_defaults": dict, "qtree": str,
    "type_props": dict, "peripherals": list, "cpus": list, "cpu_types": dict, "hotpluggable_cpus": list,
    "memory": dict, "memdevs": list, "block": list, "block_nodes": list, "chardevs": list, "network": str,
    "dtb": (dict, type(None)), "argv": (list, type(None)), "binary": (str, type(None)), "version": dict, "compat_props": list,
    "type_ancestors": dict, "objects": dict, "numa": str, "peer_argv": (list, type(None)),
}


def version_of(snapshot: Snapshot) -> tuple[int, int, int]:
    """The QEMU version that answered (query-version), (0, 0, 0) when the snapshot has none."""
    qemu = snapshot.version.get("qemu") if isinstance(snapshot.version, dict) else None
    if not isinstance(qemu, dict):
        return (0, 0, 0)
    try:
        return (int(qemu.get("major", 0)), int(qemu.get("minor", 0)), int(qemu.get("micro", 0)))
    except (TypeError, ValueError):
        return (0, 0, 0)


def _encode_blob(blob: bytes) -> dict[str, Any]:
    data = blob.rstrip(b"\0")
    return {"size": len(blob), "base64": base64.b64encode(data).decode("ascii")}


def _decode_blob(value: dict[str, Any]) -> bytes:
    try:
        size = value["size"]
        data = base64.b64decode(value["base64"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise SnapshotFormatError("snapshot: dtb must be {size, base64}") from None
    if not isinstance(size, int) or size < len(data):
        raise SnapshotFormatError("snapshot: dtb size is smaller than its data")
    return data + bytes(size - len(data))


def _peripheral(value: Any) -> Peripheral:
    if not isinstance(value, dict):
        raise SnapshotFormatError("snapshot: a peripheral must be a JSON object")
    try:
        return Peripheral(**value)
    except TypeError:
        raise SnapshotFormatError(f"snapshot: peripheral {value.get('qom_path')!r} has unknown or missing keys") from None
