"""kengine/kcompile against jsonschema 4.17.3 itself, on seeded generated schemas and instances.

The boards exercise the schemas the kernel has; this exercises the keywords in combinations the
boards may not reach. Oracle: dtschema 2022.12's venv (jsonschema 4.17.3's Draft 2019-09 validator
and dtschema's ``format_error``). For each case, dtvm's messages (formatted as dt-validate formats
them) must equal the oracle's, in order, and the compiled yes/no closure must say "valid" exactly
when the oracle yields no error. DTVM_KERNEL_GEN_SEED and DTVM_KERNEL_GEN_CASES move it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from typing import Any

import pytest

from tests import kernel_corpus as kc

ORACLE_PY = os.path.join(kc.ORACLE, "dtschema-2022.12", "bin", "python")
pytestmark = pytest.mark.skipif(not os.access(ORACLE_PY, os.X_OK), reason=kc.MISSING)

SEED = int(os.environ.get("DTVM_KERNEL_GEN_SEED", "2022"))
CASES = int(os.environ.get("DTVM_KERNEL_GEN_CASES", "600"))
NAMES = ["a", "b", "reg", "compatible", "x-y", "status", "#size-cells", "n1"]
PATTERNS = ["^a", "b$", "-", "^#", "[0-9]$", "^x"]

# what the oracle runs: every case's errors, formatted by dtschema's format_error
ORACLE_SCRIPT = r"""
import json, sys
import jsonschema, dtschema
cases = json.load(open(sys.argv[1]))
out = []
for schema, inst in cases:
    v = jsonschema.Draft201909Validator(schema)
    try:
        errs = [dtschema.format_error("t.dtb", e, nodename="n") for e in v.iter_errors(inst)]
    except Exception as exc:  # the oracle itself fails on this case
        errs = None
    out.append(errs)
json.dump(out, sys.stdout)
"""


class Gen:
    def __init__(self, rnd: random.Random) -> None:
        self.r = rnd

    def value(self, depth: int = 0) -> Any:
        r = self.r
        k = r.randrange(7 if depth < 2 else 4)
        if k == 0:
            return r.choice([0, 1, 2, 7, -3, 4096])
        if k == 1:
            return r.choice(["a", "okay", "disabled", "foo,bar", "x1", ""])
        if k == 2:
            return r.choice([True, False])
        if k == 3:
            return [r.choice([0, 1, 5, 0xFFFFFFFF]) for _ in range(r.randrange(4))]
        if k == 4:
            return [[r.randrange(8) for _ in range(r.randrange(1, 4))] for _ in range(r.randrange(3))]
        if k == 5:
            return [r.choice(["a", "b", "foo,bar"]) for _ in range(r.randrange(3))]
        return {n: self.value(depth + 1) for n in r.sample(NAMES, r.randrange(4))}

    def schema(self, depth: int = 0) -> Any:
        r = self.r
        if depth > 2 or r.random() < 0.15:
            return r.choice([True, False, {}, {"type": "integer"}, {"const": r.choice([1, "a", [1]])}])
        s: dict[str, Any] = {}
        for _ in range(r.randrange(1, 4)):
            kw = r.choice(KEYWORDS)
            s[kw] = self.keyword(kw, depth)
        if "then" in s or "else" in s:
            s.setdefault("if", self.schema(depth + 1))
        return s

    def keyword(self, kw: str, depth: int) -> Any:
        r = self.r
        sub = lambda: self.schema(depth + 1)  # noqa: E731
        if kw in ("properties", "dependentSchemas"):
            return {n: sub() for n in r.sample(NAMES, r.randrange(1, 3))}
        if kw == "patternProperties":
            return {p: sub() for p in r.sample(PATTERNS, r.randrange(1, 3))}
        if kw in ("additionalProperties", "unevaluatedProperties"):
            return r.choice([False, True, False, {"type": "integer"}]) if kw == "unevaluatedProperties" else r.choice([False, True])
        if kw == "required":
            return r.sample(NAMES, r.randrange(1, 3))
        if kw == "dependentRequired":
            return {r.choice(NAMES): r.sample(NAMES, r.randrange(1, 3))}
        if kw == "type":
            return r.choice(["object", "array", "integer", "string", "boolean", ["array", "boolean"]])
        if kw == "enum":
            return [self.value(2) for _ in range(r.randrange(1, 4))]
        if kw == "const":
            return self.value(2)
        if kw == "items":
            return sub() if r.random() < 0.6 else [sub() for _ in range(r.randrange(1, 3))]
        if kw == "additionalItems":
            return r.choice([False, {"type": "integer"}])
        if kw in ("minItems", "maxItems", "minProperties", "maxProperties", "minLength", "maxLength"):
            return r.randrange(4)
        if kw in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            return r.choice([0, 1, 4, 4096])
        if kw == "multipleOf":
            return r.choice([2, 4, 0.5])
        if kw in ("allOf", "anyOf", "oneOf"):
            return [sub() for _ in range(r.randrange(1, 4))]
        if kw in ("not", "if", "then", "else", "contains", "propertyNames"):
            return sub() if kw != "propertyNames" else {"pattern": r.choice(PATTERNS)}
        if kw == "pattern":
            return r.choice(PATTERNS)
        if kw == "uniqueItems":
            return r.choice([True, False])
        raise AssertionError(kw)


KEYWORDS = [
    "properties", "patternProperties", "additionalProperties", "unevaluatedProperties", "required",
    "dependentRequired", "dependentSchemas", "type", "enum", "const", "items", "additionalItems",
    "minItems", "maxItems", "minProperties", "maxProperties", "minLength", "maxLength", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "allOf", "anyOf", "oneOf", "not",
    "if", "then", "else", "contains", "propertyNames", "pattern", "uniqueItems",
]


def test_engine_matches_jsonschema_4_17_3(tmp_path) -> None:
    from dtvm.bindings.kcompile import Compiler
    from dtvm.bindings.kengine import Engine
    from dtvm.bindings.kschema import format_error

    gen = Gen(random.Random(SEED))
    cases = [(gen.schema(), gen.value()) for _ in range(CASES)]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    res = subprocess.run([ORACLE_PY, "-c", ORACLE_SCRIPT, str(path)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    want = json.loads(res.stdout)
    compared = with_errors = 0
    for i, ((schema, inst), expected) in enumerate(zip(cases, want, strict=True)):
        if expected is None:
            continue  # jsonschema raised on it
        eng = Engine({})
        comp = Compiler(eng)
        eng.compiled = comp.compile
        got = [format_error("t.dtb", e, nodename="n") for e in eng.iter_errors(inst, schema)]
        assert got == expected, (i, schema, inst)
        assert comp.compile(schema, "")(inst) == (not expected), (i, schema, inst)
        compared += 1
        with_errors += bool(expected)
    print(f"\n{compared} cases compared with jsonschema 4.17.3 (seed {SEED}), {with_errors} with errors")
    assert compared > CASES * 0.9 and with_errors > CASES * 0.3, (compared, with_errors)
