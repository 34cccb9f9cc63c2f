"""What differs between two machine types: what a user reads before upgrading QEMU.

Two versions of a type on one QEMU (``pc-q35-7.2`` vs ``pc-q35-10.0``), or one type on two QEMUs
(``pc-q35-7.2`` on 7.2 vs on 10.0).  Each side is a :class:`~dtvm.qemu.machine.MachineReport`
(the checked-in schema of that QEMU version, else QEMU asked online), compared on the devices the
type makes (positions, drivers, origins, non-default properties), its defaults (CPU, memory,
firmware, machine options) and its compat properties: the device defaults a versioned type
changes, which is where two versions of one type really differ for the guest.  QEMU reports
those only from 9.1 on; a side from an older QEMU says so instead of pretending it has none.
"""

from __future__ import annotations

from typing import Any

from dtvm.qemu.machine import MachineReport

__all__ = ["COMPAT_SINCE", "diff_reports", "effective_compat", "render_diff"]

#: the first QEMU whose query-machines reports compat-props
COMPAT_SINCE = (9, 1)


def _version(report: MachineReport) -> tuple[int, int]:
    head = report.qemu_version.split(" ", 1)[0].split(".")
    try:
        return int(head[0]), int(head[1])
    except (IndexError, ValueError):
        return (0, 0)


def effective_compat(compat: list[dict[str, str]]) -> dict[tuple[str, str], str]:
    """(QOM type, property) -> value as the machine applies them: in order, a later one wins."""
    out: dict[tuple[str, str], str] = {}
    for c in compat:
        out[(c["qom-type"], c["property"])] = c["value"]
    return out


def _side(report: MachineReport, binary: str) -> dict[str, Any]:
    return {"type": report.machine.type, "arch": report.machine.arch, "binary": binary, "qemu": report.qemu_version,
            "compat-props-reported": _version(report) >= COMPAT_SINCE}


def _flat_defaults(report: MachineReport) -> dict[str, str]:
    d = report.defaults
    out = {k: str(d[k]) for k in ("cpu-type", "cpus", "max-cpus", "memory") if d.get(k) is not None}
    for key, value in sorted((d.get("inputs") or {}).items()):
        out[f"input {key}"] = str(value)
    for key, value in sorted((d.get("options") or {}).items()):
        out[f"option {key}"] = str(value)
    return out


def diff_reports(a: MachineReport, b: MachineReport, binary_a: str, binary_b: str) -> dict[str, Any]:
    """The differences as plain data (``--format json``)."""
    da = {d.key: d for d in a.devices}
    db = {d.key: d for d in b.devices}
    added = [{"key": k, "driver": db[k].driver, "origin": db[k].origin} for k in db if k not in da]
    removed = [{"key": k, "driver": da[k].driver, "origin": da[k].origin} for k in da if k not in db]
    changed = []

    def removers(report: MachineReport, which: list[str]) -> list[str]:
        # "-M pc-q35-7.2,pit=off" and "-M pc-q35-10.0,pit=off" are the same option
        return sorted(r.replace(f"-M {report.machine.type},", "-M TYPE,") for r in which)

    for key in [k for k in da if k in db]:
        x, y = da[key], db[key]
        props = {p: [x.props.get(p), y.props.get(p)] for p in sorted(set(x.props) | set(y.props))
                 if x.props.get(p) != y.props.get(p)}
        rx, ry = removers(a, x.removed_by), removers(b, y.removed_by)
        if x.driver != y.driver or x.origin != y.origin or props or rx != ry:
            changed.append({"key": key, "driver": [x.driver, y.driver], "origin": [x.origin, y.origin],
                            "removed-by": [rx, ry], "props": props})
    fa, fb = _flat_defaults(a), _flat_defaults(b)
    defaults = {k: [fa.get(k), fb.get(k)] for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}
    adds = {k: [a.adds.get(k), b.adds.get(k)] for k in sorted(set(a.adds) | set(b.adds)) if a.adds.get(k) != b.adds.get(k)}
    side_a, side_b = _side(a, binary_a), _side(b, binary_b)
    known = side_a["compat-props-reported"] and side_b["compat-props-reported"]
    ca, cb = effective_compat(a.compat), effective_compat(b.compat)
    # a QEMU that does not report compat properties has unknown ones, not none: nothing to compare
    compat = [{"qom-type": t, "property": p, "a": ca.get((t, p)), "b": cb.get((t, p))}
              for t, p in sorted(set(ca) | set(cb)) if ca.get((t, p)) != cb.get((t, p))] if known else []
    return {
        "a": side_a, "b": side_b,
        "same": not (added or removed or changed or defaults or adds or compat),
        "complete": known,
        "devices": {"added": added, "removed": removed, "changed": changed},
        "defaults": defaults,
        "options-add": adds,
        "compat-props": compat,
    }


