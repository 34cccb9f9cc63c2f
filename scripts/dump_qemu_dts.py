#!/usr/bin/env python3
"""Dump QEMU 7.2's own device trees (``-machine TYPE,dumpdtb=FILE``) as oracle fixtures.

For a fixed matrix of machines and options (:data:`VARIANTS`), run QEMU once
(TCG, ``-display none``, bounded by a 60 s timeout and killed on expiry),
then make the blob reproducible and small, and write

* ``fixtures/qemu-dt/<arch>-<machine>-<variant>.dtb``
* ``fixtures/qemu-dt/README.md``: the command behind each file, QEMU version, date
* ``fixtures/qemu-dt/compatibles.txt``: every ``compatible`` string with the
  node paths where it appears, then the node names that carry no compatible.

What is changed in QEMU's blob, and nothing else:

* random seeds: the value of every property named ``rng-seed`` or
  ``kaslr-seed`` (in ``/chosen`` and, with ``secure=on``, ``/secure-chosen``)
  is overwritten with zero bytes of the same length, so the property stays and
  the layout is untouched;
* alignment padding after node names and property values: QEMU leaves stale
  heap bytes there (e.g. after ``/chosen/stdout-path``), different on every
  run; they are zeroed, as dtc and a clean libfdt write them;
* slack: QEMU's blob is 1 MiB (``totalsize`` 0x100000) of which a few KB
  are used and the rest is zeros after the strings block; ``totalsize`` is set
  to the end of the last block and the zeros are cut (as ``fdt_pack`` would,
  without moving anything).  The script checks that only zeros are cut.

``ppce500`` refuses to start without firmware (``u-boot.e500`` is in none of the
Debian 12 QEMU packages); a 4-byte big-endian PowerPC ELF that branches to
itself is generated and given as ``-bios``; the device tree does not depend
on it.

    python scripts/dump_qemu_dts.py [--out DIR] [--only NAME ...] [--list]
"""

from __future__ import annotations

import argparse
import datetime
import os
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

DEFAULT_OUT = os.path.join(ROOT, "fixtures", "qemu-dt")
TIMEOUT = 60
SEED_PROPERTIES = (b"rng-seed", b"kaslr-seed")
FIRMWARE = "@FIRMWARE@"  # placeholder in argv, replaced by the generated ppce500 -bios ELF


@dataclass(frozen=True)
class Variant:
    name: str  # <arch>-<machine>-<variant>
    binary: str
    machine: str  # -machine TYPE[,opts] (dumpdtb= is appended)
    args: tuple[str, ...] = ()

    def argv(self, dtb: str, firmware: str = FIRMWARE) -> list[str]:
        extra = [firmware if a == FIRMWARE else a for a in self.args]
        return [
            self.binary,
            "-display",
            "none",
            "-accel",
            "tcg",
            "-machine",
            f"{self.machine},dumpdtb={dtb}",
            *extra,
        ]

    def command(self) -> str:
        """The command as documented (the dump file and firmware path symbolic)."""
        return " ".join(self.argv("OUT.dtb", "FW.elf"))


A57 = ("-cpu", "cortex-a57")
BIOS = ("-bios", FIRMWARE)

