# edgekit: `make run` trains, exports, checks and benchmarks; `make test` runs lint, types, the docs build and tests.
# Both create .venv with Python 3.11 first if it is missing (versions pinned in constraints.txt).

PYTHON ?= $(shell command -v python3.11 2>/dev/null)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgekit-installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install run test test-slow lint typecheck docs clean help

help:
	@echo "make run        set up .venv and run the whole pipeline (edgekit pipeline $$ARGS)"
	@echo "make test       set up .venv, then ruff, mypy, the docs build and the test suite (PYTEST_ARGS=--run-slow adds end-to-end runs)"
	@echo "make docs       build the documentation site into site/ (mkdocs build --strict)"
	@echo "make test-slow  only the slow end-to-end tests"
	@echo "make clean      remove .venv, runs/ and site/"

$(STAMP): pyproject.toml constraints.txt
	@if [ ! -x $(BIN)/python ]; then \
	  if [ -z "$(PYTHON)" ]; then echo "error: python3.11 not found; install Python 3.11 or run: make PYTHON=/path/to/python3.11" >&2; exit 1; fi; \
	  echo "Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[train,dev,mcu,int4,openvino-int8,docs,farm]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/edgekit pipeline $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check toolkit exporters runtimes benchmarks tests examples docs/hooks
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# Strict: a broken link or anchor, a stale `edgekit ... --option`, a vanished API name or a missing
# toolkit/tolerances.py fails the build (docs/hooks/). Material's notice about MkDocs 2 is silenced.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: lint typecheck docs
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: install
	$(BIN)/python -m pytest --run-slow -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs site .pytest_cache .mypy_cache .ruff_cache
