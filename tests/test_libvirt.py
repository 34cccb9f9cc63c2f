"""dtvm and the real libvirt 9.0 daemon: describe, import, rebuild, restore, refuse.

Every expectation comes from an oracle run in the test: libvirt's own QEMU (the command line it
really ran, /proc/PID/cmdline, described by ``qemu2dtb``), libvirt starting what dtvm wrote, and
libvirt's own live migration of the original into the rebuilt XML on a second daemon (its ABI
check judging the XML, QEMU loading the stream).  The domains come from a seeded generator of
loose domain XML (``tests/libvirt_helpers.py``): q35, pc and aarch64 virt (TCG, no firmware);
virtio, SCSI, SATA, IDE and USB disks; virtio, e1000(e) and rtl8139 NICs; USB input;
virtio-serial channels; rng; balloon and its switches; video; sound with codecs; watchdogs; panic;
TPM; root ports and bridges; CPU topologies.  The default run takes DEFAULT_CASES of them;
``make test-libvirt`` (marker ``libvirt_slow``) takes more.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.libvirt_helpers import (
    PREFIX,
    connect,
    defined_domain,
    dtvm_cmd,
    free_port,
    generate,
    leftover_domains,
    libvirt_peer_uri,
    libvirt_uri,
    migrate_domain,
    qemu_argv,
    tpm_stand_in,
)
from tests.qemu_helpers import migrate_qmp

__all__ = ["libvirt_peer_uri", "libvirt_uri"]  # the session fixtures, imported for pytest

#: generated domains in the default run, and in ``make test-libvirt`` (DTVM_LIBVIRT_CASES)
DEFAULT_CASES = 3
#: the first COVERED cases (default run plus the start of make test-libvirt) hold every kind the issue names
COVERED = 12
SLOW_CASES = int(os.environ.get("DTVM_LIBVIRT_CASES", "40"))
SEED = int(os.environ.get("DTVM_LIBVIRT_SEED", "1400"))


def _blob(tree: Any) -> bytes:
    from dtvm.dt.dtb import write_dtb

    return write_dtb(tree)


def _rebuilt_argv(conn: Any, xml: str, tmp: Path) -> list[str]:
    """The QEMU command line libvirt runs for ``xml`` (started transient and paused on sparse
    stand-ins of its images, then destroyed), with the real images put back."""
    from dtvm.libvirt.transient import transient_domain

    root = ET.fromstring(xml)
    real: dict[str, str] = {}
    for n, source in enumerate(root.iterfind("devices/disk/source")):
        stand_in = tmp / f"standin{n}.img"
        original = str(source.get("file"))
        with open(stand_in, "wb") as f:
            f.truncate(os.stat(original).st_size)
        real[str(stand_in)] = original
        source.set("file", str(stand_in))
    with transient_domain(conn, ET.tostring(root, encoding="unicode"), "rebuild") as domain:
        argv = qemu_argv(domain.name())
    return [_swap_paths(a, real) for a in argv]


def _swap_paths(arg: str, real: dict[str, str]) -> str:
    for stand_in, original in real.items():
        arg = arg.replace(json.dumps(stand_in), json.dumps(original))
    return arg


def _migrate_into_rebuild(dom: Any, peer_uri: str, xml: str, what: object) -> bytes | None:
    """``dom`` live-migrated by libvirt into ``xml`` on the peer daemon; the destination's guest
    tree (described through the peer), and the destination destroyed whatever happens. None when
    libvirt refuses because the domain has a device QEMU cannot migrate at all (usb-audio)."""
    import libvirt

    from dtvm.libvirt.describe import describe_domain

    peer = connect(peer_uri)
    target = None
    try:
        try:
            target = migrate_domain(dom, peer, xml, free_port())
        except libvirt.libvirtError as exc:
            said = str(exc)
            if "non-migratable device" in said and "usb-audio" in said:
                # QEMU 7.2's usb-audio has no migration state (it is marked unmigratable): no
                # domain with one migrates anywhere, this oracle cannot exist for it
                return None
            raise AssertionError(f"{what}: libvirt refused the migration into the rebuild: {exc}") from None
        assert target.state()[0] == libvirt.VIR_DOMAIN_PAUSED  # a paused original stays paused
        return _blob(describe_domain(target).guest)
    finally:
        if target is not None:
            with contextlib.suppress(libvirt.libvirtError):
                target.destroy()
        assert leftover_domains(peer_uri) == []
        peer.close()


def _domain_round_trip(uri: str, peer_uri: str, seed: int) -> None:
    """import == describe == qemu2dtb of libvirt's argv; the pinned XML rebuilds it byte for byte; the
    original migrates into the rebuild through libvirt's migration API (the pinned XML on a second
    daemon as the destination XML); nothing is left defined or running."""
    import libvirt

    from dtvm.libvirt.check import check_domain_xml
    from dtvm.libvirt.describe import describe_domain
    from dtvm.libvirt.domxml import build_domain_xml, host_facts
    from dtvm.libvirt.transient import describe_xml
    from dtvm.qemu.describe import describe_snapshot
    from dtvm.qemu.live import read_argv
    from dtvm.vm.readback import read_config

    case = generate(seed)
    conn = connect(uri)
    try:
        with defined_domain(uri, case.xml, start=False) as dom:
            name = dom.name()
            # libvirt completes a loose XML when it defines it (MACs, controllers, addresses)
            defined = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            imported = describe_xml(conn, defined, f"seed {seed}")
            assert leftover_domains(uri) == [name], "libvirt2dtb left a domain behind"
            dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
            desc = describe_domain(dom)
            guest = _blob(desc.guest)
            assert _blob(imported.guest) == guest, f"seed {seed}: libvirt2dtb differs from describing the running domain"
            with tpm_stand_in(qemu_argv(name)) as argv:
                oracle = describe_snapshot(read_argv(argv, timeout=30))
            assert _blob(oracle.guest) == guest, f"seed {seed}: qemu2dtb of libvirt's own argv differs"

            # precise -> XML: libvirt starts it and builds exactly the described hardware
            config = read_config(desc.guest, desc.backend)
            xml = build_domain_xml(config, name, host_facts(desc.backend), desc.guest)
            check_domain_xml(conn, xml, guest, f"seed {seed}")

            # the original migrates into the rebuild through libvirt's own migration API: the
            # pinned XML is the destination's XML on a second libvirtd (another host to libvirt),
            # libvirt's ABI check judges it against the running original, and the destination's
            # QEMU, described again, is the same hardware
            migrated = _migrate_into_rebuild(dom, peer_uri, xml, seed)
            if migrated is None:
                assert "sound model=\"usb\"" in case.xml, f"seed {seed}: libvirt called a device non-migratable"
            else:
                assert migrated == guest, f"seed {seed}: the migrated domain's guest tree differs"
                assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF  # the source has gone over
    finally:
        conn.close()
    assert leftover_domains(uri) == []


@pytest.mark.parametrize("seed", range(SEED, SEED + DEFAULT_CASES))
def test_generated_domain(libvirt_uri: str, libvirt_peer_uri: str, seed: int) -> None:
    _domain_round_trip(libvirt_uri, libvirt_peer_uri, seed)


@pytest.mark.libvirt_slow
@pytest.mark.parametrize("seed", range(SEED + DEFAULT_CASES, SEED + DEFAULT_CASES + SLOW_CASES))
def test_generated_domain_more(libvirt_uri: str, libvirt_peer_uri: str, seed: int) -> None:
    _domain_round_trip(libvirt_uri, libvirt_peer_uri, seed)


def test_generator_covers_the_issue() -> None:
    """The first COVERED cases hold what the issue names (so a generator change cannot drop a kind)."""
    text = "".join(generate(s).xml for s in range(SEED, SEED + COVERED))
    machines = {generate(s).machine for s in range(SEED, SEED + COVERED)}
    assert machines == {"q35", "pc", "virt"}
    for needle in ("bus=\"virtio\"", "bus=\"scsi\"", "bus=\"sata\"", "bus=\"usb\"", "virtio-scsi", "<interface",
                   "type=\"e1000", "rtl8139", "<input", "<channel", "<rng", "memballoon model=\"virtio\"",
                   "pcie-root-port", "pci-bridge", "pcie-to-pci-bridge", "threads=\"2\"", "sockets=\"2\"",
                   "bus=\"ide\"", "arch=\"aarch64\""):
        assert needle in text, f"none of the first {COVERED} cases has {needle}"
    # the second round's kinds (video, sound, watchdog, panic, TPM, balloon switches): within the
    # default run and make test-libvirt's 24
    text = "".join(generate(s).xml for s in range(SEED, SEED + DEFAULT_CASES + 24))
    for needle in ("<video", "type=\"vga\"", "type=\"bochs\"", "type=\"qxl\"", "type=\"ramfb\"", "type=\"virtio\" />", "sound model=\"ich6\"",
                   "sound model=\"ich9\"", "sound model=\"ac97\"", "sound model=\"usb\"", "<codec", "i6300esb", "ib700",
                   "<panic", "tpm-tis", "autodeflate", "freePageReporting"):
        assert needle in text, f"none of the first {DEFAULT_CASES + 24} cases has {needle}"


# ------------------------------------------------------------------------------------- the commands


def test_commands_write_the_same_description(libvirt_uri: str, tmp_path: Path) -> None:
    """qemu2dtb --libvirt and libvirt2dtb, as a user runs them, then dtb2libvirt -o."""
    import libvirt

    case = generate(SEED)
    with defined_domain(libvirt_uri, case.xml, start=False) as dom:
        xml_file = tmp_path / "defined.xml"
        xml_file.write_text(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        imp = dtvm_cmd("libvirt2dtb", str(xml_file), "--connect", libvirt_uri, "-o", str(tmp_path / "imp.dtb"))
        assert imp.returncode == 0, imp.stderr
        dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
        out = dtvm_cmd("qemu2dtb", "--libvirt", dom.name(), "--connect", libvirt_uri, "-o", str(tmp_path / "vm.dtb"))
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "vm.dtb").read_bytes() == (tmp_path / "imp.dtb").read_bytes()
        overlay = (tmp_path / "vm.backend.dtbo").read_bytes()
        assert dom.name().encode() in overlay and dom.UUIDString().encode() in overlay  # host facts
        assert (tmp_path / "imp.backend.dtbo").exists()
        rebuilt = dtvm_cmd("dtb2libvirt", str(tmp_path / "vm.dtb"), "-b", str(tmp_path / "vm.backend.dtbo"),
                           "--name", f"{PREFIX}rebuilt", "--connect", libvirt_uri, "-o", str(tmp_path / "re.xml"))
        assert rebuilt.returncode == 0, rebuilt.stderr
        root = ET.fromstring((tmp_path / "re.xml").read_text())
        assert root.findtext("uuid") == dom.UUIDString()  # the same domain (a migration needs it)
        copy = dtvm_cmd("dtb2libvirt", str(tmp_path / "vm.dtb"), "-b", str(tmp_path / "vm.backend.dtbo"),
                        "--name", f"{PREFIX}copy", "--new-uuid", "--no-check")
        assert copy.returncode == 0 and ET.fromstring(copy.stdout).find("uuid") is None, copy.stderr
        for ctl in root.iterfind("devices/controller"):
            assert ctl.get("index") is not None and (ctl.get("model") or ctl.get("type") in ("virtio-serial", "sata"))
        for elem in root.find("devices") or []:
            if elem.tag in ("disk", "interface", "rng", "channel", "input") or \
                    (elem.tag in ("controller", "memballoon") and elem.get("model") not in ("none", "pcie-root", "pci-root")):
                assert elem.find("address") is not None, f"<{elem.tag}> without a pinned address"
    assert leftover_domains(libvirt_uri) == []


def test_uefi_transient_leaves_no_nvram(libvirt_uri: str, tmp_path: Path) -> None:
    if not Path("/usr/share/OVMF/OVMF_CODE_4M.fd").exists():
        pytest.skip("no OVMF firmware (Debian package ovmf): libvirt cannot start a UEFI domain")
    nvram_dir = Path("/var/lib/libvirt/qemu/nvram")
    before = set(nvram_dir.iterdir()) if nvram_dir.exists() else set()
    xml = tmp_path / "efi.xml"
    xml.write_text(f"""<domain type='qemu'><name>{PREFIX}efi</name><memory unit='MiB'>128</memory>