VARIANTS: tuple[Variant, ...] = (
    # aarch64 virt (the default CPU of -M virt is cortex-a15, even in qemu-system-aarch64)
    Variant("aarch64-virt-default", "qemu-system-aarch64", "virt"),
    Variant("aarch64-virt-a57", "qemu-system-aarch64", "virt", A57),
    Variant("aarch64-virt-gic3", "qemu-system-aarch64", "virt,gic-version=3", A57),
    Variant("aarch64-virt-gic3-its-off", "qemu-system-aarch64", "virt,gic-version=3,its=off", A57),
    Variant(
        "aarch64-virt-gic4-virt",
        "qemu-system-aarch64",
        "virt,gic-version=4,virtualization=on",
        ("-cpu", "max"),
    ),
    Variant("aarch64-virt-secure", "qemu-system-aarch64", "virt,secure=on", A57),
    Variant("aarch64-virt-virtualization", "qemu-system-aarch64", "virt,virtualization=on", A57),
    Variant("aarch64-virt-smmuv3", "qemu-system-aarch64", "virt,iommu=smmuv3", A57),
    Variant("aarch64-virt-highmem-off", "qemu-system-aarch64", "virt,highmem=off", (*A57, "-m", "2G")),
    Variant("aarch64-virt-smp4-512m", "qemu-system-aarch64", "virt", (*A57, "-smp", "4", "-m", "512M")),
    Variant("aarch64-virt-smp1-2g", "qemu-system-aarch64", "virt", (*A57, "-smp", "1", "-m", "2G")),
    # arm (32-bit) virt
    Variant("arm-virt-secure-gic3-smp2", "qemu-system-arm", "virt,secure=on,gic-version=3", ("-smp", "2")),
    Variant("arm-virt-virtualization-highmem-off", "qemu-system-arm", "virt,virtualization=on,highmem=off"),
    # riscv64
    Variant("riscv64-virt-default", "qemu-system-riscv64", "virt"),
    Variant("riscv64-virt-smp4", "qemu-system-riscv64", "virt", ("-smp", "4")),
    Variant("riscv64-virt-aclint", "qemu-system-riscv64", "virt,aclint=on", ("-smp", "2")),
    Variant("riscv64-virt-aia-aplic", "qemu-system-riscv64", "virt,aia=aplic", ("-smp", "2")),
    Variant(
        "riscv64-virt-aia-aplic-imsic",
        "qemu-system-riscv64",
        "virt,aia=aplic-imsic,aia-guests=2",
        ("-smp", "2"),
    ),
    Variant("riscv64-sifive_u-default", "qemu-system-riscv64", "sifive_u"),
    Variant("riscv64-spike-default", "qemu-system-riscv64", "spike"),
    # ppc64 pseries (its DT lists the PCI devices present at start; -nodefaults removes VGA, XHCI, VIO)
    Variant("ppc64-pseries-default", "qemu-system-ppc64", "pseries"),
    Variant("ppc64-pseries-nodefaults", "qemu-system-ppc64", "pseries", ("-nodefaults",)),
    Variant("ppc64-pseries-smp2", "qemu-system-ppc64", "pseries", ("-nodefaults", "-smp", "2")),
    # ppc ppce500 (-nodefaults removes the serial port)
    Variant("ppc-ppce500-default", "qemu-system-ppc", "ppce500", BIOS),
    Variant("ppc-ppce500-nodefaults", "qemu-system-ppc", "ppce500", (*BIOS, "-nodefaults")),
    Variant("ppc-ppce500-e500mc", "qemu-system-ppc", "ppce500", (*BIOS, "-cpu", "e500mc")),
)

# Runs whose DT equals a fixture above byte for byte (after normalisation); the
# script checks that they still do and the README lists them instead of storing copies.
SAME_AS: tuple[tuple[Variant, str], ...] = (
    (Variant("aarch64-virt-max", "qemu-system-aarch64", "virt", ("-cpu", "max")), "aarch64-virt-a57"),
    (Variant("aarch64-virt-gic2", "qemu-system-aarch64", "virt,gic-version=2", A57), "aarch64-virt-a57"),
    (Variant("aarch64-virt-mte", "qemu-system-aarch64", "virt,mte=on", ("-cpu", "max")), "aarch64-virt-a57"),
    (
        Variant("aarch64-virt-nodefaults", "qemu-system-aarch64", "virt", (*A57, "-nodefaults")),
        "aarch64-virt-a57",
    ),
    (Variant("arm-virt-default", "qemu-system-arm", "virt"), "aarch64-virt-default"),
    (Variant("arm-virt-nodefaults", "qemu-system-arm", "virt", ("-nodefaults",)), "aarch64-virt-default"),
    (
        Variant("riscv64-virt-nodefaults", "qemu-system-riscv64", "virt", ("-nodefaults",)),
        "riscv64-virt-default",
    ),
)


def ppc_firmware_elf(addr: int = 0x00400000) -> bytes:
    """A minimal ELF32 big-endian PowerPC executable: one PT_LOAD of ``b .``."""
    code = b"\x48\x00\x00\x00"
    ehsize, phsize = 52, 32
    ident = b"\x7fELF" + bytes([1, 2, 1, 0]) + bytes(8)  # ELFCLASS32, ELFDATA2MSB, EV_CURRENT
    eh = ident + struct.pack(">HHIIIIIHHHHHH", 2, 20, 1, addr, ehsize, 0, 0, ehsize, phsize, 1, 40, 0, 0)
    ph = struct.pack(">IIIIIIII", 1, ehsize + phsize, addr, addr, len(code), len(code), 5, 4)
    return eh + ph + code


# ---------------------------------------------------------------------------
# blob surgery (in place, same layout)


def _header(blob: bytes) -> dict[str, int]:
    names = (
        "magic",
        "totalsize",
        "off_dt_struct",
        "off_dt_strings",
        "off_mem_rsvmap",
        "version",
        "last_comp_version",
        "boot_cpuid_phys",
        "size_dt_strings",
        "size_dt_struct",
    )
    h = dict(zip(names, struct.unpack_from(">10I", blob), strict=True))
    if h["magic"] != 0xD00DFEED or h["version"] < 17:
        raise ValueError("not a version 17 flattened device tree")
    return h


