"""``dtvm fdtdump``: dtc 1.6.1's ``fdtdump``, same arguments, output and exit codes.

fdtdump does not use libfdt: it walks the raw token stream from
``off_dt_struct`` and prints every token it meets, NOPs included (``// [NOP]``),
with the header as comments and, with ``-d``, the offset of every tag, name
and value.  ``-s`` looks for an embedded blob in a larger file.  This module
does the same walk on the same bytes; pointer alignment (``PALIGN``) is taken
from the position in the file buffer, as the C tool's ``malloc``'d buffer
gives it.  Where the C tool would read past its buffer (a corrupt blob with no
``FDT_END``, a bad string offset), dtvm stops with an error instead.
"""

from __future__ import annotations

import os
from typing import BinaryIO, TextIO

from dtvm.cli.fdtutil import (
    COMMON_LONG_OPTS,
    LongOpt,
    ToolExit,
    common_option,
    getopt_long,
    is_printable_string,
    read_tool_file,
    run_tool,
    usage_exit,
)
from dtvm.dt.libfdt import (
    FDT_BEGIN_NODE,
    FDT_END,
    FDT_END_NODE,
    FDT_MAGIC,
    FDT_NOP,
    FDT_PROP,
)

__all__ = ["print_data", "run"]

PROG = "fdtdump"
SHORT_OPTS = "dshV"
LONG_OPTS: list[LongOpt] = [
    ("debug", False, "d", "Dump debug information while decoding the file"),
    ("scan", False, "s", "Scan for an embedded fdt in file"),
    *COMMON_LONG_OPTS,
]
SYNOPSIS = "fdtdump [options] <file>"
BANNER = (
    "\n"
    "**** fdtdump is a low-level debugging tool, not meant for general use.\n"
    "**** If you want to decompile a dtb, you probably want\n"
    "****     dtc -I dtb -O dts <filename>\n\n"
)
MAX_VERSION = 17
HEADER_SIZE = 40
_TAGNAMES = {
    FDT_BEGIN_NODE: "FDT_BEGIN_NODE",
    FDT_END_NODE: "FDT_END_NODE",
    FDT_PROP: "FDT_PROP",
    FDT_NOP: "FDT_NOP",
    FDT_END: "FDT_END",
}


class _Overrun(Exception):
    def __init__(self, pos: int, what: str) -> None:
        super().__init__(pos, what)
        self.pos = pos
        self.what = what


def _u32(buf: bytes | bytearray, pos: int, what: str) -> int:
    if pos < 0 or pos + 4 > len(buf):
        raise _Overrun(pos, what)
    return int.from_bytes(buf[pos : pos + 4], "big")


def _cstr(buf: bytes | bytearray, pos: int, what: str) -> bytes:
    if pos < 0 or pos >= len(buf):
        raise _Overrun(pos, what)
    end = buf.find(b"\0", pos)
    if end < 0:
        raise _Overrun(pos, what)
    return bytes(buf[pos:end])


def _palign(pos: int, a: int) -> int:
    return (pos + a - 1) & ~(a - 1)


def print_data(data: bytes) -> bytes:
    """``utilfdt_print_data``: `` = "a", "b"``, `` = <0x00000001>`` or `` = [01 02]``."""
    n = len(data)
    if n == 0:
        return b""
    if is_printable_string(data):
        return b" = " + b", ".join(b'"' + s + b'"' for s in data[:-1].split(b"\0"))
    if n % 4 == 0:
        cells = (b"0x%08x" % int.from_bytes(data[i : i + 4], "big") for i in range(0, n, 4))
        return b" = <" + b" ".join(cells) + b">"
    return b" = [" + b" ".join(b"%02x" % c for c in data) + b"]"


def _hex(v: int) -> bytes:
    """C's ``%#x``: ``0`` for zero, ``0x...`` otherwise."""
    return b"0x%x" % v if v else b"0"


