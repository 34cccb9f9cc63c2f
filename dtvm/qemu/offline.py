"""Offline: a loose QEMU command line to the precise device model, without running QEMU.

The model is QEMU's own answers, stored (``dtvm/qemu/machines/``): per machine type, what the
bare machine builds (its ``-nodefaults`` snapshot) and what the defaults add; per device type
and bus context, a device instance as QEMU built it (a *profile*: its properties, PCI ids, child
buses and children).  The command line is parsed with QEMU's option syntax, defaults are added
unless removed, each ``-device`` is instantiated from its profile with the user's properties,
and addresses are assigned the way QEMU 7.2 assigns them.  Anything outside the recorded matrix
is an error naming the option ("use online mode"), never a guess.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from dtvm.errors import DtvmError
from dtvm.qemu.config import guest_state
from dtvm.qemu.models import (
    OfflineError,
    apply_deltas,
    config_from_dict,
    device_from_dict,
    device_to_dict,
    load_model,
    offline_machine,
    option_delta,
    option_deltas,
    selected_version,
)
from dtvm.qemu.offline_argv import (
    Args,
    chardev_filename,
    parse_argv,
    port_filename,
)
from dtvm.qemu.offline_audio import set_audiodev
from dtvm.qemu.offline_busless import BUSLESS, busless_place, busless_values, number_busless
from dtvm.qemu.offline_dt import compose as compose_dt
from dtvm.qemu.offline_dt import msi_lost, plug_dt_devices, reprofile_without_msi
from dtvm.qemu.offline_expander import EXPANDER_BUS_NAMES, bridges_only, own_child_follows
from dtvm.qemu.offline_flash import attach_flash, firmware_options
from dtvm.qemu.offline_ide import (
    all_buses,
    disk_facts,
    drop_default_cdrom,
    ide_place,
    ide_serials,
    legacy_ide,
)
from dtvm.qemu.offline_isa import FLOPPY, I2C, drop_default_floppy, floppy_place, i2c_place
from dtvm.qemu.offline_links import LinkNotes, describe_offline_links, note_links
from dtvm.qemu.offline_made import (
    Pending,
    check_device_links,
    device_link_names,
    device_link_value,
    resolve_device_links,
)
from dtvm.qemu.offline_memdev import check_memory_options, place_memory_devices, requested_sizes
from dtvm.qemu.offline_memhp import set_memory_slots
from dtvm.qemu.offline_pcie import check_pcie_slots
from dtvm.qemu.offline_usb import CCID, ccid_place, never_attached, number_unattached
from dtvm.qemu.trust import split_host_facts, trust
from dtvm.qemu.versions import REFERENCE, Versions, parse_version, versions
from dtvm.vm.buses import device_facts, link_machine_chardevs

if TYPE_CHECKING:
    from dtvm.qemu.argv import Probe
from dtvm.vm.model import PCI_BUSES, Backend, Bus, Config, Device

__all__ = ["OfflineError", "device_from_dict", "device_to_dict", "load_model", "offline_config", "offline_prober"]


# -- helpers ------------------------------------------------------------------------------------
#: virtio PCI properties that change the device's PCI ids (legacy 0x1000 + n, modern 0x1040 + n)
_ID_CHANGING = frozenset({"disable-legacy", "disable-modern"})


def _walk(dev: Device) -> list[Device]:
    out = [dev]
    for bus in dev.buses:
        for child in bus.devices:
            out.extend(_walk(child))
    return out


def _norm(value: str, kind: str | None) -> str:
    """A user's option value as QEMU's info qtree reports it."""
    low = value.lower()
    if kind == "bool" or low in ("on", "off", "true", "false", "yes", "no"):
        return "on" if low in ("on", "true", "yes") else "off" if low in ("off", "false", "no") else value
    if kind and re.fullmatch(r"u?int\d*|size", kind or ""):
        try:
            return str(int(value, 0))
        except ValueError:
            return value
    if re.fullmatch(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", value):
        return value.lower()
    return value


_ADDRESS_KEYS = {"addr", "bus", "id", "port", "unit", "scsi-id", "lun", "channel", "nr", "iobase", "reg", "cad"}


def offline_config(argv: list[str]) -> Config:
    """The precise device model QEMU 7.2 would build for ``argv``; OfflineError naming what the
    model does not cover."""
    from dtvm.qemu import assign

    args = parse_argv(argv)
    machine = offline_machine(args.machine or "", argv[0])
    if args.machine not in (machine.type, machine.alias):
        raise OfflineError(f"-machine {args.machine}: not a machine dtvm describes")
    if machine.binary != os.path.basename(argv[0]):
        raise OfflineError(f"-machine {args.machine}: a machine of {machine.binary}, not of {os.path.basename(argv[0])}")
    model = load_model(machine)
    from dtvm.vm.model import MACHINE_HOST_PROPS

    for k, v in list(args.machine_opts):
        if k in ("pflash0", "pflash1"):
            if v not in args.drives or args.drives[v].blk_name:
                raise OfflineError(f"-machine {k}={v}: not a -blockdev node of the command line")
            if int(k[-1]) in args.pflash:  # -drive if=pflash took that unit too
                raise OfflineError(f"-drive if=pflash,unit={k[-1]}: clashes with -machine {k}= (QEMU refuses it)")
            args.pflash[int(k[-1])] = args.drives[v]
            args.machine_opts.remove((k, v))
        elif k == "usb":
            args.usb = _norm(v, "bool") == "on"
            args.machine_opts.remove((k, v))
        elif k in ("accel", "dump-guest-core", "mem-merge", "suppress-vmdesc") and k in MACHINE_HOST_PROPS | {"mem-merge", "dump-guest-core", "suppress-vmdesc"}:
            args.machine_opts.remove((k, v))  # host behaviour, nothing the guest sees
    x86 = machine.arch in ("x86_64", "i386")
    bad = [f"{k}={_norm(v, None)}" for k, v in args.machine_opts if model["machine-options"].get(k) != _norm(v, None)]
    bad += firmware_options(args, machine.type, model)  # virt: firmware makes other hardware (offline_flash)
    if args.cpu is not None and not x86 and f"-cpu {args.cpu}" in (model.get("option-variants") or {}):
        bad.append(f"-cpu {args.cpu}")  # on a DT machine a CPU model is a recorded DT of its own
    elif args.cpu is not None and args.cpu not in model.get("cpu-types", {}):
        raise OfflineError(f"-cpu {args.cpu}: not a CPU model in the offline model of {machine.type} (features and "
                           "models QEMU cannot run under TCG: use online mode)")
    fdc_from_delta = bool(args.floppies) and x86 and not _has_driver(model["variants"]["nodefaults"]["root"], "isa-fdc")
    if args.floppies and (not x86 or _FLOPPY not in (model.get("option-variants") or {})):
        raise OfflineError(f"-drive if=floppy: no floppy controller in the offline model of {machine.type} (use online mode)")
    if fdc_from_delta:
        bad.append(_FLOPPY)  # q35 makes its isa-fdc only for a floppy drive: recorded as an option
    dt_memory = re.sub(r"-\d+\.\d+$", "", machine.type) == "virt" and machine.arch in ("aarch64", "arm", "riscv64")
    turns_off = device_facts()["turns-off-default"]
    # a -device turns its default off, but -serial/-parallel X still make their port (vl.c)
    removed = set(args.removed) | {turns_off[d] for d, _ in args.devices if d in turns_off and turns_off[d] not in args.chardev_for}
    cdrom, floppy = "cdrom" in removed, "floppy" in removed
    removed -= {"cdrom", "floppy"}
    tags = (["nodefaults"] if args.nodefaults else sorted(removed)) + (["usb"] if args.usb else [])
    variant = "+".join(sorted(tags)) or "defaults"  # the models name variants by their sorted tags
    # virt: options, CPU model and -smp as QEMU's recorded DTs (offline_dt.py); None: an older model
    dt_made = compose_dt(model, variant, bad, args.smp, args.nodefaults and not args.usb) \
        if dt_memory and variant in model["variants"] else None
    option_variant, deltas = option_deltas(model, bad, args.nodefaults and not args.usb and not fdc_from_delta) \
        if dt_made is None else (None, [])
    for opt, key in ((args.memory, "m"), (args.smp, "smp")):
        if opt is not None and not x86 and not (key == "m" and dt_memory) and not (key == "smp" and dt_made):
            raise OfflineError(f"-{key} {opt}: not in the offline model of {machine.type} (use online mode)")

    if variant not in model["variants"]:
        raise OfflineError(f"{', '.join(sorted(removed))}: this combination of removed defaults is not in the offline model (use online mode)")
    if args.nodefaults and x86:
        deltas += _port_deltas(model, args)
    if dt_made is not None:
        config = config_from_dict(dt_made[0])
        if dt_made[1] is not None:
            config.dtb = dt_made[1]
    elif option_variant is not None and not deltas:
        config = config_from_dict(model["option-variants"][option_variant])
    elif deltas:
        if option_variant is not None:
            deltas.insert(0, (option_variant, option_delta(model["variants"]["nodefaults"],
                                                           model["option-variants"][option_variant])))
        config = config_from_dict(apply_deltas(model["variants"][variant], deltas))
    else:
        config = config_from_dict(model["variants"][variant])
    if (cdrom or args.none_drives > 2) and not args.nodefaults:
        drop_default_cdrom(config, None if cdrom else "none2")
    if floppy and not args.nodefaults:
        drop_default_floppy(config, args)
    if args.vga_std and not any(d.driver == "VGA" for d in config_from_dict(model["variants"]["defaults"]).devices()):
        raise OfflineError("-vga std: not this machine's default display (use online mode)")
    if args.hda is not None:
        args.hd.setdefault(0, args.hda)
    if args.cdrom is not None or args.hd:
        if not x86:
            raise OfflineError("-cdrom/-hda: only x86 IDE is in the offline model (use online mode)")
        legacy = legacy_ide(config, model, args)
    else:
        legacy = {}
    if args.memory is not None:
        _set_memory(config, _mebibytes(args.memory))
        if dt_memory:
            _set_dt_memory(config, _mebibytes(args.memory), args.memory)
        if args.memory_option is not None:
            set_memory_slots(config, args.memory_option, _mebibytes(args.memory), dt_memory)
    if args.smp is not None and dt_made is None:
        _set_cpus(config, args.smp)
    if args.cpu is not None and x86:
        config.machine.cpu_type = model["cpu-types"][args.cpu]

    # options that take the MSI controller away (gic-version=3 with its=off): PCI devices realize
    # otherwise, from the model's no-msi profiles; a default PCI device (the NIC) has none
    no_msi = (model.get("no-msi") or {"same": [], "profiles": {}}) \
        if dt_made is not None and msi_lost(model, dt_made[1]) else None
    if no_msi is not None:
        machine_pci = {d.driver for d in config_from_dict(model["variants"]["nodefaults"]).devices() if d.address[0] == "pci"}
        for dev in [d for d in config.devices() if d.address[0] == "pci" and d.driver not in machine_pci]:
            if not reprofile_without_msi(dev, model["profiles"], no_msi):
                _no_msi_refusal(dev.driver, bad)
    ids: dict[str, Device] = {d.qdev_id: d for d in config.devices() if d.qdev_id}
    bus_by_name: dict[str, list[Bus]] = {}
    for b in all_buses(config):
        bus_by_name.setdefault(b.name, []).append(b)
    # the default NIC (-net nic) takes its MAC when parsed, also where the machine makes no NIC of
    # it (riscv64 virt): the next NIC gets the next one
    macs = sum(1 for d in config.devices() if "mac" in d.props)
    mac_next = model["first-mac"] + max(macs, 0 if args.nodefaults or "net" in removed else 1)
    profiles: dict[str, Any] = model["profiles"]
    kind_of = {key.split("@", 1)[0]: p["kind"] for key, p in profiles.items()}
    explicit: dict[int, set[str]] = {}
    links: LinkNotes = {}
    rules = versions()
    attached: dict[str, Device] = {}  # a drive's name: the device that took it
    unattached: list[Device] = []  # USB devices QEMU does not attach (offline_usb.py)
    busless: list[Device] = []  # devices on no bus (offline_busless.py)
    pending_links: Pending = []  # links to devices on no bus, counted once they are numbered (offline_made.py)
    if args.floppies:
        _floppies(config, model, args, attached, fdc_from_delta)
    attach_flash(config, args, x86, attached)
    _more_ports(config, args, x86, explicit)
    nic_devices: list[tuple[str, list[tuple[str, str]]]] = []
    generated = sum(1 for b in config.backends if re.fullmatch(r"#net\d+", b.id))
    makes_nic = model.get("nic-makes-device", True)  # riscv64 virt 7.2: -nic makes its netdev alone
    for n, pairs in enumerate(args.nics):
        opts = dict(pairs)
        ntype = opts.pop("type")
        model_name = opts.pop("model", None) or model.get("default-nic")
        if not model_name and makes_nic:
            raise OfflineError(f"-nic: {machine.type} has no default NIC model: give model= (use online mode)")
        # QEMU names the netdev of an id-less -nic from its counter (the reader numbers those
        # #net0, #net1, ... in creation order, after the ones the machine's defaults made)
        netdev = opts.pop("id", None) or f"#net{generated + n}"
        nic_opts = [("mac", opts.pop("mac"))] if "mac" in opts else []
        args.netdevs.insert(n, (ntype, [("id", netdev), *opts.items()]))
        if makes_nic and model_name:
            nic_devices.append((model_name, [("netdev", netdev), *nic_opts]))
        elif not nic_opts:
            mac_next += 1  # net_init_nic takes the NIC's MAC when it parses -nic, made or not
    # NICs of -nic are made during machine init, before any -device (and made differently:
    # their own profiles)
    # then -usbdevice's (vl.c's usb_parse, on the machine's USB bus), then the -device options
    usb_devices: list[tuple[str, list[tuple[str, str]]]] = [(d, []) for d in args.usb_devices]
    for n_dev, (driver, pairs) in enumerate([*nic_devices, *usb_devices, *args.devices]):
        from_nic = n_dev < len(nic_devices)
        from_usb = not from_nic and n_dev < len(nic_devices) + len(usb_devices)
        where = f"-nic model={driver}" if from_nic else f"-usbdevice ({driver})" if from_usb else f"-device {driver}"
        user = dict(pairs)
        if driver in device_facts()["isa-ports"] and not from_nic:
            _isa_port(config, driver, user, where, explicit)
            continue
        kind = kind_of.get(driver)
        if kind is not None:
            check_device_links(config, driver, user, where)  # offline_made.py
        if kind is None:
            raise OfflineError(f"{where}: {driver} is not in the offline model (use online mode)")
        requested = {k: v for k, v in user.items() if k in ("bus", "addr", "multifunction", "port", "channel", "scsi-id", "lun", "nr", "cad")}
        address: tuple[str, tuple[int, ...]]
        if kind == "ide":
            bus, address = ide_place(config, bus_by_name, user, where)
        elif kind == "isa":
            bus, address = _isa_fixed(config, profiles.get(f"{driver}@ISA"), {k: v for k, v in user.items()
                                      if k not in device_link_names(driver)}, where,
                                      _count_driver(model["variants"]["nodefaults"]["root"], driver))
        elif kind == "virtio-mmio":
            bus = _free_transport(config, requested.get("bus"), where)
            address = ("virtio", ())
        elif kind == BUSLESS:
            bus, address = busless_place(config, driver, profiles[f"{driver}@System"], where)
        elif kind == CCID:
            bus, address = ccid_place(config, bus_by_name, user, where)
        elif kind == FLOPPY:
            bus, address = floppy_place(config, bus_by_name, user, where)
        elif kind == I2C:
            bus, address = i2c_place(config, profiles[f"{driver}@i2c-bus"], user, where)
        else:
            named = bus_by_name if "bus" in requested else None
            try:
                placement = assign.assign(config, driver, kind, requested, hotplug=False, console=driver == "virtconsole",
                                          named=named)
            except DtvmError as exc:
                placement = _behind_auto_hub(config, profiles, driver, kind, requested, named)
                if placement is None:
                    raise OfflineError(f"{where}: {exc}") from None
            bus, address = placement.bus, placement.address
        context = "nic" if from_nic else _context(bus)
        profile = profiles.get(f"{driver}@{context}")
        if no_msi is not None and context in ("pci-root", "pci-port", "pci-bridge", "nic"):
            key = f"{driver}@{context}"
            profile = profile if key in no_msi["same"] else no_msi["profiles"].get(key)
            if profile is None:
                _no_msi_refusal(driver, bad)
        if profile is None:
            raise OfflineError(f"{where}: no profile for {driver} on a {context} bus in the offline model (use online mode)")
        dev = device_from_dict(profile["device"], bus)
        bridges_only(bus, dev, where, "bus" in requested)
        explicit[id(dev)] = set(user)
        qid = user.get("id")
        dev.qdev_id = qid
        dev.address = address
        types = profile["types"]
        defaults = profile["defaults"]
        targets = [dev] + [c for b in dev.buses for c in b.devices if c.address[0] == "virtio"]
        for key, raw in pairs:
            if key in _ADDRESS_KEYS or key == "driver":
                continue
            # a virtio proxy aliases its device's properties; qtree shows them on the device
            target = next((t for t in reversed(targets) if key in profile["props-of"].get(t.driver, [])), None)
            if target is None:
                raise OfflineError(f"{where}: property {key!r} is not in the offline model of {driver} (use online mode)")
            ptype = types.get(target.driver, {}).get(key) or ""
            if key in device_link_names(driver):  # a vmmouse's i8042, an IPMI interface's BMC (offline_made.py)
                dev.props[key] = device_link_value(bus, dev, key, raw, ids, where, pending_links)
                continue
            if ptype.startswith("link<"):
                # a QOM link (rng=, iothread=...): info qtree has none; the trust model's guest
                # links (canbus, memdev) are described (offline_links.py)
                links.setdefault(id(dev), (dev, {}))[1][key] = (ptype, raw, where)  # online: the user's device's
                continue
            value = _norm(raw, ptype)
            if rules.is_derived(target.driver, key):
                _pass_to_child(target, key, value, rules)  # never described on the device itself
                continue
            if key in _ID_CHANGING and defaults.get(target.driver, {}).get(key) != value:
                # the profile's PCI ids are those of the recorded default (a modern-only virtio device
                # has other ids): an answer would be a guess (found: intel-iommu's scalable case)
                raise OfflineError(f"{where}: {key}={value}: it changes the PCI ids QEMU gives {driver}, recorded "
                                   "with its default only in the offline model (use online mode)")
            if key in ("drive", "netdev", "chardev", "audiodev", "fsdev"):
                if key == "fsdev" and not any(b.id == value for b in args.fsdevs):
                    raise OfflineError(f"{where}: fsdev {value!r} is not an -fsdev of this command line (QEMU refuses it)")
                target.backends[key] = value
            elif defaults.get(target.driver, {}).get(key) == value:
                target.props.pop(key, None)
            else:
                target.props[key] = value
        selection = trust().host_selections.get(driver)
        opened = selection.opened(user) if selection is not None else None
        if opened is not None:  # which host devices exist is the host's (trust.json host-selections)
            raise OfflineError(f"{where}: {opened}: QEMU opens this host device when it makes the {driver} "
                               "(and refuses it without one): not in the offline model (use online mode)")
        set_audiodev(targets, profile, user, args.audiodevs, selected_version(), where)  # offline_audio.py
        note_links(links, dev, types, where)  # offline_links.py
        check_memory_options(driver, user, where)  # offline_memdev.py
        if kind == BUSLESS:
            busless_values(driver, user, dev.props, profile, where)
            busless.append(dev)
        elif never_attached(profile):
            unattached.append(dev)  # its port stays claimed until every device is placed
        own_child_follows(dev, defaults, where)
        if "drive" in user:
            drive = args.drives.get(user["drive"])
            if drive is None:
                raise OfflineError(f"{where}: drive {user['drive']!r} is not a -drive/-blockdev of this command line")
            disk_facts(targets, drive, dev, profile)
            if driver in (device_facts().get("makes-own-child") or {}):
                # usb-storage: the disk it makes sees the drive, which stays the parent's
                for child in (c for b in dev.buses for c in b.devices):
                    disk_facts([child], drive, dev, profile)
                    if "drive" in child.backends:
                        dev.backends.pop("drive", None)
            attached[drive.name] = next((t for t in reversed(targets) if t.backends.get("drive") == drive.name), dev)
        nic = next((t for t in reversed(targets) if "mac" in t.props), None)
        if nic is not None and "mac" not in user:
            nic.props["mac"] = ":".join(f"{b:02x}" for b in mac_next.to_bytes(6, "big"))
            mac_next += 1
        _rename_buses(dev, qid)
        bus.devices.append(dev)
        for b in _walk_buses(dev):
            bus_by_name.setdefault(b.name, []).append(b)
        if qid:
            ids[qid] = dev
    number_unattached(unattached)
    number_busless(config, busless)
    resolve_device_links(config, pending_links)
    check_pcie_slots(config, profiles)
    if dt_made is not None:
        plug_dt_devices(config, model, dt_made[2])  # virtio-iommu-pci writes into QEMU's DT
    _derived_props(config, explicit, no_msi is not None)
    ide_serials(config, explicit)
    for ntype, pairs in args.netdevs:
        opts = dict(pairs)
        ident = opts.pop("id", "")
        config.backends.append(Backend("netdev", ident, _reported_netdev(ntype, opts)))
    for head, pairs in args.chardevs:
        opts = dict(pairs)
        filename = chardev_filename(head, set(opts), f"-chardev {head},id={opts.get('id', '')}")
        config.backends.append(Backend("chardev", opts.get("id", ""), {"filename": filename}))
    for port, spec in args.chardev_for.items():
        # the chardev serial_parse makes (serial0, parallel0); under -nodefaults it is not in the
        # variant the port's delta came from
        if port not in args.removed and not any(b.kind == "chardev" and b.id == f"{port}0" for b in config.backends):
            config.backends.append(Backend("chardev", f"{port}0", {}))
        for backend in config.backends:
            if backend.kind == "chardev" and backend.id == f"{port}0":
                backend.options["filename"] = port_filename(spec, f"-{port}")
    _drive_backends(config, args, attached, legacy)
    ram = next((b for b in config.backends if b.kind == "memdev"), None)
    for ident, qom in args.memdevs:
        config.backends.append(_memdev(ident, qom, ram))
    for driver, prop, raw in args.globals_:
        _apply_global(config, profiles, driver, prop, raw, explicit)
    config.backends += args.fsdevs  # every -fsdev, as online reads them from the command line (fsdev.py)
    config.backends.sort(key=lambda b: (b.kind, b.id))
    config.inputs.update(args.inputs)
    link_machine_chardevs(config)
    split_host_facts(config)
    describe_offline_links(config, links, args.objects)  # after the split, as online (config.py)
    place_memory_devices(config, [d for d, _ in links.values()], args.memory_option)  # offline_memdev.py
    requested_sizes(config)  # offline_memdev.py
    # registers the guest programs are not described (the models were read before guest-state
    # was data: the online reader drops the same properties)
    state = guest_state()
    for dev in config.devices():
        for prop in state.get(dev.driver, ()):
            dev.props.pop(prop, None)
    return config


def _no_msi_refusal(driver: str, options: list[str]) -> None:
    raise OfflineError(f"{driver} with {', '.join(options)}: these options leave PCI without an MSI controller, where "
                       "QEMU realizes PCI devices otherwise (or refuses them), and the offline model has no such "
                       "recording of it (use online mode)")


def _pass_to_child(dev: Device, key: str, value: str, rules: Versions) -> None:
    """A property a device hands to the device it makes (usb-storage's block sizes to its
    scsi-hd, since QEMU 10.0: versions.json ``child-props``), set where the models' QEMU passes it
    on; before that version the child keeps what its back-end gives, as the profile recorded."""
    version = parse_version(selected_version() or REFERENCE)
    for child in (c for b in dev.buses for c in b.devices):
        if rules.passed_to_child(dev.driver, child.driver, version).get(key, "") is None:
            child.props[key] = value


def _derived_props(config: Config, explicit: dict[int, set[str]], no_msi: bool = False) -> None:
    """What QEMU derives at realize: virtio disks' queues from -smp, SAS addresses from the slot;
    their MSI-X vectors too, unless there is no MSI controller (``no_msi``: QEMU sets them to 0)."""
    rules, by_address = device_facts().get("queues-follow-smp") or {}, device_facts().get("address-derived") or {}
    cpus = config.machine.cpus or 1
    for dev in config.devices():
        prop = by_address.get(dev.driver)
        if prop in dev.props and dev.address[0] == "pci" and prop not in explicit.get(id(dev), set()):
            slot, func = dev.address[1]  # bus number 0: bridges are not numbered before firmware runs
            dev.props[prop] = str((int(dev.props[prop]) & ~0xFFFFFF) | slot << 8 | func)
        rule = rules.get(dev.driver)
        if rule is None or explicit.get(id(dev), set()) & {"num-queues", "num_queues", "vectors"}:
            continue
        for child in (c for b in dev.buses for c in b.devices if c.driver == rule["child"]):
            child.props[str(rule["queues"])] = str(cpus)
            if not no_msi:
                dev.props["vectors"] = str(cpus + int(rule["vectors-extra"]))



def _more_ports(config: Config, args: Args, x86: bool, explicit: dict[int, set[str]]) -> None:
    """The second and later ``-serial X``/``-parallel X``: the PC machines make an ISA port of each
    at the next index (serial_hds_isa_init, parallel_hds_isa_init; before the NICs), its chardev
    named ``serial1``, ``parallel1``, ... as vl.c names them."""
    counts = {"serial": 0, "parallel": 0}
    for port, spec in args.more_ports:
        where = f"-{port} {spec}"
        if not x86 or port in args.removed:
            raise OfflineError(f"{where}: a second {port} port is not in the offline model of this machine (use online mode)")
        counts[port] += 1
        ident = f"{port}{counts[port]}"
        if port == "parallel" or counts[port] < len(device_facts()["isa-ports"]["isa-serial"]["iobase"]):
            _isa_port(config, f"isa-{port}", {"chardev": ident}, where, explicit)
        # else: vl.c takes any number of -serial, the machine makes ports of the first four only
        config.backends.append(Backend("chardev", ident, {"filename": port_filename(spec, f"-{port}")}))


def _port_deltas(model: dict[str, Any], args: Args) -> list[tuple[str, dict[str, Any]]]:
    """``-serial X``/``-parallel X`` (not none) under -nodefaults still make the machine's port 0
    (x86): as a delta that adds the port as the variant keeping only it has it."""
    out = []
    for port, driver, keeps in (("serial", "isa-serial", "net+parallel+vga"), ("parallel", "isa-parallel", "net+serial+vga")):
        if port in args.chardev_for and port not in args.removed:
            delta = option_delta(model["variants"]["nodefaults"], model["variants"][keeps])
            added = [a for a in delta["added"] if a["device"]["driver"] == driver]
            if len(added) != 1:
                raise OfflineError(f"-{port} under -nodefaults: no {driver} in the offline model (use online mode)")
            out.append((f"-{port}", {"removed": [], "added": added, "props": [], "machine": {}, "options": {},
                                     "unset-options": [], "inputs": {}, "alone": False}))
    return out


def _mebibytes(text: str) -> int:
    """``-m`` as QEMU reads a plain size: a number (MiB) or with one B/K/M/G/T suffix; bytes out."""
    m = re.fullmatch(r"(\d+)([BKMGT]?)", text.strip(), re.IGNORECASE)
    if not m:
        raise OfflineError(f"-m {text}: only a plain size (512, 2G, 134217728B) is in the offline model (use online mode)")
    scale = {"": 1 << 20, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return int(m.group(1)) * scale


def _memdev(ident: str, qom: dict[str, str], ram: Backend | None) -> Backend:
    """A -object memory-backend-ram as query-memdev reports it: the machine RAM's defaults (the
    same backend type) with the object's own size and flags."""
    what = f"-object memory-backend-ram,id={ident}"
    known = {"qom-type", "id", "size", "merge", "dump", "prealloc", "share", "reserve"}
    extra = sorted(set(qom) - known)
    if ram is None or extra or "size" not in qom:
        raise OfflineError(f"{what}: {extra[0] + '=' if extra else 'this object'}: not in the offline model (use online mode)")
    opts = dict(ram.options)
    opts["size"] = str(_mebibytes(qom["size"]) if not qom["size"].isdigit() else int(qom["size"]))
    for key in ("merge", "dump", "prealloc", "share", "reserve"):
        if key in qom:
            opts[key] = _norm(qom[key], "bool")
    return Backend("memdev", ident, opts)


