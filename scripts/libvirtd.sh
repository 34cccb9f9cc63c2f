#!/usr/bin/env bash
# libvirt 9.0 (Debian 12) for dtvm's tests, without systemd.
#
#   scripts/libvirtd.sh install   apt-get the daemon (as root), create the users and groups it wants,
#                                 set qemu.conf for TCG domains run as root (idempotent)
#   scripts/libvirtd.sh start     start virtlogd and libvirtd by hand unless they answer already;
#                                 prints the connection URI (qemu:///system)
#   scripts/libvirtd.sh stop      stop the virtlogd and libvirtd this script started (by pid file)
#   scripts/libvirtd.sh status    exit 0 when libvirtd answers on qemu:///system
#   scripts/libvirtd.sh start-peer  a second libvirtd on this host that libvirt takes for another
#                                 host (own host_uuid, sockets, state, config, logs, in a private mount
#                                 namespace); prints its URI: the destination of real libvirt migrations
#   scripts/libvirtd.sh stop-peer   destroy the peer's domains, stop it, remove its directories
#
# Why by hand: Debian's libvirt-daemon-system brings systemd units and socket activation; the
# monolithic libvirtd of bookworm runs fine as a plain daemon once the users and groups its
# packaging would create exist (it refuses to start without libvirt-qemu and kvm, even with
# user = "root" in qemu.conf). The first connection probes every qemu-system binary (about 45 s);
# the answers are cached under /var/cache/libvirt/qemu.
set -euo pipefail

# libvirt-dev, pkg-config, gcc and python3-dev: pip builds libvirt-python against them
# swtpm, swtpm-tools: the TPM emulator libvirt runs for <tpm><backend type="emulator">
PACKAGES="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev pkg-config gcc python3-dev swtpm swtpm-tools"
QEMU_CONF=/etc/libvirt/qemu.conf
URI=qemu:///system
# the pid files of the daemons this script started (libvirtd and virtlogd write their own under /run)
STATE=/run/dtvm-libvirt
MARK="# dtvm: TCG test domains run as root without a security driver"

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "libvirtd.sh: $1 needs root (libvirt's system daemon)" >&2
        exit 1
    fi
}

