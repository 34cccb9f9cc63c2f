"""A seeded generator of loose QEMU 7.2 configurations, written as users write them.

Not from dtvm's features: each case draws a machine (q35, pc, aarch64/arm virt, riscv64 virt,
pseries), its machine options (booleans and enums the type lists in ``-machine help``), an
``-smp`` topology with ``maxcpus``, ``-m``, a ``-cpu`` model, and devices on the bus kinds the
machine has (PCI/PCIe root bus, root ports, PCI bridges, USB controllers and hubs, SCSI, AHCI/IDE,
virtio-serial, virtio-mmio, ISA, VIO) with back-ends in the forms users give them (``-drive`` with
``if=`` and ``index=``, ``-blockdev``, ``-netdev``/``-nic``, ``-chardev``, raw and qcow2 images,
``-hda``/``-cdrom``/``-serial`` shorthands), plus devices and CPUs hot-plugged with ``device_add``.

Nothing here knows what dtvm answers: QEMU is the oracle that a case is valid (it starts, and
migrates into a copy of itself); ``tests/qemu_random.py`` runs the round trip on each.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .qemugen_census import census_draw, with_directories, with_memory_slots

__all__ = ["MACHINES", "Case", "generate", "write_qcow2", "write_raw"]


@dataclass
class Case:
    """One configuration: the argv (image paths relative to the case's directory, spelled
    ``@IMG@name``), the images to make, and what to hot-plug after start (``device_add`` args;
    a CPU is ``{"driver": "cpu"}``, filled from ``query-hotpluggable-cpus`` at run time)."""

    name: str
    machine: str
    argv: list[str]
    images: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (format, bytes)
    hotplug: list[dict[str, Any]] = field(default_factory=list)

    def materialize(self, directory: Path) -> list[str]:
        """Write the images (and exported directories) into ``directory`` and return the argv with
        their paths."""
        for name, (fmt, size) in self.images.items():
            path = directory / name
            if fmt == "dir":  # a directory a 9p device exports (-fsdev local, -virtfs)
                path.mkdir(exist_ok=True)
                (path / "hello.txt").write_text("shared by the host\n")
            elif fmt == "qcow2":
                write_qcow2(path, size)
            else:
                write_raw(path, size)
        return [a.replace("@IMG@", str(directory) + "/") for a in self.argv]


def write_raw(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def write_qcow2(path: Path, size: int) -> None:
    """An empty qcow2 (version 2, 64 KiB clusters): header, refcount table, one refcount block,
    one L1 table; what ``qemu-img create -f qcow2`` makes, without needing qemu-img."""
    cluster = 1 << 16
    l2_span = cluster * (cluster // 8)  # bytes one L2 table maps
    l1_size = max(1, -(-size // l2_span))
    l1_clusters = -(-l1_size * 8 // cluster)
    header = struct.pack(
        ">4sIQIIQIIQQIIQ", b"QFI\xfb", 2, 0, 0, 16, size, 0, l1_size,
        3 * cluster, cluster, 1, 0, 0,
    )
    refblock = bytearray(cluster)
    for i in range(3 + l1_clusters):
        struct.pack_into(">H", refblock, 2 * i, 1)
    reftable = bytearray(cluster)
    struct.pack_into(">Q", reftable, 0, 2 * cluster)
    with open(path, "wb") as f:
        f.write(header.ljust(cluster, b"\0"))
        f.write(bytes(reftable))
        f.write(bytes(refblock))
        f.write(bytes(l1_clusters * cluster))


@dataclass(frozen=True)
class MachineSpec:
    binary: str
    type: str
    options: dict[str, list[str]]  # option -> values a user may write
    cpus: list[str]
    max_cpus: int
    memory: list[str]
    pcie: bool  # root bus is PCIe (root ports, pcie-pci-bridge)
    root_bus: str
    mmio: bool = False  # virtio-mmio transports
    isa: bool = False
    ide: str = ""  # "piix" (-hda, index 0..3 on ide.0/1), "ahci" (q35: 6 ports)
    vio: bool = False
    cpu_hotplug: bool = False


_ONOFF = ["on", "off"]
MACHINES: dict[str, MachineSpec] = {
    "q35": MachineSpec(
        "qemu-system-x86_64", "pc-q35-7.2",
        {"sata": _ONOFF, "smbus": _ONOFF, "i8042": _ONOFF, "hpet": _ONOFF, "vmport": ["on", "off", "auto"],
         "pit": ["on", "off", "auto"], "pic": ["on", "off", "auto"], "usb": _ONOFF, "graphics": _ONOFF,
         "smm": ["on", "off", "auto"], "acpi": ["on", "off", "auto"], "default-bus-bypass-iommu": _ONOFF},
        ["qemu64", "max", "Nehalem", "Skylake-Client", "EPYC", "core2duo", "kvm64"], 4,
        ["128M", "256M", "512M"], True, "pcie.0", isa=True, ide="ahci", cpu_hotplug=True),
    "pc": MachineSpec(
        "qemu-system-x86_64", "pc-i440fx-7.2",
        {"hpet": _ONOFF, "i8042": _ONOFF, "vmport": ["on", "off", "auto"], "pit": ["on", "off", "auto"],
         "pic": ["on", "off", "auto"], "usb": _ONOFF, "graphics": _ONOFF, "smm": ["on", "off", "auto"],
         "acpi": ["on", "off", "auto"], "sata": _ONOFF, "smbus": _ONOFF},
        ["qemu64", "max", "Westmere", "Skylake-Server", "Opteron_G3", "pentium3", "kvm64"], 4,
        ["128M", "256M", "384M"], False, "pci.0", isa=True, ide="piix", cpu_hotplug=True),
    "aarch64-virt": MachineSpec(
        "qemu-system-aarch64", "virt-7.2",
        {"gic-version": ["2", "3", "max"], "highmem": _ONOFF, "secure": _ONOFF, "virtualization": _ONOFF,
         "its": _ONOFF, "iommu": ["smmuv3", "none"], "acpi": ["on", "off", "auto"], "ras": _ONOFF,
         "mte": _ONOFF, "dtb-randomness": _ONOFF, "graphics": _ONOFF, "usb": _ONOFF,
         "default-bus-bypass-iommu": _ONOFF},
        ["cortex-a57", "cortex-a53", "cortex-a72", "max", "cortex-a15"], 4,
        ["128M", "256M", "512M"], True, "pcie.0", mmio=True),
    "arm-virt": MachineSpec(
        "qemu-system-arm", "virt-7.2",
        {"gic-version": ["2", "3"], "highmem": _ONOFF, "secure": _ONOFF, "virtualization": _ONOFF,
         "its": _ONOFF, "dtb-randomness": _ONOFF, "usb": _ONOFF},
        ["cortex-a15", "cortex-a7", "max"], 4, ["128M", "256M"], True, "pcie.0", mmio=True),
    "riscv64-virt": MachineSpec(
        "qemu-system-riscv64", "virt",
        {"aclint": _ONOFF, "aia": ["none", "aplic", "aplic-imsic"]},
        ["rv64", "sifive-u54", "rv64"], 4, ["128M", "256M"], True, "pcie.0", mmio=True),
    "pseries": MachineSpec(
        "qemu-system-ppc64", "pseries-7.2",
        {"cap-htm": _ONOFF, "cap-vsx": _ONOFF, "cap-dfp": _ONOFF, "cap-cfpc": ["broken", "workaround"],
         "ic-mode": ["xics", "xive", "dual"], "vsmt": ["1", "2"]},
        ["power9", "power8", "power10"], 4, ["256M", "512M"], False, "pci.0", vio=True, cpu_hotplug=True),
}

_NICS_PCI = ["virtio-net-pci", "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet", "vmxnet3", "i82559er",
             "e1000-82540em", "e1000-82544gc", "e1000-82545em", "i82550", "i82551", "i82557b", "i82559c", "i82801",
             "tulip"]
_PLAIN_PCI = ["virtio-rng-pci", "virtio-balloon-pci", "i6300esb", "pci-testdev", "virtio-keyboard-pci",
              "virtio-mouse-pci", "virtio-tablet-pci", "pvpanic-pci", "ich9-intel-hda", "intel-hda", "sdhci-pci", "edu"]
_DISPLAY_PCI = ["VGA", "bochs-display", "virtio-gpu-pci", "cirrus-vga", "secondary-vga", "ati-vga"]
_USB_HCI = ["qemu-xhci", "nec-usb-xhci", "usb-ehci", "ich9-usb-ehci1", "piix3-usb-uhci", "pci-ohci", "ich9-usb-uhci1",
            "ich9-usb-ehci2", "piix4-usb-uhci"]
# usb-wacom-tablet and usb-uas are left out: QEMU cannot migrate them ("State blocked by non-migratable device")
_USB_BLOCKS = ["", "", "", ",logical_block_size=4096,physical_block_size=4096", ",physical_block_size=4096",
               ",logical_block_size=512"]
_USB_DEV = ["usb-kbd", "usb-mouse", "usb-tablet", "usb-storage", "usb-hub", "usb-serial", "usb-bot", "usb-ccid"]
_USBDEVICE = {"usb-kbd": "keyboard", "usb-mouse": "mouse", "usb-tablet": "tablet"}
_SCSI_HBA = ["virtio-scsi-pci", "lsi53c895a", "megasas", "am53c974", "mptsas1068", "dc390", "pvscsi"]
_MMIO = ["virtio-rng-device", "virtio-net-device", "virtio-blk-device", "virtio-balloon-device",
         "virtio-serial-device", "virtio-keyboard-device", "virtio-scsi-device"]


class _Gen:
    def __init__(self, rng: random.Random, spec: MachineSpec, machine: str) -> None:
        self.rng = rng
        self.spec = spec
        self.machine = machine
        self.args: list[str] = []
        self.images: dict[str, tuple[str, int]] = {}
        self.hotplug: list[dict[str, Any]] = []
        self.n = 0
        self.pci_buses: list[str] = [spec.root_bus]  # buses a plain PCI device may name
        self.hot_buses: list[str] = []  # buses that take hot-plug
        self.usb_buses: list[str] = []
        self.scsi_buses: list[str] = []
        self.serial_buses: list[str] = []
        self.index_used: set[tuple[str, int]] = set()
        self.chassis = 0
        self.bridge_slots: dict[str, int] = {}
        self.usb_on = False  # -M ...,usb=on: what -usbdevice needs

    def ident(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def image(self, size_mib: int | None = None) -> tuple[str, str]:
        """A new image: (path as written in the argv, format)."""
        fmt = self.rng.choice(["raw", "qcow2"])
        size = (size_mib or self.rng.choice([1, 4, 16, 64])) << 20
        name = f"img{len(self.images)}.{fmt}"
        self.images[name] = (fmt, size)
        return f"@IMG@{name}", fmt

    def drive_ref(self) -> str:
        """A back-end for a disk in one of the forms users write: -drive if=none or -blockdev."""
        path, fmt = self.image()
        ident = self.ident("d")
        if self.rng.random() < 0.6:
            extra = ",format=" + fmt if self.rng.random() < 0.8 else ""
            self.args += ["-drive", f"if=none,id={ident},file={path}{extra}"]
        else:
            self.args += ["-blockdev", f"driver=file,node-name={ident}f,filename={path}",
                          "-blockdev", f"driver={fmt},node-name={ident},file={ident}f"]
        return ident

    def pci_bus(self) -> str:
        return self.rng.choice(self.pci_buses)

    def bus_arg(self, bus: str) -> str:
        # a device on the root bus is often written without bus=
        if bus == self.spec.root_bus and self.rng.random() < 0.6:
            return ""
        if bus in self.bridge_slots:
            # a bridge with a hot-plug controller (SHPC) has no slot 0: users give the slot
            self.bridge_slots[bus] += 1
            return f",bus={bus},addr={self.bridge_slots[bus]}"
        return f",bus={bus}"

    # -- building blocks ---------------------------------------------------------------------
    def root_port(self) -> None:
        if not self.spec.pcie:
            return
        ident = self.ident("rp")
        self.chassis += 1
        hp = "" if self.rng.random() < 0.8 else ",hotplug=off"
        self.args += ["-device", f"pcie-root-port,id={ident},chassis={self.chassis}{hp}"]
        if not hp:
            self.hot_buses.append(ident)
        if self.rng.random() < 0.5:
            self.pci_buses.append(ident)

    def bridge(self) -> None:
        ident = self.ident("br")
        self.chassis += 1
        if self.spec.pcie:
            if self.rng.random() < 0.5:
                self.args += ["-device", f"pcie-pci-bridge,id={ident}{self.bus_arg(self.spec.root_bus)}"]
            else:
                self.root_port()
                return
        else:
            self.args += ["-device", f"pci-bridge,id={ident},chassis_nr={self.chassis}{self.bus_arg(self.pci_bus())}"]
        self.pci_buses.append(ident)
        self.hot_buses.append(ident)
        self.bridge_slots[ident] = 0

    def nic(self) -> None:
        model = self.rng.choice(_NICS_PCI)
        form = self.rng.random()
        mac = f",mac=52:54:00:{self.rng.randrange(256):02x}:{self.rng.randrange(256):02x}:{self.rng.randrange(256):02x}" \
            if self.rng.random() < 0.5 else ""
        if form < 0.4:
            ident = self.ident("n")
            self.args += ["-netdev", f"user,id={ident}", "-device", f"{model},netdev={ident}{mac}{self.bus_arg(self.pci_bus())}"]
        elif form < 0.7:
            self.args += ["-nic", f"user,model={model}{mac}"]
        else:
            self.args += ["-device", f"{model}{mac}{self.bus_arg(self.pci_bus())}"]

    def disk_pci(self) -> None:
        form = self.rng.random()
        if form < 0.4:
            self.args += ["-device", f"virtio-blk-pci,drive={self.drive_ref()}{self.bus_arg(self.pci_bus())}"]
        else:
            path, fmt = self.image()
            self.args += ["-drive", f"if=virtio,file={path},format={fmt}"]

    def usb(self) -> None:
        # only x86 makes a USB controller of its own for usb=on (virt has none: its devices found no bus)
        if "usb" in self.spec.options and self.spec.binary.endswith("x86_64") and "usb=" not in self.args[2] \
                and self.rng.random() < 0.3:
            # the machine's own USB (-M ...,usb=on), with devices in the legacy -usbdevice form too
            self.args[2] += ",usb=on"
            self.usb_on = True
            for _ in range(self.rng.randint(1, 3)):
                self.usb_device(None)
            return
        hci = self.rng.choice(_USB_HCI)
        ident = self.ident("usb")
        self.args += ["-device", f"{hci},id={ident}{self.bus_arg(self.pci_bus())}"]
        bus = f"{ident}.0"
        self.usb_buses.append(bus)
        for _ in range(self.rng.randint(0, 3)):
            self.usb_device(bus)

    def usb_device(self, bus: str | None = None) -> dict[str, Any] | None:
        dev = self.rng.choice(_USB_DEV)
        bus_arg = f",bus={bus}" if bus and self.rng.random() < 0.5 else ""
        if dev in ("usb-storage",):
            # block sizes the usb-storage hands its disk on 10.0 and not on 7.2; drawn from a copy
            # of the stream, so that the cases of the fixed seeds stay what they were
            blocks = random.Random(repr(self.rng.getstate()[1])).choice(_USB_BLOCKS)
            self.args += ["-device", f"usb-storage,drive={self.drive_ref()}{bus_arg}{blocks}"]
        elif dev == "usb-bot":
            return None
        elif dev == "usb-serial":
            ident = self.ident("c")
            self.args += ["-chardev", f"null,id={ident}", "-device", f"usb-serial,chardev={ident}{bus_arg}"]
        elif dev in _USBDEVICE and self.usb_on and self.rng.random() < 0.5:
            self.args += ["-usbdevice", _USBDEVICE[dev]]  # the legacy shorthand (needs usb=on)
        else:
            self.args += ["-device", f"{dev}{bus_arg}"]
        return None

    def scsi(self) -> None:
        hba = self.rng.choice(_SCSI_HBA)
        ident = self.ident("scsi")
        self.args += ["-device", f"{hba},id={ident}{self.bus_arg(self.pci_bus())}"]
        for i in range(self.rng.randint(0, 3)):
            kind = self.rng.choice(["scsi-hd", "scsi-cd", "scsi-hd"])
            addr = f",scsi-id={i + self.rng.randint(0, 2)}" if self.rng.random() < 0.5 else ""
            if kind == "scsi-hd":
                self.args += ["-device", f"scsi-hd,bus={ident}.0,drive={self.drive_ref()}{addr}"]
            else:
                self.args += ["-device", f"scsi-cd,bus={ident}.0{addr}"]
        self.scsi_buses.append(f"{ident}.0")

    def serial_ctl(self) -> None:
        ident = self.ident("vser")
        self.args += ["-device", f"virtio-serial-pci,id={ident}{self.bus_arg(self.pci_bus())}"]
        for _ in range(self.rng.randint(0, 2)):
            c = self.ident("c")
            kind = self.rng.choice(["virtconsole", "virtserialport"])
            self.args += ["-chardev", f"null,id={c}", "-device", f"{kind},chardev={c},bus={ident}.0"]
        self.serial_buses.append(f"{ident}.0")

    def ide(self) -> None:
        if self.spec.ide == "piix":
            form = self.rng.random()
            if form < 0.3:
                flag = self.rng.choice(["-hda", "-hdb", "-hdc", "-hdd"])
                idx = ["-hda", "-hdb", "-hdc", "-hdd"].index(flag)
                if ("ide", idx) in self.index_used:
                    return
                self.index_used.add(("ide", idx))
                path, fmt = self.image()
                self.args += [flag, path]
            elif form < 0.6:
                idx = self.rng.randrange(4)
                if ("ide", idx) in self.index_used:
                    return
                self.index_used.add(("ide", idx))
                path, fmt = self.image()
                media = ",media=cdrom" if self.rng.random() < 0.2 else ""
                self.args += ["-drive", f"if=ide,index={idx},file={path},format={fmt}{media}"]
            elif form < 0.8:
                if ("ide", 2) in self.index_used:
                    return
                self.index_used.add(("ide", 2))
                path, _ = self.image(1)
                self.args += ["-cdrom", path]
            else:
                path, fmt = self.image(1)
                self.args += ["-drive", f"if=floppy,file={path},format=raw" if fmt == "raw" else f"if=floppy,file={path}"]
        elif self.spec.ide == "ahci":
            form = self.rng.random()
            if form < 0.4:
                idx = self.rng.randrange(6)  # q35: index N is AHCI port N (one unit per bus)
                if ("ide", idx) in self.index_used:
                    return
                self.index_used.add(("ide", idx))
                path, fmt = self.image()
                self.args += ["-drive", f"if=ide,index={idx},file={path},format={fmt}"]
            elif form < 0.6:
                if ("ide", 0) in self.index_used:
                    return
                self.index_used.add(("ide", 0))
                path, _ = self.image()
                self.args += ["-hda", path]
            else:
                ident = self.ident("ahci")
                self.args += ["-device", f"ich9-ahci,id={ident}{self.bus_arg(self.pci_bus())}"]
                for port in self.rng.sample(range(6), self.rng.randint(0, 2)):
                    if self.rng.random() < 0.7:
                        self.args += ["-device", f"ide-hd,bus={ident}.{port},drive={self.drive_ref()}"]
                    else:
                        self.args += ["-device", f"ide-cd,bus={ident}.{port}"]

    def isa(self) -> None:
        form = self.rng.random()
        if form < 0.4:
            self.args += ["-serial", "null"]
        elif form < 0.6:
            self.args += ["-parallel", "null"]
        elif form < 0.8:
            c = self.ident("c")
            self.args += ["-chardev", f"null,id={c}", "-device", f"isa-serial,chardev={c}"]
        else:
            self.args += ["-device", self.rng.choice(["pvpanic", "sga", "ib700"])]

    def mmio(self) -> None:
        dev = self.rng.choice(_MMIO)
        if dev == "virtio-blk-device":
            self.args += ["-device", f"virtio-blk-device,drive={self.drive_ref()}"]
        elif dev == "virtio-serial-device":
            ident = self.ident("vser")
            c = self.ident("c")
            self.args += ["-chardev", f"null,id={c}", "-device", f"virtio-serial-device,id={ident}",
                          "-device", f"virtconsole,chardev={c},bus={ident}.0"]
        else:
            self.args += ["-device", dev]

    def vio(self) -> None:
        form = self.rng.random()
        if form < 0.5:
            c = self.ident("c")
            self.args += ["-chardev", f"null,id={c}", "-device", f"spapr-vty,chardev={c}"]
        elif form < 0.75:
            self.args += ["-device", "spapr-vlan"]
        else:
            ident = self.ident("vscsi")
            self.args += ["-device", f"spapr-vscsi,id={ident}"]
            self.args += ["-device", f"scsi-hd,bus={ident}.0,drive={self.drive_ref()}"]

    def hot(self) -> None:
        """One device_add: onto a bus that takes hot-plug, or a CPU."""
        choices: list[str] = []
        if self.hot_buses:
            choices.append("pci")
        if self.usb_buses:
            choices.append("usb")
        if self.scsi_buses:
            choices.append("scsi")
        if not choices:
            return
        kind = self.rng.choice(choices)
        ident = self.ident("hot")
        if kind == "pci":
            bus = self.rng.choice(self.hot_buses)
            self.hot_buses.remove(bus)  # a root port has one slot
            if bus.startswith("br"):
                self.hot_buses.append(bus)
            item = {"driver": self.rng.choice(["virtio-net-pci", "virtio-rng-pci", "e1000", "virtio-balloon-pci"]),
                    "bus": bus, "id": ident}
            if bus in self.bridge_slots:
                self.bridge_slots[bus] += 1
                item["addr"] = str(self.bridge_slots[bus])
            self.hotplug.append(item)
        elif kind == "usb":
            self.hotplug.append({"driver": self.rng.choice(["usb-kbd", "usb-tablet", "usb-mouse"]),
                                 "bus": self.rng.choice(self.usb_buses), "id": ident})
        else:
            self.hotplug.append({"driver": "scsi-cd", "bus": self.rng.choice(self.scsi_buses), "id": ident})


_ALIASES = {"q35": "q35", "pc": "pc", "aarch64-virt": "virt", "arm-virt": "virt", "pseries": "pseries"}


def _smp(rng: random.Random, spec: MachineSpec, machine: str) -> tuple[list[str], int, int]:
    """-smp as users write it; returns (args, cpus, maxcpus)."""
    form = rng.random()
    if form < 0.35:
        return [], 1, 1
    if form < 0.6:
        n = rng.randint(1, 2)
        return ["-smp", str(n)], n, n
    maxcpus = rng.choice([2, 4])
    cpus = rng.randint(1, min(2, maxcpus))
    text = f"{cpus},maxcpus={maxcpus}"
    if rng.random() < 0.5:
        if machine in ("q35", "pc") and rng.random() < 0.5:
            text += f",sockets={maxcpus // 2},cores=2,threads=1" if rng.random() < 0.5 else f",sockets=1,cores={maxcpus // 2},threads=2"
        else:
            text += f",sockets={maxcpus},cores=1,threads=1"
    return ["-smp", text], cpus, maxcpus


def generate(seed: int, machine: str | None = None, census: bool = True) -> Case:
    """The case of ``seed`` (on ``machine``, or one drawn by the seed); ``census=False`` leaves out
    the census stream (what the team's own streams draw, which the census measures against)."""
    rng = random.Random(seed)
    machine = machine or rng.choice(sorted(MACHINES))
    spec = MACHINES[machine]
    g = _Gen(rng, spec, machine)
    opts = [f"{k}={rng.choice(v)}" for k, v in sorted(spec.options.items()) if rng.random() < 0.25]
    # users often write the alias (q35, pc, virt, pseries) rather than the versioned type
    mtype = spec.type if rng.random() < 0.7 else _ALIASES.get(machine, spec.type)
    head = [spec.binary, "-M", ",".join([mtype, *opts])]
    nodefaults = rng.random() < 0.5
    if nodefaults:
        head.append("-nodefaults")
    smp, cpus, maxcpus = _smp(rng, spec, machine)
    head += smp
    if rng.random() < 0.5:
        head += ["-m", rng.choice(spec.memory)]
    if rng.random() < 0.6:
        head += ["-cpu", rng.choice(spec.cpus)]
    g.args = head
    g.usb_on = "usb=on" in opts and spec.binary.endswith("x86_64")  # virt makes no USB controller for it
    steps = ["nic", "disk_pci", "usb", "scsi", "serial_ctl", "bridge", "root_port", "plain", "display"]
    if spec.isa:
        steps.append("isa")
    if spec.ide:
        steps += ["ide", "ide"]
    if spec.mmio:
        steps += ["mmio", "mmio"]
    if spec.vio:
        steps += ["vio", "vio"]
    for _ in range(rng.randint(0, 6)):
        step = rng.choice(steps)
        if step == "plain":
            g.args += ["-device", rng.choice(_PLAIN_PCI) + g.bus_arg(g.pci_bus())]
        elif step == "display":
            g.args += ["-device", rng.choice(_DISPLAY_PCI) + g.bus_arg(g.pci_bus())]
        else:
            getattr(g, step)()
    for _ in range(rng.choice([0, 0, 1, 2])):
        g.hot()
    if spec.cpu_hotplug and maxcpus > cpus and rng.random() < 0.5:
        g.hotplug.append({"driver": "cpu", "id": g.ident("cpu")})
    # more device types (NVMe, PCIe switches, PCI serial, ...), also from a stream of their own
    xrng = random.Random(seed ^ 0xB0DE5)
    if xrng.random() < 0.4:
        for _ in range(xrng.randint(1, 2)):
            _more(xrng, machine, g)
    # firmware in flash (UEFI's code and variable store), drawn from a stream of its own so that
    # what the cases drew before it was added stays as it was
    frng = random.Random(seed ^ 0x5EEDF1A5)
    if machine in _FLASH and frng.random() < 0.15:
        _flash(frng, machine, g)
    # the device types only the census reaches (tests/qemugen_census.py), from a stream of its own
    crng = random.Random(seed ^ 0xCE2505)
    if census and crng.random() < 0.25:
        drawn, slots = census_draw(crng, machine, g.ident("z"))
        if slots:
            with_memory_slots(g.args, slots, spec.memory[0])  # (pseries takes whole 256 MiB)
        g.args += with_directories(crng, drawn, g.images)
    # PCI expander buses, from a stream of their own too (last: a device given without bus= after
    # an expander lands on the expander's root bus, which takes bridges only)
    xprng = random.Random(seed ^ 0xE8A4D3B5)
    if machine in _EXPANDERS and xprng.random() < 0.15 and not any("if=virtio" in a for a in g.args):
        _expanders(xprng, machine, g)
    return Case(f"{machine}-{seed}", machine, g.args, g.images, g.hotplug)


#: device types of the second stream, by where they go (tests/qemugen.py _more)
# not drawn, as QEMU 7.2 cannot migrate them into themselves: nvme ("non-migratable device"),
# pci-serial-2x and -4x (the source crashes), usb-net ("non-migratable device")
_MORE_PCI = ["pci-serial", "megasas-gen2", "lsi53c810",
             "virtio-net-pci-transitional", "virtio-blk-pci-non-transitional", "virtio-rng-pci-non-transitional",
             "virtio-balloon-pci-transitional", "virtio-scsi-pci-non-transitional", "virtio-serial-pci-transitional",
             "vmware-svga", "virtio-vga", "virtio-iommu-pci"]
_MORE_PCIE = ["x3130", "ioh3420"]
_MORE_X86 = ["ne2k_isa", "isa-debugcon", "isa-debug-exit", "pc-testdev", "isa-sound"]
#: display devices with the legacy VGA state (one per VM)
_LEGACY_VGA = {"VGA", "cirrus-vga", "ati-vga", "vmware-svga", "virtio-vga"}
_SOUND_PCI = ["ich9-intel-hda", "intel-hda", "AC97", "ES1370"]
_HDA_CODECS = ["hda-duplex", "hda-output", "hda-micro"]
_SOUND_ISA = ["sb16", "adlib", "cs4231a", "gus"]  # usb-audio: "non-migratable device" (7.2)
_MORE_MMIO = ["virtio-mouse-device", "virtio-tablet-device", "virtio-gpu-device"]


def _more(rng: random.Random, machine: str, g: _Gen) -> None:
    """One more device of a type the first stream does not draw, with its back-end or bus."""
    spec = g.spec
    choices = [*_MORE_PCI, "sound"]
    if machine == "riscv64-virt" or machine == "pseries":
        # "Check your machine implements a hotplug handler for the virtio-iommu-pci device"
        choices.remove("virtio-iommu-pci")
    if machine not in ("q35", "pc"):
        choices.remove("virtio-vga")  # "'virtio-vga' is not a valid device model name" (ppc64, arm, aarch64, riscv64)
    if spec.pcie:
        choices += _MORE_PCIE
    if machine == "q35":
        choices.append("i82801b11-bridge")
    if spec.isa:
        choices += _MORE_X86
    if spec.mmio:
        choices += _MORE_MMIO
    dev = rng.choice(choices)
    if dev in ("vmware-svga", "virtio-vga") and any(a.split(",")[0] in _LEGACY_VGA for a in g.args):
        return  # two legacy VGAs: QEMU 10.0 refuses them ("duplicate SaveStateEntry: id=vga"), 7.2 cannot migrate them
    bus = spec.root_bus if dev == "virtio-iommu-pci" else rng.choice(g.pci_buses)  # "must be plugged on the root bus"
    at = f",bus={bus}" if bus != spec.root_bus or rng.random() < 0.4 else ""
    if bus in g.bridge_slots:
        g.bridge_slots[bus] += 1
        at += f",addr={g.bridge_slots[bus]}"
    if dev == "pci-serial":
        c = g.ident("c")
        g.args += ["-chardev", f"null,id={c}", "-device", f"pci-serial,chardev={c}{at}"]
    elif dev in ("megasas-gen2", "lsi53c810"):
        ident = g.ident("scsi")
        g.args += ["-device", f"{dev},id={ident}{at}"]
        for _ in range(rng.randint(0, 2)):
            g.args += ["-device", f"scsi-hd,bus={ident}.0,drive={g.drive_ref()}"]
        g.scsi_buses.append(f"{ident}.0")
    elif dev == "virtio-blk-pci-non-transitional":
        g.args += ["-device", f"{dev},drive={g.drive_ref()}{at}"]
    elif dev == "virtio-net-pci-transitional":
        ident = g.ident("n")
        g.args += ["-netdev", f"user,id={ident}", "-device", f"{dev},netdev={ident}{at}"]
    elif dev == "x3130":
        # a PCIe switch: upstream port on a root port, downstream ports below it, a device on one
        g.chassis += 1
        rp, up = g.ident("rp"), g.ident("up")
        g.args += ["-device", f"pcie-root-port,id={rp},chassis={g.chassis}", "-device", f"x3130-upstream,id={up},bus={rp}"]
        for n in range(rng.randint(1, 2)):
            g.chassis += 1
            down = g.ident("dp")
            g.args += ["-device", f"xio3130-downstream,id={down},bus={up},chassis={g.chassis},slot={n}"]
            if rng.random() < 0.6:
                g.args += ["-device", f"{rng.choice(['virtio-rng-pci', 'e1000e', 'virtio-balloon-pci'])},bus={down}"]
            else:
                g.hot_buses.append(down)
    elif dev == "ioh3420":
        g.chassis += 1
        ident = g.ident("rp")
        g.args += ["-device", f"ioh3420,id={ident},chassis={g.chassis}"]
        g.pci_buses.append(ident)
    elif dev == "i82801b11-bridge":
        ident = g.ident("dmi")
        g.args += ["-device", f"i82801b11-bridge,id={ident}{at}"]
        g.args += ["-device", f"e1000,bus={ident},addr=2"]
    elif dev in ("sound", "isa-sound"):
        # an audio back-end as users give it (-audiodev none), or none at all (QEMU 7.2 makes one)
        audio = ""
        if rng.random() < 0.7:
            ident = g.ident("snd")
            g.args += ["-audiodev", f"none,id={ident}"]
            audio = f",audiodev={ident}"
        card = rng.choice(_SOUND_ISA if dev == "isa-sound" else _SOUND_PCI)
        if card.endswith("intel-hda"):
            hda = g.ident("hda")
            g.args += ["-device", f"{card},id={hda}{at}"]
            for _ in range(rng.randint(1, 2)):
                g.args += ["-device", f"{rng.choice(_HDA_CODECS)},bus={hda}.0{audio}"]
        else:
            g.args += ["-device", f"{card}{audio}{'' if dev == 'isa-sound' else at}"]
    elif dev == "ne2k_isa":
        ident = g.ident("n")
        g.args += ["-netdev", f"user,id={ident}", "-device", f"ne2k_isa,netdev={ident}"]
    elif dev == "isa-debugcon":
        c = g.ident("c")
        g.args += ["-chardev", f"null,id={c}", "-device", f"isa-debugcon,chardev={c}"]
    elif dev in _MORE_MMIO or dev in _MORE_X86:
        g.args += ["-device", dev]
    else:
        g.args += ["-device", f"{dev}{at}"]


#: flash image sizes: pc's as OVMF's code and variable stores come (sized by the image), the
#: fixed size of virt's flash (aarch64/arm 64 MiB, riscv64 32 MiB)
_FLASH = {"q35": [[0x37C000, 0x200000], [0x84000, 0x20000]], "pc": [[0x37C000, 0x200000], [0x84000, 0x20000]],
          "aarch64-virt": [[64 << 20], [64 << 20]], "arm-virt": [[64 << 20], [64 << 20]],
          "riscv64-virt": [[32 << 20], [32 << 20]]}


def _flash(rng: random.Random, machine: str, g: _Gen) -> None:
    """The code flash (read-only) and often the variable store, as -drive if=pflash or as
    libvirt writes it (-blockdev and -machine pflashN=, x86 and aarch64/arm: riscv64 virt 7.2 has
    no -machine pflashN)."""
    units = [0, 1] if rng.random() < 0.7 else [0]
    by_node = False
    for unit in units:
        size = rng.choice(_FLASH[machine][unit])
        fmt = "qcow2" if rng.random() < 0.2 else "raw"
        name = f"flash{unit}.{fmt}"
        g.images[name] = (fmt, size)
        ro = unit == 0
        if machine != "riscv64-virt" and rng.random() < 0.4:
            by_node = True
            node = g.ident("fw")
            flag = ",read-only=on" if ro else ""
            g.args += ["-blockdev", f"driver=file,filename=@IMG@{name},node-name={node}f{flag}",
                       "-blockdev", f"driver={fmt},file={node}f,node-name={node}{flag}", "-machine", f"pflash{unit}={node}"]
        else:
            g.args += ["-drive", f"if=pflash,format={fmt},file=@IMG@{name}" + (",readonly=on" if ro else "")
                       # unit given where -drive's own count would clash with -machine pflash0=
                       + (f",unit={unit}" if by_node or rng.random() < 0.5 else "")]


#: the PCI expander each machine has (QEMU 7.2: pxb "cannot reside on a PCIe bus", pxb-pcie
#: "cannot reside on a PCI bus"; riscv64 and ppc64 have neither)
_EXPANDERS = {"q35": "pxb-pcie", "pc": "pxb", "aarch64-virt": "pxb-pcie", "arm-virt": "pxb-pcie"}
# (no virtio-balloon-pci: "Only one balloon device is supported", and the other streams draw one)
_BEHIND_EXPANDER = ["e1000e", "virtio-rng-pci", "virtio-net-pci", "virtio-blk-pci",
                    "virtio-scsi-pci", "e1000", "rtl8139"]


def _expanders(rng: random.Random, machine: str, g: _Gen) -> None:
    """One or two PCI expanders on the root bus (each a new PCI root bus with its own number), with
    what sits behind them: root ports (some left for hot-plug) on a pxb-pcie, endpoints and PCI
    bridges on a pxb; sometimes an empty one without an id."""
    kind = _EXPANDERS[machine]
    root = g.spec.root_bus
    numbers = rng.sample(range(16, 248, 8), 3)
    for n in range(rng.choice([1, 1, 2])):
        ident = g.ident("px")
        # only the first may leave bus= out: a later one would land on the first's root bus
        at = "" if n == 0 and rng.random() < 0.4 else f",bus={root}"
        g.args += ["-device", f"{kind},id={ident},bus_nr={numbers[n]}{at}"]
        if kind == "pxb-pcie":
            for _ in range(rng.randint(1, 2)):
                g.chassis += 1
                rp = g.ident("xrp")
                g.args += ["-device", f"pcie-root-port,id={rp},bus={ident},chassis={g.chassis}"]
                form = rng.random()
                if form < 0.5:
                    g.args += ["-device", f"{_behind(rng, g)},bus={rp}"]
                elif form < 0.7:
                    br = g.ident("br")
                    g.args += ["-device", f"pcie-pci-bridge,id={br},bus={rp}",
                               "-device", f"{rng.choice(['e1000', 'virtio-rng-pci', 'rtl8139'])},bus={br},addr=1"]
                else:
                    g.hotplug.append({"driver": rng.choice(["virtio-net-pci", "virtio-rng-pci", "e1000e"]),
                                      "bus": rp, "id": g.ident("hot")})
        else:
            slot = 0
            for _ in range(rng.randint(1, 3)):
                slot += rng.randint(1, 3)
                if rng.random() < 0.3:
                    g.chassis += 1
                    br = g.ident("br")
                    g.args += ["-device", f"pci-bridge,id={br},bus={ident},addr={slot},chassis_nr={g.chassis}",
                               "-device", f"{_behind(rng, g)},bus={br},addr={rng.randint(1, 4)}"]
                else:
                    g.args += ["-device", f"{_behind(rng, g)},bus={ident},addr={slot}"]
    if rng.random() < 0.2:
        g.args += ["-device", f"{kind},bus={root},bus_nr={numbers[2]}"]  # empty, without an id


def _behind(rng: random.Random, g: _Gen) -> str:
    """An endpoint for a bus behind an expander, with the back-end it needs (no bus= yet)."""
    dev = rng.choice(_BEHIND_EXPANDER)
    if dev == "virtio-blk-pci":
        return f"{dev},drive={g.drive_ref()}"
    if dev == "virtio-net-pci" and rng.random() < 0.5:
        ident = g.ident("n")
        g.args += ["-netdev", f"user,id={ident}"]
        return f"{dev},netdev={ident}"
    return dev
