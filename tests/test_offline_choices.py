"""Every choice the configuration generator (tests/qemugen.py) can draw, asked of the offline
models, without QEMU: each is answered, or refused with a message this file lists with its reason.

The random round trip (tests/qemu_random.py) and the offline runs (tests/qemu_offline_random.py)
hold offline's answers to QEMU, but only for the choices a seed happens to draw; this walks all
of them one at a time on the five machines offline covers (q35, pc, aarch64 virt, arm virt,
riscv64 virt), so that a device, ``-nic`` model, machine option, CPU model, ``-smp`` form, ``-m``
size or drive form the generator gains and the models lack fails here at once, and so does a
listed refusal the models have since learnt to answer (the list stays exact both ways).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import qemugen
from .qemugen import MACHINES, write_qcow2, write_raw
from .qemugen_census import census_pool

OFFLINE_MACHINES = ["q35", "pc", "aarch64-virt", "arm-virt", "riscv64-virt"]

#: (machine, choice) -> why offline refuses it: QEMU's own refusal (offline must not answer a
#: command line QEMU does not start), or what the models do not hold yet.  Every entry must still
#: be refused, every other choice answered.
_NOT_A_NIC_MODEL = "QEMU 7.2: 'Unsupported NIC model: e1000-82540em' (-nic model=help lists it as e1000)"
REFUSED: dict[tuple[str, str], str] = {
    **{(m, "-nic model=e1000-82540em"): _NOT_A_NIC_MODEL for m in ("q35", "pc", "aarch64-virt", "arm-virt")},
    ("aarch64-virt", "option mte=on"): "QEMU 7.2 without -cpu max: 'MTE requested, but not supported by the guest CPU' "
                                       "(with it: 'option mte=on with -cpu max', answered)",
    ("aarch64-virt", "option ras=on"): "QEMU 7.2 without firmware aborts unless acpi=off: \"virt_acpi_setup: Assertion "
                                       "`vms->acpi_dev' failed\" (with acpi=off: answered)",
}
_HOST_AUDIO = ("a sound device without audiodev= and no -audiodev: QEMU 7.2 gives it the first audio driver that starts "
               "on the host, named after it (alsa here), which the description holds: the host's, refused by name")
_PC_FLASH1 = "QEMU 7.2: 'pflash1 requires pflash0'"
REFUSED.update({
    **{(m, "flash 1 drive"): _PC_FLASH1 for m in ("q35", "pc")},
    **{(m, "flash 1 blockdev"): _PC_FLASH1 for m in ("q35", "pc")},
})
for _m in OFFLINE_MACHINES:
    for _card in qemugen._SOUND_PCI:
        for _codec in (qemugen._HDA_CODECS if _card.endswith("intel-hda") else [""]):
            REFUSED[(_m, f"sound {_card}{' ' + _codec if _codec else ''}")] = _HOST_AUDIO
    if MACHINES[_m].isa:
        for _card in qemugen._SOUND_ISA:
            REFUSED[(_m, f"sound {_card}")] = _HOST_AUDIO

#: the census stream's types offline refuses by design (tests/test_offline_census.py holds the rest)
REFUSED.update({
    **{(m, "census vmgenid"): "QEMU draws vmgenid's GUID at random each start unless guid= is given (the census gives "
                              "none): no offline answer can be QEMU's" for m in ("q35", "pc")},
})

#: the options QEMU takes only beside another (measured): each is also walked with its partner
PARTNERS: dict[tuple[str, str], list[str]] = {("aarch64-virt", "mte=on"): ["-cpu", "max"],
                                              ("aarch64-virt", "ras=on"): ["-M", "virt-7.2,ras=on,acpi=off"]}


def _images(directory: Path) -> dict[str, str]:
    out = {}
    for fmt in ("raw", "qcow2"):
        path = directory / f"disk.{fmt}"
        (write_qcow2 if fmt == "qcow2" else write_raw)(path, 16 << 20)
        out[fmt] = str(path)
    return out


def _drive(img: dict[str, str], ident: str = "d0", form: str = "drive-raw") -> list[str]:
    """A disk back-end in each form the generator writes (drive_ref)."""
    if form.startswith("drive-"):
        fmt = form.split("-", 1)[1]
        return ["-drive", f"if=none,id={ident},file={img[fmt]},format={fmt}"]
    if form.startswith("probed-"):
        return ["-drive", f"if=none,id={ident},file={img[form.split('-', 1)[1]]}"]
    fmt = form.split("-", 1)[1]
    return ["-blockdev", f"driver=file,node-name={ident}f,filename={img[fmt]}",
            "-blockdev", f"driver={fmt},node-name={ident},file={ident}f"]


def choices(machine: str, img: dict[str, str]) -> dict[str, list[str]]:
    """Each choice of the generator on ``machine`` as the command-line tail that makes it alone
    (under -nodefaults, with the controller it needs), keyed by a label."""
    spec = MACHINES[machine]
    out: dict[str, list[str]] = {}
    pci = [*qemugen._NICS_PCI, *qemugen._PLAIN_PCI, *qemugen._DISPLAY_PCI, *qemugen._USB_HCI, *qemugen._SCSI_HBA,
           "virtio-serial-pci"]
    if spec.pcie:
        contexts = {"root": [], "root-port": ["-device", "pcie-root-port,id=rp1,chassis=1"],
                    "bridge": ["-device", "pcie-pci-bridge,id=br1"]}
    else:
        contexts = {"root": [], "bridge": ["-device", "pci-bridge,id=br1,chassis_nr=1"]}
    for where, setup in contexts.items():
        bus = {"root": "", "root-port": ",bus=rp1", "bridge": ",bus=br1,addr=1"}[where]
        for dev in pci:
            out[f"device {dev} @{where}"] = [*setup, "-device", dev + bus]
        out[f"device virtio-blk-pci @{where}"] = [*setup, *_drive(img), "-device", f"virtio-blk-pci,drive=d0{bus}"]
    for form in ("drive-raw", "drive-qcow2", "probed-raw", "probed-qcow2", "blockdev-raw", "blockdev-qcow2"):
        out[f"disk back-end {form}"] = [*_drive(img, form=form), "-device", "virtio-blk-pci,drive=d0"]
    for fmt in ("raw", "qcow2"):
        out[f"drive if=virtio {fmt}"] = ["-drive", f"if=virtio,file={img[fmt]},format={fmt}"]
    out["bridge"] = ["-device", "pcie-pci-bridge,id=b" if spec.pcie else "pci-bridge,id=b,chassis_nr=1"]
    for dev in qemugen._USB_DEV:
        if dev == "usb-bot":
            continue  # the generator draws it and writes nothing
        usb = ["-device", "qemu-xhci,id=u"]
        if dev == "usb-storage":
            for blocks in sorted(set(qemugen._USB_BLOCKS)):
                out[f"usb usb-storage{blocks}"] = [*usb, *_drive(img), "-device", f"usb-storage,drive=d0,bus=u.0{blocks}"]
        elif dev == "usb-serial":
            out["usb usb-serial"] = [*usb, "-chardev", "null,id=c", "-device", "usb-serial,chardev=c"]
        else:
            out[f"usb {dev}"] = [*usb, "-device", dev]
    if "usb" in spec.options and spec.binary.endswith("x86_64"):
        for name in qemugen._USBDEVICE.values():
            out[f"-usbdevice {name}"] = ["-M", f"{spec.type},usb=on", "-usbdevice", name]
    hbas = [*qemugen._SCSI_HBA, *(["virtio-scsi-device"] if spec.mmio else [])]
    for hba in hbas:
        out[f"scsi scsi-hd on {hba}"] = ["-device", f"{hba},id=s", *_drive(img), "-device", "scsi-hd,bus=s.0,drive=d0"]
        out[f"scsi scsi-cd on {hba}"] = ["-device", f"{hba},id=s", "-device", "scsi-cd,bus=s.0,scsi-id=2"]
    for ctl in ["virtio-serial-pci", *(["virtio-serial-device"] if spec.mmio else [])]:
        for port in ("virtconsole", "virtserialport"):
            out[f"virtio-serial {port} on {ctl}"] = ["-chardev", "null,id=c", "-device", f"{ctl},id=v",
                                                     "-device", f"{port},chardev=c,bus=v.0"]
    if spec.mmio:
        for dev in qemugen._MMIO:
            out[f"virtio-mmio {dev}"] = [*(_drive(img) if dev == "virtio-blk-device" else []),
                                         "-device", dev + (",drive=d0" if dev == "virtio-blk-device" else "")]
    for model in qemugen._NICS_PCI:
        out[f"-nic model={model}"] = ["-nic", f"user,model={model}"]
    out["-nic default"] = ["-nic", "user"]
    out["-netdev user"] = ["-netdev", "user,id=n", "-device", "virtio-net-pci,netdev=n"]
    for key, values in sorted(spec.options.items()):
        for value in values:
            out[f"option {key}={value}"] = ["-M", f"{spec.type},{key}={value}"]
            partner = PARTNERS.get((machine, f"{key}={value}"))
            if partner:
                out[f"option {key}={value} with {' '.join(partner)}"] = ["-M", f"{spec.type},{key}={value}", *partner]
    for cpu in sorted(set(spec.cpus)):
        out[f"-cpu {cpu}"] = ["-cpu", cpu]
    smp = ["1", "2"] + [f"{c},maxcpus={m}" for m in (2, 4) for c in (1, 2)]
    smp += [f"{c},maxcpus={m},sockets={m},cores=1,threads=1" for m in (2, 4) for c in (1, 2)]
    if machine in ("q35", "pc"):
        smp += [f"{c},maxcpus={m},sockets={m // 2},cores=2,threads=1" for m in (2, 4) for c in (1, 2)]
        smp += [f"{c},maxcpus={m},sockets=1,cores={m // 2},threads=2" for m in (2, 4) for c in (1, 2)]
    for text in smp:
        out[f"-smp {text}"] = ["-smp", text]
    for size in spec.memory:
        out[f"-m {size}"] = ["-m", size]
    if spec.isa:
        out["-serial null"] = ["-serial", "null"]
        out["-parallel null"] = ["-parallel", "null"]
        out["isa-serial"] = ["-chardev", "null,id=c", "-device", "isa-serial,chardev=c"]
        for dev in ("pvpanic", "sga", "ib700"):
            out[f"isa {dev}"] = ["-device", dev]
    if spec.ide == "piix":
        for n, flag in enumerate(("-hda", "-hdb", "-hdc", "-hdd")):
            out[flag] = [flag, img["raw"]]
            out[f"-drive if=ide,index={n}"] = ["-drive", f"if=ide,index={n},file={img['qcow2']},format=qcow2"]
            out[f"-drive if=ide,index={n},media=cdrom"] = ["-drive", f"if=ide,index={n},file={img['raw']},format=raw,media=cdrom"]
        out["-cdrom"] = ["-cdrom", img["raw"]]
    if spec.ide == "ahci":
        for n in range(6):
            out[f"-drive if=ide,index={n}"] = ["-drive", f"if=ide,index={n},file={img['raw']},format=raw"]
        out["-hda"] = ["-hda", img["qcow2"]]
        out["ahci ide-hd"] = ["-device", "ich9-ahci,id=a", *_drive(img), "-device", "ide-hd,bus=a.3,drive=d0"]
        out["ahci ide-cd"] = ["-device", "ich9-ahci,id=a", "-device", "ide-cd,bus=a.1"]
    if spec.ide:
        out["-drive if=floppy"] = ["-drive", f"if=floppy,file={img['raw']},format=raw"]
    out.update(_second_stream(machine, img, contexts))
    out.update(_expander_stream(machine, img))
    out.update(_census_stream(machine))
    return out


def _census_stream(machine: str) -> dict[str, list[str]]:
    """The choices of the census stream (tests/qemugen_census.py): each type whose census round
    trip passed, with the controllers and back-ends the census gave it, and the memory hot-plug
    slots the case's -m then takes (qemugen_census.with_memory_slots: 128M without -m)."""
    return {f"census {dtype}": (["-m", f"128M,{slots}"] if slots else []) + list(argv)
            for dtype, argv, slots in census_pool(machine)}


