# Two commands set up a fresh machine: `make devnet` and `make test`.
# Both create .venv with the project installed; nothing else is assumed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)
# solc-js and anvil, pinned by package-lock.json, in the project's node_modules.
NODE_STAMP := node_modules/.installed-$(shell cat package.json package-lock.json | cksum | cut -d' ' -f1)

.PHONY: install node contracts postgres devnet test lint typecheck unit bench clean lock

# Pinned versions from requirements.lock; see .ci/install-venv.sh (safe to run twice at once).
$(STAMP): pyproject.toml requirements.lock
	PYTHON=$(PYTHON) VENV=$(VENV) .ci/install-venv.sh $(STAMP)

# Pinned versions from package-lock.json; see .ci/install-node.sh (safe to run twice at once).
$(NODE_STAMP): package.json package-lock.json
	.ci/install-node.sh $(NODE_STAMP)

node: $(NODE_STAMP)

# Recompile contracts/*.sol into src/tkms/chain/artifacts/ (committed; a test checks them).
contracts: $(NODE_STAMP)
	node contracts/compile.mjs

# Re-resolve the lock from pyproject.toml's ranges (on purpose only, never in CI).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet pip==26.3
	.lock-venv/bin/python -m pip install --quiet '.[dev,bench]'
	.lock-venv/bin/python -m pip install --quiet setuptools wheel
	(head -2 requirements.lock; .lock-venv/bin/python -m pip freeze --all --exclude-editable \
	  | grep -v -e '^pip==' -e '^tkms' | sort -f) > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lock-venv

install: $(STAMP) $(NODE_STAMP)

devnet: $(STAMP) $(NODE_STAMP)
	$(BIN)/tkms devnet $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The storage tests run a throwaway PostgreSQL server from Debian's binaries.
postgres:
	.ci/install-postgres.sh

# One worker per core (TEST_WORKERS=1 runs it in one process); a file's tests stay
# together, so its module fixtures (clusters, chains) start once.
TEST_WORKERS ?= 2
unit: $(STAMP) $(NODE_STAMP) postgres
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/delegate.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
