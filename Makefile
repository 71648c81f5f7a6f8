# The few commands people type. Each works from a fresh clone with only Python installed.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/nba demo --out demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

bench: setup
	$(PY) -m bench.simulate
	$(PY) -m bench.features --dask
	$(PY) -m bench.train
	$(PY) -m bench.quality_phase_churn
	$(PY) -m bench.quality_next_content

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
