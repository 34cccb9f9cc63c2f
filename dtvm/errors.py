"""Error types that carry where the problem is: a source position, a node path or a byte offset.

Every error a user can cause is one of these, so the command line can print one
clear line (plus the source line and a caret for DTS input) and exit nonzero
instead of showing a Python traceback.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BlobError", "DtvmError", "SourceError", "TreeError", "first_line", "format_source_error"]


class DtvmError(Exception):
    """Base of all errors that are the input's fault, not the program's."""

    exit_code = 1

    def render(self) -> str:
        """The full text to show the user (may span lines, no trailing newline)."""
        return str(self)


class SourceError(DtvmError):
    """An error at a position in a DTS source (after linemarkers and /include/)."""

    def __init__(self, message: str, source: Any = None, offset: int = 0, end: int | None = None) -> None:
        self.message = message
        self.source = source
        self.offset = offset
        self.end = end
        super().__init__(self.one_line())

    def location(self) -> tuple[str, int, int]:
        if self.source is None:
            return ("<unknown>", 0, 0)
        return self.source.location(self.offset)  # type: ignore[no-any-return]

    def one_line(self) -> str:
        name, line, col = self.location()
        return f"{name}:{line}:{col}: error: {self.message}"

    def render(self) -> str:
        return format_source_error(self.one_line(), self.source, self.offset)


def format_source_error(head: str, source: Any, offset: int) -> str:
    """The message, then the offending source line with a caret under the column."""
    if source is None:
        return head
    text = source.line_text(offset)
    if text is None:
        return head
    line, col = text
    if len(line) > 160:
        # show a window around the column, not a megabyte-long line
        start = max(0, col - 1 - 70)
        shown = line[start : start + 140]
        prefix = "..." if start else ""
        suffix = "..." if start + 140 < len(line) else ""
        line = prefix + shown + suffix
        col = col - start + len(prefix)
    caret = "".join("\t" if ch == "\t" else " " for ch in line[: col - 1]) + "^"
    return f"{head}\n{line}\n{caret}"


class BlobError(DtvmError):
    """A corrupt or unsupported flattened blob, naming the byte offset."""

    def __init__(self, message: str, offset: int | None = None, name: str = "<dtb>") -> None:
        self.message = message
        self.offset = offset
        self.name = name
        where = f"{name}" if offset is None else f"{name}: offset {offset:#x}"
        super().__init__(f"{where}: error: {message}")


class TreeError(DtvmError):
    """A semantic error found on the tree, naming the node path (and property)."""

    def __init__(self, message: str, path: str = "", prop: str | None = None, pos: Any = None) -> None:
        self.message = message
        self.path = path
        self.prop = prop
        self.pos = pos
        where = path + (f":{prop}" if prop else "")
        if pos is not None:
            name, line, col = pos.location()
            text = f"{name}:{line}:{col}: error: {where}: {message}"
        else:
            text = f"{where}: error: {message}"
        super().__init__(text)


def first_line(what: object) -> str:
    """The first line of a message (an exception's text, else its type's name), for the one-line
    error a command prints. Only a newline ends a line: ``str.splitlines`` also cuts at \x85,
    \x0b, \x1c ... that a name from a hostile source may hold."""
    text = str(what)
    if not text:
        return type(what).__name__ if isinstance(what, BaseException) else ""
    return text.split("\n", 1)[0].rstrip("\r")
