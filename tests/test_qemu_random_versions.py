"""The round trip of generated configurations on QEMU 10.0 and across 7.2 and 10.0
(tests/qemu_random_versions.py), judged by both QEMUs.

On 10.0 alone: the fixed set of tests/test_qemu_random.py (the same seeds) with unpinned machine
types, every stage (describe twice, offline against 10.0's models, after a run, dtb2qemu --binary,
migrate, identical descriptions).  Across versions: q35 and pc cases with their pinned 7.2 types,
7.2 -> 10.0 and 10.0 -> 7.2 (migration completes, the same guest description on both).  A case
QEMU refuses itself (to start, or to migrate with the identical command line) is skipped with
QEMU's words; a known class is an expected failure naming it.  The default run keeps a few; the
rest is the ``versions_full`` marker (``make test-versions``); ``make check-qemu-random-versions``
runs more and prints the pass rates.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .qemu_random import fixed_cases
from .qemu_random_versions import for_mode, missing, run_versioned
from .qemugen import generate
from .test_qemu_random import _judge

BASE_SEED = int(os.environ.get("DTVM_GEN_SEED", "0")) * 1000
ON_10 = fixed_cases(24, BASE_SEED)
ACROSS = [generate(BASE_SEED + i, "q35" if i % 2 == 0 else "pc") for i in range(12)]
#: how many of each the default run keeps (one per machine on 10.0; two each way across)
QUICK_10, QUICK_ACROSS = 6, 2


def _params(cases: list[Any], quick: int) -> list[Any]:
    return [pytest.param(i, id=c.name, marks=() if i < quick else pytest.mark.versions_full)
            for i, c in enumerate(cases)]


def _run(case: Any, mode: str, tmp_path: Path) -> None:
    why = missing(case, mode)
    if why is not None:
        pytest.skip(why)
    _judge(run_versioned(case, mode, tmp_path))


@pytest.mark.parametrize("index", _params(ON_10, QUICK_10))
def test_round_trip_on_10_0(index: int, tmp_path: Path) -> None:
    _run(ON_10[index], "10.0", tmp_path)


@pytest.mark.parametrize("way", ["7.2-10.0", "10.0-7.2"])
@pytest.mark.parametrize("index", _params(ACROSS, QUICK_ACROSS))
def test_moves_across_versions(index: int, way: str, tmp_path: Path) -> None:
    _run(ACROSS[index], way, tmp_path)


#: the machines QEMU itself moves between 7.2 and 10.0 only in part (pseries 7.2 -> 10.0 with XIVE
#: and a CPU model both have) or not at all (virt-7.2, riscv64 virt): generated cases, both ways
OTHER_MACHINES = ("pseries", "aarch64-virt", "arm-virt", "riscv64-virt")
OTHERS = [generate(BASE_SEED + 500 + i, m) for i in range(4) for m in OTHER_MACHINES]


@pytest.mark.versions_full
@pytest.mark.parametrize("way", ["7.2-10.0", "10.0-7.2"])
@pytest.mark.parametrize("index", range(len(OTHERS)), ids=[c.name for c in OTHERS])
def test_refusals_across_versions_are_qemus(index: int, way: str, tmp_path: Path) -> None:
    """dtb2qemu --binary refuses exactly what QEMU cannot migrate or builds as other hardware: a
    refusal is held to QEMU failing the identical migration, or to the identical command line
    described on the target differing at the node refused (the harness does both), and an
    accepted description must migrate (never a migration QEMU then fails)."""
    case = OTHERS[index]
    why = missing(case, way)
    if why is not None:
        pytest.skip(why)
    outcome = run_versioned(case, way, tmp_path)
    if outcome.discarded is not None and outcome.discarded.startswith("start"):
        pytest.skip(f"not a valid configuration for QEMU itself: {outcome.discarded}")
    assert outcome.failed is None, f"[{outcome.failed}] {outcome.message}\n{' '.join(case.argv)}"
    assert not (outcome.discarded or "").startswith("migrate"), \
        f"dtb2qemu accepted what QEMU cannot migrate: {outcome.discarded}\n{' '.join(case.argv)}"


def test_modes_pin_and_unpin() -> None:
    """10.0 alone runs what the user wrote with the alias for the type (what 10.0 builds); across
    versions the type is pinned (an alias would mean another machine on each version)."""
    from .qemu_helpers import qemu10
    from .qemugen import Case

    case = Case("x", "q35", ["qemu-system-x86_64", "-M", "pc-q35-7.2,sata=off", "-nodefaults"])
    alias = Case("y", "pc", ["qemu-system-x86_64", "-M", "pc,usb=on"])
    ten, target, version = for_mode(case, "10.0")
    assert ten.argv == [qemu10("qemu-system-x86_64"), "-M", "q35,sata=off", "-nodefaults"]
    assert (target, version) == (qemu10("qemu-system-x86_64"), "10.0")
    up, target, version = for_mode(alias, "7.2-10.0")
    assert up.argv == ["qemu-system-x86_64", "-M", "pc-i440fx-7.2,usb=on"]
    assert (target, version) == (qemu10("qemu-system-x86_64"), "7.2")
    down, target, version = for_mode(alias, "10.0-7.2")
    assert down.argv[0] == qemu10("qemu-system-x86_64") and down.argv[2] == "pc-i440fx-7.2,usb=on"
    assert (target, version) == ("qemu-system-x86_64", "10.0")
