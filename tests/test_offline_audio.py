"""Sound offline against online: ``-audiodev`` and the sound devices on the five offline machines.

A seeded generator writes sound configurations as users and tests/qemugen.py write them: zero to
two ``-audiodev none`` (both spellings of the driver, sometimes a timer-period), PCI cards (AC97,
ES1370) and HDA controllers with codecs (with and without ``cad=``) on the root bus, a root port
or a bridge, the x86 ISA cards, each naming an audiodev or not (QEMU 7.2 then takes the first
-audiodev), and now and then what QEMU refuses (an unknown audiodev, a codec address past 14, an
-audiodev without id).  QEMU is the oracle: online qemu2dtb reads what it built; offline must
write the same guest tree and back-end overlay, or refuse where QEMU refuses.

Without any -audiodev QEMU takes the host's default audio driver and describes the device with
its name: offline refuses that by name, and the test shows from QEMU that the name is none the
command line gave.  QEMU 10.0 (its own models) is held the same way where it is installed.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .qemu_helpers import assert_offline_matches_online, qemu2dtb_run, qemu10

SEED = 1313
#: machine -> (binary, -M type, PCI Express, ISA)
MACHINES = {"q35": ("qemu-system-x86_64", "pc-q35-7.2", True, True),
            "pc": ("qemu-system-x86_64", "pc-i440fx-7.2", False, True),
            "aarch64-virt": ("qemu-system-aarch64", "virt-7.2", True, False),
            "arm-virt": ("qemu-system-arm", "virt-7.2", True, False),
            "riscv64-virt": ("qemu-system-riscv64", "virt", True, False)}
CASES_PER_MACHINE = 2
_CODECS = ["hda-duplex", "hda-output", "hda-micro"]
_ISA = ["sb16", "adlib", "cs4231a", "gus"]


def sound_case(machine: str, seed: int, named: bool = False) -> list[str]:
    """A sound configuration of ``machine``: its -audiodev back-ends and sound devices (``named``:
    each device names its audiodev, as QEMU 10.0 needs)."""
    rng = random.Random(f"{machine}:{seed}")  # a str seed is hashed the same in every run
    binary, mtype, pcie, isa = MACHINES[machine]
    argv = [binary, "-M", mtype] + (["-nodefaults"] if rng.random() < 0.5 else [])
    ids = [f"snd{n}" for n in range(rng.choice([1, 1, 2]))]
    for ident in ids:
        driver = rng.choice(["none", "driver=none"])
        argv += ["-audiodev", f"{driver},id={ident}" + (",timer-period=5000" if rng.random() < 0.2 else "")]
    if rng.random() < 0.05:
        argv += ["-audiodev", "none"]  # QEMU: "Parameter 'id' is missing"

    def audio() -> str:
        pick = rng.random()
        if pick < 0.015 and not named:
            return ",audiodev=nosuch"  # QEMU: "can't find value 'nosuch'"
        return f",audiodev={rng.choice(ids)}" if pick < 0.8 or named else ""  # else 7.2's first -audiodev

    buses = [""]
    if rng.random() < 0.4:
        argv += ["-device", "pcie-root-port,id=rp,chassis=1" if pcie else "pci-bridge,id=br,chassis_nr=1"]
        buses.append(",bus=rp" if pcie else ",bus=br,addr=3")
    if pcie and rng.random() < 0.3:
        argv += ["-device", "pcie-root-port,id=rp2,chassis=2", "-device", "pcie-pci-bridge,id=pb,bus=rp2"]
        buses.append(",bus=pb,addr=1")
    taken_bus = set()
    for n in range(rng.randint(1, 4)):
        card = rng.choice(["ich9-intel-hda", "intel-hda", "AC97", "ES1370", *(["isa"] if isa else [])])
        bus = rng.choice([b for b in buses if b not in taken_bus or b == ""])
        if bus:
            taken_bus.add(bus)  # a root port takes one device; the bridges' addresses stay apart
        if card == "isa":
            argv += ["-device", rng.choice(_ISA) + audio()]
        elif card.endswith("intel-hda"):
            argv += ["-device", f"{card},id=hda{n}{bus}"]
            cad = -1
            for _ in range(rng.randint(1, 3)):
                given = ""
                if rng.random() < 0.4:
                    # up, or one in use (QEMU takes it), or 15 ("HDA audio codec address is full")
                    cad = rng.choice([cad + rng.randint(1, 6)] * 8 + [max(cad, 0)] + [15])
                    given = f",cad={cad}"
                else:
                    cad += 1
                argv += ["-device", f"{rng.choice(_CODECS)},bus=hda{n}.0{given}{audio()}"]
        else:
            argv += ["-device", card + bus + audio()]
    return argv


def _cases() -> list[tuple[str, int]]:
    return [(m, SEED * 100 + i) for m in MACHINES for i in range(CASES_PER_MACHINE)]


@pytest.mark.parametrize("machine,seed", _cases())
def test_sound_offline_equals_online(machine: str, seed: int, tmp_path: Path) -> None:
    argv = sound_case(machine, seed)
    assert_offline_matches_online(argv, tmp_path)


def test_cases_reach_the_corners() -> None:
    """The generator draws every card and codec, given and QEMU's codec addresses, the default
    audiodev and two back-ends, and the refused forms: the oracle test is not vacuous (checked on
    many seeds, as the oracle runs few)."""
    text = "\n".join(" ".join(sound_case(m, s)) for m in MACHINES for s in range(300))
    assert re.search(r"cad=(\d+)\S* .*,cad=\1[, ]", text)  # a codec address given twice on one line
    for needle in ["AC97", "ES1370", "ich9-intel-hda", "intel-hda,", *_CODECS, *_ISA, ",cad=", ",cad=15",
                   "audiodev=nosuch", "id=snd1", "driver=none", "timer-period", "-audiodev none ", "bus=rp", "bus=pb"]:
        assert needle in text, needle
    assert any("-device AC97 " in c or c.endswith("-device AC97") for c in text.splitlines())  # the default audiodev


@pytest.mark.parametrize("machine", ["q35", "aarch64-virt"])
def test_host_default_audio_refused_by_name(machine: str, tmp_path: Path) -> None:
    """Without -audiodev QEMU 7.2 describes the sound device with an audio back-end the command
    line does not name (the host's default driver): offline refuses it in one line, naming why."""
    binary, mtype, _, _ = MACHINES[machine]
    argv = [binary, "-M", mtype, "-nodefaults", "-device", "AC97"]
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} (the online oracle) is not installed")
    online = qemu2dtb_run(argv, tmp_path / "on.dtb", offline=False)
    if online.returncode != 0:
        # no audio driver starts on this host: QEMU refuses, and offline must too
        assert "audio" in online.stderr, online.stderr
    else:
        overlay = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(tmp_path / "on.backend.dtbo")],
                                 capture_output=True, text=True, check=True).stdout
        assert "qemu,audiodev = " in overlay  # the host's driver, by its name (alsa on the machine measured)
    offline = qemu2dtb_run(argv, tmp_path / "off.dtb", offline=True)
    assert offline.returncode != 0 and "Traceback" not in offline.stderr
    assert len(offline.stderr.strip().splitlines()) == 1 and "host's default audio back-end" in offline.stderr
    assert not (tmp_path / "off.dtb").exists()


