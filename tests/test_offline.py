"""qemu2dtb --offline against online qemu2dtb: the same guest DTB, byte for byte, without QEMU.

Online is the oracle (real QEMU 7.2 builds the VM); offline composes the stored models. Options
the offline model does not cover must be refused by name, never guessed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .qemugen import write_qcow2

Q35 = ["qemu-system-x86_64", "-M", "pc-q35-7.2"]
PC = ["qemu-system-x86_64", "-M", "pc-i440fx-7.2"]
VIRT = ["qemu-system-aarch64", "-M", "virt-7.2"]
RISCV = ["qemu-system-riscv64", "-M", "virt"]

CASES = {
    "q35": Q35,
    "q35-nodefaults": [*Q35, "-nodefaults"],
    "q35-vga-serial-none": [*Q35, "-vga", "none", "-serial", "none"],
    "q35-netdev": [*Q35, "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"],
    "q35-pcie": [*Q35, "-nodefaults", "-device", "virtio-net-pci", "-device", "e1000e",
                 "-device", "pcie-root-port,id=rp1,chassis=1", "-device", "virtio-rng-pci,bus=rp1",
                 "-device", "pcie-root-port,id=rp2,chassis=2,addr=0x9.0",
                 "-device", "pcie-pci-bridge,id=pb,bus=rp2", "-device", "e1000,bus=pb,addr=3"],
    "q35-usb-serial-scsi": [*Q35, "-device", "virtio-net-pci,mac=52:54:00:AB:CD:EF", "-device", "qemu-xhci,id=x",
                            "-device", "usb-hub,bus=x.0", "-device", "usb-kbd,bus=x.0,port=1.2", "-device", "usb-tablet",
                            "-device", "virtio-serial-pci,id=vs", "-device", "virtconsole",
                            "-device", "virtserialport,bus=vs.0", "-device", "virtio-scsi-pci,id=s",
                            "-device", "scsi-cd,bus=s.0"],
    "q35-multifunction": [*Q35, "-nodefaults", "-device", "virtio-balloon-pci,addr=5.0,multifunction=on",
                          "-device", "virtio-rng-pci,addr=5.1"],
    "q35-memory-smp": [*Q35, "-m", "4G", "-smp", "4", "-nodefaults", "-device", "virtio-rng-pci"],
    "q35-small": [*Q35, "-m", "512", "-smp", "cpus=2"],
    "q35-usb": [*Q35, "-usb", "-device", "usb-tablet"],
    "q35-usb-option": [*Q35[:2], "pc-q35-7.2,usb=on", "-nodefaults", "-device", "usb-kbd"],
    "q35-nic": [*Q35, "-nic", "user,model=virtio-net-pci", "-device", "e1000"],
    # one machine option under -nodefaults: recorded from QEMU (the models' option-variants)
    "virt-gicv3": [*VIRT, "-nodefaults", "-machine", "gic-version=3", "-device", "virtio-net-pci"],
    "virt-highmem-off": [VIRT[0], "-M", "virt-7.2,highmem=off", "-nodefaults", "-device", "virtio-rng-pci"],
    "virt-smmuv3": [VIRT[0], "-M", "virt-7.2,iommu=smmuv3", "-nodefaults", "-device", "virtio-rng-pci"],
    "riscv-aia": ["qemu-system-riscv64", "-M", "virt", "-nodefaults", "-machine", "aia=aplic-imsic"],
    # x86 machine options composed as deltas against -nodefaults (several at once, with defaults, with USB)
    "q35-options": [*Q35[:2], "pc-q35-7.2,sata=off,smbus=off,i8042=off,vmport=off,pit=off,acpi=off,smm=on",
                    "-nodefaults", "-device", "virtio-rng-pci"],
    "pc-options-defaults": [*Q35[:2], "pc-i440fx-7.2,hpet=off,pic=off,default-bus-bypass-iommu=on,usb=on",
                            "-device", "usb-kbd"],
    # DT machines: -cpu as a recorded DT of its own (alone under -nodefaults, or the default model
    # with anything), options at their defaults (the same DT but for the seeds) with others
    "virt-cpu-a53": [*VIRT, "-nodefaults", "-cpu", "cortex-a53", "-device", "virtio-rng-pci"],
    "riscv-default-cpu-options": ["qemu-system-riscv64", "-M", "virt,aclint=off,aia=none", "-cpu", "rv64",
                                  "-device", "virtio-rng-pci"],
    "virt-default-options": [VIRT[0], "-M", "virt-7.2,secure=off,virtualization=off,dtb-randomness=off",
                             "-device", "virtio-rng-pci"],
    # -serial/-parallel under -nodefaults make the port; virtio disks' queues follow -smp
    "pc-nodefaults-ports": [*Q35[:2], "pc-i440fx-7.2,graphics=off", "-nodefaults", "-serial", "null",
                            "-parallel", "null"],
    "q35-smp-virtio-queues": [*Q35, "-nodefaults", "-smp", "3", "-blockdev", "driver=null-co,node-name=n",
                              "-device", "virtio-blk-pci,drive=n", "-device", "virtio-scsi-pci"],
    "pc-nics-netdevs": [*PC, "-nic", "user", "-nic", "user,model=e1000,id=x", "-netdev",
                        "user,id=y,restrict=yes,hostfwd=tcp::2222-:22", "-device", "e1000,netdev=y"],
    "pc-nic-serial-object": [*PC, "-nic", "user", "-serial", "null", "-object", "rng-random,id=r,filename=/dev/urandom",
                             "-device", "virtio-rng-pci,rng=r"],
    "virt-nics": [*VIRT, "-nic", "user", "-nic", "user,mac=52:54:00:00:00:09"],
    "q35-cpu": [*Q35, "-cpu", "Broadwell", "-smp", "2"],
    "virt-memory": [*VIRT, "-m", "512M", "-device", "virtio-rng-pci"],
    # -smp, options that change QEMU's DT, alone and two together, with defaults (offline_dt.py)
    "virt-smp": [*VIRT, "-smp", "2", "-device", "virtio-rng-pci"],
    "virt-gicv3-smp-sockets": [VIRT[0], "-M", "virt-7.2,gic-version=3", "-smp", "2,maxcpus=4,sockets=4,cores=1,threads=1"],
    "virt-highmem-off-cpu-max-smp": [VIRT[0], "-M", "virt-7.2,highmem=off", "-cpu", "max", "-smp", "2", "-nodefaults"],
    "virt-highmem-off-its-off": [VIRT[0], "-M", "virt-7.2,highmem=off,its=off", "-device", "virtio-rng-pci"],
    "arm-virt-secure-smp-threads": ["qemu-system-arm", "-M", "virt-7.2,secure=on", "-smp", "4,threads=2"],
    "riscv-aia-smp": [*RISCV, "-machine", "aia=aplic-imsic", "-smp", "3", "-device", "virtio-rng-pci"],
    "riscv-memory": ["qemu-system-riscv64", "-M", "virt", "-m", "1G"],
    "q35-smp-topology": [*Q35, "-smp", "2,maxcpus=4,sockets=2,cores=2,threads=1"],
    "q35-smp-sockets": [*Q35, "-smp", "2,sockets=2"],
    "pc-smp-threads": [*PC, "-smp", "1,maxcpus=6,threads=2"],
    "q35-isa-ports": [*Q35, "-device", "isa-serial", "-device", "isa-serial,index=3", "-chardev", "null,id=p",
                      "-device", "isa-parallel,chardev=p"],
    "q35-isa-index-then-auto": [*Q35, "-nodefaults", "-device", "isa-serial,index=3", "-device", "isa-serial"],
    "pc-isa-serials": [*PC, "-serial", "none", "-device", "isa-serial", "-device", "isa-serial"],
    "q35-global-vga-accel": [*Q35[:2], "pc-q35-7.2,accel=tcg", "-vga", "std", "-global", "e1000e.x-pcie-lnksta-dllla=off",
                             "-device", "e1000e,addr=5.0", "-device", "e1000e,addr=6.0,x-pcie-lnksta-dllla=on"],
    "pc-cpu-versioned": [*PC, "-cpu", "Skylake-Client-v2"],
    "q35-host-backends": [*Q35, "-netdev", "socket,id=s0,listen=127.0.0.1:0", "-device", "e1000e,netdev=s0",
                          "-chardev", "file,id=f0,path=/dev/null", "-device", "virtio-serial-pci",
                          "-device", "virtconsole,chardev=f0", "-object", "memory-backend-ram,id=m0,size=64M"],
    "pc": PC,
    "pc-memory": [*PC, "-m", "1G", "-smp", "2"],
    "pc-bridge": [*PC, "-nodefaults", "-device", "pci-bridge,id=b,chassis_nr=1", "-device", "e1000,bus=b,addr=3",
                  "-device", "virtio-balloon-pci", "-device", "qemu-xhci", "-device", "usb-mouse"],
    "pc-parallel-none": [*PC, "-parallel", "none", "-net", "none"],
    "virt": VIRT,
    "virt-devices": [*VIRT, "-device", "virtio-net-device", "-device", "virtio-rng-device",
                     "-device", "pcie-root-port,id=rp,chassis=2", "-device", "pcie-pci-bridge,bus=rp,id=pb",
                     "-device", "virtio-net-pci,bus=pb,addr=1"],
    "virt-nodefaults": [*VIRT, "-nodefaults", "-device", "virtio-balloon-device", "-device", "qemu-xhci",
                        "-device", "usb-kbd"],
    "arm-virt": ["qemu-system-arm", "-M", "virt-7.2", "-device", "virtio-rng-device", "-device", "virtio-net-pci"],
    "pseries": ["qemu-system-ppc64", "-M", "pseries-7.2"],
    "pseries-nodefaults": ["qemu-system-ppc64", "-M", "pseries-7.2", "-nodefaults"],
    "pseries-vga-none": ["qemu-system-ppc64", "-M", "pseries-7.2", "-vga", "none", "-net", "none"],
    "q35-nic-models": [*Q35, "-nic", "user,model=rtl8139", "-nic", "user,model=tulip", "-nic", "user,model=i82559c",
                       "-usbdevice", "keyboard"],
    # a USB device given no port where one port is left goes behind the usb-hub QEMU plugs there
    "pc-usb-auto-hub": [*PC, "-usbdevice", "tablet", "-usbdevice", "keyboard", "-device", "piix3-usb-uhci,id=u2",
                        "-device", "usb-mouse", "-device", "usb-kbd,bus=u2.0", "-device", "usb-mouse,bus=u2.0",
                        "-device", "usb-tablet,bus=u2.0"],
    "q35-nodefaults-ports": [*Q35, "-nodefaults", "-serial", "null", "-parallel", "vc"],
    "pc-chardevs": [*PC, "-serial", "null", "-chardev", "ringbuf,id=r1", "-chardev", "memory,id=m1,size=4096",
                    "-chardev", "null,id=n1", "-device", "isa-serial,chardev=n1", "-chardev", "vc,id=v1",
                    "-device", "virtio-serial-pci", "-device", "virtconsole,chardev=r1", "-M", "pc-i440fx-7.2,usb=on",
                    "-device", "VGA"],
    "riscv": RISCV,
    "riscv-devices": [*RISCV, "-device", "virtio-balloon-device", "-device", "virtio-rng-pci",
                      "-device", "virtio-serial-pci", "-device", "virtconsole"],
}


IMAGES = {"small.img": 1 << 20, "disk.img": 64 << 20, "big.img": 3 << 30, "cd.iso": 10 << 20,
          "fd144.img": 1474560, "fd120.img": 1228800, "fd720.img": 737280, "cd2.iso": 10 << 20}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sparse raw images of several sizes (the guest sees a geometry QEMU derives from the size)."""
    d = tmp_path_factory.mktemp("images")
    for name, size in IMAGES.items():
        with open(d / name, "wb") as f:
            f.truncate(size)
    for name, size in QCOW2_IMAGES.items():
        write_qcow2(d / name, size)
    return d


