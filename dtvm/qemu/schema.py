"""Machine schemas: what a versioned machine type builds by itself, as reviewed data.

``dtvm machine show`` asks QEMU (``machine.explain``); a schema is that answer written down by
``scripts/gen_machine_schemas.py`` into ``dtvm/qemu/machines/ARCH-TYPE.yaml`` and checked in, so
a host without the target's QEMU can still see what a machine type makes, and so changes in a
QEMU update show up as a diff in review.
"""

from __future__ import annotations

from typing import Any

from dtvm.errors import DtvmError
from dtvm.fileio import load_yaml
from dtvm.qemu.machine import DeviceOrigin, MachineInfo, MachineReport
from dtvm.qemu.schemafiles import machine_file, schema_text

__all__ = ["SchemaError", "from_schema", "load_schema", "schema_name", "schema_text", "to_schema"]

FORMAT = 1


class SchemaError(DtvmError):
    """A machine schema that is missing or malformed."""

    exit_code = 2


#: the QEMU version whose schemas sit directly in dtvm/qemu/machines (others: machines/VERSION/)
REFERENCE = "7.2"


def schema_name(machine: MachineInfo, qemu: str | None = None) -> str:
    """``ARCH-TYPE.yaml`` (QEMU 7.2's), ``VERSION/ARCH-TYPE.yaml`` for another QEMU version."""
    name = f"{machine.arch}-{machine.type}.yaml"
    return name if qemu in (None, REFERENCE) else f"{qemu}/{name}"


def to_schema(report: MachineReport) -> dict[str, Any]:
    """The report as plain data (YAML-ready, deterministic order)."""
    return {
        "format": FORMAT,
        "type": report.machine.type,
        "arch": report.machine.arch,
        "binary": report.machine.binary,
        "generated-from": {"qemu": report.qemu_version, "argv": report.argv},
        "defaults": report.defaults,
        "devices": [
            {"key": d.key, "driver": d.driver, "origin": d.origin, "removed-by": list(d.removed_by),
             "props": dict(sorted(d.props.items()))}
            for d in report.devices
        ],
        "options-add": {k: list(v) for k, v in sorted(report.adds.items())},
        **({"compat-props": [dict(c) for c in report.compat]} if report.compat else {}),
    }


def from_schema(machine: MachineInfo, data: Any, name: str) -> MachineReport:
    """A schema back to a report; SchemaError naming the file on any shape it does not expect."""
    try:
        if data.get("format") != FORMAT or data["type"] != machine.type or data["arch"] != machine.arch:
            raise SchemaError(f"{name}: not a format-{FORMAT} schema of {machine.arch} {machine.type}")
        devices = [DeviceOrigin(str(d["key"]), str(d["driver"]), str(d["origin"]),
                                [str(r) for r in d.get("removed-by", [])],
                                {str(k): str(v) for k, v in (d.get("props") or {}).items()})
                   for d in data["devices"]]
        adds = {str(k): [str(x) for x in v] for k, v in (data.get("options-add") or {}).items()}
        gen = data.get("generated-from") or {}
        compat = [{"qom-type": str(c["qom-type"]), "property": str(c["property"]), "value": str(c["value"])}
                  for c in data.get("compat-props") or []]
        return MachineReport(machine, [str(a) for a in gen.get("argv", [])], devices, adds,
                             dict(data.get("defaults") or {}), str(gen.get("qemu", "")), compat)
    except (KeyError, TypeError, AttributeError) as exc:
        raise SchemaError(f"{name}: malformed machine schema ({exc})") from None


def load_schema(machine: MachineInfo, qemu: str | None = None) -> MachineReport:
    """The checked-in schema of ``machine`` as QEMU ``qemu`` (major.minor; default 7.2) builds it."""

    name = schema_name(machine, qemu)
    try:
        text = machine_file(name)
    except OSError:
        raise SchemaError(f"dtvm/qemu/machines/{name}: no schema for {machine.arch} {machine.type}"
                          + (f" on QEMU {qemu}" if qemu else "")) from None
    return from_schema(machine, load_yaml(text), f"dtvm/qemu/machines/{name}")
