"""SourceBuffer.location by counting newlines from the offsets asked before, against the table.

A compile asks the line of a few hundred offsets (its findings' positions); ``location`` counts
the newlines in C from the nearest offset it counted before instead of building the table of
every newline, and builds the table past 256 lookups.  Oracle: the table's answer for the same
offsets (the path dtc's diagnostics are held to byte for byte in test_dtc_parity and the dtc
suite), on seeded random buffers with linemarkers, offsets asked in random order, below and past
the switch to the table.
"""

from __future__ import annotations

import os
import random

import pytest

from dtvm.dt.dts.source import SourceBuffer

SEED = int(os.environ.get("DTVM_GEN_SEED", "16016"))


def _buffer(rng: random.Random) -> tuple[str, list[tuple[int, str, int]]]:
    lines = []
    for _ in range(rng.randrange(0, 60)):
        width = rng.choice([0, 0, 1, 5, 30, 200, rng.randrange(0, 3000)])
        lines.append("".join(rng.choice("ab {};=<>\t") for _ in range(width)))
    text = "\n".join(lines) + ("\n" if rng.random() < 0.5 else "")
    marks = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randrange(0, 6))))
    return text, [(off, f"f{i}.dtsi", rng.randrange(0, 500)) for i, off in enumerate(marks)]


def _pair(text: str, marks: list[tuple[int, str, int]]) -> tuple[SourceBuffer, SourceBuffer]:
    counted, table = SourceBuffer("main.dts", text), SourceBuffer("main.dts", text)
    for off, name, line in marks:
        counted.add_linemarker(off, name, line)
        table.add_linemarker(off, name, line)
    table._nl()  # the table from the start: the reference path
    return counted, table


@pytest.mark.parametrize("case", range(300))
def test_counted_lines_equal_the_table(case: int) -> None:
    rng = random.Random(SEED * 1000 + case)
    text, marks = _buffer(rng)
    counted, table = _pair(text, marks)
    newlines = [i for i, c in enumerate(text) if c == "\n"]
    offsets = [0, len(text), *newlines, *(n + 1 for n in newlines), *(m[0] for m in marks)]
    offsets += [rng.randrange(0, len(text) + 1) for _ in range(rng.choice([5, 50, 400]))]
    rng.shuffle(offsets)
    for off in offsets:
        assert counted.location(off) == table.location(off), (case, off)
    assert counted.location(len(text)) == table.location(len(text))
