"""Seeded mutation fuzzers for the two input formats, DTS and DTB (issue 19).

The cases come from a seed corpus (the DTS and DTB fixtures) through seeded mutations: the same
seed always gives the same cases, so a failure is a reproducible test case.  :func:`run_cases`
runs dtvm on every case inside ONE subprocess under ``RLIMIT_AS`` (a memory bound, not a
timing) and reports per case: the exit code, the output, the first error line, or the
traceback that escaped.  The tests (tests/test_fuzz.py) and ``make fuzz`` (more cases) then hold
each case against dtc, the oracle.

    python -m tests.fuzz dts|dtb N SEED      # print a summary of N cases (what make fuzz runs)
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import random
import re
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

# Fragments a hostile or careless DTS is made of: structure, references, the keywords, extremes.
DTS_TOKENS = [
    "{", "}", ";", "};", "<", ">", "[", "]", "(", ")", "=", ",", "&", "&l", "&{/}", "&{/a/b}", "l:", "x:",
    "/delete-node/ ", "/delete-property/ ", "/omit-if-no-ref/ ", "/memreserve/ ", "/bits/ 8 ", "/bits/ 64 ",
    "/incbin/(\"x\")", "/plugin/;", "/dts-v1/;", "\"", "'a'", "'\\x41'", "\\", "\"\\x\"", "0x", "0xffffffff",
    "18446744073709551615", "18446744073709551616", "9" * 30, "0" * 50 + "1", "9" * 5000, "0x" + "f" * 4400, "-1", "~0", "!", "1?2:3", "<<", ">>",
    "/ {", "n@1 {", "n {", "#address-cells = <1>;", "reg = <0 0>;", "phandle = <1>;", "compatible = \"a\";",
    "//", "/*", "*/", "\n", "\t", "\0", "\xff", "@", "#", "a,b", "x-y", "p = <&l>;",
]


def seed_dts() -> list[bytes]:
    """The DTS seed corpus: the fixtures' sources (top level of fixtures/dts, fixtures/checks, ...)."""
    files = sorted(glob.glob(str(FIXTURES / "dts" / "*.dts")) + glob.glob(str(FIXTURES / "dtb" / "*.dts")))
    files += sorted(glob.glob(str(FIXTURES / "checks" / "*.dts")))[:40]
    files += sorted(glob.glob(str(FIXTURES / "overlay" / "*.dts")) + glob.glob(str(FIXTURES / "outputs" / "*.dts")))
    out = []
    for f in files:
        data = Path(f).read_bytes()
        if b"/include/" in data or b"/incbin/" in data or len(data) > 20000:
            continue  # no other files: a case is one self-contained source
        out.append(data)
    return out


def mutate_dts(data: bytes, rng: random.Random) -> bytes:
    """One to four edits: delete, duplicate or move a span, insert a fragment, flip a byte."""
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4))):
        n = len(buf)
        op = rng.randrange(6)
        i = rng.randrange(n + 1)
        if op == 0 and n:
            j = min(n, i + rng.randint(1, 20))
            del buf[i:j]
        elif op == 1 and n:
            j = min(n, i + rng.randint(1, 40))
            buf[i:i] = buf[i:j] * rng.randint(1, 3)
        elif op == 2:
            # a fragment, mostly at a line start or after a ';' (where it may still parse)
            starts = [k + 1 for k in range(max(0, i - 200), min(n, i + 200)) if buf[k] in b";\n{"]
            if starts and rng.random() < 0.7:
                i = rng.choice(starts)
            buf[i:i] = rng.choice(DTS_TOKENS).encode("latin-1")
        elif op == 3 and n:
            buf[min(i, n - 1)] = rng.randrange(32, 127)
        elif op == 4:
            # nesting: open nodes, close them (or not)
            k = rng.randint(1, 300)
            buf[i:i] = b"n {" * k + (b"};" * k if rng.random() < 0.8 else b"")
        elif n:
            j = min(n, i + rng.randint(1, 40))
            chunk = bytes(buf[i:j])
            del buf[i:j]
            k = rng.randrange(len(buf) + 1)
            buf[k:k] = chunk
    return bytes(buf)


