"""The command line as the offline model reads it: QEMU's options, their back-ends and images.

Split from ``offline.py`` (which turns the parsed options into the device model): this module
knows QEMU's option syntax and which options the offline model takes at all, and refuses the
others by name (use online mode) before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dtvm.errors import DtvmError
from dtvm.qemu import images
from dtvm.qemu.fsdev import fsdev_option
from dtvm.qemu.models import OfflineError
from dtvm.qemu.offline_audio import parse_audiodev
from dtvm.qemu.offline_links import check_object
from dtvm.qemu.offline_memhp import MemoryOption, parse_memory
from dtvm.vm.model import Backend

__all__ = ["Args", "Drive", "chardev_filename", "image_size", "is_qcow2", "parse_argv", "port_filename", "probed_format"]


@dataclass
class Drive:
    """A block back-end of the command line: what the guest sees of it is its size."""

    name: str
    size: int
    file: str | None
    fmt: str
    readonly: bool
    blk_name: str  # the BlockBackend's name (a -drive id); "" for a -blockdev node
    #: the file name QEMU reports for the node where it is not the image's (a null-co node with
    #: options: QEMU writes them as json:{...})
    reported: str = ""


@dataclass
class Args:
    machine: str | None = None
    machine_opts: list[tuple[str, str]] = field(default_factory=list)
    memory: str | None = None
    #: -m's hot-plug slots and ceiling (slots=, maxmem=), None without them
    memory_option: MemoryOption | None = None
    #: -object memory-backend-ram: (id, its options), what query-memdev lists beside the RAM
    memdevs: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    #: every -object's QOM type by id (what a device's link may name: offline_links.py)
    objects: dict[str, str] = field(default_factory=dict)
    smp: str | None = None
    cpu: str | None = None
    nodefaults: bool = False
    removed: set[str] = field(default_factory=set)
    devices: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    netdevs: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    chardevs: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    usb: bool = False
    nics: list[list[tuple[str, str]]] = field(default_factory=list)
    drives: dict[str, Drive] = field(default_factory=dict)
    cdrom: str | None = None
    hda: str | None = None
    hd: dict[int, str] = field(default_factory=dict)
    hd_what: dict[int, str] = field(default_factory=dict)  # the option that gave hd[N]
    #: -drive if=virtio: vl.c queues a virtio-blk -device per drive after the command line's own
    virtio_drives: list[str] = field(default_factory=list)
    vga_std: bool = False
    globals_: list[tuple[str, str, str]] = field(default_factory=list)
    chardev_for: dict[str, str] = field(default_factory=dict)
    #: the second and later -serial/-parallel X: ("serial"|"parallel", X), in command-line order
    #: (vl.c numbers their chardevs serial1, serial2, ... and the machine makes a port of each)
    more_ports: list[tuple[str, str]] = field(default_factory=list)
    #: the BlockBackends with a medium that -drive and its shorthands make, in command-line order
    #: (QEMU numbers their generated node names in that order): a drive name, "hd:N" or "cdrom"
    block_order: list[str] = field(default_factory=list)
    #: -drive if=none: how many (each takes the next unit of that interface's bus 0, and vl.c adds
    #: a machine's default CD-ROM drive at its index only where no drive took it: riscv64 virt's none2)
    none_drives: int = 0
    #: -usbdevice NAME: the device types, in command-line order
    usb_devices: list[str] = field(default_factory=list)
    #: -drive if=floppy: the drive of each floppy unit (fmt "" for an empty drive)
    floppies: dict[int, Drive] = field(default_factory=dict)
    #: -drive if=pflash and -machine pflashN=NODE: the drive of each flash unit
    pflash: dict[int, Drive] = field(default_factory=dict)
    #: -drive if=ide,media=cdrom: the IDE indexes that are CD-ROMs
    hd_cdrom: set[int] = field(default_factory=set)
    #: -audiodev none: the ids, in command-line order (QEMU 7.2's first is a sound device's default)
    audiodevs: list[str] = field(default_factory=list)
    #: -fsdev and -virtfs: the fsdev back-ends (a 9p device's host directory), in command-line order
    fsdevs: list[Backend] = field(default_factory=list)


_IGNORED_FLAGS = {"-S", "-nographic", "-no-reboot", "-no-shutdown"}
_IGNORED_WITH_VALUE = {"-name", "-qmp", "-monitor", "-serial-none"}

#: what QEMU 7.2's NetdevUserOptions takes (plus a NIC's model and mac, and the netdev id): a -nic
#: user with another key is refused by QEMU, so by the model too
_NIC_USER_KEYS = frozenset({
    "model", "mac", "id", "hostname", "restrict", "ipv4", "ipv6", "ip", "net", "host", "tftp", "bootfile",
    "dhcpstart", "dns", "dnssearch", "domainname", "ipv6-prefix", "ipv6-prefixlen", "ipv6-host", "ipv6-dns",
    "smb", "smbserver", "hostfwd", "guestfwd", "tftp-server-name",
})


#: chardev back-ends whose ``info chardev`` filename is their type (char.c names a chardev so when
#: its back-end sets no filename of its own; measured on QEMU 7.2); the others (socket, pty, udp,
#: serial, pipe, ...) report host state the command line does not decide (a pty's number)
_PLAIN_CHARDEVS = frozenset({"null", "vc", "stdio", "file", "ringbuf", "memory", "msmouse", "wctablet", "testdev"})
#: what a plain -chardev takes besides its id without changing what ``info chardev`` reports
_CHARDEV_KEYS = frozenset({"backend", "id", "path", "size", "width", "height", "cols", "rows", "signal",
                           "logfile", "logappend", "append"})


def chardev_filename(backend: str, keys: set[str], what: str) -> str:
    """The filename ``info chardev`` reports for a ``-chardev`` (the online overlay holds it)."""
    if backend not in _PLAIN_CHARDEVS:
        raise OfflineError(f"{what}: a {backend or 'typeless'} chardev reports host state to QEMU's monitor; not in the "
                           "offline model (use online mode)")
    extra = sorted(keys - _CHARDEV_KEYS)
    if extra:
        raise OfflineError(f"{what}: {extra[0]}=: not in the offline model (use online mode)")
    return backend


def port_filename(spec: str, what: str) -> str:
    """The filename of the chardev ``-serial SPEC``/``-parallel SPEC`` makes (char.c's
    qemu_chr_parse_compat), for the forms whose filename the command line decides."""
    head = spec.split(":", 1)[0]
    if spec in ("null", "stdio", "msmouse", "wctablet", "testdev") or head == "vc" or (head == "file" and ":" in spec):
        return head
    raise OfflineError(f"{what} {spec}: this back-end form is not in the offline model (use online mode)")


#: -usbdevice's names (hw/usb/bus.c: each type's usbdevice_name) of the types with a profile
_USBDEVICE = {"keyboard": "usb-kbd", "mouse": "usb-mouse", "tablet": "usb-tablet"}


def is_qcow2(path: str, what: str) -> bool:
    return probed_format(path, what) == "qcow2"


def probed_format(path: str, what: str) -> str:
    """The format QEMU's probe gives an image given without format= (refused: one it cannot read)."""
    try:
        return images.probe_format(path, what)
    except images.ImageError as exc:
        raise OfflineError(str(exc)) from None