def _set_memory(config: Config, ram: int) -> None:
    """RAM size and, on q35, the split the PCI host reports: below 4 GiB up to 2 GiB when the RAM
    reaches the 2.75 GiB PCI hole (pc_q35_init with gigabyte alignment), the rest above."""
    config.machine.memory = ram
    for dev in config.root.devices:
        if dev.driver == "q35-pcihost":
            below = 0x80000000 if ram >= 0xB0000000 else ram
            dev.props["below-4g-mem-size"] = str(below)
            if ram - below:
                dev.props["above-4g-mem-size"] = str(ram - below)
            else:
                dev.props.pop("above-4g-mem-size", None)
        elif dev.driver == "i440FX-pcihost" and ram >= 0xE0000000:
            raise OfflineError("-m: RAM above the i440fx PCI hole is not in the offline model (use online mode)")
    for backend in config.backends:
        if backend.kind == "memdev" and "size" in backend.options:
            backend.options["size"] = str(ram)


def _set_dt_memory(config: Config, ram: int, text: str) -> None:
    """virt (arm, riscv): RAM is one /memory node of QEMU's DT at a fixed base; its size is all
    -m changes there (measured: 128M and 512M DTs differ in that reg alone).  Up to 2 GiB, which
    every CPU of these machines addresses without highmem."""
    from dtvm.dt.dtb import read_dtb, write_dtb

    if config.dtb is None or not 0 < ram <= 2 << 30 or ram % (1 << 20):
        raise OfflineError(f"-m {text}: on this machine only whole MiB up to 2 GiB are in the offline model (use online mode)")
    tree = read_dtb(config.dtb)
    nodes = [n for n in tree.root.live_children() if n.name.startswith("memory@")]
    if len(nodes) != 1 or nodes[0].get_property("reg") is None or len(nodes[0]["reg"].value) != 16:
        raise OfflineError(f"-m {text}: this machine's DT has no single 64-bit /memory node (use online mode)")
    base = bytes(nodes[0]["reg"].value)[:8]
    nodes[0].set_property("reg", base + ram.to_bytes(8, "big"))
    config.dtb = write_dtb(tree)


