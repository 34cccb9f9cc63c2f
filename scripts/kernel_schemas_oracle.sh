#!/usr/bin/env bash
# The oracle for `dtvm validate --schemas` (issue 20), installed reproducibly into one cache directory:
#
#   DIR/dtschema-2022.12/          a venv with dtschema 2022.12, jsonschema 4.17.3, ruamel.yaml 0.17.40
#                                  (dtschema of Linux 6.1's time; newer jsonschema breaks it)
#   DIR/linux-6.1/                 the parts of Debian's linux-source-6.1 that dtbs_check reads:
#                                  Documentation/devicetree/bindings, scripts/dtc/include-prefixes,
#                                  include/dt-bindings (+ the linux-event-codes.h symlink's target),
#                                  arch/{arm,arm64,riscv}/boot/dts
#   DIR/linux-6.1/processed-schema.json   `dt-mk-schema -j` (without -u) of those bindings
#
# DIR is $DTVM_KERNEL_ORACLE, default ${XDG_CACHE_HOME:-~/.cache}/dtvm-oracle. Every step is skipped
# when its output exists, so running it twice costs nothing. Needs python3-venv, xz-utils and, for the
# kernel source, apt-get (as root) or an existing /usr/src/linux-source-6.1.tar.xz.
set -euo pipefail

DIR="${DTVM_KERNEL_ORACLE:-${XDG_CACHE_HOME:-$HOME/.cache}/dtvm-oracle}"
mkdir -p "$DIR"
VENV="$DIR/dtschema-2022.12"
SRC="$DIR/linux-6.1"

if [ ! -x "$VENV/bin/dt-validate" ]; then
	python3 -m venv "$VENV"
	"$VENV/bin/pip" install -q 'dtschema==2022.12' 'jsonschema==4.17.3' 'ruamel.yaml==0.17.40'
fi

if [ ! -f "$SRC/.complete" ]; then
	tarball=/usr/src/linux-source-6.1.tar.xz
	if [ ! -f "$tarball" ]; then
		deb=$(ls "$DIR"/linux-source-6.1_*_all.deb 2>/dev/null | tail -n 1 || true)
		if [ -z "$deb" ]; then
			if [ "$(id -u)" != 0 ]; then
				echo "linux-source-6.1 is missing: run as root (apt-get) or install the package" >&2
				exit 1
			fi
			(cd "$DIR" && apt-get -qq download linux-source-6.1 2>/dev/null) || {
				apt-get update -qq && (cd "$DIR" && apt-get -qq download linux-source-6.1 2>/dev/null)
			}
			deb=$(ls "$DIR"/linux-source-6.1_*_all.deb | tail -n 1)
		fi
		tarball="$DIR/linux-source-6.1.tar.xz"
		dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/src/linux-source-6.1.tar.xz >"$tarball.tmp"
		mv "$tarball.tmp" "$tarball"
	fi
	rm -rf "$SRC.tmp"
	mkdir -p "$SRC.tmp"
	p=linux-source-6.1
	# selective: the tarball holds 1.3 GB, dtbs_check reads about 150 MB of it
	tar -xJf "$tarball" -C "$SRC.tmp" --strip-components=1 \
		"$p/Documentation/devicetree/bindings" "$p/scripts/dtc/include-prefixes" \
		"$p/include/dt-bindings" "$p/include/uapi/linux/input-event-codes.h" \
		"$p/arch/arm/boot/dts" "$p/arch/arm64/boot/dts" "$p/arch/riscv/boot/dts"
	rm -rf "$SRC"
	mv "$SRC.tmp" "$SRC"
	touch "$SRC/.complete"
	case "$tarball" in "$DIR"/*) rm -f "$tarball" ;; esac
fi

if [ ! -s "$SRC/processed-schema.json" ]; then
	# dt-mk-schema prints a warning per schema it cannot process; they are the oracle's own verdicts
	"$VENV/bin/dt-mk-schema" -j "$SRC/Documentation/devicetree/bindings" >"$SRC/processed-schema.json.tmp" \
		2>"$SRC/dt-mk-schema.log" || true
	mv "$SRC/processed-schema.json.tmp" "$SRC/processed-schema.json"
fi
echo "$DIR"
