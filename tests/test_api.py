"""The public Python API: parse, read, write, typed accessors, checked against dtc's output."""

from __future__ import annotations

import os

import dtvm

from .oracle import dtc, needs_dtc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "dtvm", "examples", "example.dts")


def test_parse_and_accessors() -> None:
    dt = dtvm.parse_dts(EXAMPLE)
    cpu = dt.get_node("/cpus/cpu@0")
    assert cpu is not None
    assert cpu["reg"].as_u32s() == [0]
    assert cpu["compatible"].as_string() == "arm,cortex-a57"
    uart = dt.get_node("/serial@9000000")
    assert uart is not None
    assert uart["compatible"].as_strings() == ["arm,pl011", "arm,primecell"]
    assert uart.unit_address == "9000000" and uart.basename == "serial"
    assert [lab.name for lab in uart.labels] == ["uart0"]
    assert dt.reservations[0].address == 0x40000000


@needs_dtc
def test_read_dtb_write_dts_equals_dtc() -> None:
    blob = dtc(["-O", "dtb", EXAMPLE]).out
    tree = dtvm.read_dtb(blob)
    assert dtvm.write_dts(tree).encode("latin-1") == dtc(["-I", "dtb", "-O", "dts", "-"], stdin=blob).out
    assert dtvm.write_dtb(tree) == blob
    mem = tree.get_node("/memory@40000000")
    assert mem is not None
    assert mem["reg"].as_u32s() == [0, 0x40000000, 0, 128 * 1024 * 1024]
