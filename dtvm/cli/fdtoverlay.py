"""``dtvm fdtoverlay``: dtc 1.6.1's ``fdtoverlay``, byte for byte, with errors in words.

``fdtoverlay -i BASE -o OUT OVERLAY...`` applies the overlays in turn with
libfdt's ``fdt_overlay_apply`` (:func:`dtvm.dt.apply.overlay_apply`).  As in the
C tool, each overlay is applied to a fresh copy of the current result in a
buffer that starts at the result's size and grows by 64 KiB each time libfdt
runs out of room; the final blob is packed and written.  The buffers are
modelled byte for byte (see :mod:`dtvm.dt.libfdt`), so the output file is the
C tool's.

Where fdtoverlay reports ``Failed to apply 'x.dtbo': FDT_ERR_NOTFOUND``, this
says which fixup, label, target path or fragment failed.  A fixup whose
offset lies past the end of its property is reported at once (fdtoverlay
mistakes it for lack of room and grows its buffer 32768 times before giving
up).  On any error the exit status is 1 and the output file is not touched.
"""

from __future__ import annotations

from typing import BinaryIO, TextIO

from dtvm.cli.fdtutil import (
    COMMON_LONG_OPTS,
    USAGE_TYPE_MSG,
    LongOpt,
    ToolExit,
    common_option,
    getopt_long,
    run_tool,
    usage_exit,
)
from dtvm.dt.libfdt import (
    FDT_ERR_NOSPACE,
    Fdt,
    open_into,
    strerror,
)
from dtvm.errors import BlobError

__all__ = ["OverlayError", "apply_overlays", "run"]

PROG = "fdtoverlay"
SHORT_OPTS = "i:o:vhV"
LONG_OPTS: list[LongOpt] = [
    ("input", True, "i", "Input base DT blob"),
    ("output", True, "o", "Output DT blob"),
    ("verbose", False, "v", "Verbose messages"),
    *COMMON_LONG_OPTS,
]
SYNOPSIS = (
    "apply a number of overlays to a base blob\n"
    "\tfdtoverlay <options> [<overlay.dtbo> [<overlay.dtbo>]]\n"
    "\n" + USAGE_TYPE_MSG
)
BUF_INCREMENT = 0x10000
_INT_MAX = 0x7FFFFFFF


class OverlayError(Exception):
    """An overlay could not be applied; ``str()`` says why in words."""


def _apply_one(base: Fdt, overlay: bytes, buf_len: int, name: str) -> tuple[Fdt, int]:
    """fdtoverlay's ``apply_one``: (the new blob, the buffer length it ended with)."""
    from dtvm.dt.apply import overlay_apply

    tmp: Fdt | None = None
    while True:
        if tmp is None:
            tmp = Fdt(bytearray(max(buf_len, 40)))
        tmp.realloc(buf_len)
        ret = open_into(base, tmp, buf_len)
        if ret:
            raise OverlayError(f"Failed to make temporary copy: {strerror(ret)}")
        fdto = Fdt(bytearray(overlay))
        ret, failure = overlay_apply(tmp, fdto)
        if ret == -FDT_ERR_NOSPACE and (failure is None or failure.retry):
            buf_len += BUF_INCREMENT
            if buf_len > _INT_MAX:
                raise OverlayError(
                    f"Failed to apply '{name}': the result does not fit in 2 GiB ({strerror(ret)})"
                )
            continue
        break
    if ret:
        why = str(failure) if failure is not None else strerror(ret)
        raise OverlayError(f"Failed to apply '{name}': {why}")
    return tmp, buf_len


def _check_complete(what: str, data: bytes) -> bytes:
    """fdtoverlay's "incomplete" check (against the C buffer size); the image libfdt sees."""
    from dtvm.dt.libfdt import read_buffer

    buf = read_buffer(data)
    total = Fdt(buf).totalsize()
    if total > len(buf):
        raise OverlayError(f"{what} is incomplete ({len(buf)} / {total} bytes read)")
    return bytes(buf)


