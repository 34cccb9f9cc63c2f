# dtvm: two entry points that work on a fresh Debian 12 machine as root.
#   make demo   creates .venv, installs dtvm, runs the main job on a built-in default
#   make test   installs what the tests need (Debian packages, Python test extras) and runs them

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
DEB_PACKAGES := device-tree-compiler cpp graphviz qemu-system-x86 qemu-system-arm qemu-system-misc qemu-system-ppc qemu-utils qemu-efi-aarch64

DEMO_PACKAGES := python3-venv qemu-system-arm

.PHONY: demo demo-deps test test-versions venv deps qemu10 libvirt-deps test-libvirt lint parity bench clean api-docs fuzz fuzz-qmp check-qemu-random check-qemu-offline check-qemu-random-versions kernel-schemas-oracle test-kernel-schemas kernel-schemas-fill kernel-schemas-compare bench-dtbs-check

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

venv: $(PY)
	$(PIP) install -q -e .

# Debian packages the oracles come from, installed only when missing
deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "missing Debian packages:$$missing (run as root or install them)"; exit 1; fi; \
	fi

# libvirt 9.0's daemon for the libvirt tests, without systemd (scripts/libvirtd.sh; the tests start
# and stop virtlogd and libvirtd themselves); libvirt-dev, gcc and pkg-config build libvirt-python
libvirt-deps:
	@if [ "$$(id -u)" = 0 ]; then scripts/libvirtd.sh install; \
	else echo "libvirt tests: not root, libvirt's system daemon is not installed (they will be skipped)"; fi

# QEMU 10.0 from bookworm-backports beside the system's 7.2, in a private prefix ($$DTVM_QEMU10,
# default /opt/dtvm/qemu-10.0.2): the cross-version tests' second QEMU; idempotent, pinned version
qemu10: deps
	scripts/install-qemu10

# the demo describes QEMU's aarch64 virt machine: it needs qemu-system-arm (and venv) only
demo-deps:
	@missing=""; for p in $(DEMO_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "the demo needs Debian packages:$$missing (run as root or install them)"; exit 1; fi; \
	fi

demo: demo-deps venv
	$(VENV)/bin/dtvm qemu2dtb
	@echo ""
	@echo "dtvm is installed in $(VENV): run $(VENV)/bin/dtvm --help (or: . $(VENV)/bin/activate; dtvm --help)"

# the API reference (pdoc), written to docs/api/ (not committed)
api-docs: $(PY)
	$(PIP) install -q -e . pdoc
	$(VENV)/bin/pdoc -o docs/api dtvm.api dtvm.pylibfdt dtvm.dt.tree dtvm.errors

# .venv/bin on PATH: the oracles installed from PyPI (dtschema's dt-validate) are found there
test: deps libvirt-deps qemu10 kernel-schemas-oracle $(PY)
	$(PIP) install -q -e '.[test]'
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q --durations=25

# every generated domain through the real libvirt daemon (the default run takes a few)
test-libvirt: deps libvirt-deps $(PY)
	$(PIP) install -q -e '.[test]'
	DTVM_LIBVIRT_CASES=$${CASES:-24} $(PY) -m pytest -q -m 'libvirt_slow or not libvirt_slow' tests/test_libvirt*.py

# every round-trip configuration on QEMU 10.0 alone and across 7.2/10.0 both ways (live migrations,
# about 3 minutes; make test runs a few of each)
test-versions: deps qemu10 $(PY)
	$(PIP) install -q -e '.[test]'
	$(PY) -m pytest -q -m versions_full tests/test_versions_migrate.py tests/test_versions_offline.py \
		tests/test_qemu_random_versions.py

# dt-validate's oracle for `dtvm validate --schemas` (issue 20): dtschema 2022.12 in its own venv,
# the parts of Debian's linux-source-6.1 that dtbs_check reads, dt-mk-schema's processed schemas
# (under ~/.cache/dtvm-oracle, or $$DTVM_KERNEL_ORACLE); about a minute the first time, then nothing
kernel-schemas-oracle:
	@command -v xz >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xz-utils; }
	scripts/kernel_schemas_oracle.sh

# every arm64 board of Linux 6.1 (or BOARDS=N of them, SEED=S), dtvm against dt-validate finding
# for finding: about 10 s of dt-validate CPU a board, so JOBS=N workers
test-kernel-schemas: deps $(PY) kernel-schemas-oracle
	$(PIP) install -q -e '.[test]'
	DTVM_KERNEL_ARCH=$${ARCH:-arm64} DTVM_KERNEL_BOARDS=$${BOARDS:-0} DTVM_KERNEL_SEED=$${SEED:-20} DTVM_KERNEL_JOBS=$${JOBS:-2} \
		$(PY) -m pytest -q -s -m kernel_all tests/test_kernel_schemas_all.py tests/test_kernel_schemas_lines.py

