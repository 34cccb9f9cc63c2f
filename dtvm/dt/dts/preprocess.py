"""The C preprocessor step in front of dtc (``dtvm dtc --cpp``), in process, with pcpp.

The kernel runs every board through
``cpp -nostdinc -I DIRS -undef -D__DTS__ -x assembler-with-cpp`` before dtc
sees it; :func:`preprocess` produces the same text for dtc without a
subprocess. pcpp (PyPI) does the C part: macro definitions, expansion with
argument pre-expansion, ``#``/``##``, variadic macros and ``#if`` arithmetic.
The front end around it is GNU cpp's, where pcpp's own differs in ways dtc
would notice:

* lexing: GNU's preprocessing numbers (``0x##port`` pastes to ``0x1f``; the
  ``c20`` of ``1c20`` is no identifier), ``$`` is not an identifier character
  in assembler mode, unterminated ``'`` and ``"`` are plain characters, and
  comments are whitespace everywhere, also across lines;
* assembler-with-cpp: a ``#`` line that is no directive (``#address-cells =
  <N>;``) is ordinary text and is macro-expanded like any other line; the null
  directive is removed; ``#line`` moves the line numbers;
* includes: ``-nostdinc`` and ``-undef`` (only ``__STDC__``,
  ``__STDC_HOSTED__``, ``__ASSEMBLER__`` and ``__DTS__`` are defined),
  ``"..."`` looks in the including file's directory first, then the
  ``--cpp-include`` directories, ``<...>`` only in those, and file names in
  linemarkers are spelled as GNU cpp spells them;
* output: cpp linemarkers (``# 1 "file" 1`` on entry, ``# N "file" 2`` on
  return, blank lines for gaps under 8 lines), so that dtc's errors name the
  original file and line; one output line per source line, so the columns of
  unexpanded text stay those of the source; spaces only where the source had
  whitespace, or where two tokens would otherwise lex as one (GNU's
  ``avoid_paste``); GNU's stringification (only string and character literals
  get their ``\\`` and ``"`` escaped).

Errors are GNU cpp's errors, raised as :class:`~dtvm.errors.SourceError` at the
file, line and column of the offending token (through ``#include``), never as
a traceback; cpp warnings are not errors.

Lines without a macro name are copied as they are, and object-like macro
bodies are only tokenized when used, so a board with its pinmux headers
(thousands of ``#define``) costs a few milliseconds.
"""

from __future__ import annotations

import bisect
import os
import re
import time
from typing import Any

from pcpp.parser import Macro
from pcpp.preprocessor import Preprocessor

from dtvm.dt.dts.cpp_eval import _INCLUDE_RE, _check_defined, _CheckedEvaluator, _Cond
from dtvm.dt.dts.cpp_files import (
    _BAD,
    _COND,
    _DEFINE_RE,
    _DEFINES,
    _DIRECTIVE,
    _RAW,
    _TEXT,
    PreprocessedSource,
    _File,
    _normalize,
    _Output,
    _Program,
    _program,
    _quote,
)
from dtvm.dt.dts.cpp_lex import (
    _DYNAMIC,
    _WS_TYPES,
    ID,
    WS,
    _avoid_paste,
    _CppDiag,
    _EvalError,
    _LazyMacro,
    _lex,
    _Lexer,
    _pcpp_message,
    _PcppError,
    _stringify,
    _strip,
    _Tok,
    subst_constants,
)
from dtvm.dt.dts.source import SourceBuffer
from dtvm.errors import DtvmError, SourceError

__all__ = ["PreprocessedSource", "preprocess"]

MAX_INCLUDE_DEPTH = 200  # GNU cpp's default -fmax-include-depth
#: Tokens that may pass through macro expansion in one run (the kernel's largest board uses
#: 33,493 of a 1,334-board corpus); more ends the run with an error instead of exhausting memory.
MAX_EXPANSION = 1_000_000


