#!/usr/bin/env python3
"""Corpus parity: the kernel's trees through the kernel's cpp step, then dtc and dtvm, byte for byte.

For every board .dts under CORPUS/src/ARCH: run cpp exactly as the kernel does,
then compare
  1. ``-O dtb``            dtc's blob vs dtvm's blob,
  2. ``-O dts``            dtc's source output vs dtvm's,
  3. ``-I dtb -O dts``     of dtc's blob, dtc vs dtvm,
and that dtvm rejects what dtc rejects. dtc runs as a process per file; dtvm
runs in this process (``dtvm.cli.dtc.run``). Prints the figures and the first
differing files; exits 1 if anything differs.

    python scripts/parity.py [--corpus DIR] [--arch arm --arch arm64] [--limit N] [--jobs N]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

DEFAULT_CORPUS = os.path.join(os.path.dirname(HERE), "..", "shared", "corpus", "linux-dts")


def cpp_command(corpus: str, arch: str, dts: str, out: str) -> list[str]:
    """The kernel's cpp step (scripts/Makefile.lib, cmd_dtc), exactly as in the corpus README."""
    return [
        "cpp",
        "-nostdinc",
        "-I",
        os.path.join(corpus, "include"),
        "-I",
        os.path.join(corpus, "src", arch),
        "-I",
        os.path.join(corpus, "src", arch, "include"),
        "-I",
        os.path.dirname(dts),
        "-undef",
        "-D__DTS__",
        "-x",
        "assembler-with-cpp",
        dts,
        "-o",
        out,
    ]


