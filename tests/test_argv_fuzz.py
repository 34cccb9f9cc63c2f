"""Fuzz target for the QEMU command line as input: ``qemu2dtb --offline -- ARGV`` and QEMU's option
syntax (``dtvm.qemu.opts``), with seeded random command lines.

Contract: every run ends in success or one line on stderr and a nonzero exit, never a traceback.
Oracle for the successes: QEMU 7.2 itself must accept every command line the offline model
accepted (started paused by ``live.read_argv``; QEMU's refusal would mean the offline model
describes a VM that cannot exist).

``DTVM_FUZZ_ARGV_CASES`` sets the number of command lines (default 400).
"""

from __future__ import annotations

import os
import random
import shutil
from typing import Any

import pytest
from click.testing import CliRunner

from dtvm.cli.group import cli
from dtvm.qemu import live
from dtvm.qemu.opts import OptionError, parse, parse_global

from .qemu_helpers import needs_qemu

CASES = int(os.environ.get("DTVM_FUZZ_ARGV_CASES", "400"))

BINARIES = ["qemu-system-x86_64", "qemu-system-x86_64", "qemu-system-aarch64", "qemu-system-riscv64",
            "qemu-system-ppc64", "qemu-system-arm", "qemu-system-nonesuch", "", "-M"]

# option -> example values (valid for some machine, nearly valid, and wrong)
VALUES: dict[str, list[str]] = {
    "-M": ["q35", "pc", "virt", "pc-q35-7.2", "pc-i440fx-7.2", "pseries", "virt-7.2", "q35,usb=on",
           "type=q35", "q35,,x", "none", "", "help", "q35,sata=off", "virt,gic-version=3", "type="],
    "-m": ["512", "2G", "1024M", "x", "-1", "99999999999999999999G", "1.5G", "size=1G", "0", ""],
    "-smp": ["2", "1", "0", "cores=2", "1000000", "-3", "2,sockets=1", "x"],
    "-cpu": ["qemu64", "max", "host", "cortex-a57", "qemu64,+vmx", "nonesuch", "", "Skylake-Client"],
    "-vga": ["none", "std", "virtio", "x"],
    "-serial": ["none", "stdio", "null", "file:/dev/null", "mon:stdio", ""],
    "-parallel": ["none", "null", "x"],
    "-nic": ["user", "user,model=e1000", "none", "", "user,model=virtio-net-pci,mac=52:54:00:00:00:01",
             "tap", "user,model=nonesuch"],
    "-net": ["none", "nic", "user"],
    "-drive": ["if=none,id=d0,driver=null-co", "if=none,id=d0,file=/nonexistent,format=raw",
               "if=ide,file=/dev/null", "id=,if=none", "if=none,id=d0,driver=null-co,size=1G",
               "file=a,,b,if=none,id=d1,format=raw", "if=none,id=d0,format=qcow2,file=/dev/null"],
    "-blockdev": ["driver=null-co,node-name=n0", "driver=raw,node-name=n1,file.driver=null-co",
                  "driver=qcow2", "{}", "node-name=n0"],
    "-cdrom": ["/dev/null", "/nonexistent", ""],
    "-hda": ["/dev/null", "/nonexistent"],
    "-global": ["e1000.mac=52:54:00:00:00:02", "ICH9-LPC.disable_s3=1", "x", "a.b", "driver=e1000,property=x,value=1",
                ".x=1", "isa-serial.iobase=0x2f8"],
    "-object": ["rng-random,id=r0,filename=/dev/urandom", "iothread,id=io0", "", "x,id=y"],
    "-device": ["virtio-net-pci,id=n0", "e1000,bus=pcie.0,addr=0x3", "e1000,addr=3.0", "virtio-rng-pci",
                "qemu-xhci,id=usb", "usb-tablet", "virtio-blk-pci,drive=d0", "ide-hd,drive=d0",
                "pcie-root-port,id=rp1,chassis=1", "virtio-net-pci,bus=rp1", "nonesuch", "", ",", "id=x",
                "virtio-net-pci,,x", "e1000,mac=zz", "isa-serial,iobase=0x2f8", "virtio-scsi-pci,id=s0",
                "scsi-hd,drive=d0,bus=s0.0", "e1000,romfile=x.rom", "driver=e1000", "e1000,addr=99.9"],
    "-netdev": ["user,id=u0", "tap,id=t0", "", "id=x"],
    "-chardev": ["null,id=c0", "socket,id=s,path=/tmp/x", "", "stdio,id=x"],
    "-kernel": ["/dev/null", "/nonexistent"],
    "-append": ["console=ttyS0", ""],
    "-nodefaults": [],
    "-usb": [],
    "-S": [],
    "-no-user-config": [],
    "-nographic": [],
    "-display": ["none", "gtk"],
    "-name": ["vm", "x,debug-threads=on"],
    "-uuid": ["00000000-0000-0000-0000-000000000001", "x"],
    "-incoming": ["defer"],
    "-bogus": [],
}

