"""What dtvm show reads of a description: values made printable, bus addresses in words, and\nthe host side (back-ends and who uses them) from the overlay or a merged tree.\n\nSplit from :mod:`dtvm.vm.show` (the views: text and Graphviz), which renders what this reads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dtvm.dt.tree import DeviceTree, Node, Property
from dtvm.vm import codec

#: Back-end options shown per back-end before "+N more".
MAX_OPTIONS = 4


#: Characters of one value before it is cut with "...".
MAX_VALUE = 60


#: Back-end nodes and overlay fragments read (an overlay is untrusted input too).
MAX_BACKENDS = 4096


MAX_NOTES = 20


#: ``qemu,<kind>`` properties that name a back-end of that kind (besides the kinds the
#: back-ends node itself lists).
BACKEND_KINDS = frozenset(
    {"drive", "netdev", "chardev", "memdev", "audiodev", "fsdev", "blockdev", "iothread"}
)


#: Back-end options worth showing first, in this order (the rest follow in node order).
OPTION_ORDER = ("file", "filename", "format", "driver", "type", "backend", "path", "host", "ifname", "size")


def clean(text: str, limit: int = MAX_VALUE) -> str:
    """``text`` safe for a terminal: non-printable characters escaped, at most ``limit`` characters.

    DT strings and names are untrusted: an ESC, a newline or a bidi override in a compatible
    must not move the cursor, recolour the terminal or break the one-line-per-device layout.
    """
    cut = len(text) > limit
    if cut:
        text = text[:limit]
    if not text.isprintable():
        out = []
        for ch in text:
            if ch.isprintable():
                out.append(ch)
            else:
                o = ord(ch)
                out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
        text = "".join(out)
    return text + "..." if cut else text


def _strings(value: bytes) -> list[str] | None:
    """A value as a list of strings if it looks like one (NUL-terminated UTF-8, no empty parts)."""
    if not value or value[-1] != 0 or value[0] == 0 or b"\0\0" in value:
        return None
    try:
        return value[:-1].decode("utf-8").split("\0")
    except UnicodeDecodeError:
        return None


def _string(node: Node | None, name: str) -> str | None:
    if node is None:
        return None
    prop = node.get_property(name)
    if prop is None:
        return None
    strings = _strings(prop.value)
    return strings[0] if strings else None


def _cells(node: Node, name: str, default: int) -> int:
    prop = node.get_property(name)
    if prop is None or len(prop.value) != 4:
        return default
    return int.from_bytes(prop.value, "big")


def value_text(prop: Property) -> str:
    """A property value for one line: strings as text, else cells or bytes in dtc's notation."""
    value = prop.value
    if not value:
        return ""
    strings = _strings(value)
    if strings is not None:
        return clean(",".join(strings))
    if len(value) % 4 == 0 and len(value) <= 16:
        return (
            "<"
            + " ".join(f"{int.from_bytes(value[i : i + 4], 'big'):#x}" for i in range(0, len(value), 4))
            + ">"
        )
    shown = " ".join(f"{b:02x}" for b in value[:16])
    return f"[{shown}{' ...' if len(value) > 16 else ''}]"


def _compatibles(node: Node) -> list[str] | None:
    """The compatible strings; None without the property, ``["?"]`` if it is not text."""
    prop = node.get_property("compatible")
    if prop is None:
        return None
    return _strings(prop.value) or ["?"]


def _is_backends(node: Node) -> bool:
    return node.name == "qemu-backends" or "qemu,backends" in (_compatibles(node) or [])


@dataclass(frozen=True)
class Address:
    """A unit address decoded for the bus kind: display text, sort key, kind, USB port path."""

    text: str = ""
    key: tuple[int, ...] = ()
    kind: str = ""
    usb: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Bus:
    """What a parent node tells about the addresses of its children (computed once per parent)."""

    acells: int
    scells: int
    around: str  # the parent's compatibles and name, lower case: ISA/IDE/USB/I2C hints
    isa: bool
    parent_addr: Address

    @classmethod
    def of(cls, parent: Node, parent_addr: Address) -> _Bus:
        compats = _compatibles(parent) or []
        around = " ".join(compats).lower() + " " + parent.basename.lower()
        return cls(
            _cells(parent, "#address-cells", 2),
            _cells(parent, "#size-cells", 1),
            around,
            parent.basename == "isa",
            parent_addr,
        )


_USBISH = ("xhci", "ehci", "uhci", "ohci", "usb")


