"""A precise description to libvirt domain XML: every controller with its index and model, every
guest-visible address pinned, so that libvirt assigns nothing and QEMU builds the described hardware.

libvirt and QEMU both assign addresses; a description already holds the answer, so the XML
leaves neither anything to choose: PCI functions (bus = the libvirt index of the controller whose
bus it is, slot, function, multifunction), drive addresses (controller, bus, target, unit), USB
ports, virtio-serial ports, ISA serial port numbers, the versioned machine type, MACs, CPU
topology and memory.  What libvirt would add on its own is turned off explicitly (``<memballoon
model='none'/>``, ``<controller type='usb' model='none'/>``).  Devices the machine type makes by
itself (``dtvm/qemu/machines``) are not listed; every other device needs an entry in
``data/devices.yaml`` or is refused by name.

The guest tree is data from anyone: its strings reach the XML only through ElementTree (escaped,
never formatted into markup) after a check for characters XML cannot carry; host facts (disk
images, interface and chardev sources) come only from the back-end overlay the user names.
"""

from __future__ import annotations

import functools
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from dtvm.dt.tree import DeviceTree
from dtvm.errors import DtvmError
from dtvm.libvirt.facts import DOMAIN_NODE
from dtvm.vm.codec import fragments, overlay_target, read_string
from dtvm.vm.model import Bus, Config, Device

__all__ = ["DomainXmlError", "HostFacts", "build_domain_xml", "device_table", "device_xml", "host_facts"]

#: The longest string taken from a description into the XML.
MAX_TEXT = 4096
#: Characters XML 1.0 cannot carry (and line breaks, which no value here needs).
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
#: ISA serial ports by I/O base (QEMU's index order).
_SERIAL_BASES = {0x3F8: 0, 0x2F8: 1, 0x3E8: 2, 0x2E8: 3}
#: PCI controllers: the devices that give libvirt a new PCI bus index.
_PCI_ELEMENTS = ("pcie-root-port", "pci-bridge", "pcie-to-pci-bridge")
#: Machine options libvirt spells as features, and how.
_FEATURES = {"vmport": "vmport", "i8042": "ps2"}
#: chardev types libvirt may be asked for from the overlay's facts (never a file or socket it would
#: have to create on the guest tree's say).
_CHARDEV_TYPES = ("pty", "null")
#: How libvirt names a controller's qdev id after its index (``usb`` alone is index 0).
_ID_PATTERNS = {"pci": r"pci\.(\d+)", "usb": r"usb(\d*)", "scsi": r"scsi(\d+)", "sata": r"sata(\d+)",
                "ide": r"ide(\d*)", "virtio-serial": r"virtio-serial(\d+)"}
#: the serial QEMU gives an IDE/AHCI drive that has none (``QM%05d`` in the order the drives are
#: made, the same in the rebuild); stating it would make libvirt's ABI check of a migration compare
#: it with the original's XML, which has no <serial> (libvirt: "Target disk serial QM00001 does not
#: match source <null>")
_IDE_DEFAULT_SERIAL = re.compile(r"QM\d{5}")
#: a virtio balloon's switches libvirt states as <memballoon> attributes (attribute: qdev property)
_BALLOON_SWITCHES = {"autodeflate": "deflate-on-oom", "freePageReporting": "free-page-reporting"}
#: HDA codec drivers and libvirt's <codec type>
_HDA_CODECS = {"hda-duplex": "duplex", "hda-micro": "micro", "hda-output": "output"}
_INTERFACE_SOURCES = {"network": ("network",), "bridge": ("bridge",), "user": ()}


class DomainXmlError(DtvmError):
    """A description that cannot become domain XML (names the node)."""

    exit_code = 2


