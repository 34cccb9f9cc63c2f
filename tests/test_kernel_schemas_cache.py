"""The resumable dt-validate cache (scripts/kernel_oracle_cache.py, tests/kernel_corpus.py).

What is held here is the bookkeeping, not the findings (those are held to dt-validate itself by
test_kernel_schemas*.py): a board judged once is never run again by the same oracle version, a
board whose DTB changed is, and the key changes with the oracle. dt-validate is replaced by a
counter so that this costs milliseconds; the boards and their DTBs are the real ones.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests import kernel_corpus as kc

pytestmark = pytest.mark.skipif(not kc.available(), reason=kc.MISSING)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    calls: list[str] = []

    def dt_validate(dtb: str, timeout: float = 600) -> tuple[int | None, str]:
        calls.append(dtb)
        return 0, f"{dtb}: node: message {len(calls)}\n\tFrom schema: /x.yaml\n"

    monkeypatch.setattr(kc, "dt_validate", dt_validate)
    monkeypatch.setattr(kc, "cache_dir", lambda arch: str(tmp_path / "cache" / arch))
    return calls


def test_a_board_is_judged_once(fake, tmp_path) -> None:
    boards = kc.ordered("arm64")[:2]
    first = [kc.dt_validate_cached("arm64", b) for b in boards]
    assert len(fake) == 2 and all(e["status"] == "ok" for e in first)
    again = [kc.dt_validate_cached("arm64", b) for b in boards]
    assert len(fake) == 2  # from the cache
    assert [e["stderr"] for e in again] == [e["stderr"] for e in first]
    stored = json.loads((tmp_path / "cache" / "arm64" / (boards[0][:-4].replace("/", "__") + ".json")).read_text())
    assert stored["oracle"] == kc.oracle_key() and stored["board"] == boards[0]


def test_a_changed_dtb_is_judged_again(fake, tmp_path, monkeypatch) -> None:
    board = kc.ordered("arm64")[0]
    real = kc.build("arm64", board)
    assert real is not None
    copy = tmp_path / "board.dtb"
    shutil.copy(real, copy)
    monkeypatch.setattr(kc, "build", lambda arch, b: str(copy))
    kc.dt_validate_cached("arm64", board)
    kc.dt_validate_cached("arm64", board)
    assert len(fake) == 1
    with open(copy, "ab") as f:
        f.write(b"\0")  # another DTB for the same board: the old verdict is not about it
    kc.dt_validate_cached("arm64", board)
    assert len(fake) == 2


def test_the_key_names_the_oracle() -> None:
    key = kc.oracle_key()
    assert key.startswith("dtschema-2022.12_jsonschema-4.17.3_ruamel.yaml-0.17.40_schemas-")
    assert os.path.basename(os.path.dirname(kc.cache_dir("arm64"))) == key