def image_size(path: str, what: str, fmt: str = "raw") -> int:
    try:
        return images.guest_size(path, what, fmt)
    except images.ImageError as exc:
        raise OfflineError(str(exc)) from None


def _drive_option(opts: dict[str, str], opt: str) -> Drive:
    if opts.get("if") != "none" or "id" not in opts:
        raise OfflineError(f"{opt}: only if=none,id=... drives are in the offline model (use online mode)")
    known = {"if", "id", "file", "format", "driver", "readonly", "read-only", "file.locking"}
    extra = sorted(set(opts) - known)
    if extra:
        raise OfflineError(f"{opt}: {extra[0]}=: not in the offline model (use online mode)")
    driver = opts.get("driver") or opts.get("format") or "raw"
    ro = opts.get("readonly", opts.get("read-only", "off")) in ("on", "true", "yes")
    if driver in ("null-co", "null-aio"):
        return Drive(opts["id"], 1 << 30, None, driver, ro, opts["id"])
    if "file" in opts and not (opts.get("driver") or opts.get("format")):
        driver = probed_format(opts["file"], opt)  # QEMU probes the format: a magic wins over raw
    if driver not in images.FORMATS or "file" not in opts:
        raise OfflineError(f"{opt}: format {driver}: only {', '.join(images.FORMATS)} images and null-co are in the offline "
                           "model (use online mode)")
    return Drive(opts["id"], image_size(opts["file"], opt, driver), opts["file"], driver, ro, opts["id"])