@functools.cache
def device_table() -> dict[str, dict[str, Any]]:
    """qdev driver -> its libvirt element (data/devices.yaml): read once, shared with hot-plug."""
    import yaml

    text = resources.files("dtvm.libvirt").joinpath("data").joinpath("devices.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


@dataclass
class HostFacts:
    """What the back-end overlay says for libvirt: per node path its ``libvirt,*`` facts, the domain's."""

    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    domain: dict[str, str] = field(default_factory=dict)
    #: the aliases of the original domain's devices in its XML's order
    order: list[str] = field(default_factory=list)


def host_facts(overlay: DeviceTree | None) -> HostFacts:
    """The ``libvirt,*`` facts of an overlay (``qemu2dtb --libvirt`` writes them)."""
    out = HostFacts()
    if overlay is None:
        return out
    for _frag, target, over in fragments(overlay):
        if target is None:
            continue
        facts = {p.name[8:]: read_string(over, p.name) or "" for p in over.live_props() if p.name.startswith("libvirt,")}
        if facts:
            out.nodes[target] = facts
    node = overlay_target(overlay, "/").get_child(DOMAIN_NODE)
    if node is not None:
        out.domain = {p.name: read_string(node, p.name) or "" for p in node.live_props() if p.name != "device-order"}
        order = node.get_property("device-order")
        if order is not None:
            try:
                out.order = order.as_strings()
            except Exception:
                raise DomainXmlError(f"back-end overlay /{DOMAIN_NODE}: device-order is not a string list") from None
    return out


def _text(value: str, where: str) -> str:
    if len(value) > MAX_TEXT:
        raise DomainXmlError(f"{where}: longer than {MAX_TEXT} characters")
    bad = _BAD_CHARS.search(value)
    if bad:
        raise DomainXmlError(f"{where}: character U+{ord(bad.group()):04X} cannot go into domain XML")
    return value


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    elem = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        elem.text = text
    return elem


def _parse_source(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key] = value
    return out


class _Builder:
    def __init__(self, config: Config, facts: HostFacts, name: str, guest: DeviceTree | None = None,
                 keep_uuid: bool = True) -> None:
        self.config = config
        self.keep_uuid = keep_uuid
        self.guest = guest
        self.facts = facts
        self.name = name
        self.table = device_table()
        self.machine_made = _machine_made(config)
        self.pci_index: dict[int, int] = {}   # id(Bus) -> libvirt PCI controller index
        self.ctl_index: dict[int, tuple[str, int]] = {}  # id(Device) -> (controller type, index)
        self.dev_names: dict[str, int] = {}  # disk name prefix -> the next number to try
        self.disk_names: set[str] = set()
        self.backends = config.backend_map()
        self.elements: dict[int, ET.Element] = {}  # id(Device) -> its element (hot-plug takes one)
        self.aliases: dict[int, str] = {}  # id(element) -> libvirt's alias of it in the original domain
        self.taken: dict[str, set[int]] = {"pci": {0}}
        # the indexes qdev ids claim, kept free for them when a controller without one comes first
        self.reserved: dict[str, set[int]] = {}
        for dev in config.devices():
            entry = self.table.get(dev.driver) or {}
            if entry.get("element") == "controller":
                m = re.fullmatch(_ID_PATTERNS.get(entry["type"], r"(?!)"), dev.qdev_id or "")
                if m:
                    self.reserved.setdefault(entry["type"], set()).add(int(m.group(1) or 0))

    # -- indexes ---------------------------------------------------------------------------------
    def _where(self, dev: Device) -> str:
        return dev.node or dev.key()

    def pci_address(self, parent: ET.Element, dev: Device) -> None:
        bus = dev.parent
        if bus is None or id(bus) not in self.pci_index:
            raise DomainXmlError(f"{self._where(dev)}: not on a PCI bus dtvm can name for libvirt")
        slot, fn = dev.address[1]
        attrs = {"type": "pci", "domain": "0x0000", "bus": f"0x{self.pci_index[id(bus)]:02x}",
                 "slot": f"0x{slot:02x}", "function": f"0x{fn:x}"}
        if dev.props.get("multifunction") == "on":
            attrs["multifunction"] = "on"
        _sub(parent, "address", **attrs)

    def controller_of(self, dev: Device) -> tuple[str, int]:
        owner = dev.parent_device
        while owner is not None and owner.parent is not None and owner.parent.type == "virtio":
            owner = owner.parent_device  # a virtio device's bus belongs to its PCI proxy
        if owner is None or id(owner) not in self.ctl_index:
            raise DomainXmlError(f"{self._where(dev)}: its controller has no libvirt element")
        return self.ctl_index[id(owner)]

    # -- the document ----------------------------------------------------------------------------
    def build(self) -> ET.Element:
        cfg = self.config
        m = cfg.machine
        dom = ET.Element("domain", {"type": self.facts.domain.get("type") or "qemu"})
        _sub(dom, "name", _text(self.name, "--name"))
        uuid = self.facts.domain.get("uuid")
        if uuid and self.keep_uuid:
            # the same domain (a migration destination must have the source's UUID; libvirt hands it
            # to the guest as the SMBIOS system UUID)
            if not re.fullmatch(r"[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}", uuid):
                raise DomainXmlError(f"back-end overlay /{DOMAIN_NODE}: uuid {uuid!r} is not a UUID")
            _sub(dom, "uuid", uuid)
        if m.memory <= 0 or m.memory % 1024:
            raise DomainXmlError(f"/qemu: memory size {m.memory} is not a whole number of KiB")
        if m.max_memory:
            # libvirt takes <maxMemory slots=> only with NUMA cells ("At least one numa node has to
            # be configured when enabling memory hotplug"), and a cell is a -numa node the guest
            # sees (SRAT): no domain XML makes the same hardware
            raise DomainXmlError(f"/qemu: memory hot-plug slots ({m.memory_slots}, maxmem {m.max_memory}): libvirt "
                                 "takes them only with a NUMA topology, which this VM does not have")
        _sub(dom, "memory", str(m.memory // 1024), unit="KiB")
        vcpu_attrs = {"placement": "static"}
        if m.max_cpus and m.max_cpus != m.cpus:
            vcpu_attrs["current"] = str(m.cpus)
        _sub(dom, "vcpu", str(max(m.max_cpus, m.cpus, 1)), **vcpu_attrs)
        os_ = _sub(dom, "os")
        _sub(os_, "type", "hvm", arch=_text(m.arch, "/qemu: arch"), machine=_text(m.type, "/qemu: machine"))
        self.features(dom)
        cpu = _sub(dom, "cpu", mode="custom", match="exact", check="none")
        if m.cpu_type:
            _sub(cpu, "model", _text(m.cpu_type, "/qemu: cpu-type"), fallback="forbid")
        topo: dict[str, str] = {k: str(m.topology[k]) for k in ("sockets", "dies", "cores", "threads") if k in m.topology}
        if not topo and self.guest is not None:
            topo = _cpu_map_topology(self.guest)
        if topo:
            _sub(cpu, "topology", **topo)
        _sub(dom, "clock", offset="utc")
        devs = _sub(dom, "devices")
        _sub(devs, "emulator", self.emulator())
        self.root_bus(devs)
        has_usb = has_balloon = False
        for dev in cfg.devices():
            if self.skipped(dev):
                continue
            entry = self.table.get(dev.driver)
            if entry is None:
                raise DomainXmlError(f"{self._where(dev)}: {dev.driver}: no libvirt element dtvm knows for it")
            element = entry["element"]
            has_usb |= element == "controller" and entry.get("type") == "usb"
            has_balloon |= element == "memballoon"
            getattr(self, "e_" + element)(devs, dev, entry)
            self.elements[id(dev)] = devs[-1]
            alias = self.node_facts(dev).get("alias")
            if not alias and id(dev) in self.machine_made:
                alias = "ide"  # libvirt's name of the machine's own disk controller (QEMU gives it no id)
            if alias:
                self.aliases[id(devs[-1])] = alias
        if not has_usb:
            _sub(devs, "controller", type="usb", index="0", model="none")
        if not has_balloon:
            _sub(devs, "memballoon", model="none")
        self.reorder(devs)
        return dom

    def reorder(self, devs: ET.Element) -> None:
        """The elements in the original domain's order (the overlay's ``device-order``), those it
        does not name after them in the order written. libvirt's ABI check of a migration compares
        the destination's controllers, disks, ... with the source's pairwise in XML order ("Target
        controller type pci does not match source usb" otherwise)."""
        if not self.facts.order:
            return
        rank = {alias: n for n, alias in enumerate(self.facts.order)}
        children = list(devs)
        keyed = sorted(range(len(children)), key=lambda i: (
            rank.get(self.aliases.get(id(children[i]), ""), len(rank) + i)))
        for child in children:
            devs.remove(child)
        for i in keyed:
            devs.append(children[i])

    def emulator(self) -> str:
        given = self.facts.domain.get("emulator")
        if given:
            return _text(given, f"back-end overlay /{DOMAIN_NODE}: emulator")
        binary = f"qemu-system-{self.config.machine.arch}"
        return shutil.which(binary) or f"/usr/bin/{binary}"

    def features(self, dom: ET.Element) -> None:
        options = dict(self.config.machine.options)
        feats = _sub(dom, "features")
        if options.pop("acpi", "on") != "off":
            _sub(feats, "acpi")
        defaults = _schema_defaults(self.config)
        for opt, tag in _FEATURES.items():
            value = options.pop(opt, None)
            if value is not None and value != defaults.get(opt):
                _sub(feats, tag, state=value)
        for opt, value in sorted(options.items()):
            if defaults.get(opt) != value:
                raise DomainXmlError(f"/qemu: machine option {opt}={value} has no libvirt equivalent")

    def root_bus(self, devs: ET.Element) -> None:
        """The host bridge's bus is libvirt's PCI controller 0 (pcie-root on q35, pci-root on pc)."""
        for dev in self.config.root.devices:
            for bus in dev.buses:
                if bus.type in ("pcie-root", "pci-root"):
                    self.pci_index[id(bus)] = 0
                    root = _sub(devs, "controller", type="pci", index="0", model=bus.type)
                    # libvirt's alias of its root bus (QEMU's bus name, which the guest tree leaves out)
                    self.aliases[id(root)] = "pcie.0" if bus.type == "pcie-root" else "pci.0"
                    return
        raise DomainXmlError("the description has no PCI host bridge libvirt can take for its root bus")

    def skipped(self, dev: Device) -> bool:
        """Made by the machine, by the PCI proxy (virtio bus) or by its parent device itself."""
        if id(dev) in self.machine_made:
            # the machine's own disk controller is listed where the original domain listed it
            # (libvirt's alias "ide": always on q35, on pc only with an IDE disk): a migration's ABI
            # check compares the controllers one by one, and their count
            if dev.driver in ("ich9-ahci", "piix3-ide") and "ide" in self.facts.order:
                return False
            if dev.driver == "ich9-ahci":
                self.ctl_index[id(dev)] = ("sata", self.controller_index(dev, "sata"))
            elif dev.driver == "piix3-ide":
                self.ctl_index[id(dev)] = ("ide", self.controller_index(dev, "ide"))
            return True
        bus = dev.parent
        if bus is not None and bus.type == "virtio":
            return True
        owner = dev.parent_device
        while owner is not None:
            entry = self.table.get(owner.driver) or {}
            if entry.get("implicit"):
                return True
            owner = owner.parent_device
        return False

    def node_facts(self, dev: Device) -> dict[str, str]:
        return self.facts.nodes.get(dev.node or "", {})

    # -- elements --------------------------------------------------------------------------------
    def controller_index(self, dev: Device, kind: str) -> int:
        """libvirt's index of a controller: the one its qdev id says where libvirt named it (``pci.3``,
        ``scsi1``, ``usb``), so that the rebuild matches the original domain's XML (libvirt's ABI
        check compares controllers by index); else the next free one."""
        taken = self.taken.setdefault(kind, set())
        match = re.fullmatch(_ID_PATTERNS.get(kind, r"(?!)"), dev.qdev_id or "")
        if match:
            index = int(match.group(1) or 0)
            if index not in taken:
                taken.add(index)
                return index
        index = 1 if kind == "pci" else 0
        while index in taken or (kind in self.reserved and index in self.reserved[kind]):
            index += 1
        taken.add(index)
        return index

    def e_controller(self, devs: ET.Element, dev: Device, entry: dict[str, Any]) -> None:
        kind = entry["type"]
        index = self.controller_index(dev, kind)
        if kind == "pci":
            for bus in dev.buses:
                self.pci_index[id(bus)] = index
        self.ctl_index[id(dev)] = (kind, index)
        attrs = {"type": kind, "index": str(index)}
        if entry.get("model"):
            attrs["model"] = entry["model"]
        ctl = _sub(devs, "controller", **attrs)
        if entry.get("model-name"):
            _sub(ctl, "model", name=entry["model-name"])
        target = entry.get("target")
        if target:
            _sub(ctl, "target", **{attr: _text(dev.props.get(prop, default), f"{self._where(dev)}: {prop}")
                                   for attr, (prop, default) in target.items()})
        self.pci_address(ctl, dev)

    def disk_source(self, dev: Device) -> tuple[str, str]:
        """(image path, format) of a disk: libvirt's fact, else the drive back-end's file."""
        where = self._where(dev)
        facts = self.node_facts(dev)
        candidates = [dev, *[c for b in dev.buses for c in b.devices]]
        drive = next((c.backends["drive"] for c in candidates if "drive" in c.backends), None)
        opts = self.backends.get(("drive", drive or ""), {})
        path = _parse_source(facts.get("source", "")).get("file") or opts.get("file")
        if not path:
            raise DomainXmlError(f"{where}: a disk without an image in the back-end overlay (give -b)")
        fmt = opts.get("drv") or "raw"
        if fmt not in ("raw", "qcow2"):
            raise DomainXmlError(f"{where}: image format {fmt!r}: dtb2libvirt writes raw and qcow2 disks")
        return _text(path, f"{where}: image"), fmt

    def e_disk(self, devs: ET.Element, dev: Device, entry: dict[str, Any]) -> None:
        where = self._where(dev)
        path, fmt = self.disk_source(dev)
        disk = _sub(devs, "disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type=fmt)
        _sub(disk, "source", file=path)
        bus = entry["bus"]
        prefix = entry.get("prefix", "sd")
        if bus == "parent":
            bus = self.controller_of(dev)[0]
            prefix = "hd" if bus == "ide" else "sd"
        named = self.node_facts(dev).get("target", "")
        if re.fullmatch(prefix + r"[a-z]{1,4}", named) and named not in self.disk_names:
            dev_name = named  # the original's name: libvirt's ABI check of a migration compares it
        else:
            while (dev_name := prefix + _disk_letters(self.dev_names.get(prefix, 0))) in self.disk_names:
                self.dev_names[prefix] = self.dev_names.get(prefix, 0) + 1
        self.disk_names.add(dev_name)
        target = {"dev": dev_name, "bus": bus}
        if dev.driver == "usb-storage" and dev.props.get("removable") == "on":
            target["removable"] = "on"
        _sub(disk, "target", **target)
        serial = dev.props.get("serial")
        if serial is None:
            serial = next((c.props["serial"] for b in dev.buses for c in b.devices if "serial" in c.props), None)
        if serial is not None and not (dev.driver.startswith("ide-") and _IDE_DEFAULT_SERIAL.fullmatch(serial)):
            _sub(disk, "serial", _text(serial, f"{where}: serial"))
        kind, values = dev.address
        if kind == "pci":
            self.pci_address(disk, dev)
        elif kind == "scsi":
            _, index = self.controller_of(dev)
            channel, scsi_id, lun = values
            owner = dev.parent_device
            if owner is not None and (self.table.get(owner.driver) or {}).get("scsi-id-is-unit"):
                if lun or channel:
                    raise DomainXmlError(f"{where}: libvirt pins a disk on {owner.driver} by SCSI id only (lun and channel 0)")
                scsi_id, lun = 0, scsi_id
            _sub(disk, "address", type="drive", controller=str(index), bus=str(channel), target=str(scsi_id),
                 unit=str(lun))
        elif kind == "ide":
            ctl, index = self.controller_of(dev)
            ide_bus, unit = values
            if ctl == "sata":  # libvirt numbers an AHCI port as unit on bus 0
                ide_bus, unit = 0, ide_bus
            _sub(disk, "address", type="drive", controller=str(index), bus=str(ide_bus), target="0", unit=str(unit))
        elif kind == "usb":
            self.usb_address(disk, dev)
        else:
            raise DomainXmlError(f"{where}: a disk at a {kind} address")

    def usb_address(self, parent: ET.Element, dev: Device) -> None:
        _, index = self.controller_of(dev)
        _sub(parent, "address", type="usb", bus=str(index), port=".".join(str(v) for v in dev.address[1]))

    def e_interface(self, devs: ET.Element, dev: Device, entry: dict[str, Any]) -> None:
        where = self._where(dev)
        facts = self.node_facts(dev)
        kind = facts.get("type")
        if kind is None:
            netdev = self.backends.get(("netdev", dev.backends.get("netdev", "")), {})
            kind = netdev.get("type", "user")
        if kind not in _INTERFACE_SOURCES:
            raise DomainXmlError(f"{where}: interface type {kind!r}: dtb2libvirt writes user, network and bridge")
        nic = _sub(devs, "interface", type=kind)
        source = _parse_source(facts.get("source", ""))
        keys = _INTERFACE_SOURCES[kind]
        if keys:
            if not all(k in source for k in keys):
                raise DomainXmlError(f"{where}: a {kind} interface without its source in the back-end overlay")
            _sub(nic, "source", **{k: _text(source[k], f"{where}: source") for k in keys})
        mac = dev.props.get("mac") or next((c.props["mac"] for b in dev.buses for c in b.devices if "mac" in c.props), None)
        if mac is None:
            raise DomainXmlError(f"{where}: a NIC without its MAC address")
        if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac):
            raise DomainXmlError(f"{where}: MAC address {mac!r} is not xx:xx:xx:xx:xx:xx")
        _sub(nic, "mac", address=mac)
        _sub(nic, "model", type=entry["model"])
        self.pci_address(nic, dev)

    def e_input(self, devs: ET.Element, dev: Device, entry: dict[str, Any]) -> None:
        inp = _sub(devs, "input", type=entry["type"], bus=entry["bus"])
        self.usb_address(inp, dev)

    def chardev_type(self, dev: Device) -> str:
        kind = self.node_facts(dev).get("type", "pty")
        return kind if kind in _CHARDEV_TYPES else "pty"

    def e_channel(self, devs: ET.Element, dev: Device, entry: dict[str, Any]) -> None:
        self._virtio_serial(devs, dev, "channel")

    def e_console(self, devs: ET.Element, dev: Device, entry: dict[str, Any]) -> None:
        self._virtio_serial(devs, dev, "console")

    def _virtio_serial(self, devs: ET.Element, dev: Device, tag: str) -> None:
        where = self._where(dev)
        chan = _sub(devs, tag, type=self.chardev_type(dev))
        target = {"type": "virtio"}
        if "name" in dev.props:
            target["name"] = _text(dev.props["name"], f"{where}: name")
        _sub(chan, "target", **target)
        # the virtio-serial controller is the PCI proxy two levels up (proxy, virtio device, port)
        owner = dev.parent_device
        proxy = owner.parent_device if owner is not None else None
        if proxy is None or id(proxy) not in self.ctl_index:
            raise DomainXmlError(f"{where}: its virtio-serial controller has no libvirt element")
        _sub(chan, "address", type="virtio-serial", controller=str(self.ctl_index[id(proxy)][1]), bus="0",
             port=str(dev.address[1][0]))

    def e_serial(self, devs: ET.Element, dev: Device, entry: dict[str, Any]) -> None:
        where = self._where(dev)
        if dev.address[0] != "isa" or dev.address[1][0] not in _SERIAL_BASES:
            raise DomainXmlError(f"{where}: an ISA serial port at an I/O base libvirt cannot pin")
        serial = _sub(devs, "serial", type=self.chardev_type(dev))
        target = _sub(serial, "target", type="isa-serial", port=str(_SERIAL_BASES[dev.address[1][0]]))
        _sub(target, "model", name="isa-serial")

    def e_rng(self, devs: ET.Element, dev: Device, entry: dict[str, Any]) -> None:
        rng = _sub(devs, "rng", model=entry["model"])
        _sub(rng, "backend", "/dev/urandom", model="random")
        self.pci_address(rng, dev)

    def e_memballoon(self, devs: ET.Element, dev: Device, entry: dict[str, Any]) -> None:
        balloon = _sub(devs, "memballoon", model=entry["model"])
        facts = self.node_facts(dev)
        props = _with_virtio_child(dev)
        for attr, prop in _BALLOON_SWITCHES.items():
            value = props.get(prop)
            if value is not None:
                balloon.set(attr, _on_off(value, f"{self._where(dev)}: {prop}"))
            elif facts.get(attr) == "off":  # QEMU's default, as the original's XML spelled it
                balloon.set(attr, "off")
        self.pci_address(balloon, dev)

    def e_video(self, devs: ET.Element, dev: Device, entry: dict[str, Any]) -> None:
        where = self._where(dev)
        video = _sub(devs, "video")
        attrs = {"type": entry["model"]}
        for attr, (prop, default, unit) in (entry.get("sizes") or {}).items():
            attrs[attr] = _kib(dev.props.get(prop, default), unit, f"{where}: {prop}")
        for attr, (prop, unit) in (entry.get("optional-sizes") or {}).items():
            if dev.props.get(prop, "0") != "0":
                attrs[attr] = _kib(dev.props[prop], unit, f"{where}: {prop}")
        heads = entry.get("heads")
        if "heads-prop" in entry:
            prop, default = entry["heads-prop"]
            heads = _text(_with_virtio_child(dev).get(prop, default), f"{where}: {prop}")
        if heads is not None:
            attrs["heads"] = heads
        # libvirt calls the first <video> the primary one (its VGA-compatible model); the order
        # of the elements is the original's where the overlay states it
        if heads == "0":
            raise DomainXmlError(f"{where}: no outputs: libvirt gives a {dev.driver} at least one head")
        _sub(video, "model", **attrs)
        if dev.address[0] == "pci":  # ramfb sits on the system bus: nothing to pin
            self.pci_address(video, dev)

    def e_sound(self, devs: ET.Element, dev: Device, entry: dict[str, Any]) -> None:
        where = self._where(dev)
        sound = _sub(devs, "sound", model=entry["model"])
        codecs = sorted((c for b in dev.buses for c in b.devices), key=lambda c: int(c.props.get("cad", "0") or 0))
        for n, codec in enumerate(codecs):
            kind = _HDA_CODECS.get(codec.driver)
            if kind is None:
                raise DomainXmlError(f"{where}: codec {codec.driver}: libvirt has no <codec> for it")
            if codec.props.get("cad", "0") != str(n):  # libvirt numbers the codecs from 0 in order
                raise DomainXmlError(f"{where}: codec {codec.driver} at cad {codec.props.get('cad')}: libvirt "
                                     f"gives the codecs cad 0, 1, ... in order")
            _sub(sound, "codec", type=kind)
        if dev.address[0] == "usb":
            self.usb_address(sound, dev)
        else:
            self.pci_address(sound, dev)

    def e_watchdog(self, devs: ET.Element, dev: Device, entry: dict[str, Any]) -> None:
        # the action (what QEMU does when it fires) is no hardware: libvirt's default, reset
        watchdog = _sub(devs, "watchdog", model=entry["model"], action="reset")
        if dev.address[0] == "pci":
            self.pci_address(watchdog, dev)

    def e_tpm(self, devs: ET.Element, dev: Device, entry: dict[str, Any]) -> None:
        tpm = _sub(devs, "tpm", model=entry["model"])
        _sub(tpm, "backend", type="emulator", version="2.0")

    def e_panic(self, devs: ET.Element, dev: Device, entry: dict[str, Any]) -> None:
        panic = _sub(devs, "panic", model=entry["model"])
        ioport = dev.props.get("ioport")
        if ioport is not None:
            if not ioport.isdigit():
                raise DomainXmlError(f"{self._where(dev)}: ioport {ioport!r} is not a number")
            _sub(panic, "address", type="isa", iobase=f"0x{int(ioport):x}")


def _kib(raw: str, unit: str, where: str) -> str:
    """A size property (MiB or bytes) as libvirt's KiB."""
    if not raw.isdigit():
        raise DomainXmlError(f"{where}: {raw!r} is not a number")
    if unit == "MiB":
        return str(int(raw) * 1024)
    if int(raw) % 1024:
        raise DomainXmlError(f"{where}: {raw} is not a whole number of KiB")
    return str(int(raw) // 1024)


def _with_virtio_child(dev: Device) -> dict[str, str]:
    """A virtio PCI proxy's properties with its virtio device's (``deflate-on-oom`` is the
    virtio-balloon-device's, ``max_outputs`` the virtio-gpu-device's)."""
    props = dict(dev.props)
    for bus in dev.buses:
        if bus.type == "virtio":
            for child in bus.devices:
                props.update(child.props)
    return props


def _on_off(value: str, where: str) -> str:
    if value in ("on", "true"):
        return "on"
    if value in ("off", "false"):
        return "off"
    raise DomainXmlError(f"{where}: {value!r} is neither on nor off")


def _disk_letters(n: int) -> str:
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(ord("a") + r) + out
    return out


def _schema(config: Config) -> Any:
    from dtvm.qemu.machine import find_machine
    from dtvm.qemu.schema import load_schema

    return load_schema(find_machine(config.machine.type))


def _schema_defaults(config: Config) -> dict[str, str]:
    return {str(k): str(v) for k, v in (_schema(config).defaults.get("options") or {}).items()}


def _tail(dev: Device) -> str:
    from dtvm.vm.model import address_text

    kind = dev.address[0]
    return dev.driver if kind in ("none", "nth", "virtio") else address_text(dev.address)


def _machine_made(config: Config) -> set[int]:
    """The devices the machine type makes by itself under libvirt (-nodefaults, usb=off): matched to
    the checked-in machine schema by driver and the last step of their position."""
    schema = _schema(config)
    made: set[tuple[str, str]] = set()
    for d in schema.devices:
        if d.origin == "default" or any("usb=off" in r for r in d.removed_by):
            continue
        last = d.key.rsplit("/", 1)[-1]
        made.add((d.driver, d.driver if "#" in last or not last else last))
    out: set[int] = set()

    def walk(bus: Bus, parent_made: bool) -> None:
        for dev in bus.devices:
            # a node of QEMU's own DT is a device the machine made (its DT has no -device's)
            # the schema names a system-bus device by its MMIO base or by driver and instance
            # (``/pl011#0``): either form matches
            mine = dev.in_dt or (parent_made and ((dev.driver, _tail(dev)) in made or
                                                  (dev.address[0] == "mmio" and (dev.driver, dev.driver) in made)))
            if mine:
                out.add(id(dev))
            for child in dev.buses:
                walk(child, mine)

    walk(config.root, True)
    return out


def device_xml(config: Config, dev: Device, facts: HostFacts | None = None, guest: DeviceTree | None = None) -> str:
    """The one ``<devices>`` element that makes libvirt create ``dev`` (a device of ``config``) with
    its address pinned, as ``dtb2libvirt`` would write it (for ``virDomainAttachDevice``)."""
    builder = _Builder(config, facts or HostFacts(), "hotplug", guest)
    builder.build()
    elem = builder.elements.get(id(dev))
    if elem is None:
        raise DomainXmlError(f"{dev.driver}: libvirt makes it without an element of its own")
    return ET.tostring(elem, encoding="unicode")


def _cpu_map_topology(guest: DeviceTree) -> dict[str, str]:
    """sockets/cores/threads from the DT's ``/cpus/cpu-map`` (arm virt states its topology there, not
    in ``/qemu``); libvirt 9.0 has no clusters, so a map with more than one per socket is refused."""
    cpu_map = guest.get_node("/cpus/cpu-map")
    if cpu_map is None:
        return {}

    def count(node: Any, prefix: str) -> tuple[int, Any]:
        kids = [c for c in node.live_children() if c.name.startswith(prefix)]
        return len(kids), (kids[0] if kids else None)

    sockets, socket = count(cpu_map, "socket")
    if socket is None:
        return {}
    clusters, cluster = count(socket, "cluster")
    if clusters > 1:
        raise DomainXmlError("/cpus/cpu-map: more than one cluster per socket (libvirt 9.0 has no clusters)")
    cores, core = count(cluster if cluster is not None else socket, "core")
    threads, _ = count(core, "thread") if core is not None else (0, None)
    return {"sockets": str(sockets), "dies": "1", "cores": str(max(cores, 1)), "threads": str(max(threads, 1))}


def build_domain_xml(config: Config, name: str, facts: HostFacts | None = None,
                     guest: DeviceTree | None = None, *, keep_uuid: bool = True) -> str:
    """The domain XML (text, with an XML declaration-free root) that rebuilds ``config`` under
    libvirt; ``guest`` (the guest tree ``config`` was read from) supplies what only its DT states
    (arm virt's CPU topology). The overlay's domain UUID is kept unless ``keep_uuid`` is false (a
    copy beside the original on one daemon needs a UUID of its own)."""
    root = _Builder(config, facts or HostFacts(), name, guest, keep_uuid).build()
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"

