"""QEMU versions: which ones dtvm knows, and what each reports differently about the same hardware.

A user upgrades QEMU under a running VM: the description made on the old version must read the
same on the new one when the machine type is the same versioned type, or migration is a gamble.
QEMU keeps a versioned type's guest-visible behaviour through compat properties, which the reading
side applies (``config``); what is left is QEMU reporting the same hardware in other words: new
properties that are state or copies of machine options, defaults that ``instance_init`` changes,
machine options a newer version added at the value older ones always behaved as.  Those are data
(``data/versions.json``), each entry with its reason, read here.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import re
from dataclasses import dataclass
from typing import Any

from dtvm.errors import DtvmError
from dtvm.fileio import package_text

__all__ = [
    "Versions",
    "VersionsError",
    "catalog_version",
    "known_versions",
    "migration_blocker",
    "other_hardware",
    "parse_version",
    "version_text",
    "versions",
]


#: the QEMU version the description format is read against: the offline models, the machine
#: schemas directly in dtvm/qemu/machines and the first qdev catalog are its
REFERENCE = "7.2"


class VersionsError(DtvmError):
    """``data/versions.json`` is malformed (a packaging error, not the user's)."""

    exit_code = 2


def parse_version(text: str) -> tuple[int, int, int]:
    """``"10.0.2"`` or ``"7.2"`` -> (10, 0, 2) / (7, 2, 0); VersionsError otherwise."""
    m = re.fullmatch(r"(\d{1,3})\.(\d{1,3})(?:\.(\d{1,3}))?", text.strip())
    if not m:
        raise VersionsError(f"not a QEMU version: {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def version_text(version: tuple[int, int, int]) -> str:
    return f"{version[0]}.{version[1]}.{version[2]}"


@dataclass(frozen=True)
class Versions:
    """The rules of ``data/versions.json``, indexed for the questions ``config`` asks."""

    known: dict[str, dict[str, Any]]
    derived: frozenset[tuple[str, str]]          # (driver or "*", prop)
    instance_defaults: dict[tuple[str, str], str]
    machine_derived: frozenset[str]
    machine_neutral: dict[str, str]
    no_migration: tuple[dict[str, Any], ...] = ()
    machine_moot: tuple[tuple[str, str, str], ...] = ()  # (prop, other prop, its value)
    device_neutral: dict[tuple[str, str], frozenset[str]] = dataclasses.field(default_factory=dict)
    other_hardware: tuple[dict[str, Any], ...] = ()
    child_props: tuple[dict[str, Any], ...] = ()

    def passed_to_child(self, driver: str, child: str, version: tuple[int, int, int] | None) -> dict[str, str | None]:
        """The properties ``driver`` hands to the ``child`` it makes on a QEMU of ``version``:
        property -> None where that QEMU passes it on, else the value the child has there anyway
        (``before``).  Unknown version: taken as the reference (7.2)."""
        out: dict[str, str | None] = {}
        have = version[:2] if version and version != (0, 0, 0) else parse_version(REFERENCE)[:2]
        for rule in self.child_props:
            if rule["driver"] == driver and rule["child"] == child:
                passes = have >= parse_version(rule["since"])[:2]
                for prop in rule["props"]:
                    out[prop] = None if passes else rule["before"]
        return out

    def is_neutral(self, driver: str, prop: str, value: str) -> bool:
        """A device property value every version's guest sees as the default (reported differently)."""
        return value in self.device_neutral.get((driver, prop), ())

    def is_derived(self, driver: str, prop: str) -> bool:
        """A property that is state or a copy of a machine option: never part of a description."""
        return (driver, prop) in self.derived or ("*", prop) in self.derived

    def instance_default(self, driver: str, prop: str) -> str | None:
        return self.instance_defaults.get((driver, prop))

    def machine_moot_props(self, props: dict[str, str]) -> set[str]:
        """The options that make no difference given the machine's other options (``props``:
        option -> text, defaults included), on every version."""
        return {prop for prop, other, value in self.machine_moot if props.get(other) == value}

    def machine_ignored(self, prop: str, value: str) -> bool:
        """A machine property that is derived, or a newer option at the value older QEMUs behaved as."""
        return prop in self.machine_derived or self.machine_neutral.get(prop) == value


def _entries(data: dict[str, Any], key: str, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    items = data.get(key) or []
    if not isinstance(items, list):
        raise VersionsError(f"dtvm/qemu/data/versions.json: {key}: expected a list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not all(isinstance(item.get(f), str) for f in (*fields, "why")):
            raise VersionsError(f"dtvm/qemu/data/versions.json: {key}[{i}]: expected {', '.join(fields)} and why")
        out.append({str(k): v if isinstance(v, (list, dict)) else str(v) for k, v in item.items()})
    return out


@functools.lru_cache(maxsize=1)
def versions() -> Versions:
    """The rules, read once."""
    import json

    text = package_text("dtvm.qemu", "data/versions.json")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise VersionsError(f"dtvm/qemu/data/versions.json: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("versions"), dict):
        raise VersionsError("dtvm/qemu/data/versions.json: expected an object with versions")
    derived = frozenset((e.get("driver", "*"), e["prop"]) for e in _entries(data, "derived", ("prop",)))
    instance = {(e["driver"], e["prop"]): e["value"] for e in _entries(data, "instance-defaults", ("driver", "prop", "value"))}
    mderived = frozenset(e["prop"] for e in _entries(data, "machine-derived", ("prop",)))
    neutral = {e["prop"]: e["value"] for e in _entries(data, "machine-neutral", ("prop", "value"))}
    known = {str(k): dict(v or {}) for k, v in data["versions"].items()}
    blockers = tuple(_entries(data, "no-migration", ("qemu",)))
    moot = []
    for e in _entries(data, "machine-moot", ("prop", "when")):
        other, eq, value = e["when"].partition("=")
        if not eq:
            raise VersionsError(f"dtvm/qemu/data/versions.json: machine-moot: {e['prop']}: when is OPTION=VALUE")
        moot.append((e["prop"], other, value))
    dneutral = {(e["driver"], e["prop"]): frozenset(e["value"].split("|"))
                for e in _entries(data, "device-neutral", ("driver", "prop", "value"))}
    other = tuple(_entries(data, "other-hardware", ("node", "seen")))
    children = tuple(_entries(data, "child-props", ("driver", "child", "since", "before")))
    return Versions(known, derived, instance, mderived, neutral, blockers, tuple(moot), dneutral, other, children)


def known_versions() -> list[str]:
    """The QEMU versions (major.minor) dtvm has data for, oldest first."""
    return sorted(versions().known, key=parse_version)


def catalog_version(version: tuple[int, int, int] | None) -> str:
    """The qdev catalog to hold a description to for a QEMU of ``version``: the newest known
    version not newer than it (a device or property a later QEMU added is then refused, never
    assumed), the oldest for a QEMU older than any, the reference (7.2) when unknown."""
    known = known_versions()
    if version is None or version == (0, 0, 0):
        return "7.2" if "7.2" in known else known[0]
    fitting = [k for k in known if parse_version(k)[:2] <= version[:2]]
    return fitting[-1] if fitting else known[0]


def _holds(condition: str | None, version: tuple[int, int, int]) -> bool:
    """``">=10.0"`` / ``"<10.0"`` against a version's major.minor (no condition: always)."""
    if not condition:
        return True
    m = re.fullmatch(r"(>=|<=|<|>|==)?\s*(\S+)", condition)
    if not m:
        raise VersionsError(f"dtvm/qemu/data/versions.json: no-migration: bad version condition {condition!r}")
    op, ref = m.group(1) or "==", parse_version(m.group(2))[:2]
    have = version[:2]
    return {">=": have >= ref, "<=": have <= ref, "<": have < ref, ">": have > ref, "==": have == ref}[op]


def _excepted(rule: dict[str, Any], options: dict[str, str], cpu_type: str | None) -> bool:
    """Whether the description is one of the rule's ``unless`` cases: machine options at these
    values and (where named) a CPU model among these, all of one case holding."""
    for case in rule.get("unless") or ():
        if not isinstance(case, dict):
            raise VersionsError("dtvm/qemu/data/versions.json: no-migration: unless: expected objects")
        wanted = case.get("options") or {}
        cpus = case.get("cpu-types")
        if all(options.get(k) == v for k, v in wanted.items()) and (cpus is None or cpu_type in cpus):
            return True
    return False


def _applies(rule: dict[str, Any], arch: str, machine: str, options: dict[str, str], cpu_type: str | None,
             src: tuple[int, int, int], target: tuple[int, int, int]) -> bool:
    return (("arch" not in rule or rule["arch"] == arch)
            and ("machine" not in rule or fnmatch.fnmatchcase(machine, rule["machine"]))
            and _holds(rule.get("from"), src) and _holds(rule.get("to"), target)
            and not _excepted(rule, options, cpu_type))


def _across(source: str, target: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
    """The describing QEMU's version when it and ``target`` are both known and differ in
    major.minor (the only case the version rules speak of), else None."""
    if not source or target is None or target == (0, 0, 0):
        return None
    try:
        src = parse_version(source)
    except VersionsError:
        return None
    return None if src[:2] == target[:2] else src


def other_hardware(arch: str, machine: str, source: str, target: tuple[int, int, int] | None,
                   options: dict[str, str] | None = None, cpu_type: str | None = None) -> str | None:
    """Where the target version builds, for the same versioned machine type, hardware the guest
    sees as other than what QEMU ``source`` described (``other-hardware`` in versions.json): the
    node and what differs, or None.  QEMU may well migrate such a VM; the guest would meet another
    machine at its next boot, which is what a description is there to prevent."""
    src = _across(source, target)
    if src is None or target is None:
        return None
    for rule in versions().other_hardware:
        if _applies(rule, arch, machine, options or {}, cpu_type, src, target):
            return (f"{rule['node']}: QEMU {version_text(target)} builds {machine} other than QEMU "
                    f"{version_text(src)} did: {rule['seen']} ({rule['why']})")
    return None


def migration_blocker(arch: str, machine: str, user_netdevs: int, source: str,
                      target: tuple[int, int, int] | None, options: dict[str, str] | None = None,
                      cpu_type: str | None = None, drivers: frozenset[str] = frozenset()) -> str | None:
    """Why QEMU itself cannot migrate a VM described on QEMU ``source`` into one of version
    ``target`` (in QEMU's words), or None.  Only across versions (major.minor), and only when both
    are known: a description without the describing QEMU's version is taken as it is.  Rules can
    hold only for some machine options and CPU models (``unless``: pseries moves 7.2 -> 10.0 with
    XIVE and a CPU model both versions have) or only when a device is there (``drivers``)."""
    src = _across(source, target)
    if src is None or target is None:
        return None
    for rule in versions().no_migration:
        if "user-netdevs" in rule and user_netdevs < int(rule["user-netdevs"]):
            continue
        if "drivers" in rule and not drivers & set(rule["drivers"]):
            continue
        if not _applies(rule, arch, machine, options or {}, cpu_type, src, target):
            continue
        return (f"QEMU cannot migrate this VM from {version_text(src)} to {version_text(target)}: {rule['why']} "
                f"(the receiving QEMU says: {rule['qemu']})")
    return None