#: qcow2 images (tests/qemugen.py's writer, held to qemu-img in test_qemu_random): the guest sees
#: the virtual size of the header, not the file's
QCOW2_IMAGES = {"disk.qcow2": 300 << 20, "big.qcow2": (9 << 30) + 4096, "disk2.qcow2": 300 << 20,
                "big2.qcow2": (9 << 30) + 4096, "big3.qcow2": (2 << 30) + 512, "fd288.qcow2": 2949120}


DISK_CASES = {
    "q35-disks": [*Q35, "-nodefaults", "-drive", "if=none,id=d0,file={img}/disk.img,format=raw",
                  "-device", "virtio-blk-pci,drive=d0", "-blockdev", "driver=null-co,node-name=n1",
                  "-device", "virtio-scsi-pci,id=s", "-device", "scsi-hd,drive=n1,bus=s.0",
                  "-drive", "if=none,id=d2,file={img}/big.img,format=raw", "-device", "ide-hd,drive=d2,bus=ide.1",
                  "-drive", "if=none,id=d3,driver=null-co", "-device", "scsi-hd,drive=d3,bus=s.0,scsi-id=4"],
    "q35-cdrom-hda": [*Q35, "-cdrom", "{img}/cd.iso", "-hda", "{img}/small.img"],
    "q35-nodefaults-cdrom": [*Q35, "-nodefaults", "-cdrom", "{img}/cd.iso"],
    "q35-hdb-global": [*Q35, "-hdb", "{img}/disk.img", "-global", "virtio-net-pci.mq=on", "-device", "virtio-net-pci"],
    "pc-hda-hdb-hdd": [*PC, "-hda", "{img}/disk.img", "-hdb", "{img}/small.img", "-hdd", "{img}/big.img"],
    "pc-hda-ide": [*PC, "-hda", "{img}/big.img", "-blockdev", "driver=null-co,node-name=x,size=1048576",
                   "-device", "ide-hd,drive=x,bus=ide.1,unit=1"],
    "q35-qcow2": [*Q35, "-nodefaults", "-drive", "if=none,id=d0,file={img}/disk.qcow2,format=qcow2",
                  "-device", "virtio-blk-pci,drive=d0", "-drive", "if=none,id=d1,file={img}/big.qcow2",
                  "-device", "ide-hd,drive=d1,bus=ide.2",
                  "-blockdev", "driver=file,node-name=f2,filename={img}/disk2.qcow2,read-only=on",
                  "-blockdev", "driver=qcow2,node-name=d2,file=f2,read-only=on", "-device", "virtio-scsi-pci,id=s",
                  "-device", "scsi-hd,drive=d2,bus=s.0",
                  "-blockdev", "driver=qcow2,node-name=d3,file.driver=file,file.filename={img}/big2.qcow2,read-only=on",
                  "-device", "scsi-hd,drive=d3,bus=s.0,scsi-id=2"],
    "pc-hda-qcow2": [*PC, "-hda", "{img}/big3.qcow2", "-cdrom", "{img}/cd.iso"],
    "pc-drive-ide-index": [*PC, "-drive", "if=ide,index=3,file={img}/disk.img,format=raw",
                           "-drive", "if=ide,index=0,file={img}/big3.qcow2"],
    "q35-drive-ide-index": [*Q35, "-nodefaults", "-drive", "if=ide,index=4,file={img}/disk.qcow2,format=qcow2",
                            "-hdb", "{img}/small.img"],
    "q35-drive-virtio": [*Q35, "-drive", "if=virtio,file={img}/disk.img,format=raw", "-device", "virtio-rng-pci",
                         "-drive", "if=virtio,file={img}/disk2.qcow2", "-nic", "user,model=e1000"],
    "virt-drive-virtio": [*VIRT, "-nodefaults", "-drive", "if=virtio,file={img}/big.qcow2,format=qcow2"],
    # the x86 forms the random configurations found refused (tests/qemu_offline_random.py)
    "pc-floppy": [*PC, "-drive", "if=floppy,file={img}/fd144.img,format=raw", "-drive", "if=floppy,index=1,file={img}/fd288.qcow2"],
    "pc-floppy-unit1": [*PC, "-drive", "if=floppy,index=1,file={img}/small.img,format=raw", "-usb"],
    "pc-nodefaults-floppy": [*PC, "-nodefaults", "-drive", "if=floppy", "-drive", "if=floppy,file={img}/fd720.img,readonly=on"],
    "q35-floppy": [*Q35, "-drive", "if=floppy,index=1,file={img}/fd120.img,format=raw", "-device", "e1000"],
    "q35-nodefaults-floppy": [*Q35, "-nodefaults", "-M", "pc-q35-7.2,sata=off", "-drive", "if=floppy,file={img}/fd144.img"],
    "pc-ide-cdrom-hdc": [*PC, "-drive", "if=ide,index=1,file={img}/cd.iso,format=raw,media=cdrom", "-hdc", "{img}/disk.img"],
    "q35-ide-cdrom": [*Q35, "-drive", "if=ide,index=2,file={img}/disk.qcow2,media=cdrom",
                      "-drive", "if=ide,index=5,file={img}/cd2.iso,format=raw,media=cdrom"],
    "q35-scsi-hbas": [*Q35, "-nodefaults", "-device", "megasas,id=m", "-drive", "if=none,id=d0,file={img}/disk.img,format=raw",
                      "-device", "scsi-hd,bus=m.0,drive=d0", "-device", "scsi-cd,bus=m.0", "-device", "pvscsi,id=p",
                      "-device", "scsi-cd,bus=p.0", "-device", "scsi-cd,bus=p.0", "-device", "am53c974,id=a",
                      "-device", "scsi-cd,bus=a.0", "-device", "mptsas1068,id=t", "-device", "scsi-cd,bus=t.0",
                      "-device", "dc390,id=c", "-blockdev", "driver=null-co,node-name=n0", "-device", "scsi-hd,bus=c.0,drive=n0"],
    "pc-usb-backed": [*PC, "-device", "qemu-xhci,id=x", "-drive", "if=none,id=u,file={img}/small.img,format=raw",
                      "-device", "usb-storage,drive=u", "-chardev", "null,id=c9", "-device", "usb-serial,chardev=c9",
                      "-usbdevice", "tablet", "-drive", "if=none,id=spare,file={img}/cd.iso,format=raw,readonly=on"],
    # block sizes a usb-storage hands to its disk (versions.json child-props): never on the usb-storage's node
    "q35-usb-storage-4k": [*Q35, "-nodefaults", "-device", "piix3-usb-uhci,id=u1", "-drive",
                           "if=none,id=u,file={img}/disk.img,format=raw", "-device",
                           "usb-storage,drive=u,logical_block_size=4096,physical_block_size=4096"],
    # the DT machines' forms the random configurations found refused (issue 13, item 3): virtio-mmio
    # serial, keyboard and SCSI with their children, USB with back-ends, -nic models, options QEMU
    # takes only beside another, its=off with GICv3 (recorded together), three DT-changing options
    "virt-mmio-children": [*VIRT, "-smp", "2", "-device", "virtio-serial-device,id=v", "-chardev", "null,id=c",
                           "-device", "virtconsole,chardev=c,bus=v.0", "-device", "virtio-scsi-device,id=s",
                           "-drive", "if=none,id=d0,file={img}/disk.qcow2", "-device", "scsi-hd,bus=s.0,drive=d0",
                           "-device", "scsi-cd,bus=s.0", "-device", "virtio-keyboard-device"],
    "arm-virt-usb-nics": ["qemu-system-arm", "-M", "virt-7.2", "-nic", "user,model=i82557b", "-nic", "user,model=rtl8139",
                          "-device", "qemu-xhci,id=x", "-drive", "if=none,id=u,file={img}/small.img,format=raw",
                          "-device", "usb-storage,drive=u,bus=x.0", "-chardev", "null,id=c", "-device", "usb-serial,chardev=c"],
    "riscv-nic-no-device": [*RISCV, "-nic", "user,model=e1000", "-device", "e1000"],
    "virt-mte-cpu-max": [VIRT[0], "-M", "virt-7.2,mte=on,gic-version=3", "-cpu", "max", "-smp", "2"],
    "virt-ras-acpi-off": [VIRT[0], "-M", "virt-7.2,ras=on,acpi=off", "-cpu", "cortex-a57", "-device", "virtio-rng-pci"],
    "virt-its-off-gicv3": [VIRT[0], "-M", "virt-7.2,its=off,gic-version=3,acpi=auto", "-nodefaults", "-smp", "2",
                           "-device", "virtio-rng-device"],
    "virt-no-msi": [VIRT[0], "-M", "virt-7.2,its=off,gic-version=3", "-nodefaults", "-smp", "2", "-device",
                    "virtio-scsi-pci", "-device", "pcie-pci-bridge,id=b", "-device", "virtio-net-pci,bus=b,addr=2",
                    "-device", "megasas", "-nic", "user,model=e1000", "-drive", "if=virtio,file={img}/small.img,format=raw"],
    "virt-no-msi-defaults": [VIRT[0], "-M", "virt-7.2,its=off,gic-version=max,highmem=off", "-cpu", "max", "-smp", "2",
                             "-device", "virtio-mouse-pci", "-device", "megasas"],
    "virt-three-options": [VIRT[0], "-M", "virt-7.2,highmem=off,secure=on", "-cpu", "cortex-a7", "-smp", "2,maxcpus=4",
                           "-device", "virtio-rng-pci"],
    "virt-blk": [*VIRT, "-blockdev", "driver=null-co,node-name=x", "-device", "virtio-blk-device,drive=x",
                 "-drive", "if=none,id=y,file={img}/disk.img,format=raw", "-device", "virtio-blk-pci,drive=y"],
}