_JUNK = ["=", ",", ",,", "\0", "\n", "é", "\udc80", "-", "--", "x" * 5000, "0x", "id=", "a=b=c", " "]


def _mutate(rng: random.Random, text: str) -> str:
    if rng.random() < 0.8 or not text:
        return text
    pos = rng.randrange(len(text) + 1)
    return text[:pos] + rng.choice(_JUNK) + text[pos + rng.randrange(3):]


def make_argv(seed: int) -> list[str]:
    rng = random.Random(seed)
    argv = [rng.choice(BINARIES)]
    if rng.random() < 0.9:
        argv += ["-M", rng.choice(VALUES["-M"])]
    for _ in range(rng.randrange(0, 7)):
        opt = rng.choice(list(VALUES))
        spelled = "-" + opt if rng.random() < 0.1 else opt
        argv.append(spelled)
        values = VALUES[opt]
        if values and rng.random() < 0.97:
            argv.append(_mutate(rng, rng.choice(values)))
    return argv


def _one_line(result: Any, argv: list[str]) -> str:
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        import traceback

        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        pytest.fail(f"qemu2dtb --offline -- {argv!r}: traceback\n{trace}")
    if result.exit_code == 0:
        return "ok"
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("dtvm qemu2dtb: "), (argv, result.stderr)
    return "error"


def _offline(runner: CliRunner, argv: list[str]) -> str:
    result = runner.invoke(cli, ["qemu2dtb", "--offline", "--format", "dts", "--", *argv])
    return _one_line(result, argv)


def test_offline_argv_fuzz() -> None:
    """The contract: success or one line, never a traceback, for every seeded command line."""
    runner = CliRunner()
    outcomes: dict[str, int] = {}
    for n in range(CASES):
        outcome = _offline(runner, make_argv(7100 + n))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"\nqemu2dtb --offline fuzz: {CASES} command lines: {outcomes}")
    assert outcomes.get("error") and outcomes.get("ok")


@needs_qemu("qemu-system-x86_64", "qemu-system-aarch64")
def test_offline_accepts_only_what_qemu_accepts() -> None:
    """The oracle: QEMU accepts every command line the offline model described (a seeded sample,
    each a QEMU start); a refusal means the offline model describes a VM that cannot exist."""
    runner = CliRunner()
    accepted = [argv for argv in (make_argv(7100 + n) for n in range(CASES))
                if shutil.which(argv[0] or "-") and _offline(runner, argv) == "ok"]
    refused = []
    for argv in random.Random(5).sample(accepted, min(16, len(accepted))):
        try:
            live.read_argv(argv, timeout=20)
        except live.QemuExitedError as exc:
            refused.append(f"{argv!r}: {str(exc)[:200]}")
    assert not refused, "offline accepted what QEMU refuses:\n" + "\n".join(refused)


def test_option_syntax_fuzz() -> None:
    """QEMU's option syntax on random text: a result or one OptionError line."""
    rng = random.Random(19)
    alphabet = ["a", "b", "=", ",", ",,", "x=1", "id", ".", "-", "\0", "é", "\n", " ", "0", "\\", '"', "{", "}"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        for kwargs in ({}, {"implied": "driver"}, {"implied": "type", "keyval": True}):
            try:
                parse(text, **kwargs)  # type: ignore[arg-type]
            except OptionError as exc:
                assert "\n" not in str(exc), (text, str(exc))
        try:
            parse_global(text, where="-global")
        except OptionError as exc:
            assert "\n" not in str(exc), (text, str(exc))
