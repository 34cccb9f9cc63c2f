"""Every device type QEMU 7.2 lists for a machine, accounted for (issue 13, item 1).

The census (tests/device_census.py, recorded from QEMU in fixtures/qemu-census/7.2.json) says for
each user-creatable type of each machine's binary whether QEMU creates it and migrates it into a
copy of itself, or QEMU's words why not. Each type that migrates must be drawn by the generator
(tests/qemugen.py), or have its own round trip recorded (fixtures/qemu-census/round-trip-7.2.json:
every stage of tests/qemu_random.py on the census's configuration of that type, and how far it
got), so that what the generator does not reach is a measured list, never an unknown.
"""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from .device_census import CENSUS_FILE, ROUND_TRIP_FILE, census_type, drawn_types, listed_types
from .qemu_helpers import have_qemu
from .qemugen import MACHINES
from .qemugen_census import NOT_DRAWN


@cache
def _census() -> dict[str, Any]:
    return json.loads(CENSUS_FILE.read_text())  # type: ignore[no-any-return]


@cache
def _round_trips() -> dict[str, Any]:
    return json.loads(ROUND_TRIP_FILE.read_text())  # type: ignore[no-any-return]


@cache
def _drawn(machine: str, census: bool) -> frozenset[str]:
    return frozenset(drawn_types(machine, census=census))


@pytest.mark.parametrize("machine", list(MACHINES))
def test_census_asks_every_listed_type(machine: str) -> None:
    """The census is of what QEMU lists (the catalog's user-creatable types of the binary): a type
    added to the catalog and not asked would slip past the accounting below."""
    asked = set(_census()[machine])
    listed = set(listed_types(MACHINES[machine].binary))
    assert asked == listed, (sorted(listed - asked)[:10], sorted(asked - listed)[:10])
    for dtype, answer in _census()[machine].items():
        assert answer["result"] in ("migrates", "create", "migrate"), (dtype, answer)
        assert answer["result"] == "migrates" or answer["words"], (dtype, answer)


@pytest.mark.parametrize("machine", list(MACHINES))
def test_every_migrating_type_is_drawn_or_measured(machine: str) -> None:
    """A type QEMU migrates is drawn by the generator (the team's streams, or the census stream,
    which draws each type whose census round trip passed), or its census round trip failed and
    says at which stage and why: the list of what dtvm does not rebuild yet; or QEMU itself does
    not always migrate its census configuration (qemugen_census.NOT_DRAWN says what was measured)."""
    migrating = {t for t, a in _census()[machine].items() if a["result"] == "migrates"}
    trips = _round_trips().get(machine, {})
    failing = {t for t, r in trips.items() if r["result"] != "passed"}
    unaccounted = migrating - _drawn(machine, True) - failing - set(NOT_DRAWN)
    assert not unaccounted, f"{machine}: migrate, neither drawn nor measured: {sorted(unaccounted)}"
    # a failing record of a type the team's streams draw is stale: the random round trip measures it
    stale = failing & _drawn(machine, False)
    assert not stale, f"{machine}: drawn by the generator now, drop their census round trips: {sorted(stale)}"
    for dtype, record in trips.items():
        assert record["result"] in ("passed", "failed", "discarded"), (dtype, record)
        assert record["result"] == "passed" or record.get("words"), (dtype, record)


def _sample(machine: str, count: int) -> list[str]:
    """A few types of each answer, the same each run (the seed is the machine's name)."""
    rng = random.Random(machine)
    by_result: dict[str, list[str]] = {}
    for dtype, answer in sorted(_census()[machine].items()):
        if "did not answer" in answer["words"]:
            continue  # a QEMU that waits (for a chardev's peer): 20 s to find out again
        by_result.setdefault(answer["result"], []).append(dtype)
    return sorted(t for types in by_result.values() for t in rng.sample(types, min(count, len(types))))


@pytest.mark.parametrize("machine", list(MACHINES))
def test_census_still_what_qemu_says(machine: str, tmp_path: Path) -> None:
    """The recorded census against QEMU itself, on a sample of each answer (the whole census is
    `python -m tests.device_census --out ...`, about six minutes)."""
    if not have_qemu(MACHINES[machine].binary):
        pytest.skip(f"{MACHINES[machine].binary} is not installed: the census's oracle")
    for i, dtype in enumerate(_sample(machine, 2)):
        got = census_type(machine, dtype, tmp_path / f"t{i}")
        want = _census()[machine][dtype]
        assert got["result"] == want["result"], (dtype, got, want)
        if want["result"] == "create" or want["words"].startswith(("State blocked", "Migration is disabled")):
            # QEMU's refusal and its migration blockers say the same each run; how a crashing
            # source or destination ends (monitor lost, exited, its last line) is a race
            assert got["words"] == want["words"], (dtype, got, want)