<os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type></os><features><acpi/></features><devices/></domain>""")
    out = dtvm_cmd("libvirt2dtb", str(xml), "--connect", libvirt_uri, "-o", str(tmp_path / "efi.dtb"))
    assert out.returncode == 0, out.stderr
    after = set(nvram_dir.iterdir()) if nvram_dir.exists() else set()
    assert after == before, f"left behind: {sorted(map(str, after - before))}"
    assert leftover_domains(libvirt_uri) == []


# ------------------------------------------------------------------------------------------ bad input


def _one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_unknown_domain_and_refused_connection(libvirt_uri: str, tmp_path: Path) -> None:
    out = dtvm_cmd("qemu2dtb", "--libvirt", f"{PREFIX}nosuch", "--connect", libvirt_uri, "-o", str(tmp_path / "a.dtb"))
    _one_line_error(out, f"{PREFIX}nosuch", "no such domain")
    refused = "qemu+unix:///system?socket=" + str(tmp_path / "nothing.sock")
    out = dtvm_cmd("qemu2dtb", "--libvirt", "x", "--connect", refused, "-o", str(tmp_path / "a.dtb"))
    _one_line_error(out, "cannot connect")
    xml = tmp_path / "d.xml"
    xml.write_text(generate(SEED).xml)
    out = dtvm_cmd("libvirt2dtb", str(xml), "--connect", refused, "-o", str(tmp_path / "a.dtb"))
    _one_line_error(out, "cannot connect")
    assert list(tmp_path.glob("a*")) == []


def test_xml_libvirt_rejects(libvirt_uri: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text(f"<domain type='qemu'><name>{PREFIX}bad</name><memory unit='MiB'>64</memory>"
                   "<os><type arch='x86_64' machine='pc-q35-0.1'>hvm</type></os></domain>")
    out = dtvm_cmd("libvirt2dtb", str(bad), "--connect", libvirt_uri, "-o", str(tmp_path / "a.dtb"))
    _one_line_error(out, str(bad), "libvirt refused")
    broken = tmp_path / "broken.xml"
    broken.write_text("<domain type='qemu'>\n<name>x</name>\n<devices>\n</domain>\n")
    out = dtvm_cmd("libvirt2dtb", str(broken), "--connect", libvirt_uri, "-o", str(tmp_path / "a.dtb"))
    _one_line_error(out, f"{broken}:4", "not well-formed")
    assert list(tmp_path.glob("a*")) == []
    assert leftover_domains(libvirt_uri) == []


def _described(uri: str, tmp: Path, seed: int) -> tuple[Path, Path]:
    """A description of generated domain ``seed`` (started paused, described, removed)."""
    with defined_domain(uri, generate(seed).xml) as dom:
        out = dtvm_cmd("qemu2dtb", "--libvirt", dom.name(), "--connect", uri, "-o", str(tmp / "vm.dtb"))
        assert out.returncode == 0, out.stderr
    return tmp / "vm.dtb", tmp / "vm.backend.dtbo"


@pytest.fixture(scope="module")
def channel_description(libvirt_uri: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One description with a virtio-serial channel, made once for the tests that tamper with it."""
    return _described(libvirt_uri, tmp_path_factory.mktemp("channel"), _seed_with("<channel"))


