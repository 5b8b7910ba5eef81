# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install, run the demo job offline on bundled sample data
#   make test   create .venv, install with the dev extra, run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0

# Offline tiktoken encodings, when this checkout sits beside a shared/ folder.
SHARED_TIKTOKEN := $(abspath ../shared/tiktoken-cache)
ifneq ($(wildcard $(SHARED_TIKTOKEN)/.),)
export TIKTOKEN_CACHE_DIR := $(SHARED_TIKTOKEN)
endif
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint local clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

# The tests cover every extra: torch first (the CPU wheel), then the rest.
$(VENV)/.dev: pyproject.toml | $(PY)
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e '.[dev,local,web]'
	touch $@

# The local training extra: torch first (the CPU wheel), then the rest with a range it satisfies.
$(VENV)/.local: pyproject.toml | $(PY)
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e '.[local]'
	touch $@

local: $(VENV)/.local

demo: $(VENV)/.base
	$(VENV)/bin/finetune-web prepare examples/demo/demo.toml --output demo-output

lint: $(VENV)/.dev
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m mypy --strict src

test: lint
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache .hypothesis