# the same comparison, resumable: dt-validate board by board at nice 19, one job, each verdict kept
# under ~/.cache/dtvm-oracle/dt-validate/<oracle version>/ (the next run continues, never re-runs a
# board; start it in the background, STOP=HH:MM UTC ends it), then dtvm against every cached board
kernel-schemas-fill: deps $(PY) kernel-schemas-oracle
	nice -n $${NICE:-19} $(PY) scripts/kernel_oracle_cache.py fill --nice $${NICE:-19} --arch $${ARCH:-arm64} --limit $${LIMIT:-0} $${STOP:+--stop-at $$STOP} $${SHARD:+--shard $$SHARD}

kernel-schemas-compare: deps $(PY) kernel-schemas-oracle
	$(PIP) install -q -e .
	$(PY) scripts/kernel_oracle_cache.py compare --arch $${ARCH:-arm64} --jobs $${JOBS:-2}

# dtvm validate --schemas against dt-validate on arm64 boards, same --jobs, warm and cold cache
bench-dtbs-check: deps $(PY) kernel-schemas-oracle
	$(PIP) install -q -e .
	$(PY) bench/bench_dtbs_check.py --boards $${BOARDS:-0} --jobs $${JOBS:-2}

lint: $(PY)
	$(PIP) install -q -e '.[test]'
	$(VENV)/bin/ruff check dtvm tests scripts bench
	$(VENV)/bin/mypy dtvm

parity: deps venv
	$(PY) scripts/parity.py
	$(PY) scripts/checks_parity.py
	$(PY) scripts/outputs_parity.py
	$(PY) scripts/cpp_parity.py

# the QMP and command-line fuzz targets for longer (the test suite runs 240 sessions and 400 lines)
fuzz-qmp: deps $(PY)
	$(PIP) install -q -e '.[test]'
	DTVM_FUZZ_QMP_SESSIONS=$${SESSIONS:-3000} DTVM_FUZZ_QMP_SEED=$${SEED:-1900} DTVM_FUZZ_ARGV_CASES=$${CASES:-5000} \
		$(PY) -m pytest -q -s tests/test_qmp_fuzz.py tests/test_argv_fuzz.py

# the round trip (describe twice, after a run, offline, dtb2qemu while the source runs, migrate,
# same description) on N generated QEMU configurations (tests/qemugen.py); prints the pass rate
# per machine and stage (make test runs a fixed set of 60). MACHINES=q35,pc limits the machines.
N ?= 300
SEED ?= 1
check-qemu-random: deps $(PY)
	$(PIP) install -q -e '.[test]'
	$(PY) -m tests.qemu_random $(N) $(SEED) $(MACHINES)

# the offline stage alone (one QEMU start a case, no migration): qemu2dtb --offline against online
# on the generated cases without hot-plug, guest DTB and back-end overlay; prints per machine how
# many are the same, refused (grouped by what the refusal names) or different
check-qemu-offline: deps $(PY)
	$(PIP) install -q -e '.[test]'
	$(PY) -m tests.qemu_offline_random $(N) $(SEED) "$(MACHINES)" $(if $(FIRST),--refusals-first)

# the same on QEMU 10.0 (MODE=10.0: unpinned types, 10.0's offline models) or across versions
# (MODE=7.2-10.0 or 10.0-7.2: pinned 7.2 types, dtb2qemu --binary the other QEMU, live migration);
# QEMU's own refusals (to start, or to migrate the identical command line) are counted, not failed
MODE ?= 10.0
check-qemu-random-versions: deps qemu10 $(PY)
	$(PIP) install -q -e '.[test]'
	$(PY) -m tests.qemu_random_versions $(N) $(SEED) $(MODE) $(MACHINES)

# seeded mutation fuzzing of DTS and DTB input against dtc (tests/fuzz.py); more cases than make test
FUZZ_CASES ?= 20000
FUZZ_SEED ?= 1
fuzz: deps $(PY)
	$(PIP) install -q -e '.[test]'
	$(PY) -m tests.fuzz dts $(FUZZ_CASES) $(FUZZ_SEED)
	$(PY) -m tests.fuzz dtb $(FUZZ_CASES) $(FUZZ_SEED)
	DTVM_HYPOTHESIS=random $(PY) -m pytest -q $$(grep -l '^from hypothesis' tests/test_*.py)

bench: deps $(PY)
	$(PIP) install -q -e '.[bench]'
	$(PY) bench/bench_compile.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
