"""Which device types QEMU lists for a machine it can create and migrate into a copy of itself.

Issue 13 asks the generator (tests/qemugen.py) to draw "every device type QEMU lists for the
machine that TCG can create and migrate". The catalog (dtvm/qemu/data/qdev-7.2.json) lists the
user-creatable types of each binary; this census asks QEMU, type by type, on each machine of the
generator: started paused with ``-nodefaults`` and the type (on a bus of its kind, with the
back-ends and settings QEMU says it needs), does it start, and does it live-migrate into a copy of
itself started with ``-incoming``? Each answer is QEMU's own: ``migrates``, or the words with which
it refused to ``create`` or to ``migrate`` it. ``tests/test_device_census.py`` then holds the
generator to the types that migrate.

``python -m tests.device_census [--machines q35,pc,...] [--types a,b] --out FILE`` records it
(the recorded file is fixtures/qemu-census/7.2.json; about a minute per machine). With
``--round-trip [--undrawn] --out fixtures/qemu-census/round-trip-7.2.json`` it runs every stage of
tests/qemu_random.py on each type the census found migrating (or only on those the generator does
not draw), in the census's own configuration, and records how far each got.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

from .qemu_helpers import VM, QmpFailed, start_vm, stop_vm
from .qemu_random import _migrate
from .qemugen import MACHINES, Case

__all__ = ["CENSUS_FILE", "ROUND_TRIP_FILE", "census_machine", "census_type", "drawn_types", "listed_types"]

ROOT = Path(__file__).resolve().parent.parent
CENSUS_FILE = ROOT / "fixtures" / "qemu-census" / "7.2.json"
ROUND_TRIP_FILE = ROOT / "fixtures" / "qemu-census" / "round-trip-7.2.json"
CATALOG = ROOT / "dtvm" / "qemu" / "data" / "qdev-7.2.json"
ARCH = {"qemu-system-x86_64": "x86_64", "qemu-system-aarch64": "aarch64", "qemu-system-arm": "arm",
        "qemu-system-riscv64": "riscv64", "qemu-system-ppc64": "ppc64"}

#: a parent for each bus kind: the controller's argv and the bus its children name
_PARENT: dict[str, tuple[list[str], str]] = {
    "usb-bus": (["-device", "qemu-xhci,id=cx"], "cx.0"),
    "SCSI": (["-device", "virtio-scsi-pci,id=cs"], "cs.0"),
    "HDA": (["-device", "intel-hda,id=ch"], "ch.0"),
    "IDE": (["-device", "ich9-ahci,id=ca"], "ca.0"),
    "virtio-serial-bus": (["-device", "virtio-serial-pci,id=cv"], "cv.0"),
    "nvme-bus": (["-device", "nvme,id=cn,serial=census"], "cn"),
    "ccid-bus": (["-device", "qemu-xhci,id=cx", "-device", "usb-ccid,id=cc,bus=cx.0"], "cc.0"),
    "floppy-bus": (["-device", "isa-fdc,id=cf"], "cf.0"),
}

#: what QEMU says a type needs, and what gives it: (pattern of QEMU's words, extra argv, properties)
_NEEDS: list[tuple[str, list[str], list[str]]] = [
    (r"drive|[Bb]lock node|no medium|storage|block backend", ["-blockdev", "driver=null-co,node-name=bk,size=16777216"],
     ["drive=bk"]),
    (r"chardev|[Cc]har(acter)? device", ["-chardev", "null,id=chr"], ["chardev=chr"]),
    (r"memdev|memory backend", ["-object", "memory-backend-ram,id=mem,size=128M"], ["memdev=mem"]),
    (r"maxmem|memory hotplug|slots", ["-m", "@MEM@,slots=2,maxmem=1G"], []),  # the machine's first size
    (r"netdev", ["-netdev", "user,id=net"], ["netdev=net"]),
    (r"audiodev|audio voice|No voice", ["-audiodev", "none,id=snd"], ["audiodev=snd"]),
    (r"serial", [], ["serial=census"]),
    (r"'?address'?|'addr'", [], ["address=0x50"]),
    (r"tpmdev", ["-tpmdev", "emulator,id=tpm,chardev=chr"], ["tpmdev=tpm"]),
    (r"chassis", [], ["chassis_nr=1"]),
    (r"can_sja_connect_to_bus|ctucan_connect_to_bus", ["-object", "can-bus,id=canbus"], ["canbus@=canbus"]),
    (r"'i8042' link", ["-device", "i8042,id=kbc"], ["i8042=kbc"]),
    (r"fsdev", ["-fsdev", "local,id=fs,path=/usr/share/doc,security_model=none,readonly=on"], ["fsdev=fs", "mount_tag=census"]),
    (r"'cryptodev'", ["-object", "cryptodev-backend-builtin,id=cr"], ["cryptodev=cr"]),
    (r"guest-cid", [], ["guest-cid=3"]),
    (r"missing 'nvdimm' in '-M'", ["-M", "nvdimm=on"], []),
    # pseries' persistent memory (PAPR): a label area, a UUID, and 256 MiB of it beside the label
    # (the memory back-end given before, resized: an -object of the same id is replaced)
    (r"NVDIMM devices to have label-size set", [], ["label-size=128K"]),
    (r"NVDIMM memory size \(excluding label\) to be a multiple of 256MB",
     ["-object", "memory-backend-ram,id=mem,size=268566528"], []),
    (r"NVDIMM device requires the uuid to be set", [], ["uuid=7c3e1f5a-2b4d-4e6f-8a9b-0c1d2e3f4a5b"]),
    # spapr-nvdimm: a file (in the directory of the question, @IMG@ as tests/qemugen.py spells it)
    (r"requires the memdev \w+ to be of memory-backend-file type",
     ["-object", "memory-backend-file,id=mem,size=268566528,mem-path=@IMG@mem.img"], []),
    (r"bmc attribute", ["-device", "ipmi-bmc-sim,id=bmc"], ["bmc=bmc"]),
    (r"iothread", ["-object", "iothread,id=io"], ["iothread=io"]),
]


@cache
def _catalog() -> dict[str, Any]:
    """The 7.2 catalog's types, read once (every census question asks it)."""
    types: dict[str, Any] = json.loads(CATALOG.read_text())["types"]
    return types


