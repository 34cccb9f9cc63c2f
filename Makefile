# dtvm: two entry points that work on a fresh Debian 12 machine as root.
#   make demo   creates .venv, installs dtvm, runs the main job on a built-in default
#   make test   installs what the tests need (Debian packages, Python test extras) and runs them

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
DEB_PACKAGES := device-tree-compiler cpp graphviz qemu-system-x86 qemu-system-arm qemu-system-misc qemu-system-ppc

.PHONY: demo test venv deps lint parity bench fuzz clean

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

demo: deps venv
	$(VENV)/bin/dtvm qemu2dtb

test: deps $(PY)
	$(PIP) install -q -e '.[test]'
	$(PY) -m pytest -q

lint: $(PY)
	$(PIP) install -q -e '.[test]'
	$(VENV)/bin/ruff check dtvm tests scripts bench
	$(VENV)/bin/mypy dtvm

parity: deps venv
	$(PY) scripts/parity.py
	$(PY) scripts/checks_parity.py
	$(PY) scripts/outputs_parity.py
	$(PY) scripts/cpp_parity.py

# seeded mutation fuzzing of DTS and DTB input against dtc (tests/fuzz.py); more cases than make test
FUZZ_CASES ?= 20000
FUZZ_SEED ?= 1
fuzz: deps $(PY)
	$(PIP) install -q -e '.[test]'
	$(PY) -m tests.fuzz dts $(FUZZ_CASES) $(FUZZ_SEED)
	$(PY) -m tests.fuzz dtb $(FUZZ_CASES) $(FUZZ_SEED)

bench: deps $(PY)
	$(PIP) install -q -e '.[bench]'
	$(PY) bench/bench_compile.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