@pytest.mark.parametrize("machine,seed", [("q35", SEED * 100 + 50), ("aarch64-virt", SEED * 100 + 51)])
def test_sound_offline_equals_online_on_10_0(machine: str, seed: int, tmp_path: Path) -> None:
    """QEMU 10.0 (its binary by path, unpinned type: its own models), every device naming its
    audiodev: 10.0 takes no -audiodev as a default, offline refuses a device without one."""
    argv = sound_case(machine, seed, named=True)
    argv[0] = qemu10(argv[0])
    if not Path(argv[0]).exists():
        pytest.skip(f"QEMU 10.0's {Path(argv[0]).name} is not installed ({argv[0]}; scripts/install-qemu10 installs it)")
    argv[argv.index("-M") + 1] = {"pc-q35-7.2": "q35", "virt-7.2": "virt"}[argv[argv.index("-M") + 1]]
    assert_offline_matches_online(argv, tmp_path)


def test_no_default_audiodev_on_10_0(tmp_path: Path) -> None:
    """QEMU 10.0 gives a device without audiodev= the host's default driver even beside an
    -audiodev (7.2 took the first -audiodev): offline refuses it by name, and QEMU shows why (it
    refuses where no driver starts, else names another back-end than the command line's)."""
    argv = [qemu10("qemu-system-x86_64"), "-M", "q35", "-nodefaults", "-audiodev", "none,id=a", "-device", "AC97"]
    if not Path(argv[0]).exists():
        pytest.skip(f"QEMU 10.0's {Path(argv[0]).name} is not installed ({argv[0]}; scripts/install-qemu10 installs it)")
    online = qemu2dtb_run(argv, tmp_path / "on.dtb", offline=False)
    if online.returncode != 0:
        assert "no default audio driver available" in online.stderr, online.stderr
    else:
        overlay = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(tmp_path / "on.backend.dtbo")],
                                 capture_output=True, text=True, check=True).stdout
        assert 'qemu,audiodev = "a"' not in overlay
    offline = qemu2dtb_run(argv, tmp_path / "off.dtb", offline=True)
    assert offline.returncode != 0 and len(offline.stderr.strip().splitlines()) == 1, offline.stderr
    assert "QEMU 10.0 takes no -audiodev as a default" in offline.stderr


@pytest.mark.parametrize("tail", [
    # -audiodev given after the device: QEMU makes the back-ends first (measured: the device has it)
    ["-device", "AC97,audiodev=late", "-audiodev", "none,id=late"],
    # libvirt's JSON form, and a JSON member of the wrong type (QEMU refuses it)
    ["-audiodev", '{"id":"a","driver":"none","timer-period":5000}', "-device", "ES1370,audiodev=a"],
    ["-audiodev", '{"id":"a","driver":"none","timer-period":"5000"}', "-device", "ES1370,audiodev=a"],
    # a -global naming an audiodev that does not exist: QEMU refuses, offline must not answer
    ["-audiodev", "none,id=s", "-global", "AC97.audiodev=zz", "-device", "AC97"],
    # an audiodev= on a device type without one (the HDA controller): QEMU refuses it
    ["-audiodev", "none,id=s", "-device", "intel-hda,audiodev=s"],
])
def test_sound_corners(tail: list[str], tmp_path: Path) -> None:
    argv = ["qemu-system-x86_64", "-M", "pc-q35-7.2", "-nodefaults", *tail]
    assert_offline_matches_online(argv, tmp_path)
