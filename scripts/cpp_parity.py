#!/usr/bin/env python3
"""cpp parity: the kernel's ``cpp | dtc`` against ``dtvm dtc --cpp``, for every board of the corpus.

For every board .dts under CORPUS/src/ARCH:

  reference  GNU cpp exactly as the kernel runs it (README of the corpus), then
             Debian's dtc on its output, ``-O dtb`` and ``-O dts``;
  dtvm       ``dtvm dtc --cpp --cpp-include ...`` on the board itself, in this
             process (``dtvm.cli.dtc.run``), ``-O dtb`` and ``-O dts``.

Compared: the exit codes and outputs of both formats (a board cpp rejects must
be rejected by dtvm too, with a one-line error and no traceback). Also
reported, as figures:

  text       dtvm's preprocessed text against GNU cpp's, token for token and
             line for line (runs of blanks are compared as one blank);
  located    the file:line of every diagnostic dtvm gives for the board when fed
             GNU cpp's output vs when preprocessing itself (linemarkers right);
  timing     dtvm's preprocessing and whole ``--cpp`` compile per board, and GNU
             cpp's (a process per file).

    python scripts/cpp_parity.py [--corpus DIR] [--arch arm --arch arm64] [--limit N] [--jobs N] [--show N]

Exits 1 if a DTB, DTS or rejection differs.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

DEFAULT_CORPUS = os.path.join(os.path.dirname(HERE), "..", "shared", "corpus", "linux-dts")


def cpp_dirs(corpus: str, arch: str, dts: str) -> list[str]:
    """The kernel's -I directories (the corpus README)."""
    return [
        os.path.join(corpus, "include"),
        os.path.join(corpus, "src", arch),
        os.path.join(corpus, "src", arch, "include"),
        os.path.dirname(dts),
    ]


def gnu_cpp(dirs: list[str], dts: str, out: str) -> tuple[bool, str, float]:
    """(ok, stderr, seconds) of GNU cpp as the kernel runs it."""
    cmd = ["cpp", "-nostdinc"]
    for d in dirs:
        cmd += ["-I", d]
    cmd += ["-undef", "-D__DTS__", "-x", "assembler-with-cpp", dts, "-o", out]
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return p.returncode == 0, p.stderr.decode("latin-1"), time.perf_counter() - t


