# `make run` and `make test` set everything up on a fresh machine (a .venv beside this file).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RECIPE ?= recipes/sst2-minilm.toml

.PHONY: run test test-slow lint typecheck smoke bench clean

# torch first, pinned: a CPU build of 2.13.0 lies on these machines; unpinned, pip pulls a CUDA build
$(BIN)/compress: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/compress
	$(BIN)/compress run $(RECIPE)

smoke: $(BIN)/compress
	$(BIN)/compress run recipes/smoke.toml

lint: $(BIN)/compress
	$(BIN)/ruff check compress tests benchmarks
	$(BIN)/ruff format --check compress tests benchmarks

typecheck: $(BIN)/compress
	$(BIN)/mypy

test: $(BIN)/compress lint typecheck
	$(BIN)/python -m pytest -q

# compress vs PyTorch and Optimum's path in one process: runs both INT8 recipes first (cached; ~40 min
# from an empty cache on 2 cores), then ~5 min of measurement
bench: $(BIN)/compress
	$(BIN)/python -m benchmarks

test-slow: $(BIN)/compress
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf artifacts