class _Cpp(Preprocessor):  # type: ignore[misc]
    """pcpp's macro engine behind GNU cpp's directive handling and output."""

    evaluator: Any

    def __init__(self, include_dirs: list[str]) -> None:
        super().__init__(_Lexer())
        self.evaluator = _CheckedEvaluator(self.evaluator)
        self.auto_pragma_once_enabled = False
        self.include_dirs = include_dirs
        self.out = _Output()
        self.expansion_work = 0
        self.files: list[str] = []
        self.once: set[str] = set()  # #pragma once and #import
        self.included: set[str] = set()
        self.stack: list[_File] = []
        self.guards: dict[tuple[str, str | None, int], str] = {}  # include lookup -> guard macro
        self.pending: list[_Tok] = []
        self.pending_file: _File | None = None
        for name in ("__PCPP__", "__DATE__", "__TIME__", "__FILE__"):
            self.macros.pop(name, None)
        now = time.localtime()
        day = time.strftime("%b %d %Y", now)
        if day[4] == "0":
            day = day[:4] + " " + day[5:]
        self._define_text("__DATE__", f'"{day}"')
        self._define_text("__TIME__", time.strftime('"%H:%M:%S"', now))
        stamp = time.strftime("%a %b %d %H:%M:%S %Y", now)
        if stamp[8] == "0":
            stamp = stamp[:8] + " " + stamp[9:]
        self._define_text("__TIMESTAMP__", f'"{stamp}"')
        for name in ("__STDC__", "__STDC_HOSTED__", "__ASSEMBLER__", "__DTS__"):
            self._define_text(name, "1")

    # -- pcpp hooks ---------------------------------------------------------

    def on_error(self, file: Any, line: Any, msg: str) -> None:
        raise _PcppError(_pcpp_message(msg), line if isinstance(line, int) else 0)

    def on_unknown_macro_function_in_expr(self, ident: str) -> Any:
        raise _EvalError('missing binary operator before token "("')

    def collect_args(self, tokenlist: list[_Tok], ignore_errors: bool = False) -> Any:
        result = super().collect_args(tokenlist, ignore_errors)
        if ignore_errors and result[0] == 0:
            # an expansion that ends inside a macro call (pcpp stops quietly)
            raise _PcppError("unterminated argument list invoking macro", tokenlist[0].lineno)
        return result

    def expand_macros(self, tokens: list[_Tok], expanding_from: Any = ()) -> list[_Tok]:
        """pcpp's expansion, charged against a budget: a macro bomb (``#define A1 A0 A0`` ... ``A40``)
        asks for 2**40 tokens, and GNU cpp runs until it has no memory left; here it ends with one
        error line once :data:`MAX_EXPANSION` tokens have gone through expansion."""
        self.expansion_work += len(tokens) + 1
        if self.expansion_work > MAX_EXPANSION:
            line = tokens[0].lineno if tokens else 0
            raise _PcppError(
                f"macro expansion exceeds {MAX_EXPANSION} tokens (dtvm's bound; a recursive macro bomb?)", line
            )
        return super().expand_macros(tokens, list(expanding_from))  # type: ignore[no-any-return]

    def macro_prescan(self, macro: Any) -> None:
        super().macro_prescan(macro)
        for argnum, i in macro.str_patch:
            macro.value[i].sarg = argnum

    def macro_expand_args(self, macro: Any, args: list[list[_Tok]]) -> list[_Tok]:
        if macro.variadic and args:
            # pcpp strips the blanks around every argument but the variable one;
            # GNU keeps a blank before it only in ", ## __VA_ARGS__"
            va = args[-1]
            stripped = _strip(va)
            if stripped and macro.var_comma_patch and va[0].type in _WS_TYPES:
                stripped = [va[0], *stripped]
            args = [*args[:-1], stripped]
        if macro.str_patch:
            # GNU stringification: pcpp escapes every backslash; only string
            # and character literals get escapes (the tokens marked above)
            saved = [list(a) for a in args]
            rep: list[_Tok] = super().macro_expand_args(macro, args)
            for tok in rep:
                sarg = tok.__dict__.pop("sarg", None)
                if sarg is not None:
                    tok.value = _stringify(saved[sarg])
            return rep
        return super().macro_expand_args(macro, args)  # type: ignore[no-any-return]

    # -- definitions --------------------------------------------------------

    def _define_text(self, name: str, body: str) -> None:
        self.macros[name] = _LazyMacro(name, body, "<built-in>", 0, 0)

    def define_option(self, text: str) -> None:
        """A --cpp-define NAME[=VALUE] (cpp's -D: NAME alone means 1)."""
        name, eq, value = text.partition("=")
        line = f"{name} {value}" if eq else f"{name} 1"
        toks = _lex(line, 0, len(line), 1, "<command-line>", 0, False)
        if not toks or toks[0].type != ID:
            raise DtvmError(f"<command-line>: error: macro names must be identifiers: {text!r}")
        self._define_tokens(toks, None, "<command-line>")

    def _define_tokens(self, toks: list[_Tok], f: _File | None, where: str) -> None:
        """#define from tokens (name first); errors as GNU cpp reports them."""
        name = toks[0]
        if name.type != ID:
            raise _CppDiag("macro names must be identifiers", name.lexpos)
        if name.value == "defined":
            raise _CppDiag('"defined" cannot be used as a macro name', name.lexpos)
        if len(toks) > 1 and toks[1].type not in _WS_TYPES and toks[1].value != "(":
            # "missing whitespace after the macro name" is a warning: the body starts here
            toks = [name, _Tok(WS, " ", name.lineno, name.lexpos, name.source), *toks[1:]]
        if len(toks) > 1 and toks[1].value == "(":
            body_start = self._check_params(toks)
            body = _strip(toks[body_start:])
            self._check_paste_ends(body)
            try:
                self.define(toks)
            except _PcppError as exc:
                raise _CppDiag(exc.message, name.lexpos) from None
            return
        body = _strip(toks[1:])
        self._check_paste_ends(body)
        if any(t.value == "##" for t in body):
            body = self._paste_object_like(body)
        m = Macro(name.value, body)
        m.source = name.source
        m.lineno = name.lineno
        self.macros[name.value] = m

    def _check_params(self, toks: list[_Tok]) -> int:
        """Validate a function-like macro's parameter list; the index after ')'."""
        seen: set[str] = set()
        i = 2
        expect_name = True
        n = len(toks)
        while i < n:
            t = toks[i]
            if t.type in _WS_TYPES:
                i += 1
                continue
            if t.value == ")" and (not expect_name or not seen):
                return i + 1
            if expect_name:
                if t.type == ID:
                    if t.value in seen:
                        raise _CppDiag(f'duplicate macro parameter "{t.value}"', t.lexpos)
                    seen.add(t.value)
                    expect_name = False
                elif t.value == "...":
                    seen.add("__VA_ARGS__")
                    expect_name = False
                else:
                    raise _CppDiag(f'expected parameter name, found "{t.value}"', t.lexpos)
            elif t.value == ",":
                expect_name = True
            elif t.value == "...":
                pass
            else:
                raise _CppDiag(f"expected ',' or ')', found \"{t.value}\"", t.lexpos)
            i += 1
        raise _CppDiag("missing ')' in macro parameter list", toks[-1].lexpos)

    @staticmethod
    def _check_paste_ends(body: list[_Tok]) -> None:
        if body and (body[0].value == "##" or body[-1].value == "##"):
            t = body[0] if body[0].value == "##" else body[-1]
            raise _CppDiag("'##' cannot appear at either end of a macro expansion", t.lexpos)

    def _paste_object_like(self, body: list[_Tok]) -> list[_Tok]:
        """``##`` in an object-like macro (pcpp pastes only in function-like ones)."""
        out: list[_Tok] = []
        i = 0
        n = len(body)
        while i < n:
            t = body[i]
            if t.value == "##" and out:
                j = i + 1
                while j < n and body[j].type in _WS_TYPES:
                    j += 1
                while out and out[-1].type in _WS_TYPES:
                    out.pop()
                left = out.pop()
                text = str(left.value) + str(body[j].value)
                for nt in _lex(text, 0, len(text), left.lineno, left.source, left.lexpos, True):
                    out.append(nt)
                i = j + 1
                continue
            out.append(t)
            i += 1
        return out

    # -- running ------------------------------------------------------------

    def run(self, src: SourceBuffer) -> str:
        f = _File(src.name, _Program(src.name, _normalize(src.text)), -1)
        f.dir = src.dir
        self._define_text("__BASE_FILE__", f'"{_quote(src.name)}"')
        self.out.marker(1, src.name)
        self._process(f)
        out = self.out
        if out.printed:
            out.parts.append("\n")
        return "".join(out.parts)

    def _error(self, f: _File, message: str, pos: int) -> SourceError:
        """A SourceError at spliced offset ``pos`` of ``f``."""
        return SourceError(message, f.buffer, f.prog.orig(pos))

    def _process(self, f: _File) -> None:
        stack = self.stack
        stack.append(f)
        self._define_text("__FILE__", f'"{_quote(f.presumed_name)}"')
        self._define_text("__INCLUDE_LEVEL__", str(len(stack) - 1))
        self.line_pos = 0
        try:
            self._run_program(f)
        except _CppDiag as exc:
            raise self._error(
                f, exc.message, exc.offset if exc.offset is not None else self.line_pos
            ) from None
        except _PcppError as exc:
            raise self._error(f, exc.message, self.line_pos) from None
        finally:
            stack.pop()
        if stack:
            self._define_text("__FILE__", f'"{_quote(stack[-1].presumed_name)}"')
            self._define_text("__INCLUDE_LEVEL__", str(len(stack) - 1))

    def _run_program(self, f: _File) -> None:
        macros = self.macros
        keys = macros.keys()
        conds: list[_Cond] = []
        skipping = False
        out = self.out
        parts = out.parts
        dynamic = _DYNAMIC
        for kind, start, end, line, payload in f.prog.entries:
            if kind == _COND:
                self.line_pos = start
                skipping = self._conditional(f, payload, end, conds, skipping, line + f.line_delta)
                continue
            if skipping:
                if kind == _BAD:
                    raise _CppDiag(payload, start)  # GNU lexes skipped lines too
                continue
            if kind == _RAW or kind == _TEXT:
                if not self.pending:
                    if kind == _RAW and keys.isdisjoint(payload[1]) and dynamic.isdisjoint(payload[1]):
                        body = payload[0]  # no macro: the line as it is
                    else:
                        body = subst_constants(self.macros, f.text, start, end)  # constants only
                    if body is not None:
                        if body:
                            # out.sync(), inlined: this is most lines
                            presumed = line + f.line_delta
                            if out.printed and out.name == f.presumed_name and 0 < presumed - out.line < 9:
                                parts.append("\n" * (presumed - out.line))
                                out.line = presumed
                            else:
                                out.sync(presumed, f.presumed_name)
                            parts.append(body)
                        continue
            elif kind == _DEFINES:
                # inside an open macro call GNU cpp takes #define/#undef and goes on collecting
                # the arguments (they expand after the call closes, with the new definitions)
                if self.pending and self._complete(self.pending):
                    self._flush()
                macros.update(payload)
                continue
            elif kind == _DIRECTIVE:
                self.line_pos = start
                name, at, after = payload
                if self.pending and (name not in ("define", "undef") or self._complete(self.pending)):
                    self._flush()
                self._directive(f, name, at, after, end, line + f.line_delta)
                continue
            elif kind == _BAD:
                raise _CppDiag(payload, start)
            # a line of text with macros or comments
            self.line_pos = start
            presumed = line + f.line_delta
            toks = _lex(f.text, start, end, presumed, f.presumed_name, 0, False)
            splices = f.prog.splices
            if splices and bisect.bisect_left(splices, start) != bisect.bisect_right(splices, end):
                for t in toks:  # tokens after a splice are on a later line (__LINE__)
                    t.lineno = f.line_of(t.lexpos) + f.line_delta
            pending = self.pending
            if not pending:
                self.pending_file = f
            pending.extend(toks)
            pending.append(_Tok(WS, "\n", presumed, end, f.presumed_name))
            if self._complete(pending):
                self._flush()
        if self.pending:
            # GNU cpp places the error at the end of the file's last line (its final newline),
            # blank lines after the call included
            text = f.text
            self._check_unterminated(len(text) - 1 if text.endswith("\n") else len(text))
            self._flush()
        if conds:
            c = conds[-1]
            raise _CppDiag(f"unterminated #{c.directive}", c.offset)

    # -- conditionals -------------------------------------------------------

    def _conditional(
        self, f: _File, payload: tuple[str, int, int], end: int, conds: list[_Cond], skipping: bool, line: int
    ) -> bool:
        """One of #if/#ifdef/#ifndef/#elif/#elifdef/#elifndef/#else/#endif; whether to skip after it."""
        name, at, after = payload
        if name in ("if", "ifdef", "ifndef"):
            if skipping:
                conds.append(_Cond(name, at, True, True))
                return True
            if self._complete(self.pending):  # an open macro call collects across conditionals
                self._flush()
            value = self._condition(f, name, after, end, line)
            conds.append(_Cond(name, at, False, value))
            return not value
        if not conds:
            raise _CppDiag(f"#{name} without #if", at)
        c = conds[-1]
        if name == "endif":
            conds.pop()
            return c.outer_skip
        if c.saw_else:
            raise _CppDiag(f"#{name} after #else", at)
        c.directive = name  # GNU's "unterminated #..." names the group's last directive
        if name == "else":
            c.saw_else = True
            if c.outer_skip or c.taken:
                return True
            c.taken = True
            return False
        # #elif, #elifdef, #elifndef: looked at only while no group was taken
        if c.outer_skip or c.taken:
            return True
        self._flush()
        value = self._condition(f, "if" if name == "elif" else name[2:], after, end, line)
        c.taken = value
        return not value

    def _condition(self, f: _File, kind: str, start: int, end: int, line: int) -> bool:
        args = _strip(_lex(f.text, start, end, line, f.presumed_name, 0, False))
        if kind != "if":
            if not args:
                raise _CppDiag(f"no macro name given in #{kind} directive", end)
            if args[0].type != ID:
                raise _CppDiag("macro names must be identifiers", args[0].lexpos)
            defined = args[0].value in self.macros or args[0].value in _DYNAMIC
            return defined if kind == "ifdef" else not defined
        if not args:
            raise _CppDiag("#if with no expression", end)
        _check_defined(args, end)
        try:
            result, _partial = self.evalexpr(args)
        except _EvalError as exc:
            raise _CppDiag(exc.message, exc.offset if exc.offset is not None else args[0].lexpos) from None
        except _PcppError as exc:
            raise _CppDiag(exc.message, args[0].lexpos) from None
        except (ValueError, TypeError, IndexError, KeyError, AttributeError):
            raise _CppDiag("invalid #if expression", args[0].lexpos) from None
        return bool(result)

    # -- other directives ---------------------------------------------------

    def _directive(self, f: _File, name: str, at: int, start: int, end: int, line: int) -> None:
        text = f.text
        if name == "define":
            m = _DEFINE_RE.match(text, start, end)
            if m is not None and (m.group(3) is None or "##" not in m.group(3)):
                mname = m.group(1)
                if mname == "defined":
                    raise _CppDiag('"defined" cannot be used as a macro name', m.start(1))
                body = m.group(3) or ""
                self.macros[mname] = _LazyMacro(mname, body, f.presumed_name, line, m.start(3) if body else 0)
                return
            toks = _strip(_lex(text, start, end, line, f.presumed_name, 0, False))
            if not toks:
                raise _CppDiag("no macro name given in #define directive", end)
            self._define_tokens(toks, f, f.presumed_name)
            return
        if name == "undef":
            toks = _strip(_lex(text, start, end, line, f.presumed_name, 0, False))
            if not toks:
                raise _CppDiag("no macro name given in #undef directive", end)
            if toks[0].type != ID:
                raise _CppDiag("macro names must be identifiers", toks[0].lexpos)
            if toks[0].value == "defined":
                raise _CppDiag('"defined" cannot be used as a macro name', toks[0].lexpos)
            self.macros.pop(toks[0].value, None)
            return
        if name in ("include", "include_next", "import"):
            self._include(f, name, start, end, line)
            return
        if name == "line":
            self._line(f, start, end, line)
            return
        if name == "error":
            msg = text[start:end].strip()
            raise _CppDiag(f"#error {msg}" if msg else "#error", at)
        if name == "pragma":
            toks = _strip(_lex(text, start, end, line, f.presumed_name, 0, False))
            if toks and toks[0].value == "once":
                self.once.add(os.path.abspath(f.name))
                # GNU writes the blanks before "once" as a line of its own
                self.out.sync(line, f.presumed_name)
                self.out.parts.append(
                    " " * max(0, f.prog.buffer.physical(f.prog.orig(toks[0].lexpos))[1] - 2)
                )
            return
        # warning, ident, sccs, assert, unassert: nothing to output

    def _line(self, f: _File, start: int, end: int, line: int) -> None:
        toks = self.expand_macros(_strip(_lex(f.text, start, end, line, f.presumed_name, 0, False)))
        toks = [t for t in toks if t.type not in _WS_TYPES]
        if not toks or not re.fullmatch(r"[0-9]+", str(toks[0].value)):
            bad = toks[0] if toks else None
            what = (
                f'"{bad.value}" after #line is not a positive integer'
                if bad
                else "unexpected end of file after #line"
            )
            raise _CppDiag(what, bad.lexpos if bad else end)
        new_line = int(toks[0].value)
        if len(toks) > 1:
            if toks[1].type != "CPP_STRING":
                raise _CppDiag(f'invalid filename "{toks[1].value}"', toks[1].lexpos)
            raw = str(toks[1].value)[1:-1]
            f.presumed_name = re.sub(r"\\(.)", r"\1", raw)
            self._define_text("__FILE__", f'"{_quote(f.presumed_name)}"')
        # the line after the directive is new_line
        physical_next = f.line_of(end) + 1
        f.line_delta = new_line - physical_next
        self.out.marker(new_line, f.presumed_name)
        # errors further on are reported at the presumed file and line, as GNU does
        if f.buffer is f.prog.buffer:
            f.buffer = SourceBuffer(f.name, f.prog.buffer.text)
        f.buffer.add_linemarker(min(f.prog.orig(end) + 1, len(f.buffer.text)), f.presumed_name, new_line)

    # -- includes -----------------------------------------------------------

    def _include(self, f: _File, kind: str, start: int, end: int, line: int) -> None:
        text = f.text
        m = _INCLUDE_RE.match(text, start, end)
        at = start
        if m is not None:
            quoted = m.group(1) is not None
            fname = m.group(1) if quoted else m.group(2)
            at = (m.start(1) if quoted else m.start(2)) - 1  # GNU points at the quote or '<'
        else:
            # a computed include: macro-expand, then "file" or <file>
            toks = _strip(_lex(text, start, end, line, f.presumed_name, 0, False))
            if not toks:
                raise _CppDiag(f'#{kind} expects "FILENAME" or <FILENAME>', end)
            at = toks[0].lexpos
            try:
                toks = _strip(self.expand_macros(toks))
            except _PcppError as exc:
                raise _CppDiag(exc.message, at) from None
            if toks and toks[0].type == "CPP_STRING" and len(toks) >= 1:
                quoted = True
                fname = str(toks[0].value)[1:-1]
            elif toks and toks[0].value == "<" and any(t.value == ">" for t in toks):
                quoted = False
                parts: list[str] = []
                for t in toks[1:]:
                    if t.value == ">":
                        break
                    parts.append(" " if t.type in _WS_TYPES else str(t.value))
                fname = "".join(parts)
            else:
                raise _CppDiag(f'#{kind} expects "FILENAME" or <FILENAME>', at)
        if not fname:
            raise _CppDiag(f"empty filename in #{kind}", at)
        if len(self.stack) >= MAX_INCLUDE_DEPTH:
            raise _CppDiag(
                f"#include nested depth {len(self.stack)} exceeds maximum of {MAX_INCLUDE_DEPTH}", at
            )
        found = self._find(f, fname, quoted, kind == "include_next")
        if found is None:
            raise _CppDiag(f"{fname}: No such file or directory", at)
        path, dir_index, prog = found
        key = os.path.abspath(path)
        if key in self.once:
            return
        if kind == "import":
            if key in self.included:
                return  # #import: not again, however it was included before
            self.once.add(key)
        self.included.add(key)
        # GNU's multiple-include optimization (a guarded file whose guard is
        # defined is not entered at all); GNU keeps it per lookup: the name
        # as written and where the search started
        lookup = (
            fname,
            f.dir if quoted and kind != "include_next" else None,
            dir_index if kind == "include_next" else -2,
        )
        g = self.guards.get(lookup)
        if g is not None and g in self.macros:
            return
        self.files.append(path)
        out = self.out
        out.maybe_print_line(line, f.presumed_name)
        out.marker(1, path, " 1")
        self._process(_File(path, prog, dir_index))
        if prog.guard is not None:
            self.guards[lookup] = prog.guard
        out.marker(f.line_of(end) + 1 + f.line_delta, f.presumed_name, " 2")

    def _find(self, f: _File, fname: str, quoted: bool, next_: bool) -> tuple[str, int, _Program] | None:
        if os.path.isabs(fname):
            candidates = [(fname, -1)]
        else:
            dirs = self.include_dirs
            candidates = []
            if next_ and f.dir_index >= 0:
                first = f.dir_index + 1
            else:
                first = 0
                if quoted:
                    candidates.append((os.path.join(f.dir, fname) if f.dir else fname, -1))
            for i in range(first, len(dirs)):
                d = dirs[i]
                candidates.append((f"{d}/{fname}" if d else fname, i))
        for path, index in candidates:
            try:
                prog = _program(path)
            except (IsADirectoryError, NotADirectoryError, FileNotFoundError):
                continue
            except OSError as exc:
                raise _CppDiag(f"{path}: {exc.strerror}") from None
            return path, index, prog
        return None

    # -- text ---------------------------------------------------------------

    def _complete(self, toks: list[_Tok]) -> bool:
        """Whether every function-like macro invocation in ``toks`` is closed."""
        macros = self.macros
        n = len(toks)
        i = 0
        last: _Tok | None = None
        while i < n:
            t = toks[i]
            if t.type == ID:
                m = macros.get(t.value)
                if m is not None and m.arglist is not None:
                    j = i + 1
                    while j < n and toks[j].type in _WS_TYPES:
                        j += 1
                    if j == n:
                        return False
                    if toks[j].value == "(":
                        depth = 0
                        k = j
                        while k < n:
                            v = toks[k].value
                            if v == "(":
                                depth += 1
                            elif v == ")":
                                depth -= 1
                                if depth == 0:
                                    break
                            k += 1
                        if k == n:
                            return False
                        last = toks[k]
                        i = k + 1
                        continue
            if t.type not in _WS_TYPES:
                last = t
            i += 1
        if last is not None and last.type == ID:
            return not self._ends_in_function_like(last.value, 0)
        return True

    def _ends_in_function_like(self, name: str, depth: int) -> bool:
        """Whether expanding macro ``name`` can leave a function-like macro name at the end."""
        m = self.macros.get(name)
        if m is None or depth > 20:
            return False
        if m.arglist is not None:
            return True
        body = m.value
        if not body:
            return False
        tail = body[-1]
        return tail.type == ID and tail.value != name and self._ends_in_function_like(tail.value, depth + 1)

    def _check_unterminated(self, end: int) -> None:
        """At the end of a file, a function-like macro call still open is an error (at ``end``)."""
        toks = self.pending
        macros = self.macros
        n = len(toks)
        for i, t in enumerate(toks):
            if t.type != ID:
                continue
            m = macros.get(t.value)
            if m is None or m.arglist is None:
                continue
            j = i + 1
            while j < n and toks[j].type in _WS_TYPES:
                j += 1
            if j < n and toks[j].value == "(":
                depth = 0
                for k in range(j, n):
                    v = toks[k].value
                    if v == "(":
                        depth += 1
                    elif v == ")":
                        depth -= 1
                        if depth == 0:
                            break
                else:
                    raise _CppDiag(f'unterminated argument list invoking macro "{t.value}"', end)

    def _flush(self) -> None:
        """Macro-expand the pending lines and write them out."""
        toks = self.pending
        if not toks:
            return
        self.pending = []
        f = self.pending_file
        toks, rest = self._expand_constants(toks)
        if not rest:
            self._write(toks)
            return
        try:
            toks = self.expand_macros(toks)
        except _PcppError as exc:
            offset = self._find_macro_call(toks, exc)
            if f is None:  # pragma: no cover - pending_file is set with pending
                raise DtvmError(exc.message) from None
            raise self._error(f, exc.message, offset) from None
        self._write(toks)

    def _expand_constants(self, toks: list[_Tok]) -> tuple[list[_Tok], bool]:
        """Expand the macros whose bodies hold no identifier (most dt-bindings
        constants) outside function-like macro calls; pcpp would give the same
        tokens, only slower. The flag says whether pcpp has work left."""
        macros = self.macros
        out: list[_Tok] = []
        append = out.append
        rest = False
        after_function = False
        depth = 0
        for t in toks:
            if depth:
                append(t)
                v = t.value
                if v == "(":
                    depth += 1
                elif v == ")":
                    depth -= 1
                continue
            ty = t.type
            if ty in _WS_TYPES:
                append(t)
                continue
            if after_function:
                after_function = False
                if t.value == "(":
                    depth = 1
                    append(t)
                    continue
                if ty == ID and (t.value in macros or t.value in _DYNAMIC):
                    rest = True  # a macro right after an uncalled function-like one: pcpp's turn
                    append(t)
                    continue
            if ty == ID:
                m = macros.get(t.value)
                if m is not None:
                    if m.arglist is not None:
                        rest = True
                        after_function = True
                        append(t)
                        continue
                    value = m.value
                    trivial = getattr(m, "trivial", None)
                    if trivial is None:
                        trivial = m.trivial = all(v.type != ID for v in value)
                    if trivial:
                        name = t.value
                        for v in value:
                            c = v.__copy__()
                            c.lineno = t.lineno
                            c.source = t.source
                            c.expanded_from = [name]
                            append(c)
                        continue
                    rest = True
                elif t.value in _DYNAMIC:
                    rest = True
            append(t)
        return out, rest

    @staticmethod
    def _find_macro_call(toks: list[_Tok], exc: _PcppError) -> int:
        """Where GNU reports a bad macro call: the ')' that closes it."""
        m = re.search(r'macro "(\w+)"', exc.message)
        n = len(toks)
        for i, t in enumerate(toks):
            if m is not None and t.value == m.group(1) and t.lineno == exc.line:
                depth = 0
                for k in range(i + 1, n):
                    v = toks[k].value
                    if v == "(":
                        depth += 1
                    elif v == ")":
                        depth -= 1
                        if depth == 0:
                            return toks[k].lexpos
                return t.lexpos
        return toks[0].lexpos if toks else 0

    def _write(self, toks: list[_Tok]) -> None:
        out = self.out
        parts = out.parts
        f = self.pending_file
        fname = f.presumed_name if f is not None else ""
        prev: _Tok | None = None
        space: str | None = None
        synthetic = False
        bol = True
        n = len(toks)
        for i, t in enumerate(toks):
            ty = t.type
            if ty in _WS_TYPES:
                exp = t.__dict__.get("expanded_from")
                if t.value == "\n" and not exp:
                    bol = True
                    prev = None
                    space = None
                    synthetic = False
                elif t.orig == ID and i + 1 < n and toks[i + 1].lexpos == t.lexpos and toks[i + 1].type == ID:
                    # pcpp's space between a function-like macro call and an
                    # identifier (a copy of that identifier); GNU spaces by avoid_paste
                    synthetic = True
                elif ty == "CPP_WS" or ty == "CPP_LINECONT":
                    v = " " if exp or t.value == "\n" else t.value
                    space = v if space is None else space + v
                continue
            if bol:
                out.sync(t.lineno, fname)
                if space:
                    parts.append(space)
                bol = False
            elif space is not None:
                parts.append(space)
            elif prev is not None and (
                synthetic
                or prev.__dict__.get("expanded_from")
                or t.__dict__.get("expanded_from")
                or prev.orig != prev.type  # __LINE__, __COUNTER__
                or t.orig != t.type
            ):
                if _avoid_paste(prev, t):
                    parts.append(" ")
            parts.append(str(t.value))
            prev = t
            space = None
            synthetic = False


def preprocess(
    src: SourceBuffer, include_dirs: list[str] | None = None, defines: list[str] | None = None
) -> SourceBuffer:
    """``src`` through the kernel's cpp step; the result keeps ``src``'s name and directory.

    ``include_dirs`` are cpp's ``-I`` directories (after the including file's
    own directory for ``"..."``); ``defines`` are ``NAME`` or ``NAME=VALUE``.
    """
    dirs = [d.rstrip("/") or "/" if d not in ("", ".") else d for d in (include_dirs or [])]
    cpp = _Cpp(dirs)
    for d in defines or []:
        cpp.define_option(d)
    text = cpp.run(src)
    return PreprocessedSource(src.name, text, src.dir, list(dict.fromkeys(cpp.files)))
