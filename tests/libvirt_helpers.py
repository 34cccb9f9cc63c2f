"""The real libvirt daemon for the tests: a session fixture, domains that never outlive a test,
a seeded generator of loose domain XML, and the command line libvirt really ran (the oracle).

The daemon is libvirt 9.0's monolithic libvirtd, started by ``scripts/libvirtd.sh`` when nothing
answers on the URI (and stopped again at the end of the session if this fixture started it).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "libvirtd.sh"
URI = os.environ.get("DTVM_LIBVIRT_URI", "qemu:///system")
#: test domains carry this prefix, so a crashed run's leftovers are recognisable (and removed)
PREFIX = "dtvm-test-"


def _answers(uri: str) -> bool:
    import libvirt

    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    try:
        libvirt.open(uri).close()
        return True
    except libvirt.libvirtError:
        return False


@pytest.fixture(scope="session")
def libvirt_uri() -> Iterator[str]:
    """A URI on which libvirt answers; the daemon is started here when needed (as root)."""
    pytest.importorskip("libvirt", reason="libvirt-python is not installed (pip install 'dtvm[libvirt]'; "
                        "make test installs it)")
    if shutil.which("libvirtd") is None or shutil.which("virtlogd") is None:
        pytest.skip("libvirt's daemon is not installed (scripts/libvirtd.sh install, as root; make test does it)")
    started = False
    if not _answers(URI):
        if URI != "qemu:///system" or os.geteuid() != 0:
            pytest.skip(f"nothing answers on {URI} and only root can start libvirt's system daemon")
        proc = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"scripts/libvirtd.sh start failed: {proc.stderr.strip()}"
        started = True
        # the first capabilities query probes every qemu-system binary (45 s on a fresh machine)
        subprocess.run(["virsh", "-c", URI, "capabilities"], capture_output=True, timeout=600, check=True)
    _remove_leftovers(URI)
    yield URI
    _remove_leftovers(URI)
    if started:
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="session")
def libvirt_peer_uri(libvirt_uri: str) -> Iterator[str]:
    """A second libvirtd on this host that libvirt takes for another host (its own host UUID,
    sockets and state, in a mount namespace of its own: ``scripts/libvirtd.sh start-peer``): the
    destination of real libvirt migrations. Started here when it does not answer, stopped (its
    domains destroyed, its directories removed) at the end if this fixture started it."""
    peer = subprocess.run([str(SCRIPT), "peer-uri"], capture_output=True, text=True, check=True).stdout.strip()
    started = False
    if not _answers(peer):
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            pytest.skip("a second libvirtd (the migration destination) needs root and unshare(1)")
        proc = subprocess.run([str(SCRIPT), "start-peer"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"scripts/libvirtd.sh start-peer failed: {proc.stderr.strip()}"
        started = True
    _remove_leftovers(peer)
    yield peer
    _remove_leftovers(peer)
    if started:
        subprocess.run([str(SCRIPT), "stop-peer"], capture_output=True, timeout=120, check=False)


def migrate_domain(dom: Any, peer: Any, dest_xml: str, port: int) -> Any:
    """Live-migrate libvirt domain ``dom`` to the daemon of connection ``peer`` through libvirt's
    own API (virDomainMigrate3), with ``dest_xml`` as the destination's XML, so that libvirt's ABI
    stability check judges it against the running original. The images stay where they are (one
    host: VIR_MIGRATE_UNSAFE only tells libvirt they are shared); QEMU's stream goes over TCP on
    the loopback. Returns the destination domain; raises libvirtError with libvirt's words."""
    import libvirt

    params = {libvirt.VIR_MIGRATE_PARAM_DEST_XML: dest_xml,
              libvirt.VIR_MIGRATE_PARAM_URI: f"tcp://127.0.0.1:{port}"}
    return dom.migrate3(peer, params, libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_UNSAFE)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connect(uri: str) -> Any:
    import libvirt

    return libvirt.open(uri)


def _remove_leftovers(uri: str) -> None:
    import libvirt

    conn = libvirt.open(uri)
    try:
        for dom in conn.listAllDomains():
            if dom.name().startswith(PREFIX) or dom.name().startswith("dtvm-" + PREFIX):
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    finally:
        conn.close()


def leftover_domains(uri: str) -> list[str]:
    """Every domain (running or defined) whose name says a test made it."""
    conn = connect(uri)
    try:
        return sorted(d.name() for d in conn.listAllDomains() if PREFIX in d.name())
    finally:
        conn.close()


@contextlib.contextmanager
def defined_domain(uri: str, xml: str, *, start: bool = True) -> Iterator[Any]:
    """``xml`` defined (and started paused); destroyed and undefined on leaving, whatever happens."""
    import libvirt

    conn = connect(uri)
    dom = None
    try:
        dom = conn.defineXML(xml)
        if start:
            dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
        yield dom
    finally:
        if dom is not None:
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        conn.close()


