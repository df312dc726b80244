# The two commands of a fresh machine: `make run` (set up, train and score the default agent)
# and `make test` (set up, run the tests). Both create .venv and install torch==2.13.0 first:
# the CPU wheel lies on this machine's disk, and letting pip choose a torch would download CUDA.
# A torch already in .venv (a CPU build installed by hand, see the README) is kept.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint typecheck bench quality clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,ray,zoo]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) train.py

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy envs baselines agents hedgearena
	$(PY) -m pytest -n 2 -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy envs baselines agents hedgearena

bench: $(STAMP)
	$(PY) bench/pricing.py
	$(PY) bench/env_throughput.py
	$(PY) bench/arena.py
	$(PY) bench/sweep.py

quality: $(STAMP)
	$(PY) bench/quality.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build *.egg-info
