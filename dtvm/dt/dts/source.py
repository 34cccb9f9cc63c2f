"""Source buffers: the text of one input file and the map from offsets to file:line:col.

DTS text is handled as latin-1 so that every byte of the input is one character
and string values come back out as exactly the bytes that went in (dtc works on
bytes). cpp linemarkers (``# 12 "board.dtsi"``) re-map line numbers, so errors
name the original file and line; the map is built once, lookups bisect it.
"""

from __future__ import annotations

import bisect
import itertools
import os

from dtvm.dt.tree import SourcePos

__all__ = ["NodePos", "SourceBuffer", "SpanPos", "dtc_srcpos", "extend_pos", "include_chain", "make_pos", "pos_spans", "read_source"]

# linemarkers are numbered in the order they are scanned, across all buffers,
# so that the first one of a compilation can be found (dtc's initial path)
_MARK_SEQ = itertools.count()


class SourceBuffer:
    """One file's text plus linemarker remappings."""

    __slots__ = ("_chains", "_entries", "_mark_offsets", "_marks", "_newlines", "_seen", "_seen_lines", "dir", "first_mark",
                 "included_from", "name", "text")

    def __init__(self, name: str, text: str, directory: str | None = None) -> None:
        self.name = name
        self.text = text
        self.dir = directory if directory is not None else os.path.dirname(name)
        self._newlines: list[int] | None = None
        # offsets whose line was counted, sorted, and their 0-based lines (see _line_index)
        self._seen: list[int] = []
        self._seen_lines: list[tuple[int, int]] = []
        # linemarkers: (offset where the mapping starts, file name, line number at that offset)
        self._marks: list[tuple[int, str, int]] = []
        self._mark_offsets: list[int] = []
        # (scan order, file name) of this buffer's first linemarker
        self.first_mark: tuple[int, str] | None = None
        # cpp's include stack, from linemarker flags: mark index -> (flag 1 or 2, offset of the
        # marker line), and (lazily) the stack in force from each mark on
        self._entries: dict[int, tuple[int, int]] = {}
        self._chains: list[tuple[tuple[str, int], ...]] | None = None
        # dtc's /include/: the buffer and offset of the directive that read this file
        self.included_from: tuple[SourceBuffer, int] | None = None

    def add_linemarker(self, offset: int, name: str, line: int, flag: int = 0, marker: int = 0) -> None:
        """From ``offset`` on, the text is ``name`` and ``offset`` is on line ``line``.

        ``flag`` is cpp's 1 (entering an included file) or 2 (back in the includer), ``marker``
        the offset of the marker line itself, which the mapping before it puts on the line of
        the ``#include`` (GNU cpp writes the marker right where the directive was)."""
        if self.first_mark is None:
            self.first_mark = (next(_MARK_SEQ), name)
        if flag in (1, 2):
            self._entries[len(self._marks)] = (flag, marker)
            self._chains = None
        self._marks.append((offset, name, line))
        self._mark_offsets.append(offset)

    def include_chain(self, offset: int) -> list[tuple[str, int]]:
        """The ``#include`` sites (file, line) that the text at ``offset`` was reached through,
        innermost first, as gcc's ``In file included from`` lists them."""
        if not self._entries:
            return []
        k = bisect.bisect_right(self._mark_offsets, offset) - 1
        if k < 0:
            return []
        if self._chains is None:
            chains: list[tuple[tuple[str, int], ...]] = []
            stack: list[tuple[str, int]] = []
            for i in range(len(self._marks)):
                entry = self._entries.get(i)
                if entry is not None:
                    if entry[0] == 1:
                        name, line, _ = self.location(entry[1])
                        stack.append((name, line))
                    elif stack:
                        stack.pop()
                chains.append(tuple(stack))
            self._chains = chains
        return list(reversed(self._chains[k]))

    def _nl(self) -> list[int]:
        if self._newlines is None:
            # the offsets of the newlines, summed from the lines' lengths in C
            # (a find() loop in Python cost about a millisecond per 3,000 lines)
            out = list(itertools.accumulate(map((1).__add__, map(len, self.text.split("\n"))), initial=-1))
            del out[0]
            out.pop()
            self._newlines = out
        return self._newlines

    def physical(self, offset: int) -> tuple[int, int]:
        """(0-based physical line index, 1-based column) of an offset."""
        nl = self._nl()
        idx = bisect.bisect_left(nl, offset)
        start = nl[idx - 1] + 1 if idx > 0 else 0
        return idx, offset - start + 1

    def _line(self, offset: int) -> tuple[int, int]:
        """(0-based physical line, offset of that line's start) of ``offset``: the newlines before
        it, counted in C from the nearest offset counted before.  A compile asks this for a few
        hundred offsets (its findings), for which counting costs a tenth of building the table
        of every newline (``_nl``); past 256 lookups the table is built and used from then on."""
        nl = self._newlines
        if nl is not None:
            idx = bisect.bisect_left(nl, offset)
            return idx, nl[idx - 1] + 1 if idx else 0
        text = self.text
        seen = self._seen
        k = bisect.bisect_right(seen, offset)
        base = seen[k - 1] if k else 0
        line, start = self._seen_lines[k - 1] if k else (0, 0)
        n = text.count("\n", base, offset)
        if n:
            line += n
            start = text.rfind("\n", base, offset) + 1
        if len(seen) >= 256:
            self._nl()
        elif base != offset or not k:
            seen.insert(k, offset)
            self._seen_lines.insert(k, (line, start))
        return line, start

    def location(self, offset: int) -> tuple[str, int, int]:
        """(file name, line, column) after linemarkers, 1-based line and column."""
        line_idx, start = self._line(offset)
        col = offset - start + 1
        k = bisect.bisect_right(self._mark_offsets, offset) - 1
        if k < 0:
            return self.name, line_idx + 1, col
        moff, mname, mline = self._marks[k]
        return mname, mline + (line_idx - self._line(moff)[0]), col

    def line_text(self, offset: int) -> tuple[str, int] | None:
        """The physical line holding ``offset`` (without newline) and the column."""
        if offset > len(self.text):
            return None
        line_idx, col = self.physical(offset)
        nl = self._nl()
        start = nl[line_idx - 1] + 1 if line_idx > 0 else 0
        end = nl[line_idx] if line_idx < len(nl) else len(self.text)
        return self.text[start:end], col