install() {
    need_root install
    local missing=""
    for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    if [ -n "$missing" ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
    # what libvirt-daemon-system's postinst would create
    getent group kvm >/dev/null || groupadd --system kvm
    getent group libvirt >/dev/null || groupadd --system libvirt
    getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
    if ! getent passwd libvirt-qemu >/dev/null; then
        useradd --system --gid kvm --groups libvirt-qemu --home-dir /var/lib/libvirt --no-create-home \
            --shell /usr/sbin/nologin --comment "Libvirt Qemu" libvirt-qemu
    fi
    mkdir -p /etc/libvirt /var/lib/libvirt/qemu /var/cache/libvirt/qemu /var/log/libvirt/qemu /run/libvirt
    touch "$QEMU_CONF"
    if ! grep -qF "$MARK" "$QEMU_CONF"; then
        # one value per key: drop any uncommented user/group/security_driver line before adding ours
        sed -i -E '/^[[:space:]]*(user|group|security_driver)[[:space:]]*=/d' "$QEMU_CONF"
        printf '\n%s\nuser = "root"\ngroup = "root"\nsecurity_driver = "none"\n' "$MARK" >>"$QEMU_CONF"
    fi
}

answers() {
    # capabilities, not uri: the first one is the slow probe of every qemu-system binary
    timeout "${1:-10}" virsh -q -c "$URI" capabilities >/dev/null 2>&1
}

alive() {  # alive PIDFILE: the process named in it runs
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start() {
    need_root start
    command -v libvirtd >/dev/null || { echo "libvirtd.sh: libvirtd is not installed (run: $0 install)" >&2; exit 1; }
    mkdir -p "$STATE" /run/libvirt
    # libvirt runs swtpm_setup as tss: a swtpm_setup once run as root (by hand) leaves the local
    # CA's lock and serial root-owned, and every later TPM domain fails "Could not run swtpm_setup"
    if [ -d /var/lib/swtpm-localca ] && id tss >/dev/null 2>&1; then
        chown -R tss:tss /var/lib/swtpm-localca
    fi
    if alive /run/libvirtd.pid && answers 120; then
        echo "$URI"
        return
    fi
    if ! alive /run/virtlogd.pid; then
        virtlogd --daemon
        for _ in $(seq 100); do alive /run/virtlogd.pid && break; sleep 0.1; done
        cp /run/virtlogd.pid "$STATE/virtlogd.pid"
    fi
    if ! alive /run/libvirtd.pid; then
        libvirtd --daemon
        for _ in $(seq 200); do alive /run/libvirtd.pid && [ -S /run/libvirt/libvirt-sock ] && break; sleep 0.1; done
        cp /run/libvirtd.pid "$STATE/libvirtd.pid"
    fi
    # the first connection probes every installed qemu-system binary (45 s on a fresh machine)
    if ! answers 300; then
        echo "libvirtd.sh: libvirtd does not answer on $URI" >&2
        exit 1
    fi
    echo "$URI"
}

stop_one() {  # stop_one NAME: the daemon this script started, by its pid file
    local f="$STATE/$1.pid"
    if [ -s "$f" ]; then
        local pid
        pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        fi
        rm -f "$f"
    fi
}

stop() {
    need_root stop
    stop_one libvirtd
    stop_one virtlogd
}

# ---------------------------------------------------------------------------------- the peer daemon
# libvirt refuses to migrate a domain to the host it runs on (it compares host UUIDs). A second
# privileged libvirtd would share the first's compiled-in state directories (/run/libvirt,
# /var/lib/libvirt, ...) and adopt its running domains, so the peer runs in a mount namespace of its
# own where those directories are bind mounts of private ones under PEER; only its socket directory
# lies outside them (PEER/sock, reachable from the host). qemu.conf: QEMU's output straight to a
# file (no virtlogd of its own), no cgroups (the first daemon's domains of the same name and id would
# share a cgroup), no per-domain /dev namespace (nothing to isolate in tests).
PEER=/run/dtvm-libvirt-peer
PEER_URI="qemu+unix:///system?socket=$PEER/sock/libvirt-sock"
# any UUID other than this host's (libvirt's same-host check compares them)
PEER_UUID=6474766d-7065-6572-8000-000000000001

peer_answers() {
    timeout "${1:-10}" virsh -q -c "$PEER_URI" uri >/dev/null 2>&1
}

start_peer() {
    need_root start-peer
    command -v libvirtd >/dev/null || { echo "libvirtd.sh: libvirtd is not installed (run: $0 install)" >&2; exit 1; }
    if alive "$PEER/libvirtd.pid" && peer_answers 60; then
        echo "$PEER_URI"
        return
    fi
    mkdir -p "$PEER"/{etc,run,lib/qemu,cache/qemu,log/qemu,sock}
    cat >"$PEER/etc/libvirtd.conf" <<CONF
unix_sock_dir = "$PEER/sock"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
host_uuid = "$PEER_UUID"
CONF
    cat >"$PEER/etc/qemu.conf" <<CONF
user = "root"
group = "root"
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
namespaces = [ ]
CONF
    # the probe of every qemu-system binary takes 45 s: the first daemon's answers are valid here
    # (same binaries, same libvirtd), so the peer starts from a copy of them
    if [ -d /var/cache/libvirt/qemu/capabilities ]; then
        cp -a /var/cache/libvirt/qemu/capabilities "$PEER/cache/qemu/"
    fi
    unshare --mount --propagation private sh -ec '
        P=$1
        mount --bind "$P/etc" /etc/libvirt
        mount --bind "$P/run" /run/libvirt
        mount --bind "$P/lib" /var/lib/libvirt
        mount --bind "$P/cache" /var/cache/libvirt
        mount --bind "$P/log" /var/log/libvirt
        exec libvirtd --daemon --config "$P/etc/libvirtd.conf" --pid-file "$P/libvirtd.pid"' sh "$PEER"
    for _ in $(seq 200); do alive "$PEER/libvirtd.pid" && [ -S "$PEER/sock/libvirt-sock" ] && break; sleep 0.1; done
    if ! peer_answers 300 || ! timeout 300 virsh -q -c "$PEER_URI" capabilities >/dev/null 2>&1; then
        echo "libvirtd.sh: the peer libvirtd does not answer on $PEER_URI" >&2
        stop_peer
        exit 1
    fi
    echo "$PEER_URI"
}

stop_peer() {
    need_root stop-peer
    if alive "$PEER/libvirtd.pid"; then
        # libvirtd leaves its domains running when it stops: destroy them first
        local dom
        for dom in $(timeout 30 virsh -q -c "$PEER_URI" list --name 2>/dev/null); do
            timeout 30 virsh -q -c "$PEER_URI" destroy "$dom" >/dev/null 2>&1 || true
        done
        local pid
        pid=$(cat "$PEER/libvirtd.pid")
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    # the bind mounts went with the namespace of the daemon; what is left are plain directories
    rm -rf "$PEER"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) answers 10 ;;
    start-peer) start_peer ;;
    stop-peer) stop_peer ;;
    peer-uri) echo "$PEER_URI" ;;
    *) echo "usage: $0 install|start|stop|status|start-peer|stop-peer|peer-uri" >&2; exit 2 ;;
esac