def qemu_argv(name: str) -> list[str]:
    """The command line libvirt really ran for domain ``name`` (/proc/PID/cmdline), less libvirt's
    own plumbing: its monitor (an inherited fd), ``-S`` and ``-sandbox`` (dtvm adds its own) and the
    master-key secret (a file of libvirt's). What is left builds the same hardware."""
    pid = Path(f"/run/libvirt/qemu/{name}.pid").read_text().strip()
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    out = [args[0]]
    i = 1
    while i < len(args):
        arg = args[i]
        nxt = args[i + 1] if i + 1 < len(args) else ""
        if arg == "-S":
            i += 1
            continue
        if (arg == "-chardev" and "id=charmonitor" in nxt) or (arg == "-mon" and "chardev=charmonitor" in nxt) \
                or arg == "-sandbox" or (arg == "-object" and '"masterKey0"' in nxt):
            i += 2
            continue
        if arg == "-blockdev" and nxt.startswith("{"):
            # libvirt's QEMU holds the image's lock while the oracle reads the same hardware
            spec = json.loads(nxt)
            if spec.get("driver") == "file":
                spec["locking"] = "off"
            out += [arg, json.dumps(spec)]
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


@contextlib.contextmanager
def tpm_stand_in(argv: list[str]) -> Iterator[list[str]]:
    """``argv`` with each TPM emulator socket (libvirt's swtpm, which serves one QEMU) replaced by a
    swtpm of the test's own, fresh state, stopped on leaving: the oracle QEMU then starts the same
    TPM hardware beside libvirt's."""
    out = list(argv)
    procs: list[subprocess.Popen[bytes]] = []
    tmp = tempfile.mkdtemp(prefix="dtvm-swtpm-")
    try:
        for i, arg in enumerate(out):
            if i and out[i - 1] == "-chardev" and arg.startswith("socket,id=chrtpm"):
                sock = os.path.join(tmp, f"swtpm{len(procs)}.sock")
                state = os.path.join(tmp, f"state{len(procs)}")
                os.mkdir(state)
                procs.append(subprocess.Popen(["swtpm", "socket", "--tpm2", "--terminate", "--tpmstate",
                                               f"dir={state}", "--ctrl", f"type=unixio,path={sock}"],
                                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
                parts = [p for p in arg.split(",") if not p.startswith("path=")]
                out[i] = ",".join([*parts, f"path={sock}"])
                deadline = time.monotonic() + 10
                while not os.path.exists(sock):
                    assert procs[-1].poll() is None and time.monotonic() < deadline, "swtpm did not start"
                    time.sleep(0.01)
        yield out
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------ the generator


@dataclass
class Case:
    seed: int
    machine: str
    xml: str


def images_dir() -> str:
    """Disk images readable by the QEMU dtvm starts as root (it drops to nobody)."""
    path = os.path.join(tempfile.gettempdir(), "dtvm-libvirt-images")
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    return path


def _image(name: str) -> str:
    path = os.path.join(images_dir(), name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.truncate(1 << 20)
        os.chmod(path, 0o644)
    return path


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    elem = ET.SubElement(parent, tag, {k.rstrip("_").replace("__", "-"): v for k, v in attrs.items()})
    if text is not None:
        elem.text = text
    return elem


def generate(seed: int) -> Case:
    """A loose domain XML: what varies is drawn from ``seed``; addresses, controllers, MACs are
    left for libvirt to choose (that is what dtvm must capture)."""
    rng = random.Random(seed)
    machine = rng.choice(["q35", "q35", "pc", "virt"])
    arch = "aarch64" if machine == "virt" else "x86_64"
    dom = ET.Element("domain", {"type": "qemu"})
    _sub(dom, "name", f"{PREFIX}{seed}")
    _sub(dom, "memory", str(rng.choice([64, 96, 128, 192])), unit="MiB")
    topologies = [(1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 2, 2), (2, 2, 1)]
    sockets, cores, threads = rng.choice(topologies if arch == "x86_64" else topologies[:3])
    _sub(dom, "vcpu", str(sockets * cores * threads))
    os_ = _sub(dom, "os")
    _sub(os_, "type", "hvm", arch=arch, machine=machine)
    cpu = _sub(dom, "cpu")
    if arch == "aarch64":  # TCG, no firmware: libvirt runs it paused all the same
        cpu.set("mode", "custom")
        cpu.set("match", "exact")
        _sub(cpu, "model", "cortex-a57")
    _sub(cpu, "topology", sockets=str(sockets), dies="1", cores=str(cores), threads=str(threads))
    devs = _sub(dom, "devices")
    _sub(devs, "emulator", f"/usr/bin/qemu-system-{arch}")
    if arch == "aarch64":  # libvirt gives aarch64 virt no USB controller unless asked
        _sub(devs, "controller", type="usb", model="qemu-xhci")
    letters = iter("abcdefghijklmnop")
    buses = ["virtio", "scsi", "usb", *({"q35": ["sata"], "pc": ["ide"]}.get(machine, []))]
    for n in range(rng.randint(0, 3)):
        bus = rng.choice(buses)
        disk = _sub(devs, "disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type="raw")
        _sub(disk, "source", file=_image(f"disk-{seed}-{n}.img"))
        prefix = {"virtio": "vd", "scsi": "sd", "sata": "sd", "ide": "hd", "usb": "sd"}[bus]
        _sub(disk, "target", dev=prefix + next(letters), bus=bus)
        if rng.random() < 0.3:
            _sub(disk, "serial", f"dtvm{seed}x{n}")
    if rng.random() < 0.4:
        _sub(devs, "controller", type="scsi", model="virtio-scsi")
    for _ in range(rng.randint(0, 2)):
        nic = _sub(devs, "interface", type="user")
        models = ["virtio", "e1000" if machine == "pc" else "e1000e", "rtl8139"]
        _sub(nic, "model", type=rng.choice(models))
    if rng.random() < 0.5:
        _sub(devs, "input", type=rng.choice(["tablet", "keyboard", "mouse"]), bus="usb")
    if rng.random() < 0.5:
        for k in range(rng.randint(1, 2)):
            chan = _sub(devs, "channel", type="pty")
            _sub(chan, "target", type="virtio", name=f"org.dtvm.test.{k}")
    if rng.random() < 0.5:
        rngdev = _sub(devs, "rng", model="virtio")
        _sub(rngdev, "backend", "/dev/urandom", model="random")
    if rng.random() < 0.5 and arch == "x86_64":
        _sub(devs, "serial", type="pty")
    # issue 14's second round: video, sound with codecs, watchdog, panic, balloon switches (drawn
    # from a generator of their own so the cases above stay what they were)
    more = random.Random(seed * 7919 + 14)
    if more.random() < 0.45:
        video = _sub(devs, "video")
        kind = more.choice(["vga", "virtio", "bochs"] if arch == "x86_64" else ["virtio"])
        # qxl and ramfb came later: drawn apart, so the cases above keep what they had
        late = random.Random(seed * 31 + 5)
        if late.random() < 0.4:
            kind = late.choice(["qxl", "ramfb"] if arch == "x86_64" else ["ramfb"])
        _sub(video, "model", type=kind)
    if arch == "x86_64" and more.random() < 0.45:
        model = more.choice(["ich6", "ich9", "ac97", "usb"])
        sound = _sub(devs, "sound", model=model)
        if model in ("ich6", "ich9"):
            for _ in range(more.randint(0, 2)):
                _sub(sound, "codec", type=more.choice(["duplex", "micro", "output"]))
    if arch == "x86_64" and more.random() < 0.35:
        _sub(devs, "watchdog", model=more.choice(["i6300esb", "ib700"] if machine == "pc" else ["i6300esb"]),
             action="reset")
    if arch == "x86_64" and more.random() < 0.35:
        _sub(devs, "panic", model="isa")
    if arch == "x86_64" and more.random() < 0.3:  # libvirt runs swtpm for it (make test installs it)
        tpm = _sub(devs, "tpm", model="tpm-tis")
        _sub(tpm, "backend", type="emulator", version="2.0")
    balloon = _sub(devs, "memballoon", model=rng.choice(["virtio", "none"]))
    if balloon.get("model") == "virtio":
        for attr in ("autodeflate", "freePageReporting"):
            if more.random() < 0.4:
                balloon.set(attr, more.choice(["on", "off"]))
    # an index is required (a PCI controller without one is taken for the root); libvirt adds the
    # root ports a bridge needs
    previous = "pcie-root"
    for index in range(1, rng.randint(0, 3) + 1):
        if machine == "pc":
            _sub(devs, "controller", type="pci", index=str(index), model="pci-bridge")
        elif rng.random() < 0.7 or previous != "pcie-root-port":
            previous = "pcie-root-port"
            _sub(devs, "controller", type="pci", index=str(index), model="pcie-root-port")
        else:  # a pcie-to-pci bridge needs a root port: the one just before it
            previous = "pcie-to-pci-bridge"
            bridge = _sub(devs, "controller", type="pci", index=str(index), model="pcie-to-pci-bridge")
            _sub(bridge, "address", type="pci", domain="0x0000", bus=f"0x{index - 1:02x}", slot="0x00", function="0x0")
    ET.indent(dom)
    return Case(seed, machine, ET.tostring(dom, encoding="unicode"))


def dtvm_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    """The dtvm command line of this checkout (its own venv's interpreter)."""
    import sys

    return subprocess.run([sys.executable, "-m", "dtvm", *args], capture_output=True, text=True, timeout=300)


def dump(obj: Any) -> str:
    return json.dumps(obj)
