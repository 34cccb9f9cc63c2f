"""dtvm.qemu.opts: QEMU's option syntax, written and read, with QEMU 7.2 as the oracle.

Safety (issue 6): hostile values are rendered into ``-device`` and ``-machine`` arguments, QEMU is
started from that argv (no shell), and every value is read back over QMP (``qom-get``) and must
equal the original, while ids, buses, addresses, drives and the machine's own options stay what
dtvm set and no device appears that dtvm did not ask for.  Reading: ``parse`` is compared with
what QEMU makes of hand-written options (property values, which ``id`` and ``driver`` win, bare
words, and QEMU's own error messages).  Each QEMU is started by ``tests.qemu_helpers`` and killed
by pid when the test ends.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtvm.errors import DtvmError
from dtvm.qemu.opts import (
    OptionError,
    check_id,
    check_key,
    escape,
    format_argv,
    parse,
    parse_global,
    render,
    render_global,
)

from .qemu_helpers import VM, VMs, needs_qemu

QEMU = "qemu-system-x86_64"
MACHINE = "pc-q35-7.2"
needs_x86 = needs_qemu(QEMU)

# every character escape() refuses: C0, DEL, C1, the Unicode line/paragraph separators
CONTROL = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)]
NONCHARACTERS = ["\ufdd0", "\ufdef", "\ufffe", "\uffff", "\U0001fffe", "\U0010ffff"]


@pytest.fixture
def vms(tmp_path: Path) -> Iterator[VMs]:
    pool = VMs(tmp_path)
    yield pool
    pool.stop_all()


def _children(vm: VM, path: str) -> set[str]:
    return {p["name"] for p in vm.qmp("qom-list", {"path": path}) if p["type"].startswith("child<")}


def _get(vm: VM, path: str, prop: str) -> Any:
    return vm.qmp("qom-get", {"path": path, "property": prop})


def _run_refused(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run QEMU on arguments it must refuse (it exits by itself); no shell, killed on timeout."""
    argv = [QEMU, "-M", MACHINE, "-nodefaults", "-display", "none", "-S", *args]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)


# ---------------------------------------------------------------------------------------------
# escape, check_key, check_id


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("", ""),
        ("plain", "plain"),
        (",", ",,"),
        (",,", ",,,,"),
        (",a,", ",,a,,"),
        ("a=b", "a=b"),
        (",id=evil", ",,id=evil"),
        ("é😀 '\"\\$(x)", "é😀 '\"\\$(x)"),
    ],
)
def test_escape_doubles_commas_only(value: str, escaped: str) -> None:
    assert escape(value, "/n:p") == escaped


@pytest.mark.parametrize("ch", CONTROL, ids=lambda c: f"U+{ord(c):04X}")
def test_escape_refuses_control_characters_and_newlines(ch: str) -> None:
    with pytest.raises(OptionError) as e:
        escape(f"ok{ch}ok", "/soc/disk@0:qemu,serial")
    text = str(e.value)
    assert text.startswith("/soc/disk@0:qemu,serial: ")
    assert f"U+{ord(ch):04X}" in text and "offset 2" in text
    assert text.isprintable()  # one line, the character itself never echoed
    assert isinstance(e.value, DtvmError)


@pytest.mark.parametrize("value", ["\udc80", "a\ud800b", *NONCHARACTERS])
def test_escape_refuses_non_utf8_and_noncharacters(value: str) -> None:
    with pytest.raises(OptionError, match=r"not UTF-8|noncharacter"):
        escape(value, "x")


@pytest.mark.parametrize(
    "key", ["serial", "x-pcie-lnksta-dllla", "file.filename", "a+b", "_x", "0", "failover_pair_id", "+avx"]
)
def test_check_key_accepts_names(key: str) -> None:
    assert check_key(key, "w") == key


@pytest.mark.parametrize(
    "key", ["", "-x", "a=b", "a,b", "a b", "é", "serial\n", "a\x00", "a:b", "{", "a/b", "?"]
)
def test_check_key_refuses(key: str) -> None:
    with pytest.raises(OptionError, match=r"^w: .* is not a QEMU option name"):
        check_key(key, "w")


GOOD_IDS = ["a", "A", "z9", "a-b.c_d", "a.", "net0", "x" * 200]
BAD_IDS = ["", "1a", "_a", "-a", ".a", "a b", "a,b", "é", "aé", "a/b", "a:b", "a\n", "a="]


@pytest.mark.parametrize("ident", GOOD_IDS)
def test_check_id_accepts(ident: str) -> None:
    assert check_id(ident, "w") == ident


@pytest.mark.parametrize("ident", BAD_IDS)
def test_check_id_refuses(ident: str) -> None:
    with pytest.raises(OptionError, match="is not a QEMU id"):
        check_id(ident, "w")