def neutralise_seeds(blob: bytes) -> tuple[bytes, list[str]]:
    """Zero the values of ``rng-seed``/``kaslr-seed`` properties and the alignment padding.

    Returns the blob and the paths of the seed properties.  QEMU 7.2 leaves stale
    heap bytes in the padding after some property values (e.g. after
    ``/chosen/stdout-path``), different on every run; the specification says
    nothing about their value and dtc writes zeros.
    """
    h = _header(blob)
    out = bytearray(blob)
    strings = h["off_dt_strings"]
    off = h["off_dt_struct"]
    end = off + h["size_dt_struct"]
    path: list[str] = []
    found: list[str] = []
    while off < end:
        (tag,) = struct.unpack_from(">I", blob, off)
        off += 4
        if tag == 1:  # FDT_BEGIN_NODE
            nul = blob.index(b"\0", off)
            path.append(blob[off:nul].decode("latin-1"))
            padded = (nul + 1 + 3) & ~3
            out[nul:padded] = bytes(padded - nul)
            off = padded
        elif tag == 2:  # FDT_END_NODE
            path.pop()
        elif tag == 3:  # FDT_PROP
            length, nameoff = struct.unpack_from(">II", blob, off)
            off += 8
            name = blob[strings + nameoff : blob.index(b"\0", strings + nameoff)]
            if name in SEED_PROPERTIES:
                out[off : off + length] = bytes(length)
                found.append("/" + "/".join([*path[1:], name.decode()]))
            padded = (off + length + 3) & ~3
            out[off + length : padded] = bytes(padded - off - length)  # QEMU leaves stale bytes here
            off = padded
        elif tag == 4:  # FDT_NOP
            continue
        elif tag == 9:  # FDT_END
            break
        else:
            raise ValueError(f"bad structure tag {tag:#x} at {off - 4:#x}")
    return bytes(out), found


def pack(blob: bytes) -> bytes:
    """Cut the zero padding after the last block and set ``totalsize`` accordingly."""
    h = _header(blob)
    used = max(h["off_dt_struct"] + h["size_dt_struct"], h["off_dt_strings"] + h["size_dt_strings"], 40)
    if any(blob[used : h["totalsize"]]):
        raise ValueError("non-zero bytes in the padding")
    return blob[:4] + struct.pack(">I", used) + blob[8:used]


def normalise(blob: bytes) -> bytes:
    return pack(neutralise_seeds(blob)[0])


# ---------------------------------------------------------------------------
# running QEMU


def run_qemu(variant: Variant, workdir: str) -> bytes:
    """Run ``variant`` once and return QEMU's raw blob.  Raises RuntimeError on failure."""
    dtb = os.path.join(workdir, variant.name + ".raw.dtb")
    firmware = os.path.join(workdir, "ppce500-fw.elf")
    if FIRMWARE in variant.args and not os.path.exists(firmware):
        with open(firmware, "wb") as f:
            f.write(ppc_firmware_elf())
    argv = variant.argv(dtb, firmware)
    try:
        # subprocess.run kills the child when the timeout expires
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT, cwd=workdir)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"{variant.name}: QEMU did not exit within {TIMEOUT} s (killed)") from e
    if p.returncode != 0 or not os.path.exists(dtb):
        raise RuntimeError(
            f"{variant.name}: exit {p.returncode}: {p.stderr.decode(errors='replace').strip()}"
        )
    with open(dtb, "rb") as f:
        return f.read()


def dump(variant: Variant, workdir: str | None = None) -> bytes:
    """Run ``variant`` and return the normalised (seed-free, packed) blob."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="dtvm-qemu-dt-") as tmp:
            return normalise(run_qemu(variant, tmp))
    return normalise(run_qemu(variant, workdir))


def qemu_version(binary: str = "qemu-system-aarch64") -> str:
    p = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=TIMEOUT)
    return p.stdout.splitlines()[0].strip()


# ---------------------------------------------------------------------------
# compatibles.txt


def compatibles_text(blobs: dict[str, bytes]) -> str:
    from dtvm.dt.dtb import read_dtb

    compat: dict[str, set[str]] = {}
    plain: dict[str, set[str]] = {}
    for name in sorted(blobs):
        dt = read_dtb(blobs[name], name=name)
        for node in dt.root.walk():
            prop = node.get_property("compatible")
            if prop is not None:
                for s in prop.as_strings():
                    compat.setdefault(s, set()).add(node.path)
            elif node is not dt.root:
                plain.setdefault(node.basename, set()).add(node.path)
    lines = [
        "# Generated by scripts/dump_qemu_dts.py from the blobs in this directory.",
        "# compatible<TAB>path[,path...]: every distinct compatible string, sorted",
    ]
    lines += [f"{c}\t{','.join(sorted(compat[c]))}" for c in sorted(compat)]
    lines += ["", "# nodes without a compatible: name (unit address dropped)<TAB>path[,path...]"]
    lines += [f"{n}\t{','.join(sorted(plain[n]))}" for n in sorted(plain)]
    return "\n".join(lines) + "\n"


def readme_text(
    variants: list[Variant], sizes: dict[str, int], version: str, seeds: dict[str, list[str]]
) -> str:
    today = datetime.date.today().isoformat()
    rows = "\n".join(f"| `{v.name}.dtb` | {sizes[v.name]} | `{v.command()}` |" for v in variants)
    same = "\n".join(f"| `{v.command()}` | `{name}.dtb` |" for v, name in SAME_AS)
    seeded = sorted({p for paths in seeds.values() for p in paths})
    return f"""# QEMU's own device trees (oracle fixtures)

