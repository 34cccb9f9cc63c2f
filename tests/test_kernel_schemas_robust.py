"""Untrusted blobs against the kernel schemas: damaged property values never escape as a traceback.

Seeded mutations (DTVM_KERNEL_FUZZ_SEED) of real boards' property values: empty, truncated,
lengthened, non-ASCII strings, phandles that name no node, huge cell counts. Each case ends in
findings, or in the one-line "dtschema cannot decode" error (where dtschema's decoder raises and
dt-validate dies), or in schema problems; never in an exception.
"""

from __future__ import annotations

import os
import random

import pytest

from tests import kernel_corpus as kc

pytestmark = pytest.mark.skipif(not kc.available(), reason=kc.MISSING)

SEED = int(os.environ.get("DTVM_KERNEL_FUZZ_SEED", "4711"))
CASES = int(os.environ.get("DTVM_KERNEL_FUZZ_CASES", "80"))


def _mutate(rnd: random.Random, value: bytes) -> bytes:
    k = rnd.randrange(7)
    if k == 0:
        return b""
    if k == 1:
        return value[: rnd.randrange(len(value) + 1)]
    if k == 2:
        return value + bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 9)))
    if k == 3:
        return bytes(rnd.randrange(128, 256) for _ in range(rnd.randrange(1, 6))) + b"\0"
    if k == 4:
        return b"\xff\xff\xff\xff" * rnd.randrange(1, 4)
    if k == 5:
        return (0x7FFF).to_bytes(4, "big") + value[4:]
    return bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 24)))


def test_damaged_values_never_raise() -> None:
    from dtvm.bindings.kload import load_kernel_schemas
    from dtvm.bindings.kvalidate import validate_kernel
    from dtvm.dt.dtb import read_dtb

    schemas = load_kernel_schemas(kc.PROCESSED)
    rnd = random.Random(SEED)
    blobs = [d for d in (kc.build("arm64", b) for b in kc.sample("arm64", 6, SEED)) if d]
    assert blobs
    outcomes = {"findings": 0, "crash": 0, "problems": 0}
    for _ in range(CASES):
        path = rnd.choice(blobs)
        with open(path, "rb") as f:
            dt = read_dtb(f.read(), path)
        nodes = list(dt.root.walk())
        for _ in range(rnd.randrange(1, 6)):
            node = rnd.choice(nodes)
            if node.props:
                prop = rnd.choice(node.props)
                prop.value = _mutate(rnd, prop.value)
        rep = validate_kernel(dt, schemas, path)
        if rep.crash:
            assert rep.crash.count("\n") == 0 and rep.crash.startswith(path)
            outcomes["crash"] += 1
        elif rep.problems:
            assert all(p.count("\n") == 0 for p in rep.problems)
            outcomes["problems"] += 1
        else:
            outcomes["findings"] += 1
    print(f"\n{CASES} damaged blobs: {outcomes}")
    assert outcomes["findings"] and outcomes["crash"]