@needs_x86
@pytest.mark.parametrize("ident", GOOD_IDS + [i for i in BAD_IDS if "\n" not in i])
def test_check_id_is_qemus_id_wellformed(vms: VMs, ident: str) -> None:
    """QEMU accepts exactly the ids check_id accepts (written escaped, so ',' reaches it)."""
    chardev = "null,id=" + escape(ident, "id")
    try:
        check_id(ident, "w")
    except OptionError:
        proc = _run_refused(["-chardev", chardev])
        assert proc.returncode == 1
        assert "Parameter 'id' expects an identifier" in proc.stderr
    else:
        vm = vms.start([QEMU, "-M", MACHINE, "-nodefaults", "-chardev", chardev])
        assert ident in {c["label"] for c in vm.qmp("query-chardev")}


# ---------------------------------------------------------------------------------------------
# render


def test_render_example() -> None:
    pairs = [("id", "net0"), ("bus", "pcie.0"), ("addr", "0x3.0x0"), ("mac", "52:54:00:12:34:56")]
    assert (
        render("virtio-net-pci", pairs, "/pci/ethernet@3", implied="driver")
        == "virtio-net-pci,id=net0,bus=pcie.0,addr=0x3.0x0,mac=52:54:00:12:34:56"
    )
    assert (
        render(None, [("if", "none"), ("id", "d0"), ("file", "a,b.img")], "w")
        == "if=none,id=d0,file=a,,b.img"
    )
    assert render("user", [], "w") == "user"
    assert render(None, [], "w") == ""


@pytest.mark.parametrize(
    "head", ["", "a,b", "a=b", "a b", "-x", "help", "?", "virtio-net-pci\n", "é", "a\x1b", "{", "xlnx,efuse"]
)
def test_render_refuses_heads(head: str) -> None:
    with pytest.raises(OptionError, match=r"^/n: "):
        render(head, [("id", "x")], "/n", implied="driver")


def test_render_refuses_what_would_change_the_option() -> None:
    with pytest.raises(OptionError, match="implied first value"):
        render("virtio-blk-pci", [("driver", "virtio-net-pci")], "w", implied="driver")
    # without a head, the implied key is an ordinary pair
    assert render(None, [("driver", "virtio-blk-pci")], "w", implied="driver") == "driver=virtio-blk-pci"
    with pytest.raises(OptionError, match="second 'id'"):
        render("virtio-blk-pci", [("id", "a"), ("id", "b")], "w")
    with pytest.raises(OptionError, match="is not a QEMU id"):
        render("virtio-blk-pci", [("id", "1a")], "w")
    with pytest.raises(OptionError, match="help"):
        render("virtio-blk-pci", [("help", "off")], "w")
    with pytest.raises(OptionError, match="not a QEMU option name"):
        render("virtio-blk-pci", [("bus=pcie.0,serial", "x")], "w")
    with pytest.raises(OptionError, match=r"value of 'serial' contains a newline \(U\+000A\)"):
        render("virtio-blk-pci", [("serial", "a\nb")], "w")
    # repeated keys other than id are written as given (QEMU reads some as lists)
    assert render("user", [("hostfwd", "a"), ("hostfwd", "b")], "w") == "user,hostfwd=a,hostfwd=b"


# ---------------------------------------------------------------------------------------------
# parse: QemuOpts


@pytest.mark.parametrize(
    ("text", "implied", "expected"),
    [
        ("", "driver", (None, [])),
        ("virtio-blk-pci", "driver", ("virtio-blk-pci", [])),
        ("virtio-blk-pci,drive=d0", "driver", ("virtio-blk-pci", [("drive", "d0")])),
        ("driver=virtio-blk-pci,drive=d0", "driver", (None, [("driver", "virtio-blk-pci"), ("drive", "d0")])),
        ("a=1,b=x,,y,c=", None, (None, [("a", "1"), ("b", "x,y"), ("c", "")])),
        ("a=1,", None, (None, [("a", "1")])),  # one trailing comma is skipped
        ("a=1,,", None, (None, [("a", "1,")])),
        ("a=1,,,", None, (None, [("a", "1,")])),
        ("a=,,,,b", None, (None, [("a", ",,b")])),
        ("a=b=c", None, (None, [("a", "b=c")])),
        ("a==", None, (None, [("a", "=")])),
        ("x,serial=s,serial=t", "driver", ("x", [("serial", "s"), ("serial", "t")])),
        ("x,id=a,id=b", "driver", ("x", [("id", "a"), ("id", "b")])),
        # bare words: key=on, nokey=off (any word starting with "no")
        ("x,multifunction", "driver", ("x", [("multifunction", "on")])),
        ("x,nomultifunction", "driver", ("x", [("multifunction", "off")])),
        ("x,notify_on_empty", "driver", ("x", [("tify_on_empty", "off")])),
        ("ipv6", None, (None, [("ipv6", "on")])),
        # the implied first value is read like a value: ',,' is a comma in it
        ("virtio-blk-pci,,x,drive=d0", "driver", ("virtio-blk-pci,x", [("drive", "d0")])),
        ("xlnx,,efuse,id=e0", "driver", ("xlnx,efuse", [("id", "e0")])),
        (",drive=d0", "driver", ("", [("drive", "d0")])),
        ("a,,b=c", "driver", ("a,b=c", [])),
        ("é😀 $(x),id=q", "driver", ("é😀 $(x)", [("id", "q")])),
    ],
)
def test_parse_qemuopts(text: str, implied: str | None, expected: tuple[Any, Any]) -> None:
    assert parse(text, implied=implied) == expected