def _show(value: Any) -> str:
    return "(none)" if value is None else str(value)


def render_diff(diff: dict[str, Any]) -> str:
    """The differences as text for a terminal."""
    a, b = diff["a"], diff["b"]
    lines = [f"A: {a['type']} ({a['arch']}) on QEMU {a['qemu'] or '?'} ({a['binary']})",
             f"B: {b['type']} ({b['arch']}) on QEMU {b['qemu'] or '?'} ({b['binary']})"]
    devices = diff["devices"]
    if devices["added"] or devices["removed"] or devices["changed"]:
        lines += ["", "devices the machine makes:"]
        for d in devices["removed"]:
            lines.append(f"  only in A: {d['key']} {d['driver']} ({d['origin']})")
        for d in devices["added"]:
            lines.append(f"  only in B: {d['key']} {d['driver']} ({d['origin']})")
        for d in devices["changed"]:
            what = []
            if d["driver"][0] != d["driver"][1]:
                what.append(f"driver {d['driver'][0]} -> {d['driver'][1]}")
            if d["origin"][0] != d["origin"][1]:
                what.append(f"origin {d['origin'][0]} -> {d['origin'][1]}")
            if d["removed-by"][0] != d["removed-by"][1]:
                what.append(f"removed by {', '.join(d['removed-by'][0]) or '-'} -> {', '.join(d['removed-by'][1]) or '-'}")
            what += [f"{p} {_show(v[0])} -> {_show(v[1])}" for p, v in d["props"].items()]
            lines.append(f"  {d['key']} ({d['driver'][1]}): {'; '.join(what)}")
    else:
        lines += ["", "devices the machine makes: the same (positions, drivers, properties)"]
    if diff["defaults"]:
        lines += ["", "defaults:"]
        lines += [f"  {k}: {_show(v[0])} -> {_show(v[1])}" for k, v in diff["defaults"].items()]
    if diff["options-add"]:
        lines += ["", "machine options that add devices:"]
        lines += [f"  {k}: {_show(v[0])} -> {_show(v[1])}" for k, v in diff["options-add"].items()]
    lines += [""]
    unknown = [s for s in (a, b) if not s["compat-props-reported"]]
    if unknown:
        for s in unknown:
            lines.append(f"compat properties: QEMU {s['qemu'] or '?'} does not report them (query-machines "
                         f"compat-props needs QEMU {COMPAT_SINCE[0]}.{COMPAT_SINCE[1]}): {s['type']}'s are unknown here")
    if diff["compat-props"]:
        lines.append(f"compat properties (device defaults the type changes; (none): the property's own default): "
                     f"{len(diff['compat-props'])}")
        lines += [f"  {c['qom-type']}.{c['property']}: {_show(c['a'])} -> {_show(c['b'])}" for c in diff["compat-props"]]
    elif not unknown:
        lines.append("compat properties: the same")
    if not diff["same"]:
        lines += ["", "different machines for the guest"]
    elif diff["complete"]:
        lines += ["", "the same machine for the guest"]
    else:
        lines += ["", "the same machine for the guest as far as both QEMUs report (compat properties unknown on one)"]
    return "\n".join(lines) + "\n"