def _set_cpus(config: Config, text: str) -> None:
    """``-smp N[,maxcpus=M][,sockets=S][,cores=C][,threads=T]`` as QEMU 7.2's smp_parse reads it
    for machine types since 6.2 (cores preferred: what is not given is 1, cores fill the rest),
    with one die and one cluster; the topology is what query-hotpluggable-cpus then lists."""
    m = re.fullmatch(r"(?:cpus=)?(\d+)((?:,[a-z-]+=\d+)*)", text.strip())
    n = int(m.group(1)) if m else 0
    given = {k: int(v) for k, v in (item.split("=") for item in m.group(2).split(",")[1:])} if m else {}
    unknown = sorted(set(given) - {"sockets", "cores", "threads", "maxcpus", "dies", "clusters"})
    if not m or not 1 <= n <= 255 or unknown or given.get("dies", 1) != 1 or given.get("clusters", 1) != 1:
        raise OfflineError(f"-smp {text}: only cpus, maxcpus, sockets, cores and threads (one die, one cluster) "
                           "are in the offline model (use online mode)")
    maxcpus = given.get("maxcpus", n)
    sockets, threads = given.get("sockets", 1), given.get("threads", 1)
    cores = given.get("cores") or maxcpus // max(1, sockets * threads)
    if not (sockets and threads and cores) or sockets * cores * threads != maxcpus or n > maxcpus:
        raise OfflineError(f"-smp {text}: QEMU refuses this topology (sockets * cores * threads must be maxcpus)")
    if maxcpus != n and "socket-id" not in config.machine.topology:
        raise OfflineError(f"-smp {text}: maxcpus on a machine without CPU hot-plug is not in the offline model "
                           "(use online mode)")
    config.machine.cpus, config.machine.max_cpus = n, maxcpus
    if "core-id" in config.machine.topology:
        config.machine.topology.update({"socket-id": sockets, "core-id": cores, "thread-id": threads})