def _expander_stream(machine: str, img: dict[str, str]) -> dict[str, list[str]]:
    """The choices of qemugen's expander stream (_expanders): a PCI expander on the root bus and
    what it draws behind one (root ports on a pxb-pcie, endpoints and bridges on a pxb)."""
    kind = qemugen._EXPANDERS.get(machine)
    if kind is None:
        return {}
    root = MACHINES[machine].root_bus
    out: dict[str, list[str]] = {f"expander {kind}": ["-device", f"{kind},id=px,bus_nr=32"],
                                 f"expander {kind} empty without id": ["-device", f"{kind},bus={root},bus_nr=40"]}

    def endpoint(dev: str, at: str) -> list[str]:
        if dev == "virtio-blk-pci":
            return [*_drive(img), "-device", f"{dev},drive=d0{at}"]
        return ["-device", dev + at]

    head = ["-device", f"{kind},id=px,bus_nr=32,bus={root}"]
    for dev in [*qemugen._BEHIND_EXPANDER, "virtio-net-pci,netdev=n"]:
        net = ["-netdev", "user,id=n"] if "netdev" in dev else []
        if kind == "pxb-pcie":
            port = [*head, "-device", "pcie-root-port,id=xrp,bus=px,chassis=1"]
            out[f"expander {dev} behind a root port"] = [*port, *net, *endpoint(dev, ",bus=xrp")]
        else:
            out[f"expander {dev} on it"] = [*head, *net, *endpoint(dev, ",bus=px,addr=1")]
            out[f"expander {dev} behind a bridge"] = [*head, "-device", "pci-bridge,id=b,bus=px,addr=2,chassis_nr=1",
                                                      *net, *endpoint(dev, ",bus=b,addr=1")]
    if kind == "pxb-pcie":
        for dev in ("e1000", "virtio-rng-pci", "rtl8139"):
            out[f"expander {dev} behind a pcie-pci-bridge"] = [
                *head, "-device", "pcie-root-port,id=xrp,bus=px,chassis=1", "-device", "pcie-pci-bridge,id=b,bus=xrp",
                "-device", f"{dev},bus=b,addr=1"]
    return out


