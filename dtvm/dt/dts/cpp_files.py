"""The files ``dtvm dtc --cpp`` reads and the text it writes: a file analysed once into
directives, definitions and text (cached while the file is unchanged), and the output with GNU
cpp's linemarkers.  Split out of :mod:`dtvm.dt.dts.preprocess`, which documents the whole step."""

from __future__ import annotations

import bisect
import os
import re
from typing import Any

from dtvm.dt.dts.cpp_lex import _TOKEN_RE, _CppDiag, _LazyMacro
from dtvm.dt.dts.source import SourceBuffer

# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------

_SPLICE_RE = re.compile(r"\\[ \t\f\v]*\n")
# '#' first on a line (comments are blanks), and the directive name
_DIRECTIVE_RE = re.compile(
    r"(?:[ \t\f\v]|/\*[\s\S]*?\*/)*+#(?:[ \t\f\v]|/\*[\s\S]*?\*/)*+([A-Za-z_][A-Za-z0-9_]*)?"
)
_DEFINE_RE = re.compile(r"[ \t\f\v]+([A-Za-z_][A-Za-z0-9_]*)(?:([ \t\f\v])([\s\S]*))?\Z")
_LEADING_BLANKS_RE = re.compile(r"(?:[ \t\f\v\n]|/\*[\s\S]*?\*/)*+")
_WORD_RE = re.compile(r"(?<![0-9A-Za-z_])[A-Za-z_][A-Za-z0-9_]*")
_BLANK_RE = re.compile(r"(?:[ \t\f\v\n]|/\*[\s\S]*?\*/|//[^\n]*)*+\Z")
_GUARD_RE = re.compile(r"[ \t\f\v]*([A-Za-z_][A-Za-z0-9_]*)[ \t\f\v]*\Z")
_CONDITIONALS = frozenset(["if", "ifdef", "ifndef", "elif", "elifdef", "elifndef", "else", "endif"])
_DIRECTIVES = _CONDITIONALS | frozenset(
    [
        "define",
        "undef",
        "include",
        "include_next",
        "import",
        "line",
        "error",
        "warning",
        "pragma",
        "ident",
        "sccs",
        "assert",
        "unassert",
    ]
)

# kinds of analysed lines
_COND = 0  # a conditional directive; payload (name, offset of the name, offset after it)
_DEFINES = 1  # consecutive simple object-like #defines; payload {name: _LazyMacro}
_DIRECTIVE = 2  # any other directive; payload as for _COND
_RAW = 3  # text without comments; payload (text, identifiers in it)
_TEXT = 4  # text with comments, to be tokenized; payload None
_BAD = 5  # an unterminated comment; payload the message


def _normalize(data: str) -> str:
    if data.startswith("\xef\xbb\xbf"):
        data = data[3:]
    if "\r" in data:
        data = data.replace("\r\n", "\n").replace("\r", "\n")
    return data


def _line_end(text: str, pos: int) -> int:
    """The end of the logical line at ``pos`` when a block comment may span lines."""
    for m in _TOKEN_RE.finditer(text, pos):
        kind = m.lastgroup
        if kind == "nl":
            return m.start()
        if kind == "c1open":
            raise _CppDiag("unterminated comment", m.start())
    return len(text)


Entry = tuple[int, int, int, int, Any]  # kind, start, end, physical line, payload


