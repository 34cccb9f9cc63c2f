"""Offline for the device types the census stream draws (tests/qemugen_census.py), held to QEMU.

Each class needs more than a profile: usb-redir claims a USB port but is never attached (no
address: numbered per bus), a smart card sits in a usb-ccid's one slot, the devices on no bus
(vmcoreinfo, vmgenid, nvme-subsys, the npcm7xx/bcm2835 clock models) are read from QOM, the ISA
parts a user adds come at their type's port (a second isa-fdc or RTC beside the machine's one,
the default floppy turned off by them), an isa-ide's disks count their serials after the
machine's IDE buses, and the CXL and PCIe port types are plain PCI profiles, on pc too.  One
command line per machine holds every class together (the default run is near its budget: nine
QEMU starts, two of them QEMU 10.0's); QEMU 7.2 is the oracle (online qemu2dtb of the same command line, byte for byte).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .qemu_helpers import assert_offline_matches_online, qemu10_prefix

_GUID = "C6E408C0-ADE9-4D62-951E-E5CC95573A80"

CASES: dict[str, list[str]] = {
    "q35": ["qemu-system-x86_64", "-M", "pc-q35-7.2",
            "-device", "qemu-xhci,id=cx", "-chardev", "null,id=c1", "-device", "usb-redir,chardev=c1",
            "-device", "usb-kbd", "-chardev", "null,id=c2", "-device", "usb-redir,chardev=c2,id=r2",
            "-device", "usb-bot,id=bot", "-device", "usb-ccid,id=cc", "-chardev", "null,id=c3",
            "-device", "ccid-card-passthru,bus=cc.0,chardev=c3",
            # several nvme-subsys: numbered as QMP lists them (ids in natural order, then the id-less)
            "-device", "nvme-subsys,id=n10,nqn=a", "-device", "nvme-subsys", "-device", "nvme-subsys,id=n9,nqn=b",
            "-device", "nvme-subsys,nqn=c", "-device", "vmcoreinfo", "-device", f"vmgenid,guid={_GUID}",
            "-device", "cxl-upstream", "-device", "cxl-rp,chassis=4", "-device", "AMDVI-PCI",
            "-device", "isa-ide,id=ii", "-device", "ide-cd,bus=ii.0", "-device", "isa-vga", "-device", "hyperv-testdev",
            "-device", "i2c-ddc", "-device", "ramfb", "-device", "mc146818rtc",
            "-device", "isa-fdc,id=fd", "-device", "floppy,bus=fd.0"],
    "pc": ["qemu-system-x86_64", "-M", "pc-i440fx-7.2",
           "-device", "i82801b11-bridge,id=dmi", "-device", "e1000,bus=dmi,addr=2", "-device", "pcie-root-port,chassis=1",
           "-device", "ioh3420,chassis=2", "-device", "x3130-upstream", "-device", "xio3130-downstream,chassis=3",
           "-device", "isa-fdc,id=f2", "-device", "floppy,bus=f2.0,unit=1", "-device", "isa-ide",
           "-device", "mc146818rtc", "-device", "cxl-downstream,chassis=5", "-device", "piix3-usb-uhci,id=u",
           "-device", "usb-bot", "-chardev", "null,id=c", "-device", "usb-redir,chardev=c"],
    "aarch64-virt": ["qemu-system-aarch64", "-M", "virt-7.2",
                     *(a for d in ("npcm7xx-clock-sel", "bcm2835-cprman-clock-mux", "npcm7xx-clock-pll",
                                   "npcm7xx-clock-divider", "bcm2835-cprman-pll-channel", "bcm2835-cprman-pll",
                                   "bcm2835-cprman-dsi0hsck-mux", "nvme-subsys", "vmcoreinfo") for a in ("-device", d)),
                     "-device", "npcm7xx-clock-sel,id=b", "-device", "npcm7xx-clock-sel,id=a",
                     "-device", "ich9-ahci,id=ca", "-device", "ide-cd,bus=ca.0",
                     "-blockdev", "driver=null-co,node-name=bk,size=16777216", "-device", "ide-hd,bus=ca.1,drive=bk",
                     "-device", "qemu-xhci", "-chardev", "null,id=c", "-device", "usb-redir,chardev=c",
                     "-device", "usb-bot", "-device", "usb-ccid", "-chardev", "null,id=c2",
                     "-device", "ccid-card-passthru,chardev=c2", "-device", "cxl-rp"],
    "arm-virt": ["qemu-system-arm", "-M", "virt-7.2", "-nodefaults", "-device", "npcm7xx-clock-sel",
                 "-device", "bcm2835-cprman-pll", "-device", "nvme-subsys,nqn=x", "-device", "vmcoreinfo",
                 "-device", "qemu-xhci", "-chardev", "null,id=c", "-device", "usb-redir,chardev=c",
                 "-device", "ich9-ahci,id=ca", "-device", "ide-cd,bus=ca.0", "-device", "cxl-downstream"],
    "riscv64-virt": ["qemu-system-riscv64", "-M", "virt", "-device", "nvme-subsys", "-device", "qemu-xhci",
                     "-chardev", "null,id=c", "-device", "usb-redir,chardev=c", "-device", "usb-bot",
                     "-device", "ich9-ahci,id=ca", "-device", "ide-cd,bus=ca.0", "-device", "usb-ccid",
                     "-chardev", "null,id=c2", "-device", "ccid-card-passthru,chardev=c2",
                     "-device", "pci-bridge-seat,chassis_nr=1"],
    # QEMU refuses two PCIe slots on one chassis and slot (the census draws its ports without
    # chassis=): offline refuses it too, in one line
    # QEMU takes one vmcoreinfo ("at most one vmcoreinfo device is permitted"; the profile's
    # several, recorded from QEMU): offline refuses the second too
    "q35-second-vmcoreinfo": ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults", "-device", "vmcoreinfo",
                              "-device", "vmcoreinfo"],
    "q35-slot-clash": ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults", "-device", "cxl-rp",
                       "-device", "cxl-downstream"],
}


#: QEMU 10.0's x86 models hold the same types (recorded with --bin-dir): its own machine types,
#: the q35 case, and the pinned 7.2 type, the pc case (offline takes the binary's version)
CASES_10 = {"q35": "pc-q35-10.0", "pc": "pc-i440fx-7.2"}


@pytest.mark.parametrize("machine", sorted(CASES))
def test_census_classes_offline_equal_online(machine: str, tmp_path: Path) -> None:
    argv = CASES[machine]
    assert_offline_matches_online(argv, tmp_path)


@pytest.mark.parametrize("machine", sorted(CASES_10))
def test_census_classes_offline_equal_online_on_qemu10(machine: str, tmp_path: Path) -> None:
    binary = Path(qemu10_prefix()) / "bin" / "qemu-system-x86_64"
    if not binary.exists():
        pytest.skip(f"{binary} (QEMU 10.0, the online oracle: scripts/install-qemu10) is not installed")
    argv = [str(binary), "-M", CASES_10[machine], *CASES[machine][3:]]
    assert_offline_matches_online(argv, tmp_path)


#: what stays refused, and why (each one line naming it): QEMU draws vmgenid's GUID at random
#: unless given; a second usb-ccid card has no slot (QEMU refuses it)
REFUSED = [
    (["-device", "vmgenid"], r"^-device vmgenid: without guid= QEMU draws a random GUID"),
    (["-device", "qemu-xhci", "-device", "usb-ccid,id=cc", "-chardev", "null,id=a", "-chardev", "null,id=b",
      "-device", "ccid-card-passthru,chardev=a", "-device", "ccid-card-passthru,chardev=b,bus=cc.0"],
     r"^-device ccid-card-passthru: the card slot of cc\.0 is taken"),
    (["-device", "isa-fdc,id=f", "-drive", "if=none,id=d,file=/dev/null,format=raw", "-device", "floppy,bus=f.0,drive=d"],
     r"^-device floppy: a -device floppy with drive= is not in the offline model"),
    (["-device", "mc146818rtc", "-device", "mc146818rtc"], r"^-device mc146818rtc: a second mc146818rtc"),
]


@pytest.mark.parametrize(("tail", "pattern"), REFUSED)
def test_what_offline_does_not_model_is_refused_by_name(tail: list[str], pattern: str) -> None:
    from dtvm.qemu.offline import OfflineError, offline_config

    with pytest.raises(OfflineError, match=pattern) as err:
        offline_config(["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults", *tail])
    assert "\n" not in str(err.value)
