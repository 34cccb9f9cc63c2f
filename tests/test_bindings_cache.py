"""The binding cache (dtvm/bindings/cache.py) and the click-free ``dtvm validate`` path.

The cache must never change a result: a cached set validates exactly as the YAML does, an
edited, added or removed binding is seen at once, and a damaged cache file is ignored.
No timing here; bench/bench_validate.py measures what the cache buys.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dtvm.bindings import cache, default_dirs, load_bindings, validate_tree
from dtvm.bindings.cache import CodeChunk, cache_path, dump_set, load_cached
from dtvm.bindings.load import Regex, binding_files
from dtvm.cli.validate import load_input, run, validate_cmd

ROOT = Path(__file__).resolve().parent.parent
QEMU_DT = ROOT / "fixtures" / "qemu-dt"
BLOBS = sorted(QEMU_DT.glob("*.dtb"))
VIRT = ROOT / "fixtures" / "bindings" / "virt.dts"
PAST = 1_600_000_000 * 10**9  # 2020, well outside the racy window
RACY_NS = cache.RACY_NS  # before any test patches it


def age(root: Path, ns: int = PAST) -> None:
    """Give every file and directory under ``root`` the same old mtime."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(dirpath, name), ns=(ns, ns))
        os.utime(dirpath, ns=(ns, ns))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A private copy of the shipped bindings (old mtimes) and a private cache directory."""
    root = tmp_path / "bindings"
    shutil.copytree(ROOT / "bindings", root)
    age(root)
    cdir = tmp_path / "cache"
    monkeypatch.setenv("DTVM_CACHE_DIR", str(cdir))
    monkeypatch.delenv("DTVM_NO_CACHE", raising=False)
    monkeypatch.setattr(cache, "RACY_NS", 0)  # the racy rule has its own test
    return str(root), cdir


class Counter:
    """Counts YAML loads behind load_cached (a cache hit makes none)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        real = cache.load_yaml

        def counting(dirs: list[str]):
            self.n += 1
            return real(dirs)

        monkeypatch.setattr(cache, "load_yaml", counting)


def broken_trees(tmp_path: Path) -> list[Path]:
    """A few trees with findings (so the per-property path runs too)."""
    text = VIRT.read_text()
    out = []
    for i, (old, new) in enumerate(
        [
            ('device_type = "memory";', 'device_type = "ram"; bogus;'),
            ('clock-names = "uartclk", "apb_pclk";', 'clock-names = "uartclk", "apb", "x";'),
            ("#interrupt-cells = <3>;", "#interrupt-cells = <2>; interrupts = <1 9 4>;"),
            ("gic: intc@8000000 {", "gic: gic@8000000 {"),
        ]
    ):
        assert old in text, old
        p = tmp_path / f"broken{i}.dts"
        p.write_text(text.replace(old, new, 1))
        out.append(p)
    return out


def outcome(bset, paths: list[Path]) -> list[tuple[str, ...]]:
    """Every finding and unchecked node of every tree, as text."""
    out = []
    for p in paths:
        res = validate_tree(load_input(str(p)), bset, str(p))
        out.append(tuple(f.format() for f in res.findings) + tuple(u.format() for u in res.unchecked))
    return out


def is_hit(bset) -> bool:
    """A set served from the cache file reads its checks' code lazily from it."""
    return all(isinstance(p.check_code, CodeChunk) for b in bset.bindings() for p in b.spec.props.values())