def listed_types(binary: str) -> list[str]:
    """The user-creatable types QEMU lists for ``binary`` (``-device help``), from the catalog."""
    types = _catalog()
    arch = ARCH[binary]
    return sorted(k for k, v in types.items() if v.get("user") and arch in v.get("arches", []))


def _bus_kind(dtype: str) -> str | None:
    kind: str | None = _catalog()[dtype].get("bus")
    return kind


def _prop_name(dtype: str, prop: str) -> str:
    """``canbus@=x``: the type's own names for a link that some types number (canbus0, canbus1:
    each must be set) and some do not (canbus)."""
    if "@" not in prop:
        return prop
    name, value = prop.split("@=", 1)
    links = _catalog()[dtype].get("props", {})
    names = {n for kind, ns in links.items() if kind.startswith("link<") for n in ns}
    if name in names:
        return f"{name}={value}"
    return ",".join(f"{n}={value}" for n in sorted(names) if n.startswith(name))


def _last(message: str) -> str:
    """QEMU's own last message line (a hint after it, such as "Try -device X instead.", would
    hide what it refused)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    own = [ln for ln in lines if re.match(r"(QEMU exited with -?\d+: )?qemu-system-\w+: ", ln)]
    text = (own or lines or [message])[-1]
    # a crashed source: whether its exit status is in yet is a race (None or -11), not QEMU's words
    text = re.sub(r" \(exit (?:None|-?\d+)\)", "", text)
    return re.sub(r"/tmp/[^ ,:'\"]+", "<tmp>", text)


def census_type(machine: str, dtype: str, directory: Path) -> dict[str, Any]:
    """QEMU's answer for one type on one machine: {"result": "migrates" | "create" | "migrate",
    "words": QEMU's (the last line it printed), "argv": what was asked at the end}."""
    spec = MACHINES[machine]
    base = [spec.binary, "-machine", spec.type, "-nodefaults", "-m", spec.memory[0]]
    kind = _bus_kind(dtype)
    parent, bus = _PARENT.get(kind or "", ([], ""))
    extra: list[str] = [*parent]
    props: list[str] = [f"bus={bus}"] if bus else []
    applied: set[int] = set()
    words = ""
    for _ in range(len(_NEEDS) + 1):
        argv = [*base, *extra, "-device", ",".join([dtype, *props])]
        if "-m" in extra:  # the memory option with slots replaces the plain one
            argv = [spec.binary, "-machine", spec.type, "-nodefaults", *extra, "-device", ",".join([dtype, *props])]
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        run = [a.replace("@IMG@", f"{directory}/") for a in argv]  # (a file back-end's, in the question's directory)
        try:
            a = start_vm(run, directory / "a", timeout=20)
        except RuntimeError as exc:
            words = _last(str(exc))
            for i, (pattern, more, more_props) in enumerate(_NEEDS):
                if i not in applied and re.search(pattern, words):
                    applied.add(i)
                    _add_setup(extra, [a.replace("@MEM@", spec.memory[0]) for a in more])
                    props += [_prop_name(dtype, p) for p in more_props]
                    break
            else:
                return {"result": "create", "words": words, "argv": _shown(argv)}
            continue
        return {**_migrates(a, run, directory), "argv": _shown(argv)}
    return {"result": "create", "words": words, "argv": _shown(argv)}


