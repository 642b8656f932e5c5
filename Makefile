# liverseg: the two set-up commands are `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: demo test lint format clean sample

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: on the project machines this is a CPU build on local disk.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/liverseg demo --out demo_output

test: $(STAMP)
	# loadfile: the tests of one file run on one worker (tests/cohort/test_cohort_ray.py: one local Ray).
	# (not loadgroup: with pytest 9.2 it no longer groups, pytest-dev/pytest-xdist#1386)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=15 tests

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks scripts
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts

sample: $(STAMP)
	$(PY) scripts/make_sample.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache .ruff_cache
