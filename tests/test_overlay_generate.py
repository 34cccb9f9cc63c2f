"""Generated nodes (-A aliases, -@ __symbols__, /plugin/ __fixups__ and __local_fixups__) and -s.

Every case runs Debian's dtc 1.6.1 (the oracle) and ``dtvm.cli.dtc.run`` with
the same arguments on the same fixture and compares the exit code and the
output bytes.  The last tests check that ``fdtoverlay`` applies a plugin we
compiled to a base we compiled with ``-@``: the real-world use of these nodes.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest

from dtvm.cli.dtc import run
from dtvm.dt.checks import CheckRunner
from dtvm.dt.overlay import generate_overlay_nodes
from dtvm.dt.sort import sort_tree
from dtvm.dt.tree import DeviceTree, Label, Marker, MarkerType, Node, Property, ReserveEntry
from dtvm.errors import DtvmError

DTC = shutil.which("dtc")
FDTOVERLAY = shutil.which("fdtoverlay")

pytestmark = pytest.mark.skipif(
    DTC is None, reason="dtc (device-tree-compiler 1.6.1) is not on PATH: it is the oracle"
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "overlay"

PLUGINS = ["plugin_basic.dts", "plugin_root_block.dts", "plugin_existing_fixups.dts"]
BASES = ["base.dts", "labels.dts", "existing_label_nodes.dts", "sort.dts"]

ARGSETS: list[list[str]] = [
    ["-O", "dtb"],
    ["-O", "dts"],
    ["-@", "-O", "dtb"],
    ["-@", "-O", "dts"],
    ["-A", "-O", "dts"],
    ["-@", "-A", "-O", "dts"],
    ["-@", "-A", "-O", "dtb"],
    ["-s", "-O", "dts"],
    ["-s", "-@", "-A", "-O", "dts"],
    ["-s", "-@", "-A", "-O", "dtb"],
    ["-H", "both", "-@", "-O", "dtb"],
    ["-H", "both", "-@", "-O", "dts"],
    ["-H", "legacy", "-@", "-A", "-O", "dts"],
]


def _dtc(args: list[str], path: Path) -> tuple[int, bytes, str]:
    assert DTC is not None
    proc = subprocess.run([DTC, *args, str(path)], capture_output=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr.decode("latin-1")


def _dtvm(args: list[str], path: Path) -> tuple[int, bytes, str]:
    out = io.BytesIO()
    err = io.StringIO()
    rc = run([*args, str(path)], out, err)
    return rc, out.getvalue(), err.getvalue()


def _same(args: list[str], name: str) -> tuple[int, bytes]:
    path = FIXTURES / name
    rc_ref, out_ref, err_ref = _dtc(args, path)
    rc, out, err = _dtvm(args, path)
    assert rc == rc_ref, f"exit {rc} != dtc's {rc_ref}\ndtc: {err_ref}\ndtvm: {err}"
    if out != out_ref:
        if "dts" in args:
            assert out.decode("latin-1") == out_ref.decode("latin-1")
        assert out == out_ref
    return rc, out


def _ids(argsets: list[list[str]]) -> list[str]:
    return [" ".join(a) for a in argsets]


@pytest.mark.parametrize("args", ARGSETS, ids=_ids(ARGSETS))
@pytest.mark.parametrize("name", PLUGINS + BASES)
def test_same_as_dtc(name: str, args: list[str]) -> None:
    rc, out = _same(args, name)
    assert rc == 0 and out


FORCED = [
    ["-O", "dts"],
    ["-f", "-O", "dts"],
    ["-f", "-@", "-A", "-O", "dts"],
    ["-f", "-@", "-O", "dtb"],
    ["-f", "-s", "-O", "dts"],
    ["-f", "-s", "-@", "-O", "dtb"],
]


@pytest.mark.parametrize("args", FORCED, ids=_ids(FORCED))
@pytest.mark.parametrize("name", ["duplicate_labels.dts", "sort_duplicates.dts"])
def test_inputs_with_errors_same_as_dtc(name: str, args: list[str]) -> None:
    """Duplicate labels and names: dtc exits 2; with -f the output (and -s order) must match."""
    rc, _ = _same(args, name)
    assert rc == (0 if "-f" in args else 2)


@pytest.mark.parametrize("args", [["-O", "dts"], ["-@", "-O", "dtb"]], ids=["dts", "symbols-dtb"])
def test_plugin_label_ref_to_own_node_merges(args: list[str]) -> None:
    _same(args, "plugin_merge_local_label.dts")


# -- facts about dtc 1.6.1's output that the markers must reproduce --------------------------


def test_dtc_marker_facts() -> None:
    """What dtc prints for generated values (the oracle itself, to document the markers)."""
    _, out, _ = _dtc(["-@", "-A", "-O", "dts"], FIXTURES / "labels.dts")
    text = out.decode()
    assert '\t\trootlbl = "/";\n' in text  # a string, not [2f 00]
    _, out, _ = _dtc(["-O", "dts"], FIXTURES / "plugin_basic.dts")
    text = out.decode()
    # one TYPE_STRING marker per appended fixup entry
    assert 'osc = "/fragment@0/__overlay__:clocks:0", "/fragment@0/__overlay__:clocks:8";' in text
    # unresolved references keep 0xffffffff
    assert "clocks = <0xffffffff 0xffffffff>, < 0xffffffff>;" in text
    _, out, _ = _dtc(["-O", "dts"], FIXTURES / "plugin_root_block.dts")
    text = out.decode()
    # one TYPE_UINT32 marker per appended local fixup offset
    assert "\t\tq = <0x00>, <0x0d>;\n" in text
    # root-node entries: path "/" gives "/:prop:offset"
    assert 'missing = "/:p:0", "/:q:9";' in text


def test_symbols_keep_labelled_omit_if_no_ref_nodes() -> None:
    _, plain = _same(["-O", "dts"], "labels.dts")
    _, symbols = _same(["-@", "-O", "dts"], "labels.dts")
    assert b"top-node" not in plain and b"top-node" in symbols
    assert b"dropped" not in plain and b"dropped" not in symbols


def test_existing_label_warning(capsys: pytest.CaptureFixture[str]) -> None:
    """dtc warns (without a newline) and skips a label that already names a property of aliases."""
    path = FIXTURES / "existing_label_nodes.dts"
    _, _, err_ref = _dtc(["-A", "-O", "dts"], path)
    assert "WARNING: label uart0 already exists in /aliases" in err_ref
    rc, _, err = _dtvm(["-A", "-O", "dts"], path)
    assert rc == 0
    assert "WARNING: label uart0 already exists in /aliases" in err + capsys.readouterr().err


def test_warning_goes_to_messages() -> None:
    root = Node("")
    node = root.add_child(Node("a"))
    node.labels.append(Label("x"))
    root.add_child(Node("aliases")).add_property(Property("x", b"/b\0"))
    dt = DeviceTree(root)
    messages: list[str] = []
    generate_overlay_nodes(dt, CheckRunner(dt), auto_alias=True, messages=messages)
    assert messages == ["WARNING: label x already exists in /aliases"]


def _plugin_with(node_name: str, prop_name: str) -> DeviceTree:
    root = Node("")
    node = root.add_child(Node(node_name))
    marks = [Marker(0, MarkerType.TYPE_UINT32), Marker(0, MarkerType.REF_PHANDLE, "missing")]
    node.add_property(Property(prop_name, b"\xff\xff\xff\xff", marks))
    return DeviceTree(root, plugin=True)


@pytest.mark.parametrize(("node_name", "prop_name"), [("a:b", "p"), ("a", "p:q")])
def test_colon_in_fixup_is_one_line_error(node_name: str, prop_name: str) -> None:
    dt = _plugin_with(node_name, prop_name)
    with pytest.raises(DtvmError) as info:
        generate_overlay_nodes(dt, CheckRunner(dt), fixups=True)
    message = info.value.render()
    assert "\n" not in message
    assert "arguments should not contain ':'" in message
    assert f"/{node_name}" in message and prop_name in message


def test_deep_plugin_is_iterative(tmp_path: Path) -> None:
    """Deeper than Python's recursion limit: generation and sorting must not recurse."""
    depth = 1200
    lines = ["/dts-v1/;", "/plugin/;", "&base {"]
    lines += [f"n{i} {{ r = <&top &ext>;" for i in range(depth)]
    lines += ["};"] * depth
    lines += ["top: top { };", "};"]
    path = tmp_path / "deep.dts"
    path.write_text("\n".join(lines) + "\n")
    for args in (["-@", "-s", "-O", "dtb"], ["-@", "-A", "-O", "dts"]):
        rc_ref, out_ref, _ = _dtc(args, path)
        rc, out, _ = _dtvm(args, path)
        assert (rc, out) == (rc_ref, out_ref)


def test_sort_tree_direct() -> None:
    """sort_tree sorts deleted entries too, by bytes; equal names keep their order (stable)."""
    root = Node("")
    for name in ("b", "a", "B", "a"):
        root.add_child(Node(name))
    root.children[0].deleted = True
    for name in ("z", "_", "A", "z"):
        root.add_property(Property(name, name.encode()))
    dt = DeviceTree(root, [ReserveEntry(2, 1), ReserveEntry(1, 2), ReserveEntry(1, 1)])
    first_a = root.children[1]
    sort_tree(dt)
    assert [c.name for c in root.children] == ["B", "a", "a", "b"]
    assert root.children[1] is first_a and root.children[3].deleted
    assert [p.name for p in root.props] == ["A", "_", "z", "z"]
    assert [(r.address, r.size) for r in dt.reservations] == [(1, 1), (1, 2), (2, 1)]


# -- fdtoverlay: the real-world use -------------------------------------------------------------


@pytest.mark.skipif(FDTOVERLAY is None, reason="fdtoverlay (device-tree-compiler) is not on PATH")
def test_fdtoverlay_applies_our_plugin(tmp_path: Path) -> None:
    assert FDTOVERLAY is not None
    results = []
    for tag, compile_ in (("dtvm", _dtvm), ("dtc", _dtc)):
        rc, base, _ = compile_(["-@", "-O", "dtb"], FIXTURES / "base.dts")
        assert rc == 0
        rc, plugin, _ = compile_(["-O", "dtb"], FIXTURES / "plugin_basic.dts")
        assert rc == 0
        base_path = tmp_path / f"{tag}-base.dtb"
        plugin_path = tmp_path / f"{tag}-plugin.dtbo"
        out_path = tmp_path / f"{tag}-out.dtb"
        base_path.write_bytes(base)
        plugin_path.write_bytes(plugin)
        proc = subprocess.run(
            [FDTOVERLAY, "-i", str(base_path), "-o", str(out_path), str(plugin_path)],
            capture_output=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr.decode("latin-1")
        results.append(out_path.read_bytes())
    assert results[0] == results[1]
    # the overlay really landed: the fragment's properties are in the target nodes
    assert DTC is not None
    text = subprocess.run(
        [DTC, "-I", "dtb", "-O", "dts", str(tmp_path / "dtvm-out.dtb")], capture_output=True, check=True
    ).stdout.decode()
    assert 'bootargs = "console=ttyS0";' in text
    assert "regulator-3v3 {" in text and "sensor@48 {" in text