def _second_stream(machine: str, img: dict[str, str], contexts: dict[str, list[str]]) -> dict[str, list[str]]:
    """The choices of qemugen's second stream (_more: device types the first does not draw) and
    of its firmware flash (_flash)."""
    spec = MACHINES[machine]
    out: dict[str, list[str]] = {}
    plain = [d for d in qemugen._MORE_PCI if not d.startswith(("pci-serial", "virtio-blk-pci", "virtio-net-pci"))]
    for where, setup in contexts.items():
        bus = {"root": "", "root-port": ",bus=rp1", "bridge": ",bus=br1,addr=1"}[where]
        for dev in plain:
            if dev == "virtio-iommu-pci" and where != "root":
                continue  # the generator puts it on the root bus only ("must be plugged on the root bus")
            if (dev == "virtio-iommu-pci" and machine in ("riscv64-virt", "pseries")) or \
                    (dev == "virtio-vga" and machine not in ("q35", "pc")):
                continue  # not drawn there (QEMU has none, or refuses it)
            out[f"more {dev} @{where}"] = [*setup, "-device", dev + bus]
        out[f"more pci-serial @{where}"] = [*setup, "-chardev", "null,id=c", "-device", f"pci-serial,chardev=c{bus}"]
        out[f"more virtio-blk-pci-non-transitional @{where}"] = [*setup, *_drive(img), "-device",
                                                                f"virtio-blk-pci-non-transitional,drive=d0{bus}"]
        out[f"more virtio-net-pci-transitional @{where}"] = [*setup, "-netdev", "user,id=n", "-device",
                                                            f"virtio-net-pci-transitional,netdev=n{bus}"]
    for card in qemugen._SOUND_PCI:
        for audio in ("", ",audiodev=a"):
            head = ["-audiodev", "none,id=a"] if audio else []
            if card.endswith("intel-hda"):
                for codec in qemugen._HDA_CODECS:
                    out[f"sound {card} {codec}{audio}"] = [*head, "-device", f"{card},id=h", "-device",
                                                           f"{codec},bus=h.0{audio}"]
            else:
                out[f"sound {card}{audio}"] = [*head, "-device", card + audio]
    if spec.pcie:
        out["more x3130"] = ["-device", "pcie-root-port,id=rp,chassis=1", "-device", "x3130-upstream,id=up,bus=rp",
                             "-device", "xio3130-downstream,id=dp,bus=up,chassis=2,slot=0",
                             "-device", "virtio-rng-pci,bus=dp"]
        out["more ioh3420"] = ["-device", "ioh3420,id=r,chassis=3", "-device", "virtio-rng-pci,bus=r"]
    if machine == "q35":
        out["more i82801b11-bridge"] = ["-device", "i82801b11-bridge,id=dmi", "-device", "e1000,bus=dmi,addr=2"]
    if spec.isa:
        out["more ne2k_isa"] = ["-netdev", "user,id=n", "-device", "ne2k_isa,netdev=n"]
        out["more isa-debugcon"] = ["-chardev", "null,id=c", "-device", "isa-debugcon,chardev=c"]
        for dev in ("isa-debug-exit", "pc-testdev"):
            out[f"more {dev}"] = ["-device", dev]
        for card in qemugen._SOUND_ISA:
            for audio in ("", ",audiodev=a"):
                out[f"sound {card}{audio}"] = [*(["-audiodev", "none,id=a"] if audio else []), "-device", card + audio]
    if spec.mmio:
        for dev in qemugen._MORE_MMIO:
            out[f"more {dev}"] = ["-device", dev]
    if machine in qemugen._FLASH:
        for unit in (0, 1):
            size = qemugen._FLASH[machine][unit][0]
            path = Path(img["raw"]).parent / f"flash{unit}-{size}.raw"
            write_raw(path, size)
            out[f"flash {unit} drive"] = ["-drive", f"if=pflash,format=raw,unit={unit},file={path}"]
            if machine != "riscv64-virt":
                out[f"flash {unit} blockdev"] = ["-blockdev", f"driver=file,filename={path},node-name=ff",
                                                 "-blockdev", "driver=raw,file=ff,node-name=fw", "-M",
                                                 f"{spec.type},pflash{unit}=fw"]
    return out