def _seed_with(kind: str) -> int:
    for seed in range(SEED, SEED + 200):
        if kind in generate(seed).xml:
            return seed
    raise AssertionError(f"no generated case has {kind}")


@pytest.mark.parametrize("hostile", ["]]>", "'/>", "<qemu:commandline><qemu:arg value='-S'/></qemu:commandline>",
                                     "a\"b&c<d>"])
def test_strings_that_would_escape_xml(libvirt_uri: str, tmp_path: Path, hostile: str,
                                       channel_description: tuple[Path, Path]) -> None:
    """A channel name from the guest tree is data: the XML carries it escaped, libvirt either takes
    it as a name or refuses it in one line; nothing is injected, defined or left running."""
    from dtvm.dt.dtb import read_dtb, write_dtb

    guest, overlay = channel_description
    tree = read_dtb(guest.read_bytes(), str(guest))
    ports = [n for n in tree.root.walk() if n.get_property("qemu,name") is not None]
    assert ports
    ports[0].set_property("qemu,name", hostile.encode() + b"\0")
    evil = tmp_path / "evil.dtb"
    evil.write_bytes(write_dtb(tree))
    xml_out = tmp_path / "evil.xml"
    out = dtvm_cmd("dtb2libvirt", str(evil), "-b", str(overlay), "--name", f"{PREFIX}evil", "--no-check",
                   "-o", str(xml_out))
    assert out.returncode == 0, out.stderr
    root = ET.fromstring(xml_out.read_text())
    names = [t.get("name") for t in root.iterfind("devices/channel/target")]
    assert hostile in names
    assert all(not e.tag.startswith("{") and "commandline" not in e.tag for e in root.iter())
    if "commandline" not in hostile:
        return  # libvirt's verdict on a strange channel name is the same for all: asked once
    checked = dtvm_cmd("dtb2libvirt", str(evil), "-b", str(overlay), "--name", f"{PREFIX}evil",
                       "--connect", libvirt_uri)
    if checked.returncode != 0:
        _one_line_error(checked)
    assert leftover_domains(libvirt_uri) == []