#: devices whose BlockBackend reports a removable medium (they have a change_media_cb in QEMU)
_REMOVABLE = frozenset({"ide-cd", "scsi-cd", "floppy", "sd-card"})


def _drive_backends(config: Config, args: Args, attached: dict[str, Device], legacy: dict[str, str]) -> None:
    """The block back-ends as QEMU's ``query-block`` reports them (the online overlay): every
    BlockBackend a ``-drive`` names, and each ``-blockdev`` node a device took (its anonymous
    BlockBackend shows the node's name); QEMU numbers the node names it generates (#blockN) in
    command-line order, which the description keeps from 0."""
    generated = {name: f"#block{n}" for n, name in enumerate(legacy.get(k, k) for k in args.block_order)}
    for backend in config.backends:
        if backend.kind == "drive" and backend.id in generated:
            backend.options["node-name"] = generated[backend.id]
    for drive in args.drives.values():
        dev = attached.get(drive.name)
        if not drive.blk_name and dev is None:
            continue  # a -blockdev node no device took has no BlockBackend
        removable = dev is None or dev.driver in _REMOVABLE or dev.props.get("removable") == "on"
        if not drive.fmt:  # an empty drive (-drive if=floppy without file=): no medium
            if drive.name != "floppy0":  # the reader leaves out an empty floppy0, as every pc has one
                config.backends.append(Backend("drive", drive.name, {"removable": "on"}))
            continue
        file = drive.reported or (drive.file if drive.file is not None else f"{drive.fmt}://")
        config.backends.append(Backend("drive", drive.name, {
            "file": file, "drv": drive.fmt, "ro": "on" if drive.readonly else "off",
            "node-name": generated.get(drive.name, drive.name), "removable": "on" if removable else "off"}))


