# The two set-up commands of the README:
#   make demo   creates .venv, installs finmlsec, runs the main job on the embedded defaults (out/)
#   make test   creates or reuses .venv, installs the test dependencies, runs the whole suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
OUT    := out

.PHONY: demo test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# The stamp files re-run pip only when pyproject.toml changes.
$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e '.[all]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e '.[all,test]'
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	mkdir -p $(OUT)
	$(VENV)/bin/finmlsec demo run credit-scoring --out $(OUT) --profile standard

test: $(VENV)/.test-installed
	$(PY) -m pytest -n 2 -q $(PYTEST_ARGS)

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench: $(VENV)/.test-installed
	$(PY) -m pip --disable-pip-version-check -q install -r bench/requirements.txt
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(OUT) .pytest_cache .mypy_cache .ruff_cache
