"""The examples of docs/python.md, run in a directory and checked against dtc and fdtoverlay.

Used by tests/test_api_examples.py (in this checkout) and tests/test_install.py (in a fresh venv
that installed the wheel: there this file runs as a script with the docs path as argument).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def blocks(doc: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", doc, re.M | re.S)


def run_examples(doc_path: Path, workdir: Path) -> int:
    """Write board.dts, run every python block there; the number of blocks run."""
    doc = doc_path.read_text()
    (workdir / "board.dts").write_text(blocks(doc, "dts")[0])
    code = blocks(doc, "python")
    for i, block in enumerate(code):
        p = subprocess.run([sys.executable, "-c", block], cwd=workdir, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise AssertionError(f"example {i + 1} failed:\n{block}\n{p.stderr}")
    return len(code)


def tool(args: list[str], cwd: Path) -> bytes:
    return subprocess.run(args, cwd=cwd, capture_output=True, check=True, timeout=60).stdout


def check_outputs(workdir: Path) -> None:
    """What the examples wrote equals what dtc and fdtoverlay write for the same inputs."""
    w = workdir
    assert (w / "board.dtb").read_bytes() == tool(["dtc", "-q", "-O", "dtb", "board.dts"], w)
    assert (w / "board-symbols.dtb").read_bytes() == tool(["dtc", "-q", "-@", "-O", "dtb", "board.dts"], w)
    assert (w / "edited.dts").read_text().encode() == tool(["dtc", "-q", "-I", "dtb", "-O", "dts", "edited.dtb"], w)
    dtso = w / "disable.dtso"
    dtso.write_text('/dts-v1/;\n/plugin/;\n&uart0 { status = "disabled"; };\n')
    tool(["dtc", "-q", "-@", "-O", "dtb", "-o", "disable.dtbo", str(dtso)], w)
    tool(["fdtoverlay", "-i", "board-symbols.dtb", "-o", "merged.ref.dtb", "disable.dtbo"], w)
    assert (w / "merged.dtb").read_bytes() == (w / "merged.ref.dtb").read_bytes()
    # the edit itself, as fdtput makes it (a new property goes first, as libfdt adds it)
    tool(["cp", "board.dtb", "edited.ref.dtb"], w)
    tool(["fdtput", "-t", "s", "edited.ref.dtb", "/serial@9000000", "status", "okay"], w)
    ref = tool(["dtc", "-q", "-I", "dtb", "-O", "dts", "edited.ref.dtb"], w)
    mine = tool(["dtc", "-q", "-I", "dtb", "-O", "dts", "edited.dtb"], w)
    assert sorted(ref.splitlines()) == sorted(mine.splitlines())


if __name__ == "__main__":
    n = run_examples(Path(sys.argv[1]), Path(sys.argv[2]))
    if len(sys.argv) > 3 and sys.argv[3] == "--check":
        check_outputs(Path(sys.argv[2]))
    print(f"{n} examples ran")
