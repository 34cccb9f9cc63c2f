"""``dtvm show`` and ``dtvm.vm.show``: the readable view of a VM description.

Expectations are derived from the blobs themselves, read with pylibfdt (libfdt's own reader,
not dtvm's) and decoded here by the conventions ``dtvm/translate.py`` documents (PCI phys.hi,
ISA ``<1 port>``, SCSI ``<channel id lun>``, USB ports nested under hubs, ...): every device
node of the fixtures must appear at its place in the drawn tree, under its parent, with its
address and driver; the overlay's references must appear next to the device they target.
Graphviz (``dot``) is the oracle for the DOT output.  The fixtures in ``fixtures/show/`` are
``dtvm qemu2dtb`` outputs (see the README there).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtvm.dt.dtb import read_dtb, write_dtb
from dtvm.dt.tree import DeviceTree, Node
from dtvm.errors import BlobError
from dtvm.vm.show import MAX_DEPTH, MAX_LINES, MAX_SIBLINGS, render_dot, render_text

libfdt = pytest.importorskip("libfdt", reason="pylibfdt is the independent reader of the fixtures")

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "show"
NAMES = ("q35", "virt")
DOT = shutil.which("dot")
needs_dot = pytest.mark.skipif(
    DOT is None, reason="Graphviz `dot` not installed (apt-get install graphviz): it is the DOT oracle"
)
TREE_PREFIX = re.compile(r"^((?:│   |    |├── |└── )*)")


def blob(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def trees(name: str) -> tuple[DeviceTree, DeviceTree]:
    return read_dtb(blob(f"{name}.dtb")), read_dtb(blob(f"{name}.backend.dtbo"))


# ---------------------------------------------------------------------------
# the fixtures through pylibfdt


@dataclass
class FNode:
    path: str
    name: str
    props: dict[str, bytes]
    parent: FNode | None = None
    children: list[FNode] = field(default_factory=list)

    def strings(self, prop: str) -> list[str]:
        value = self.props.get(prop)
        return value[:-1].decode().split("\0") if value else []

    def cells(self, prop: str) -> list[int]:
        value = self.props.get(prop, b"")
        return list(struct.unpack(f">{len(value) // 4}I", value))

    def cell(self, prop: str, default: int) -> int:
        c = self.cells(prop)
        return c[0] if len(c) == 1 else default


def libfdt_tree(data: bytes) -> FNode:
    """The whole tree as pylibfdt reads it (independent of dtvm's reader)."""
    fdt = libfdt.Fdt(data)
    quiet = (libfdt.NOTFOUND,)

    def props(off: int) -> dict[str, bytes]:
        out = {}
        p = fdt.first_property_offset(off, quiet)
        while p >= 0:
            prop = fdt.get_property_by_offset(p)
            out[prop.name] = bytes(prop)
            p = fdt.next_property_offset(p, quiet)
        return out

    root = FNode("/", "", props(0))
    stack = [(0, root)]
    while stack:
        off, node = stack.pop()
        sub = fdt.first_subnode(off, quiet)
        while sub >= 0:
            child = FNode(fdt.get_path(sub), fdt.get_name(sub), props(sub), node)
            node.children.append(child)
            stack.append((sub, child))
            sub = fdt.next_subnode(sub, quiet)
    return root


def walk(node: FNode):
    yield node
    for c in node.children:
        yield from walk(c)


def find(root: FNode, path: str) -> FNode:
    for n in walk(root):
        if n.path == path:
            return n
    raise KeyError(path)


def is_summarised(node: FNode) -> bool:
    """``/qemu`` (the machine line), ``/cpus`` (counted there), ``/qemu-backends`` (its own section)."""
    top = node
    while top.parent is not None and top.parent.parent is not None:
        top = top.parent
    return top.name in ("qemu", "cpus", "qemu-backends")


def expected_driver(node: FNode) -> str:
    first = node.strings("compatible")[0]
    return first[5:] if first.startswith("qemu,") else first


def expected_address(node: FNode) -> list[str]:
    """The address tokens by the conventions in translate.py's docstring, decoded here."""
    parent = node.parent
    assert parent is not None
    acells, scells = parent.cell("#address-cells", 2), parent.cell("#size-cells", 1)
    reg = node.cells("reg")
    if not reg:  # no bus address: the unit address as written, if any (platform-bus@c000000)
        return ["@" + node.name.split("@", 1)[1]] if "@" in node.name else []
    pcompat = " ".join(parent.strings("compatible"))
    if (acells, scells) == (3, 2):  # PCI: phys.hi = bus << 16 | dev << 11 | fn << 8
        return [f"{(reg[0] >> 11) & 0x1F:02x}.{(reg[0] >> 8) & 7:x}"]
    if (acells, scells) == (2, 0) and parent.name.split("@")[0] == "isa":
        assert reg[0] == 1, "ISA I/O space"
        return ["io", hex(reg[1])]
    if (acells, scells) == (3, 0):
        assert reg[0] == 0
        return ["id", str(reg[1]), "lun", str(reg[2])]
    if (acells, scells) == (1, 0) and ("xhci" in pcompat or "usb-hub" in pcompat):
        ports = [reg[0]]
        up = parent
        while "usb-hub" in " ".join(up.strings("compatible")) and up.parent is not None:
            ports.insert(0, up.cells("reg")[0])
            up = up.parent
        return ["port", ".".join(map(str, ports))]
    if (acells, scells) == (1, 0) and "virtio-serial" in pcompat:
        return ["nr", str(reg[0])]
    if (acells, scells) == (1, 0) and "SMB" in pcompat:
        return ["addr", hex(reg[0])]
    if scells > 0:
        value = 0
        for c in reg[:acells]:
            value = value << 32 | c
        return [hex(value)]
    raise AssertionError(f"{node.path}: no convention for cells {(acells, scells)}")


# ---------------------------------------------------------------------------
# the drawn tree


@dataclass
class Line:
    depth: int
    text: str
    children: list[Line] = field(default_factory=list)


def parse_tree(text: str) -> Line:
    """The device section of the text view as a tree of lines (by the box-drawing prefix)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("/  ") or line == "/")
    root = Line(0, lines[start])
    stack = [root]
    for line in lines[start + 1 :]:
        prefix = line[: len(line) - len(TREE_PREFIX.sub("", line, count=1))]
        if not prefix:
            break  # "back-ends:" and the notes
        depth = len(prefix) // 4
        assert depth <= len(stack), f"line nested too deep for its predecessor: {line!r}"
        del stack[depth:]
        item = Line(depth, line[len(prefix) :])
        stack[-1].children.append(item)
        stack.append(item)
    return root


def line_matches(line: Line, address: list[str], driver: str) -> bool:
    tokens = line.text.split()
    if tokens and tokens[0] == "-":
        tokens = tokens[1:]
    return tokens[: len(address) + 1] == [*address, driver]


def match_devices(froot: FNode, text: str) -> dict[str, Line]:
    """Each device node of the blob -> its line, found under its parent's line."""
    found: dict[str, Line] = {}
    pending = [(froot, parse_tree(text))]
    while pending:
        fnode, line = pending.pop()
        used: set[int] = set()
        for child in fnode.children:
            if is_summarised(child) or "compatible" not in child.props:
                assert not any("compatible" in n.props for n in walk(child)) or is_summarised(child), (
                    child.path
                )
                continue
            addr, drv = expected_address(child), expected_driver(child)
            hits = [c for c in line.children if id(c) not in used and line_matches(c, addr, drv)]
            assert hits, f"{child.path}: no line `{' '.join(addr)}  {drv}` under {line.text!r}"
            used.add(id(hits[0]))
            found[child.path] = hits[0]
            pending.append((child, hits[0]))
        assert len(used) == len(line.children), (
            f"lines under {line.text!r} that are no device: {[c.text for c in line.children if id(c) not in used]}"
        )
    return found


# ---------------------------------------------------------------------------
# text view


@pytest.mark.parametrize("name", NAMES)
def test_every_device_at_its_address_under_its_parent(name: str) -> None:
    guest, backend = trees(name)
    text = render_text(guest, backend, encoding="utf-8", collapse=False)
    froot = libfdt_tree(blob(f"{name}.dtb"))
    found = match_devices(froot, text)
    devices = [
        n for n in walk(froot) if "compatible" in n.props and not is_summarised(n) and n.parent is not None
    ]
    assert len(found) == len(devices) > 20


@pytest.mark.parametrize("name", NAMES)
def test_guest_visible_facts(name: str) -> None:
    guest, backend = trees(name)
    text = render_text(guest, backend, encoding="utf-8", collapse=False)
    froot = libfdt_tree(blob(f"{name}.dtb"))
    found = match_devices(froot, text)
    macs = 0
    for path, line in found.items():
        node = find(froot, path)
        mac = node.props.get("local-mac-address")
        if mac:
            macs += 1
            assert "mac " + ":".join(f"{b:02x}" for b in mac) in line.text
        if "vendor-id" in node.props:
            assert f"[{node.cell('vendor-id', 0):04x}:{node.cell('device-id', 0):04x}]" in line.text
    assert macs == 2


@pytest.mark.parametrize("name", NAMES)
def test_machine_line(name: str) -> None:
    guest, _ = trees(name)
    text = render_text(guest, encoding="utf-8")
    qemu = find(libfdt_tree(blob(f"{name}.dtb")), "/qemu")
    first = text.splitlines()[0]
    assert first.startswith(f"machine {qemu.strings('machine')[0]} ({qemu.strings('arch')[0]})")
    cpus = qemu.cell("cpus", 0)
    assert f"{cpus} cpu{'s' if cpus != 1 else ''} {qemu.strings('cpu-type')[0]}" in first
    hi, lo = qemu.cells("memory-size")
    assert f"memory {((hi << 32) | lo) >> 20} MiB" in first
    options = text.splitlines()[1]
    for prop, value in qemu.props.items():
        if prop.startswith("qemu,"):
            assert f"{prop[5:]}={value[:-1].decode()}" in options


@pytest.mark.parametrize("name", NAMES)
def test_backend_references_next_to_their_devices(name: str) -> None:
    guest, backend = trees(name)
    text = render_text(guest, backend, encoding="utf-8", collapse=False)
    found = match_devices(libfdt_tree(blob(f"{name}.dtb")), text)
    overlay = libfdt_tree(blob(f"{name}.backend.dtbo"))
    catalog = {}
    for node in walk(overlay):
        if node.name == "qemu-backends":
            for b in node.children:
                catalog[(b.name.rsplit("-", 1)[0], b.strings("id")[0] if "id" in b.props else "")] = b
    assert catalog
    section = text.split("\nback-ends:\n", 1)[1]
    for kind, ident in catalog:
        assert re.search(rf"^\S+ {re.escape(f'{kind} {ident}'.strip())}(  |$)", section, re.M), (kind, ident)
    refs = 0
    for frag in overlay.children:
        target = frag.strings("target-path")[0]
        over = next(c for c in frag.children if c.name == "__overlay__")
        for prop, value in over.props.items():
            text_value = value[:-1].decode()
            if target == "/":
                continue
            line = found[target].text
            refs += 1
            kind = prop[5:]
            if kind == "id":
                assert f"id={text_value}" in line
            else:
                assert f"-> {kind} {text_value}" in line
                if (kind, text_value) in catalog:
                    assert "(not in back-ends)" not in line
                    used = next(s for s in section.splitlines() if f" {kind} {text_value}  " in s)
                    assert f"<- {target}" in used
                else:
                    assert f"-> {kind} {text_value} (not in back-ends)" in line
    assert refs >= 3


def apply_overlay(base: Path, overlay: Path, out: Path) -> None:
    tool = shutil.which("fdtoverlay")
    cmd = [tool] if tool else [sys.executable, "-m", "dtvm", "fdtoverlay"]
    subprocess.run([*cmd, "-i", str(base), "-o", str(out), str(overlay)], check=True, timeout=60)


@pytest.mark.parametrize("name", NAMES)
def test_merged_description_reads_the_same(name: str, tmp_path: Path) -> None:
    """fdtoverlay's merge of guest + back-end overlay shows exactly what the pair shows."""
    out = tmp_path / "merged.dtb"
    apply_overlay(FIXTURES / f"{name}.dtb", FIXTURES / f"{name}.backend.dtbo", out)
    guest, backend = trees(name)
    merged = read_dtb(out.read_bytes())
    assert render_text(merged, encoding="utf-8") == render_text(guest, backend, encoding="utf-8")


def test_deterministic_and_collapsed() -> None:
    guest, backend = trees("virt")
    a = render_text(guest, backend, encoding="utf-8")
    assert a == render_text(*trees("virt"), encoding="utf-8")
    assert render_dot(guest, backend) == render_dot(*trees("virt"))
    mmio = [
        n
        for n in walk(libfdt_tree(blob("virt.dtb")))
        if n.strings("compatible") == ["virtio,mmio"] and not n.children
    ]
    first, last = sorted(n.cells("reg")[1] for n in mmio)[:: len(mmio) - 1]
    assert f"{first:#x}..{last:#x}  virtio,mmio  ({len(mmio)} nodes)" in a


def test_hotplugged_marker_and_ascii_fallback() -> None:
    guest, backend = trees("q35")
    node = guest.get_node("/pcie/ethernet@2")
    assert node is not None
    node.set_property("qemu,hotplugged", b"")
    text = render_text(guest, backend, encoding="ascii")
    text.encode("ascii")
    line = next(line for line in text.splitlines() if "e1000e" in line)
    assert line.startswith("|-- ") is False and "|   |-- 02.0" in line
    assert "hotplugged" in line and "hotplugged=" not in line
    assert "`-- " in text and "├" not in text
    assert "\x1b[" in render_text(guest, backend, color=True) and "\x1b" not in text


def test_untrusted_strings_cannot_reach_the_terminal_raw() -> None:
    root = Node("")
    dev = Node("evil@1")
    dev.set_property("compatible", b"qemu,\x1b]0;pwned\x07drv\nnext\xe2\x80\xae\0")
    dev.set_property("reg", struct.pack(">II", 0, 1))
    dev.set_property("qemu,note", b"a\rb\x9b31m" + b"x" * 500 + b"\0")
    root.set_property("#address-cells", struct.pack(">I", 2))
    root.set_property("#size-cells", struct.pack(">I", 2))
    root.add_child(dev)
    dt = read_dtb(write_dtb(DeviceTree(root)))
    text = render_text(dt, encoding="utf-8")
    assert not any(ch in text for ch in "\x1b\x07\r\x9b\u202e")
    line = next(line for line in text.splitlines() if "drv" in line)
    assert "\\x1b]0;pwned\\x07drv\\x0anext\\u202e" in line and len(line) < 200


# ---------------------------------------------------------------------------
# dot


@needs_dot
@pytest.mark.parametrize("name", NAMES)
def test_dot_accepted_by_graphviz(name: str) -> None:
    guest, backend = trees(name)
    dot = render_dot(guest, backend)
    svg = run_dot(dot)
    titles = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")}
    devices = [
        n for n in walk(libfdt_tree(blob(f"{name}.dtb"))) if "compatible" in n.props and not is_summarised(n)
    ]
    drawn = {t for t in titles if t and re.fullmatch(r"d\d+", t)}
    assert len(drawn) >= len(devices) - 31 + 1  # virt's empty virtio-mmio slots share one node
    assert any(t and re.fullmatch(r"b\d+", t) for t in titles)
    assert any(t and "->" in t and t.split("->")[1].startswith("b") for t in titles)


def run_dot(source: str) -> ET.Element:
    assert DOT is not None
    proc = subprocess.run([DOT, "-Tsvg"], input=source.encode("utf-8"), capture_output=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr.decode()
    return ET.fromstring(proc.stdout)


@needs_dot
def test_dot_labels_escaped() -> None:
    """Quotes, backslashes (also a trailing one), newlines and braces survive as text."""
    nasty = ['a"b', "back\\slash\\", "new\nline", "}; x -> y [label=", "\\N\\G\\l"]
    root = Node("")
    root.set_property("#address-cells", struct.pack(">I", 1))
    root.set_property("#size-cells", struct.pack(">I", 1))
    for i, text in enumerate(nasty):
        dev = Node(f"d@{i}")
        dev.set_property("compatible", text.encode() + b"\0")
        dev.set_property("reg", struct.pack(">II", i, 1))
        root.add_child(dev)
    svg = run_dot(render_dot(DeviceTree(root)))
    texts = [t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    expected = ['a"b', "back\\slash\\", "new\\x0aline", "}; x -> y [label=", "\\N\\G\\l"]
    for e in expected:
        assert any(t.strip() == e for t in texts), (e, texts)
    assert (
        len([t for t in svg.iter("{http://www.w3.org/2000/svg}g") if t.get("class") == "node"])
        == len(nasty) + 1
    )


# ---------------------------------------------------------------------------
# bounds


def flat_tree(n: int) -> DeviceTree:
    root = Node("")
    root.set_property("#address-cells", struct.pack(">I", 1))
    root.set_property("#size-cells", struct.pack(">I", 1))
    for i in range(n):
        c = Node(f"dev@{i:x}")
        c.set_property("compatible", b"qemu,x\0")
        c.set_property("reg", struct.pack(">II", i, 1))
        c.set_property("qemu,n", str(i).encode() + b"\0")
        root.add_child(c)
    return DeviceTree(root)


def deep_tree(n: int) -> DeviceTree:
    root = Node("")
    cur = root
    for i in range(n):
        c = Node(f"n{i}")
        c.set_property("compatible", b"qemu,y\0")
        cur.add_child(c)
        cur = c
    return DeviceTree(root)


def more_count(text: str) -> int:
    return sum(int(m) for m in re.findall(r"\.\.\. (\d+) more device", text))


@pytest.mark.parametrize("make", [flat_tree, deep_tree], ids=["100k-siblings", "100k-deep"])
def test_huge_trees_are_bounded(make) -> None:
    dt = read_dtb(write_dtb(make(100_000)))
    start = time.perf_counter()
    text = render_text(dt, encoding="utf-8")
    dot = render_dot(dt)
    assert time.perf_counter() - start < 30
    lines = text.splitlines()
    assert len(lines) <= min(MAX_LINES, MAX_SIBLINGS + MAX_DEPTH) + 5
    assert len(dot.splitlines()) <= 2 * (MAX_SIBLINGS + MAX_DEPTH) + 20
    shown = sum(1 for line in lines if re.search(r"(^|  )[xy](  |$)", TREE_PREFIX.sub("", line)))
    assert shown + more_count(text) == 100_000


def test_line_limit_counts_what_it_hides() -> None:
    guest, backend = trees("q35")
    total = (
        sum(1 for n in walk(libfdt_tree(blob("q35.dtb"))) if "compatible" in n.props and not is_summarised(n))
        - 1
    )
    text = render_text(guest, backend, encoding="utf-8", collapse=False, max_lines=10)
    tree = text.split("\nback-ends:")[0].splitlines()[3:]
    assert len(tree) == 11 and tree[-1].endswith(
        f"... {total - 10} more device(s) not shown (limit 10 lines)"
    )
    shallow = render_text(guest, backend, encoding="utf-8", collapse=False, max_depth=1)
    assert "more device(s) below (depth limit 1)" in shallow
    top = shallow.split("\nback-ends:")[0].splitlines()
    assert (
        sum(1 for line in top if line.startswith(("├── ", "└── ")) and "more device" not in line)
        + more_count(shallow)
        == total
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 10**6), max_size=200),
    st.integers(1, 30),
    st.integers(1, 6),
    st.booleans(),
)
def test_every_device_is_shown_or_counted(
    parents: list[int], max_lines: int, max_depth: int, collapse: bool
) -> None:
    """Whatever the shape and limits: devices drawn + devices in "... N more" lines = all devices."""
    root = Node("")
    nodes = [root]
    total = 0
    for i, p in enumerate(parents):
        parent = nodes[p % len(nodes)]
        container = p % 7 == 0
        child = Node(f"box{i}@{i:x}" if container else f"d@{i:x}")
        if not container:
            child.set_property("compatible", b"qemu,d\0")
            total += 1
        child.set_property("reg", struct.pack(">III", 0, i, 1))
        parent.add_child(child)
        nodes.append(child)
    dt = read_dtb(write_dtb(DeviceTree(root)))
    text = render_text(dt, encoding="utf-8", collapse=collapse, max_lines=max_lines, max_depth=max_depth)
    shown = 0
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("/"))
    device_lines = 0
    for line in lines[start + 1 :]:
        content = TREE_PREFIX.sub("", line, count=1)
        if content == line:
            break
        run = re.search(r"  \((\d+) nodes\)", content)
        if run:
            shown += int(run.group(1))
        elif re.search(r"(^|\s)d(\s|$)", content):
            shown += 1
        device_lines += "more device" not in content
    assert shown + more_count(text) == total
    assert device_lines <= max_lines


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 6757), st.integers(0, 255)), min_size=1, max_size=8))
def test_corrupted_blobs_fail_cleanly_or_render(patches: list[tuple[int, int]]) -> None:
    data = bytearray(blob("q35.dtb"))
    for offset, value in patches:
        data[offset] = value
    try:
        dt = read_dtb(bytes(data), warn=lambda _m: None)
    except BlobError:
        return
    render_text(dt, encoding="utf-8")
    render_dot(dt, read_dtb(blob("q35.backend.dtbo")))