class _Program:
    """What a file's text says, line by line, independent of any macro state.

    The text is spliced (backslash-newlines removed; offsets map back for
    errors), split into logical lines (a block comment continues the line),
    blank and comment-only lines are dropped, and every other line is
    classified once. Headers are analysed once per process.
    """

    def __init__(self, name: str, text: str) -> None:
        self.buffer = SourceBuffer(name, text)  # the unspliced text, for error positions
        self.splices: list[int] = []  # offsets in the spliced text where a splice was
        self.removed: list[int] = []  # characters removed up to and including each splice
        if "\\" in text and _SPLICE_RE.search(text):
            parts = []
            last = 0
            total = 0
            out_len = 0
            for m in _SPLICE_RE.finditer(text):
                parts.append(text[last : m.start()])
                out_len += m.start() - last
                total += m.end() - m.start()
                self.splices.append(out_len)
                self.removed.append(total)
                last = m.end()
            parts.append(text[last:])
            text = "".join(parts)
        self.text = text
        self.entries: list[Entry] = []
        self.guard: str | None = None  # #ifndef X ... #endif around everything
        self._analyse(name)

    def orig(self, pos: int) -> int:
        """The offset in the unspliced text of an offset in the spliced text."""
        if not self.splices:
            return pos
        k = bisect.bisect_right(self.splices, pos) - 1
        return pos + (self.removed[k] if k >= 0 else 0)

    def line_of(self, pos: int) -> int:
        """The physical line of a spliced-text offset."""
        line, _col = self.buffer.physical(self.orig(pos))
        return line + 1

    def _analyse(self, name: str) -> None:
        text = self.text
        n = len(text)
        entries = self.entries
        add = entries.append
        splices = self.splices
        si = 0
        pos = 0
        line = 1
        defines: dict[str, _LazyMacro] | None = None
        while pos < n:
            end = text.find("\n", pos)
            if end < 0:
                end = n
            seg_lines = 1
            if text.find("/*", pos, end) >= 0:
                try:
                    end = _line_end(text, pos)
                except _CppDiag as exc:
                    add((_BAD, exc.offset or pos, n, line, exc.message))
                    break
                seg_lines += text.count("\n", pos, end)
            start = pos
            ln = line
            if splices:
                sj = si
                while sj < len(splices) and splices[sj] <= end:
                    sj += 1
                if sj > si:
                    # GNU places a line by its first token, which a splice can move down
                    first = _LEADING_BLANKS_RE.match(text, start, end)
                    if first is not None and first.end() < end:
                        ln = self.line_of(first.end())
                seg_lines += sj - si
                si = sj
            pos = end + 1
            line += seg_lines
            dm = _DIRECTIVE_RE.match(text, start, end)
            if dm is not None:
                dname = dm.group(1)
                if dname is None:
                    if _BLANK_RE.match(text, dm.end(), end):
                        continue  # the null directive
                elif dname == "define":
                    m = _DEFINE_RE.match(text, dm.end(), end)
                    if m is not None and m.group(1) != "defined" and "##" not in (m.group(3) or ""):
                        body = m.group(3) or ""
                        lm = _LazyMacro(m.group(1), body, name, ln, m.start(3) if body else 0)
                        if defines is None:
                            defines = {}
                            add((_DEFINES, start, end, ln, defines))
                        defines[lm.name] = lm
                        continue
                    add((_DIRECTIVE, start, end, ln, (dname, dm.start(1), dm.end())))
                    defines = None
                    continue
                elif dname in _CONDITIONALS:
                    add((_COND, start, end, ln, (dname, dm.start(1), dm.end())))
                    defines = None
                    continue
                elif dname in _DIRECTIVES:
                    add((_DIRECTIVE, start, end, ln, (dname, dm.start(1), dm.end())))
                    defines = None
                    continue
                # not a directive in assembler-with-cpp (#address-cells): text
            if text.find("//", start, end) >= 0 or text.find("/*", start, end) >= 0:
                if _BLANK_RE.match(text, start, end):
                    continue
                add((_TEXT, start, end, ln, None))
            else:
                body = text[start:end].rstrip()
                if not body or body.isspace():
                    continue
                add((_RAW, start, end, ln, (body, frozenset(_WORD_RE.findall(body)))))
            defines = None
        self._find_guard()

    def _find_guard(self) -> None:
        """GNU's multiple-include optimization applies to #ifndef X ... #endif files."""
        entries = self.entries
        if not entries or entries[0][0] != _COND or entries[0][4][0] != "ifndef":
            return
        depth = 0
        for i, (kind, _s, _e, _l, payload) in enumerate(entries):
            if kind != _COND:
                continue
            d = payload[0]
            if d in ("if", "ifdef", "ifndef"):
                depth += 1
            elif d == "endif":
                depth -= 1
                if depth == 0:
                    if i != len(entries) - 1:
                        return
                    break
        else:
            return
        _k, _s, end, _l, payload = entries[0]
        m = _GUARD_RE.match(self.text, payload[2], end)
        if m:
            self.guard = m.group(1)


_PROGRAMS: dict[tuple[str, str], tuple[float, int, _Program]] = {}


def _program(path: str) -> _Program:
    """The analysis of a file, kept while the file is unchanged."""
    st = os.stat(path)
    key = (os.path.abspath(path), path)
    hit = _PROGRAMS.get(key)
    if hit is not None and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
        return hit[2]
    from dtvm.fileio import MAX_SOURCE, read_limited

    text = _normalize(read_limited(path, MAX_SOURCE).decode("latin-1"))  # bounded: no /dev/zero
    prog = _Program(path, text)
    if len(_PROGRAMS) > 4096:
        _PROGRAMS.clear()
    _PROGRAMS[key] = (st.st_mtime_ns, st.st_size, prog)
    return prog


class _File:
    """A file being read in this run: its program plus what #line changed."""

    def __init__(self, name: str, prog: _Program, dir_index: int) -> None:
        self.name = name  # as GNU cpp spells it (linemarkers, __FILE__, errors)
        self.prog = prog
        self.text = prog.text
        self.dir = os.path.dirname(name)
        self.dir_index = dir_index  # which include directory it was found in (-1: none)
        self.presumed_name = name
        self.line_delta = 0  # #line: presumed line minus physical line
        self.buffer = prog.buffer  # for errors; a copy of its own once #line moves lines

    def line_of(self, pos: int) -> int:
        return self.prog.line_of(pos)


class PreprocessedSource(SourceBuffer):
    """The preprocessed text; ``includes`` lists the files cpp read (for ``-d``)."""

    __slots__ = ("includes",)

    def __init__(self, name: str, text: str, directory: str | None, includes: list[str]) -> None:
        super().__init__(name, text, directory)
        self.includes = includes


# ---------------------------------------------------------------------------
# Output with linemarkers (GNU cpp's maybe_print_line / print_line)
# ---------------------------------------------------------------------------


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Output:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.line = 1  # the presumed line the current output line stands for
        self.name = ""
        self.printed = False  # something is on the current output line

    def marker(self, line: int, name: str, flag: str = "") -> None:
        if self.printed:
            self.parts.append("\n")
            self.printed = False
        self.parts.append(f'# {line} "{_quote(name)}"{flag}\n')
        self.line = line
        self.name = name

    def sync(self, line: int, name: str) -> None:
        """Start the output line that stands for source line ``line`` of ``name``."""
        self.maybe_print_line(line, name)
        self.printed = True

    def maybe_print_line(self, line: int, name: str) -> None:
        """Bring the output to source line ``line`` (blank lines or a linemarker)."""
        parts = self.parts
        if self.printed:
            parts.append("\n")
            self.line += 1
            self.printed = False
        if name != self.name:
            self.marker(line, name)
        else:
            gap = line - self.line
            if 0 <= gap < 8:
                if gap:
                    parts.append("\n" * gap)
            else:
                parts.append(f'# {line} "{_quote(name)}"\n')
            self.line = line