def _ide_drive_option(args: Args, opts: dict[str, str], what: str) -> None:
    """``-drive if=ide,index=N,file=F[,format=raw|qcow2]``: what ``-hdX`` is (vl.c turns -hda into
    if=ide,index=0), for any index the machine's IDE buses have."""
    extra = sorted(set(opts) - {"if", "index", "file", "format", "media"})
    if extra or "index" not in opts or "file" not in opts or opts.get("media", "disk") not in ("disk", "cdrom"):
        raise OfflineError(f"{what}: only if=ide with index=, file=, format= and media= is in the offline model "
                           "(use online mode)")
    try:
        index = int(opts["index"], 0)
    except ValueError:
        raise OfflineError(f"{what}: index={opts['index']}: not a number") from None
    probed = probed_format(opts["file"], what)
    if opts.get("format", probed) != probed:
        raise OfflineError(f"{what}: format={opts['format']} on a {probed} image is not in the offline model (use online mode)")
    if not 0 <= index < 12 or index in args.hd:
        raise OfflineError(f"{what}: IDE index {index} is out of range or given twice")
    args.hd[index] = opts["file"]
    args.hd_what[index] = what
    args.block_order.append(f"hd:{index}")
    if opts.get("media") == "cdrom":
        args.hd_cdrom.add(index)


def _floppy_drive_option(args: Args, opts: dict[str, str], what: str) -> None:
    """``-drive if=floppy[,index=N|unit=N][,file=F][,format=][,readonly=]``: the floppy drive of
    unit N (the lowest free without one; vl.c's drive_new), named floppyN as QEMU names it."""
    extra = sorted(set(opts) - {"if", "index", "unit", "file", "format", "readonly", "read-only", "media"})
    if extra or opts.get("media", "disk") != "disk":
        raise OfflineError(f"{what}: {(extra or ['media'])[0]}=: not in the offline model of a floppy drive (use online mode)")
    unit = _unit(opts, args.floppies, "floppy", what)
    name = f"floppy{unit}"
    if "file" not in opts:
        args.floppies[unit] = Drive(name, 0, None, "", _readonly(opts), name)
        return
    args.floppies[unit] = _unit_drive(args, name, opts, what)


def _unit(opts: dict[str, str], taken: dict[int, Drive], kind: str, what: str) -> int:
    """The unit of a -drive with two (floppy, pflash): index= or unit=, else the lowest free."""
    given = opts.get("index", opts.get("unit"))
    try:
        unit = int(given, 0) if given is not None else min(u for u in (0, 1, 2) if u not in taken)
    except ValueError:
        raise OfflineError(f"{what}: index={given}: not a number") from None
    if not 0 <= unit <= 1 or unit in taken:
        raise OfflineError(f"{what}: {kind} unit {unit} is out of range or given twice (QEMU refuses it)")
    return unit


def _readonly(opts: dict[str, str]) -> bool:
    return opts.get("readonly", opts.get("read-only", "off")) in ("on", "true", "yes")


def _unit_drive(args: Args, name: str, opts: dict[str, str], what: str) -> Drive:
    """The image of a machine's unit drive (floppy, flash), named as QEMU names it; the format as
    QEMU probes it (another given is refused)."""
    probed = probed_format(opts["file"], what)
    fmt = opts.get("format", probed)
    if fmt != probed:
        raise OfflineError(f"{what}: format={fmt} on a {probed} image is not in the offline model (use online mode)")
    drive = Drive(name, image_size(opts["file"], what, fmt), opts["file"], fmt, _readonly(opts), name)
    args.drives[name] = drive
    args.block_order.append(name)
    return drive


def _pflash_drive_option(args: Args, opts: dict[str, str], what: str) -> None:
    """``-drive if=pflash[,unit=N|index=N],file=F[,format=][,readonly=]``: unit N (the lowest free
    without one), its BlockBackend named pflashN as QEMU names it."""
    extra = sorted(set(opts) - {"if", "index", "unit", "file", "format", "readonly", "read-only"})
    if extra or "file" not in opts:
        raise OfflineError(f"{what}: {(extra or ['file'])[0]}=: only if=pflash with file=, format=, unit= and readonly= "
                           "is in the offline model (use online mode)")
    unit = _unit(opts, args.pflash, "flash", what)
    args.pflash[unit] = _unit_drive(args, f"pflash{unit}", opts, what)