@pytest.mark.parametrize("name", sorted(DISK_CASES))
def test_offline_disks_equal_online(name: str, images: Path, tmp_path: Path) -> None:
    argv = [a.replace("{img}", str(images)) for a in DISK_CASES[name]]
    _assert_offline_equals_online(argv, tmp_path)


def test_offline_refuses_partitioned_image(tmp_path: Path) -> None:
    """QEMU guesses a disk's geometry from an MBR: the offline model does not, and says so."""
    image = tmp_path / "mbr.img"
    mbr = bytearray(512)
    mbr[446 + 4] = 0x83
    mbr[510:512] = b"\x55\xaa"
    image.write_bytes(bytes(mbr) + bytes(1 << 20))
    res = _qemu2dtb(tmp_path, [*Q35, "-drive", f"if=none,id=d,file={image},format=raw", "-device", "virtio-blk-pci,drive=d"],
                    offline=True)
    assert res.returncode != 0 and "partition table" in res.stderr


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (Debian qemu-utils) makes the qcow2 with data")
def test_offline_refuses_partitioned_qcow2(tmp_path: Path) -> None:
    """The same inside a qcow2 image: the first sector is read through its L1 and L2 tables."""
    raw, image = tmp_path / "mbr.img", tmp_path / "mbr.qcow2"
    mbr = bytearray(512)
    mbr[446 + 4] = 0x83
    mbr[510:512] = b"\x55\xaa"
    raw.write_bytes(bytes(mbr) + bytes(1 << 20))
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(image)], check=True, timeout=60)
    res = _qemu2dtb(tmp_path, [*Q35, "-drive", f"if=none,id=d,file={image}", "-device", "virtio-blk-pci,drive=d"],
                    offline=True)
    assert res.returncode != 0 and "partition table" in res.stderr, res.stderr


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (Debian qemu-utils) writes the QED and VDI images")
@pytest.mark.parametrize("fmt", ["qed", "vdi"])
def test_offline_other_formats_equal_online(fmt: str, tmp_path: Path) -> None:
    """QED and VDI images (written by qemu-img, one with data): the virtual size QEMU reads from
    the header, the first sector through the format's tables, the format probed without format=."""
    for name, size, opts in (("a", "100M", []), ("b", "3G", []), ("c", "20M", ["-o", "static=on"] if fmt == "vdi" else [])):
        subprocess.run(["qemu-img", "create", "-q", "-f", fmt, *opts, str(tmp_path / f"{name}.{fmt}"), size], check=True, timeout=60)
    subprocess.run(["qemu-io", "-c", "write -P 0x11 1M 64k", str(tmp_path / f"c.{fmt}")], check=True, timeout=60,
                   capture_output=True)
    argv = [*Q35, "-drive", f"if=none,id=a,file={tmp_path}/a.{fmt}", "-device", "virtio-blk-pci,drive=a",
            "-hdb", f"{tmp_path}/c.{fmt}",
            "-blockdev", f"driver={fmt},node-name=q,file.driver=file,file.filename={tmp_path}/b.{fmt}",
            "-device", "virtio-scsi-pci,id=s", "-device", "scsi-hd,drive=q,bus=s.0"]
    _assert_offline_equals_online(argv, tmp_path)


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (Debian qemu-utils) writes the images")
@pytest.mark.parametrize("fmt,needle", [("qed", "partition table"), ("vdi", "partition table"), ("vmdk", "a vmdk image")])
def test_offline_refuses_what_it_cannot_read_in_images(fmt: str, needle: str, tmp_path: Path) -> None:
    """An MBR inside a QED or VDI image (read through its tables), and a format QEMU's probe knows
    and the model does not (vmdk: never taken for raw)."""
    raw, image = tmp_path / "mbr.img", tmp_path / f"mbr.{fmt}"
    mbr = bytearray(512)
    mbr[446 + 4] = 0x83
    mbr[510:512] = b"\x55\xaa"
    raw.write_bytes(bytes(mbr) + bytes(1 << 20))
    subprocess.run(["qemu-img", "convert", "-O", fmt, str(raw), str(image)], check=True, timeout=60)
    res = _qemu2dtb(tmp_path, [*Q35, "-hda", str(image)], offline=True)
    assert res.returncode != 0 and needle in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def _assert_offline_equals_online(argv: list[str], tmp_path: Path) -> None:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (the online oracle cannot run)")
    online = _qemu2dtb(tmp_path, argv, offline=False)
    assert online.returncode == 0, online.stderr
    offline = _qemu2dtb(tmp_path, argv, offline=True)
    assert offline.returncode == 0, offline.stderr
    assert (tmp_path / "off.dtb").read_bytes() == (tmp_path / "on.dtb").read_bytes()
    # the host side too: drives as query-block reports them (node names QEMU generates numbered
    # in command-line order), chardevs as info chardev does, netdevs as info network does
    assert (tmp_path / "off.backend.dtbo").read_bytes() == (tmp_path / "on.backend.dtbo").read_bytes(), "overlay"