def _decode_address(node: Node, bus: _Bus) -> Address:
    """The address of ``node`` on the bus its parent provides (see the module docstring)."""
    acells, scells = bus.acells, bus.scells
    unit = node.unit_address
    reg = node.get_property("reg")
    fallback = Address(f"@{clean(unit, 40)}", (), "unit") if unit else Address()
    if reg is None or acells == 0 or acells > 4 or len(reg.value) < 4 * acells:
        return fallback
    a = [int.from_bytes(reg.value[i * 4 : i * 4 + 4], "big") for i in range(acells)]
    if acells == 3 and scells == 2:
        hi = a[0]
        busno, dev, fn = (hi >> 16) & 0xFF, (hi >> 11) & 0x1F, (hi >> 8) & 0x7
        text = f"{dev:02x}.{fn:x}" if busno == 0 else f"{busno:02x}:{dev:02x}.{fn:x}"
        return Address(text, (busno, dev, fn), "pci")
    if scells == 0 and acells == 3:
        channel, target, lun = a
        text = f"id {target} lun {lun}" if channel == 0 else f"channel {channel} id {target} lun {lun}"
        return Address(text, (channel, target, lun), "scsi")
    around = bus.around
    parent_addr = bus.parent_addr
    if scells == 0 and acells == 2:
        isa = bool(unit and re.fullmatch(r"[im][0-9a-fA-F]+", unit)) or bus.isa
        if isa:
            space = "io" if a[0] & 1 else "mem"
            return Address(f"{space} {a[1]:#x}", (a[0] & 1, a[1]), "isa")
        return Address(f"bus {a[0]} unit {a[1]}", (a[0], a[1]), "ide")
    if scells == 0 and acells == 1:
        own = " ".join(_compatibles(node) or []).lower()
        if parent_addr.kind == "usb" or any(s in around for s in _USBISH) or "qemu,usb-" in own:
            path = (*parent_addr.usb, a[0]) if parent_addr.kind == "usb" else (a[0],)
            return Address("port " + ".".join(str(p) for p in path), path, "usb", path)
        if "virtio-serial" in around or "qemu,virtconsole" in own or "qemu,virtserialport" in own:
            return Address(f"nr {a[0]}", (a[0],), "nr")
        if "smbus" in around or "i2c" in around:
            return Address(f"addr {a[0]:#x}", (a[0],), "i2c")
        return Address(f"reg {a[0]:#x}", (a[0],), "reg")
    base = 0
    for cell in a:
        base = (base << 32) | cell
    return Address(f"{base:#x}", (base,), "mmio")


@dataclass
class Backend:
    """One node of ``/qemu-backends``: ``<kind>-<n>`` with an ``id`` and its options."""

    kind: str
    ident: str
    options: list[tuple[str, str]]
    users: list[str] = field(default_factory=list)
    more_users: int = 0

    @property
    def label(self) -> str:
        return f"{self.kind} {self.ident}" if self.ident else self.kind

    def options_text(self, limit: int = MAX_OPTIONS) -> str:
        """The options that say most first (file, format, ...), at most ``limit``."""
        rank = {k: i for i, k in enumerate(OPTION_ORDER)}
        ordered = sorted(self.options, key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))
        text = ", ".join(f"{k}={v}" for k, v in ordered[:limit])
        if len(ordered) > limit:
            text += f", +{len(ordered) - limit} more"
        return text


@dataclass
class Ref:
    """A host-side fact about one device: its qdev id, a back-end it uses, or another host hint."""

    kind: str  # "id", a back-end kind, or "" for another property
    value: str
    name: str = ""
    backend: Backend | None = None
    missing: bool = False

    def text(self) -> str:
        if self.kind == "id":
            return f"id={self.value}"
        if not self.kind:
            return f"host {self.name}={self.value}" if self.value else f"host: {self.name}"
        if self.backend is None:
            return f"-> {self.kind} {self.value} (not in back-ends)"
        opts = self.backend.options_text()
        return f"-> {self.kind} {self.value}" + (f" ({opts})" if opts else "")