def _blockdev_option(opts: dict[str, str], opt: str, nodes: dict[str, Drive] | None = None) -> Drive:
    name = opts.get("node-name")
    driver = opts.get("driver", "")
    if not name:
        raise OfflineError(f"{opt}: needs node-name= in the offline model")
    ro = opts.get("read-only", "off") in ("on", "true", "yes")
    if driver in ("null-co", "null-aio") and set(opts) <= {"driver", "node-name", "size", "read-only"}:
        size = int(opts.get("size", str(1 << 30)), 0)
        # block.c's bdrv_refresh_filename: a node with options of its own is named by them
        reported = f'json:{{"driver": "{driver}", "size": {size}}}' if "size" in opts else ""
        return Drive(name, size, None, driver, ro, "", reported)
    filename = opts.get("file.filename") if opts.get("file.driver") == "file" else opts.get("filename") if driver == "file" else None
    if driver in images.FORMATS and filename is None and opts.get("file") in (nodes or {}) \
            and set(opts) <= {"driver", "node-name", "file", "read-only"}:
        under = (nodes or {})[opts["file"]]
        if under.fmt == "file" and under.file is not None:  # a format node on a -blockdev file node
            filename = under.file
            return Drive(name, image_size(filename, opt, driver), filename, driver, ro, "")
    if driver == "file" and filename and set(opts) <= {"driver", "node-name", "filename", "read-only"}:
        # a protocol node: what a format node on top of it sees is decided there
        return Drive(name, image_size(filename, opt), filename, "file", ro, "")
    if driver in images.FORMATS and filename and set(opts) <= {"driver", "node-name", "file.driver", "file.filename", "filename", "read-only"}:
        return Drive(name, image_size(filename, opt, driver), filename, driver, ro, "")
    raise OfflineError(f"{opt}: driver={driver}: only null-co and {', '.join(images.FORMATS)} files are in the offline model "
                       "(use online mode)")