def seed_dtb() -> list[bytes]:
    """The DTB seed corpus: the fixtures' blobs, and fixtures compiled by dtc when it is here."""
    out = [Path(f).read_bytes() for f in sorted(glob.glob(str(FIXTURES / "**" / "*.dtb*"), recursive=True))]
    for src in seed_dts()[:12]:
        try:
            p = subprocess.run(["dtc", "-q", "-O", "dtb", "-"], input=src, capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            break
        if p.returncode == 0:
            out.append(p.stdout)
    return [b for b in out if b[:4] == b"\xd0\x0d\xfe\xed"]


_INTERESTING = [0, 1, 3, 4, 8, 0x28, 0x38, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFC, 16, 17, 2, 9]


def mutate_dtb(data: bytes, rng: random.Random) -> bytes:
    """One to three edits aimed at the format: header words, tokens, lengths, string offsets,
    truncation, duplicated spans."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        n = len(buf)
        op = rng.randrange(6)
        if op == 0 and n >= 40:
            # a header field (not the magic)
            w = rng.randrange(1, 10) * 4
            buf[w : w + 4] = rng.choice(_INTERESTING).to_bytes(4, "big")
        elif op == 1 and n >= 8:
            w = rng.randrange(0, n - 3) & ~3
            buf[w : w + 4] = rng.choice(_INTERESTING).to_bytes(4, "big")
        elif op == 2 and n:
            buf[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 3 and n > 8:
            del buf[rng.randrange(8, n) :]
        elif op == 4 and n > 60:
            i = rng.randrange(56, n - 4) & ~3
            j = min(n, i + 4 * rng.randint(1, 8))
            buf[i:i] = buf[i:j] * rng.randint(1, 20)
        elif n > 8:
            buf[rng.randrange(8, n)] = rng.randrange(256)
    return bytes(buf)


def make_cases(fmt: str, count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    seeds = seed_dts() if fmt == "dts" else seed_dtb()
    mutate = mutate_dts if fmt == "dts" else mutate_dtb
    cases = []
    for _ in range(count):
        data = rng.choice(seeds)
        for _ in range(rng.choice((1, 1, 2, 3))):
            data = mutate(data, rng)
        cases.append(data)
    return cases


# ---------------------------------------------------------------------------
# the worker: every case in one process, under a memory limit

_WORKER = r"""
import io, json, sys, traceback
from dtvm.cli.dtc import run
fmt, outform = sys.argv[1], sys.argv[2]
for path in sys.stdin.read().split("\n"):
    if not path:
        continue
    out, err = io.BytesIO(), io.StringIO()
    try:
        code = run(["-q", "-I", fmt, "-O", outform, path], out, err)
        crash = None
    except BaseException as exc:  # what must never happen: an exception out of the tool
        code, crash = -1, "".join(traceback.format_exception(exc))[-3000:]
    print(json.dumps({"path": path, "code": code, "out": out.getvalue().decode("latin-1"),
                      "err": err.getvalue(), "crash": crash}), flush=True)
"""


def run_cases(paths: list[str], fmt: str, outform: str, as_bytes: int = 1 << 30, timeout: float = 600) -> list[dict]:
    """dtvm on every case in one subprocess under RLIMIT_AS; one result per case."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))

    p = subprocess.run(
        [sys.executable, "-c", _WORKER, fmt, outform], input="\n".join(paths), capture_output=True, text=True,
        preexec_fn=limit, timeout=timeout, cwd=ROOT, encoding="latin-1",
    )
    results = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    if len(results) != len(paths):
        raise AssertionError(f"the worker died after {len(results)} of {len(paths)} cases (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return results


def dtc_result(path: str, fmt: str, outform: str) -> tuple[int, bytes]:
    """dtc on a case; a crash (signal) is returned as its negative exit code."""
    code, out, _err = dtc_run(path, fmt, outform)
    return code, out


def dtc_run(path: str, fmt: str, outform: str) -> tuple[int, bytes, bytes]:
    """dtc on a case with its stderr: ``dtvm dtc`` prints dtc's diagnostic lines byte for byte."""
    try:
        p = subprocess.run(["dtc", "-q", "-I", fmt, "-O", outform, path], capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return -999, b"", b""
    return p.returncode, p.stdout, p.stderr


# A located error: FILE:LINE:COL (DTS), FILE: offset 0xN (DTB), or a node path (a check on a tree),
# in dtvm's form; or dtc's own forms, which dtvm dtc prints (Error: FILE:LINE.COL-COL ..., FILE:LINE.COL-COL:
# ERROR (check): ...).
_LOCATED = re.compile(r"[^:]*:\d+:\d+: error: |[^:]*: offset 0x[0-9a-f]+: error: |/[^:]*(?::[^:]+)?: error: "
                      r"|(Error|Lexical error): [^:]*:\d+\.\d+|[^:]*:\d+\.\d+(-\d+(\.\d+)?)?: (ERROR|Warning) \(")
# dtvm accepts dtc 1.8.1's &{label/path} references, which 1.6.1 rejects (DESIGN.md section 4).
_NEWER_SYNTAX = re.compile(rb"&\{[A-Za-z_]")


def known_divergence(data: bytes, fmt: str, err: str) -> str | None:
    """Why dtc cannot be the oracle for this case, or None.  Each reason is documented behaviour:
    dtvm rejects a blob where dtc's behaviour is undefined (it reads past a buffer), accepts the
    1.8.1 syntax, and NUL bytes in a source are the parser's own open item (issue 18)."""
    if "(undefined in dtc)" in err or "dtc 1.6.1 crashes" in err:
        return "undefined in dtc"
    if fmt == "dts" and _NEWER_SYNTAX.search(data):
        return "dtc 1.8.1 syntax"
    if fmt == "dts" and b"\0" in data:
        return "NUL in the source (issue 18)"
    return None


def check_cases(cases: list[bytes], fmt: str, workdir: str) -> dict[str, int]:
    """Run and judge every case; returns counts, raises AssertionError listing the failures."""
    outform = "dtb" if fmt == "dts" else "dts"
    paths = []
    for i, data in enumerate(cases):
        path = os.path.join(workdir, f"case{i:05d}.{fmt}")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    results = run_cases(paths, fmt, outform)
    counts = {"cases": len(cases), "accepted": 0, "rejected": 0, "dtc-crashed": 0}
    failures = []
    for r in results:
        path = r["path"]
        digest = hashlib.sha1(open(path, "rb").read()).hexdigest()[:10]
        if r["crash"]:
            failures.append(f"{path} ({digest}): exception escaped:\n{r['crash']}")
            continue
        err = r["err"]
        if "Traceback" in err:
            failures.append(f"{path}: traceback in the message:\n{err[-2000:]}")
            continue
        ref_code, ref_out, ref_err = dtc_run(path, fmt, outform)
        if ref_code < 0:
            counts["dtc-crashed"] += 1  # dtc's behaviour is undefined here: no oracle
        with open(path, "rb") as f:
            why = known_divergence(f.read(), fmt, err)
        if why is not None and (r["code"] == 0) != (ref_code == 0):
            counts["no-oracle"] = counts.get("no-oracle", 0) + 1
            ref_code = -1000  # no comparison below: the one-line and no-exception rules still hold
        if r["code"] == 0:
            counts["accepted"] += 1
            if ref_code == 0 and r["out"].encode("latin-1") != ref_out:
                failures.append(f"{path} ({digest}): both accept, outputs differ")
            elif ref_code > 0:
                failures.append(f"{path} ({digest}): dtc rejects, dtvm accepts")
        else:
            counts["rejected"] += 1
            # "\n" only: str.splitlines() also breaks at \x85 and \x1c-\x1e, which dtc prints raw
            first = err.strip().split("\n")[0] if err.strip() else ""
            if not first:
                failures.append(f"{path} ({digest}): rejected without a message")
            elif any(first.encode("latin-1", "replace").startswith(line) for line in ref_err.split(b"\n")[:1] if line):
                pass  # dtc's own line for this input (a FATAL ERROR dtc does not locate either), maybe with
                # dtvm's detail after it ("(property value of N bytes)")
            elif first.startswith("FATAL ERROR: ") and (ref_code < 0 or why is not None or any(
                    line.startswith(b"FATAL ERROR: ") for line in ref_err.splitlines())):
                pass  # dtc crashes here, or fails as fatally with no location either (its words depend on
                # what malloc and fread did with a size from the blob): dtvm's one fatal line is the answer
            elif os.path.basename(path) not in first and not _LOCATED.match(first):
                # a linemarker in the case may rename the file, as it does for dtc
                failures.append(f"{path} ({digest}): the error is not located: {first[:200]}")
            if ref_code == 0:
                failures.append(f"{path} ({digest}): dtc accepts, dtvm rejects: {first[:300]}")
    if failures:
        raise AssertionError(f"{len(failures)} of {len(cases)} cases fail:\n" + "\n".join(failures[:20]))
    return counts


def main(argv: list[str]) -> int:
    import tempfile

    fmt = argv[0] if argv else "dts"
    count = int(argv[1]) if len(argv) > 1 else 2000
    seed = int(argv[2]) if len(argv) > 2 else 1
    with tempfile.TemporaryDirectory(prefix="dtvm-fuzz-") as d:
        try:
            counts = check_cases(make_cases(fmt, count, seed), fmt, d)
        except AssertionError as exc:
            print(exc)
            return 1
    print(f"{fmt} fuzz, seed {seed}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
