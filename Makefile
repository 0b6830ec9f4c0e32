# The two commands that matter: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv test lint unit testenv-up testenv-down crd demo clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check operator tests benchmarks
	$(VENV)/bin/ruff format --check operator tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: venv
	$(PY) -m pytest tests/unit

# Lint, then every test against the real servers (started if not running,
# stopped again afterwards if this run started them).
test: lint
	$(PY) -m pytest

testenv-up: venv
	$(PY) -m tests.testenv up

testenv-down: venv
	$(PY) -m tests.testenv down

crd: venv
	$(VENV)/bin/payscope-operator crd > crds/payscope.io_payscopedeployments.yaml
	cp crds/payscope.io_payscopedeployments.yaml charts/payscope-operator/crds/

demo: venv
	$(PY) -m tests.demo

clean:
	rm -rf $(VENV) .testenv .mypy_cache .ruff_cache .pytest_cache
