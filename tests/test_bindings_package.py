"""The binding documents ship inside the wheel (as ``dtvm/_bindings``), and an installed dtvm finds them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOB = ROOT / "fixtures" / "qemu-dt" / "ppc-ppce500-default.dtb"


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def test_pyproject_lists_every_package() -> None:
    """The package list is explicit (for the dtvm._bindings mapping): it must not miss one.

    A package is any directory under dtvm/ with Python files (dtvm/dts has no __init__.py).
    """
    st = _pyproject()["tool"]["setuptools"]
    on_disk = {
        ".".join(Path(dirpath).relative_to(ROOT).parts)
        for dirpath, _dirs, files in os.walk(ROOT / "dtvm")
        if any(f.endswith(".py") for f in files) and "__pycache__" not in dirpath
    }
    assert set(st["packages"]) == on_disk | {"dtvm._bindings"}
    assert st["package-dir"] == {"dtvm._bindings": "bindings"}
    assert st["package-data"]["dtvm._bindings"] == ["**/*.yaml"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel --no-deps`` of a copy of the sources (the checkout is left alone)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("dtvm", "bindings"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    out = tmp / "whl"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0 and ("No matching distribution" in r.stderr or "Could not find a version" in r.stderr):
        pytest.skip(f"cannot get the build requirements: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("dtvm-*.whl")
    return whl


def test_wheel_holds_every_binding(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        shipped = sorted(ROOT.joinpath("bindings").rglob("*.yaml"))
        assert len(shipped) > 80
        for path in shipped:
            rel = path.relative_to(ROOT / "bindings").as_posix()
            assert z.read(f"dtvm/_bindings/{rel}") == path.read_bytes(), rel
        assert "dtvm/bindings/format.schema.yaml" in names
        assert "dtvm/py.typed" in names


def test_installed_wheel_finds_its_bindings(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site), "DTVM_CACHE_DIR": str(tmp_path / "cache")}
    probe = "import dtvm, dtvm.bindings.load as l; print(dtvm.__file__); print(l.default_dirs()[0])"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    module, dirs = r.stdout.splitlines()
    assert os.path.realpath(module) == os.path.realpath(site / "dtvm" / "__init__.py")
    assert os.path.realpath(dirs) == os.path.realpath(site / "dtvm" / "_bindings")
    r = subprocess.run(
        [sys.executable, "-m", "dtvm", "validate", "--strict", str(BLOB)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert r.returncode == 0, r.stdout + r.stderr