def _add_setup(extra: list[str], more: list[str]) -> None:
    """``more`` after ``extra``, but an ``-object`` of an id ``extra`` has already replaces it
    (a back-end a later need resizes)."""
    for i in range(0, len(more), 2):
        option, value = more[i:i + 2]
        ident = re.search(r"(?:^|,)id=([^,]+)", value) if option == "-object" else None
        same = [j for j in range(0, len(extra) - 1) if extra[j] == "-object" and ident
                and re.search(rf"(?:^|,)id={re.escape(ident.group(1))}(?:,|$)", extra[j + 1])]
        if same:
            extra[same[0] + 1] = value
        else:
            extra += [option, value]


def _migrates(a: VM, argv: list[str], directory: Path) -> dict[str, Any]:
    vms = [a]
    try:
        try:
            b = start_vm([*argv, "-incoming", "defer"], directory / "b", timeout=20)
        except RuntimeError as exc:
            return {"result": "migrate", "words": "the copy does not start: " + _last(str(exc))}
        vms.append(b)
        try:
            a.qmp("cont")
        except (QmpFailed, OSError, ConnectionError) as exc:
            return {"result": "migrate", "words": f"cont: {exc}"}
        status = _migrate(a, b, str(directory / "m.sock"))
        if status == "completed":
            return {"result": "migrates", "words": ""}
        return {"result": "migrate", "words": _last(status)}
    finally:
        for vm in vms:
            stop_vm(vm)


def _shown(argv: list[str]) -> str:
    return shlex.join(argv[1:])  # census_case splits it back