def _dump_blob(buf: bytearray, base: int, debug: bool, out: BinaryIO, err: TextIO) -> None:
    """``dump_blob`` of the blob at ``buf[base:]``; positions in ``buf`` stand for C pointers."""

    def hdr(field: int) -> int:
        return _u32(buf, base + field, "header")

    off_mem_rsvmap = hdr(16)
    off_dt = hdr(8)
    off_str = hdr(12)
    version = hdr(20)
    totalsize = hdr(4)
    w = out.write
    w(b"/dts-v1/;\n")
    w(b"// magic:\t\t0x%x\n" % hdr(0))
    w(b"// totalsize:\t\t0x%x (%d)\n" % (totalsize, totalsize))
    w(b"// off_dt_struct:\t0x%x\n" % off_dt)
    w(b"// off_dt_strings:\t0x%x\n" % off_str)
    w(b"// off_mem_rsvmap:\t0x%x\n" % off_mem_rsvmap)
    w(b"// version:\t\t%d\n" % version)
    w(b"// last_comp_version:\t%d\n" % hdr(24))
    if version >= 2:
        w(b"// boot_cpuid_phys:\t0x%x\n" % hdr(28))
    if version >= 3:
        w(b"// size_dt_strings:\t0x%x\n" % hdr(32))
    if version >= 17:
        w(b"// size_dt_struct:\t0x%x\n" % hdr(36))
    w(b"\n")

    pos = base + off_mem_rsvmap
    while True:
        if pos + 16 > len(buf):
            raise _Overrun(pos, "memory reservation map")
        addr = int.from_bytes(buf[pos : pos + 8], "big")
        size = int.from_bytes(buf[pos + 8 : pos + 16], "big")
        if addr == 0 and size == 0:
            break
        w(b"/memreserve/ %s %s;\n" % (_hex(addr), _hex(size)))
        pos += 16

    depth = 0
    shift = 4
    p_strings = base + off_str
    p = base + off_dt
    while True:
        tag = _u32(buf, p, "structure block (no FDT_END)")
        p += 4
        if tag == FDT_END:
            break
        if debug:
            w(b"// %04x: tag: 0x%08x (%s)\n" % (p - base - 4, tag, _TAGNAMES.get(tag, "FDT_???").encode()))
        indent = b" " * abs(depth * shift)
        if tag == FDT_BEGIN_NODE:
            s = _cstr(buf, p, "node name")
            p = _palign(p + len(s) + 1, 4)
            w(b"%s%s {\n" % (indent, s or b"/"))
            depth += 1
            continue
        if tag == FDT_END_NODE:
            depth -= 1
            w(b"%s};\n" % (b" " * abs(depth * shift)))
            continue
        if tag == FDT_NOP:
            w(b"%s// [NOP]\n" % indent)
            continue
        if tag != FDT_PROP:
            out.flush()
            pad = " " * abs(depth * shift)
            err.write(f"{pad} ** Unknown tag 0x{tag:08x}\n")
            break
        sz = _u32(buf, p, "property length")
        nameoff = _u32(buf, p + 4, "property name offset")
        p += 8
        if sz & 0x80000000:
            raise _Overrun(p - 8, f"property length {sz:#x}")
        s_pos = p_strings + nameoff
        name = _cstr(buf, s_pos, "property name")
        if version < 16 and sz >= 8:
            p = _palign(p, 8)
        t = p
        if t + sz > len(buf):
            raise _Overrun(t, "property value")
        p = _palign(p + sz, 4)
        if debug:
            w(b"// %04x: string: %s\n" % (s_pos - base, name))
            w(b"// %04x: value\n" % (t - base))
        w(b"%s%s%s;\n" % (indent, name, print_data(bytes(buf[t : t + sz]))))


def _valid_header(buf: bytearray, pos: int, length: int) -> bool:
    if length < HEADER_SIZE or pos + HEADER_SIZE > len(buf):
        return False

    def f(field: int) -> int:
        return int.from_bytes(buf[pos + field : pos + field + 4], "big")

    return not (
        f(0) != FDT_MAGIC
        or f(20) > MAX_VERSION
        or f(24) > MAX_VERSION
        or f(4) >= length
        or f(8) >= length
        or f(12) >= length
    )


def _die(err: TextIO, msg: str) -> ToolExit:
    err.write(f"FATAL ERROR: {msg}")
    return ToolExit(1)


def _usage(out: BinaryIO, err: TextIO, errmsg: str | None) -> ToolExit:
    return usage_exit(out, err, errmsg, SYNOPSIS, SHORT_OPTS, LONG_OPTS)


def run(argv: list[str], stdout: BinaryIO | None = None, stderr: TextIO | None = None) -> int:
    """Run fdtdump with ``argv`` (without the program name); returns the exit code."""
    return run_tool(PROG, _run, argv, stdout, stderr)


def _run(argv: list[str], out: BinaryIO, err: TextIO) -> int:
    err.write(BANNER)
    debug = False
    scan = False
    events, args = getopt_long(PROG, argv, SHORT_OPTS, LONG_OPTS)
    for opt, val in events:
        common_option(opt, val, out, err, _usage)
        if opt == "d":
            debug = True
        elif opt == "s":
            scan = True
    if len(args) != 1:
        raise _usage(out, err, "missing input filename")
    file = args[0]
    buf, why = read_tool_file(file, whole=scan)
    if buf is None:
        err.write(f"Couldn't open blob from '{file}': {why}\n")
        raise _die(err, f"could not read: {file}\n")
    length = len(buf)  # utilfdt_read reports the buffer size, not the file size
    base = 0
    if scan:
        p = 0
        found = False
        while length - p >= 4:
            p = buf.find(b"\xd0", p, length - 4)
            if p < 0:
                break
            if buf[p : p + 4] == b"\xd0\x0d\xfe\xed":
                if _valid_header(buf, p, length - p):
                    found = True
                    break
                if debug:
                    out.write(b"%s: skipping fdt magic at offset %s\n" % (os.fsencode(file), _hex(p)))
            p += 1
        if not found or length - p < HEADER_SIZE:
            raise _die(err, f"{file}: could not locate fdt magic\n")
        out.write(b"%s: found fdt at offset %s\n" % (os.fsencode(file), _hex(p)))
        base = p
    elif not _valid_header(buf, 0, length):
        raise _die(err, f"{file}: header is not valid\n")
    try:
        _dump_blob(buf, base, debug, out, err)
    except _Overrun as exc:
        out.flush()
        err.write(
            f"{PROG}: error: {file}: {exc.what} at offset {exc.pos - base:#x} runs past the end of the file (corrupt blob)\n"
        )
        return 1
    return 0
