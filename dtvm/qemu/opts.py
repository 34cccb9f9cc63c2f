"""QEMU's option syntax (``key=value,...`` with ``,,`` for a comma), written and read.

Everything in dtvm that builds or reads a QEMU command line goes through this module, so that the
rules below live in one place:

- :func:`escape`, :func:`check_key`, :func:`check_id` and :func:`render` *write* one option
  argument (``virtio-net-pci,id=net0,bus=pcie.0,addr=0x3,mac=52:54:00:12:34:56``).  A DTB may come
  from anyone, so every value is checked and escaped: a value can never end its own option and
  start another one, a head (driver, type, machine) or key can never be anything but a name, and
  characters QEMU would pass on verbatim but no honest description contains (control characters,
  newlines, text that is not UTF-8, Unicode noncharacters) are refused rather than written.
- :func:`parse` *reads* one option argument as QEMU 7.2 reads it, in either of its two dialects
  (QemuOpts, ``util/qemu-option.c``; keyval, ``util/keyval.c``), for parsing users' command lines
  offline.
- :func:`render_global` / :func:`parse_global` do ``-global``, whose short form is not QemuOpts.
- :func:`format_argv` prints a finished argv for ``dtvm dtb2qemu --format json|shell|lines``.

Facts about QEMU 7.2 this relies on (each is checked against ``qemu-system-x86_64`` 7.2 in
``tests/test_opts.py``):

- **Values**: a value runs to the first single ``,``; ``,,`` is one literal comma (QemuOpts'
  ``get_opt_value``, keyval's value loop).  Nothing else is special in a value: ``=``, quotes,
  backslashes, ``$(...)``, spaces and any UTF-8 text arrive unchanged (QEMU never runs a shell, and
  dtvm never does either).  So doubling the commas is the whole escape, in both dialects.  (One
  catch on the way back: QMP reports a Unicode noncharacter such as U+FFFF as U+FFFD.)
- **Keys**: a key runs to the first ``=`` or ``,`` and is never unescaped, so a key cannot contain
  either; :func:`check_key` also keeps it to the characters QEMU's option and property names use.
- **Items**: whether an item is ``key=value``, a bare word or the implied first value is decided
  by whichever of ``=`` and ``,`` comes first in the raw text (``strcspn(p, "=,")``).  After each
  item one ``,`` is skipped, so a single trailing comma is ignored.
- **Implied first value** (``-device``'s ``driver``, ``-netdev``/``-chardev``'s ``backend``/
  ``type``, ``-object``'s ``qom-type``, ``-machine``'s ``type``): in QemuOpts it is read like a
  value, so ``virtio-blk-pci,,x,drive=d0`` asks for the driver ``virtio-blk-pci,x``; in keyval it
  ends at the first comma, and ``pc-q35-7.2,,x`` is an empty key (``Invalid parameter ''``).  An
  explicit ``driver=`` later in the same option *replaces* the implied value (QemuOpts keeps every
  setting and QEMU reads the last), which is why :func:`render` refuses a pair whose key is the
  implied key when a head is given.
- **Bare words** in QemuOpts mean ``key=on``, and ``nokey`` means ``key=off`` (any word starting
  with ``no``: ``notify_on_empty`` is ``tify_on_empty=off``).  QEMU 7.2 still accepts both and
  warns ``short-form boolean option 'x' deprecated``.  In keyval a bare word is an error
  (``Expected '=' after parameter 'x'``).  :func:`render` never writes bare words.
- **Repeated keys**: QemuOpts keeps them all and QEMU reads the last one (``serial=a,serial=b``
  sets ``b``), except ``id``, which is taken from the *first* ``id=`` by a separate scan
  (``opts_parse_id``); some options read a repeated key as a list (``-netdev user,hostfwd=...``).
  keyval keeps the last.  :func:`parse` returns every pair in order; :func:`render` writes what it
  is given but refuses a second ``id``.
- **ids** must be ``id_wellformed``: an ASCII letter, then ASCII letters, digits, ``-``, ``.``,
  ``_`` (``Parameter 'id' expects an identifier``).
- **help**: ``help`` or ``?`` as the implied value, a bare word, or a key (``-device x,help=off``
  prints the property list too) makes QEMU print help and exit instead of configuring anything.
  Both directions refuse them.
- In QEMU 7.2, ``-device``, ``-drive``, ``-netdev`` (most backends), ``-chardev``, ``-object``,
  ``-m``, ``-accel``, ``-rtc``, ``-numa`` and ``-fw_cfg`` are QemuOpts; ``-machine``/``-M``,
  ``-smp``, ``-boot``, ``-display``, ``-audiodev``, ``-blockdev`` and ``-netdev stream|dgram`` are
  keyval (a bare word is the tell: a deprecation warning in QemuOpts, an error in keyval).
  :func:`render` output (a head without ``,``/``=``, then only ``key=value``) reads the same in
  both.
- ``-global D.P=V`` is neither: see :func:`render_global`.

Why a hand-written scanner and not a pyparsing grammar (as ``DESIGN.md`` first planned): the
syntax has no grammar errors at all in QemuOpts (every string is *some* list of options), and its
meaning is defined by a character scan in QEMU's C (``strcspn`` over the raw text decides what an
item is, then ``get_opt_value`` reads it), with the two dialects differing in exactly those
decisions.  Mirroring the C loop step by step is shorter than the equivalent grammar with its
look-aheads, and it can be checked line by line against ``util/qemu-option.c`` and
``util/keyval.c``.  ``,,`` itself would be easy in pyparsing; the rest is what made it the worse fit.
Importing pyparsing alone also costs 45-53 ms here (``python -X importtime``, 2026-12-06), a quarter
of ``qemu2dtb``'s whole budget; the dependency is gone.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence

from dtvm.errors import DtvmError

__all__ = [
    "FORMATS",
    "OptionError",
    "check_id",
    "check_key",
    "escape",
    "format_argv",
    "parse",
    "parse_global",
    "render",
    "render_global",
]

#: The ``--format`` choices of ``dtvm dtb2qemu``.
FORMATS = ("json", "shell", "lines")

# property and option names QEMU uses: letters, digits, '_', '.', '+', '-', not starting with '-'
_KEY = re.compile(r"[A-Za-z0-9_.+][A-Za-z0-9_.+-]*\Z")
# QEMU's id_wellformed (util/id.c): an ASCII letter first, then letters, digits, '-', '.', '_'
_ID = re.compile(r"[A-Za-z][A-Za-z0-9._-]*\Z")
# keyval key: dotted fragments, each a QAPI name (with an optional downstream "__RFQDN_" prefix) or,
# after the first, a list index; 1 to 127 characters each (util/keyval.c, parse_qapi_name)
_QAPI_NAME = r"(?:__[A-Za-z0-9.-]*_)?[A-Za-z][A-Za-z0-9_-]*"
_KEYVAL_KEY = re.compile(rf"{_QAPI_NAME}(?:\.(?:{_QAPI_NAME}|[0-9]+))*\Z")
# what makes QEMU print help instead of configuring (is_help_option)
_HELP = ("help", "?")
# -global's short form: sscanf(str, "%63[^.=].%63[^=]%n", ...) and then '='
_GLOBAL_SHORT = re.compile(r"([^.=]{1,63})\.([^=]{1,63})=")
# refused in option values: C0 controls, DEL, C1 controls (Unicode category Cc), and the Unicode
# line and paragraph separators (str.splitlines breaks lines at them, as at '\n', '\r' and U+0085)
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Unicode noncharacters (U+FDD0..U+FDEF and the last two code points of every plane): QEMU keeps
# them, but its JSON writer reports each as U+FFFD, so a VM could never be read back as described
_NONCHARACTER = re.compile(
    "[\ufdd0-\ufdef"
    + "".join(chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(17))
    + "]"
)


class OptionError(DtvmError):
    """A value, name or option text that cannot be (or must not be) a QEMU option.

    ``where`` is what the caller says it was about (a devicetree node path and property, a
    command-line argument); the message is one line, and never echoes control characters.
    """

    def __init__(self, where: str, message: str, column: int | None = None) -> None:
        self.where = where
        self.message = message
        self.column = column
        parts = [where] if where else []
        if column is not None:
            parts.append(f"column {column}")
        super().__init__(": ".join([*parts, message]))


def _show(text: str, limit: int = 60) -> str:
    """``text`` quoted for a one-line message: control characters escaped, long text cut."""
    shown = repr(text[:limit])
    return shown + ("..." if len(text) > limit else "")


def _value_problem(value: str) -> tuple[int, str] | None:
    """(offset, what is wrong) for a string that may not be written into an option, else None."""
    bad = _BAD_CHAR.search(value)
    if bad is not None:
        ch = bad.group()
        kind = "a newline" if ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029" else "a control character"
        return bad.start(), f"{kind} (U+{ord(ch):04X})"
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:
        return surrogate.start(), f"text that is not UTF-8 (lone surrogate U+{ord(surrogate.group()):04X})"
    nonchar = _NONCHARACTER.search(value)
    if nonchar is not None:
        return nonchar.start(), (
            f"a Unicode noncharacter (U+{ord(nonchar.group()):04X}), which QEMU's QMP reports back as U+FFFD"
        )
    return None


def escape(value: str, where: str) -> str:
    """``value`` as one value of a QEMU option list: every ``,`` doubled.

    That is the whole of QEMU's escaping (QemuOpts and keyval alike): the value then runs to the
    next single comma, and nothing else in it is special.  Refused with OptionError:

    - control characters (U+0000 to U+001F, U+007F to U+009F) and newlines (also U+2028, U+2029):
      QEMU would take them verbatim, but no device property needs them, and they break the
      ``lines`` and ``shell`` outputs and reach terminals raw;
    - strings that are not valid Unicode text (lone surrogates, which have no UTF-8 encoding);
    - Unicode noncharacters (U+FDD0 to U+FDEF, U+xFFFE, U+xFFFF): QEMU stores them, but QMP
      reports each as U+FFFD, so the VM could not be read back as it was described.

    The empty string is a valid value (``serial=``).
    """
    problem = _value_problem(value)
    if problem is not None:
        offset, what = problem
        raise OptionError(
            where, f"value {_show(value)} contains {what} at offset {offset}; not allowed in a QEMU option"
        )
    return value.replace(",", ",,")


def check_key(key: str, where: str) -> str:
    """``key`` if QEMU can take it as an option or property name, else OptionError.

    A key ends at the first ``=`` or ``,`` and is never unescaped, so those can never be in one;
    the rule here (``[A-Za-z0-9_.+-]+``, not starting with ``-``) is the alphabet of QEMU's
    property and option names, which also keeps keys free of spaces, quotes and control characters.
    """
    if not _KEY.match(key):
        raise OptionError(
            where,
            f"{_show(key)} is not a QEMU option name (letters, digits, '_', '.', '+', '-'; not starting with '-')",
        )
    return key


def check_id(ident: str, where: str) -> str:
    """``ident`` if it is a QEMU id (``id_wellformed``: an ASCII letter, then ASCII letters, digits,
    ``-``, ``.``, ``_``), else OptionError; QEMU refuses any other id with ``Parameter 'id' expects
    an identifier``."""
    if not _ID.match(ident):
        raise OptionError(
            where,
            f"{_show(ident)} is not a QEMU id (a letter, then letters, digits, '-', '.', '_')",
        )
    return ident


def _check_head(head: str, where: str) -> str:
    if head in _HELP:
        raise OptionError(where, f"{_show(head)} asks QEMU for help; it is not a driver or type name")
    if not _KEY.match(head):
        raise OptionError(
            where,
            f"{_show(head)} is not a driver or type name QEMU can take as an implied first value "
            "(letters, digits, '_', '.', '+', '-'; no ',' or '=')",
        )
    return head


def render(
    head: str | None,
    pairs: Sequence[tuple[str, str]],
    where: str,
    *,
    implied: str | None = None,
) -> str:
    """One option argument: ``head,key=value,...`` with every key checked and every value escaped.

    ``head`` is the implied first value (the driver for ``-device``, the type for ``-netdev``,
    ``-chardev``, ``-object``, the machine type for ``-machine``), or None to write only pairs.
    It must be a plain name: QemuOpts would read ``,,`` in it as a comma but keyval would not, and
    QEMU's scan for ``id`` reads a head with a comma as several words, so a head with ``,``, ``=``
    or anything outside the name alphabet is refused (as are ``help`` and ``?``).

    ``implied`` is the name of the option's implied key (``driver``, ``type``, ``qom-type``):
    given, a pair that sets it again next to a head is refused, because QEMU would take the later
    value (``virtio-blk-pci,driver=virtio-net-pci`` is a virtio-net-pci).  Pass it whenever the
    pairs may come from a description.

    A key ``id`` must be a well-formed id and may appear once (QEMU reads the first ``id``, but the
    last of every other key); ``help`` is refused as a key.  Other repeated keys are written as
    given (some options read them as lists).  The result never contains a single comma that the
    caller did not put between two pairs: a value cannot add a key, an id or a device.
    """
    parts: list[str] = []
    if head is not None:
        parts.append(_check_head(head, where))
    seen_id = False
    for key, value in pairs:
        check_key(key, where)
        if key in _HELP:
            raise OptionError(where, f"option {key!r} asks QEMU for help; it is not a setting")
        if implied is not None and key == implied and head is not None:
            raise OptionError(
                where,
                f"option {key!r} sets the implied first value {head!r} again (QEMU would use the later one)",
            )
        problem = _value_problem(value)
        if problem is not None:
            offset, what = problem
            raise OptionError(
                where, f"value of {key!r} contains {what} at offset {offset}; not allowed in a QEMU option"
            )
        if key == "id":
            if seen_id:
                raise OptionError(where, "a second 'id' (QEMU would use the first and ignore this one)")
            seen_id = True
            check_id(value, where)
        parts.append(f"{key}={value.replace(',', ',,')}")
    return ",".join(parts)


def _read_value(text: str, pos: int) -> tuple[str, int]:
    """QEMU's ``get_opt_value``: the value from ``pos`` up to the first single ``,`` (``,,`` is a
    comma), and the position of that comma or of the end."""
    out: list[str] = []
    n = len(text)
    while True:
        comma = text.find(",", pos)
        if comma < 0:
            out.append(text[pos:])
            return "".join(out), n
        if comma + 1 < n and text[comma + 1] == ",":
            out.append(text[pos : comma + 1])
            pos = comma + 2
            continue
        out.append(text[pos:comma])
        return "".join(out), comma


def _name_end(text: str, pos: int) -> int:
    """``pos + strcspn(text + pos, "=,")``."""
    n = len(text)
    end = pos
    while end < n and text[end] not in "=,":
        end += 1
    return end


def parse(
    text: str,
    *,
    implied: str | None = None,
    keyval: bool = False,
    where: str = "",
) -> tuple[str | None, list[tuple[str, str]]]:
    """One option argument read as QEMU 7.2 reads it: ``(head, [(key, value), ...])``.

    ``head`` is the implied first value (a bare first word) when ``implied`` names the option's
    implied key, else None; a first word written ``driver=x`` stays a pair, as QEMU stores both
    forms under the same key.  Pairs are returned in order, repeated keys included (see the module
    docstring for which one QEMU uses).

    QemuOpts (the default; ``util/qemu-option.c``, ``opts_do_parse``): ``,,`` is a comma inside a
    value and inside the implied first value; a bare word ``key`` is ``(key, "on")`` and ``nokey``
    is ``(key, "off")`` (QEMU 7.2 accepts these with a deprecation warning); a single trailing
    comma is ignored; the empty string is no options.

    ``keyval=True`` (``util/keyval.c``; ``-machine``, ``-smp``, ``-blockdev`` ... in 7.2): the
    implied first value ends at the first comma, a bare word is an error, and keys are dotted QAPI
    names (``file.filename``, ``a.0``).

    Errors (OptionError naming ``where`` and the 1-based column): what QEMU itself refuses at this
    stage (an id that is not well formed, keyval's bare words and invalid keys) and what dtvm
    refuses everywhere (control characters and newlines, keys outside the name alphabet, an empty
    key, help requests).
    """
    problem = _value_problem(text)
    if problem is not None:
        offset, what = problem
        raise OptionError(where, f"{what}; not allowed in a QEMU option", offset + 1)

    def fail(pos: int, message: str) -> OptionError:
        return OptionError(where, message, pos + 1)

    def check(key: str, pos: int) -> None:
        if key in _HELP:
            raise fail(pos, f"{key!r} asks QEMU for help; it is not a setting")
        if keyval:
            if not _KEYVAL_KEY.match(key):
                raise fail(pos, f"invalid parameter {_show(key)} (keyval keys are dotted QAPI names)")
            for fragment in key.split("."):
                if len(fragment) > 127:
                    raise fail(pos, f"parameter fragment {_show(fragment)} is longer than 127 characters")
        elif key == "":
            raise fail(pos, "empty option name")
        elif not _KEY.match(key):
            raise fail(
                pos,
                f"{_show(key)} is not a QEMU option name (letters, digits, '_', '.', '+', '-'; not starting with '-')",
            )

    head: str | None = None
    pairs: list[tuple[str, str]] = []
    n = len(text)
    pos = 0
    first = True
    while pos < n:
        start = pos
        end = _name_end(text, pos)
        if end == n or text[end] == ",":
            if keyval:
                word = text[start:end]
                if word in _HELP:
                    raise fail(start, f"{word!r} asks QEMU for help; it is not a setting")
                if first and implied is not None and end > start:
                    head, pos = word, end
                else:
                    check(word, start)
                    raise fail(start, f"expected '=' after parameter {_show(word)}")
            elif first and implied is not None:
                head, pos = _read_value(text, start)
                if head in _HELP:
                    raise fail(start, f"{head!r} asks QEMU for help; it is not a driver or type name")
            else:
                word = text[start:end]
                if word.startswith("no"):
                    key, value = word[2:], "off"
                else:
                    key, value = word, "on"
                try:
                    check(key, start)
                except OptionError as e:
                    if word.startswith("no"):
                        raise fail(start, f"{_show(word)} reads as {key!r}=off: {e.message}") from None
                    raise
                pairs.append((key, value))
                pos = end
        else:
            key = text[start:end]
            check(key, start)
            value, pos = _read_value(text, end + 1)
            if key == "id" and not _ID.match(value):
                raise fail(
                    end + 1,
                    f"{_show(value)} is not a QEMU id (a letter, then letters, digits, '-', '.', '_')",
                )
            pairs.append((key, value))
        if pos < n:
            pos += 1  # the ',' that ended the item
        first = False
    return head, pairs


def render_global(driver: str, prop: str, value: str, where: str) -> str:
    """The argument of ``-global`` setting ``driver.prop`` to ``value``, always in the long form
    ``driver=D,property=P,value=V``.

    The short form ``D.P=V`` is not QemuOpts: QEMU 7.2 (``qemu_global_option``) splits it with
    ``sscanf("%63[^.=].%63[^=]")`` and takes everything after the ``=`` verbatim, so ``,,`` stays
    two commas, and a driver with a dot in its name (``cfi.pflash01``) is cut at that dot.  The long
    form escapes and reads like any other option.
    """
    _check_head(driver, where)
    return render(None, [("driver", driver), ("property", check_key(prop, where)), ("value", value)], where)


def parse_global(text: str, *, where: str = "") -> tuple[str, str, str]:
    """``(driver, property, value)`` of a ``-global`` argument, read as QEMU 7.2 reads it.

    The short form ``D.P=V``: ``D`` is 1 to 63 characters up to the first ``.`` (no ``=``), ``P``
    1 to 63 up to the first ``=``, and ``V`` is the rest, taken verbatim (commas included).  Any
    other text is QemuOpts with the keys ``driver``, ``property`` and ``value``, all required.
    """
    problem = _value_problem(text)
    if problem is not None:
        offset, what = problem
        raise OptionError(where, f"{what}; not allowed in a QEMU option", offset + 1)
    short = _GLOBAL_SHORT.match(text)
    if short is not None:
        return short.group(1), short.group(2), text[short.end() :]
    _, pairs = parse(text, where=where)
    found: dict[str, str] = {}
    for key, value in pairs:
        if key not in ("driver", "property", "value"):
            raise OptionError(where, f"invalid parameter {key!r} for -global (driver, property, value)")
        found[key] = value  # QEMU reads the last one
    missing = [k for k in ("driver", "property", "value") if k not in found]
    if missing:
        raise OptionError(
            where, f"-global needs 'driver', 'property' and 'value'; missing {', '.join(missing)}"
        )
    return found["driver"], found["property"], found["value"]


def format_argv(argv: Sequence[str], fmt: str) -> str:
    """A finished argv as text for ``dtvm dtb2qemu --format``, ending with a newline.

    - ``json``: a JSON array of the arguments, the QEMU binary first (ASCII only: other characters
      as ``\\uXXXX`` escapes); ``json.loads`` gives back the same list.
    - ``shell``: one line, each argument quoted by :func:`shlex.quote`, safe to paste into any POSIX
      shell (single quotes, so ``$``, backquotes, ``\\``, ``*``, spaces and quotes stay literal).
    - ``lines``: one argument per line.

    Refused (OptionError naming the argument's index): an empty argv; an argument with NUL (no
    program can receive one) or that is not valid Unicode text; for ``shell`` and ``lines``, an
    argument with a newline or another control character, which would break the one-line or
    one-per-line layout (and reach a terminal raw).
    """
    if fmt not in FORMATS:
        raise OptionError("--format", f"unknown format {fmt!r} (json, shell or lines)")
    if not argv:
        raise OptionError("argv", "empty: the first argument must be the QEMU binary")
    for index, arg in enumerate(argv):
        where = f"argument {index} {_show(arg)}"
        if "\x00" in arg:
            raise OptionError(where, "contains NUL, which no program can receive as an argument")
        surrogate = _SURROGATE.search(arg)
        if surrogate is not None:
            raise OptionError(where, f"is not UTF-8 text (lone surrogate at offset {surrogate.start()})")
        if fmt != "json":
            bad = _BAD_CHAR.search(arg)
            if bad is not None:
                offset, what = _value_problem(arg) or (bad.start(), "a control character")
                raise OptionError(
                    where, f"contains {what} at offset {offset}; cannot be written in the {fmt} format"
                )
    if fmt == "json":
        return json.dumps(list(argv)) + "\n"
    if fmt == "shell":
        return " ".join(shlex.quote(arg) for arg in argv) + "\n"
    return "".join(arg + "\n" for arg in argv)
