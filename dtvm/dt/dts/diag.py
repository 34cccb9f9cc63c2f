"""DTS errors that carry dtc's own lines as well as dtvm's wording.

dtc reports a bad source in two ways: messages at a position that do not
stop the parse (``Error: f.dts:4.16-19 Division by zero``, ``Lexical error:
...``), after which it dies with ``FATAL ERROR: Syntax error parsing input
tree``, and messages that stop it at once (a syntax error, then ``FATAL
ERROR: Unable to parse input tree``; a missing include, ``FATAL ERROR:
Couldn't open ...`` with no position). Scripts and build logs read those
lines, so ``dtvm dtc`` prints them byte for byte; everywhere else the same
error reads as dtvm's one line (``f.dts:4:16: error: ...``) with a caret.
:class:`DtsError` holds both forms.
"""

from __future__ import annotations

from dataclasses import dataclass

from dtvm.dt.dts.source import dtc_srcpos
from dtvm.dt.tree import SourcePos
from dtvm.errors import SourceError, format_source_error

__all__ = ["FATAL_PARSE", "FATAL_SYNTAX", "DtsError", "Message", "ZeroPos"]

FATAL_PARSE = "Unable to parse input tree"  # yyparse() failed: a syntax error or YYERROR
FATAL_SYNTAX = "Syntax error parsing input tree"  # the parse ended, but ERROR() was called


@dataclass
class Message:
    """One positioned message: dtc's prefix ("Error" or "Lexical error"), its text and dtvm's."""

    pos: SourcePos
    dtc_text: str
    text: str
    prefix: str = "Error"
    name: str | None = None  # the file's name when dtc printed, if a linemarker changed it since

    def dtc_line(self) -> str:
        return f"{self.prefix}: {dtc_srcpos(self.pos, self.name)} {self.dtc_text}"

    def dtvm_line(self) -> str:
        name, line, col = self.pos.location()
        return f"{name}:{line}:{col}: error: {self.text}"


class ZeroPos(SourcePos):
    """dtc's location before any token was read: ``FILE:0.0`` (an empty input)."""

    __slots__ = ()

    def location(self) -> tuple[str, int, int]:
        return self.source.name, 0, 0  # type: ignore[no-any-return]

    def end_location(self) -> tuple[str, int, int]:
        return self.location()


class DtsError(SourceError):
    """A DTS source dtc rejects: its positioned messages, then the fatal line.

    ``fatal`` is the text after ``FATAL ERROR: ``; ``messages`` may be empty
    (dtc dies without a position, e.g. on a missing /include/), then ``pos``
    says where for dtvm's own form.
    """

    def __init__(self, messages: list[Message], fatal: str, pos: SourcePos | None = None, text: str | None = None) -> None:
        self.messages = messages
        self.fatal = fatal
        where = messages[0].pos if messages else pos
        self.where = where
        first = text if text is not None else (messages[0].text if messages else fatal)
        if where is None:
            super().__init__(first)
        else:
            super().__init__(first, where.source, where.start, where.end)

    def one_line(self) -> str:
        if self.where is None:
            return f"error: {self.message}"
        return super().one_line()

    def render(self) -> str:
        """dtvm's form: every message as ``file:line:col: error: ...`` with its source line and caret."""
        if not self.messages:
            return super().render() if self.where is not None else self.one_line()
        return "\n".join(format_source_error(m.dtvm_line(), m.pos.source, m.pos.start) for m in self.messages)

    def dtc_lines(self, rich: bool = False) -> list[str]:
        """dtc's stderr lines; with ``rich`` each positioned line is followed by its source line and a caret."""
        out: list[str] = []
        for m in self.messages:
            if rich:
                out.append(format_source_error(m.dtc_line(), m.pos.source, m.pos.start))
            else:
                out.append(m.dtc_line())
        if rich and not self.messages and self.where is not None:
            out.append(format_source_error(f"FATAL ERROR: {self.fatal}", self.where.source, self.where.start))
        else:
            out.append(f"FATAL ERROR: {self.fatal}")
        return out