Generated by `python scripts/dump_qemu_dts.py` on {today} with {version}
(Debian 12 packages `qemu-system-arm`, `qemu-system-misc`, `qemu-system-ppc`).

Each blob is what `-machine TYPE,dumpdtb=FILE` writes, with three changes that keep
QEMU's layout: the values of the random-seed properties ({", ".join(f"`{p}`" for p in seeded)})
and the alignment padding after node names and property values are overwritten
with zeros (both differ on every run: QEMU leaves stale heap bytes in the padding,
e.g. after `/chosen/stdout-path`), and the 1 MiB of zero padding after the
strings block is cut (`totalsize` = end of the last block). `FW.elf` is a 4-byte PowerPC ELF generated by the script
(ppce500 refuses to start without firmware; no Debian QEMU package ships `u-boot.e500`).

`compatibles.txt` lists every compatible string with its node paths, then the
nodes without a compatible. `-nodefaults` changes nothing in the DT of arm,
aarch64 and riscv `virt` (its defaults are PCI devices, absent from the DT) apart
from the seeds; it does change pseries (VGA, XHCI and the VIO devices go, VIO
`reg` values shift) and ppce500 (the serial port goes).

| file | bytes | command |
|---|---:|---|
{rows}

These runs give a DT identical to a fixture (checked by every run of the script):

| command | same as |
|---|---|
{same}

QEMU 7.2 rejects: `gic-version=4` without `virtualization=on`, `gic-version=host`
under TCG, `highmem=off` with more than 3 GiB of RAM, `ppce500` without `-bios`.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", action="append", help="dump only these variants (no README/compatibles)")
    ap.add_argument("--list", action="store_true", help="print the variants and their commands")
    args = ap.parse_args(argv)
    if args.list:
        for v in VARIANTS:
            print(f"{v.name}\t{v.command()}")
        return 0
    variants = [v for v in VARIANTS if not args.only or v.name in args.only]
    os.makedirs(args.out, exist_ok=True)
    blobs: dict[str, bytes] = {}
    seeds: dict[str, list[str]] = {}
    failed = 0
    with tempfile.TemporaryDirectory(prefix="dtvm-qemu-dt-") as tmp:
        for v in variants:
            print(v.command(), flush=True)
            try:
                raw = run_qemu(v, tmp)
            except RuntimeError as e:
                print(f"  FAILED: {e}", file=sys.stderr)
                failed += 1
                continue
            clean, seeds[v.name] = neutralise_seeds(raw)
            blobs[v.name] = pack(clean)
            with open(os.path.join(args.out, v.name + ".dtb"), "wb") as f:
                f.write(blobs[v.name])
            print(
                f"  -> {v.name}.dtb ({len(blobs[v.name])} bytes; seeds zeroed: {', '.join(seeds[v.name]) or 'none'})"
            )
        for v, same in SAME_AS if not args.only else ():
            print(v.command(), flush=True)
            try:
                blob = normalise(run_qemu(v, tmp))
            except RuntimeError as e:
                print(f"  FAILED: {e}", file=sys.stderr)
                failed += 1
                continue
            if blob != blobs.get(same):
                print(f"  FAILED: {v.name} no longer equals {same}.dtb: add it to VARIANTS", file=sys.stderr)
                failed += 1
            else:
                print(f"  == {same}.dtb")
    if not args.only and not failed:
        with open(os.path.join(args.out, "compatibles.txt"), "w") as f:
            f.write(compatibles_text(blobs))
        sizes = {k: len(b) for k, b in blobs.items()}
        with open(os.path.join(args.out, "README.md"), "w") as f:
            f.write(readme_text(variants, sizes, qemu_version(), seeds))
        print(f"{len(blobs)} blobs, {sum(sizes.values())} bytes")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
