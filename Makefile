# Two commands set up a fresh machine: `make devnet` and `make test`.
# Both create .venv with the project installed; nothing else is assumed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)

.PHONY: install postgres devnet test lint typecheck unit bench clean lock

# Pinned versions from requirements.lock; see .ci/install-venv.sh (safe to run twice at once).
$(STAMP): pyproject.toml requirements.lock
	PYTHON=$(PYTHON) VENV=$(VENV) .ci/install-venv.sh $(STAMP)

# Re-resolve the lock from pyproject.toml's ranges (on purpose only, never in CI).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet pip==26.3
	.lock-venv/bin/python -m pip install --quiet '.[dev,bench]'
	.lock-venv/bin/python -m pip install --quiet setuptools wheel
	(head -2 requirements.lock; .lock-venv/bin/python -m pip freeze --all --exclude-editable \
	  | grep -v -e '^pip==' -e '^tkms' | sort -f) > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lock-venv

install: $(STAMP)

devnet: $(STAMP)
	$(BIN)/tkms devnet $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The storage tests run a throwaway PostgreSQL server from Debian's binaries.
postgres:
	.ci/install-postgres.sh

unit: $(STAMP) postgres
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/delegate.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
