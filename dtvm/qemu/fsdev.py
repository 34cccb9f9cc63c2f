"""The fsdevs of a command line (``-fsdev``, ``-virtfs``) as host back-ends, and back again.

A 9p device (virtio-9p-pci and its transitional variants, virtio-9p-device on virtio-mmio)
shows the guest a 9p transport and its ``mount_tag``; what it exports is the host's: the fsdev
(``-fsdev local,id=ID,path=DIR,security_model=M,readonly=on``, ``proxy``, ``synth``, or the
``-virtfs`` shorthand that makes an fsdev and a ``virtio-9p-pci`` from one option).  So the fsdev
is a back-end like a disk image: the device's ``fsdev`` reference and the fsdev's options belong
to the back-end overlay, never to the guest tree.

QEMU 7.2 reports an fsdev only by the id in the 9p device's ``fsdev`` property (``info qtree``):
there is no ``query-fsdev`` and the fsdev is no QOM object, so its driver, directory and
settings are known only from the command line.  :func:`fsdevs_of_argv` reads them from the one
dtvm started (online) or was given (offline); a VM read over ``--qmp`` leaves them unknown, and
``dtvm backend --fsdev NODE=DIR`` completes the overlay.  :func:`fsdev_args` writes them back,
and a ``synth`` stand-in for the check start (QEMU's in-memory test file system: no host
directory opened); :func:`fsdev_option` is the offline model's reading of one option.
"""

from __future__ import annotations

from collections.abc import Sequence

from dtvm.errors import DtvmError
from dtvm.qemu.opts import parse, render
from dtvm.vm.model import Backend

__all__ = ["FSDEV_OPTIONS", "FsdevError", "fsdev_args", "fsdev_option", "fsdevs_of_argv"]

#: the options of each fsdev driver dtb2qemu gives back (QEMU 7.2's qemu-fsdev-opts; ``local`` and
#: ``proxy`` also take ``throttling.*``); ``sock_fd`` (an inherited file descriptor) cannot be
#: given to a rebuild
FSDEV_OPTIONS = {
    "local": ("path", "security_model", "readonly", "writeout", "fmode", "dmode", "multidevs"),
    "proxy": ("socket", "readonly", "writeout"),
    "synth": ("readonly",),
}

#: QemuOpts' boolean spellings (``qemu_opt_get_bool``'s parse_option_bool)
_TRUE = frozenset({"on", "yes", "true", "y"})
_FALSE = frozenset({"off", "no", "false", "n"})


class FsdevError(DtvmError):
    """An fsdev dtvm cannot describe or give back (names the option)."""

    exit_code = 1


def _options(text: str, where: str, virtfs: bool) -> tuple[str, dict[str, str]]:
    head, pairs = parse(text, implied="fsdriver", where=where)
    ident = next((v for k, v in pairs if k == "id"), None)  # QemuOpts takes the first id
    opts: dict[str, str] = {}
    for key, value in pairs:
        if key != "id":
            opts[key] = value  # QEMU reads the last of a repeated key
    driver = opts.pop("fsdriver", head or "")
    tag = opts.pop("mount_tag", None) if virtfs else None
    ident = ident or tag  # -virtfs: the fsdev's id is the mount tag unless id= says otherwise
    if not ident:
        raise FsdevError(f"{where}: no id")
    if "readonly" in opts:
        value = opts["readonly"].lower()
        opts["readonly"] = "on" if value in _TRUE else "off" if value in _FALSE else opts["readonly"]
    return ident, {"driver": driver, **dict(sorted(opts.items()))}


def fsdevs_of_argv(argv: Sequence[str] | None) -> list[Backend]:
    """The fsdev back-ends a QEMU command line makes (``-fsdev`` and ``-virtfs``, one or two
    leading dashes), with their options as written (``readonly`` spelled on/off), sorted by key:
    the same fsdev read from either form, or from dtb2qemu's rebuild, gives the same overlay."""
    out: list[Backend] = []
    args = list(argv or [])
    for i, arg in enumerate(args[:-1]):
        name = arg[1:] if arg.startswith("--") else arg
        if name not in ("-fsdev", "-virtfs"):
            continue
        ident, opts = _options(args[i + 1], f"{name} {args[i + 1]}", name == "-virtfs")
        out = [b for b in out if b.id != ident]
        out.append(Backend("fsdev", ident, opts))
    return out