def read_source(path: str, display_name: str | None = None) -> SourceBuffer:
    """Read a file as a SourceBuffer; '-' is standard input, named <stdin> as dtc does.

    Raises OSError (an :class:`~dtvm.fileio.InputFileError` when over the size cap)."""
    from dtvm.fileio import MAX_SOURCE, read_limited

    # bounded: /dev/zero or an endless FIFO ends in an OSError (InputFileError) line, not MemoryError
    data = read_limited(path, MAX_SOURCE)
    if path == "-":
        return SourceBuffer("<stdin>", data.decode("latin-1"), "")
    return SourceBuffer(display_name or path, data.decode("latin-1"))


def include_chain(pos: SourcePos) -> list[tuple[str, int]]:
    """Where the text at ``pos`` was included from, innermost first: cpp's ``#include`` sites
    (from linemarker flags) and dtc's ``/include/`` directives alike."""
    out: list[tuple[str, int]] = []
    src: SourceBuffer | None = pos.source if isinstance(pos.source, SourceBuffer) else None
    off = pos.start
    depth = 0
    while src is not None and depth < 1000:  # bounded: /include/ nesting is capped far below
        out.extend(src.include_chain(off))
        if src.included_from is None:
            break
        src, off = src.included_from
        name, line, _ = src.location(off)
        out.append((name, line))
        depth += 1
    return out


class SpanPos(SourcePos):
    """A position whose end lies in another buffer than its start (a rule that crossed an /include/).

    dtc's YYLLOC_DEFAULT takes the first line and column from the rule's first
    token but the file from its last one, so ``name`` in an included file
    followed by ``= <1>;`` in the including one is reported (and ``-T``
    annotated) under the including file's name with the included file's line.
    """

    __slots__ = ("end_source",)

    def __init__(self, source: SourceBuffer, start: int, end_source: SourceBuffer, end: int) -> None:
        super().__init__(source, start, end)
        self.end_source = end_source

    def end_location(self) -> tuple[str, int, int]:
        return self.end_source.location(self.end)