# ---------------------------------------------------------------------------
# the command


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "dtvm", "show", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_cli_text_and_dot() -> None:
    q35, dtbo = str(FIXTURES / "q35.dtb"), str(FIXTURES / "q35.backend.dtbo")
    text = run_cli(q35, "-b", dtbo)
    assert text.returncode == 0 and text.stderr == ""
    from dtvm.cli.show import option_defaults

    guest, backend = trees("q35")
    assert text.stdout == render_text(guest, backend, encoding="utf-8", option_defaults=option_defaults(guest))
    dot = run_cli(q35, "--backend", dtbo, "--format", "dot")
    assert dot.returncode == 0 and dot.stdout.startswith("digraph dtvm {")


@pytest.mark.parametrize(
    "case",
    ["missing", "not-a-dtb", "truncated", "directory", "empty", "bad-backend", "missing-backend"],
)
def test_cli_bad_input_one_line_no_traceback(case: str, tmp_path: Path) -> None:
    q35 = str(FIXTURES / "q35.dtb")
    files = {
        "missing": [str(tmp_path / "nope.dtb")],
        "not-a-dtb": [str(FIXTURES.parent.parent / "README.md")],
        "truncated": [str(tmp_path / "t.dtb")],
        "directory": [str(tmp_path)],
        "empty": [str(tmp_path / "e.dtb")],
        "bad-backend": [q35, "-b", str(tmp_path / "t.dtb")],
        "missing-backend": [q35, "-b", str(tmp_path / "nope.dtbo")],
    }[case]
    (tmp_path / "t.dtb").write_bytes(blob("q35.dtb")[:200])
    (tmp_path / "e.dtb").write_bytes(b"")
    proc = run_cli(*files)
    assert proc.returncode in (1, 2)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dtvm show: "), proc.stderr
    bad = files[-1]
    assert lines[0].startswith(f"dtvm show: {bad}: ")
