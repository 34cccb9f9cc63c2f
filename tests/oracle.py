"""Helpers to run the oracles (Debian's dtc 1.6.1) and dtvm side by side."""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from dtvm.cli.dtc import run

HAVE_DTC = shutil.which("dtc") is not None
needs_dtc = pytest.mark.skipif(not HAVE_DTC, reason="dtc (Debian device-tree-compiler 1.6.1) is the oracle and is not installed")


@dataclass
class Outcome:
    code: int
    out: bytes
    err: str

    @property
    def ok(self) -> bool:
        return self.code == 0


def dtc(args: list[str], cwd: str | None = None, stdin: bytes | None = None) -> Outcome:
    p = subprocess.run(["dtc", *args], input=stdin, capture_output=True, cwd=cwd, timeout=60)
    return Outcome(p.returncode, p.stdout, p.stderr.decode("latin-1"))


def dtvm(args: list[str]) -> Outcome:
    out = io.BytesIO()
    err = io.StringIO()
    code = run(args, out, err)
    return Outcome(code, out.getvalue(), err.getvalue())


def assert_same(args: list[str], cwd: str | None = None) -> Outcome:
    """dtc and dtvm agree: both accept with identical output, or both reject."""
    ref = dtc(args, cwd=cwd)
    me = dtvm(args)
    if ref.ok:
        assert me.ok, f"dtc accepts {args} but dtvm rejects:\n{me.err}"
        assert me.out == ref.out, f"output differs for {args}"
    else:
        assert not me.ok, f"dtc rejects {args} (exit {ref.code}: {ref.err.strip()[:200]}) but dtvm accepts"
        assert "Traceback" not in me.err
    return ref
