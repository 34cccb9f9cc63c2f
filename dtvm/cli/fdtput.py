"""``dtvm fdtput``: dtc 1.6.1's ``fdtput``, byte for byte.

The C tool edits the blob in its buffer with libfdt and writes it back packed;
when libfdt runs out of room it grows the buffer by what the edit needs
(``fdt_open_into``) and tries once more.  This module runs the same steps on
:class:`dtvm.dt.libfdt.Fdt`, so the file it writes has the same bytes: the same
string reuse, the same insertion points, the same stale padding bytes.  Values
are parsed as the C tool parses them, with ``sscanf`` semantics (``-t i``
accepts ``0x``/``0`` prefixes, out-of-range numbers wrap or saturate as glibc
makes them; with ``-t h`` only the low byte of each 2-byte cell is written, as
in 1.6.1).  The file is replaced atomically (a regular file keeps its mode);
on any error it is left untouched.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, TextIO

from dtvm.cli.fdtutil import (
    COMMON_LONG_OPTS,
    USAGE_TYPE_MSG,
    LongOpt,
    ToolExit,
    common_option,
    decode_type,
    getopt_long,
    read_tool_file,
    run_tool,
    usage_exit,
)
from dtvm.dt.libfdt import (
    FDT_ERR_BADPATH,
    FDT_ERR_NOSPACE,
    FDT_ERR_NOTFOUND,
    FDT_TAGSIZE,
    Fdt,
    open_into,
    strerror,
)

__all__ = ["run", "scanf_int"]

PROG = "fdtput"
SHORT_OPTS = "crdpt:vhV"
LONG_OPTS: list[LongOpt] = [
    ("create", False, "c", "Create nodes if they don't already exist"),
    ("remove", False, "r", "Delete nodes (and any subnodes) if they already exist"),
    ("delete", False, "d", "Delete properties if they already exist"),
    ("auto-path", False, "p", "Automatically create nodes as needed for the node path"),
    ("type", True, "t", "Type of data"),
    ("verbose", False, "v", "Display each value decoded from command line"),
    *COMMON_LONG_OPTS,
]
SYNOPSIS = (
    "write a property value to a device tree\n"
    "\tfdtput <options> <dt file> <node> <property> [<value>...]\n"
    "\tfdtput -c <options> <dt file> [<node>...]\n"
    "\tfdtput -r <options> <dt file> [<node>...]\n"
    "\tfdtput -d <options> <dt file> <node> [<property>...]\n"
    "\n"
    "The command line arguments are joined together into a single value.\n" + USAGE_TYPE_MSG
)

OPER_WRITE_PROP, OPER_CREATE_NODE, OPER_REMOVE_NODE, OPER_DELETE_PROP = range(4)
_SPACE = b" \t\n\v\f\r"
_DIGITS = {8: b"01234567", 10: b"0123456789", 16: b"0123456789abcdefABCDEF"}


def _i32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - 0x100000000 if x & 0x80000000 else x


def _align(x: int) -> int:
    """fdtput's ``ALIGN`` (to the tag size) on a C ``int``."""
    return _i32((x + FDT_TAGSIZE - 1) & ~(FDT_TAGSIZE - 1))


def scanf_int(text: bytes, conv: str) -> int | None:
    """glibc ``sscanf(text, "%<conv>", &int)``: the ``int`` stored, or None if nothing matched.

    ``%d``/``%i`` go through ``strtol`` (saturating at the 64-bit limits),
    ``%u``/``%x`` through ``strtoul`` (negated modulo 2**64, saturating); the
    result is then truncated to 32 bits as the store into an ``int`` does.
    """
    n = len(text)
    i = 0
    while i < n and text[i] in _SPACE:
        i += 1
    neg = False
    if i < n and text[i] in b"+-":
        neg = text[i] == 0x2D
        i += 1
    base = {"d": 10, "u": 10, "x": 16, "i": 0}[conv]
    zero = False
    if i < n and text[i] == 0x30:
        zero = True
        i += 1
        if i < n and text[i] in b"xX":
            if base == 0:
                base = 16
            if base == 16:
                i += 1
        elif base == 0:
            base = 8
    if base == 0:
        base = 10
    digits = _DIGITS[base]
    j = i
    while j < n and text[j] in digits:
        j += 1
    if j == i and not zero:
        return None
    mag = int(text[i:j], base) if j > i else 0
    value = -mag if neg else mag
    if conv in "di":
        value = max(-(1 << 63), min((1 << 63) - 1, value))
    elif mag > (1 << 64) - 1:
        value = (1 << 64) - 1
    return _i32(value)


class _Display:
    def __init__(self) -> None:
        self.oper = OPER_WRITE_PROP
        self.type = ""
        self.size = -1
        self.verbose = False
        self.auto_path = False


class _Tool:
    """One fdtput run: the blob buffer and the streams."""

    def __init__(self, fdt: Fdt, err: TextIO) -> None:
        self.fdt = fdt
        self.err = err

    def report_error(self, name: bytes, namelen: int, err: int) -> None:
        shown = name if namelen == -1 else name[:namelen]
        text = os.fsdecode(shown) or " "  # "%1.*s": at least one character wide
        self.err.write(f"Error at '{text}': {strerror(err)}\n")

    def _realloc_fdt(self, delta: int) -> None:
        new_sz = _i32(self.fdt.totalsize() + delta)
        self.fdt.realloc(new_sz)
        open_into(self.fdt, self.fdt, new_sz)  # the C tool ignores its result

    def realloc_node(self, name: bytes) -> None:
        # FDT_BEGIN_NODE, the name (the rest of the path, as the C tool measures it) and FDT_END_NODE
        self._realloc_fdt(4 + _align(len(name) + 1) + FDT_TAGSIZE)

    def realloc_property(self, node: int, name: bytes, newlen: int) -> None:
        delta = 0
        prop, oldlen = self.fdt.get_property_namelen(node, name)
        if prop < 0:
            delta = 12 + len(name) + 1  # property header + string
        if newlen > oldlen:
            delta += _align(newlen) - _align(oldlen)
        self._realloc_fdt(delta)

    def store_key_value(self, node_name: bytes, prop: bytes, value: bytes) -> bool:
        fdt = self.fdt
        node = fdt.path_offset(node_name)
        if node < 0:
            self.report_error(node_name, -1, node)
            return False
        err = fdt.setprop(node, prop, value)
        if err == -FDT_ERR_NOSPACE:
            self.realloc_property(node, prop, len(value))
            err = fdt.setprop(node, prop, value)
        if err:
            self.report_error(prop, -1, err)
            return False
        return True

    def create_paths(self, in_path: bytes) -> bool:
        fdt = self.fdt
        path = in_path.lstrip(b"/")
        offset = 0
        pos = 0
        if not path:
            return True
        while True:
            sep = path.find(b"/", pos)
            if sep < 0:
                sep = len(path)
            component = path[pos:sep]
            node = fdt.subnode_offset_namelen(offset, component)
            if node == -FDT_ERR_NOTFOUND:
                self.realloc_node(path[pos:])
                node = fdt.add_subnode_namelen(offset, component)
            if node < 0:
                self.report_error(path[pos:], sep - pos, node)
                return False
            if sep >= len(path):
                return True
            pos = sep + 1
            offset = node

    def create_node(self, node_name: bytes) -> bool:
        fdt = self.fdt
        slash = node_name.rfind(b"/")
        if slash < 0:
            self.report_error(node_name, -1, -FDT_ERR_BADPATH)
            return False
        leaf = node_name[slash + 1 :]
        self.realloc_node(leaf)
        node = 0
        if slash > 0:
            parent = node_name[:slash]
            node = fdt.path_offset(parent)
            if node < 0:
                self.report_error(parent, -1, node)
                return False
        node = fdt.add_subnode(node, leaf)
        if node < 0:
            self.report_error(leaf, -1, node)
            return False
        return True

    def delete_prop(self, node_name: bytes, prop: bytes) -> bool:
        fdt = self.fdt
        node = fdt.path_offset(node_name)
        if node < 0:
            self.report_error(node_name, -1, node)
            return False
        err = fdt.delprop(node, prop)
        if err < 0:
            self.report_error(node_name, -1, err)
            return False
        return True

    def delete_node(self, node_name: bytes) -> bool:
        fdt = self.fdt
        node = fdt.path_offset(node_name)
        if node < 0:
            self.report_error(node_name, -1, node)
            return False
        err = fdt.del_node(node)
        if err < 0:
            self.report_error(node_name, -1, err)
            return False
        return True


def encode_value(disp: _Display, args: list[bytes], err: TextIO) -> bytes:
    """fdtput's ``encode_value``: the arguments joined into one property value."""
    if disp.verbose:
        err.write("Decoding value:\n")
    conv = disp.type or "d"
    value = bytearray()
    ival = 0  # uninitialised in C until the first successful conversion
    for arg in args:
        if disp.type == "s":
            value += arg + b"\0"
            if disp.verbose:
                err.write(f"\tstring: '{os.fsdecode(arg)}'\n")
            continue
        size = 4 if disp.size == -1 else disp.size
        got = scanf_int(arg, conv)
        if got is not None:
            ival = got
        if size == 4:
            value += struct.pack(">I", ival & 0xFFFFFFFF)
        else:
            # only the first byte is stored; a 2-byte cell's second byte is left
            # as the (fresh, zeroed) buffer had it
            value += bytes([ival & 0xFF]) + bytes(size - 1)
        if disp.verbose:
            label = "byte" if disp.size == 1 else "short" if disp.size == 2 else "int"
            err.write(f"\t{label}: {ival}\n")
    if disp.verbose:
        err.write(f"Value size {len(value)}\n")
    return bytes(value)


def _write_blob(filename: str, data: bytes, out: BinaryIO, err: TextIO) -> int:
    if filename == "-":
        out.write(data)
        return 0
    from dtvm.fileio import write_atomic

    try:
        mode = os.stat(filename).st_mode
    except OSError:
        mode = None
    try:
        write_atomic(filename, data)
        if mode is not None and os.path.isfile(filename):
            os.chmod(filename, mode & 0o7777)
    except OSError as exc:
        err.write(f"Couldn't write blob to '{filename}': {exc.strerror}\n")
        return 1
    return 0


def _do_fdtput(disp: _Display, filename: str, args: list[bytes], out: BinaryIO, err: TextIO) -> int:
    buf, why = read_tool_file(filename)
    if buf is None:
        err.write(f"Couldn't open blob from '{filename}': {why}\n")
        return 1
    tool = _Tool(Fdt(buf), err)
    ok = True
    if disp.oper == OPER_WRITE_PROP:
        if disp.auto_path and not tool.create_paths(args[0]):
            return 1
        value = encode_value(disp, args[2:], err)
        ok = tool.store_key_value(args[0], args[1], value)
    elif disp.oper == OPER_CREATE_NODE:
        for arg in args:
            ok = tool.create_paths(arg) if disp.auto_path else tool.create_node(arg)
            if not ok:
                break
    elif disp.oper == OPER_REMOVE_NODE:
        for arg in args:
            ok = tool.delete_node(arg)
            if not ok:
                break
    else:
        for prop in args[1:]:
            ok = tool.delete_prop(args[0], prop)
            if not ok:
                break
    if not ok:
        return 1
    tool.fdt.pack()  # the C tool ignores its result (a version 16 blob is written as it is)
    return _write_blob(filename, tool.fdt.data(), out, err)


def _usage(out: BinaryIO, err: TextIO, errmsg: str | None) -> ToolExit:
    return usage_exit(out, err, errmsg, SYNOPSIS, SHORT_OPTS, LONG_OPTS)


def run(argv: list[str], stdout: BinaryIO | None = None, stderr: TextIO | None = None) -> int:
    """Run fdtput with ``argv`` (without the program name); returns the exit code."""
    return run_tool(PROG, _run, argv, stdout, stderr, "; the file is left unchanged")


def _run(argv: list[str], out: BinaryIO, err: TextIO) -> int:
    disp = _Display()
    events, args = getopt_long(PROG, argv, SHORT_OPTS, LONG_OPTS)
    for opt, val in events:
        common_option(opt, val, out, err, _usage)
        if opt == "c":
            disp.oper = OPER_CREATE_NODE
        elif opt == "r":
            disp.oper = OPER_REMOVE_NODE
        elif opt == "d":
            disp.oper = OPER_DELETE_PROP
        elif opt == "p":
            disp.auto_path = True
        elif opt == "t":
            assert val is not None
            decoded = decode_type(val)
            if decoded is None:
                raise _usage(out, err, "Invalid type string")
            disp.type, disp.size = decoded
        elif opt == "v":
            disp.verbose = True
    if not args:
        raise _usage(out, err, "missing filename")
    filename, rest = args[0], args[1:]
    if disp.oper == OPER_WRITE_PROP:
        if len(rest) < 1:
            raise _usage(out, err, "missing node")
        if len(rest) < 2:
            raise _usage(out, err, "missing property")
    if disp.oper == OPER_DELETE_PROP and len(rest) < 1:
        raise _usage(out, err, "missing node")
    return _do_fdtput(disp, filename, [os.fsencode(a) for a in rest], out, err)