# -- the cache gives what the YAML gives ----------------------------------------------------
def test_cached_set_is_the_loaded_set(env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _cdir = env
    loads = Counter(monkeypatch)
    first = load_cached([root])  # builds and writes
    assert loads.n == 1 and Path(cache_path([root])).is_file()
    second = load_cached([root])
    assert loads.n == 1 and is_hit(second)
    fresh = load_bindings([root])
    assert dump_set(second) == dump_set(fresh) == dump_set(first)
    trees = [*BLOBS, *broken_trees(tmp_path)]
    want = outcome(fresh, trees)
    assert outcome(second, trees) == want
    assert any(want[-1]) and all(w == () for w in want[: len(BLOBS)])  # findings only where broken


def test_load_bindings_cache_flag(env) -> None:
    root, _cdir = env
    assert dump_set(load_bindings([root], cache=True)) == dump_set(load_bindings([root]))
    assert is_hit(load_bindings([root], cache=True))


# -- staleness ------------------------------------------------------------------------------
def test_editing_a_binding_invalidates(env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _cdir = env
    assert is_hit(load_cached([root])) is False
    assert is_hit(load_cached([root]))
    pl011 = Path(root) / "serial" / "arm,pl011.yaml"
    text = pl011.read_text()
    # same size, same mtime tick impossible to tell apart is the racy rule's business; an edit
    # gets a new mtime (here, explicitly, a different old one)
    edited = text.replace("const: apb_pclk", "const: apb_pclX")
    assert edited != text and len(edited) == len(text)
    pl011.write_text(edited)
    os.utime(pl011, ns=(PAST + 10**9, PAST + 10**9))
    loads = Counter(monkeypatch)
    after = load_cached([root])
    assert loads.n == 1 and not is_hit(after)
    blob = QEMU_DT / "aarch64-virt-default.dtb"
    got = outcome(after, [blob])[0]
    assert any("apb_pclX" in line for line in got), got
    again = load_cached([root])  # rewritten with the edit
    assert loads.n == 1 and is_hit(again)
    assert outcome(again, [blob])[0] == got


def test_adding_or_removing_a_binding_invalidates(env, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _cdir = env
    load_cached([root])
    assert is_hit(load_cached([root]))
    new = Path(root) / "misc" / "vendor,mystery.yaml"
    new.parent.mkdir()
    new.write_text('compatible: ["vendor,mystery"]\nproperties:\n  compatible: {}\n')
    got = load_cached([root])
    assert not is_hit(got) and "vendor,mystery" in got.by_compatible
    assert is_hit(load_cached([root]))
    new.unlink()
    got = load_cached([root])
    assert not is_hit(got) and "vendor,mystery" not in got.by_compatible


def test_fresh_files_are_not_cached(env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file modified within the racy window could change again unseen: no cache yet."""
    root, _cdir = env
    monkeypatch.setattr(cache, "RACY_NS", 2_000_000_000)
    pl011 = Path(root) / "serial" / "arm,pl011.yaml"
    pl011.write_text(pl011.read_text())  # changed: now
    load_cached([root])
    assert not Path(cache_path([root])).exists()
    os.utime(pl011, ns=(PAST, PAST))  # an old mtime does not make it old: its ctime is now
    load_cached([root])
    assert not Path(cache_path([root])).exists()
    later = time.time_ns() + 3 * 10**9
    monkeypatch.setattr(cache, "_now_ns", lambda: later)
    load_cached([root])
    assert Path(cache_path([root])).is_file()


def test_mtime_set_back_still_invalidates(env) -> None:
    """``cp -p`` or ``touch -d`` can put an mtime back; the ctime still moves."""
    root, _cdir = env
    load_cached([root])
    pl011 = Path(root) / "serial" / "arm,pl011.yaml"
    st = pl011.stat()
    text = pl011.read_text()
    edited = text.replace("const: apb_pclk", "const: apb_pclX")
    time.sleep(0.02)  # past the filesystem's timestamp tick
    pl011.write_text(edited)
    os.utime(pl011, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert pl011.stat().st_mtime_ns == st.st_mtime_ns and pl011.stat().st_size == st.st_size
    got = load_cached([root])
    assert not is_hit(got)
    assert any("apb_pclX" in line for line in outcome(got, [QEMU_DT / "aarch64-virt-default.dtb"])[0])


# -- damage ---------------------------------------------------------------------------------
def _index_end(raw: bytes) -> int:
    n = len(cache.MAGIC)
    return cache._HEAD + int.from_bytes(raw[n : n + 4], "big")


CORRUPTIONS = {
    "empty": lambda raw: b"",
    "truncated": lambda raw: raw[: len(raw) // 3],
    "garbage": lambda raw: os.urandom(len(raw)),
    "bad magic": lambda raw: b"X" + raw[1:],
    "index byte flipped": lambda raw: raw[:200] + bytes([raw[200] ^ 0x55]) + raw[201:],
    "index length wrong": lambda raw: raw[: len(cache.MAGIC)] + (10**6).to_bytes(4, "big") + raw[len(cache.MAGIC) + 4 :],
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_cache_is_ignored_and_rebuilt(env, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _cdir = env
    path = Path(cache_path([root]))
    want = outcome(load_bindings([root]), [*BLOBS[:3], *broken_trees(tmp_path)])
    load_cached([root])
    path.write_bytes(CORRUPTIONS[kind](path.read_bytes()))
    loads = Counter(monkeypatch)
    got = load_cached([root])
    assert loads.n == 1 and not is_hit(got)
    assert outcome(got, [*BLOBS[:3], *broken_trees(tmp_path)]) == want
    assert is_hit(load_cached([root]))  # rebuilt


def test_corrupt_check_code_is_regenerated(env, tmp_path: Path) -> None:
    """Code chunks are checked when read: a damaged one is generated again, the file dropped."""
    root, _cdir = env
    path = Path(cache_path([root]))
    trees = [*BLOBS, *broken_trees(tmp_path)]
    want = outcome(load_bindings([root]), trees)
    load_cached([root])
    raw = bytearray(path.read_bytes())
    start = _index_end(bytes(raw))
    for i in range(start, len(raw), 97):  # every chunk gets hit
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    bset = load_cached([root])
    assert is_hit(bset)  # the index is intact
    assert outcome(bset, trees) == want
    assert not path.exists()  # dropped: the next run rebuilds it
    assert not is_hit(load_cached([root])) and path.is_file()


def test_another_directory_s_cache_is_not_used(env, tmp_path: Path) -> None:
    root, _cdir = env
    other = tmp_path / "other" / "bindings"
    shutil.copytree(root, other)
    (other / "serial" / "arm,pl011.yaml").unlink()
    age(other.parent)
    load_cached([str(other)])
    shutil.copy(cache_path([str(other)]), cache_path([root]))
    got = load_cached([root])
    assert not is_hit(got) and "arm,pl011" in got.by_compatible


def test_replaced_cache_file_keeps_serving_an_open_set(env) -> None:
    """Readers hold the file they checked: a rebuild by another process (rename) does not disturb them."""
    root, _cdir = env
    load_cached([root])
    old = load_cached([root])
    ino = os.stat(cache_path([root])).st_ino
    pl011 = Path(root) / "serial" / "arm,pl011.yaml"
    pl011.write_text(pl011.read_text() + "\n")
    load_cached([root])  # rewrites: a new file renamed over the old one
    assert os.stat(cache_path([root])).st_ino != ino
    assert not [n for n in os.listdir(os.path.dirname(cache_path([root]))) if n.endswith(".tmp")]
    assert outcome(old, BLOBS) == [()] * len(BLOBS)  # its chunks still read from the old file


def test_no_cache(env, monkeypatch: pytest.MonkeyPatch) -> None:
    root, cdir = env
    monkeypatch.setenv("DTVM_NO_CACHE", "1")
    assert cache_path([root]) is None
    bset = load_cached([root])
    assert not is_hit(bset) and not cdir.exists()


def test_unwritable_cache_dir_is_harmless(env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _cdir = env
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("DTVM_CACHE_DIR", str(blocker / "sub"))
    assert outcome(load_cached([root]), BLOBS[:2]) == [(), ()]


def test_cache_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DTVM_NO_CACHE", raising=False)
    monkeypatch.delenv("DTVM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == str(tmp_path / "dtvm")
    monkeypatch.setenv("DTVM_NO_CACHE", "0")
    assert cache.cache_dir() == str(tmp_path / "dtvm")
    monkeypatch.setenv("DTVM_CACHE_DIR", str(tmp_path / "x"))
    assert cache.cache_dir() == str(tmp_path / "x")
    monkeypatch.setenv("DTVM_NO_CACHE", "1")
    assert cache.cache_dir() is None


# -- what a warm run loads ------------------------------------------------------------------
def test_warm_run_imports_neither_yaml_nor_fastjsonschema_nor_click(tmp_path: Path) -> None:
    """``dtvm validate`` with the shipped bindings, cached: no PyYAML, fastjsonschema or click.

    Over every QEMU tree: a clean node must pass its whole-node validator, whose verdict
    agrees with the per-property checks (else fastjsonschema is imported to find out).
    """
    blobs = [str(b) for b in BLOBS]
    fp = cache.fingerprint(default_dirs())
    assert fp is not None
    changed = fp[1]  # the latest change among the files the cache depends on
    time.sleep(max(0.0, (changed + RACY_NS - time.time_ns()) / 1e9))  # just edited: not cached yet
    probe = textwrap.dedent(
        f"""
        import sys
        from dtvm.cli.validate import run
        rc = run(["--strict", *{blobs!r}])
        print(" ".join(m for m in ("yaml", "fastjsonschema", "click") if m in sys.modules))
        sys.exit(rc)
        """
    )
    environ = {k: v for k, v in os.environ.items() if k != "DTVM_NO_CACHE"}
    environ["DTVM_CACHE_DIR"] = str(tmp_path / "cache")
    cold = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=environ, cwd=tmp_path)
    assert cold.returncode == 0, cold.stderr
    assert "yaml" in cold.stdout and len(os.listdir(tmp_path / "cache")) == 1
    warm = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=environ, cwd=tmp_path)
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.strip() == "", warm.stdout


# -- regular expressions without re.compile --------------------------------------------------
def _patterns() -> list[str]:
    pats = set()
    for _rel, path in binding_files(str(ROOT / "bindings")):
        text = Path(path).read_text()
        for m in re.finditer(r'(?:node-name|path|pattern)\s*:\s*"((?:[^"\\]|\\.)*)"', text):
            pats.add(m.group(1).encode().decode("unicode_escape"))
        for m in re.finditer(r'^\s+"(\^(?:[^"\\]|\\.)*)"\s*:', text, re.M):
            pats.add(m.group(1).encode().decode("unicode_escape"))
    pats |= {"", "^", "$", "^$", "abc", "^abc", "abc$", "^a-b$", "^ab*c", "^ab+c", "^ab?c", "^ab{2}c",
             "^abc|x", "x|^abc", "^(a|b)c", "^a[|]b", "^a[]|]b", "^a\\|b", "^a(?:b|c)d", "^/x/[^/]+$"}
    return sorted(pats)


def _texts() -> list[str]:
    out = {"", "\n", "a", "abc", "abc\n", "xabc", "abcx", "abbc", "ac", "a|b", "a-b", "/", "/\n", "/chosen",
           "/chosen\n", "/chosenx", "x/chosen", "/cpus", "/cpus/cpu@0", "/cpus/cpu-map/socket0", "psci",
           "memory@40000000", "/memory@40000000", "serial@9000000", "pl011@9000000", "/x/y"}
    for blob in BLOBS[::4]:
        dt = load_input(str(blob))
        for node in dt.root.walk():
            out.add(node.name)
            out.add(node.path)
            out.update(p.name for p in node.props)
    return sorted(out)


def test_regex_matches_like_re() -> None:
    texts = _texts()
    for pat in _patterns():
        rx = Regex(pat)
        for text in texts:
            assert rx.search(text) == (re.search(pat, text) is not None), (pat, text)
            assert rx.fullmatch(text) == (re.fullmatch(pat, text) is not None), (pat, text)


# -- the click-free command line --------------------------------------------------------------
def _both(argv: list[str]) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    r = CliRunner().invoke(validate_cmd, argv, catch_exceptions=False, prog_name="dtvm validate")
    click_side = (r.exit_code, r.stdout, r.stderr)
    out, err = io.StringIO(), io.StringIO()
    real = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    # CliRunner wraps help at 80 columns whatever the terminal; run() (which hands --help to the
    # same click command) would wrap at the terminal's width: hold both to CliRunner's, so that
    # the comparison is of the two parsers, not of the terminal the tests run in
    import click.formatting

    width = click.formatting.FORCED_WIDTH
    click.formatting.FORCED_WIDTH = 80
    try:
        code = run(argv)
    finally:
        sys.stdout, sys.stderr = real
        click.formatting.FORCED_WIDTH = width
    return click_side, (code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize(
    "argv",
    [
        ["--strict", "-q", "{blob}"],
        ["{blob}", "--strict"],
        ["--format=json", "{blob}", "{bad}"],
        ["--format", "json", "-q", "{bad}"],
        ["-q", "{bad}", "{missing}"],
        ["-j1", "--include", "{dir}", "{bad}"],
        ["--jobs=1", "-i{dir}", "--", "{bad}"],
        ["--bindings", "{bindings}", "--strict", "{blob}"],
        ["--bindings={nodir}", "{blob}"],
    ],
)
def test_run_matches_click(env, tmp_path: Path, argv: list[str]) -> None:
    root, _cdir = env
    bad = broken_trees(tmp_path)[0]
    subst = {"blob": str(BLOBS[0]), "bad": str(bad), "missing": str(tmp_path / "missing.dtb"), "dir": str(tmp_path),
             "bindings": root, "nodir": str(tmp_path / "nodir")}
    argv = [a.format(**subst) for a in argv]
    click_side, run_side = _both(argv)
    assert run_side == click_side


@pytest.mark.parametrize(
    "argv",
    [["--help"], [], ["--format", "xml", "x.dtb"], ["-j", "two", "x.dtb"], ["-qj2"], ["--strict=1", "x.dtb"],
     ["--bindings", str(VIRT), "x.dtb"], ["--bogus", "x.dtb"]],
)
def test_run_leaves_the_rest_to_click(argv: list[str]) -> None:
    """What the fast parser does not take goes to click, which prints usage or help."""
    click_side, run_side = _both(argv)
    assert run_side[0] == click_side[0] and click_side[0] in (0, 2)
    assert run_side == click_side
