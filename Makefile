# itsmd — `make run` runs the daemon, `make test` runs the suite (both set up .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint typecheck format bench bench-smoke clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/itsmd run --config itsmd.example.yml --migrate

test: $(STAMP) lint typecheck
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m 'not e2e' -x -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=daemon:connectors $(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache itsmd.db itsmd.db-wal itsmd.db-shm

bench: $(STAMP)
	$(BIN)/pytest bench/micro --benchmark-only -p no:cacheprovider
	$(BIN)/python bench/run.py
	$(BIN)/python bench/outbox.py
	$(BIN)/python bench/console.py --runs 1

bench-smoke: $(STAMP)
	$(BIN)/pytest bench/micro --benchmark-disable -q -p no:cacheprovider
	$(BIN)/python bench/run.py --smoke
