"""``dtvm fdtget``: dtc 1.6.1's ``fdtget``, same arguments, output and exit codes.

It reads the blob as the C tool does, with libfdt's lookups on the raw bytes
(:mod:`dtvm.dt.libfdt`): path lookup with aliases and unit-address-less names,
the automatic type guess (printable strings, else 32-bit cells when the length
is a multiple of 4, else bytes), ``-t`` type strings, ``-p`` / ``-l`` listings
and ``-d`` defaults.  A blob too corrupt for libfdt's checks gives an error
line, never a traceback.  Imports are kept to this module and ``dtvm.dt.libfdt``
so that one lookup in a large blob stays fast.
"""

from __future__ import annotations

import os
from typing import BinaryIO, TextIO

from dtvm.cli.fdtutil import (
    COMMON_LONG_OPTS,
    USAGE_TYPE_MSG,
    LongOpt,
    ToolExit,
    common_option,
    decode_type,
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
    FDT_ERR_NOTFOUND,
    FDT_PROP,
    Fdt,
    strerror,
)

__all__ = ["run"]

PROG = "fdtget"
SHORT_OPTS = "t:pld:hV"
LONG_OPTS: list[LongOpt] = [
    ("type", True, "t", "Type of data"),
    ("properties", False, "p", "List properties for each node"),
    ("list", False, "l", "List subnodes for each node"),
    ("default", True, "d", "Default value to display when the property is missing"),
    *COMMON_LONG_OPTS,
]
SYNOPSIS = (
    "read values from device tree\n"
    "\tfdtget <options> <dt file> [<node> <property>]...\n"
    "\tfdtget -p <options> <dt file> [<node> ]...\n"
    "\n"
    "Each value is printed on a new line.\n" + USAGE_TYPE_MSG
)
MAX_LEVEL = 32

MODE_SHOW_VALUE, MODE_LIST_PROPS, MODE_LIST_SUBNODES = 0, 1, 2


class _Display:
    def __init__(self) -> None:
        self.mode = MODE_SHOW_VALUE
        self.type = ""
        self.size = -1
        self.default: bytes | None = None


def _usage(out: BinaryIO, err: TextIO, errmsg: str | None) -> ToolExit:
    return usage_exit(out, err, errmsg, SYNOPSIS, SHORT_OPTS, LONG_OPTS)


def _format_value(fmt: str, value: int) -> bytes:
    if fmt == "x":
        return b"%x" % (value & 0xFFFFFFFF)
    if fmt == "u":
        return b"%d" % (value & 0xFFFFFFFF)
    return b"%d" % value


def show_data(disp: _Display, data: bytes, out: BinaryIO, err: TextIO) -> bool:
    """fdtget's ``show_data``: False on error (message on stderr, nothing on stdout)."""
    n = len(data)
    if n == 0:
        return True
    if disp.type == "s" or (not disp.type and is_printable_string(data)):
        if data[-1] != 0:
            err.write("Unterminated string\n")
            return False
        out.write(b" ".join(data[:-1].split(b"\0")))
        return True
    size = disp.size
    if size == -1:
        size = 4 if n % 4 == 0 else 1
    elif n % size:
        err.write("Property length must be a multiple of selected data size\n")
        return False
    fmt = disp.type or "d"
    parts = []
    for i in range(0, n, size):
        if size == 4:
            value = int.from_bytes(data[i : i + 4], "big")
            if value & 0x80000000:
                value -= 0x100000000
        elif size == 2:
            value = (data[i] << 8) | data[i + 1]
        else:
            value = data[i]
        parts.append(_format_value(fmt, value))
    out.write(b" ".join(parts))
    return True


def _list_properties(fdt: Fdt, node: int, out: BinaryIO) -> int:
    prop = fdt.first_property_offset(node)
    while True:
        if prop < 0:
            return 0 if prop == -FDT_ERR_NOTFOUND else prop
        _, name, _ = fdt.getprop_by_offset(prop)
        if name is not None:
            out.write(name + b"\n")
        prop = fdt.next_property_offset(prop)


