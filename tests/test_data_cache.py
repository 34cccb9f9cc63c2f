"""dtvm's parsed YAML data files in the cache (``dtvm.fileio.load_yaml``): a hit is exactly what
PyYAML makes of the same text, and a cache that is damaged, foreign or off changes nothing.

The oracle is PyYAML itself (``yaml.safe_load`` of the same text); the documents are generated
(seeded), plus every YAML data file dtvm ships.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from dtvm import fileio

ROOT = Path(__file__).resolve().parent.parent


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.choice(["", "a b", "0x10", "yes", "1.5", "é", "#x", "- y", "a: b"]) + str(rng.randrange(9))
    if kind == 1:
        return rng.randrange(-(1 << 70), 1 << 70)
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.choice([0.5, -2.25, 1e300])
    if kind == 4:
        return f"s{rng.randrange(100)}"
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{rng.randrange(50)}": _value(rng, depth + 1) for _ in range(rng.randrange(5))}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DTVM_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("DTVM_NO_CACHE", raising=False)
    return tmp_path / "yaml"


def test_generated_documents_hit_equal_pyyaml(cache: Path) -> None:
    """150 documents: the miss and the hit both equal PyYAML's reading of the text."""
    rng = random.Random(6100)
    for n in range(150):
        text = yaml.safe_dump({"doc": n, "data": _value(rng)}, allow_unicode=rng.random() < 0.5,
                              default_flow_style=rng.choice([None, False, True]))
        want = yaml.safe_load(text)
        assert fileio.load_yaml(text) == want, text
        assert fileio.load_yaml(text) == want, text  # from the cache now
    assert 0 < len(os.listdir(cache)) <= 256


def test_shipped_data_files(cache: Path) -> None:
    """Every YAML data file of dtvm's packages (machine schemas, devices, buses, machines)."""
    files = sorted((ROOT / "dtvm").rglob("*.yaml"))
    assert len(files) > 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        want = yaml.safe_load(text)
        assert fileio.load_yaml(text) == want, path
        assert fileio.load_yaml(text) == want, path


def test_damaged_foreign_or_colliding_entries_are_parsed_again(cache: Path) -> None:
    text = "a: [1, 2]\nb: {c: d}\n"
    assert fileio.load_yaml(text) == {"a": [1, 2], "b": {"c": "d"}}
    (entry,) = list(cache.iterdir())
    for junk in (b"", b"\x00garbage", entry.read_bytes()[:-3]):
        entry.write_bytes(junk)
        assert fileio.load_yaml(text) == {"a": [1, 2], "b": {"c": "d"}}
    # an entry under this text's name that holds another text (a CRC collision) is not taken
    other = "a: [1, 3]\nb: {c: d}\n"
    assert len(other) == len(text)
    fileio.load_yaml(other)
    for p in cache.iterdir():
        if p != entry:
            os.replace(p, entry)
    assert fileio.load_yaml(text) == {"a": [1, 2], "b": {"c": "d"}}


def test_timestamps_are_not_cached_but_still_read(cache: Path) -> None:
    """marshal takes no datetime: such a document is parsed every time."""
    text = "when: 2026-12-07\n"
    assert fileio.load_yaml(text) == yaml.safe_load(text)
    assert fileio.load_yaml(text) == yaml.safe_load(text)
    assert not cache.exists() or not list(cache.iterdir())


def test_off_and_unwritable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DTVM_NO_CACHE", "1")
    assert fileio.load_yaml("x: 1\n") == {"x": 1}
    monkeypatch.delenv("DTVM_NO_CACHE")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DTVM_CACHE_DIR", str(blocker))
    assert fileio.load_yaml("x: 2\n") == {"x": 2}
