"""Hot-plug on a running VM, tracked once: ``dtvm hotplug add | del | watch``.

QEMU and libvirt each choose addresses and each keep their own idea of what was plugged in; dtvm
wants one place for both.  So ``add`` chooses the address itself with QEMU's own rules
(``dtvm.qemu.assign``, shared with the offline model), states it explicitly in ``device_add`` (QEMU
then makes no choice of its own), reads the VM back and rewrites the description; ``del`` issues
``device_del``, follows ``DEVICE_DELETED`` and rewrites the description; ``watch`` keeps the
description current while others change the VM.

Design points:

- **One connection.**  QEMU serves one QMP client per socket at a time, so each command opens one
  session (:class:`HotplugSession`, a ``dtvm.qemu.qmp.QmpSession`` that also receives events) and
  does everything on it: the reads (``qmp.read_snapshot`` over the open session), the commands,
  and the events.  Nothing here calls ``live.read_socket``, which would wait for our own session.
- **Device kinds from QEMU itself.**  Which bus a driver needs (PCI, USB, SCSI, virtio-serial) is
  read from QEMU's type hierarchy (``qom-list-types``), not from a table that could disagree with
  the binary; an unknown type is an error before anything is sent.
- **Pending unplugs are recorded by dtvm.**  ``device_del`` stays pending without a guest for ACPI
  PCI hot-plug (q35, pc) and pseries PCI, and QMP shows that state nowhere (NOTES "Hot-plug").
  The device stays in the description with ``qemu,unplug-pending`` in its back-end fragment, and
  each rewrite carries that mark over from the overlay file it replaces, as long as a device with
  the same id is still at the same node.  ``DEVICE_UNPLUG_GUEST_ERROR`` (the guest refused) or the
  device going away removes it.
- **Bounded.**  Every QMP step has a timeout; events go to a bounded queue, never to the library's
  unbounded default listener; ``watch`` stops cleanly on Ctrl-C or when QEMU goes away.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qemu.qmp import Runstate
from qemu.qmp.message import Message

from dtvm.dt.tree import DeviceTree
from dtvm.qemu import qmp
from dtvm.qemu.assign import (
    KIND_BUS_TYPE,
    PCI,
    SCSI,
    USB,
    VSERIAL,
    AssignError,
    Placement,
    address_keys,
    assign,
)
from dtvm.qemu.config import from_snapshot
from dtvm.qemu.errors import QemuError, QemuTimeoutError, QmpCommandError, QmpProtocolError
from dtvm.qemu.live import _unix_path
from dtvm.qemu.opts import parse as parse_options
from dtvm.qemu.snapshot import Snapshot
from dtvm.vm import codec
from dtvm.vm.model import Config, Device, address_text

__all__ = [
    "PENDING_PROP",
    "AddResult",
    "DelResult",
    "DeviceTypes",
    "HotplugError",
    "HotplugSession",
    "Outputs",
    "WatchReport",
    "add_device",
    "delete_device",
    "mark_pending",
    "parse_device",
    "watch",
]

#: The back-end overlay property that marks a device whose unplug QEMU is still waiting for.
PENDING_PROP = "qemu,unplug-pending"

#: QEMU's words for a second device_del of a device already waiting for the guest.
_ALREADY_PENDING = "already in the process of unplug"

#: Events this module follows; everything else QEMU sends is dropped on arrival.
_EVENTS = frozenset({"DEVICE_DELETED", "DEVICE_UNPLUG_GUEST_ERROR"})
_MAX_QUEUED_EVENTS = 1024

#: Abstract QOM types a device kind descends from, and names for the kinds dtvm does not place.
_KIND_ROOTS = {"pci-device": PCI, "usb-device": USB, "scsi-device": SCSI, "virtio-serial-port": VSERIAL}
_OTHER_FAMILIES = {"isa-device": "an ISA", "ide-device": "an IDE", "sys-bus-device": "a system-bus",
                   "virtio-device": "a virtio-transport", "cpu": "a CPU", "pc-dimm": "a memory",
                   "i2c-slave": "an I2C", "spapr-vio-device": "a VIO", "hda-codec": "an HDA"}

#: QEMU 7.2's -device aliases on the machines dtvm supports (all use virtio over PCI): QEMU takes a
#: real type name first, an alias only when no type has that name (``qdev_get_device_class``).
_ALIASES = {"ac97": "AC97", "e1000-82540em": "e1000", "ahci": "ich9-ahci", "lsi": "lsi53c895a",
            "es1370": "ES1370",
            **{f"virtio-{n}": f"virtio-{n}-pci" for n in (
                "9p", "balloon", "blk", "gpu", "input-host", "iommu", "keyboard", "mouse", "net", "rng",
                "scsi", "serial", "tablet")}}

_PERIPHERAL = "/machine/peripheral/"

Describe = Callable[[Snapshot], Any]
"""Snapshot -> Description (``.guest``, ``.backend`` DeviceTrees, ``.nodes`` key -> node path)."""


class HotplugError(QemuError):
    """A hot-plug request that cannot be done (one line: what, where, and QEMU's words if it refused)."""


# --------------------------------------------------------------------------------------- the session


class HotplugSession(qmp.QmpSession):
    """A QMP session that also hands over the events hot-plug follows.

    ``qemu.qmp``'s default listener keeps every event in a queue and a history that nobody reads
    and that grow for as long as the connection lives (``watch`` may live for weeks).  Its filter is
    the library's public hook: here it copies the events of :data:`_EVENTS` to a bounded buffer and
    keeps none.  When the buffer overflows, the oldest events are dropped and ``overflowed`` is set
    (the caller re-reads the VM anyway: the events only say *when*).
    """

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self._events: deque[dict[str, Any]] = deque(maxlen=_MAX_QUEUED_EVENTS)
        self._arrived = asyncio.Event()
        self.overflowed = False
        self._client.events.event_filter = self._take

    def _take(self, msg: Message) -> bool:
        name = msg.get("event")
        if name in _EVENTS:
            data = msg.get("data")
            if len(self._events) == self._events.maxlen:
                self.overflowed = True
            self._events.append({"event": name, "data": dict(data) if isinstance(data, Mapping) else {}})
            self._arrived.set()
        return False

    def drain(self) -> list[dict[str, Any]]:
        """The events received so far, oldest first (and forget them)."""
        out = list(self._events)
        self._events.clear()
        self._arrived.clear()
        self.overflowed = False
        return out

    @property
    def has_events(self) -> bool:
        return bool(self._events)

    async def wait_events(self, timeout: float) -> None:
        """Return when an event is there, or after ``timeout`` s."""
        if not self._events and timeout > 0:
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                pass

    async def next_events(self, timeout: float) -> list[dict[str, Any]]:
        """The events received so far, waiting up to ``timeout`` s for one if there are none."""
        await self.wait_events(timeout)
        return self.drain()

    @property
    def alive(self) -> bool:
        return self._client.runstate == Runstate.RUNNING

    async def gone(self) -> None:
        """Return when the connection is no longer up (QEMU quit, crashed or hung up)."""
        while self._client.runstate == Runstate.RUNNING:
            await self._client.runstate_changed()

    async def command(self, name: str, arguments: Mapping[str, object] | None, timeout: float) -> Any:
        try:
            async with asyncio.timeout(timeout):
                return await self.execute(name, arguments)
        except TimeoutError:
            raise QemuTimeoutError(f"{self.where}: no answer to {name} within {timeout:g} s") from None

    async def read(self, tmp: str, timeout: float) -> Snapshot:
        """Everything ``qemu2dtb --qmp`` reads, over this session (the same plan of commands)."""
        try:
            async with asyncio.timeout(timeout):
                return await qmp.read_snapshot(self, tmp, {})
        except TimeoutError:
            raise QemuTimeoutError(f"{self.where}: stopped answering QMP commands (timeout: {timeout:g} s)") from None


async def _open(address: str, timeout: float) -> HotplugSession:
    path = _unix_path(address)
    session = HotplugSession(address)
    try:
        async with asyncio.timeout(timeout):
            await session.connect(path)
    except TimeoutError:
        await session.close()
        raise QemuTimeoutError(
            f"{address}: no QMP greeting within {timeout:g} s (not QEMU, or QEMU is busy with another QMP "
            "client: it serves one per socket at a time)") from None
    except ConnectionRefusedError:
        await session.close()
        raise QemuError(f"{address}: connection refused (no QEMU is listening on it)") from None
    except OSError as err:
        await session.close()
        raise QemuError(f"{address}: cannot connect: {err.strerror or err}") from None
    except BaseException:
        await session.close()
        raise
    return session


def _default_describe() -> Describe:
    """``qemu2dtb``'s own Snapshot -> Description, with the bindings loaded once."""
    from dtvm.qemu.describe import describe_snapshot
    from dtvm.vm.translate import driver_compat

    compat = driver_compat()
    return lambda snapshot: describe_snapshot(snapshot, compat)


# ------------------------------------------------------------------------------------- device types


@dataclass
class DeviceTypes:
    """QEMU's device and bus type hierarchy (``qom-list-types``): type -> parent type."""

    parents: dict[str, str]
    bus_parents: dict[str, str]

    @classmethod
    async def read(cls, session: HotplugSession, timeout: float) -> DeviceTypes:
        devices = await session.command("qom-list-types", {"implements": "device", "abstract": True}, timeout)
        buses = await session.command("qom-list-types", {"implements": "bus", "abstract": True}, timeout)
        return cls(_parent_map(devices), _parent_map(buses))

    def resolve(self, driver: str) -> str:
        """The type name QEMU would create for ``driver`` (a type, or one of its aliases)."""
        if driver in self.parents:
            return driver
        alias = _ALIASES.get(driver)
        if alias is not None and alias in self.parents:
            return alias
        raise HotplugError(f"unknown device type {driver!r}: this QEMU has no such device")

    def ancestors(self, name: str) -> list[str]:
        chain: list[str] = []
        current: str | None = name
        while current is not None and current not in chain and len(chain) < 64:
            chain.append(current)
            current = self.parents.get(current)
        return chain

    def kind(self, driver: str) -> tuple[str, bool]:
        """(kind, is a virtconsole) of a device type; HotplugError for kinds dtvm does not place."""
        chain = self.ancestors(driver)
        for name in chain:
            if name in _KIND_ROOTS:
                return _KIND_ROOTS[name], "virtconsole" in chain
        family = next((_OTHER_FAMILIES[n] for n in chain if n in _OTHER_FAMILIES), None)
        what = f"{family} device" if family else "a device dtvm cannot place"
        raise HotplugError(f"{driver} is {what}: dtvm hotplug assigns addresses on PCI, USB, SCSI and "
                           "virtio-serial buses only")


def _parent_map(listed: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(listed, list):
        for entry in listed:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                out[entry["name"]] = str(entry.get("parent") or "")
    return out


# ------------------------------------------------------------------------------------------ options


@dataclass
class DeviceRequest:
    """One DEVICE-OPTS text as QEMU reads it: driver, id, and the other options (last one wins)."""

    driver: str
    id: str | None
    options: dict[str, str] = field(default_factory=dict)


def parse_device(text: str) -> DeviceRequest:
    """``virtio-net-pci,bus=rp1,id=n1,mac=...`` as ``-device`` reads it (QemuOpts: the first
    ``id=`` counts, later repeats of other keys replace earlier ones, ``driver=`` replaces the
    implied first word)."""
    head, pairs = parse_options(text, implied="driver", where="device options")
    driver = head
    ident: str | None = None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key == "driver":
            driver = value
        elif key == "id":
            if ident is None:
                ident = value
        else:
            options[key] = value
    if not driver:
        raise HotplugError("no device type given (DEVICE-OPTS starts with it: virtio-net-pci,bus=rp1,...)")
    return DeviceRequest(driver, ident, options)


def _new_id(driver: str, taken: set[str]) -> str:
    """An id for a device the user gave none: the driver name (made a QEMU id) and a number."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", driver)
    if not base[:1].isalpha():
        base = "dev-" + base
    n = 0
    while f"{base}{n}" in taken:
        n += 1
    return f"{base}{n}"


# -------------------------------------------------------------------------------------- description


@dataclass
class Outputs:
    """Where the description goes: the guest DTB and the back-end overlay (either may be None)."""

    guest: str | None = None
    backend: str | None = None

    @classmethod
    def from_options(cls, output: str | None, backend: str | None) -> Outputs:
        """As ``qemu2dtb``: ``-o vm.dtb`` alone also writes ``vm.backend.dtbo`` next to it."""
        if output is not None and backend is None:
            stem = output[:-4] if output.endswith(".dtb") else output
            backend = stem + ".backend.dtbo"
        return cls(output, backend)

    def check(self) -> None:
        """Refuse outputs that could not be written, before the VM is changed (a device added to
        the VM but missing from the files would be worse than no change at all)."""
        for path in (self.guest, self.backend):
            if path is None:
                continue
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise HotplugError(f"{path}: no such directory: {directory}")
            if not os.access(directory, os.W_OK | os.X_OK):
                raise HotplugError(f"{path}: the directory {directory} is not writable")
            if os.path.isdir(path):
                raise HotplugError(f"{path}: is a directory")

    def carried_marks(self) -> tuple[dict[str, str], str | None]:
        """Pending-unplug marks in the overlay file about to be replaced: id -> node path.

        Returns the marks and a warning when the file exists but cannot be read (it is then
        replaced without carrying anything over).
        """
        if self.backend is None or not os.path.isfile(self.backend):
            return {}, None
        from dtvm.dt.dtb import read_dtb
        from dtvm.errors import DtvmError
        from dtvm.fileio import read_blob

        try:
            tree = read_dtb(read_blob(self.backend), self.backend)
        except (OSError, DtvmError) as err:
            return {}, f"{self.backend}: not read, pending-unplug marks not carried over: {err}"
        marks: dict[str, str] = {}
        for _frag, target, over in codec.fragments(tree):
            if over.get_property(PENDING_PROP) is None:
                continue
            ident = codec.read_string(over, "qemu,id")
            if ident and target:
                marks[ident] = target
        return marks, None

    def write(self, desc: Any) -> list[str]:
        """Write what differs from the files on disk (atomically, the two files both or neither);
        the paths written."""
        from dtvm.dt.dtb import write_dtb
        from dtvm.fileio import write_atomic, write_pair

        changed: list[tuple[str, bytes]] = []
        for path, tree in ((self.guest, desc.guest), (self.backend, desc.backend)):
            if path is None:
                continue
            blob = write_dtb(tree)
            try:
                with open(path, "rb") as f:
                    if f.read(len(blob) + 1) == blob:
                        continue
            except OSError:
                pass
            changed.append((path, blob))
        if len(changed) == 2:
            write_pair(changed[0], changed[1])
        elif changed:
            write_atomic(*changed[0])
        return [path for path, _ in changed]


def _by_id(config: Config) -> dict[str, Device]:
    return {dev.qdev_id: dev for dev in config.devices() if dev.qdev_id}


def mark_pending(desc: Any, config: Config, ids: Iterable[str]) -> list[str]:
    """Add ``qemu,unplug-pending;`` to the back-end fragment of each device id (one is created
    when the device has none); the ids marked (those still in ``config`` with a node)."""
    devices = _by_id(config)
    backend: DeviceTree = desc.backend
    marked: list[str] = []
    for ident in ids:
        dev = devices.get(ident)
        path = desc.nodes.get(dev.key()) if dev is not None else None
        if path is None:
            continue
        codec.overlay_target(backend, path).set_property(PENDING_PROP, b"")
        marked.append(ident)
    return marked


def _kept_marks(marks: Mapping[str, str], desc: Any, config: Config) -> set[str]:
    """The carried marks that still apply: same id, still at the same node."""
    devices = _by_id(config)
    kept: set[str] = set()
    for ident, path in marks.items():
        dev = devices.get(ident)
        if dev is not None and desc.nodes.get(dev.key()) == path:
            kept.add(ident)
    return kept


def _where(dev: Device, desc: Any) -> str:
    node = desc.nodes.get(dev.key())
    return f"{dev.key()}" + (f" (node {node})" if node else "")


# --------------------------------------------------------------------------------------------- add


@dataclass
class AddResult:
    """What ``add`` did: the device's id, type, guest-visible key and node, the options that placed
    it, the files written, and a warning if QEMU put it anywhere but where dtvm said."""

    id: str
    driver: str
    key: str
    node: str | None
    placement: str
    written: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def add_device(address: str, device: str, outputs: Outputs | None = None, *, timeout: float = 10.0,
               describe: Describe | None = None) -> AddResult:
    """Hot-plug ``device`` (``-device`` syntax) into the VM behind ``address`` at the address QEMU
    7.2 would choose (or the one given, checked), then rewrite the description."""
    request = parse_device(device)
    outputs = outputs or Outputs()
    outputs.check()
    return qmp.run(lambda: _add(address, request, outputs, timeout, describe))


async def _add(address: str, request: DeviceRequest, outputs: Outputs, timeout: float,
               describe: Describe | None) -> AddResult:
    session = await _open(address, timeout)
    tmp = tempfile.mkdtemp(prefix="dtvm-hotplug-")
    try:
        snapshot = await session.read(tmp, timeout)
        types = await DeviceTypes.read(session, timeout)
        config = from_snapshot(snapshot)
        driver = types.resolve(request.driver)
        kind, console = types.kind(driver)
        requested = {k: v for k, v in request.options.items() if k == "bus" or k in address_keys(kind)}
        if kind == PCI and "multifunction" in request.options:
            requested["multifunction"] = request.options["multifunction"]
        try:
            placement = assign(config, driver, kind, requested, hotplug=True, console=console,
                               parents=_bus_parents(types))
        except AssignError as err:
            raise HotplugError(str(err)) from None
        taken = {p.id for p in snapshot.peripherals if p.id}
        ident = request.id or _new_id(driver, taken)
        args: dict[str, str] = {"driver": driver, "id": ident}
        args.update({k: v for k, v in request.options.items() if k != "bus" and k not in address_keys(kind)})
        args.update(placement.options)
        try:
            await session.command("device_add", args, timeout)
        except QmpCommandError as err:
            raise HotplugError(_refusal("device_add", err.desc, placement, driver)) from None
        after = await session.read(tmp, timeout)
        config = from_snapshot(after)
        describer = describe or _default_describe()
        desc = describer(after)
        dev = _by_id(config).get(ident)
        warnings: list[str] = []
        if dev is None:
            warnings.append(f"{ident} is not in QEMU's device tree after device_add")
            key, node = "", None
        else:
            key, node = dev.key(), desc.nodes.get(dev.key())
            if dev.address != placement.address:
                warnings.append(f"QEMU put {ident} at {address_text(dev.address)}, dtvm assigned "
                                f"{address_text(placement.address)}")
        marks, warning = outputs.carried_marks()
        if warning:
            warnings.append(warning)
        mark_pending(desc, config, _kept_marks(marks, desc, config))
        written = outputs.write(desc)
        return AddResult(ident, driver, key, node, placement.text(), written, warnings)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        await session.close()


def _bus_parents(types: DeviceTypes) -> dict[str, str]:
    from dtvm.qemu.assign import BUS_PARENTS

    return {**BUS_PARENTS, **{k: v for k, v in types.bus_parents.items() if v}}


def _refusal(command: str, desc: str, placement: Placement | None, driver: str) -> str:
    text = f"QEMU refused {command}: {desc}"
    if placement is not None and placement.bus_chosen:
        wanted = KIND_BUS_TYPE[placement.kind]
        text += (f" (no bus= given: QEMU's choice for {driver} is the first {wanted} bus, "
                 f"{placement.bus.name}; name a hot-pluggable bus, e.g. a root port)")
    return text


# --------------------------------------------------------------------------------------------- del


@dataclass
class DelResult:
    """What ``del`` did. ``state``: ``deleted`` (QEMU removed it), ``pending`` (QEMU waits for the
    guest; the device stays, marked), ``refused`` (the guest refused the unplug)."""

    id: str
    driver: str
    key: str
    node: str | None
    state: str
    already: bool = False
    written: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def delete_device(address: str, ident: str, outputs: Outputs | None = None, *, timeout: float = 10.0,
                  wait: float = 5.0, describe: Describe | None = None) -> DelResult:
    """``device_del ident`` on the VM behind ``address``; wait up to ``wait`` s for it to complete,
    then rewrite the description (without the device, or with it marked pending)."""
    if not ident:
        raise HotplugError("no device id given")
    if wait < 0:
        raise HotplugError("--wait must not be negative")
    outputs = outputs or Outputs()
    outputs.check()
    return qmp.run(lambda: _del(address, ident, outputs, timeout, wait, describe))


def _ident_of_node(config: Config, desc: Any, node: str) -> str:
    """What device_del takes for the device a description node stands for (``show --paths``
    prints them, ``backend`` and ``check`` take them): its qdev id, else its QOM path."""
    keys = [k for k, path in desc.nodes.items() if path == node.rstrip("/")]
    devices = [d for d in config.devices() if d.key() in keys]
    if not devices:
        raise HotplugError(f"{node}: no device of this VM is described at this node (dtvm show --paths lists them)")
    dev = devices[0]
    if not dev.user:
        raise HotplugError(f"{node}: {dev.driver} was made by the machine, not by -device or device_add: it cannot be unplugged")
    if dev.qdev_id:
        return dev.qdev_id
    if dev.qom_path:
        return dev.qom_path
    raise HotplugError(f"{node}: QEMU did not say which device this is")  # pragma: no cover - every user device has one


def _is_event_for(event: dict[str, Any], ident: str) -> bool:
    data = event["data"]
    if ident.startswith("/"):
        return bool(data.get("path") == ident)
    return bool(data.get("device") == ident or data.get("path") == _PERIPHERAL + ident)


async def _del(address: str, ident: str, outputs: Outputs, timeout: float, wait: float,
               describe: Describe | None) -> DelResult:
    session = await _open(address, timeout)
    tmp = tempfile.mkdtemp(prefix="dtvm-hotplug-")
    try:
        first = await session.read(tmp, timeout)
        before = from_snapshot(first)
        if ident.startswith("/") and not ident.startswith("/machine/"):
            ident = _ident_of_node(before, (describe or _default_describe())(first), ident)
        old = _by_id(before).get(ident)
        already = False
        try:
            await session.command("device_del", {"id": ident}, timeout)
        except QmpCommandError as err:
            if _ALREADY_PENDING not in err.desc:
                raise HotplugError(f"QEMU refused device_del {ident}: {err.desc}") from None
            already = True
        outcome = await _follow(session, ident, 0.0 if already else wait)
        after = await session.read(tmp, timeout)
        config = from_snapshot(after)
        describer = describe or _default_describe()
        desc = describer(after)
        marks, warning = outputs.carried_marks()
        kept = _kept_marks(marks, desc, config)
        present = ident in _by_id(config) if not ident.startswith("/") else any(
            p.qom_path == ident for p in after.peripherals)
        if not present:
            state = "deleted"
        elif outcome == "refused":
            state = "refused"
            kept.discard(ident)
        else:
            state = "pending"
            kept.add(ident)
        mark_pending(desc, config, sorted(kept))
        written = outputs.write(desc)
        driver = old.driver if old is not None else ""
        key = old.key() if old is not None else ""
        node = desc.nodes.get(key) if state != "deleted" else None
        return DelResult(ident, driver, key, node, state, already, written, [warning] if warning else [])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        await session.close()


async def _follow(session: HotplugSession, ident: str, wait: float) -> str:
    """Wait up to ``wait`` s for the device's own DEVICE_DELETED (``deleted``) or the guest's
    refusal (``refused``); ``waiting`` if neither came.  Events of the devices below it (one per
    qdev of the removed subtree) are passed over."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        for event in await session.next_events(max(0.0, deadline - loop.time())):
            if _is_event_for(event, ident):
                return "deleted" if event["event"] == "DEVICE_DELETED" else "refused"
        if loop.time() >= deadline:
            return "waiting"


# ------------------------------------------------------------------------------------------- watch


@dataclass
class WatchReport:
    """One read during ``watch`` that changed something (or the first one): devices that appeared
    and went (key, driver, id), the files written, the devices marked pending."""

    added: list[str]
    removed: list[str]
    written: list[str]
    pending: list[str]
    first: bool = False


def watch(address: str, outputs: Outputs, *, interval: float = 5.0, timeout: float = 10.0,
          report: Callable[[WatchReport], None] | None = None, warn: Callable[[str], None] | None = None,
          describe: Describe | None = None, max_rounds: int | None = None) -> str:
    """Keep the description of the VM behind ``address`` current until QEMU goes away (returns the
    reason) or the caller interrupts (Ctrl-C: KeyboardInterrupt).

    The VM is re-read at once, on every ``DEVICE_DELETED`` and every ``interval`` seconds (QEMU 7.2
    has no DEVICE_ADDED event); the files are rewritten only when the description changed.
    ``max_rounds`` bounds the number of reads (tests).
    """
    if not interval > 0:
        raise HotplugError("--interval must be a positive number of seconds")
    outputs.check()
    return qmp.run(lambda: _watch(address, outputs, interval, timeout, report, warn, describe, max_rounds))


async def _watch(address: str, outputs: Outputs, interval: float, timeout: float,
                 report: Callable[[WatchReport], None] | None, warn: Callable[[str], None] | None,
                 describe: Describe | None, max_rounds: int | None) -> str:
    session = await _open(address, timeout)
    tmp = tempfile.mkdtemp(prefix="dtvm-hotplug-")
    describer = describe or _default_describe()
    try:
        marks, warning = outputs.carried_marks()
        if warning and warn is not None:
            warn(warning)
        previous: set[str] | None = None
        rounds = 0
        while True:
            try:
                snapshot = await session.read(tmp, timeout)
            except QmpProtocolError as err:
                if not session.alive:
                    return f"QEMU went away ({err})"
                raise
            rounds += 1
            config = from_snapshot(snapshot)
            desc = describer(snapshot)
            kept = _kept_marks(marks, desc, config)
            pending = mark_pending(desc, config, sorted(kept))
            devices = _by_id(config)
            marks = {i: desc.nodes[devices[i].key()] for i in pending}
            written = outputs.write(desc)
            keys = {_describe_device(d) for d in config.devices() if d.user}
            if report is not None and (written or previous is None or keys != previous):
                before = previous if previous is not None else keys
                report(WatchReport(sorted(keys - before), sorted(before - keys), written, pending, previous is None))
            previous = keys
            if max_rounds is not None and rounds >= max_rounds:
                return "stopped after the requested number of reads"
            why = await _next_change(session, interval)
            if why is not None:
                return why
            for event in session.drain():
                ident = event["data"].get("device")
                if event["event"] == "DEVICE_UNPLUG_GUEST_ERROR" and isinstance(ident, str):
                    marks.pop(ident, None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        await session.close()


def _describe_device(dev: Device) -> str:
    return f"{dev.key()} {dev.driver}" + (f" id {dev.qdev_id}" if dev.qdev_id else "")


async def _next_change(session: HotplugSession, interval: float) -> str | None:
    """Wait for an event, the interval, or the end of the connection (returns why it ended)."""
    if session.has_events or session.overflowed:
        return None
    arrived = asyncio.ensure_future(session.wait_events(interval))
    gone = asyncio.ensure_future(session.gone())
    try:
        done, _ = await asyncio.wait({arrived, gone}, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (arrived, gone):
            if not task.done():
                task.cancel()
        await asyncio.gather(arrived, gone, return_exceptions=True)
    if gone in done and not session.alive:
        return "QEMU went away (the QMP connection closed)"
    return None