_FLOPPY = "-drive if=floppy"  # the option variant that records an empty floppy drive


def _has_driver(bus: dict[str, Any], driver: str) -> bool:
    return _count_driver(bus, driver) > 0


def _count_driver(bus: dict[str, Any], driver: str) -> int:
    return sum((d["driver"] == driver) + sum(_count_driver(b, driver) for b in d["buses"]) for d in bus["devices"])


def _floppies(config: Config, model: dict[str, Any], args: Args, attached: dict[str, Device], fresh: bool) -> None:
    """The floppy drives of -drive if=floppy on the machine's isa-fdc (pc's own, or the one q35
    makes for them: ``fresh``, its recorded empty drive dropped), each unit's drive type picked
    from the image's size as QEMU's pick_geometry does (data/devices.yaml floppy-formats)."""
    fdc = next((d for d in config.devices() if d.driver == "isa-fdc" and d.buses), None)
    if fdc is None:
        raise OfflineError(f"{_FLOPPY}: no floppy controller in this variant of the offline model (use online mode)")
    if fdc.props.get("fallback") or any(drv in ("isa-fdc", "floppy") for drv, _, _ in args.globals_):
        raise OfflineError(f"{_FLOPPY}: with -global isa-fdc/floppy properties, not in the offline model (use online mode)")
    recorded = config_from_dict(model["option-variants"][_FLOPPY])
    template = device_to_dict(next(d for d in recorded.devices() if d.driver == "floppy"))
    bus = fdc.buses[0]
    if fresh:
        bus.devices.clear()
    formats = device_facts().get("floppy-formats") or []
    for unit, drive in sorted(args.floppies.items()):
        bus.devices = [d for d in bus.devices if d.address != ("floppy", (unit,))]
        config.backends = [b for b in config.backends if not (b.kind == "drive" and b.id == drive.name)]
        dev = device_from_dict(template, bus)
        dev.address = ("floppy", (unit,))
        sectors = drive.size // 512
        dev.props["drive-type"] = next((str(t) for t, secs, tracks, heads in formats
                                        if drive.fmt and secs * tracks * heads == sectors), "288")
        dev.backends["drive"] = drive.name
        bus.devices.append(dev)
        attached[drive.name] = dev
        if not drive.fmt:
            args.drives[drive.name] = drive  # its BlockBackend, without a medium
    bus.devices.sort(key=lambda d: d.address[1])


