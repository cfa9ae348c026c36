# Thin targets; the scripts under scripts/ do the work.
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 5000
DATA_DIR ?= ./data

.PHONY: serve test check lint bench install install-test clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

serve: install
	$(VENV)/bin/dockyard serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

test: install-test
	scripts/install-test-deps
	scripts/test

check: install-test
	scripts/check

lint: install-test
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

bench: install-test
	scripts/install-test-deps
	$(PY) -m bench $(if $(QUICK),--quick,) $(if $(WORKERS),--workers $(WORKERS),)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
