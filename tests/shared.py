"""Where ../shared (peers' suites, the kernel corpus) is: beside the clone, as CI has it.

A git worktree lives elsewhere than its repository, so the main checkout's
parent (found through git's common directory) is tried too; DTVM_SHARED
overrides both.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path | None:
    """The shared/ directory, or None when it is not there (the tests that need it then skip)."""
    candidates = []
    if os.environ.get("DTVM_SHARED"):
        candidates.append(Path(os.environ["DTVM_SHARED"]))
    candidates.append(REPO.parent / "shared")
    try:
        common = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=REPO, capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()
    except OSError:
        common = ""
    if common:
        candidates.append(Path(common).parent.parent / "shared")
    for c in candidates:
        if c.is_dir():
            return c
    return None