@pytest.fixture(scope="module")
def img(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _images(tmp_path_factory.mktemp("choices"))


def _ask(machine: str, tail: list[str]) -> str | None:
    """None when offline answers; its one-line refusal otherwise."""
    from dtvm.qemu.offline import OfflineError, offline_config

    spec = MACHINES[machine]
    # the command line's own -M (an option under test) replaces the plain one
    own = "-M" in tail and "=" not in tail[tail.index("-M") + 1].split(",")[0]  # not -M nvdimm=on: merged
    head = [spec.binary] + ([] if own else ["-M", spec.type]) + ["-nodefaults"]
    try:
        offline_config([*head, *tail])
    except OfflineError as exc:
        text = str(exc)
        assert "\n" not in text.strip(), text
        return text
    return None


@pytest.mark.parametrize("machine", OFFLINE_MACHINES)
def test_every_generator_choice_is_answered_or_listed(machine: str, img: dict[str, str]) -> None:
    answered, refused = [], {}
    for label, tail in choices(machine, img).items():
        why = _ask(machine, tail)
        if why is None:
            answered.append(label)
        else:
            refused[label] = why
    listed = {label for (m, label) in REFUSED if m == machine}
    unlisted = {k: v for k, v in refused.items() if k not in listed}
    stale = sorted(listed - set(refused))
    assert not unlisted, "offline refuses choices the generator draws:\n" + "\n".join(
        f"  ({machine!r}, {k!r}): {v}" for k, v in sorted(unlisted.items()))
    assert not stale, f"listed as refused, but offline answers them now (drop them from REFUSED): {stale}"
    assert answered