@pytest.mark.parametrize(
    ("text", "implied", "column", "message"),
    [
        ("x,a b=1", "driver", 3, "is not a QEMU option name"),
        ("x,=1", "driver", 3, "empty option name"),
        ("x,,,y", None, 3, "empty option name"),  # 'x', then an empty bare word
        ("x,no", "driver", 3, "reads as ''=off"),
        ("x,no-a", "driver", 3, "reads as '-a'=off"),
        ("x,id=1a", "driver", 6, "is not a QEMU id"),
        ("x,id=", "driver", 6, "is not a QEMU id"),
        ("x,help", "driver", 3, "asks QEMU for help"),
        ("x,?", "driver", 3, "asks QEMU for help"),
        ("x,help=off", "driver", 3, "asks QEMU for help"),
        ("x,nohelp", "driver", 3, "asks QEMU for help"),
        ("help", "driver", 1, "asks QEMU for help"),
        ("x,serial=a\nb", "driver", 11, "newline"),
        ("x,serial=a\x1bb", "driver", 11, "control character"),
        ("x\u2028", "driver", 2, "newline"),
        ("x,s=\uffff", "driver", 5, "noncharacter"),
        ("x,s=\udc80", "driver", 5, "not UTF-8"),
    ],
)
def test_parse_errors_name_the_column(text: str, implied: str | None, column: int, message: str) -> None:
    with pytest.raises(OptionError) as e:
        parse(text, implied=implied, where="-device")
    assert e.value.column == column
    assert str(e.value).startswith(f"-device: column {column}: ")
    assert message in str(e.value)
    assert str(e.value).isprintable()


# ---------------------------------------------------------------------------------------------
# parse: keyval


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (None, [])),
        ("pc-q35-7.2", ("pc-q35-7.2", [])),
        ("pc-q35-7.2,usb=on,dt-compatible=a,,b", ("pc-q35-7.2", [("usb", "on"), ("dt-compatible", "a,b")])),
        ("type=q35,x=1,", (None, [("type", "q35"), ("x", "1")])),
        (
            "node-name=n0,file.filename=a,,b,cache.direct=on",
            (None, [("node-name", "n0"), ("file.filename", "a,b"), ("cache.direct", "on")]),
        ),
        ("a.0=x,a.1=y", (None, [("a.0", "x"), ("a.1", "y")])),
        ("__com.redhat_x=1", (None, [("__com.redhat_x", "1")])),
    ],
)
def test_parse_keyval(text: str, expected: tuple[Any, Any]) -> None:
    assert parse(text, implied="type", keyval=True) == expected


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("pc-q35-7.2,usb", 12, "expected '=' after parameter 'usb'"),
        ("pc-q35-7.2,,x", 12, "invalid parameter ''"),
        (",x=1", 1, "invalid parameter ''"),
        ("q35,1a=x", 5, "invalid parameter '1a'"),
        ("q35,a b=x", 5, "invalid parameter 'a b'"),
        ("q35,a.=x", 5, "invalid parameter 'a.'"),
        ("q35,+x=1", 5, "invalid parameter '+x'"),
        ("q35,help", 5, "asks QEMU for help"),
        ("q35,id=1a", 8, "is not a QEMU id"),
        ("q35,a" + "b" * 127 + "=1", 5, "longer than 127"),
    ],
)
def test_parse_keyval_errors(text: str, column: int, message: str) -> None:
    with pytest.raises(OptionError) as e:
        parse(text, implied="type", keyval=True, where="-M")
    assert e.value.column == column
    assert message in str(e.value)


# ---------------------------------------------------------------------------------------------
# properties: render and parse agree, and a value never adds anything

