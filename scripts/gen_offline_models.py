#!/usr/bin/env python3
"""Write dtvm/qemu/machines/ARCH-TYPE.offline.json: the offline model of each machine, from QEMU.

For each machine: the device model QEMU builds with the defaults, with -nodefaults and with each
default-removing option (variants), and for each supported device type and bus context a device
instance exactly as QEMU built it (profiles), with its type's property defaults and types.
``dtvm qemu2dtb --offline`` composes these; tests hold its output to online qemu2dtb.
Run after a QEMU update and review the diff.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dtvm.errors import DtvmError
from dtvm.qemu.config import from_snapshot
from dtvm.qemu.live import read_argv
from dtvm.qemu.machine import find_machine
from dtvm.qemu.models import config_to_dict, device_to_dict
from dtvm.qemu.offline_flash import FIRMWARE, RECORDED_FIRMWARE, without_recorded_firmware
from dtvm.vm.buses import device_facts
from dtvm.vm.model import Device

PCI_DEVICES = ["virtio-net-pci", "virtio-rng-pci", "virtio-balloon-pci", "virtio-serial-pci", "virtio-scsi-pci",
               "e1000", "e1000e", "qemu-xhci", "pci-bridge", "virtio-blk-pci",
               # the other PCI types the random configurations use (tests/qemugen.py)
               "rtl8139", "ne2k_pci", "pcnet", "vmxnet3", "i82559er", "i6300esb", "pci-testdev", "virtio-keyboard-pci",
               "virtio-mouse-pci", "virtio-tablet-pci", "pvpanic-pci", "ich9-intel-hda", "intel-hda", "VGA",
               "bochs-display", "virtio-gpu-pci", "cirrus-vga", "secondary-vga", "ati-vga", "nec-usb-xhci", "usb-ehci",
               "ich9-usb-ehci1", "piix3-usb-uhci", "pci-ohci", "lsi53c895a", "megasas", "mptsas1068", "am53c974",
               "dc390", "ich9-ahci", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "i82550", "i82551", "i82557b",
               "i82559c", "i82801", "tulip", "sdhci-pci", "edu", "ich9-usb-uhci1", "ich9-usb-ehci2", "piix4-usb-uhci",
               "pvscsi",
               # tests/qemugen.py's second stream (_more)
               "pci-serial", "megasas-gen2", "lsi53c810", "virtio-net-pci-transitional", "virtio-blk-pci-non-transitional",
               "virtio-rng-pci-non-transitional", "virtio-balloon-pci-transitional", "virtio-scsi-pci-non-transitional",
               "virtio-serial-pci-transitional", "vmware-svga", "virtio-vga", "virtio-iommu-pci",
               # the census stream's plain PCI types (tests/qemugen_census.py: types whose census
               # round trip passes; fixtures/qemu-census/round-trip-7.2.json)
               *(CENSUS_PCI := ["i82557a", "i82557c", "i82558a", "i82558b", "i82559a", "i82559b", "i82562",
                                "ich9-usb-uhci2", "ich9-usb-uhci3", "ich9-usb-uhci4", "ich9-usb-uhci5", "ich9-usb-uhci6",
                                "pci-bridge-seat", "pci-serial-4x", "piix3-ide", "piix4-ide", "qxl", "qxl-vga", "tpci200",
                                "virtio-balloon-pci-non-transitional", "virtio-net-pci-non-transitional",
                                "virtio-rng-pci-transitional", "virtio-scsi-pci-transitional",
                                "virtio-serial-pci-non-transitional", "virtio-blk-pci-transitional",
                                "cxl-rp", "cxl-upstream", "cxl-downstream", "AMDVI-PCI",
                                "virtio-9p-pci", "virtio-9p-pci-transitional", "virtio-9p-pci-non-transitional"])]
PCIE_ONLY = ["pcie-root-port", "pcie-pci-bridge", "ioh3420", "i82801b11-bridge"]
#: the census stream draws these on the root bus of a PCI (not Express) machine too, where QEMU
#: 7.2 makes them (pc: -device i82801b11-bridge, pcie-root-port, x3130-upstream, ...)
PCIE_ON_PCI = [*PCIE_ONLY, "x3130-upstream", "xio3130-downstream"]
#: devices QEMU cannot make in some of the contexts probed (virtio-vga on qemu-system-arm,
#: virtio-iommu-pci off the root bus): recorded as refused there, and refused offline by name
MAY_BE_REFUSED = {"virtio-vga", "virtio-iommu-pci", "vmware-svga", *CENSUS_PCI, *PCIE_ON_PCI}
#: devices that change QEMU's own DT on the DT machines when plugged (virtio-iommu-pci: a
#: virtio,pci-iommu node and the PCIe host's iommu-map; offline_dt.plug_virtio_iommu writes them),
#: checked against QEMU for each DT feature of up to this many options (dt_smp ``virtio-iommu``: each)
DT_CHANGING_DEVICES = {"virtio-iommu-pci"}
VIRTIO_IOMMU_MAX_JOINT = 5  # every feature (joints of up to four and an option checked beside one)
#: options of OPTION_REQUIRES that QEMU takes without their partner where firmware is loaded
#: (ras=on: "Assertion `vms->acpi_dev' failed" without firmware and acpi=off; with firmware, an
#: AArch64 CPU and ACPI, QEMU makes the acpi-ged it needs)
WAIVED_BESIDE_FIRMWARE = ["ras=on"]
USB_DEVICES = ["usb-kbd", "usb-tablet", "usb-mouse", "usb-hub", "usb-ccid", "usb-bot", "usb-host"]
#: devices that take a host device (trust.json host-selections): probed with the selection no
#: host device matches, which is taken out of the profile (the user's own is the overlay's)
HOST_SELECTED = {"usb-host": "hostbus=256"}
VSERIAL_DEVICES = ["virtconsole", "virtserialport"]
SCSI_DEVICES = ["scsi-cd", "scsi-hd"]
MMIO_DEVICES = ["virtio-net-device", "virtio-rng-device", "virtio-balloon-device", "virtio-blk-device",
                "virtio-serial-device", "virtio-keyboard-device", "virtio-scsi-device", "virtio-mouse-device",
                "virtio-tablet-device", "virtio-gpu-device", "virtio-9p-device"]
#: the 9p devices (census stream), probed on an fsdev of QEMU's in-memory synth driver (no host
#: directory); the probe's fsdev and mount_tag are taken out of the profile (the user gives theirs)
FSDEV_DEVICES = {"virtio-9p-pci", "virtio-9p-pci-transitional", "virtio-9p-pci-non-transitional", "virtio-9p-device"}
FSDEV_SETUP = (["-fsdev", "synth,id=pfs"], "fsdev=pfs,mount_tag=probe")
#: properties a probe must give, dropped from the profile (the user gives their own)
REQUIRED = {"pci-bridge": "chassis_nr=9", "pci-bridge-seat": "chassis_nr=9", "xio3130-downstream": "chassis=9", "pxb": "bus_nr=9", "pxb-pcie": "bus_nr=9",
            # (QEMU draws a random GUID without it: offline takes vmgenid only with the user's)
            "vmgenid": "guid=c6e408c0-ade9-4d62-951e-e5cc95573a80"}
#: the PCI expander of each machine type with device profiles (QEMU 7.2: pxb "cannot reside on a
#: PCIe bus", pxb-pcie "cannot reside on a PCI bus"; riscv64 virt has neither): recorded on the
#: root bus ("PXB devices can be attached only to root bus"), its new root bus folded into it
EXPANDERS = {"pc-i440fx": "pxb", "pc-q35": "pxb-pcie", "virt": "pxb-pcie"}
#: the CXL expander the census stream draws on arm/aarch64 virt (QEMU 7.2 makes it there without
#: cxl=on: its pxb-cxl-host folded into it as pxb-pcie's pxb-host is), recorded like EXPANDERS'
CXL_EXPANDERS = {"virt": "pxb-cxl"}
#: a PCIe switch: its upstream port on a root port, its downstream ports on the upstream port's
#: bus (both a PCIe port's link to offline: the "pci-port" context)
SWITCH = [(["-device", "pcie-root-port,id=ctx,chassis=1"], "x3130-upstream"),
          (["-device", "pcie-root-port,id=rp0,chassis=1", "-device", "x3130-upstream,id=ctx,bus=rp0"], "xio3130-downstream")]
#: devices that need a drive: probed with a null-co block node (1 GiB, zeros), whose geometry
#: the offline model recomputes for the user's image
DRIVE_DEVICES = {"virtio-blk-pci", "virtio-blk-device", "scsi-hd", "ide-hd", "virtio-blk-pci-non-transitional",
                 "virtio-blk-pci-transitional"}

#: (type, binary, PCI Express, virtio-mmio, device profiles): pseries gets none, because a device
#: added there changes QEMU's own DT (PCI and VIO nodes), which the offline model cannot write
MACHINES = [("pc-q35-7.2", "qemu-system-x86_64", True, False, True), ("pc-i440fx-7.2", "qemu-system-x86_64", False, False, True),
            ("virt-7.2", "qemu-system-aarch64", True, True, True), ("virt-7.2", "qemu-system-arm", True, True, True),
            ("virt", "qemu-system-riscv64", True, True, True), ("pseries-7.2", "qemu-system-ppc64", False, False, False)]
#: -nic model= takes every model QEMU lists (``-nic model=help``), each probed; one QEMU cannot
#: make without more (pvrdma's back-end) is left out and refused offline by name
#: USB devices that need a back-end (probed with a null-co node or a null chardev), on every
#: machine with device profiles
USB_BACKED = {"usb-storage": ["-blockdev", "driver=null-co,node-name=pd"], "usb-serial": ["-chardev", "null,id=pc"],
              "usb-redir": ["-chardev", "null,id=pc"]}
USB_SPEC = {"usb-storage": "drive=pd", "usb-serial": "chardev=pc", "usb-redir": "chardev=pc"}
#: smart cards, on a usb-ccid's ccid bus (its one slot), probed with a null chardev
CCID_CARDS = {"ccid-card-passthru": (["-chardev", "null,id=pc"], "chardev=pc")}
#: PCI devices linked to objects of their own (online: dtvm/qemu/qom_links.py), probed with one
#: such object; the link's described value is the probe's, taken out of the profile (offline
#: words the user's own: dtvm/qemu/offline_links.py).  acpi-erst: no such type on riscv64 7.2
LINKED_PCI = {**{card: (["-object", "can-bus,id=pcb"], "canbus=pcb" if card == "kvaser_pci" else "canbus0=pcb,canbus1=pcb")
                 for card in ("kvaser_pci", "pcm3680_pci", "mioe3680_pci", "ctucan_pci")},
              "acpi-erst": (["-object", "memory-backend-ram,id=pmem,size=64M"], "memdev=pmem"),
              # on a machine with hot-plug memory (riscv64 7.2 has none: refused, left out)
              "virtio-mem-pci": (["-m", "128M,slots=2,maxmem=1G", "-object", "memory-backend-ram,id=pmem,size=64M"],
                                 "memdev=pmem"),
              # persistent memory (x86 only in 7.2: refused elsewhere, left out)
              "virtio-pmem-pci": (["-m", "128M,slots=2,maxmem=1G", "-object", "memory-backend-ram,id=pmem,size=64M"],
                                  "memdev=pmem")}
#: memory devices on no bus (x86), probed on a machine with hot-plug slots and a RAM back-end
#: of their own (taken out of the profile, as LINKED_PCI's); QEMU plugs several, one a slot
LINKED_BUSLESS = {"pc-dimm": (["-m", "128M,slots=2,maxmem=1G", "-object", "memory-backend-ram,id=pmem,size=64M"],
                              "memdev=pmem"),
                  # beside the machine option QEMU makes it only with (merged into the probe's -M)
                  "nvdimm": (["-M", "nvdimm=on", "-m", "128M,slots=2,maxmem=1G",
                              "-object", "memory-backend-ram,id=pmem,size=64M"], "memdev=pmem")}
#: virtio-mem on a virtio-mmio transport (arm/aarch64 virt), probed as virtio-mem-pci is
LINKED_MMIO = {"virtio-mem": LINKED_PCI["virtio-mem-pci"]}
CCID_SETUP = ["-device", "qemu-xhci,id=cx", "-device", "usb-ccid,id=ctx,bus=cx.0"]
#: devices on no bus (``info qtree`` never shows them; the online reader takes them from QOM):
#: recorded where the machine's QEMU has them (the clock models on the Arm binaries, vmgenid on
#: x86), refused elsewhere by name
BUSLESS = ["vmcoreinfo", "vmgenid", "nvme-subsys", "ramfb", "ipmi-bmc-sim", "ipmi-bmc-extern", "npcm7xx-clock-sel", "npcm7xx-clock-pll", "npcm7xx-clock-divider",
           "bcm2835-cprman-clock-mux", "bcm2835-cprman-dsi0hsck-mux", "bcm2835-cprman-pll", "bcm2835-cprman-pll-channel"]
#: x86 only: system-bus devices the machine's plug handler maps at their own base (devices.yaml
#: self-placed: intel-iommu, which q35 alone takes), recorded in the System context at that address
X86_SELF_PLACED = ["intel-iommu"]
#: IDE devices on an AHCI the user adds (the machines without IDE of their own)
AHCI_SETUP = ["-device", "ich9-ahci,id=ctx"]
#: x86 only: an empty floppy drive (the isa-fdc q35 makes for it, the floppy device of pc's):
#: what -drive if=floppy adds, its image's drive type computed offline
X86_FLOPPY = ["-drive if=floppy"]
#: x86 only: ISA devices at the I/O base of their type (pvpanic, ib700) or at none (sga)
X86_ISA_DEVICES = ["pvpanic", "ib700", "sga", "isa-debug-exit", "pc-testdev", "ne2k_isa", "isa-debugcon",
                   # the census stream's (tests/qemugen_census.py)
                   "isa-fdc", "isa-ide", "isa-vga", "hyperv-testdev", "mc146818rtc",
                   # a second i8042 (its PS/2 keyboard and mouse folded into it, as online folds them),
                   # and a vmmouse linked to one given with -device (ISA_BACKED)
                   "i8042", "vmmouse",
                   # its default osk read back runs past its 64 bytes: recorded cut as the
                   # description cuts it (devices.yaml fixed-length-strings)
                   "isa-applesmc",
                   # IPMI interfaces, each linked to a BMC of the probe's (IPMI_BACKED)
                   "isa-ipmi-kcs", "isa-ipmi-bt"]
#: x86 only: the census stream's devices on the machine's I2C bus (its SMBus), at their type's address
X86_I2C_DEVICES = ["i2c-ddc", "smbus-ipmi"]
X86_PCI_DEVICES = ["pci-ipmi-kcs", "pci-ipmi-bt"]  # x86 only (QEMU's PCI IPMI interfaces), PCI contexts
#: IPMI: an external BMC probed with a null chardev, each interface with a BMC of the probe's for
#: its bmc link (device-links: taken out of the profile, as a vmmouse's i8042)
IPMI_BACKED = {"ipmi-bmc-extern": (["-chardev", "null,id=pc"], "chardev=pc"),
               **{d: (["-device", "ipmi-bmc-sim,id=pb"], "bmc=pb")
                  for d in ("isa-ipmi-kcs", "isa-ipmi-bt", "smbus-ipmi", "pci-ipmi-kcs", "pci-ipmi-bt")}}
#: x86 only: a floppy drive on the isa-fdc the user adds
FDC_SETUP = ["-device", "isa-fdc,id=ctx"]
#: ISA devices that need a back-end to be made (probed with a null chardev)
ISA_BACKED = {"isa-debugcon": (["-chardev", "null,id=pc"], "chardev=pc"),
              # its i8042 link (devices.yaml device-links): the probe's, taken out of the profile
              # (offline words the user's own: offline_made.py)
              "vmmouse": (["-device", "i8042,id=pk"], "i8042=pk")}
#: sound devices (tests/qemugen.py _more) that take an audio back-end, probed with one (-audiodev
#: none: QEMU reports only its id, the user's offline): PCI cards on every machine with device
#: profiles, HDA codecs on an HDA controller's bus, and on x86 the ISA cards at their default
#: I/O ports, IRQs and DMA (the HDA controllers take no back-end: PCI_DEVICES)
SOUND_PCI = ["AC97", "ES1370"]
HDA_CODECS = ["hda-duplex", "hda-output", "hda-micro"]
X86_ISA_SOUND = ["sb16", "adlib", "cs4231a", "gus"]
AUDIO_BACKED = (["-audiodev", "none,id=pa"], "audiodev=pa")
_X86_OPTIONS = [*(f"{o}={v}" for o in ("i8042", "hpet", "graphics", "default-bus-bypass-iommu", "sata", "smbus", "nvdimm")
                  for v in ("on", "off")),
                *(f"{o}={v}" for o in ("vmport", "pit", "pic", "smm", "acpi") for v in ("on", "off", "auto")),
                # what the NFIT tells the guest flushes its persistent memory (with nvdimm=on)
                "nvdimm-persistence=mem-ctrl", "nvdimm-persistence=cpu"]
#: machine options recorded one at a time under -nodefaults (the machine-made devices and DT they
#: change): what dtb2qemu --offline probes (always -nodefaults) and qemu2dtb --offline accept
OPTION_VARIANTS: dict[str, list[str]] = {
    "virt-7.2": ["gic-version=3", "gic-version=max", "highmem=off", "its=off", "iommu=smmuv3", "secure=on",
                 "virtualization=on", "ras=on", "acpi=off", "acpi=on", "default-bus-bypass-iommu=on",
                 # at their defaults (the same DT but for the seeds: composed with the others)
                 "secure=off", "virtualization=off", "ras=off", "mte=off", "acpi=auto", "dtb-randomness=off",
                 # beside the partner QEMU needs (OPTION_REQUIRES)
                 "mte=on",
                 "graphics=off", "default-bus-bypass-iommu=off",
                 # CPU models (on DT machines a CPU model is a DT of its own): "-cpu MODEL"
                 "-cpu cortex-a57", "-cpu cortex-a53", "-cpu cortex-a72", "-cpu max", "-cpu cortex-a15", "-cpu cortex-a7",
                 # firmware in pflash0 (or -bios): QEMU builds other hardware with it (offline_flash.py)
                 FIRMWARE],
    "virt": ["aia=aplic", "aia=aplic-imsic", "acpi=off", "aia=none", "aclint=off", "aclint=on", "-cpu rv64",
             "-cpu sifive-u54"],
    "pseries-7.2": ["-cpu power9", "-cpu power8", "-cpu power10"],
    # x86: composed as deltas against -nodefaults (dtvm/qemu/models.py), several on one command line
    "pc-q35-7.2": _X86_OPTIONS + X86_FLOPPY,
    "pc-i440fx-7.2": _X86_OPTIONS + X86_FLOPPY,
}


#: options QEMU takes only beside another (measured, 7.2): mte=on needs a CPU with MTE ("MTE
#: requested, but not supported by the guest CPU" otherwise), ras=on without firmware aborts QEMU
#: (virt_acpi_setup: "Assertion `vms->acpi_dev' failed") unless ACPI is off.  Such an option is
#: recorded with its partner, and offline takes it only where the command line gives the partner.
OPTION_REQUIRES: dict[str, dict[str, str]] = {"virt-7.2": {"mte=on": "-cpu max", "ras=on": "acpi=off"}}


def _option_requires(mtype: str) -> dict[str, str]:
    import re

    return OPTION_REQUIRES.get(mtype) or OPTION_REQUIRES.get(re.sub(r"-\d+\.\d+$", "-7.2", mtype), {})


def _recorded(variant: dict[str, Any], opts: list[str]) -> dict[str, Any]:
    """A recording as the model keeps it: made with firmware (RECORDED_FIRMWARE), without its
    null drive (offline attaches the user's)."""
    return without_recorded_firmware(variant) if RECORDED_FIRMWARE[-1] in opts else variant


def _option_argv(option: str, requires: dict[str, str] | None = None) -> list[str]:
    """An option variant's arguments: "NAME=VALUE" is a machine option, "-cpu MODEL" a CPU model;
    with the partner QEMU needs beside it (``requires``)."""
    own = list(RECORDED_FIRMWARE) if option == FIRMWARE else \
        option.split(" ", 1) if option.startswith("-") else ["-machine", option]
    partner = (requires or {}).get(option)
    return own + (_option_argv(partner) if partner else [])


REMOVERS = {"net": ["-net", "none"], "parallel": ["-parallel", "none"], "serial": ["-serial", "none"], "vga": ["-vga", "none"]}


def _variants() -> dict[str, list[str]]:
    """Every combination of the default-removing options (their effects interact: -vga none moves
    q35's default NIC), with and without -usb, keyed by the tags joined with '+'."""
    out: dict[str, list[str]] = {}
    names = sorted(REMOVERS)
    for usb in (False, True):
        tail = ["-usb"] if usb else []
        out["+".join(["nodefaults"] + (["usb"] if usb else []))] = ["-nodefaults", *tail]
        for mask in range(1 << len(names)):
            chosen = [n for i, n in enumerate(names) if mask >> i & 1] + (["usb"] if usb else [])
            out["+".join(sorted(chosen)) or "defaults"] = [a for n in chosen if n != "usb" for a in REMOVERS[n]] + tail
    return out


VARIANTS = _variants()
KIND = {"PCI": "pci", "PCIE": "pci", "usb-bus": "usb", "SCSI": "scsi", "virtio-serial-bus": "virtio-serial",
        "virtio-mmio-bus": "virtio-mmio", "IDE": "ide", "ISA": "isa", "HDA": "hda", "ccid-bus": "ccid", "System": "busless",
        "i2c-bus": "i2c", "floppy-bus": "floppy"}


def _find(dev: Device, qid: str) -> Device | None:
    if dev.qdev_id == qid:
        return dev
    for bus in dev.buses:
        for child in bus.devices:
            found = _find(child, qid)
            if found is not None:
                return found
    return None


def _linked(device: str) -> tuple[list[str], str] | None:
    """The object setup and link options a linked type is probed with, None for the others."""
    return LINKED_PCI.get(device) or LINKED_BUSLESS.get(device) or LINKED_MMIO.get(device)


def probe(binary: str, mtype: str, setup: list[str], device: str, context: str) -> tuple[str, dict[str, Any]]:
    if context == "nic":
        return _probe_nic(binary, mtype, device)
    extra = REQUIRED.get(device)
    spec = f"{device},id=probe" + (f",{extra}" if extra else "")
    if device in USB_BACKED:
        setup = [*setup, *USB_BACKED[device]]
        spec += "," + USB_SPEC[device]
    if device in ISA_BACKED:
        setup = [*setup, *ISA_BACKED[device][0]]
        spec += "," + ISA_BACKED[device][1]
    if device in IPMI_BACKED:
        setup = [*setup, *IPMI_BACKED[device][0]]
        spec += "," + IPMI_BACKED[device][1]
    if device in CCID_CARDS:
        setup = [*setup, *CCID_CARDS[device][0]]
        spec += "," + CCID_CARDS[device][1]
    if device in SOUND_PCI or device in HDA_CODECS or device in X86_ISA_SOUND:
        setup = [*setup, *AUDIO_BACKED[0]]
        spec += "," + AUDIO_BACKED[1]
    linked = _linked(device)
    if linked is not None:
        setup = [*setup, *linked[0]]
        spec += "," + linked[1]
    if device in DRIVE_DEVICES:
        setup = [*setup, "-blockdev", "driver=null-co,node-name=pd"]
        spec += ",drive=pd"
    if device in FSDEV_DEVICES:
        setup = [*setup, *FSDEV_SETUP[0]]
        spec += "," + FSDEV_SETUP[1]
    if device in HOST_SELECTED:
        spec += "," + HOST_SELECTED[device]
    if context not in ("pci-root", "virtio-mmio-bus", "ISA", "System", "i2c-bus"):
        spec += ",bus=" + {"pci-port": "ctx", "pci-bridge": "ctx", "usb-bus": "ctx.0", "ccid-bus": "ctx.0",
                           "floppy-bus": "ctx.0",
                           "virtio-serial-bus": "ctx.0", "SCSI": "ctx.0", "HDA": "ctx.0",
                           "IDE": "ctx.0" if AHCI_SETUP[1] in setup else "ide.0"}[context]
    if context == "pci-bridge":
        spec += ",addr=1"  # slot 0 of a bridge with an SHPC is refused on virt
    try:
        snapshot = read_argv([binary, "-M", mtype, "-nodefaults", *setup, "-device", spec])
    except DtvmError:
        if device in X86_ISA_DEVICES or device in MAY_BE_REFUSED or _linked(device) is not None or context == "System":  # QEMU 10.0 has no sga: left out, refused offline by name
            return f"{device}@{context}-refused", {}
        raise
    config = from_snapshot(snapshot)
    found = None
    for dev in config.root.devices:
        found = _find(dev, "probe")
        if found is not None:
            break
    if found is None or found.parent is None:
        raise SystemExit(f"{mtype}: probe {device} on {context}: not found")
    profile = _profile(snapshot, found, extra)
    for name, size in ((device_facts().get("fixed-length-strings") or {}).get(device) or {}).items():
        if name in profile["device"]["props"]:  # the tail after the array is the memory behind it
            profile["device"]["props"][name] = profile["device"]["props"][name][:size]
    for name in (device_facts().get("device-links") or {}).get(device) or {}:
        profile["device"]["props"].pop(name, None)  # the probe's target (offline_made.py)
    for pair in (_linked(device) or ([], ""))[1].split(","):
        profile["device"]["props"].pop(pair.split("=")[0], None)  # the probe's object (offline_links.py)
    if context == "System":
        profile["several"] = device in LINKED_BUSLESS or _takes_several(binary, mtype, setup, device)
    return f"{device}@{context}", profile


def _takes_several(binary: str, mtype: str, setup: list[str], device: str) -> bool:
    """Whether QEMU makes a second device of a type on no bus (vmcoreinfo, vmgenid: "at most one
    ... is permitted"; nvme-subsys and the clock models: as many as given)."""
    first = second = device
    if device in IPMI_BACKED:  # an external BMC: each with a chardev of its own (one takes a chardev)
        setup = [*setup, "-chardev", "null,id=pc2"]
        first, second = f"{device},chardev=pc", f"{device},chardev=pc2"
    try:
        read_argv([binary, "-M", mtype, "-nodefaults", *setup, "-device", first, "-device", second])
    except DtvmError:
        return False
    return True


def _nic_models(binary: str, mtype: str) -> list[str]:
    """The NIC models QEMU's -nic takes on this machine, as it lists them."""
    import subprocess

    out = subprocess.run([binary, "-M", mtype, "-nic", "model=help"], capture_output=True, text=True, timeout=60).stdout
    return [line.split()[0] for line in out.splitlines()[1:] if line.strip()]  # 10.0: "virtio-net-pci (aka virtio)"


def _nic_makes_device(binary: str, mtype: str) -> bool:
    """Whether -nic makes a NIC on this machine: riscv64 virt (7.2) keeps the netdev and warns
    that the NIC "was not created", for any model."""
    snapshot = read_argv([binary, "-M", mtype, "-nodefaults", "-nic", "user,model=virtio-net-pci"])
    return any(d.backends.get("netdev") for d in from_snapshot(snapshot).devices())


def _probe_nic(binary: str, mtype: str, device: str, setup: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    """A NIC made by -nic (machine init, pci_nic_init): QEMU sets it up unlike -device."""
    try:
        snapshot = read_argv([binary, "-M", mtype, "-nodefaults", *(setup or []), "-nic", f"user,model={device}"])
    except DtvmError:
        if device not in ("virtio-net-pci", "e1000", "e1000e"):
            return f"{device}@nic-refused", {}
        raise
    config = from_snapshot(snapshot)
    found = next((d for d in config.devices() if d.driver == device), None)
    if found is None or found.parent is None:
        raise SystemExit(f"{mtype}: -nic model={device}: not found")
    return f"{device}@nic", _profile(snapshot, found, None)


def _profile(snapshot: Any, found: Device, extra: str | None) -> dict[str, Any]:
    assert found.parent is not None
    data = device_to_dict(found)
    data["id"] = None
    if extra:
        data["props"].pop(extra.split("=")[0], None)
    for d in [data] + [c for b in data["buses"] for c in b["devices"]]:
        d["backends"].pop("drive", None)
        d["backends"].pop("chardev", None)  # the probe's own (usb-serial): the user gives theirs
        d["backends"].pop("audiodev", None)  # the probe's -audiodev none: the user gives theirs
        d["backends"].pop("fsdev", None)  # the probe's synth fsdev: the user gives theirs
        if d["driver"] in HOST_SELECTED:
            d["backends"].pop(HOST_SELECTED[d["driver"]].split("=")[0], None)  # the probe's: the user's is theirs
        if d["driver"] == "virtio-9p-device":
            d["props"].pop("mount_tag", None)  # the probe's (QEMU requires one: the user gives theirs)
    drivers = {found.driver} | {c.driver for b in found.buses for c in b.devices}
    types = {d: {e["name"]: e.get("type", "") for e in snapshot.type_props.get(d) or []} for d in drivers}
    defaults = {d: {e["name"]: ("on" if e["default-value"] is True else "off" if e["default-value"] is False else str(e["default-value"]))
                    for e in snapshot.type_props.get(d) or [] if "default-value" in e} for d in drivers}
    return {"kind": KIND[found.parent.type], "device": data, "types": types,
            "defaults": defaults, "props-of": {d: sorted(types[d]) for d in drivers}}


#: machine options that leave PCI without an MSI controller (virt: GICv3 without its ITS; no
#: GICv2m either), under which QEMU realizes PCI devices otherwise (virtio's vectors 0, megasas
#: without msi/msix; a pcie-root-port not at all: "MSI-X is not supported by interrupt controller")
NO_MSI: dict[str, list[str]] = {"virt-7.2": ["-machine", "gic-version=3,its=off"]}


def no_msi_profiles(binary: str, mtype: str, jobs: list[tuple[list[str], str, str]], profiles: dict[str, Any],
                    old: dict[str, Any] | None) -> dict[str, Any] | None:
    """``no-msi`` of a model: each PCI profile (root bus, behind a pcie-pci-bridge, -nic) probed
    again without an MSI controller: ``same`` where QEMU builds the same, ``profiles`` where it
    builds another, ``refused`` where QEMU refuses it; offline takes these where the options of
    a command line take MSI away (dtvm/qemu/offline_dt.py msi_lost)."""
    import re

    setup = NO_MSI.get(mtype) or NO_MSI.get(re.sub(r"-\d+\.\d+$", "-7.2", mtype))
    if not setup:
        return None
    out: dict[str, Any] = {"options": setup, "same": [], "profiles": {}, "refused": []}
    kept = {k: ("same", None) for k in (old or {}).get("same", [])}
    kept.update({k: ("refused", None) for k in (old or {}).get("refused", [])})
    kept.update({k: ("profiles", v) for k, v in ((old or {}).get("profiles") or {}).items()})
    todo = [j for j in jobs if j[2] in ("pci-root", "pci-bridge", "nic") and f"{j[1]}@{j[2]}" in profiles
            and f"{j[1]}@{j[2]}" not in kept]

    def one(job: tuple[list[str], str, str]) -> tuple[str, dict[str, Any] | None]:
        _, device, context = job
        key = f"{device}@{context}"
        try:
            if context == "nic":
                got, profile = _probe_nic(binary, mtype, device, setup)
            else:
                bridge = ["-device", "pcie-pci-bridge,id=ctx"] if context == "pci-bridge" else []
                got, profile = probe(binary, mtype, [*setup, *bridge], device, context)
        except (DtvmError, SystemExit):
            return key, None
        return key, (None if got.endswith("-refused") else profile)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for key, profile in pool.map(one, todo):
            kept[key] = ("refused", None) if profile is None else ("same", None) if profile == profiles[key] \
                else ("profiles", profile)
    for key, (how, profile) in sorted(kept.items()):
        if how == "profiles":
            out["profiles"][key] = profile
        else:
            out[how].append(key)
    return out


def _default_nic(variant: dict[str, Any]) -> str | None:
    """The NIC model -nic makes without model=: the driver of the default NIC (it has a mac)."""
    stack = list(variant["root"]["devices"])
    while stack:
        dev = stack.pop(0)
        macs = [dev] + [c for b in dev["buses"] for c in b["devices"]]
        if any("mac" in d["props"] for d in macs) and dev["address"][0] == "pci":
            return str(dev["driver"])
        for b in dev["buses"]:
            stack.extend(b["devices"])
    return None


def cpu_types(binary: str, mtype: str) -> dict[str, str]:
    """-cpu NAME -> the CPU model QEMU reports for it on this machine type (aliases resolve per
    machine type: "Broadwell" is some "Broadwell-vN")."""
    import subprocess

    text = subprocess.run([binary, "-cpu", "help"], capture_output=True, text=True, check=True).stdout
    # 7.2 lists "x86 NAME ..."; 10.0 lists "  NAME ..." under "Available CPUs:" (CPUID flags follow
    # a blank line in both)
    names = [line.split()[1] for line in text.splitlines() if line.startswith("x86 ")]
    if not names and text.startswith("Available CPUs:"):
        names = [line.split()[0] for line in text.split("\n\n")[0].splitlines()[1:] if line.startswith("  ")]

    def one(name: str) -> tuple[str, str | None]:
        try:
            return name, from_snapshot(read_argv([binary, "-M", mtype, "-nodefaults", "-cpu", name])).machine.cpu_type
        except DtvmError:
            return name, None  # not usable here (e.g. host needs KVM)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return {n: t for n, t in pool.map(one, names) if t}


def model(mtype: str, binary: str, pcie: bool, mmio: bool, devices: bool, old: dict[str, Any] | None = None,
          max_joint: int = 4) -> dict[str, Any]:
    """The offline model of one machine; ``old`` (--merge): the file's model, whose variants,
    option variants, profiles and dt-smp recordings are kept, so only what it lacks is asked of
    QEMU (the recorder's jobs for the rest are the same QEMU runs with the same answers)."""
    def variant(opts: list[str]) -> dict[str, Any] | None:
        try:
            return _recorded(config_to_dict(from_snapshot(read_argv([binary, "-M", mtype, *opts]))), opts)
        except DtvmError:
            return None  # QEMU refuses the combination on this machine: not in the model

    old = old or {}
    kept_options = old.get("option-variants") or {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        made = dict(old["variants"]) if old.get("variants") else \
            dict(zip(VARIANTS, pool.map(variant, VARIANTS.values()), strict=True))
        options = [o for o in _option_variants(mtype) if o not in kept_options]
        requires = _option_requires(mtype)
        by_option = {o: kept_options[o] for o in _option_variants(mtype) if o in kept_options}
        by_option.update(zip(options, pool.map(lambda o: variant(["-nodefaults", *_option_argv(o, requires)]), options),
                             strict=True))
        by_option = {o: by_option[o] for o in _option_variants(mtype)}
    variants = {name: v for name, v in made.items() if v is not None}
    option_variants = {name: v for name, v in by_option.items() if v is not None}
    nics = {name: _default_nic(v) for name, v in variants.items() if name == "defaults"}
    port = ["-device", "pcie-root-port,id=ctx,chassis=9"]
    bridge = (["-device", "pcie-root-port,id=rp9,chassis=9", "-device", "pcie-pci-bridge,id=ctx,bus=rp9"] if pcie
              else ["-device", "pci-bridge,id=ctx,chassis_nr=8"])
    jobs: list[tuple[list[str], str, str]] = []
    riscv = os.path.basename(binary).endswith("riscv64")  # "a hotplug handler for the virtio-iommu-pci device"
    dt_changing = DT_CHANGING_DEVICES if _dt_machine(mtype, binary) and riscv else set()
    for dev in [d for d in PCI_DEVICES + (PCIE_ONLY if pcie else []) + list(LINKED_PCI) if d not in dt_changing]:
        jobs.append(([], dev, "pci-root"))
        if pcie and dev != "pcie-root-port":
            jobs.append((port, dev, "pci-port"))
        if dev not in PCIE_ONLY:
            jobs.append((bridge, dev, "pci-bridge"))
    if pcie:
        jobs += [(setup, dev, "pci-port") for setup, dev in SWITCH]
    expander = EXPANDERS.get(mtype.rsplit("-", 1)[0]) if not binary.endswith("riscv64") else None
    if expander is not None:
        jobs.append(([], expander, "pci-root"))
    cxl_expander = CXL_EXPANDERS.get(mtype.rsplit("-", 1)[0]) if not binary.endswith("riscv64") else None
    if cxl_expander is not None:
        jobs.append(([], cxl_expander, "pci-root"))
    jobs += [(["-device", "qemu-xhci,id=ctx"], d, "usb-bus") for d in USB_DEVICES]
    jobs += [(["-device", "virtio-serial-pci,id=ctx"], d, "virtio-serial-bus") for d in VSERIAL_DEVICES]
    jobs += [(["-device", "virtio-scsi-pci,id=ctx"], d, "SCSI") for d in SCSI_DEVICES]
    if mtype.startswith("pc-"):
        jobs += [([], "ide-hd", "IDE"), ([], "ide-cd", "IDE")]
    else:
        jobs += [(AHCI_SETUP, "ide-hd", "IDE"), (AHCI_SETUP, "ide-cd", "IDE")]
    if not pcie:
        jobs += [([], d, "pci-root") for d in PCIE_ON_PCI]
    jobs += [(CCID_SETUP, d, "ccid-bus") for d in CCID_CARDS]
    jobs += [([], d, "System") for d in BUSLESS]
    if mtype.startswith("pc-"):
        jobs += [([], d, "System") for d in LINKED_BUSLESS]
        jobs += [([], d, "System") for d in X86_SELF_PLACED]
    if mmio:
        jobs += [([], d, "virtio-mmio-bus") for d in MMIO_DEVICES]
        jobs += [([], d, "virtio-mmio-bus") for d in LINKED_MMIO if not riscv]  # riscv64 7.2: no device memory
    nic_makes_device = _nic_makes_device(binary, mtype) if devices else True
    if nic_makes_device:  # riscv64 virt 7.2 makes no NICs from -nic (the netdev alone)
        jobs += [([], d, "nic") for d in ("virtio-net-pci", "e1000", "e1000e")]
        jobs += [([], d, "nic") for d in _nic_models(binary, mtype) if d not in ("virtio-net-pci", "e1000", "e1000e")]
    jobs += [(["-device", "qemu-xhci,id=ctx"], d, "usb-bus") for d in USB_BACKED]
    if mtype.startswith("pc-"):
        for dev in X86_PCI_DEVICES:
            jobs += [([], dev, "pci-root"), (bridge, dev, "pci-bridge"), *([(port, dev, "pci-port")] if pcie else [])]
        jobs += [([], d, "ISA") for d in X86_ISA_DEVICES]
        jobs += [([], d, "i2c-bus") for d in X86_I2C_DEVICES]
        jobs += [(FDC_SETUP, "floppy", "floppy-bus")]
    jobs += _sound_jobs(mtype, pcie, port, bridge)
    if not devices:
        jobs = []
    wanted = {f"{j[1]}@{j[2]}" for j in jobs}
    kept = {k: v for k, v in (old.get("profiles") or {}).items() if k in wanted  # a type no longer probed goes
            and (not k.endswith("@System") or "several" in v)  # (recorded before "several" was)
            and REQUIRED.get(k.split("@", 1)[0], "=").split("=")[0] not in v["device"]["props"]}  # (or with a drawn value)
    all_jobs = jobs
    jobs = [j for j in jobs if f"{j[1]}@{j[2]}" not in kept]
    with ThreadPoolExecutor(max_workers=2) as pool:
        profiles = {k: v for k, v in pool.map(lambda j: probe(binary, mtype, j[0], j[1], j[2]), jobs)
                    if not k.endswith("-refused")}
    profiles.update(kept)
    no_msi = no_msi_profiles(binary, mtype, all_jobs, profiles, old.get("no-msi")) \
        if _dt_machine(mtype, binary) and devices else None
    first = variants["defaults"]
    extra = {"dt-smp": dt_smp(mtype, binary, variants["nodefaults"], option_variants, requires, old.get("dt-smp"),
                              max_joint)} \
        if _dt_machine(mtype, binary) else {}
    if not nic_makes_device:
        extra["nic-makes-device"] = False
    if no_msi is not None:
        extra["no-msi"] = no_msi
    requires = {k: v for k, v in _option_requires(mtype).items() if k in option_variants}
    if requires:
        extra["option-requires"] = requires
    return {**extra, "format": 1, "type": mtype, "binary": os.path.basename(binary), "default-nic": nics.get("defaults"),
            "cpu-types": cpu_types(binary, mtype) if binary.endswith("x86_64") else {},
            "qemu": read_argv([binary, "-M", mtype, "-nodefaults"]).version.get("package", ""),
            "machine-options": first["machine"]["options"], "accepts": {}, "first-mac": 0x525400123456,
            "variants": variants, "option-variants": option_variants, "profiles": dict(sorted(profiles.items()))}


def _sound_jobs(mtype: str, pcie: bool, port: list[str], bridge: list[str]) -> list[tuple[list[str], str, str]]:
    """The sound devices' probes: the PCI cards where PCI_DEVICES go, the HDA codecs on an HDA
    controller's bus (the codec is the same on either controller: offline takes the HDA context
    for both, tests/test_offline_audio.py holds it to QEMU), the ISA cards on x86."""
    jobs: list[tuple[list[str], str, str]] = []
    for dev in SOUND_PCI:
        jobs += [([], dev, "pci-root"), (bridge, dev, "pci-bridge")] + ([(port, dev, "pci-port")] if pcie else [])
    jobs += [(["-device", "intel-hda,id=ctx"], d, "HDA") for d in HDA_CODECS]
    if mtype.startswith("pc-"):
        jobs += [([], d, "ISA") for d in X86_ISA_SOUND]
    return jobs


def _dt_machine(mtype: str, binary: str) -> bool:
    """arm/aarch64 and riscv64 virt: QEMU writes their hardware as a DT of its own."""
    import re

    return re.sub(r"-\d+\.\d+$", "", mtype) == "virt" and os.path.basename(binary).rsplit("-", 1)[-1] in (
        "aarch64", "arm", "riscv64")


def smp_forms(joint: bool = False) -> list[tuple[int, int, int, int, int]]:
    """The -smp topologies recorded on the DT machines, (cpus, maxcpus, sockets, cores, threads):
    every CPU count up to 4 on one socket of cores (what -smp N is), one core per socket, two
    threads per core, and two sockets (29); with two DT-changing options together (``joint``),
    the forms users write most: up to 2 CPUs of at most 4, on cores of one socket or one core
    per socket (9).  Bounded, since each is a DT of its own per option."""
    out = set()
    for maxcpus in (1, 2, 3, 4):
        for sockets, cores, threads in ((1, maxcpus, 1), (maxcpus, 1, 1), (1, maxcpus // 2, 2), (2, maxcpus // 2, 1)):
            if sockets * cores * threads == maxcpus:
                out.update((cpus, maxcpus, sockets, cores, threads) for cpus in range(1, maxcpus + 1))
    if joint:
        out = {f for f in out if f[0] <= 2 and f[1] in (1, 2, 4) and f[4] == 1 and (f[2] == 1 or f[3] == 1)}
    return sorted(out)


def _joinable(a: str, b: str, requires: dict[str, str] | None = None) -> bool:
    """Two DT-changing options a command line can give together (not two values of one option,
    nor one with a value other than the partner another is recorded with)."""
    def key(o: str) -> str:
        return o.split("=", 1)[0].split(" ", 1)[0]

    partners = {a: (requires or {}).get(a), b: (requires or {}).get(b)}
    if key(a) == key(b) or partners[a] == b or partners[b] == a:
        return False
    return not any(p is not None and key(p) == key(other) for o, p in partners.items() for other in (a, b) if other != o)


#: the most DT-changing options recorded together (aarch64 virt 7.2: 53 pairs, 131 threes, 334
#: fours, each with the 9 joint topologies)
MAX_JOINT = 4


def dt_smp(mtype: str, binary: str, plain: dict[str, Any], option_variants: dict[str, dict[str, Any]],
           requires: dict[str, str] | None = None, old: dict[str, Any] | None = None,
           max_joint: int = MAX_JOINT) -> dict[str, Any]:
    """``dt-smp`` of a DT machine's model (dtvm/qemu/offline_dt.py), all from QEMU under -nodefaults:

    - ``joint``: each two DT-changing options together (their DTs do not compose), each
      DT-changing option with an option that leaves the DT alone where the two do not compose
      (gic-version=3 with its=off: no ITS node; iommu=smmuv3 with default-bus-bypass-iommu=on:
      an iommu-map), and each three or four (a recorded joint of one fewer and one more that goes with
      all of it): the device
      delta against the variant it derives from (``parent``: one option, or a joint), and QEMU's DT;
    - ``entries``: per DT-changing option, pair of them, or none, and per topology of smp_forms(),
      what -smp makes: its DT and its device-model delta (GIC num-cpu and MMIO, smp property);
    - ``checked``: the pairs of a DT-changing option with an option that leaves the DT alone whose
      composition offline_dt.compose makes QEMU's guest tree (described both ways, compared);
      a pair that does not is recorded under ``joint`` instead.

    An option of ``requires`` is recorded beside its partner (mte=on with -cpu max), everywhere.
    ``old``: the section of the model file being merged into (--merge): what it holds is kept, and
    only what it lacks is asked of QEMU (QEMU answers the same each time: the same bytes).

    DTs are stored without QEMU's seeds, once per distinct value, compressed against the DT they
    derive from; deltas once per distinct value."""
    import base64
    import hashlib
    import zlib

    from dtvm.dt.dtb import read_dtb, write_dtb
    from dtvm.qemu.models import config_from_dict, option_delta
    from dtvm.qemu.offline_dt import compose, pack_dt, smp_delta, smp_text
    from dtvm.vm.translate import describe, driver_compat, drop_seeds

    old = old or {}

    def raw(variant: dict[str, Any]) -> bytes:
        return zlib.decompress(base64.b64decode(variant["dtb-zlib"]))

    def unseeded(blob: bytes) -> bytes:
        tree = read_dtb(blob, "QEMU's DT")
        drop_seeds(tree)
        return write_dtb(tree)

    def record(opts: list[str]) -> dict[str, Any] | None:
        try:
            return _recorded(config_to_dict(from_snapshot(read_argv([binary, "-M", mtype, "-nodefaults", *opts]))), opts)
        except DtvmError:
            return None  # QEMU refuses the combination: not recorded

    def argv_of(name: str) -> list[str]:
        return [a for part in name.split("&") if part for a in _option_argv(part, requires)]

    features: dict[str, dict[str, Any]] = {"": plain}  # the recorded variant of each DT feature
    feature_dt: dict[str, bytes] = {"": raw(plain)}  # its DT as offline_dt unpacks it
    neutral = []
    for name, variant in option_variants.items():
        delta = option_delta(plain, variant)
        if delta["alone"] and smp_delta(plain, variant) is not None:  # the DT, properties and MMIO lists
            features[name], feature_dt[name] = variant, raw(variant)
        elif not delta["alone"]:
            neutral.append(name)
    singles = sorted(n for n in features if n)
    pairs = [f"{a}&{b}" for i, a in enumerate(singles) for b in singles[i + 1:] if _joinable(a, b, requires)]
    entries: dict[str, Any] = dict(old.get("entries") or {})
    dts: dict[str, Any] = dict(old.get("dts") or {})
    deltas: dict[str, Any] = dict(old.get("deltas") or {})
    joint: dict[str, Any] = {}
    old_checked = set(old.get("checked") or [])

    def store(base: dict[str, Any], base_dt: bytes, name: str, variant: dict[str, Any]) -> dict[str, str] | None:
        delta = smp_delta(base, variant)
        if delta is None:
            return None  # changes more than the DT, devices' properties and MMIO: not recorded
        delta_id = hashlib.sha256(json.dumps(delta, sort_keys=True).encode()).hexdigest()[:16]
        deltas[delta_id] = delta
        dtb = unseeded(raw(variant))
        # one id per DT and the DT it is compressed against (the same DT may derive from two)
        dt_id = hashlib.sha256(hashlib.sha256(base_dt).digest() + dtb).hexdigest()[:16]
        dts.setdefault(dt_id, pack_dt(dtb, base_dt))
        return {"dt": dt_id, "delta": delta_id}

    def add_joint(name: str, parent: str, variant: dict[str, Any] | None) -> bool:
        ref = store(features[parent], feature_dt[parent], name, variant) if variant is not None else None
        if ref is None or variant is None:
            return False
        joint[name] = {"parent": parent, **ref}
        features[name], feature_dt[name] = variant, unseeded(raw(variant))
        return True

    compat = driver_compat()

    def guest(config: Any) -> bytes:
        return write_dtb(describe(config, compat).guest)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for name, variant in zip(pairs, pool.map(lambda n: record(argv_of(n)), pairs), strict=True):
            add_joint(name, name.split("&", 1)[0], variant)
        # the checks: QEMU's own guest tree for each DT-changing option with each that is not
        checks = [(f, n) for f in singles for n in neutral if _joinable(f, n, requires)
                  and f"{f}&{n}" not in old_checked]
        qemu = list(pool.map(lambda c: record([*argv_of(c[0]), *argv_of(c[1])]), checks))
        section: dict[str, Any] = {"forms": [smp_text(f) for f in smp_forms()],
                                   "joint-forms": [smp_text(f) for f in smp_forms(True)], "joint": joint,
                                   "entries": entries, "dts": dts, "deltas": deltas}
        model_so_far = {"variants": {"nodefaults": plain}, "option-variants": option_variants, "dt-smp": section}
        checked = sorted(old_checked & {f"{f}&{n}" for f in singles for n in neutral})
        def _composes(f: str, n: str, variant: dict[str, Any]) -> bool:
            try:
                made_here = compose(model_so_far, "nodefaults", [*f.split("&"), n], None, True, checked_only=False)
            except DtvmError:
                return False
            if made_here is None:
                return False
            ours = config_from_dict(made_here[0])
            if made_here[1] is not None:
                ours.dtb = made_here[1]
            return guest(ours) == guest(config_from_dict(variant))

        for (f, n), variant in zip(checks, qemu, strict=True):
            if variant is None:
                continue
            if _composes(f, n, variant):
                checked.append(f"{f}&{n}")
                continue
            # they do not compose: recorded together, as two DT-changing options are
            name = "&".join(sorted((f, n)))
            if add_joint(name, f, variant):
                print(f"  {mtype}: {f} with {n} does not compose: recorded together", file=sys.stderr)
            else:
                print(f"  {mtype}: {f} with {n} does not compose (refused offline)", file=sys.stderr)
        # three and four together (a CPU model with two or three options), each from a recorded
        # joint of one fewer and a DT-changing option that goes with all of it
        for size in range(3, max_joint + 1):
            grown: dict[str, str] = {}
            for smaller in sorted(j for j in joint if j.count("&") == size - 2):
                parts = smaller.split("&")
                for more in singles:
                    if more not in parts and all(_joinable(more, p, requires) for p in parts):
                        grown.setdefault("&".join(sorted([*parts, more])), smaller)
            names = sorted(grown)
            for name, variant in zip(names, pool.map(lambda n: record(argv_of(n)), names), strict=True):
                add_joint(name, grown[name], variant)
        # firmware makes options depend on each other (acpi with an AArch64 CPU: the acpi-ged or the
        # GPIO): each option that leaves the DT alone is checked beside each joint with firmware,
        # and recorded with it where it does not compose (offline_dt.compose asks for either)
        fw_checks = [(j, n) for j in sorted(joint) if FIRMWARE in j.split("&") for n in neutral
                     if n not in j.split("&") and all(_joinable(n, p, requires) for p in j.split("&"))
                     and f"{j}&{n}" not in old_checked]
        qemu = list(pool.map(lambda c: record([*argv_of(c[0]), *argv_of(c[1])]), fw_checks))
        for (j, n), variant in zip(fw_checks, qemu, strict=True):
            if variant is not None and _composes(j, n, variant):
                checked.append(f"{j}&{n}")
            elif variant is not None and not add_joint("&".join(sorted([*j.split("&"), n])), j, variant):
                print(f"  {mtype}: {n} with {j} does not compose (refused offline)", file=sys.stderr)
        checked += sorted(c for c in old_checked if FIRMWARE in c.split("&") and c.count("&") > 1)
        # an option QEMU takes without its partner beside firmware (ras=on: an AArch64 CPU with
        # firmware and ACPI has the acpi-ged it needs): per DT feature with firmware, where it is one
        # machine option more (held to QEMU's guest tree), ``waived``
        waivable = [o for o in WAIVED_BESIDE_FIRMWARE if o in (requires or {})] if "aarch64" in binary else []
        tries = [(o, f) for o in waivable for f in sorted(features) if FIRMWARE in f.split("&")
                 and not any(p.split("=")[0] in (o.split("=")[0], (requires or {})[o].split("=")[0]) for p in f.split("&"))]
        qemu = list(pool.map(lambda t: record([*argv_of(t[1]), "-machine", t[0]]), tries))
        waived: dict[str, list[str]] = {}
        for (o, f), variant in zip(tries, qemu, strict=True):
            if variant is None:
                continue  # QEMU refuses or aborts (a 32-bit CPU: no acpi-ged)
            try:
                made_here = compose(model_so_far, "nodefaults", f.split("&"), None, True, checked_only=False)
            except DtvmError:
                made_here = None
            if made_here is None:
                continue
            key, _, value = o.partition("=")
            made_here[0]["machine"]["options"] = dict(sorted({**made_here[0]["machine"]["options"], key: value}.items()))
            ours = config_from_dict(made_here[0])
            if made_here[1] is not None:
                ours.dtb = made_here[1]
            if guest(ours) == guest(config_from_dict(variant)):
                waived.setdefault(o, []).append(f)
            else:
                print(f"  {mtype}: {o} beside {f} without {(requires or {})[o]}: not one option more (refused offline)",
                      file=sys.stderr)
        if waived:
            section["waived"] = waived
        # what a virtio-iommu-pci writes into QEMU's DT, per DT feature (plug_virtio_iommu)
        iommu_names = sorted(n for n in features if n.count("&") < VIRTIO_IOMMU_MAX_JOINT) \
            if "aarch64" in binary or binary.endswith("arm") else []
        qemu = list(pool.map(lambda n: record([*argv_of(n), "-device", f"virtio-iommu-pci,addr={_IOMMU_SLOT}"]),
                             iommu_names))
        section["virtio-iommu"] = [n for n, variant in zip(iommu_names, qemu, strict=True) if variant is not None
                                   and _iommu_rule_holds(features[n], feature_dt[n], raw(variant), unseeded)]
        jobs = [(name, form) for name in features for form in smp_forms("&" in name)
                if f"{name}|{smp_text(form)}" not in entries]
        made = list(pool.map(lambda j: record([*argv_of(j[0]), "-smp", smp_text(j[1])]), jobs))
        for (name, form), variant in zip(jobs, made, strict=True):
            ref = store(features[name], feature_dt[name], name, variant) if variant is not None else None
            if ref is not None:
                entries[f"{name}|{smp_text(form)}"] = ref
    section["checked"] = sorted(checked)
    section["joint"] = dict(sorted(joint.items()))
    section["entries"] = dict(sorted(entries.items()))
    section["dts"] = dict(sorted(dts.items()))
    section["deltas"] = dict(sorted(deltas.items()))
    return section


#: the slot the virtio-iommu-pci checks plug it into (not the first free one: the devfn is in its DT)
_IOMMU_SLOT = 5


def _iommu_rule_holds(feature: dict[str, Any], dtb: bytes, qemu: bytes, unseeded: Any) -> bool:
    from dtvm.qemu.offline_dt import plug_virtio_iommu

    bypass = feature["machine"]["options"].get("default-bus-bypass-iommu") == "on"
    return bool(unseeded(plug_virtio_iommu(dtb, _IOMMU_SLOT << 3, bypass)) == unseeded(qemu))


def _option_variants(mtype: str) -> list[str]:
    """The option variants of a type; another version of a listed type (virt-10.0) has virt-7.2's."""
    import re

    return OPTION_VARIANTS.get(mtype) or OPTION_VARIANTS.get(re.sub(r"-\d+\.\d+$", "-7.2", mtype), [])


def _machines(binary_dir: str | None) -> tuple[str, list[tuple[str, str, bool, bool, bool]]]:
    """The QEMU version of ``binary_dir``'s binaries (None: those on PATH, 7.2) and the machines to
    record from it: another version's own types (pc-q35-10.0, what an unpinned -M q35 builds there)
    and, pinned, the 7.2 types it also runs (a description made on 7.2 rebuilt on it)."""
    import re

    from dtvm.qemu.live import binary_version

    if binary_dir is None:
        return "7.2", MACHINES
    found = binary_version(os.path.join(binary_dir, "qemu-system-x86_64"))
    if found is None:
        raise SystemExit(f"{binary_dir}/qemu-system-x86_64: does not answer --version as QEMU does")
    version = f"{found[0]}.{found[1]}"
    out = []
    for mtype, binary, pcie, mmio, devices in MACHINES:
        path = os.path.join(binary_dir, binary)
        own = re.sub(r"-7\.2$", f"-{version}", mtype)
        out.append((own, path, pcie, mmio, devices))
        if own != mtype:
            out.append((mtype, path, pcie, mmio, devices))
    return version, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="the directory to write (default: dtvm/qemu/machines, or its VERSION/ for "
                        "another QEMU version)")
    parser.add_argument("--bin-dir", help="record from the QEMU binaries in this directory (e.g. QEMU 10.0's "
                        "wrappers, /opt/dtvm/qemu-10.0.2/bin) instead of those on PATH")
    parser.add_argument("--only", help="record only these machine types (comma-separated)")
    parser.add_argument("--merge", action="store_true", help="keep what the existing model files hold and ask QEMU only "
                        "for what they lack (new profiles, option variants, dt-smp recordings): minutes instead of "
                        "tens of minutes; QEMU answers the same runs the same way, so what is kept is what it would record again")
    parser.add_argument("--max-joint", type=int, default=MAX_JOINT, choices=range(2, MAX_JOINT + 1),
                        help=f"the most DT-changing options recorded together on the DT machines (default {MAX_JOINT}; "
                        "each more multiplies the QEMU runs)")
    args = parser.parse_args()
    version, machines = _machines(args.bin_dir)
    out = args.out or os.path.join(os.path.dirname(__file__), "..", "dtvm", "qemu", "machines",
                                   *(() if version == "7.2" else (version,)))
    args.out = out
    os.makedirs(out, exist_ok=True)
    for mtype, binary, pcie, mmio, devices in machines:
        if args.only and mtype not in args.only.split(","):
            continue
        machine = find_machine(mtype, binary)
        path = os.path.join(args.out, f"{machine.arch}-{machine.type}.offline.json")
        old = None
        if args.merge and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        data = model(mtype, binary, pcie, mmio, devices, old, args.max_joint)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=False)
            f.write("\n")
        os.replace(path + ".tmp", path)
        print(f"wrote {path}: {len(data['variants'])} variants, {len(data['profiles'])} profiles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