def _floppy_sizes() -> list[int]:
    """Image sizes for the floppy drive type QEMU picks: every size of its format table (the data
    under test; the first format of a size wins), sizes between, and seeded random ones."""
    import random

    from dtvm.vm.buses import device_facts

    sizes = sorted({secs * tracks * heads * 512 for _, secs, tracks, heads in device_facts()["floppy-formats"]})
    rng = random.Random(1307)
    return sizes + [512 * rng.randrange(1, 8000) for _ in range(4)] + [sizes[0] + 512, 1 << 20]


@pytest.mark.parametrize("chunk", range(0, len(_floppy_sizes()), 2))
def test_offline_floppy_type_equals_online(chunk: int, tmp_path: Path) -> None:
    """Two floppy drives a start (pc has two units), each image of another size: the drive type
    offline picks from its table is the one QEMU's pick_geometry picks."""
    sizes = _floppy_sizes()[chunk:chunk + 2]
    argv = [*PC, "-nodefaults"]
    for unit, size in enumerate(sizes):
        image = tmp_path / f"fd{unit}.img"
        with open(image, "wb") as f:
            f.truncate(size)
        argv += ["-drive", f"if=floppy,index={unit},file={image},format=raw"]
    _assert_offline_equals_online(argv, tmp_path)


def _qemu2dtb(tmp_path: Path, argv: list[str], offline: bool) -> subprocess.CompletedProcess[str]:
    out = tmp_path / ("off.dtb" if offline else "on.dtb")
    flags = ["--offline"] if offline else []
    return subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", *flags, "-o", str(out), "--", *argv],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", sorted(CASES))
