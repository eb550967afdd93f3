# One entry point for set-up, demo, tests and benchmarks. Each target creates the
# virtual environment on first use, so a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PLUGINS := $(sort $(wildcard plugins/*/pyproject.toml))

.PHONY: env demo test lint typecheck pytest bench bench-quick bench-pdq bench-pdq-quick clean test-ray bench-engines

env: $(STAMP)

$(STAMP): pyproject.toml $(PLUGINS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,bench]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	@echo 'compiling the scan kernels (once per installation, under a minute)'
	$(BIN)/python -m datahygiene.kernels
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/datahygiene demo --out demo-out

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check datahygiene tests plugins

typecheck: $(STAMP)
	$(BIN)/mypy datahygiene $(filter-out %.egg-info/,$(wildcard plugins/*/datahygiene_*/))

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m datahygiene.bench.exact --rows 20000000 --list-size 5000000 \
		--binary --sparse --stored --small-files --urls --scaling 10000000,40000000 \
		--scaling-rare 10000000,40000000 --many-files 20000

# The Ray engine's tests need the optional ray extra and most of a minute of Ray start-up.
test-ray: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[ray]'
	DATAHYGIENE_SLOW=1 $(BIN)/python -m pytest -q tests/engines plugins/datahygiene-photodna/tests/test_photodna_ray.py \
		plugins/datahygiene-pdq/tests/test_pdq_ray.py

# rows/s, local vs Ray, on the same 20M-row manifest; resume overhead (needs the ray extra)
bench-engines: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[ray]'
	$(BIN)/python -m datahygiene.bench.engines --rows 20000000

bench-quick: $(STAMP)
	$(BIN)/python -m datahygiene.bench.exact --rows 2000000 --list-size 500000 --repeat 1

bench-pdq: $(STAMP)
	$(BIN)/python -m pip install -q -e 'plugins/datahygiene-pdq[bench]'
	$(BIN)/python -m datahygiene.bench.pdq --list-size 1000000 --queries 100000

bench-pdq-quick: $(STAMP)
	$(BIN)/python -m pip install -q -e 'plugins/datahygiene-pdq[bench]'
	$(BIN)/python -m datahygiene.bench.pdq --quick

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache
