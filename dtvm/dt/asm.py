"""``dtc -O asm``: the blob as assembler source, byte-identical to dtc 1.6.1 (``flattree.c``, ``dt_to_asm``).

The assembler source builds the same blob as ``-O dtb``: the header fields
that are sizes and offsets are expressions over the ``_dt_*`` labels, node,
property, value and reservation labels become global symbols (``label``,
``label_end`` after a node, ``label = . + offset`` inside a value), cells are
written as four ``.byte`` directives, and alignment is left to ``.balign``.
``-V``, ``-R``, ``-S``, ``-p``, ``-a`` and ``-b`` take effect as in dtc.
"""

from __future__ import annotations

from dtvm.dt.dtb import (
    FDT_BEGIN_NODE,
    FDT_END,
    FDT_END_NODE,
    FDT_MAGIC,
    FDT_PROP,
    FTF_BOOTCPUID,
    FTF_FULLPATH,
    FTF_NAMEPROPS,
    FTF_STRTABSIZE,
    FTF_STRUCTSIZE,
    FTF_VARALIGN,
    VERSIONS,
    _c_string,
    _join_path,
    _StringTable,
)
from dtvm.dt.tree import DeviceTree, Label, Marker, MarkerType, Node
from dtvm.errors import DtvmError

__all__ = ["write_asm"]

_PREFIX = "dt"
_LABEL = MarkerType.LABEL
# dtc loops over -R entries; beyond this the output would be gigabytes (dtc's own
# loop counter is unsigned, so a negative -R asks for four billion entries)
_MAX_RESERVENUM = 1 << 24


def _cell(val: int) -> str:
    """asm_emit_cell."""
    return (
        f"\t.byte 0x{(val >> 24) & 0xFF:02x}; .byte 0x{(val >> 16) & 0xFF:02x}; "
        f".byte 0x{(val >> 8) & 0xFF:02x}; .byte 0x{val & 0xFF:02x}\n"
    )


_CELL_BEGIN = "\t/* FDT_BEGIN_NODE */\n" + _cell(FDT_BEGIN_NODE)
_CELL_END_NODE = "\t/* FDT_END_NODE */\n" + _cell(FDT_END_NODE)
_CELL_PROP = "\t/* FDT_PROP */\n" + _cell(FDT_PROP)
_ALIGN4 = "\t.balign\t4, 0\n"
_ALIGN8 = "\t.balign\t8, 0\n"
# every 32-bit cell's text, computed per call would dominate the run time
_BYTE_HEX = [f"0x{b:02x}" for b in range(256)]


def _label(name: str) -> str:
    """emit_label: a symbol with and without the leading underscore."""
    return f"\t.globl\t{_PREFIX}_{name}\n{_PREFIX}_{name}:\n_{_PREFIX}_{name}:\n"


def _belong(expr: str) -> str:
    """ASM_EMIT_BELONG: a 32-bit big-endian value given as an assembler expression."""
    return (
        f"\t.byte\t(({expr}) >> 24) & 0xff\n"
        f"\t.byte\t(({expr}) >> 16) & 0xff\n"
        f"\t.byte\t(({expr}) >> 8) & 0xff\n"
        f"\t.byte\t({expr}) & 0xff\n"
    )


def _symbols(labels: list[Label], suffix: str = "") -> str:
    return "".join(
        f"\t.globl\t{lab.name}{suffix}\n{lab.name}{suffix}:\n" for lab in labels if not lab.deleted
    )


def _data(value: bytes, markers: list[Marker]) -> str:
    """asm_emit_data: value labels, then whole cells, then the remaining bytes."""
    out = [f"\t.globl\t{m.ref}\n{m.ref}\t= . + {m.offset}\n" for m in markers if m.type == _LABEL]
    n = len(value)
    whole = n - n % 4
    hx = _BYTE_HEX
    for i in range(0, whole, 4):
        out.append(
            f"\t.byte {hx[value[i]]}; .byte {hx[value[i + 1]]}; .byte {hx[value[i + 2]]}; .byte {hx[value[i + 3]]}\n"
        )
    for i in range(whole, n):
        out.append(f"\t.byte\t0x{value[i]:x}\n")
    return "".join(out)


def _int32(value: int) -> int:
    """A C ``int`` holding ``value`` (dtc keeps -S, -p and -a in ints)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 0x80000000 else value


def _flatten(root: Node, flags: int, strings: _StringTable, out: list[str]) -> None:
    """flatten_tree with the asm emitter, iterative (any depth)."""
    if root.deleted:
        return
    fullpath = bool(flags & FTF_FULLPATH)
    varalign = bool(flags & FTF_VARALIGN)
    nameprops = bool(flags & FTF_NAMEPROPS)
    # the checks freeze full paths where dtc fills them in; a tree that was not
    # checked has none frozen, and every node gets its path
    frozen = root.frozen
    insert = strings.insert
    append = out.append
    stack: list[Node | None] = [root]
    closing: list[Node] = []
    paths: list[bytes] = [b""]
    while stack:
        node = stack.pop()
        if node is None:
            done = closing.pop()
            append(_CELL_END_NODE)
            append(_symbols(done.labels, "_end"))
            continue
        append(_symbols(node.labels))
        append(_CELL_BEGIN)
        raw = _c_string(node.name)
        # nodes made after dtc's fill_fullpaths (aliases, __symbols__, __fixups__,
        # __local_fixups__ and their children) have no full path and a base name
        # length of 0: dtc prints the NULL path as "(null)"
        generated = frozen and not node.frozen
        if fullpath:
            flat = _join_path(paths.pop(), raw)
            append('\t.string\t"(null)"\n' if generated else f'\t.string\t"{flat.decode("latin-1")}"\n')
        else:
            append(f'\t.string\t"{raw.decode("latin-1")}"\n')
        append(_ALIGN4)
        seen_name = False
        for prop in node.props:
            if prop.deleted:
                continue
            if prop.name == "name":
                seen_name = True
            nameoff = insert(prop.name)
            vlen = len(prop.value)
            append(_symbols(prop.labels))
            append(_CELL_PROP)
            append(_cell(vlen))
            append(_cell(nameoff))
            if varalign and vlen >= 8:
                append(_ALIGN8)
            append(_data(prop.value, prop.markers))
            append(_ALIGN4)
        if nameprops and not seen_name:
            at = raw.find(b"@")
            basenamelen = 0 if generated else len(raw) if at < 0 else at
            append(_CELL_PROP)
            append(_cell(basenamelen + 1))
            append(_cell(insert("name")))
            if varalign and basenamelen + 1 >= 8:
                append(_ALIGN8)
            # asm_emit_string: "%.*s" with the base name length, "%s" when it is 0
            sval = raw[:basenamelen] if basenamelen else raw
            append(f'\t.string\t"{sval.decode("latin-1")}"\n')
            append(_ALIGN4)
        stack.append(None)
        closing.append(node)
        kids = [c for c in node.children if not c.deleted]
        kids.reverse()
        stack.extend(kids)
        if fullpath:
            paths.extend([flat] * len(kids))


def write_asm(
    dt: DeviceTree,
    version: int = 17,
    minsize: int = 0,
    padsize: int = 0,
    alignsize: int = 0,
    reservenum: int = 0,
) -> bytes:
    """The tree as ``dtc -O asm`` writes it (``-V``, ``-S``, ``-p``, ``-a``, ``-R``)."""
    vi = VERSIONS.get(version)
    if vi is None:
        raise DtvmError(f"Unknown device tree blob version {version}")
    last_comp, _hdr_size, flags = vi
    if reservenum > _MAX_RESERVENUM:
        raise DtvmError(
            f"-R {reservenum}: too many reserve map entries (dtc would write {reservenum * 32} bytes of assembler)"
        )
    minsize, padsize, alignsize = _int32(minsize), _int32(padsize), _int32(alignsize)
    out: list[str] = ["/* autogenerated by dtc, do not edit */\n\n"]
    append = out.append
    append(_label("blob_start"))
    append(_label("header"))
    append("\t/* magic */\n" + _cell(FDT_MAGIC))
    append("\t/* totalsize */\n" + _belong("_dt_blob_abs_end - _dt_blob_start"))
    append("\t/* off_dt_struct */\n" + _belong("_dt_struct_start - _dt_blob_start"))
    append("\t/* off_dt_strings */\n" + _belong("_dt_strings_start - _dt_blob_start"))
    append("\t/* off_mem_rsvmap */\n" + _belong("_dt_reserve_map - _dt_blob_start"))
    append("\t/* version */\n" + _cell(version))
    append("\t/* last_comp_version */\n" + _cell(last_comp))
    if flags & FTF_BOOTCPUID:
        append("\t/* boot_cpuid_phys */\n" + _cell(dt.boot_cpuid & 0xFFFFFFFF))
    if flags & FTF_STRTABSIZE:
        append("\t/* size_dt_strings */\n" + _belong("_dt_strings_end - _dt_strings_start"))
    if flags & FTF_STRUCTSIZE:
        append("\t/* size_dt_struct */\n" + _belong("_dt_struct_end - _dt_struct_start"))

    append(_ALIGN8)
    append(_label("reserve_map"))
    append("/* Memory reserve map from source file */\n")
    for entry in dt.reservations:
        append(_symbols(entry.labels))
        address = entry.address & 0xFFFFFFFFFFFFFFFF
        size = entry.size & 0xFFFFFFFFFFFFFFFF
        for word in (address >> 32, address & 0xFFFFFFFF, size >> 32, size & 0xFFFFFFFF):
            append(_belong(f"0x{word:08x}"))
    if reservenum > 0:
        append("\t.long\t0, 0\n\t.long\t0, 0\n" * reservenum)
    append("\t.long\t0, 0\n\t.long\t0, 0\n")

    strings = _StringTable()
    append(_label("struct_start"))
    _flatten(dt.root, flags, strings, out)
    append("\t/* FDT_END */\n" + _cell(FDT_END))
    append(_label("struct_end"))

    append(_label("strings_start"))
    table = bytes(strings.table)
    for name in table.split(b"\0")[:-1]:
        append(f'\t.string "{name.decode("latin-1")}"\n')
    append(_label("strings_end"))

    append(_label("blob_end"))
    if minsize > 0:
        append(f"\t.space\t{minsize} - (_dt_blob_end - _dt_blob_start), 0\n")
    if padsize > 0:
        append(f"\t.space\t{padsize}, 0\n")
    if alignsize > 0:
        append(f"\t.balign\t{alignsize}, 0\n")
    append(_label("blob_abs_end"))
    return "".join(out).encode("latin-1")