def _apply_all(base: bytes, images: list[tuple[str, bytes]]) -> bytes:
    blob = Fdt(bytearray(base))
    buf_len = blob.totalsize()
    for name, image in images:
        overlay = image[: Fdt(bytearray(image)).totalsize()]
        blob, buf_len = _apply_one(blob, overlay, buf_len, name)
    blob.pack()
    return blob.data()


def apply_overlays(base: bytes, overlays: list[tuple[str, bytes]]) -> bytes:
    """Apply ``overlays`` (name, blob) to the ``base`` blob as fdtoverlay does; the packed result.

    ``base`` and the overlays are the files' bytes.  Raises :class:`OverlayError`
    with a message in words (or :class:`~dtvm.errors.BlobError` for a blob too
    corrupt to read).
    """
    image = _check_complete("Base blob", base)
    images = [(name, _check_complete(f"Overlay '{name}'", data)) for name, data in overlays]
    return _apply_all(image, images)


def _do_fdtoverlay(input_filename: str, overlays: list[str], err: TextIO) -> bytes | None:
    data = _read_file_bytes(input_filename, err)
    if data is None:
        return None
    image = _check_complete("Base blob", data)
    images = []
    for name in overlays:
        odata = _read_file_bytes(name, err)
        if odata is None:
            return None
        images.append((name, _check_complete(f"Overlay '{name}'", odata)))
    return _apply_all(image, images)


def _usage(out: BinaryIO, err: TextIO, errmsg: str | None) -> ToolExit:
    return usage_exit(out, err, errmsg, SYNOPSIS, SHORT_OPTS, LONG_OPTS)


def run(argv: list[str], stdout: BinaryIO | None = None, stderr: TextIO | None = None) -> int:
    """Run fdtoverlay with ``argv`` (without the program name); returns the exit code."""
    return run_tool(PROG, _run, argv, stdout, stderr)


def _run(argv: list[str], out: BinaryIO, err: TextIO) -> int:
    input_filename: str | None = None
    output_filename: str | None = None
    verbose = False
    events, overlays = getopt_long(PROG, argv, SHORT_OPTS, LONG_OPTS)
    for opt, val in events:
        common_option(opt, val, out, err, _usage)
        if opt == "i":
            input_filename = val
        elif opt == "o":
            output_filename = val
        elif opt == "v":
            verbose = True
    if not input_filename:
        raise _usage(out, err, "missing input file")
    if not output_filename:
        raise _usage(out, err, "missing output file")
    if not overlays:
        raise _usage(out, err, "missing overlay file(s)")
    if verbose:
        out.write(f"input  = {input_filename}\n".encode())
        out.write(f"output = {output_filename}\n".encode())
        for i, name in enumerate(overlays):
            out.write(f"overlay[{i}] = {name}\n".encode())
        out.flush()
    try:
        result = _do_fdtoverlay(input_filename, overlays, err)
    except OverlayError as exc:
        err.write(f"\n{exc}\n")
        return 1
    except BlobError as exc:
        err.write(f"\n{PROG}: error: {exc.message}\n")
        return 1
    except RecursionError:
        err.write(f"\n{PROG}: error: an overlay nests nodes too deeply\n")
        return 1
    if result is None:
        return 1
    if output_filename == "-":
        out.write(result)
        return 0
    from dtvm.fileio import write_atomic

    try:
        write_atomic(output_filename, result)
    except OSError as exc:
        err.write(f"Couldn't write blob to '{output_filename}': {exc.strerror}\n")
        err.write(f"\nFailed to write '{output_filename}'\n")
        return 1
    return 0


def _read_file_bytes(filename: str, err: TextIO) -> bytes | None:
    """The file's bytes (``utilfdt_read``'s errors reported as the C tool reports them)."""
    from dtvm.fileio import MAX_BLOB, read_limited

    try:
        # the whole file, as utilfdt_read (the "incomplete" check compares with its length),
        # but within a cap: /dev/zero or an endless FIFO ends in one line
        return read_limited(filename, MAX_BLOB)
    except OSError as exc:
        err.write(f"Couldn't open blob from '{filename}': {exc.strerror}\n")
        err.write(f"\nFailed to read '{filename}'\n")
        return None
