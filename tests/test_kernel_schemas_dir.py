"""`--schemas DIR` on a directory of YAML bindings without processed-schema.json.

dtvm runs dtschema's dt-mk-schema on it once (``$DTVM_DT_MK_SCHEMA`` or PATH) and keeps the output
in its cache. Oracle: dt-validate given the same directory (``dt-validate -s DIR``, which processes
the YAML itself), byte for byte, on seeded subsets of Linux 6.1's bindings (a few subsystem
directories: dt-validate is fast on a small rule set) and seeded boards.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys

import pytest

from tests import kernel_corpus as kc

pytestmark = pytest.mark.skipif(not kc.available(), reason=kc.MISSING)

SEED = int(os.environ.get("DTVM_KERNEL_SEED", "20"))
BINDINGS = os.path.join(kc.SRC, "Documentation", "devicetree", "bindings")
DT_MK_SCHEMA = os.path.join(os.path.dirname(kc.DT_VALIDATE), "dt-mk-schema")


def subset(tmp_path, seed: int, n: int = 4) -> str:
    """A copy of N seeded subsystem directories of the kernel's bindings."""
    subs = sorted(d for d in os.listdir(BINDINGS) if os.path.isdir(os.path.join(BINDINGS, d)))
    out = tmp_path / f"bindings{seed}"
    for d in random.Random(seed).sample(subs, n):
        shutil.copytree(os.path.join(BINDINGS, d), out / d)
    return str(out)


def dtvm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvm", "validate", *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, **env})


def boards(n: int, seed: int) -> list[str]:
    out = []
    for b in kc.sample("arm64", n * 2, seed):
        d = kc.build("arm64", b)
        if d is not None:
            out.append(d)
        if len(out) == n:
            break
    return out


def test_a_yaml_directory_gives_dt_validates_findings(tmp_path) -> None:
    env = {"DTVM_DT_MK_SCHEMA": DT_MK_SCHEMA, "DTVM_CACHE_DIR": str(tmp_path / "cache")}
    compared = findings = 0
    for seed in (SEED, SEED + 1):
        schemas = subset(tmp_path, seed)
        for dtb in boards(2, seed):
            rc, want = kc.dt_validate_with(schemas, dtb)
            if kc.crashed(rc, want):
                continue
            res = dtvm(env, "--schemas", schemas, "--format", "dt-validate", dtb)
            assert res.returncode in (0, 1), res.stderr
            assert kc.normalise(res.stdout) == kc.normalise(want), (schemas, dtb)
            compared += 1
            findings += want.count("\tFrom schema: ")
    assert compared, "dt-validate crashed on every board and subset"
    assert findings, "no finding to compare: choose other seeds"


def test_processed_once_and_kept(tmp_path) -> None:
    schemas = subset(tmp_path, SEED + 2, 2)
    cache = tmp_path / "cache"
    env = {"DTVM_DT_MK_SCHEMA": DT_MK_SCHEMA, "DTVM_CACHE_DIR": str(cache)}
    dtb = boards(1, SEED)[0]
    first = dtvm(env, "--schemas", schemas, "--format", "dt-validate", dtb)
    (kept,) = os.listdir(cache / "kernel-schemas")
    stamp = os.stat(cache / "kernel-schemas" / kept).st_mtime_ns
    # the second run does not process again: the kept output is untouched
    again = dtvm(env, "--schemas", schemas, "--format", "dt-validate", dtb)
    assert (again.returncode, again.stdout) == (first.returncode, first.stdout)
    assert os.stat(cache / "kernel-schemas" / kept).st_mtime_ns == stamp
    # a changed YAML file is processed again (here by a processor that fails: one line, exit 2)
    failing = tmp_path / "fails"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    some = next(os.path.join(d, f) for d, _, fs in os.walk(schemas) for f in sorted(fs) if f.endswith(".yaml"))
    with open(some, "a") as f:
        f.write("\n")
    res = dtvm({**env, "DTVM_DT_MK_SCHEMA": str(failing)}, "--schemas", schemas, dtb)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and "dt-mk-schema could not process" in res.stderr and schemas in res.stderr


def test_without_cache_leaves_nothing(tmp_path) -> None:
    schemas = subset(tmp_path, SEED + 3, 2)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dtb = boards(1, SEED)[0]
    res = dtvm({"DTVM_DT_MK_SCHEMA": DT_MK_SCHEMA, "DTVM_NO_CACHE": "1", "TMPDIR": str(tmp)}, "--schemas", schemas, "--format", "dt-validate", dtb)
    assert res.returncode in (0, 1), res.stderr
    assert os.listdir(tmp) == []


def test_without_the_processor_says_what_to_do(tmp_path) -> None:
    schemas = subset(tmp_path, SEED, 1)
    res = dtvm({"DTVM_DT_MK_SCHEMA": str(tmp_path / "nowhere"), "PATH": "/usr/bin:/bin"}, "--schemas", schemas, boards(1, SEED)[0])
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "dt-mk-schema -j" in res.stderr and "processed-schema.json" in res.stderr
