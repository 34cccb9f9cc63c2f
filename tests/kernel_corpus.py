"""Linux 6.1's boards and dtschema 2022.12, as scripts/kernel_schemas_oracle.sh installs them.

Shared by tests/test_kernel_schemas*.py, bench/bench_dtbs_check.py and
scripts/kernel_oracle_cache.py (not a test module). Boards
are built as the kernel's ``make dtbs`` builds them (scripts/Makefile.lib: cpp with
``-nostdinc -I scripts/dtc/include-prefixes -undef -D__DTS__``, then dtc ``-b 0 -i DIR -i
include-prefixes``), with Debian's cpp and dtc 1.6.1 (the kernel 6.1 bundles dtc 1.6.1 too),
and cached next to the oracle.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import random
import re
import resource
import subprocess
import time

ORACLE = os.environ.get("DTVM_KERNEL_ORACLE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dtvm-oracle"
)
SRC = os.path.join(ORACLE, "linux-6.1")
PROCESSED = os.path.join(SRC, "processed-schema.json")
DT_VALIDATE = os.path.join(ORACLE, "dtschema-2022.12", "bin", "dt-validate")
PREFIXES = os.path.join(SRC, "scripts", "dtc", "include-prefixes")
DTB_DIR = os.path.join(ORACLE, "dtbs")
MISSING = (
    "the kernel-schema oracle is not installed (scripts/kernel_schemas_oracle.sh, "
    "or make kernel-schemas-oracle: Debian's linux-source-6.1 and dtschema 2022.12)"
)


def available() -> bool:
    return os.path.isfile(os.path.join(SRC, ".complete")) and os.path.getsize(PROCESSED) > 0 and os.access(DT_VALIDATE, os.X_OK)


def boards(arch: str) -> list[str]:
    """Every board .dts of ARCH, relative to arch/ARCH/boot/dts, sorted."""
    top = os.path.join(SRC, "arch", arch, "boot", "dts")
    found = []
    for d, _, files in os.walk(top):
        for f in files:
            if f.endswith(".dts"):
                found.append(os.path.relpath(os.path.join(d, f), top))
    return sorted(found)


def sample(arch: str, n: int, seed: int) -> list[str]:
    """A seeded choice of N boards (all of them when N is 0 or larger than the set)."""
    every = boards(arch)
    if n <= 0 or n >= len(every):
        return every
    return sorted(random.Random(seed).sample(every, n))


def dts_path(arch: str, board: str) -> str:
    return os.path.join(SRC, "arch", arch, "boot", "dts", board)


def cpp_args(arch: str, board: str) -> list[str]:
    """``dtvm validate --cpp`` options that preprocess BOARD as the kernel does."""
    return ["--cpp", "--cpp-include", PREFIXES, "--cpp-define", "__DTS__", "-i", os.path.dirname(dts_path(arch, board)), "-i", PREFIXES]


def build(arch: str, board: str) -> str | None:
    """The board's DTB (built once, cached); None when cpp or dtc fail on it."""
    out = os.path.join(DTB_DIR, arch, board[:-4].replace("/", "__") + ".dtb")
    if os.path.isfile(out):
        return out
    if os.path.isfile(out + ".failed"):
        return None
    os.makedirs(os.path.dirname(out), exist_ok=True)
    src = dts_path(arch, board)
    pre = out + ".pp.dts"
    cpp = ["cpp", "-nostdinc", "-I", PREFIXES, "-undef", "-D__DTS__", "-x", "assembler-with-cpp", src, "-o", pre]
    dtc = ["dtc", "-q", "-O", "dtb", "-b", "0", "-i", os.path.dirname(src), "-i", PREFIXES, "-o", out + ".tmp", pre]
    ok = subprocess.run(cpp, capture_output=True).returncode == 0 and subprocess.run(dtc, capture_output=True).returncode == 0
    if os.path.exists(pre):
        os.unlink(pre)
    if not ok:
        open(out + ".failed", "w").close()
        if os.path.exists(out + ".tmp"):
            os.unlink(out + ".tmp")
        return None
    os.replace(out + ".tmp", out)
    return out


def dt_validate(dtb: str, timeout: float = 600) -> tuple[int | None, str]:
    """dt-validate's exit status (None on timeout) and its stderr, as ``make dtbs_check`` runs it."""
    return dt_validate_with(PROCESSED, dtb, timeout)