def preprocess(corpus: str, arch: str, dts: str, out: str) -> bool:
    """Run the kernel's cpp step; False if cpp fails."""
    cmd = cpp_command(corpus, arch, dts, out)
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def dtc(args: list[str]) -> tuple[int, bytes]:
    p = subprocess.run(["dtc", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return p.returncode, p.stdout


def dtvm(args: list[str]) -> tuple[int, bytes]:
    from dtvm.cli.dtc import run

    out = io.BytesIO()
    err = io.StringIO()
    code = run(args, out, err)
    return code, out.getvalue()


def check_one(job: tuple[str, str, str, str]) -> tuple[str, str, list[str]]:
    """(file, status, problems); status is 'ok', 'rejected-both', 'cpp-failed' or 'diff'."""
    corpus, arch, dts, cache = job
    rel = os.path.relpath(dts, corpus)
    pp = os.path.join(cache, rel.replace("/", "__") + ".pp")
    if not os.path.exists(pp) and not preprocess(corpus, arch, dts, pp):
        return rel, "cpp-failed", []
    inc = ["-i", os.path.join(corpus, "src", arch), "-i", os.path.dirname(dts)]
    problems = []
    rc_ref, blob_ref = dtc([*inc, "-I", "dts", "-O", "dtb", pp])
    try:
        rc_me, blob_me = dtvm([*inc, "-I", "dts", "-O", "dtb", pp])
    except Exception as exc:
        return rel, "diff", [f"dtvm crashed: {type(exc).__name__}: {exc}"]
    if rc_ref != 0:
        if rc_me == 0:
            problems.append(f"dtc rejects (exit {rc_ref}) but dtvm accepts")
        return rel, ("diff" if problems else "rejected-both"), problems
    if rc_me != 0:
        return rel, "diff", [f"dtc accepts but dtvm rejects (exit {rc_me})"]
    if blob_me != blob_ref:
        problems.append("-O dtb differs")
    rc_ref, dts_ref = dtc([*inc, "-I", "dts", "-O", "dts", pp])
    rc_me, dts_me = dtvm([*inc, "-I", "dts", "-O", "dts", pp])
    if (rc_ref, dts_ref) != (rc_me, dts_me):
        problems.append("-O dts differs")
    with tempfile.NamedTemporaryFile(suffix=".dtb") as f:
        f.write(blob_ref)
        f.flush()
        ref = dtc(["-I", "dtb", "-O", "dts", f.name])
        me = dtvm(["-I", "dtb", "-O", "dts", f.name])
    if ref != me:
        problems.append("-I dtb -O dts differs")
    problems += check_overlay(inc, pp)
    return rel, ("diff" if problems else "ok"), problems


def check_overlay(inc: list[str], pp: str) -> list[str]:
    """-@ of the board, an overlay built from its labels, and applying it: dtc/fdtoverlay vs dtvm."""
    from dtvm.cli.fdtoverlay import run as fdtoverlay_run
    from dtvm.dt.dtb import read_dtb

    problems = []
    rc_ref, base_ref = dtc([*inc, "-@", "-I", "dts", "-O", "dtb", pp])
    rc_me, base_me = dtvm([*inc, "-@", "-I", "dts", "-O", "dtb", pp])
    if (rc_ref, base_ref) != (rc_me, base_me):
        return ["-@ -O dtb differs"]
    if rc_ref != 0:
        return []
    symbols = read_dtb(base_ref).get_node("/__symbols__")
    labels = [p.name for p in symbols.properties] if symbols is not None else []
    if not labels:
        return []
    first, second = labels[0], labels[len(labels) // 2]
    overlay = (
        "/dts-v1/;\n/plugin/;\n"
        f"&{first} {{\n\tdtvm-parity-ref = <&{second} &dtvm_own>;\n"
        "\tdtvm_own: dtvm-parity-node { value = <1>; };\n};\n"
        '&{/} {\n\tdtvm-parity-path = "x";\n};\n'
    )
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "o.dts")
        with open(src, "w") as f:
            f.write(overlay)
        o_ref = dtc(["-I", "dts", "-O", "dtb", src])
        o_me = dtvm(["-I", "dts", "-O", "dtb", src])
        if o_ref != o_me:
            return ["overlay compile differs"]
        for name, data in (("base.dtb", base_ref), ("o.dtbo", o_ref[1])):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        base, dtbo = os.path.join(d, "base.dtb"), os.path.join(d, "o.dtbo")
        p = subprocess.run(["fdtoverlay", "-i", base, "-o", os.path.join(d, "ref.dtb"), dtbo], capture_output=True)
        code = fdtoverlay_run(["-i", base, "-o", os.path.join(d, "me.dtb"), dtbo], io.BytesIO(), io.StringIO())
        if (p.returncode == 0) != (code == 0):
            problems.append(f"fdtoverlay exit {p.returncode}, dtvm fdtoverlay exit {code}")
        elif code == 0:
            with open(os.path.join(d, "ref.dtb"), "rb") as f1, open(os.path.join(d, "me.dtb"), "rb") as f2:
                if f1.read() != f2.read():
                    problems.append("fdtoverlay output differs")
    return problems


def corpus_args(description: str | None) -> argparse.Namespace:
    """The options every corpus script takes."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=DEFAULT_CORPUS)
    ap.add_argument("--arch", action="append", help="architectures (default: all)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "dtvm-parity-cache"))
    ap.add_argument("--show", type=int, default=20, help="how many differing files to list")
    return ap.parse_args()


def corpus_jobs(args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """(corpus, arch, board .dts, cache dir) for every board, sorted by path."""
    corpus = os.path.abspath(args.corpus)
    os.makedirs(args.cache, exist_ok=True)
    arches = args.arch or sorted(os.listdir(os.path.join(corpus, "src")))
    jobs = []
    for arch in arches:
        base = os.path.join(corpus, "src", arch)
        for dirpath, _dirs, files in os.walk(base):
            for fn in sorted(files):
                if fn.endswith(".dts"):
                    jobs.append((corpus, arch, os.path.join(dirpath, fn), args.cache))
    jobs.sort(key=lambda j: j[2])
    return jobs[: args.limit] if args.limit else jobs


def main() -> int:
    args = corpus_args(__doc__)
    jobs = corpus_jobs(args)
    counts: dict[str, int] = {}
    bad: list[tuple[str, list[str]]] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        for rel, status, problems in ex.map(check_one, jobs, chunksize=4):
            counts[status] = counts.get(status, 0) + 1
            if status == "diff":
                bad.append((rel, problems))
    total = len(jobs)
    print(f"files: {total}")
    for status in ("ok", "rejected-both", "cpp-failed", "diff"):
        print(f"  {status}: {counts.get(status, 0)}")
    for rel, problems in bad[: args.show]:
        print(f"  DIFF {rel}: {'; '.join(problems)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