def census_machine(machine: str, types: list[str] | None = None, jobs: int = 2,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every listed type of ``machine``'s binary (or ``types``), QEMU's answer for each."""
    spec = MACHINES[machine]
    todo = types if types is not None else listed_types(spec.binary)
    top = Path(tempfile.mkdtemp(prefix="dtvm-census-", dir="/tmp"))
    try:
        def one(item: tuple[int, str]) -> tuple[str, dict[str, Any]]:
            i, dtype = item
            answer = census_type(machine, dtype, top / f"t{i}")
            if progress:
                progress(f"{machine} {dtype}: {answer['result']} {answer['words']}")
            return dtype, answer
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            return dict(sorted(pool.map(one, enumerate(todo))))
    finally:
        shutil.rmtree(top, ignore_errors=True)


def drawn_types(machine: str, seeds: int = 3000, census: bool = True) -> set[str]:
    """The device types tests/qemugen.py draws for ``machine`` in its first ``seeds`` cases (with
    its census stream, or without: what the team's own streams reach):
    ``-device``, ``-nic model=`` and hot-plugged drivers (what else a legacy option makes, such
    as ``-hda``'s ide-hd, counts under the type written out elsewhere)."""
    from .qemugen import generate

    drawn: set[str] = set()
    for seed in range(seeds):
        case = generate(seed * 7 + 1, machine, census)
        args = case.argv
        for i, arg in enumerate(args[:-1]):
            if arg == "-device":
                drawn.add(args[i + 1].split(",", 1)[0])
            elif arg == "-nic" and (m := re.search(r"(?:^|,)model=([^,]+)", args[i + 1])):
                drawn.add(m.group(1))
        drawn.update(str(h["driver"]) for h in case.hotplug)
    return drawn


def census_case(machine: str, dtype: str, answer: dict[str, Any]) -> Case:
    """The census's configuration of a type that migrates, as a generated case (all stages)."""
    spec = MACHINES[machine]
    return Case(f"{machine}-{dtype}", machine, [spec.binary, *shlex.split(answer["argv"])])


def round_trip(machines: list[str], types: list[str] | None, census: dict[str, Any], undrawn: bool = False,
               out: Path | None = None) -> int:
    """Every stage of tests/qemu_random.py on each type the census found migrating: the gap
    between what QEMU migrates and what dtvm rebuilds, type by type."""
    from .qemu_random import report, run_case

    outcomes = []
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="dtvm-census-rt-") as top:
        for machine in machines:
            skip = drawn_types(machine, census=False) if undrawn else set()
            for dtype, answer in census[machine].items():
                if answer["result"] != "migrates" or (types and dtype not in types) or dtype in skip:
                    continue
                out_ = run_case(census_case(machine, dtype, answer), Path(top) / f"{machine}-{dtype}")
                outcomes.append(out_)
                if out_.discarded:
                    what = f"discarded {out_.discarded}"
                elif out_.failed:
                    what = f"FAILED {out_.failed}: {out_.message}"
                else:
                    what = f"passed (offline {out_.offline})"
                print(f"{machine} {dtype}: {what}"[:400], flush=True)
                results.setdefault(machine, {})[dtype] = _round_trip_record(out_)
    print(report(outcomes))
    if out:
        old = json.loads(out.read_text()) if out.exists() else {}
        for machine, answers in results.items():
            old[machine] = dict(sorted({**old.get(machine, {}), **answers}.items()))
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")
        tmp.replace(out)
    return 0 if all(not o.failed for o in outcomes) else 1


def _round_trip_record(out: Any) -> dict[str, str]:
    """What a round trip of one type came to: {"result": "passed" | "failed" | "discarded",
    "stage": the failing stage, "words": why, "offline": offline's answer}."""
    if out.discarded:
        return {"result": "discarded", "words": _last(out.discarded)}
    if out.failed:
        return {"result": "failed", "stage": out.failed, "words": _last(out.message)[:300]}
    offline = out.offline if out.offline in ("same", "skipped") else "refused"
    return {"result": "passed", "offline": offline}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.device_census", description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", default="q35,pc,aarch64-virt,arm-virt,riscv64-virt,pseries")
    parser.add_argument("--types", help="only these types (comma-separated)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, help="merge the answers into this JSON file")
    parser.add_argument("--round-trip", action="store_true",
                        help="run every stage of the random round trip on each type the recorded census "
                             "found migrating, instead of asking QEMU again")
    parser.add_argument("--undrawn", action="store_true", help="with --round-trip: only the types the generator "
                        "(tests/qemugen.py) does not draw")
    args = parser.parse_args(argv)
    machines = [m for m in args.machines.split(",") if m]
    types = args.types.split(",") if args.types else None
    if args.round_trip:
        return round_trip(machines, types, json.loads(CENSUS_FILE.read_text()), args.undrawn, args.out)
    census: dict[str, Any] = json.loads(args.out.read_text()) if args.out and args.out.exists() else {}
    for machine in machines:
        answers = census_machine(machine, types, args.jobs, lambda line: print(line, flush=True))
        census.setdefault(machine, {}).update(answers)
        census[machine] = dict(sorted(census[machine].items()))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.out.with_suffix(".tmp")
            tmp.write_text(json.dumps(census, indent=1, sort_keys=True) + "\n")
            tmp.replace(args.out)
        n = sum(1 for a in answers.values() if a["result"] == "migrates")
        print(f"{machine}: {n} of {len(answers)} types migrate", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
