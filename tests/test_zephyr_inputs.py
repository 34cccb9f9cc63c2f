"""What Zephyr's dtlib tests exercise (transcribed into fixtures/zephyr/), compiled by dtc 1.6.1 and by dtvm.

Zephyr's python-devicetree holds a second reading of the DTS language,
written against its own expectations; its test inputs probe corners dtvm's
own fixtures did not (escapes, offset labels, phandle self-references,
deletions in later blocks, /omit-if-no-ref/ in odd places). Each transcription
goes through ``-f -O dts`` and ``-O dtb``: the bytes, stderr and exit code
must be dtc's. ``&{label}`` (merge-label-path-18.dts) is dtc 1.8's syntax,
the one place dtvm deliberately accepts what 1.6.1 rejects; that case checks
the difference is exactly that.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from .oracle import dtc, dtvm, needs_dtc

pytestmark = needs_dtc

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "zephyr"
CASES = sorted(glob.glob(str(FIXTURES / "*.dts")))
NEWER_SYNTAX = {"merge-label-path-18.dts"}


@pytest.mark.parametrize("path", CASES, ids=os.path.basename)
@pytest.mark.parametrize("args", [["-f", "-O", "dts"], ["-O", "dtb"]], ids=" ".join)
def test_zephyr_input(path: str, args: list[str]) -> None:
    ref = dtc([*args, path])
    me = dtvm([*args, path])
    assert "Traceback" not in me.err
    if os.path.basename(path) in NEWER_SYNTAX:
        # 1.6.1's lexer has no &{label}: a syntax error at '&'; dtvm reads it as 1.8 does
        assert ref.code == 1 and "syntax error" in ref.err
        assert me.code == 1 and "Label or path nope not found" in me.err
        return
    assert me.code == ref.code, f"dtc exits {ref.code}, dtvm {me.code}\ndtc: {ref.err}\ndtvm: {me.err}"
    assert me.err == ref.err
    assert me.out == ref.out


def test_every_case_runs_something() -> None:
    """The transcriptions cover accepted and rejected inputs alike."""
    outcomes = [dtc(["-O", "dtb", p]).code for p in CASES]
    assert len(CASES) >= 50
    assert outcomes.count(0) >= 15 and sum(1 for c in outcomes if c) >= 15
