# The two commands that matter: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv system-packages test lint unit testenv-up testenv-down crd demo image krew clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# Debian packages the tests and the demo need: installed when missing (as root), else
# the one apt-get command to run is printed. .ci/run runs the same script.
system-packages:
	@bash .ci/system-packages

lint: venv
	$(VENV)/bin/ruff check operator tests benchmarks
	$(VENV)/bin/ruff format --check operator tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: venv
	$(PY) -m pytest tests/unit

# Lint, prove the test servers real (python -m tests.testenv check), then every test
# against them; the servers are started if not running, and stopped again afterwards
# if this run started them (unless PAYSCOPE_TESTENV_KEEP=1).
test: system-packages lint
	@if $(PY) -m tests.testenv status >/dev/null 2>&1; then was_up=1; else was_up=0; fi; \
	PAYSCOPE_TESTENV_KEEP=1 $(PY) -m tests.testenv check && $(PY) -m pytest; status=$$?; \
	if [ $$was_up = 0 ] && [ "$${PAYSCOPE_TESTENV_KEEP:-}" != 1 ]; then $(PY) -m tests.testenv down; fi; \
	exit $$status

testenv-up: system-packages venv
	$(PY) -m tests.testenv up

testenv-down: venv
	$(PY) -m tests.testenv down

crd: venv
	$(VENV)/bin/payscope-operator crd > crds/payscope.io_payscopedeployments.yaml
	cp crds/payscope.io_payscopedeployments.yaml charts/payscope-operator/crds/

demo: system-packages venv
	$(PY) -m tests.demo

# The Dockerfile built offline with podman (base bootstrapped by mmdebstrap; see README).
image: system-packages venv
	$(PY) -m tests.testenv.image

# The krew archive of `kubectl payscope` (plugins/krew/payscope.yaml names its sha256).
krew: venv
	$(PY) -m tests.krew dist

clean:
	rm -rf $(VENV) .testenv .mypy_cache .ruff_cache .pytest_cache
