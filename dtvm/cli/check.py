"""``dtvm check FILE.dtb [-b BACKEND.dtbo] [--format text|json]``: the rules a description breaks.

Reported, never fixed.  The exit status is the answer, for scripts and for a management host
that wants to know before it runs ``dtb2qemu``: 0 nothing found (warnings alone included), 1 a
rule is broken, 2 an input cannot be used (one line on stderr, ``dtvm check: FILE: message``,
never a traceback; click's own usage errors exit 2 as well).  The rules are ``dtvm.vm.check``'s.
"""

from __future__ import annotations

import inspect
import json
import sys

import click

__all__ = ["check_cmd"]


def _write(text: str) -> None:
    from dtvm.cli.output import write_stdout

    write_stdout(text)


def _rules_help() -> str:
    from dtvm.vm.check import RULES

    return "\n".join(f"  {name}: {text}" for name, text in RULES.items())


@click.command("check")
@click.option("-b", "--backend", "backend", metavar="BACKEND.dtbo",
              help="The back-end overlay: without it, back-end references and hot-plug marks are not checked.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help='One line per finding, or JSON: {"file", "backend", "findings": [{path, rule, severity, '
              'source, message}], "errors", "warnings", "backends_checked"}.')
@click.argument("guest", metavar="FILE.dtb")
def check_cmd(backend: str | None, fmt: str, guest: str) -> None:
    """Check the dependency rules of a VM description (a guest DTB and its back-end overlay).

    Each finding is one line, FILE:/node/path: message [rule]. Rules: every device on a bus of
    the kind it needs, addresses of that bus's form, in range and without conflicts, PCI
    multifunction slots as QEMU takes them, hot-plugged devices only on buses that take hot-plug,
    every back-end reference resolved. Exit status: 0 clean, 1 findings, 2 unusable input.
    """
    from dtvm.errors import DtvmError
    from dtvm.vm.diff import DiffInputError, read_description

    def warn(message: str) -> None:
        click.echo(f"dtvm check: {message}", err=True)

    try:
        gtree = read_description(guest, warn=warn)
        btree = read_description(backend, overlay=True, warn=warn) if backend is not None else None
    except DiffInputError as exc:
        warn(str(exc))
        sys.exit(2)
    from dtvm.vm.check import CheckDataError, check_plan, clean
    from dtvm.vm.readback import read_config

    try:
        read_config(gtree, None)  # the guest tree alone first, so that an error names the right file
    except DtvmError as exc:
        warn(f"{guest}: {_first_line(exc)}")
        sys.exit(2)
    try:
        plan = read_config(gtree, btree)
    except DtvmError as exc:
        warn(f"{backend}: {_first_line(exc)}")
        sys.exit(2)
    try:
        findings = check_plan(plan, gtree, btree)
    except CheckDataError as exc:
        warn(f"dtvm's own data: {_first_line(exc)}")
        sys.exit(2)
    if btree is None:
        warn("no back-end overlay (-b): back-ends not checked, nor hot-plug marks")
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    if fmt == "json":
        doc = {"file": guest, "backend": backend, "backends_checked": btree is not None,
               "findings": [f.to_json() for f in findings], "errors": errors, "warnings": warnings}
        _write(json.dumps(doc, indent=1, ensure_ascii=True) + "\n")
    else:
        lines = []
        for f in findings:
            file = guest if f.source == "guest" else backend or ""
            level = "warning: " if f.severity == "warning" else ""
            lines.append(f"{clean(file)}:{clean(f.path)}: {level}{f.message} [{f.rule}]\n")
        _write("".join(lines))
    sys.exit(1 if errors else 0)


def _first_line(exc: Exception) -> str:
    from dtvm.vm.check import clean

    lines = str(exc).splitlines()
    return clean(lines[0]) if lines else type(exc).__name__


check_cmd.help = inspect.cleandoc(check_cmd.help or "") + "\n\n\b\nRules:\n" + _rules_help()