_VALUE_CHARS = st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"))
_NONCHAR_SET = (
    set(NONCHARACTERS)
    | {chr(c) for c in range(0xFDD0, 0xFDF0)}
    | {chr(p << 16 | low) for p in range(17) for low in (0xFFFE, 0xFFFF)}
)
VALUES = st.one_of(
    st.text(alphabet=st.sampled_from(list(",=ab \\'\"$()`;|&{}")), max_size=24),
    st.text(alphabet=_VALUE_CHARS, max_size=40),
).filter(lambda v: not (set(v) & _NONCHAR_SET))
HEADS = st.from_regex(r"[A-Za-z0-9_.+][A-Za-z0-9_.+-]{0,20}", fullmatch=True).filter(
    lambda h: h not in ("help",)
)
KEYS = st.from_regex(r"[A-Za-z0-9_.+][A-Za-z0-9_.+-]{0,15}", fullmatch=True).filter(
    lambda k: k not in ("id", "help", "driver")
)
KEYVAL_KEYS = st.from_regex(
    r"[a-z][a-z0-9_-]{0,8}(\.[a-z][a-z0-9_-]{0,8}|\.[0-9]{1,3}){0,2}", fullmatch=True
).filter(lambda k: k not in ("id", "help", "type"))
IDS = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,12}", fullmatch=True)


@settings(deadline=None, max_examples=300)
@given(head=st.none() | HEADS, pairs=st.lists(st.tuples(KEYS, VALUES), max_size=6), ident=st.none() | IDS)
def test_parse_render_round_trip(head: str | None, pairs: list[tuple[str, str]], ident: str | None) -> None:
    if ident is not None:
        pairs = [*pairs[:1], ("id", ident), *pairs[1:]]
    text = render(head, pairs, "w", implied="driver")
    assert not text.startswith("{")  # QEMU would read a '{' as JSON
    assert parse(text, implied="driver") == (head, pairs)
    # QEMU finds the id with a second scan that has no implied key (opts_parse_id): the head is a
    # bare word there, and the pairs, ids included, are exactly the ones written
    if head is not None and not head.startswith("no"):
        assert parse(text) == (None, [(head, "on"), *pairs])


@settings(deadline=None, max_examples=200)
@given(head=st.none() | HEADS, pairs=st.lists(st.tuples(KEYVAL_KEYS, VALUES), max_size=6))
def test_parse_render_round_trip_keyval(head: str | None, pairs: list[tuple[str, str]]) -> None:
    text = render(head, pairs, "w", implied="type")
    assert parse(text, implied="type", keyval=True) == (head, pairs)


@settings(deadline=None, max_examples=500)
@given(value=st.text(alphabet=st.characters(), max_size=12))
def test_escape_refuses_exactly_the_unsafe_characters(value: str) -> None:
    unsafe = any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in _NONCHAR_SET for ch in value)
    try:
        escaped = escape(value, "w")
    except OptionError:
        assert unsafe
    else:
        assert not unsafe
        assert escaped.replace(",,", ",") == value and escaped.count(",") == 2 * value.count(",")


@settings(deadline=None, max_examples=300)
@given(value=VALUES)
def test_a_value_cannot_add_an_option(value: str) -> None:
    pairs = [("serial", value), ("drive", "d0"), ("id", "blk0"), ("bus", "pcie.0")]
    text = render("virtio-blk-pci", pairs, "w", implied="driver")
    for keyval in (False, True):
        assert parse(text, implied="driver", keyval=keyval) == ("virtio-blk-pci", pairs)


@settings(deadline=None, max_examples=300)
@given(text=st.text(alphabet=st.sampled_from(list(",=ano_x.1 ?\n\x00é")) | st.characters(), max_size=30))
def test_parse_fails_only_with_option_error(text: str) -> None:
    for keyval in (False, True):
        for implied in (None, "driver"):
            try:
                head, pairs = parse(text, implied=implied, keyval=keyval)
            except OptionError:
                continue
            assert head is None or implied is not None
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in pairs)


# ---------------------------------------------------------------------------------------------
# QEMU reads back exactly what was rendered

NASTY = [
    "",
    ",",
    ",,",
    ",,,",
    ",start",
    "end,",
    "mid,dle",
    "a,,b",
    "=",
    "a=b",
    ",=,",
    ",bus=rp,addr=0x0",
    ",id=evil",
    ",,id=evil",
    ",drive=spare",
    ",addr=0x7",
    ",serial=other",
    "x,id=evil,bus=rp,drive=spare",
    ",multifunction=on",
    ",usb=on",
    ",dt-compatible=other",
    ",help",
    ",?",
    "help",
    "?",
    "on",
    "nohelp",
    "'",
    '"',
    "'\"'\"",
    "a b  c",
    " ",
    "\\",
    "\\,",
    "\\\\,,",
    "$(touch pwned)",
    "`touch pwned`",
    "; touch pwned",
    "| cat",
    "%s%n%x",
    '{"driver":"virtio-net-pci"}',
    "*",
    "~",
    "#!",
    "é",
    "😀",
    "中文,漢字",
    "\u200b\ufeff",
    "\U0010fffd",
    "a," * 5000,
    "x" * 100_000,
]


