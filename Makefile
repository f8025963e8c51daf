# Every target sets itself up: a fresh clone needs only python3.11 and these targets.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/esc50
CONFIG ?= configs/experiment/mn04_probe.yaml

.PHONY: setup test test-all lint cv features bench clean

$(BIN)/esclab: pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) on PATH (torch==2.14.1 wheels here are for CPython 3.11)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

setup: $(BIN)/esclab

test: setup  ## the suite CI runs (slow tests excluded)
	$(BIN)/pytest -q -m "not slow"

test-all: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .

cv: setup  ## the main job: 5-fold cross-validation of CONFIG on DATA
	$(BIN)/esclab cv --config $(CONFIG) --data $(DATA)

features: setup
	$(BIN)/esclab features --config $(CONFIG) --data $(DATA)

bench: setup
	$(BIN)/python benchmarks/bench_feature_cache.py --data $(DATA)
	$(BIN)/python benchmarks/bench_step.py --model paper_cnn

clean:
	rm -rf $(VENV) cache .pytest_cache .ruff_cache