def _behind_auto_hub(config: Config, profiles: dict[str, Any], driver: str, kind: str, requested: dict[str, str],
                     named: dict[str, list[Bus]] | None) -> Any:
    """A USB device given no port where its bus has one free port left: QEMU 7.2's usb_claim_port
    plugs a usb-hub (as -device usb-hub makes it) into that port first and the device into the
    hub's first port.  None where that is not the case (the assigner's refusal stands)."""
    from dtvm.qemu import assign

    hub_profile = profiles.get("usb-hub@usb-bus")
    if kind != assign.USB or driver == "usb-hub" or "port" in requested or hub_profile is None:
        return None
    try:
        hub_place = assign.assign(config, "usb-hub", kind, requested, hotplug=False, named=named)
    except DtvmError:
        return None
    hub = device_from_dict(hub_profile["device"], hub_place.bus)
    hub.address = hub_place.address
    hub_place.bus.devices.append(hub)
    try:
        return assign.assign(config, driver, kind, requested, hotplug=False, named=named)
    except DtvmError:
        hub_place.bus.devices.remove(hub)
        return None


def _isa_fixed(config: Config, profile: dict[str, Any] | None, user: dict[str, str], where: str,
               machine_made: int = 0) -> tuple[Bus, tuple[str, tuple[int, ...]]]:
    """An ISA device at its type's own place (pvpanic's and ib700's I/O port, sga's none): the
    machine's ISA bus, the address recorded; another port is not modelled, nor more of the type
    than the profile's probe made: one beside the ``machine_made`` the bare machine has (pc's
    isa-fdc, every PC's mc146818rtc: QEMU makes the user's at the same port)."""
    bus = next((b for b in all_buses(config) if b.type == "ISA"), None)
    if bus is None or profile is None or set(user) - {"id", "chardev", "netdev", "audiodev"}:
        raise OfflineError(f"{where}: this ISA device{' with ' + ', '.join(sorted(set(user) - {'id'})) if user else ''} "
                           "is not in the offline model (use online mode)")
    driver = profile["device"]["driver"]
    if sum(d.driver == driver for d in bus.devices) > machine_made:
        raise OfflineError(f"{where}: a second {driver} is not in the offline model (use online mode)")
    kind, values = profile["device"]["address"]
    return bus, (str(kind), tuple(int(v) for v in values))


