"""virtio-iommu-pci on aarch64/arm virt, offline against online.

Plugging a virtio-iommu-pci makes virt write into its own DT (hw/arm/virt.c
create_virtio_iommu_dt_bindings: a ``virtio_iommu@S,F`` node with the next phandle, the PCIe
host's ``iommu-map`` unless the root bus bypasses IOMMUs); offline writes the same
(dtvm/qemu/offline_dt.py plug_virtio_iommu), where the recorder checked that against QEMU for the
command line's DT-changing options.  QEMU 7.2 is the oracle: seeded cases (slot, function,
options, CPU model, -smp, defaults or not) are described online and offline, byte for byte.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from .qemu_helpers import assert_offline_matches_online

SEED = 1308
CASES = 6
_OPTIONS = {"qemu-system-aarch64": ["gic-version=3", "default-bus-bypass-iommu=on", "secure=on", "highmem=off"],
            "qemu-system-arm": ["gic-version=3", "secure=on", "virtualization=on"]}
_CPUS = {"qemu-system-aarch64": ["max", "cortex-a57", "cortex-a15"], "qemu-system-arm": ["cortex-a7", "max"]}


def _case(n: int) -> list[str]:
    rng = random.Random(SEED * 1000 + n)
    binary = "qemu-system-aarch64" if n % 2 == 0 else "qemu-system-arm"
    options = rng.sample(_OPTIONS[binary], rng.choice([0, 1, 1]))
    argv = [binary, "-M", ",".join(["virt-7.2", *options])]
    if rng.random() < 0.5:
        argv.append("-nodefaults")
    if rng.random() < 0.4:
        argv += ["-cpu", rng.choice(_CPUS[binary])]
    if rng.random() < 0.3:
        argv += ["-smp", "2"]
    if rng.random() < 0.5:
        argv += ["-device", "virtio-rng-pci"]
    spec = "virtio-iommu-pci"
    if rng.random() < 0.5:
        spec += f",addr={rng.randint(3, 30):#x}"
    return [*argv, "-device", spec]


@pytest.mark.parametrize("n", range(CASES))
def test_virtio_iommu_offline_equals_online(n: int, tmp_path: Path) -> None:
    argv = _case(n)
    assert_offline_matches_online(argv, tmp_path)


def test_cases_reach_the_corners() -> None:
    cases = [" ".join(_case(n)) for n in range(CASES)]
    assert any("qemu-system-arm " in c for c in cases) and any("qemu-system-aarch64 " in c for c in cases)
    assert any(",addr=" in c for c in cases) and any("virtio-iommu-pci" == c.rsplit(" ", 1)[-1] for c in cases)
    assert any("virt-7.2," in c for c in cases)


def test_second_iommu_is_refused(tmp_path: Path) -> None:
    """QEMU refuses a virtio-iommu beside the SMMUv3 ("virt machine does not support multiple
    IOMMUs"): so does offline, in one line."""
    if shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 (the online oracle) is not installed")
    assert_offline_matches_online(["qemu-system-aarch64", "-M", "virt-7.2,iommu=smmuv3", "-nodefaults",
                                   "-device", "virtio-iommu-pci"], tmp_path)