def make_pos(source: SourceBuffer, start: int, end_source: SourceBuffer, end: int) -> SourcePos:
    """A SourcePos for a rule from ``start`` in ``source`` to ``end`` in ``end_source``."""
    if end_source is source:
        return SourcePos(source, start, end)
    return SpanPos(source, start, end_source, end)


def dtc_srcpos(pos: SourcePos, name: str | None = None) -> str:
    """dtc's srcpos_string: ``FILE:LINE.COL``, ``FILE:LINE.COL-COL`` or ``FILE:LINE.COL-LINE.COL``.

    Columns count bytes from 1 and the end column is the one after the last
    character, as dtc's lexer counts them; the file is where the span ends,
    or ``name``: the name that file had when dtc printed (a later linemarker
    in the same file renames it for messages printed after it was read).
    """
    src, start, end = pos.source, pos.start, pos.end
    if type(pos) is SourcePos and isinstance(src, SourceBuffer) and start <= end:
        fname, line, col = src.location(start)
        if src.text.find("\n", start, end) < 0:
            # one physical line (most property findings): no linemarker can fall inside it
            eline, ecol = line, col + end - start
        else:  # a node's span: the end's line is counted on from the start's
            fname, eline, ecol = src.location(end)
    else:
        _, line, col = pos.location()
        fname, eline, ecol = pos.end_location()
    if name is not None:
        fname = name
    if line != eline:
        return f"{fname}:{line}.{col}-{eline}.{ecol}"
    if col != ecol:
        return f"{fname}:{line}.{col}-{ecol}"
    return f"{fname}:{line}.{col}"


class NodePos(SourcePos):
    """A node's position: the span for messages (from its first label or name) plus dtc's.

    dtc's position of a node (``srcpos``) runs from its ``{`` to the ``;``
    after its ``}``, and a node that several blocks define (merges, ``&label
    { }``) has the chain of all their positions, in order (srcpos_extend);
    ``-T`` prints them. ``brace`` is the offset of the ``{`` in
    ``brace_source``, ``end`` is in ``end_source`` (a node can open in an
    /include/d file and close in the including one), ``more`` the positions
    of later blocks.
    """

    __slots__ = ("brace", "brace_source", "end_source", "more")

    def __init__(
        self,
        source: SourceBuffer,
        start: int,
        end: int,
        brace: int,
        brace_source: SourceBuffer | None = None,
        end_source: SourceBuffer | None = None,
    ) -> None:
        super().__init__(source, start, end)
        self.brace = brace
        self.brace_source = brace_source if brace_source is not None else source
        self.end_source = end_source if end_source is not None else source
        self.more: list[SourcePos] | None = None

    def end_location(self) -> tuple[str, int, int]:
        return self.end_source.location(self.end)


def pos_spans(pos: SourcePos | None) -> list[SourcePos]:
    """dtc's chain of positions for a node or property position (empty for None)."""
    if pos is None:
        return []
    if isinstance(pos, NodePos):
        first = make_pos(pos.brace_source, pos.brace, pos.end_source, pos.end)
        return [first, *pos.more] if pos.more else [first]
    return [pos]


def extend_pos(old: SourcePos | None, new: SourcePos | None) -> SourcePos | None:
    """dtc's srcpos_extend: a node merged with a later block keeps both positions."""
    if new is None:
        return old
    if old is None:
        return new
    if not isinstance(old, NodePos):
        # a position without a brace (a /delete-node/ that a later block revives)
        merged = NodePos(old.source, old.start, old.end, old.start, old.source, getattr(old, "end_source", old.source))
        merged.more = pos_spans(new)
        return merged
    if old.more is None:
        old.more = []
    old.more.extend(pos_spans(new))
    return old