def _isa_port(config: Config, driver: str, user: dict[str, str], where: str, explicit: dict[int, set[str]]) -> None:
    """An ISA serial or parallel port: index from the type's counter unless given, then its base."""
    table = device_facts()["isa-ports"][driver]
    isa = [b for b in all_buses(config) if b.type == "ISA"]
    if len(isa) != 1:
        raise OfflineError(f"{where}: no ISA bus on this machine")
    bus = isa[0]
    extra = sorted(set(user) - {"id", "index", "chardev", "bus"})
    if extra:
        raise OfflineError(f"{where}: {extra[0]}=: not in the offline model (use online mode)")
    if driver == "isa-parallel" and "chardev" not in user:
        raise OfflineError(f"{where}: QEMU cannot create a parallel port without a chardev (give chardev=)")
    counter = sum(1 for d in config.devices() if d.driver == driver)
    index = int(user["index"], 0) if "index" in user else counter
    if not 0 <= index < len(table["iobase"]):
        raise OfflineError(f"{where}: index {index}: QEMU has {len(table['iobase'])} such ports")
    iobase, irq = table["iobase"][index], table["irq"][index]
    props = {"index": str(index)}
    if irq != table["irq-default"]:
        props["irq"] = str(irq)
    dev = Device(driver, ("isa", (iobase,)), props, {"chardev": user["chardev"]} if "chardev" in user else {},
                 qdev_id=user.get("id"), parent=bus)
    explicit[id(dev)] = set(user)
    bus.devices.append(dev)


def _apply_global(config: Config, profiles: dict[str, Any], driver: str, prop: str, raw: str,
                  explicit: dict[int, set[str]]) -> None:
    """-global DRIVER.PROP=VALUE: the property of every device of that type, machine-made ones
    too, as QEMU applies globals at creation; only for types the model has a profile of."""
    profile = next((p for key, p in profiles.items() if key.split("@", 1)[0] == driver), None)
    where = f"-global {driver}.{prop}"
    if profile is None or not any(prop in names for names in profile["props-of"].values()):
        raise OfflineError(f"{where}: not in the offline model (use online mode)")
    ptype = next((t[prop] for t in profile["types"].values() if prop in t), "")
    if ptype.startswith("link<") or prop in _ADDRESS_KEYS or prop in ("drive", "netdev", "chardev", "audiodev", "fsdev"):
        raise OfflineError(f"{where}: not a guest property the offline model sets (use online mode)")
    value = _norm(raw, ptype)
    default = profile["defaults"].get(driver, {}).get(prop)
    for dev in config.devices():
        if dev.driver != driver or prop in explicit.get(id(dev), set()):  # -device wins over -global
            continue
        # a virtio proxy's aliased property lands on its virtio device, as info qtree shows it
        children = [c for b in dev.buses for c in b.devices if c.address[0] == "virtio"]
        target = next((c for c in children if prop in profile["props-of"].get(c.driver, [])), dev)
        tdefault = profile["defaults"].get(target.driver, {}).get(prop, default)
        if value == tdefault:
            target.props.pop(prop, None)
        else:
            target.props[prop] = value