def _nasty_id(value: str) -> str:
    return ascii(value[:24]) + (f"...{len(value)}" if len(value) > 24 else "")


@needs_x86
@pytest.mark.parametrize("value", NASTY, ids=_nasty_id)
def test_qemu_reads_back_rendered_values(vms: VMs, tmp_path: Path, value: str) -> None:
    """The value arrives whole, as a -device property (QemuOpts) and a machine property (keyval),
    placed first (an injected id would win) and last (an injected drive, bus or addr would win)."""
    first = render(
        "virtio-blk-pci",
        [("serial", value), ("drive", "d0"), ("id", "first"), ("bus", "pcie.0"), ("addr", "0x5")],
        "first",
        implied="driver",
    )
    last = render(
        "virtio-blk-pci",
        [("drive", "d1"), ("id", "last"), ("bus", "pcie.0"), ("addr", "0x6"), ("serial", value)],
        "last",
        implied="driver",
    )
    machine = render(MACHINE, [("usb", "off"), ("dt-compatible", value)], "-M", implied="type")
    argv = [QEMU, "-M", machine, "-nodefaults"]
    for drive in ("d0", "d1", "spare"):
        argv += ["-drive", render(None, [("if", "none"), ("id", drive), ("driver", "null-co")], drive)]
    argv += [
        "-device",
        "pcie-root-port,id=rp,bus=pcie.0,addr=0x2,chassis=1",
        "-device",
        first,
        "-device",
        last,
    ]
    vm = vms.start(argv)

    assert _children(vm, "/machine/peripheral") == {"rp", "first", "last"}
    assert _children(vm, "/machine/peripheral-anon") == set()
    for dev, drive, slot in (("first", "d0", 5), ("last", "d1", 6)):
        path = f"/machine/peripheral/{dev}"
        assert _get(vm, path, "serial") == value
        assert _get(vm, path, "type") == "virtio-blk-pci"
        assert _get(vm, path, "drive") == drive
        assert _get(vm, path, "parent_bus") == "/machine/q35/pcie.0"
        assert _get(vm, path, "addr") == slot << 3
        assert _get(vm, path, "multifunction") is False
    assert _get(vm, "/machine", "dt-compatible") == value
    assert _get(vm, "/machine", "type") == f"{MACHINE}-machine"
    assert _get(vm, "/machine", "usb") is False
    assert {b["device"] for b in vm.qmp("query-block")} == {"d0", "d1", "spare"}
    assert {c["label"] for c in vm.qmp("query-chardev")} <= {"compat_monitor0"}
    assert "warning" not in vm.stderr()
    assert not (Path.cwd() / "pwned").exists() and not (tmp_path / "pwned").exists()
    # and dtvm reads the argument as QEMU did
    assert parse(first, implied="driver")[1][0] == ("serial", value)
    assert parse(machine, implied="type", keyval=True) == (
        MACHINE,
        [("usb", "off"), ("dt-compatible", value)],
    )


# ---------------------------------------------------------------------------------------------
# parse reads what QEMU reads


def _qemuopts_effective(head: str | None, pairs: list[tuple[str, str]]) -> tuple[str, str, dict[str, str]]:
    """QemuOpts' meaning of a parsed -device: the driver (last one), the id (first one), and the
    last value of every other key."""
    driver = head
    ident = None
    props: dict[str, str] = {}
    for key, value in pairs:
        if key == "driver":
            driver = value
        elif key == "id":
            ident = value if ident is None else ident
        else:
            props[key] = value
    assert driver is not None and ident is not None
    return driver, ident, props


