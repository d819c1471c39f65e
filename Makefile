# The two set-up commands of the README:
#   make demo   creates .venv, installs finmlsec, runs the main job on the embedded defaults (out/)
#   make test   creates or reuses .venv, installs the test dependencies, runs the whole suite
# and, for CI (.ci/run):
#   make test-core   installs finmlsec with no extras into .venv-core and runs tests/lean there
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
CORE   := .venv-core
OUT    := out

.PHONY: demo test test-core lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# The stamp files re-run pip only when pyproject.toml changes.
$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	@echo "make demo: installing finmlsec with every extra ('.[all]': scikit-learn, PyTorch, ONNX," \
	      "FastAPI, ...) into $(VENV); the first time downloads several hundred MB and takes minutes"
	$(PIP) install --progress-bar on -e '.[all]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(VENV)/bin/python
	@echo "make test: installing finmlsec with every extra, MLflow and the test tools" \
	      "('.[all,mlflow,test]')" \
	      "into $(VENV); the first time downloads several hundred MB and takes minutes"
	$(PIP) install --progress-bar on -e '.[all,mlflow,test]'
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	mkdir -p $(OUT)
	$(VENV)/bin/finmlsec demo run credit-scoring --out $(OUT) --profile standard

test: $(VENV)/.test-installed
	$(PY) -m pytest -n 2 -q $(PYTEST_ARGS)

# `pip install finmlsec` with no extras: the defences import and fit, a missing extra is named.
test-core:
	@echo "make test-core: installing finmlsec with no extras (the core install) into $(CORE)"
	test -x $(CORE)/bin/python || $(PYTHON) -m venv $(CORE)
	$(CORE)/bin/python -m pip --disable-pip-version-check -q install . pytest
	$(CORE)/bin/python -m pytest -q -p no:cacheprovider tests/lean

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench: $(VENV)/.test-installed
	$(PIP) -q install -r bench/requirements.txt
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(OUT) $(CORE) build .pytest_cache .mypy_cache .ruff_cache
