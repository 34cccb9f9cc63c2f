"""Offline on the DT machines (arm/aarch64 and riscv64 virt; dtvm/qemu/offline_dt.py), held to QEMU 7.2.

QEMU is the oracle throughout: ``-smp`` as QEMU parses it (the machine's topology it reports),
and generated configurations (tests/qemugen.py) whose ``qemu2dtb --offline`` must give QEMU's own
description byte for byte, or a one-line refusal naming what is not recorded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .qemu_offline_random import run_offline_case
from .qemugen import MACHINES, generate

DT_MACHINES = ["aarch64-virt", "arm-virt", "riscv64-virt"]
SEED = int(os.environ.get("DTVM_GEN_SEED", "0")) * 1000 + 713
#: generated cases per machine in make test (the offline stage alone is cheap: QEMU runs only
#: where offline answers); make check-qemu-offline FIRST=1 MACHINES=aarch64-virt,arm-virt,riscv64-virt runs more
PER_MACHINE = 25


@pytest.mark.parametrize("text", ["2", "3", "cpus=2,maxcpus=4", "1,maxcpus=4,sockets=4", "4,threads=2",
                                  "2,sockets=2", "4,cores=2", "2,maxcpus=4,sockets=2,cores=2,threads=1",
                                  "maxcpus=2", "sockets=2,cores=2"])
def test_smp_key_is_qemus_topology(text: str) -> None:
    """The topology offline keys its recordings by is the one QEMU makes of the same -smp."""
    if shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 is not installed (its oracle cannot run)")
    from dtvm.qemu.config import from_snapshot
    from dtvm.qemu.live import read_argv
    from dtvm.qemu.offline_dt import smp_key

    machine = from_snapshot(read_argv(["qemu-system-aarch64", "-M", "virt-7.2", "-nodefaults", "-smp", text])).machine
    # the reader leaves the topology out where it is what -smp N[,maxcpus=M] gives: all cores
    topo = machine.topology or {"socket-id": 1, "core-id": machine.max_cpus, "thread-id": 1}
    assert smp_key(text) == (machine.cpus, machine.max_cpus, topo.get("socket-id", 1), topo.get("core-id", 1),
                             topo.get("thread-id", 1))


#: offline reads a command line, so hot-plug cases are left out here (the round trip covers them)
CASES = [c for c in (generate(SEED + i, DT_MACHINES[i % 3]) for i in range(3 * PER_MACHINE)) if not c.hotplug]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.name for c in CASES])
def test_generated_offline_is_qemus(index: int, tmp_path: Path) -> None:
    case = CASES[index]
    if shutil.which(MACHINES[case.machine].binary) is None:
        pytest.skip(f"{MACHINES[case.machine].binary} is not installed (its oracle cannot run)")
    out = run_offline_case(case, tmp_path, refusals_first=True)
    if out.result == "discarded":
        pytest.skip(f"not a configuration QEMU starts: {out.detail}")
    assert out.result in ("same", "refused"), f"[{out.result}] {out.detail}\n{' '.join(case.argv)}"


def test_model_without_dt_smp_still_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model recorded before dt-smp answers as it did and refuses -smp by name (the format
    stays backward compatible)."""
    from dtvm.qemu import offline
    from dtvm.qemu.models import load_model

    def old_model(machine):  # type: ignore[no-untyped-def]
        data = dict(load_model(machine))
        data.pop("dt-smp", None)
        return data

    monkeypatch.setattr(offline, "load_model", old_model)
    argv = ["qemu-system-aarch64", "-M", "virt-7.2", "-nodefaults"]
    assert offline.offline_config(argv).machine.cpus == 1
    with pytest.raises(offline.OfflineError, match=r"^-smp 2: not in the offline model"):
        offline.offline_config([*argv, "-smp", "2"])
    with pytest.raises(offline.OfflineError, match="alone under -nodefaults only"):
        offline.offline_config([*argv, "-M", "virt-7.2,highmem=off", "-cpu", "max"])