def test_control_characters_and_unsafe_serials(libvirt_uri: str, tmp_path: Path,
                                                channel_description: tuple[Path, Path]) -> None:
    from dtvm.dt.dtb import read_dtb, write_dtb

    guest, overlay = channel_description
    tree = read_dtb(guest.read_bytes(), str(guest))
    port = next(n for n in tree.root.walk() if n.get_property("qemu,name") is not None)
    port.set_property("qemu,name", b"a\x01b\0")
    evil = tmp_path / "evil.dtb"
    evil.write_bytes(write_dtb(tree))
    out = dtvm_cmd("dtb2libvirt", str(evil), "-b", str(overlay), "--name", f"{PREFIX}x", "--no-check",
                   "-o", str(tmp_path / "x.xml"))
    _one_line_error(out, port.path, "U+0001")
    assert not (tmp_path / "x.xml").exists()

    # a disk serial libvirt calls unsafe: refused by libvirt in one line, nothing left
    guest, overlay = _described(libvirt_uri, tmp_path, _seed_with("<serial>"))
    tree = read_dtb(guest.read_bytes(), str(guest))
    disk = next(n for n in tree.root.walk() if n.get_property("qemu,serial") is not None
                and "QM0" not in bytes(n.get_property("qemu,serial").value).decode())  # type: ignore[union-attr]
    disk.set_property("qemu,serial", b"x']<y\0")
    evil.write_bytes(write_dtb(tree))
    out = dtvm_cmd("dtb2libvirt", str(evil), "-b", str(overlay), "--name", f"{PREFIX}x", "--connect", libvirt_uri,
                   "-o", str(tmp_path / "x.xml"))
    _one_line_error(out, "libvirt refused")
    assert not (tmp_path / "x.xml").exists()
    assert leftover_domains(libvirt_uri) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_signal_leaves_nothing_running(libvirt_uri: str, tmp_path: Path, sig: int) -> None:
    """Ctrl-C, SIGTERM or even SIGKILL while the transient domain runs: libvirt destroys it
    (START_AUTODESTROY ties it to dtvm's connection; the handlers destroy it at once)."""
    xml = tmp_path / "d.xml"
    xml.write_text(generate(SEED + 1).xml.replace(f"{PREFIX}{SEED + 1}", f"{PREFIX}sig"))
    proc = subprocess.Popen([sys.executable, "-m", "dtvm", "libvirt2dtb", str(xml), "--connect", libvirt_uri,
                             "-o", str(tmp_path / "a.dtb")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not leftover_domains(libvirt_uri):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the transient domain never appeared (exit {proc.returncode})")
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig != signal.SIGKILL:
        assert proc.returncode == 128 + sig, err
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
    deadline = time.monotonic() + 20
    while leftover_domains(libvirt_uri) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftover_domains(libvirt_uri) == []
    assert not (tmp_path / "a.dtb").exists()


def test_without_the_binding_one_line(tmp_path: Path) -> None:
    """No libvirt-python: the command says in one line how to get it."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "libvirt.py").write_text("raise ImportError('not installed here')\n")
    env = dict(os.environ, PYTHONPATH=str(shadow))
    out = subprocess.run([sys.executable, "-m", "dtvm", "libvirt2dtb", str(tmp_path / "x.xml"), "-o",
                          str(tmp_path / "a.dtb")], capture_output=True, text=True, env=env, timeout=60)
    _one_line_error(out, "pip install 'dtvm[libvirt]'")


def test_layout_is_cheap_to_import() -> None:
    """The libvirt wing loads the binding only when a libvirt command runs."""
    code = "import sys, dtvm.libvirt.domxml, dtvm.cli.libvirt; print('libvirt' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr



PLAIN_VMS = [
    ["qemu-system-x86_64", "-M", "q35", "-nodefaults", "-m", "128", "-smp", "2,sockets=1,cores=2",
     "-device", "pcie-root-port,id=rp1,chassis=1,port=16,bus=pcie.0,addr=3",
     "-device", "pcie-root-port,id=rp2,chassis=2,port=17,bus=pcie.0,addr=4",
     "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,bus=rp1,mac=52:54:00:12:34:99",
     "-device", "qemu-xhci,bus=rp2", "-device", "usb-tablet", "-device", "virtio-rng-pci"],
    ["qemu-system-x86_64", "-M", "pc", "-nodefaults", "-m", "96",
     "-device", "pci-bridge,id=br1,chassis_nr=1,addr=5", "-device", "virtio-balloon-pci,bus=br1,addr=3",
     "-netdev", "user,id=n0", "-device", "e1000,netdev=n0,mac=52:54:00:12:34:98",
     "-device", "piix3-usb-uhci,addr=1.2", "-device", "usb-kbd"],  # libvirt takes PIIX3 USB only at 01.2
]


@pytest.mark.parametrize("argv", PLAIN_VMS, ids=["q35", "pc"])
def test_plain_qemu_vm_into_libvirt(libvirt_uri: str, tmp_path: Path, vm_factory: Any, argv: list[str]) -> None:
    """A VM plain QEMU runs (no libvirt): described over its QMP socket, written as domain XML that
    libvirt builds byte for byte, and the running VM migrates into libvirt's QEMU of that XML."""
    from dtvm.libvirt.check import check_domain_xml
    from dtvm.libvirt.domxml import build_domain_xml, host_facts
    from dtvm.qemu.describe import describe_snapshot
    from dtvm.qemu.live import read_socket
    from dtvm.vm.readback import read_config

    source = vm_factory(argv)
    desc = describe_snapshot(read_socket(f"unix:{source.sock}"))
    guest = _blob(desc.guest)
    xml = build_domain_xml(read_config(desc.guest, desc.backend), f"{PREFIX}plain", host_facts(desc.backend),
                           desc.guest)
    conn = connect(libvirt_uri)
    try:
        check_domain_xml(conn, xml, guest, "plain QEMU VM")
        target = vm_factory([*_rebuilt_argv(conn, xml, tmp_path), "-incoming", "defer"])
    finally:
        conn.close()
    status = _migrate(source, target, tmp_path)
    assert status.get("status") == "completed", status
    assert leftover_domains(libvirt_uri) == []


def _migrate(a: Any, b: Any, tmp: Path) -> dict[str, Any]:
    """Plain QEMU A into B over QMP (the shared loop: ``tests.qemu_helpers.migrate_qmp``)."""
    ma, mb = a.qmp(), b.qmp()
    try:
        return migrate_qmp(ma.cmd, mb.cmd, f"unix:{tmp / 'plain-migrate.sock'}", lambda: b.proc.poll() is not None)
    finally:
        for mon in (ma, mb):
            try:
                mon.close()
            except Exception:  # the destination exits when the incoming migration fails
                pass


def test_memory_hotplug_slots_refused_as_libvirt_refuses(libvirt_uri: str, tmp_path: Path) -> None:
    """A VM with memory hot-plug slots (-m slots=,maxmem=) has no domain XML without NUMA cells,
    which would add a NUMA node the guest sees: libvirt refuses <maxMemory> alone (held here, so the
    refusal is revisited if libvirt ever takes it), and dtb2libvirt refuses it by name."""
    alone = tmp_path / "maxmem.xml"
    alone.write_text(f"<domain type='qemu'><name>{PREFIX}maxmem</name><maxMemory slots='3' unit='KiB'>2097152"
                     "</maxMemory><memory unit='KiB'>262144</memory><os><type arch='x86_64' machine='pc-q35-7.2'>"
                     "hvm</type></os></domain>")
    out = dtvm_cmd("libvirt2dtb", str(alone), "--connect", libvirt_uri, "-o", str(tmp_path / "a.dtb"))
    _one_line_error(out, "numa node has to be configured when enabling memory hotplug")
    described = dtvm_cmd("qemu2dtb", "-o", str(tmp_path / "vm.dtb"), "--", "qemu-system-x86_64", "-M", "pc-q35-7.2",
                         "-nodefaults", "-m", "256M,slots=3,maxmem=2G")
    assert described.returncode == 0, described.stderr
    out = dtvm_cmd("dtb2libvirt", str(tmp_path / "vm.dtb"), "--name", f"{PREFIX}maxmem", "-o", str(tmp_path / "vm.xml"))
    _one_line_error(out, "memory hot-plug slots (3, maxmem 2147483648)", "NUMA")
    assert not (tmp_path / "vm.xml").exists()
    assert leftover_domains(libvirt_uri) == []
