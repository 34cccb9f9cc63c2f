"""Seeded mutation fuzzing of DTS and DTB input (issue 19), a few hundred cases each per run.

Every case must give a tree or a one-line located error, never an exception, within 1 GiB of
address space; where dtc accepts, dtvm must give dtc's output byte for byte, and where dtc
rejects, dtvm must reject (a case on which dtc crashes has no oracle and only the first rules
apply).  ``make fuzz`` runs the same checks on many more cases (tests/fuzz.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz import check_cases, make_cases, mutate_dtb, mutate_dts, seed_dtb, seed_dts
from tests.oracle import needs_dtc


def test_mutators_are_seeded() -> None:
    """Same seed, same cases: a failing case can always be made again."""
    assert make_cases("dts", 20, 7) == make_cases("dts", 20, 7)
    import random

    a, b = random.Random(3), random.Random(3)
    data = seed_dtb()[0]
    assert mutate_dtb(data, a) == mutate_dtb(data, b)
    assert mutate_dts(seed_dts()[0], a) == mutate_dts(seed_dts()[0], b)


@needs_dtc
@pytest.mark.parametrize("seed", [19, 20])
def test_fuzz_dts(seed: int, tmp_path: Path) -> None:
    counts = check_cases(make_cases("dts", 300, seed), "dts", str(tmp_path))
    assert counts["accepted"] > 0 and counts["rejected"] > 0, counts


@needs_dtc
@pytest.mark.parametrize("seed", [19, 20])
def test_fuzz_dtb(seed: int, tmp_path: Path) -> None:
    counts = check_cases(make_cases("dtb", 300, seed), "dtb", str(tmp_path))
    assert counts["accepted"] > 0 and counts["rejected"] > 0, counts
