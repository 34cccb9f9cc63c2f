"""Parse HMP ``info qtree``: QEMU's whole qdev tree, with every property, in one 3 ms answer.

``info qtree`` is text meant for people, so this parser is strict about the shapes it knows and
tolerant of the rest: a line it cannot place is kept as an "info" line of the device above it, and
a string value broken across lines by an embedded newline is joined back.  Bus children are listed
newest first; the parser restores creation order, which is what address assignment follows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dtvm.errors import DtvmError

__all__ = ["QBus", "QDev", "QtreeError", "parse_qtree"]

#: Bounds for untrusted text: no VM has anything near these.
MAX_LINES = 200_000
MAX_DEPTH = 64

_BUS = re.compile(r"bus: (\S+)$")
_BUS_TYPE = re.compile(r"type (\S+)$")
_DEV = re.compile(r'dev: ([^,]+), id "(.*)"$')
_PROP = re.compile(r"([A-Za-z0-9_.+-]+) = (.*)$")
_MMIO = re.compile(r"mmio ([0-9a-f]{16})/([0-9a-f]{16})$")
_PCI = re.compile(r"class (.*), addr ([0-9a-f]{2}):([0-9a-f]{2})\.([0-7]), pci id ([0-9a-f]{4}):([0-9a-f]{4}) \(sub ([0-9a-f]{4}):([0-9a-f]{4})\)$")
# QEMU 7.2 adds ", attached" only to an attached device (a usb-serial waits for its chardev)
_USB = re.compile(r"addr \d+\.\d+, port ([0-9.]+), speed (\d+), name (.*?)(?:, (attached|detached))?$")

UNMAPPED = 0xFFFFFFFFFFFFFFFF


class QtreeError(DtvmError):
    """``info qtree`` text that this parser cannot read (not QEMU's, or a layout it has never seen)."""


@dataclass
class QDev:
    """One qdev device as ``info qtree`` shows it; ``props`` are the raw texts after ``=``."""

    type: str
    id: str
    props: dict[str, str] = field(default_factory=dict)
    info: list[str] = field(default_factory=list)
    buses: list[QBus] = field(default_factory=list)
    mmio: list[tuple[int, int]] = field(default_factory=list)
    #: (class name, bus, slot, function, vendor, device, subsystem vendor, subsystem)
    pci: tuple[str, int, int, int, int, int, int, int] | None = None
    #: (port path, speed, product name) of a USB device
    usb: tuple[str, int, str] | None = None


@dataclass
class QBus:
    """One qdev bus; ``devices`` are in creation order (oldest first)."""

    name: str
    type: str = ""
    devices: list[QDev] = field(default_factory=list)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def parse_qtree(text: str) -> QBus:
    """The root bus (``main-system-bus``) of an ``info qtree`` answer."""
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise QtreeError(f"info qtree: {len(lines)} lines, more than the {MAX_LINES} dtvm reads")
    if not lines or not lines[0].startswith("bus: "):
        raise QtreeError("info qtree: the answer does not start with a bus (is this QEMU?)")
    root: QBus | None = None
    # stack of (indent, object) where object is QBus or QDev
    stack: list[tuple[int, QBus | QDev]] = []
    last_prop: tuple[QDev, str] | None = None
    for number, line in enumerate(lines, 1):
        if last_prop is not None:
            # a string value with an embedded newline continues here, whatever its indentation
            dev, key = last_prop
            dev.props[key] += "\n" + line
            if _closed(dev.props[key]):
                last_prop = None
            continue
        if not line.strip():
            continue
        ind = _indent(line)
        body = line[ind:]
        while stack and stack[-1][0] >= ind:
            stack.pop()
        m = _BUS.match(body)
        if m and (not stack or isinstance(stack[-1][1], QDev)):
            bus = QBus(m.group(1))
            if not stack:
                if root is not None:
                    raise QtreeError(f"info qtree line {number}: a second root bus")
                root = bus
            else:
                parent = stack[-1][1]
                assert isinstance(parent, QDev)
                parent.buses.append(bus)
            stack.append((ind, bus))
            last_prop = None
            continue
        if len(stack) > MAX_DEPTH:
            raise QtreeError(f"info qtree line {number}: nested deeper than {MAX_DEPTH}")
        top = stack[-1][1] if stack else None
        if isinstance(top, QBus):
            m = _BUS_TYPE.match(body)
            if m and not top.type and not top.devices:
                top.type = m.group(1)
                continue
            m = _DEV.match(body)
            if m:
                dev = QDev(m.group(1), m.group(2))
                top.devices.append(dev)
                stack.append((ind, dev))
                last_prop = None
                continue
            raise QtreeError(f"info qtree line {number}: expected a device of bus {top.name}: {body[:80]!r}")
        if isinstance(top, QDev):
            m = _PROP.match(body)
            if m:
                top.props[m.group(1)] = m.group(2)
                last_prop = (top, m.group(1)) if m.group(2).startswith('"') and not _closed(m.group(2)) else None
                continue
            _info(top, body)
            continue
        raise QtreeError(f"info qtree line {number}: cannot place {body[:80]!r}")
    assert root is not None
    _to_creation_order(root, 0)
    return root


def _closed(value: str) -> bool:
    return len(value) >= 2 and value.endswith('"')


def _info(dev: QDev, body: str) -> None:
    m = _MMIO.match(body)
    if m:
        dev.mmio.append((int(m.group(1), 16), int(m.group(2), 16)))
        return
    m = _PCI.match(body)
    if m:
        g = m.groups()
        dev.pci = (g[0], int(g[1], 16), int(g[2], 16), int(g[3]), int(g[4], 16), int(g[5], 16), int(g[6], 16), int(g[7], 16))
        return
    m = _USB.match(body)
    if m:
        dev.usb = (m.group(1), int(m.group(2)), m.group(3))
        return
    dev.info.append(body)


def _to_creation_order(bus: QBus, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise QtreeError("info qtree: buses nested too deep")
    bus.devices.reverse()
    for dev in bus.devices:
        dev.buses.sort(key=_bus_order)
        for child in dev.buses:
            _to_creation_order(child, depth + 1)


def _bus_order(bus: QBus) -> tuple[int, str]:
    """Child buses by their index suffix (``ide.0`` before ``ide.5``); QEMU lists them newest first."""
    head, _, tail = bus.name.rpartition(".")
    return (int(tail), head) if head and tail.isdigit() else (-1, bus.name)


def prop_text(value: str) -> str:
    """The value of a property as QEMU's option syntax spells it (``-device ...,KEY=VALUE``).

    ``info qtree`` prints strings quoted, numbers as ``N (0xN)`` or ``N (N unit)``, and PCI
    addresses as ``SS.F``; the option syntax wants the bare string, the decimal number, the
    address as printed, and on/off for booleans.
    """
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value[1:-1]
    if value == "true":
        return "on"
    if value == "false":
        return "off"
    m = re.match(r"(-?\d+) \(", value)
    if m:
        return m.group(1)
    return value


def bus_index(bus: QBus) -> int:
    """The index of a child bus within its device (``ide.2`` -> 2; a bridge's one bus -> 0)."""
    head, _, tail = bus.name.rpartition(".")
    return int(tail) if head and tail.isdigit() else 0
