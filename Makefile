# The few commands people type. Each works from a fresh clone with only Python installed.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench bench-serve clean

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
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest -n 2 --dist loadfile

bench: setup
	$(PY) -m bench.simulate
	$(PY) -m bench.features --dask
	$(PY) -m bench.features_vs_duckdb
	$(PY) -m bench.train
	$(PY) -m bench.quality_phase_churn
	$(PY) -m bench.quality_next_content

bench-serve: setup
	test -d out/bench-data-100000-7 || $(PY) -m bench.features
	mkdir -p out/serve-bench
	test -f out/serve-bench/mlflow.db || MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/out/serve-bench/mlflow.db $(VENV)/bin/nba train all --data out/bench-data-100000-7
	PATH=$(VENV)/bin:$$PATH $(PY) -m bench.serve

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