def _list_subnodes(fdt: Fdt, node: int, out: BinaryIO) -> int:
    level = 0
    depth = 1
    while level >= 0:
        tag, nextoffset = fdt.next_tag(node)
        if tag == FDT_BEGIN_NODE:
            if level <= depth:
                name, _ = fdt.get_name(node)
                if name is None:
                    name = b"/* NULL pointer error */"
                if name == b"":
                    name = b"/"
                if level == 1:
                    out.write(name + b"\n")
            level += 1
            if level >= MAX_LEVEL:
                out.write(b"Nested too deep, aborting.\n")
                return 1
        elif tag == FDT_END_NODE:
            level -= 1
            if level == 0:
                level = -1
        elif tag == FDT_END:
            return 1
        elif tag != FDT_PROP:
            if level <= depth:
                out.write(b"Unknown tag 0x%08X\n" % tag)
            return 1
        node = nextoffset
    return 0


def _show_item(fdt: Fdt, disp: _Display, node: int, prop: bytes | None, out: BinaryIO, err: TextIO) -> bool:
    if disp.mode == MODE_LIST_PROPS:
        return _list_properties(fdt, node, out) == 0
    if disp.mode == MODE_LIST_SUBNODES:
        return _list_subnodes(fdt, node, out) == 0
    assert prop is not None
    pos, ln = fdt.getprop(node, prop)
    if pos >= 0:
        if not show_data(disp, fdt.read(pos, ln), out, err):
            return False
        out.write(b"\n")
        return True
    if disp.default is not None:
        out.write(disp.default + b"\n")
        return True
    err.write(f"Error at '{os.fsdecode(prop)}': {strerror(ln)}\n")
    return False


def _do_fdtget(
    disp: _Display, filename: str, args: list[bytes], per_step: int, out: BinaryIO, err: TextIO
) -> int:
    buf, why = read_tool_file(filename)
    if buf is None:
        err.write(f"Couldn't open blob from '{filename}': {why}\n")
        return 1
    fdt = Fdt(buf)
    for i in range(0, len(args) - per_step + 1, per_step):
        node = fdt.path_offset(args[i])
        if node < 0:
            if disp.default is not None:
                out.write(disp.default + b"\n")
                continue
            err.write(f"Error at '{os.fsdecode(args[i])}': {strerror(node)}\n")
            return 1
        prop = args[i + 1] if per_step == 2 else None
        if not _show_item(fdt, disp, node, prop, out, err):
            return 1
    return 0


def run(argv: list[str], stdout: BinaryIO | None = None, stderr: TextIO | None = None) -> int:
    """Run fdtget with ``argv`` (without the program name); returns the exit code."""
    return run_tool(PROG, _run, argv, stdout, stderr)


def _run(argv: list[str], out: BinaryIO, err: TextIO) -> int:
    disp = _Display()
    per_step = 2
    events, args = getopt_long(PROG, argv, SHORT_OPTS, LONG_OPTS)
    for opt, val in events:
        common_option(opt, val, out, err, _usage)
        if opt == "t":
            assert val is not None
            decoded = decode_type(val)
            if decoded is None:
                raise _usage(out, err, "invalid type string")
            disp.type, disp.size = decoded
        elif opt == "p":
            disp.mode = MODE_LIST_PROPS
            per_step = 1
        elif opt == "l":
            disp.mode = MODE_LIST_SUBNODES
            per_step = 1
        elif opt == "d":
            assert val is not None
            disp.default = os.fsencode(val)
    if not args:
        raise _usage(out, err, "missing filename")
    filename, rest = args[0], args[1:]
    if not rest:
        return 0
    if per_step == 2 and len(rest) % 2:
        raise _usage(out, err, "must have an even number of arguments")
    return _do_fdtget(disp, filename, [os.fsencode(a) for a in rest], per_step, out, err)
