"""QEMU 7.2's own device trees (``fixtures/qemu-dt``, made by ``scripts/dump_qemu_dts.py``) against dtvm.

Every blob is read by dtvm and by pylibfdt with the same content, is written
back by dtvm byte for byte as ``dtc -I dtb -O dtb`` writes it, and decompiles
to the same text as ``dtc -I dtb -O dts``.  ``compatibles.txt`` is what the
script derives from the blobs.  With QEMU installed, a fresh dump of one
variant equals its fixture.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from dtvm.cli.dtc import run
from dtvm.dt.dtb import read_dtb, write_dtb

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "qemu-dt"
BLOBS = sorted(FIXTURES.glob("*.dtb"))
IDS = [p.stem for p in BLOBS]

needs_dtc = pytest.mark.skipif(
    shutil.which("dtc") is None, reason="dtc (Debian device-tree-compiler 1.6.1) is the oracle"
)


def _script() -> ModuleType:
    name = "dump_qemu_dts"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "dump_qemu_dts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _dtc(args: list[str], blob: bytes) -> bytes:
    p = subprocess.run(["dtc", *args], input=blob, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout


def _dtvm(args: list[str]) -> bytes:
    out, err = io.BytesIO(), io.StringIO()
    code = run(args, out, err)
    assert code == 0, err.getvalue()
    return out.getvalue()


def test_fixture_set() -> None:
    script = _script()
    assert {v.name for v in script.VARIANTS} == set(IDS)
    assert 15 <= len(BLOBS) <= 30
    assert sum(p.stat().st_size for p in BLOBS) < 400_000


@pytest.mark.parametrize("path", BLOBS, ids=IDS)
def test_fixture_is_normalised(path: Path) -> None:
    """No seed, no stale padding, no slack: normalising again changes nothing."""
    blob = path.read_bytes()
    assert _script().normalise(blob) == blob


@pytest.mark.parametrize("path", BLOBS, ids=IDS)
def test_pylibfdt_reads_the_same_tree(path: Path) -> None:
    libfdt = pytest.importorskip("libfdt")
    blob = path.read_bytes()
    dt = read_dtb(blob, name=str(path))
    fdt = libfdt.Fdt(blob)
    theirs = []
    offset, depth = 0, 0
    while offset >= 0 and depth >= 0:
        props = []
        poff = fdt.first_property_offset(offset, [libfdt.FDT_ERR_NOTFOUND])
        while poff >= 0:
            prop = fdt.get_property_by_offset(poff)
            props.append((prop.name, bytes(prop)))
            poff = fdt.next_property_offset(poff, [libfdt.FDT_ERR_NOTFOUND])
        theirs.append((fdt.get_path(offset), props))
        offset, depth = fdt.next_node(offset, depth, [libfdt.FDT_ERR_NOTFOUND])
    ours = [(n.path, [(p.name, p.value) for p in n.properties]) for n in dt.root.walk()]
    assert ours == theirs
    assert fdt.num_mem_rsv() == len(dt.reservations)
    assert fdt.boot_cpuid_phys() == dt.boot_cpuid


@needs_dtc
@pytest.mark.parametrize("path", BLOBS, ids=IDS)
def test_dtb_round_trip_matches_dtc(path: Path) -> None:
    blob = path.read_bytes()
    assert write_dtb(read_dtb(blob, name=str(path))) == _dtc(["-I", "dtb", "-O", "dtb"], blob)


@needs_dtc
@pytest.mark.parametrize("path", BLOBS, ids=IDS)
def test_decompile_matches_dtc(path: Path) -> None:
    expected = _dtc(["-I", "dtb", "-O", "dts"], path.read_bytes())
    assert _dtvm(["-I", "dtb", "-O", "dts", str(path)]) == expected


def test_compatibles_txt_is_current() -> None:
    script = _script()
    blobs = {p.stem: p.read_bytes() for p in BLOBS}
    assert (FIXTURES / "compatibles.txt").read_text() == script.compatibles_text(blobs)


def test_seed_neutralisation() -> None:
    """Seeds and padding are zeroed in place; everything else is kept."""
    script = _script()
    blob = (FIXTURES / "aarch64-virt-secure.dtb").read_bytes()
    dt = read_dtb(blob)
    for path in ("/chosen", "/secure-chosen"):
        node = dt.get_node(path)
        assert node is not None
        assert node["rng-seed"].value == bytes(32)
        assert node["kaslr-seed"].value == bytes(8)
    _, found = script.neutralise_seeds(blob)
    assert sorted(found) == sorted(
        ["/chosen/rng-seed", "/chosen/kaslr-seed", "/secure-chosen/rng-seed", "/secure-chosen/kaslr-seed"]
    )


@pytest.mark.skipif(
    shutil.which("qemu-system-aarch64") is None,
    reason="qemu-system-aarch64 (Debian qemu-system-arm) is not installed",
)
def test_fresh_dump_equals_fixture(tmp_path: Path) -> None:
    script = _script()
    (variant,) = [v for v in script.VARIANTS if v.name == "aarch64-virt-default"]
    if not script.qemu_version().startswith("QEMU emulator version 7.2"):
        pytest.skip(f"fixtures come from QEMU 7.2, found {script.qemu_version()}")
    raw = script.run_qemu(variant, str(tmp_path))
    assert len(raw) > len((FIXTURES / "aarch64-virt-default.dtb").read_bytes())
    assert script.normalise(raw) == (FIXTURES / "aarch64-virt-default.dtb").read_bytes()
