"""Disk images the offline model reads (dtvm/qemu/images.py), damaged at random: never a traceback.

An image named on a command line is the user's file, but it may be damaged or come from anyone:
its header and tables give offsets and sizes that ``guest_size`` follows.  Seeded mutations of
qcow2, QED and VDI images that ``qemu-img`` writes must give a size or a one-line ImageError;
where both answer, the size is the virtual size ``qemu-img info`` (the oracle) reads.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from dtvm.qemu.images import ImageError, guest_size

FORMATS = ["qcow2", "qed", "vdi"]
SEED = int(os.environ.get("DTVM_GEN_SEED", "0")) * 1000 + 61
CASES = 30  # per format


def _qemu_img() -> str:
    path = shutil.which("qemu-img")
    if path is None:
        pytest.skip("qemu-img is not installed (the oracle that writes and reads the images)")
    return path


def _base(tmp: Path, fmt: str) -> bytes:
    raw, path = tmp / "base.raw", tmp / f"base.{fmt}"
    with open(raw, "wb") as f:  # allocated data in the first cluster, so the tables point somewhere
        f.write(b"\x5a" * 4096)
        f.truncate(64 << 20)
    subprocess.run([_qemu_img(), "convert", "-q", "-f", "raw", "-O", fmt, str(raw), str(path)], check=True)
    return path.read_bytes()


def _oracle_size(path: Path, fmt: str) -> int | None:
    res = subprocess.run([_qemu_img(), "info", "-f", fmt, "--output=json", str(path)], capture_output=True,
                         text=True, timeout=30)
    return int(json.loads(res.stdout)["virtual-size"]) if res.returncode == 0 else None


#: where each format's header gives its first table's offset (field offset, struct format); the
#: table's first entry leads to the guest's first sector, which the reader follows
TABLE_FIELD = {"qcow2": (40, ">Q"), "qed": (40, "<Q"), "vdi": (0x154, "<I")}
ENTRY = {"qcow2": ">Q", "qed": "<Q", "vdi": "<I"}


def _mutate(data: bytes, rng: random.Random, fmt: str) -> bytes:
    """A few fields overwritten, with values that reach past any file (all ones, the top bit,
    random, zero): half the time the first entry of the first table, else any 8-, 4- or 1-byte
    field of the first 64 KiB (headers and tables)."""
    out = bytearray(data)
    field, form = TABLE_FIELD[fmt]
    for _ in range(rng.randint(1, 3)):
        table = struct.unpack(form, out[field:field + struct.calcsize(form)])[0]
        if rng.random() < 0.5 and table + 8 <= len(out):
            width, at = struct.calcsize(ENTRY[fmt]), table
        else:
            width = rng.choice((8, 4, 1))
            at = rng.randrange(0, min(len(out), 65536) - width)
        value = rng.choice((0, (1 << 8 * width) - 1, 1 << (8 * width - 1), rng.getrandbits(8 * width)))
        out[at:at + width] = value.to_bytes(width, rng.choice(("little", "big")))
    return bytes(out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_damaged_images_are_sizes_or_one_line_errors(fmt: str, tmp_path: Path) -> None:
    base = _base(tmp_path, fmt)
    path = tmp_path / f"img.{fmt}"
    path.write_bytes(base)
    assert guest_size(str(path), "-drive", fmt) == _oracle_size(path, fmt) == 64 << 20
    rng = random.Random(f"{SEED}-{fmt}")
    answered = 0
    for i in range(CASES):
        path.write_bytes(_mutate(base, rng, fmt))
        try:
            size = guest_size(str(path), "-drive", fmt)
        except ImageError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), (i, str(exc))
            continue
        oracle = _oracle_size(path, fmt)
        if oracle is not None:
            answered += 1
            assert size == oracle, (i, size, oracle)
    assert answered, "no damaged image that both read: the generator tests nothing against qemu-img"


def test_table_past_the_end_is_refused_by_name(tmp_path: Path) -> None:
    """The CLI on a QED image whose L1 entry points past any file: one line, exit 2, no output."""
    header = b"QED\0" + struct.pack("<IIIQQQQQII", 65536, 1, 4096, 0, 0, 0, 4096, 1 << 30, 0, 0)
    data = bytearray(header.ljust(8192, b"\0"))
    data[4096:4104] = struct.pack("<Q", 0xFFFF_FFFF_FFFF_FFF0)
    image = tmp_path / "bad.qed"
    image.write_bytes(bytes(data))
    out = tmp_path / "vm.dtb"
    res = subprocess.run([sys.executable, "-m", "dtvm", "qemu2dtb", "--offline", "-o", str(out), "--",
                          "qemu-system-x86_64", "-M", "pc-q35-7.2", "-drive", f"if=none,id=d,file={image},format=qed",
                          "-device", "virtio-blk-pci,drive=d"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res
    assert res.stderr.strip().splitlines() == [
        f"dtvm qemu2dtb: -drive: {image}: a qed table points past the end of the image: not an image the "
        "offline model reads (use online mode)"]
    assert not out.exists() and not (tmp_path / "vm.backend.dtbo").exists()