def dt_validate_with(schemas: str, dtb: str, timeout: float = 600) -> tuple[int | None, str]:
    try:
        res = subprocess.run([DT_VALIDATE, "-s", schemas, dtb], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, ""
    return res.returncode, res.stderr


def normalise(text: str) -> str:
    """dt-validate's output without what differs from run to run: the addresses of Python objects
    that three of its messages print (``<dtschema.lib.DTValidator object at 0x7ff05fdbd850>``)."""
    return re.sub(r" object at 0x[0-9a-f]+>", " object at 0x...>", text)


def crashed(rc: int | None, stderr: str) -> bool:
    """dt-validate did not finish the board (a traceback, a hang, a signal)."""
    return rc != 0 or "Traceback (most recent call last)" in stderr


# -- dt-validate's verdicts, kept on disk per board and per oracle version ------------------------
# (scripts/kernel_oracle_cache.py fills the cache at nice 19 and compares dtvm against it; the
# entries are dt-validate's own output on this machine, never written by hand)

ORDER_SEED = 20  # the fixed order boards are filled in (any prefix is a sample)


def _sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dist_version(name: str) -> str:
    """A package's version in the oracle's venv, from its dist-info directory's name."""
    venv = os.path.dirname(os.path.dirname(DT_VALIDATE))
    found = glob.glob(os.path.join(venv, "lib", "python*", "site-packages", f"{name}-*.dist-info"))
    if not found:
        return "unknown"
    return os.path.basename(found[0])[len(name) + 1 : -len(".dist-info")]


@functools.lru_cache(maxsize=1)
def oracle_key() -> str:
    """The oracle's version: what dt-validate's output depends on besides the board."""
    parts = [f"dtschema-{_dist_version('dtschema')}", f"jsonschema-{_dist_version('jsonschema')}", f"ruamel.yaml-{_dist_version('ruamel.yaml')}"]
    return "_".join(parts) + "_schemas-" + _sha(PROCESSED)[:12]


def cache_dir(arch: str) -> str:
    return os.path.join(ORACLE, "dt-validate", oracle_key(), arch)


def ordered(arch: str) -> list[str]:
    every = boards(arch)
    random.Random(ORDER_SEED).shuffle(every)
    return every


def entry_path(top: str, board: str) -> str:
    return os.path.join(top, board[:-4].replace("/", "__") + ".json")


def load_entry(top: str, arch: str, board: str) -> dict | None:
    """The cached verdict on BOARD, or None if there is none for the board's current DTB."""
    p = entry_path(top, board)
    try:
        with open(p, encoding="utf-8") as f:
            e = json.load(f)
    except (OSError, ValueError):
        return None
    if e.get("status") == "not-compiled":
        return e
    if e.get("status") == "timeout":
        return None
    dtb = build(arch, board)
    if dtb is None or _sha(dtb) != e.get("dtb_sha256"):
        return None
    e["dtb"] = dtb
    return e


def _store(top: str, board: str, entry: dict) -> None:
    p = entry_path(top, board)
    tmp = p + f".tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(entry, f, indent=1)
        f.write("\n")
    os.replace(tmp, p)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def store_verdict(top: str, arch: str, board: str, dtb: str, rc: int | None, stderr: str,
                  cpu_s: float | None = None, wall_s: float | None = None) -> dict:
    """Keep dt-validate's verdict on BOARD (its DTB at DTB) under TOP, and return the entry.

    Whoever ran dt-validate (the fill, or the dtbs_check bench on the same boards) leaves its
    output here, so no board is ever judged twice by the oracle of one version."""
    os.makedirs(top, exist_ok=True)
    entry: dict = {
        "arch": arch,
        "board": board,
        # a timeout says more about the machine's load than about dt-validate: judged again next time
        "status": "timeout" if rc is None else "crashed" if crashed(rc, stderr) else "ok",
        "dtb_sha256": _sha(dtb),
        "rc": rc,
        "stderr": stderr,
        "oracle": oracle_key(),
    }
    if cpu_s is not None:
        entry["cpu_s"] = round(cpu_s, 2)
    if wall_s is not None:
        entry["wall_s"] = round(wall_s, 2)
    _store(top, board, entry)
    entry["dtb"] = dtb
    return entry


def run_and_store(top: str, arch: str, board: str) -> dict:
    """dt-validate on BOARD now, its verdict stored under TOP (the entry is returned)."""
    os.makedirs(top, exist_ok=True)
    dtb = build(arch, board)
    if dtb is None:
        entry: dict = {"arch": arch, "board": board, "status": "not-compiled"}
        _store(top, board, entry)
        return entry
    cpu0, t0 = _children_cpu(), time.time()
    rc, stderr = dt_validate(dtb, timeout=3600)
    return store_verdict(top, arch, board, dtb, rc, stderr, _children_cpu() - cpu0, time.time() - t0)


def dt_validate_cached(arch: str, board: str) -> dict:
    """dt-validate's verdict on BOARD from the cache, run (and stored) when there is none."""
    top = cache_dir(arch)
    return load_entry(top, arch, board) or run_and_store(top, arch, board)
