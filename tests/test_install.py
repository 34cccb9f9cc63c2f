"""The wheel installs into a fresh venv and works there: the CLI, the API examples, dtvm.pylibfdt.

What a user does first: build the wheel, ``python3 -m venv``, ``pip install dist/*.whl`` (the
dependencies come from the package index), then run ``dtvm dtc``, ``dtvm validate`` and the
examples of docs/python.md, whose outputs are compared with dtc's and fdtoverlay's.  It runs
from a copy of nothing but the wheel, so a module or data file missing from the wheel fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared import REPO

pytestmark = pytest.mark.slow


def sh(args: list[str], cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    p = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert p.returncode == 0, f"{args}:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.mark.skipif(shutil.which("dtc") is None or shutil.which("fdtoverlay") is None, reason="dtc and fdtoverlay (Debian device-tree-compiler) are the oracles and are not installed")
def test_wheel_installs_and_runs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)])
    wheels = list(dist.glob("dtvm-*.whl"))
    assert len(wheels) == 1
    venv = tmp_path / "venv"
    sh([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    sh([str(py), "-m", "pip", "install", "-q", str(wheels[0])])
    work = tmp_path / "work"
    work.mkdir()
    # the installed package, not the checkout
    where = sh([str(py), "-c", "import dtvm; print(dtvm.__file__)"], cwd=work).stdout.strip()
    assert where.startswith(str(venv)), where
    dtvm = str(venv / "bin" / "dtvm")
    assert sh([dtvm, "dtc", "--version"], cwd=work).stdout.startswith("Version: DTC 1.6.1")
    (work / "t.dts").write_text('/dts-v1/;\n/ { compatible = "dtvm,t"; serial@0 { compatible = "ns16550a"; reg = <0 8>; }; };\n')
    sh([dtvm, "dtc", "-q", "-O", "dtb", "-o", "t.dtb", "t.dts"], cwd=work)
    ref = subprocess.run(["dtc", "-q", "-O", "dtb", "t.dts"], cwd=work, capture_output=True, check=True).stdout
    assert (work / "t.dtb").read_bytes() == ref
    v = subprocess.run([dtvm, "validate", "-q", "t.dtb"], cwd=work, capture_output=True, text=True, timeout=120)
    assert v.returncode in (0, 1) and "Traceback" not in v.stderr, v.stderr
    # the documentation's examples, in the fresh venv, checked against dtc and fdtoverlay
    shutil.copy(REPO / "tests" / "api_examples.py", work / "api_examples.py")
    ex = tmp_path / "examples"
    ex.mkdir()
    out = sh([str(py), str(work / "api_examples.py"), str(REPO / "docs" / "python.md"), str(ex), "--check"], cwd=work)
    assert "examples ran" in out.stdout