def fsdev_option(name: str, text: str) -> tuple[Backend, list[tuple[str, str]] | None]:
    """One ``-fsdev``/``-virtfs`` as the offline model takes it: its back-end, and for ``-virtfs``
    the ``-device virtio-9p-pci`` QEMU 7.2's vl.c queues for it among the ``-device`` options
    (anonymous, ``fsdev=ID,mount_tag=TAG``; virtio-9p-pci on every machine, measured).  What QEMU
    refuses at that stage is refused in its words."""
    where = f"{name} {text}"
    ident, opts = _options(text, where, name == "-virtfs")
    driver = opts["driver"]
    if driver not in FSDEV_OPTIONS:
        raise FsdevError(f"{where}: fsdriver {driver!r} not found (QEMU refuses it)" if driver else
                         f"{where}: no fsdriver specified (QEMU refuses it)")
    if driver == "local":
        for key in ("path", "security_model"):
            if not opts.get(key):
                raise FsdevError(f"{where}: {key} property not set (QEMU refuses it)")
    device = None
    if name == "-virtfs":
        _, pairs = parse(text, implied="fsdriver", where=where)
        tag = next((v for k, v in reversed(pairs) if k == "mount_tag"), "")
        if not tag:
            raise FsdevError(f"{where}: no mount_tag (QEMU refuses it: usage: -virtfs fsdriver,mount_tag=tag)")
        device = [("fsdev", ident), ("mount_tag", tag)]
    return Backend("fsdev", ident, opts), device


def fsdev_args(ident: str, opts: dict[str, str], where: str, host: list[str]) -> tuple[list[str], list[str]]:
    """``-fsdev DRIVER,id=ID,...`` from the overlay's options (what it makes QEMU open is added to
    ``host``), and the check start's stand-in: ``-fsdev synth,id=ID`` (QEMU's in-memory file
    system, which opens nothing of the host's; the 9p device is the same for the guest).

    A driver or option dtvm does not give back is refused by name; an fsdev the overlay names
    without its options (a VM read over QMP, which does not report them) asks for them."""
    driver = opts.get("driver", "")
    if not driver:
        raise FsdevError(f"{where}: the back-end overlay does not say what this fsdev exports (QEMU reports "
                         "no fsdev over QMP): give it with dtvm backend --fsdev NODE=DIR[,security_model=M][,readonly]")
    allowed = FSDEV_OPTIONS.get(driver)
    if allowed is None:
        raise FsdevError(f"{where}: fsdev driver {driver!r} is not one dtvm gives back ({', '.join(FSDEV_OPTIONS)})")
    extra = sorted(k for k in set(opts) - {"driver", *allowed}
                   if not (driver != "synth" and k.startswith("throttling.")))
    if extra:
        raise FsdevError(f"{where}: fsdev option {extra[0]!r} is not one dtvm gives back for {driver} "
                         f"({', '.join(allowed)})")
    given = [*(k for k in allowed if k in opts), *sorted(k for k in opts if k.startswith("throttling."))]
    real = ["-fsdev", render(driver, [("id", ident), *((k, opts[k]) for k in given)], where, implied="fsdriver")]
    if driver == "local":
        host.append(f"directory {opts.get('path', '')!r} (fsdev {ident}"
                    f"{', read-only' if opts.get('readonly') == 'on' else ''})")
    elif driver == "proxy":
        host.append(f"socket {opts.get('socket', '')!r} (fsdev {ident}, virtfs-proxy-helper)")
    null = ["-fsdev", render("synth", [("id", ident)], where, implied="fsdriver")]
    return real, null