def dtc(args: list[str]) -> tuple[int, bytes]:
    p = subprocess.run(["dtc", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return p.returncode, p.stdout


def dtvm(args: list[str]) -> tuple[int, bytes, str]:
    from dtvm.cli.dtc import run

    out = io.BytesIO()
    err = io.StringIO()
    code = run(args, out, err)
    return code, out.getvalue(), err.getvalue()


_LOC = re.compile(r"^([^:\n]+):(\d+):\d+: ", re.M)


def located(err: str) -> list[str]:
    """The diagnostics with their columns dropped (columns follow each cpp's spacing)."""
    return sorted(
        _LOC.sub(r"\1:\2: ", line)
        for line in err.splitlines()
        if ": warning: " in line or ": error: " in line
    )


def normalized_lines(text: str) -> list[str]:
    lines = text.split("\n")
    while lines and lines[0].startswith("# 0 "):
        lines.pop(0)  # GNU's <built-in>/<command-line> preamble
    return [re.sub(r"[ \t]+", " ", line).strip() for line in lines]


def check_one(job: tuple[str, str, str, str]) -> dict[str, object]:
    corpus, arch, dts, cache = job
    from dtvm.dt.dts.preprocess import preprocess
    from dtvm.dt.dts.source import read_source
    from dtvm.errors import DtvmError

    rel = os.path.relpath(dts, corpus)
    res: dict[str, object] = {"file": rel, "problems": [], "text": None, "located": None}
    problems: list[str] = res["problems"]  # type: ignore[assignment]
    dirs = cpp_dirs(corpus, arch, dts)
    pp = os.path.join(cache, rel.replace("/", "__") + ".pp")
    ok, cpp_err, res["t_gnu"] = gnu_cpp(dirs, dts, pp)
    cpp_args = []
    for d in dirs:
        cpp_args += ["--cpp-include", d]
    inc = ["-i", os.path.join(corpus, "src", arch), "-i", os.path.dirname(dts)]

    # dtvm's preprocessing alone: timing and the text comparison
    t = time.process_time()
    try:
        mine = preprocess(read_source(dts), dirs, []).text
        my_err = None
    except DtvmError as exc:
        mine = None
        my_err = str(exc)
    except Exception as exc:  # a crash is a finding, not the end of the run
        mine = None
        my_err = f"CRASH {type(exc).__name__}: {exc}"
    res["t_pp"] = time.process_time() - t
    if my_err is not None and (my_err.startswith("CRASH") or "\n" in my_err.strip()):
        problems.append(f"preprocess: {my_err[:200]}")

    t = time.process_time()
    try:
        rc_me, blob_me, err_me = dtvm(["--cpp", *cpp_args, *inc, "-I", "dts", "-O", "dtb", "-o", "-", dts])
    except Exception as exc:
        problems.append(f"dtvm crashed: {type(exc).__name__}: {exc}")
        res["status"] = "diff"
        return res
    res["t_run"] = time.process_time() - t
    if "Traceback" in err_me:
        problems.append("traceback in dtvm's messages")

    if not ok:
        res["status"] = "rejected-both" if rc_me != 0 else "diff"
        if rc_me == 0:
            problems.append(
                f"cpp rejects ({cpp_err.strip().splitlines()[0][:160] if cpp_err.strip() else ''}) but dtvm accepts"
            )
        else:
            res["why"] = (cpp_err.strip().splitlines() or [""])[0], err_me.strip().splitlines()[0]
        return res
    with open(pp, encoding="latin-1") as f:
        gnu_text = f.read()
    if mine is not None:
        res["text"] = normalized_lines(gnu_text) == normalized_lines(mine)

    rc_ref, blob_ref = dtc([*inc, "-I", "dts", "-O", "dtb", pp])
    if rc_ref != 0:
        if rc_me == 0:
            problems.append(f"dtc rejects (exit {rc_ref}) but dtvm --cpp accepts")
        res["status"] = "diff" if problems else "rejected-both"
        return res
    if rc_me != 0:
        problems.append(
            f"dtc accepts but dtvm --cpp rejects (exit {rc_me}): {err_me.strip().splitlines()[-1][:200]}"
        )
    elif blob_me != blob_ref:
        problems.append("-O dtb differs")
    rc_ref, dts_ref = dtc([*inc, "-I", "dts", "-O", "dts", pp])
    rc_me2, dts_me, _err = dtvm(["--cpp", *cpp_args, *inc, "-I", "dts", "-O", "dts", "-o", "-", dts])
    if (rc_ref, dts_ref) != (rc_me2, dts_me):
        problems.append("-O dts differs")
    # the same diagnostics at the same file:line, whether dtvm reads GNU's text or its own
    _rc, _out, err_pp = dtvm([*inc, "-I", "dts", "-O", "dtb", "-o", "-", pp])
    res["located"] = located(err_pp.replace(pp, dts)) == located(err_me)
    res["status"] = "diff" if problems else "ok"
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=DEFAULT_CORPUS)
    ap.add_argument("--arch", action="append", help="architectures (default: all)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--show", type=int, default=20, help="how many differing files to list")
    args = ap.parse_args()
    corpus = os.path.abspath(args.corpus)
    arches = args.arch or sorted(os.listdir(os.path.join(corpus, "src")))
    with tempfile.TemporaryDirectory(prefix="dtvm-cpp-parity-") as cache:
        jobs = []
        for arch in arches:
            base = os.path.join(corpus, "src", arch)
            for dirpath, _dirs, files in os.walk(base):
                for fn in sorted(files):
                    if fn.endswith(".dts"):
                        jobs.append((corpus, arch, os.path.join(dirpath, fn), cache))
        jobs.sort(key=lambda j: j[2])
        if args.limit:
            jobs = jobs[: args.limit]
        counts: dict[str, int] = {}
        bad: list[tuple[str, list[str]]] = []
        rejected: list[tuple[str, tuple[str, str]]] = []
        text_same = text_total = loc_same = loc_total = 0
        text_diff: list[str] = []
        loc_diff: list[str] = []
        t_pp = t_run = t_gnu = 0.0
        n_timed = 0
        with ProcessPoolExecutor(max_workers=args.jobs) as ex:
            for res in ex.map(check_one, jobs, chunksize=4):
                status = str(res["status"])
                counts[status] = counts.get(status, 0) + 1
                problems = res["problems"]
                assert isinstance(problems, list)
                if status == "diff" or problems:
                    bad.append((str(res["file"]), problems))
                if "why" in res:
                    rejected.append((str(res["file"]), res["why"]))  # type: ignore[arg-type]
                if res["text"] is not None:
                    text_total += 1
                    text_same += bool(res["text"])
                    if not res["text"]:
                        text_diff.append(str(res["file"]))
                if res["located"] is not None:
                    loc_total += 1
                    loc_same += bool(res["located"])
                    if not res["located"]:
                        loc_diff.append(str(res["file"]))
                if "t_run" in res:
                    n_timed += 1
                    t_pp += float(res["t_pp"])  # type: ignore[arg-type]
                    t_run += float(res["t_run"])  # type: ignore[arg-type]
                    t_gnu += float(res["t_gnu"])  # type: ignore[arg-type]
    total = len(jobs)
    print(f"boards: {total} ({', '.join(arches)})")
    for status in ("ok", "rejected-both", "diff"):
        print(f"  {status}: {counts.get(status, 0)}")
    print(f"  cpp text identical to GNU cpp's (blank runs as one): {text_same}/{text_total}")
    print(f"  diagnostics at the same file:line as through GNU cpp: {loc_same}/{loc_total}")
    if n_timed:
        print(
            f"  per board: dtvm preprocessing {t_pp / n_timed * 1000:.1f} ms, "
            f"dtvm --cpp -O dtb in all {t_run / n_timed * 1000:.1f} ms (CPU); "
            f"GNU cpp {t_gnu / n_timed * 1000:.1f} ms (wall, a process each)"
        )
    for rel, why in rejected[: args.show]:
        print(f"  REJECTED {rel}\n      cpp:  {why[0][:150]}\n      dtvm: {why[1][:150]}")
    for rel, problems in bad[: args.show]:
        print(f"  DIFF {rel}: {'; '.join(problems)}")
    for rel in text_diff[: args.show]:
        print(f"  TEXT {rel}")
    for rel in loc_diff[: args.show]:
        print(f"  LOCATED {rel}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
