#!/usr/bin/env python3
"""Check findings parity: dtc 1.6.1's warnings and errors against dtvm's, file by file.

For every board .dts of the corpus (preprocessed as the kernel does, cached as
scripts/parity.py caches it), run ``dtc -I dts -O dtb -o /dev/null`` and dtvm
(in this process), and compare what the checks report as sets of
(check name, node path, property or None): dtc's from its stderr, dtvm's from
its own. Also compared: acceptance (both exit 0, or both not), and the counts
(dtc prints some findings more than once; so should dtvm). Prints the figures
and the first differences; exits 1 if any set differs.

    python scripts/checks_parity.py [--corpus DIR] [--arch arm ...] [--limit N] [--jobs N] [--show N]
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from parity import corpus_args, corpus_jobs, preprocess  # noqa: E402

Key = tuple[str, str, str | None]

# dtc: "POS: Warning (name): /path[:prop]: message" or "OUT: Warning (name): Failed prerequisite 'x'"
_DTC_LINE = re.compile(r"^(?P<pos>.*?): (?P<level>Warning|ERROR) \((?P<check>[A-Za-z0-9_]+)\): (?P<rest>.*)$")
# dtvm: "POS: warning: /path[:prop]: message [-Wname]" or "POS: warning: Failed prerequisite 'x' [-Wname]"
_DTVM_LINE = re.compile(
    r"^(?P<pos>.*?): (?P<level>warning|error): (?P<rest>.*) \[-W(?P<check>[A-Za-z0-9_]+)\]$"
)


def _key(check: str, rest: str) -> Key:
    if not rest.startswith("/"):
        return (check, "", None)  # "Failed prerequisite '...'": no node
    where = rest.split(": ", 1)[0]
    path, _, prop = where.partition(":")
    return (check, path, prop or None)


def parse_dtc(stderr: str) -> tuple[Counter[Key], list[str]]:
    """dtc's findings, and the lines that are not findings (aborts, fatal errors)."""
    found: Counter[Key] = Counter()
    other: list[str] = []
    for line in stderr.splitlines():
        m = _DTC_LINE.match(line)
        if m:
            found[_key(m["check"], m["rest"])] += 1
        elif (
            line.strip()
            and not line.startswith("  also defined at")
            and not line.startswith("ERROR: Input tree")
        ):
            other.append(line)
    return found, other


def parse_dtvm(stderr: str) -> tuple[Counter[Key], list[str]]:
    """dtvm dtc prints dtc's own lines (--diagnostics=dtc, the default), so they read the same way."""
    return parse_dtc(stderr)


def run_dtc(args: list[str]) -> tuple[int, str]:
    p = subprocess.run(["dtc", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stderr.decode("latin-1")


def run_dtvm(args: list[str]) -> tuple[int, str]:
    from dtvm.cli.dtc import run

    err = io.StringIO()
    code = run(args, io.BytesIO(), err)
    return code, err.getvalue()


def compare(inc: list[str], path: str) -> tuple[str, list[str], int]:
    """(status, problems, number of findings) for one input: 'same' (stderr identical), 'bytes'
    (same findings, other bytes), 'count' (same set, other counts) or 'diff'."""
    rc_ref, err_ref = run_dtc([*inc, "-I", "dts", "-O", "dtb", "-o", "/dev/null", path])
    try:
        rc_me, err_me = run_dtvm([*inc, "-I", "dts", "-O", "dtb", "-o", "/dev/null", path])
    except Exception as exc:  # a crash is a difference, not the end of the run
        return "diff", [f"dtvm crashed: {type(exc).__name__}: {exc}"], 0
    ref, ref_other = parse_dtc(err_ref)
    me, _ = parse_dtvm(err_me)
    problems: list[str] = []
    if (rc_ref == 0) != (rc_me == 0):
        problems.append(f"exit codes: dtc {rc_ref}, dtvm {rc_me} ({'; '.join(ref_other)[:200]})")
    missing = sorted(set(ref) - set(me), key=str)
    extra = sorted(set(me) - set(ref), key=str)
    for k in missing[:5]:
        problems.append(f"only dtc: {k}")
    for k in extra[:5]:
        problems.append(f"only dtvm: {k}")
    if problems:
        return "diff", problems, sum(ref.values())
    if ref != me:
        counts = [f"{k}: dtc {ref[k]}, dtvm {me[k]}" for k in sorted(ref, key=str) if ref[k] != me[k]]
        return "count", counts[:5], sum(ref.values())
    if err_ref != err_me:
        # same findings, other bytes: positions, wording or order of dtc's lines
        diff = [f"dtc:  {a}\ndtvm: {b}" for a, b in zip(err_ref.splitlines(), err_me.splitlines(), strict=False) if a != b]
        return "bytes", diff[:3] or ["line count differs"], sum(ref.values())
    return "same", [], sum(ref.values())


def check_one(job: tuple[str, str, str, str]) -> tuple[str, str, list[str], int]:
    corpus, arch, dts, cache = job
    rel = os.path.relpath(dts, corpus)
    pp = os.path.join(cache, rel.replace("/", "__") + ".pp")
    if not os.path.exists(pp) and not preprocess(corpus, arch, dts, pp):
        return rel, "cpp-failed", [], 0
    inc = ["-i", os.path.join(corpus, "src", arch), "-i", os.path.dirname(dts)]
    status, problems, n = compare(inc, pp)
    return rel, status, problems, n


def main() -> int:
    args = corpus_args(__doc__)
    jobs = corpus_jobs(args)
    counts: Counter[str] = Counter()
    findings = 0
    bad: list[tuple[str, str, list[str]]] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        for rel, status, problems, n in ex.map(check_one, jobs, chunksize=4):
            counts[status] += 1
            findings += n
            if status in ("diff", "count", "bytes"):
                bad.append((rel, status, problems))
    print(f"files: {len(jobs)}  (dtc findings: {findings})")
    for status, label in (
        ("same", "identical findings"),
        ("count", "same set, other counts"),
        ("bytes", "same findings, stderr bytes differ"),
        ("diff", "differing"),
        ("cpp-failed", "cpp failed"),
    ):
        print(f"  {label}: {counts[status]}")
    for rel, status, problems in bad[: args.show]:
        print(f"  {status.upper()} {rel}:")
        for p in problems:
            print(f"      {p}")
    return 1 if counts["diff"] or counts["bytes"] else 0


if __name__ == "__main__":
    sys.exit(main())
