# `make run` and `make test` set everything up on a fresh machine (a .venv beside this file).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# the default recipe is the whole pipeline; recipes/sst2-minilm.toml is its first two stages
RECIPE ?= recipes/sst2-minilm-edge.toml

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

# one worker per core (pytest-xdist), a file's tests on one worker so its fixtures are built once
test: $(BIN)/compress lint typecheck
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# compress vs PyTorch and Optimum's path in one process: runs both INT8 recipes first (cached; ~40 min
# from an empty cache on 2 cores), then ~5 min of measurement
bench: $(BIN)/compress
	$(BIN)/python -m benchmarks

test-slow: $(BIN)/compress
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf artifacts