def test_offline_equals_online(name: str, tmp_path: Path) -> None:
    argv = CASES[name]
    _assert_offline_equals_online(argv, tmp_path)


@pytest.mark.parametrize("argv,needle", [
    ([*VIRT, "-serial", "null", "-serial", "null"], "second serial"),
    ([*Q35, "-cpu", "Haswell,+avx512f"], "-cpu Haswell,+avx512f"),
    ([*Q35, "-cpu", "no-such-cpu"], "-cpu no-such-cpu"),
    ([*Q35, "-global", "ICH9-LPC.noreboot=off"], "-global ICH9-LPC.noreboot"),
    ([*Q35, "-vga", "virtio"], "-vga"),
    ([*VIRT, "-smp", "8"], "-smp 8: this topology is not recorded"),
    ([*VIRT, "-smp", "2,dies=2"], "-smp 2,dies=2"),
    ([*Q35, "-drive", "file=/nonexistent.img"], "-drive"),
    ([*Q35, "-drive", "if=none,id=d,file=/nonexistent.img,format=raw"], "/nonexistent.img"),
    ([*Q35, "-drive", "if=none,id=d,file=/dev/null,format=qcow2"], "qcow2"),
    ([*Q35, "-m", "size=4G,maxmem=8G"], "-m size=4G"),
    ([*Q35, "-smp", "2,dies=2"], "-smp 2,dies=2"),
    ([*PC, "-drive", "if=ide,file=/dev/null,format=raw"], "only if=ide with index="),
    ([*PC, "-drive", "if=floppy,index=2"], "floppy unit 2"),
    ([*Q35, "-serial", "pty"], "-serial pty"),
    ([*Q35, "-chardev", "socket,id=s,path=/tmp/x.sock,server=on,wait=off"], "socket chardev"),
    ([*Q35, "-usbdevice", "braille"], "-usbdevice braille"),
    ([*Q35, "-smp", "2,sockets=3"], "QEMU refuses this topology"),
    ([*VIRT, "-m", "3G"], "-m 3G"),
    ([*Q35, "-device", "nvme,serial=x"], "nvme"),
    ([*Q35, "-M", "pc-q35-7.2,max-ram-below-4g=1G"], "max-ram-below-4g=1G"),
    # five options that change QEMU's DT: up to four are recorded together, not more
    ([*VIRT, "-M", "virt-7.2,highmem=off,gic-version=3,secure=on,virtualization=on", "-cpu", "max", "-nodefaults"],
     "together they are not in"),
    # its=off with GICv3 leaves PCI without an MSI controller: QEMU realizes PCI devices otherwise
    # (the model's no-msi profiles), and QEMU refuses a root port
    ([*VIRT, "-M", "virt-7.2,its=off,gic-version=3", "-nodefaults", "-device", "pcie-root-port"], "without an MSI"),
    # options QEMU takes only beside another: mte=on needs -cpu max, ras=on (without firmware) acpi=off
    ([*VIRT, "-M", "virt-7.2,mte=on", "-nodefaults"], "-machine mte=on: recorded only beside -cpu max"),
    ([*VIRT, "-M", "virt-7.2,ras=on", "-nodefaults"], "-machine ras=on: recorded only beside -machine acpi=off"),
    # firmware is one more DT-changing condition (tests/test_offline_firmware.py): with four more, five
    ([*VIRT, "-M", "virt-7.2,highmem=off,gic-version=3,secure=on", "-cpu", "max", "-bios", "/dev/null", "-nodefaults"],
     "firmware (pflash0 or -bios), -machine gic-version=3"),
    ([*Q35, "-device", "e1000,bus=nope"], "nope"),
    ([*Q35, "-nodefaults", "-device", "e1000,addr=3.0", "-device", "e1000e,addr=3.0"], "3"),
    (["qemu-system-ppc64", "-M", "pseries-7.2", "-device", "spapr-vty"], "spapr-vty"),
])
def test_offline_refuses_what_it_does_not_know(argv: list[str], needle: str, tmp_path: Path) -> None:
    res = _qemu2dtb(tmp_path, argv, offline=True)
    assert res.returncode != 0
    assert needle in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "off.dtb").exists()