def _reported_netdev(ntype: str, opts: dict[str, str]) -> dict[str, str]:
    """A netdev's options as ``info network`` reports them (what the online reader sees): for
    ``user``, QEMU 7.2's slirp reports only ``net=ADDR,restrict=on|off`` (net/slirp.c info_str);
    its other options (hostfwd, ...) are not shown, so the description cannot hold them either."""
    if (ntype == "socket" and "listen" in opts) or (ntype == "stream" and _norm(opts.get("server", "off"), "bool") == "on"):
        return {"type": ntype}  # "s0: index=0,type=socket," until a peer connects (measured, 7.2)
    if ntype != "user":
        # the others report host state (a tap's ifname, a peer's address), or a line the reader
        # cannot split (socket mcast/udp, a hub port)
        raise OfflineError(f"-netdev {ntype}: what QEMU reports of it is not in the offline model (use online mode)")
    if "net" in opts:
        # slirp masks the address with a mask it may derive from the address class
        raise OfflineError(f"-netdev user,net={opts['net']}: the network QEMU derives is not in the offline model (use online mode)")
    net = "10.0.2.0"
    restrict = "on" if _norm(opts.get("restrict", "off"), "bool") == "on" else "off"
    return {"type": "user", "net": net, "restrict": restrict}



def _context(bus: Bus) -> str:
    """The bus a profile was recorded on: a PCI bus by what owns it (host, PCIe port, bridge; an
    expander's is a root bus), because QEMU resolves some properties by it (virtio's disable-legacy)."""
    owner = bus.parent
    if bus.type in PCI_BUSES:
        if owner is None or owner.address[0] != "pci" or bus.type not in ("PCI", "PCIE"):
            return "pci-root"
        return "pci-port" if bus.type == "PCIE" else "pci-bridge"
    return bus.type


def _free_transport(config: Config, name: str | None, where: str) -> Bus:
    """virtio-mmio: the first virtio-*-device takes the highest free transport (NOTES)."""
    buses = [b for b in all_buses(config) if b.type == "virtio-mmio-bus"]
    if name is not None:
        named = [b for b in buses if b.name == name]
        if not named or named[0].devices:
            raise OfflineError(f"{where}: bus {name!r} is not a free virtio-mmio transport")
        return named[0]
    free = [b for b in buses if not b.devices]
    if not free:
        raise OfflineError(f"{where}: no free virtio-mmio transport")
    return max(free, key=lambda b: int(b.name.rsplit(".", 1)[-1]) if b.name.rsplit(".", 1)[-1].isdigit() else -1)


def _walk_buses(dev: Device) -> list[Bus]:
    out: list[Bus] = []
    for d in _walk(dev):
        out.extend(d.buses)
    return out


def _rename_buses(dev: Device, qid: str | None) -> None:
    """Child buses are named after the device's id (a bridge's bus is the id itself)."""
    own = device_facts().get("makes-own-child") or {}
    for d in _walk(dev):
        for bus in (b for b in d.buses if b.type != "virtio-pci-bus"):  # a virtio proxy's is always "virtio-bus"
            if bus.type in EXPANDER_BUS_NAMES or qid is None:
                bus.name = EXPANDER_BUS_NAMES.get(bus.type) or f"{dev.driver}.{bus.index}@anon{id(dev)}"
            elif bus.type in PCI_BUSES and (d is dev or d.driver in own.get(dev.driver, ())):
                bus.name = qid  # (a bridge a device makes itself takes its maker's id: a pxb's)
            else:
                bus.name = f"{qid}.{bus.index}"


#: -cpu, -smp and -m create no qdev device on the machines with a DT (their CPUs and RAM are not
#: in the device model), and their offline models do not take them: a probe leaves them out there
_DEVICE_NEUTRAL = ("-cpu", "-smp", "-m")


def _smp_cpus(text: str) -> int | None:
    """The CPU count of a -smp value (``2`` or ``cpus=2,...``), None when it does not say."""
    head = text.split(",", 1)[0]
    if head.isdigit():
        return int(head)
    m = re.search(r"(?:^|,)cpus=(\d+)", text)
    return int(m.group(1)) if m else None


def offline_prober(argv: list[str]) -> Probe:
    """What the machine of a ``dtb2qemu`` probe makes by itself, without QEMU: the offline model's
    device model for the argv, and the machine properties the machine schema records (the type's
    option and input defaults, and the options the argv gives)."""
    from dtvm.qemu.argv import Probe
    from dtvm.qemu.schema import load_schema

    machine_arg = argv[argv.index("-machine") + 1] if "-machine" in argv else ""
    machine = offline_machine(machine_arg.split(",", 1)[0], argv[0])
    cpus: int | None = None
    if machine.dt:
        kept: list[str] = []
        skip = False
        for i, arg in enumerate(argv):
            if skip:
                skip = False
                continue
            if arg in _DEVICE_NEUTRAL:
                if arg == "-smp" and i + 1 < len(argv):
                    cpus = _smp_cpus(argv[i + 1])
                skip = True
                continue
            kept.append(arg)
        argv = kept
    config = offline_config(argv)
    if cpus is not None:
        # the interrupt controller the machine makes is sized by -smp (virt's create_gic: num-cpu)
        follow = device_facts().get("follow-smp") or {}
        for dev in config.devices():
            for prop in follow.get(dev.driver, []):
                dev.props[prop] = str(cpus)
    schema = load_schema(machine, selected_version())
    props: dict[str, Any] = {}
    props.update({str(k): str(v) for k, v in (schema.defaults.get("options") or {}).items()})
    props.update({str(k): str(v) for k, v in (schema.defaults.get("inputs") or {}).items()})
    props["usb"] = "off"  # a property of every machine (MachineState), off unless given
    props.update(config.machine.options)
    # the QEMU the models were recorded from: the description is held to that version's catalog
    from dtvm.qemu.versions import parse_version

    return Probe(config, props, complete=False, version=parse_version(selected_version()))