@needs_x86
@pytest.mark.parametrize(
    "text",
    [
        "virtio-blk-pci,drive=d0,id=b0,serial=a,,b,,,",
        "virtio-blk-pci,drive=d0,id=b0,serial=x,serial=y",
        "virtio-blk-pci,drive=d0,id=b0,id=b1,serial=z",
        "virtio-blk-pci,id=b0,drive=d0,serial",
        "virtio-blk-pci,drive=d0,id=b0,multifunction",
        "virtio-blk-pci,drive=d0,id=b0,nomultifunction,serial=q",
        "virtio-blk-pci,drive=d0,id=b0,serial=a=b,",
        "virtio-blk-pci,drive=d0,id=b0,serial=",
        "virtio-blk-pci,drive=spare,id=b0,drive=d0",
        "driver=virtio-blk-pci,drive=d0,id=b0,serial=explicit",
        "driver=virtio-net-pci,id=b0,driver=virtio-blk-pci,drive=d0",
    ],
)
def test_parse_matches_qemu_device(vms: VMs, text: str) -> None:
    head, pairs = parse(text, implied="driver")
    driver, ident, props = _qemuopts_effective(head, pairs)
    vm = vms.start(
        [
            QEMU,
            "-M",
            MACHINE,
            "-nodefaults",
            "-drive",
            "if=none,id=d0,driver=null-co",
            "-drive",
            "if=none,id=spare,driver=null-co",
            "-device",
            text,
        ]
    )
    assert _children(vm, "/machine/peripheral") == {ident}
    path = f"/machine/peripheral/{ident}"
    assert _get(vm, path, "type") == driver
    for key, value in props.items():
        got = _get(vm, path, key)
        assert got == ({"on": True, "off": False}[value] if isinstance(got, bool) else value), key
    # QEMU 7.2 still takes bare words, with a deprecation warning naming the word as written
    for word in text.split(","):
        if word in ("serial", "multifunction", "nomultifunction"):
            assert f"short-form boolean option '{word}' deprecated" in vm.stderr()


@needs_x86
@pytest.mark.parametrize(
    ("text", "qemu_says"),
    [
        # the implied first value takes ',,' as a comma: the driver is "virtio-blk-pci,x"
        ("virtio-blk-pci,,x,drive=d0", "'{head}' is not a valid device model name"),
        # a bare word starting with "no" is the rest of the word, off
        ("virtio-blk-pci,drive=d0,notify_on_empty", "Property 'virtio-blk-pci.{last_key}' not found"),
        # a later driver= replaces the implied one
        ("virtio-blk-pci,drive=d0,driver=virtio-net-pci", "Property 'virtio-net-pci.drive' not found"),
        ("virtio-blk-pci,drive=d0,Serial=x", "Property 'virtio-blk-pci.{last_key}' not found"),
    ],
)
def test_parse_matches_qemu_refusals(text: str, qemu_says: str) -> None:
    head, pairs = parse(text, implied="driver")
    proc = _run_refused(["-drive", "if=none,id=d0,driver=null-co", "-device", text])
    assert proc.returncode == 1
    assert qemu_says.format(head=head, last_key=pairs[-1][0]) in proc.stderr


@needs_x86
@pytest.mark.parametrize(
    ("text", "qemu_says"),
    [
        ("virtio-blk-pci,drive=d0,id=1x", "Parameter 'id' expects an identifier"),
        ("virtio-blk-pci,drive=d0,=x", "Property 'virtio-blk-pci.' not found"),
        ("virtio-blk-pci,drive=d0,no", "Property 'virtio-blk-pci.' not found"),
        ("virtio-blk-pci,drive=d0,a b=1", "Property 'virtio-blk-pci.a b' not found"),
    ],
)
def test_parse_refuses_what_qemu_refuses(text: str, qemu_says: str) -> None:
    with pytest.raises(OptionError):
        parse(text, implied="driver")
    proc = _run_refused(["-drive", "if=none,id=d0,driver=null-co", "-device", text])
    assert proc.returncode == 1
    assert qemu_says in proc.stderr


@needs_x86
@pytest.mark.parametrize("text", ["virtio-blk-pci,drive=d0,help=off", "help", "virtio-blk-pci,?"])
def test_help_requests_refused_qemu_prints_help(text: str) -> None:
    with pytest.raises(OptionError, match="asks QEMU for help"):
        parse(text, implied="driver")
    proc = _run_refused(["-drive", "if=none,id=d0,driver=null-co", "-device", text])
    assert proc.returncode == 0  # QEMU printed help and exited instead of starting a VM
    assert "options:" in proc.stdout or "Controller/Bridge/Hub devices:" in proc.stdout


@needs_x86
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{MACHINE},dt-compatible=a,,b", "a,b"),
        (f"type={MACHINE},dt-compatible=x,dt-compatible=y,", "y"),
        (f"{MACHINE},dt-compatible=", ""),
        (f"{MACHINE},dt-compatible=p=q,,", "p=q,"),
    ],
)
def test_parse_keyval_matches_qemu_machine(vms: VMs, text: str, expected: str) -> None:
    head, pairs = parse(text, implied="type", keyval=True)
    assert (head or dict(pairs)["type"]) == MACHINE
    assert [v for k, v in pairs if k == "dt-compatible"][-1] == expected
    vm = vms.start([QEMU, "-M", text, "-nodefaults"])
    assert _get(vm, "/machine", "dt-compatible") == expected