class _HostSide:
    """What the overlay (or a merged tree) says about the host, keyed by guest node."""

    def __init__(self) -> None:
        self.backends: list[Backend] = []
        self.by_key: dict[tuple[str, str], Backend] = {}
        self.props: dict[int, list[tuple[str, str]]] = {}
        self.notes: list[str] = []
        self.merged = False
        self.kinds: set[str] = set(BACKEND_KINDS)

    def note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)
        elif len(self.notes) == MAX_NOTES:
            self.notes.append("... more notes not shown")

    def add_catalog(self, node: Node) -> None:
        for child in node.live_children():
            if len(self.backends) >= MAX_BACKENDS:
                self.note(f"more than {MAX_BACKENDS} back-ends: the rest are not shown")
                return
            kind = clean(re.sub(r"-\d+$", "", child.name), 40)
            ident = ""
            options: list[tuple[str, str]] = []
            for prop in child.live_props():
                if prop.name == "id" and not ident:
                    ident = value_text(prop)
                elif prop.name == "compatible":
                    continue  # "qemu,<kind>": the kind is already the node name's
                else:
                    options.append((clean(prop.name, 40), value_text(prop)))
            backend = Backend(kind, ident, options)
            self.backends.append(backend)
            self.by_key.setdefault((kind, ident), backend)
            self.kinds.add(kind)

    def refs(self, node: Node) -> list[Ref]:
        """The host-side facts about ``node``: from the overlay, and from the node if merged."""
        pairs = list(self.props.get(id(node), ()))
        if self.merged:
            for prop in node.live_props():
                if prop.name == "qemu,id" or (prop.name.startswith("qemu,") and prop.name[5:] in self.kinds):
                    pairs.append((prop.name, value_text(prop)))
        out: list[Ref] = []
        seen: set[tuple[str, str]] = set()
        # sorted: a merged tree may hold the overlay's properties in another order
        for name, value in sorted(pairs, key=lambda p: (p[0] != "qemu,id", p[0], p[1])):
            if (name, value) in seen:
                continue
            seen.add((name, value))
            short = name[5:] if name.startswith("qemu,") else name
            if short == "hotplugged":
                continue  # shown as the device's hot-plugged marker
            if short == "unplug-pending":
                out.append(Ref("", "", "unplug pending"))
            elif short == "id":
                out.append(Ref("id", value))
            elif short in self.kinds:
                backend = self.by_key.get((short, value))
                out.append(Ref(clean(short, 40), value, name, backend, backend is None))
            else:
                out.append(Ref("", value, clean(short, 40)))
        return out


def _resolve(guest: DeviceTree, path: str, cache: dict[int, dict[str, Node]]) -> Node | None:
    """A ``target-path`` in the guest tree (an alias name as well as a path), via cached child maps."""
    if not path.startswith("/"):
        aliases = guest.root.get_child("aliases")
        alias = _string(aliases, path) if aliases is not None else None
        if alias is None or not alias.startswith("/"):
            return None
        path = alias
    node = guest.root
    for part in path.split("/"):
        if not part:
            continue
        children = cache.get(id(node))
        if children is None:
            children = {}
            for child in node.live_children():
                children.setdefault(child.name, child)
            cache[id(node)] = children
        nxt = children.get(part)
        if nxt is None:
            return None
        node = nxt
    return node


def _host_side(guest: DeviceTree, backend: DeviceTree | None) -> _HostSide:
    host = _HostSide()
    merged = guest.root.get_child("qemu-backends")
    if merged is not None:
        host.add_catalog(merged)
        host.merged = True
    if backend is None:
        host.backends.sort(key=lambda b: (b.kind, b.ident))
        return host
    cache: dict[int, dict[str, Node]] = {}
    fragments = extra = 0
    for frag, target_path, over in codec.fragments(backend):
        fragments += 1
        if fragments > MAX_BACKENDS:
            host.note(f"more than {MAX_BACKENDS} overlay fragments: the rest are not read")
            break
        for sub in over.live_children():
            if _is_backends(sub):
                host.add_catalog(sub)
            else:
                extra += 1
        props = [(p.name, value_text(p)) for p in over.live_props()]
        if target_path is None:
            how = (
                "targets a phandle (target)"
                if frag.get_property("target") is not None
                else "has no target-path"
            )
            if props:
                host.note(f"overlay {clean(frag.name)} {how}: its properties are not shown")
            continue
        target = _resolve(guest, target_path, cache)
        if target is None:
            if props:
                host.note(
                    f"overlay {clean(frag.name)}: target {clean(target_path, 200)} is not in the guest tree"
                )
            continue
        if props:
            host.props.setdefault(id(target), []).extend(props)
    # by kind and id, not node order: fdtoverlay reverses the order of the nodes it adds, and a
    # merged tree must read the same as the guest tree plus its overlay
    host.backends.sort(key=lambda b: (b.kind, b.ident))
    if extra:
        host.note(f"the overlay adds {extra} other node(s), not shown")
    if fragments == 0:
        host.note("the back-end file has no overlay fragments (__overlay__ nodes)")
    return host