def parse_argv(argv: list[str]) -> Args:
    """QEMU's command line, the options the offline model understands; OfflineError otherwise."""
    from dtvm.qemu.opts import OptionError, parse

    args = Args()
    i = 1
    while i < len(argv):
        opt = argv[i]
        norm = "-" + opt.lstrip("-") if opt.startswith("--") else opt

        def value(i: int = i, opt: str = opt) -> str:
            if i + 1 >= len(argv):
                raise OfflineError(f"{opt}: needs a value")
            return argv[i + 1]

        try:
            if norm in ("-M", "-machine"):
                head, pairs = parse(value(), implied="type", keyval=True)
                if head:
                    args.machine = head
                for k, v in pairs:
                    if k == "type":
                        args.machine = v
                    else:
                        args.machine_opts.append((k, v))
                i += 2
            elif norm == "-m":
                args.memory_option = parse_memory(value())
                args.memory = args.memory_option.size
                i += 2
            elif norm == "-smp":
                args.smp = value()
                i += 2
            elif norm == "-cpu":
                args.cpu = value()
                i += 2
            elif norm == "-nodefaults":
                args.nodefaults = True
                i += 1
            elif norm in ("-vga", "-serial", "-parallel", "-net") and value() == "none":
                args.removed.add(norm[1:])
                i += 2
            elif norm in ("-serial", "-parallel"):
                # the default port's back-end only: the guest sees the same port
                port_filename(value(), norm)
                if norm[1:] in args.chardev_for:
                    args.more_ports.append((norm[1:], value()))
                else:
                    args.chardev_for[norm[1:]] = value()
                i += 2
            elif norm == "-usbdevice":
                driver = _USBDEVICE.get(value())
                if driver is None:
                    raise OfflineError(f"-usbdevice {value()}: only {', '.join(sorted(_USBDEVICE))} are in the offline model "
                                       "(use online mode)")
                args.machine_opts.append(("usb", "on"))  # vl.c: -usbdevice turns the machine's USB on
                args.usb_devices.append(driver)
                i += 2
            elif norm == "-usb":
                args.usb = True
                i += 1
            elif norm == "-display":
                if value().split(",", 1)[0] != "none":
                    # the other displays need QEMU's GUI modules; whether they start is the host's
                    raise OfflineError(f"-display {value()}: only -display none is in the offline model (use online mode)")
                i += 2
            elif norm == "-nic":
                head, pairs = parse(value(), implied="type")
                if head != "user":
                    raise OfflineError(f"-nic {head or ''}: only -nic user is in the offline model (use online mode)")
                unknown = [k for k, _ in pairs if k not in _NIC_USER_KEYS]
                if unknown:
                    raise OfflineError(f"-nic user: {unknown[0]}: not a parameter of a user NIC (QEMU refuses it)")
                args.removed.add("net")
                pairs = [("type", head), *pairs]
                args.nics.append(pairs)
                i += 2
            elif norm == "-drive":
                _, pairs = parse(value())
                opts = dict(pairs)
                if opts.get("if") == "floppy":
                    _floppy_drive_option(args, opts, f"-drive {value()}")
                elif opts.get("if") == "ide":
                    _ide_drive_option(args, opts, f"-drive {value()}")
                elif opts.get("if") == "pflash":
                    _pflash_drive_option(args, opts, f"-drive {value()}")
                elif opts.get("if") == "virtio" and "index" not in opts and "id" not in opts:
                    # the BlockBackend is virtioN (N counts the if=virtio drives), its disk comes last
                    name = f"virtio{len(args.virtio_drives)}"
                    drive = _drive_option({**{k: v for k, v in opts.items() if k != "if"}, "if": "none", "id": name}, opt)
                    args.drives[name] = drive
                    args.virtio_drives.append(name)
                    args.block_order.append(name)
                else:
                    drive = _drive_option(opts, opt)
                    args.drives[drive.name] = drive
                    args.none_drives += 1
                    args.block_order.append(drive.name)
                i += 2
            elif norm == "-blockdev":
                _, pairs = parse(value(), keyval=True)
                drive = _blockdev_option(dict(pairs), opt, args.drives)
                args.drives[drive.name] = drive
                i += 2
            elif norm == "-cdrom":
                args.cdrom = value()
                args.block_order.append("cdrom")
                i += 2
            elif norm in ("-hda", "-hdb", "-hdc", "-hdd"):
                index = "abcd".index(norm[3])
                if index in args.hd:
                    raise OfflineError(f"{norm}: IDE index {index} is given twice (QEMU refuses it)")
                args.hd[index] = value()
                args.hd_what[index] = norm
                args.block_order.append(f"hd:{index}")
                i += 2
            elif norm == "-vga" and value() == "std":
                i += 2  # the x86 default; checked against the machine below
                args.vga_std = True
            elif norm == "-global":
                from dtvm.qemu.opts import parse_global

                args.globals_.append(parse_global(value(), where=opt))
                i += 2
            elif norm == "-object":
                # host objects (rng back-ends, iothreads, memory back-ends): the guest sees them only
                # through a device or machine option, which the model checks on its own
                head, pairs = parse(value(), implied="qom-type")
                qom = dict(pairs)
                qtype = head or qom.get("qom-type", "")
                check_object(qtype, qom.get("id", ""), args.objects)
                if qtype == "memory-backend-ram":
                    args.memdevs.append((qom.get("id", ""), qom))
                elif qtype.startswith("memory-backend"):
                    raise OfflineError(f"-object {qtype}: what QEMU reports of it is not in the offline model (use online mode)")
                i += 2
            elif norm == "-device":
                head, pairs = parse(value(), implied="driver")
                if not head:
                    raise OfflineError(f"-device {value()!r}: no driver")
                args.devices.append((head, pairs))
                i += 2
            elif norm == "-netdev":
                args.removed.add("net")  # any -netdev turns the default NIC off
                head, pairs = parse(value(), implied="type")
                if not head:
                    raise OfflineError(f"-netdev {value()}: no type")
                args.netdevs.append((head, pairs))  # host side only: any type
                i += 2
            elif norm in ("-fsdev", "-virtfs"):
                try:
                    fsdev, virtfs = fsdev_option(norm, value())
                except DtvmError as exc:
                    raise OfflineError(str(exc)) from None
                if any(b.id == fsdev.id for b in args.fsdevs):
                    raise OfflineError(f"{opt}: duplicate fsdev id {fsdev.id!r} (QEMU refuses it)")
                args.fsdevs.append(fsdev)
                if virtfs is not None:
                    args.devices.append(("virtio-9p-pci", virtfs))
                i += 2
            elif norm == "-audiodev":
                args.audiodevs.append(parse_audiodev(value(), f"-audiodev {value()}"))
                i += 2
            elif norm == "-chardev":
                head, pairs = parse(value(), implied="backend")
                args.chardevs.append((head or "", pairs))  # host side only: any type
                i += 2
            elif norm in ("-kernel", "-initrd", "-append", "-dtb", "-bios"):
                args.inputs[{"-bios": "firmware"}.get(norm, norm[1:])] = value()
                i += 2
            elif norm in _IGNORED_FLAGS:
                i += 1
            elif norm in _IGNORED_WITH_VALUE:
                i += 2
            else:
                raise OfflineError(f"{opt}: the offline model does not understand this option (use online mode)")
        except OptionError as exc:
            raise OfflineError(f"{opt}: {exc}") from None
    if args.machine is None:
        raise OfflineError("no -machine/-M: name the versioned machine type")
    if "append" in args.inputs and "kernel" not in args.inputs:
        raise OfflineError("-append: only allowed with -kernel (QEMU refuses it otherwise)")
    # vl.c's drive_new queues "-device virtio-blk,drive=virtioN" (virtio-blk-pci on these machines)
    # behind the -device options already parsed
    args.devices += [("virtio-blk-pci", [("drive", name)]) for name in args.virtio_drives]
    return args


# -- building ------------------------------------------------------------------------------------