@needs_x86
@pytest.mark.parametrize(
    ("text", "qemu_says"),
    [
        (f"{MACHINE},usb", "Expected '=' after parameter 'usb'"),
        (f"{MACHINE},,usb=on", "Invalid parameter ''"),
        (f"{MACHINE},1a=x", "Invalid parameter '1a'"),
        (f"{MACHINE},a b=x", "Invalid parameter 'a b'"),
    ],
)
def test_parse_keyval_refuses_what_qemu_machine_refuses(text: str, qemu_says: str) -> None:
    with pytest.raises(OptionError):
        parse(text, implied="type", keyval=True)
    proc = subprocess.run(
        [QEMU, "-M", text, "-nodefaults", "-display", "none", "-S"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 1
    assert qemu_says in proc.stderr


@needs_x86
@pytest.mark.parametrize(
    ("option", "arg", "dialect"),
    [
        ("-device", "virtio-blk-pci", "QemuOpts"),
        ("-drive", "if=none,id=d0,driver=null-co", "QemuOpts"),
        ("-netdev", "user,id=n0", "QemuOpts"),
        ("-chardev", "null,id=c0", "QemuOpts"),
        ("-object", "iothread,id=io0", "QemuOpts"),
        ("-m", "128M", "QemuOpts"),
        ("-accel", "tcg", "QemuOpts"),
        ("-rtc", "base=utc", "QemuOpts"),
        ("-numa", "node", "QemuOpts"),
        ("-fw_cfg", "name=opt/x,string=y", "QemuOpts"),
        ("-M", MACHINE, "keyval"),
        ("-smp", "2", "keyval"),
        ("-boot", "order=c", "keyval"),
        ("-display", "none", "keyval"),
        ("-audiodev", "none,id=a0", "keyval"),
        ("-blockdev", "driver=null-co,node-name=n0", "keyval"),
        ("-netdev", "stream,id=n0", "keyval"),
    ],
)
def test_which_options_are_keyval(option: str, arg: str, dialect: str) -> None:
    """The dialect table of the module docstring: a bare word warns in QemuOpts, fails in keyval."""
    text = arg + ",zzflag"
    keyval = dialect == "keyval"
    if keyval:
        with pytest.raises(OptionError, match="expected '=' after parameter 'zzflag'"):
            parse(text, implied="type", keyval=True)
    else:
        assert parse(text, implied="type")[1][-1] == ("zzflag", "on")
    machine = [] if option == "-M" else ["-M", MACHINE]
    proc = subprocess.run(
        [QEMU, *machine, "-nodefaults", "-display", "none", "-S", option, text],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 1
    if keyval:
        assert "Expected '=' after parameter 'zzflag'" in proc.stderr
    else:
        assert "short-form boolean option 'zzflag' deprecated" in proc.stderr


# ---------------------------------------------------------------------------------------------
# -global


def test_global_forms() -> None:
    assert (
        render_global("virtio-blk-pci", "serial", "a,b", "w")
        == "driver=virtio-blk-pci,property=serial,value=a,,b"
    )
    assert parse_global("driver=virtio-blk-pci,property=serial,value=a,,b") == (
        "virtio-blk-pci",
        "serial",
        "a,b",
    )
    # the short form takes the value verbatim and cuts the driver at its first dot
    assert parse_global("virtio-blk-pci.serial=a,,b,x=y") == ("virtio-blk-pci", "serial", "a,,b,x=y")
    assert parse_global("cfi.pflash01.secure=on") == ("cfi", "pflash01.secure", "on")
    with pytest.raises(OptionError, match="invalid parameter"):  # a 64-character driver is not the short form
        parse_global(("d" * 64) + ".p=v")
    with pytest.raises(OptionError, match="missing value"):
        parse_global("driver=virtio-blk-pci,property=serial")
    with pytest.raises(OptionError, match="invalid parameter 'x'"):
        parse_global("driver=a,property=b,value=c,x=1")
    with pytest.raises(OptionError):
        render_global("a,b", "serial", "x", "w")
    with pytest.raises(OptionError):
        render_global("virtio-blk-pci", "serial", "x\n", "w")


@needs_x86
@pytest.mark.parametrize(
    "text", ["virtio-blk-pci.serial=a,,b,x=y", "virtio-blk-pci.serial=a,id=evil", "LONG"]
)
def test_global_short_form_matches_qemu(vms: VMs, text: str) -> None:
    if text == "LONG":
        text = render_global("virtio-blk-pci", "serial", ",id=evil,,x=$(y) é", "w")
    driver, prop, value = parse_global(text)
    assert (driver, prop) == ("virtio-blk-pci", "serial")
    vm = vms.start(
        [
            QEMU,
            "-M",
            MACHINE,
            "-nodefaults",
            "-global",
            text,
            "-drive",
            "if=none,id=d0,driver=null-co",
            "-device",
            "virtio-blk-pci,drive=d0,id=b0",
        ]
    )
    assert _get(vm, "/machine/peripheral/b0", "serial") == value
    assert _children(vm, "/machine/peripheral") == {"b0"}


@needs_x86
def test_global_qemu_cuts_the_driver_at_the_first_dot(vms: VMs) -> None:
    driver, prop, _ = parse_global("cfi.pflash01.secure=on")
    vm = vms.start([QEMU, "-M", MACHINE, "-nodefaults", "-global", "cfi.pflash01.secure=on"])
    assert f"global {driver}.{prop} has invalid class name" in vm.stderr()


@needs_x86
@pytest.mark.parametrize(
    ("text", "qemu_says"),
    [
        ("driver=x,property=y", "options 'driver', 'property', and 'value' are required"),
        ("d" * 64 + ".p=v", "Invalid parameter '" + "d" * 64 + ".p'"),
    ],
)
def test_global_refusals_match_qemu(text: str, qemu_says: str) -> None:
    with pytest.raises(OptionError):
        parse_global(text)
    proc = _run_refused(["-global", text])
    assert proc.returncode == 1
    assert qemu_says in proc.stderr


# ---------------------------------------------------------------------------------------------
# format_argv

ARGS = st.lists(st.text(alphabet=_VALUE_CHARS, max_size=20), min_size=1, max_size=8)


# anything a program can receive: every character but NUL and lone surrogates (controls included)
_ARG_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")


@settings(deadline=None, max_examples=200)
@given(argv=st.lists(st.text(alphabet=_ARG_CHARS), min_size=1))
def test_format_json_loads_back(argv: list[str]) -> None:
    out = format_argv(argv, "json")
    assert out.endswith("\n") and out.count("\n") == 1 and out.isascii()
    assert json.loads(out) == argv


def _through_sh(line: str, cwd: str) -> list[str]:
    """Deliberately through a shell, only here, to prove the quoting holds."""
    proc = subprocess.run(
        ["sh", "-c", "printf '%s\\n' " + line], capture_output=True, check=True, cwd=cwd, timeout=10
    )
    return proc.stdout.decode().split("\n")[:-1]


SHELL_NASTY = [
    QEMU,
    "",
    " ",
    "a b",
    "'",
    '"',
    "'\"'",
    "\\",
    "$(touch pwned)",
    "`touch pwned`",
    "${HOME}",
    "$HOME",
    "*",
    "?",
    "[a]",
    "~",
    "~root",
    "!x",
    "#x",
    "a;touch pwned",
    "a|b",
    "a&b",
    "a>pwned",
    "<x",
    "-e",
    "--",
    "{a,b}",
    "é😀",
    "a\\'b",
    "%s",
    "=",
]


def test_format_shell_is_one_safe_line(tmp_path: Path) -> None:
    out = format_argv(SHELL_NASTY, "shell")
    assert out.endswith("\n") and out.count("\n") == 1
    assert _through_sh(out[:-1], str(tmp_path)) == SHELL_NASTY
    assert list(tmp_path.iterdir()) == []


@settings(deadline=None, max_examples=60)
@given(argv=ARGS)
def test_format_shell_round_trips_through_sh(argv: list[str]) -> None:
    out = format_argv(argv, "shell")
    with tempfile.TemporaryDirectory() as cwd:
        assert _through_sh(out[:-1], cwd) == argv


@settings(deadline=None, max_examples=200)
@given(argv=ARGS)
def test_format_lines(argv: list[str]) -> None:
    out = format_argv(argv, "lines")
    assert out.splitlines() == argv
    assert out.split("\n")[:-1] == argv


@pytest.mark.parametrize("fmt", ["shell", "lines"])
@pytest.mark.parametrize("arg", ["a\nb", "a\rb", "a\x85b", "a\u2028b", "a\x1b[2Jb", "a\tb"])
def test_format_refuses_line_breaks_and_controls(fmt: str, arg: str) -> None:
    with pytest.raises(OptionError, match=r"^argument 2 .*cannot be written"):
        format_argv([QEMU, "-name", arg], fmt)


def test_format_refusals() -> None:
    with pytest.raises(OptionError, match="NUL"):
        format_argv([QEMU, "a\x00b"], "json")
    with pytest.raises(OptionError, match="not UTF-8"):
        format_argv([QEMU, "a\udc80"], "json")
    with pytest.raises(OptionError, match="empty"):
        format_argv([], "json")
    with pytest.raises(OptionError, match="unknown format 'yaml'"):
        format_argv([QEMU], "yaml")
    # only what breaks lines is refused there: a noncharacter is fine outside option values
    assert format_argv([QEMU, "-kernel", "/boot/\uffff"], "lines") == f"{QEMU}\n-kernel\n/boot/\uffff\n"
    # JSON escapes what the line formats refuse
    assert json.loads(format_argv([QEMU, "a\nb\t"], "json")) == [QEMU, "a\nb\t"]
