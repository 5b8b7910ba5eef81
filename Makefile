# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install, prepare the bundled sample data offline, fine-tune and evaluate
#               locally (MODEL=<Hugging Face id or dir> picks the model; default: a smoke-test model)
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

# The demo trains locally and extracts web pages: torch first (the CPU wheel), then the extras.
$(VENV)/.demo: pyproject.toml | $(PY)
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e '.[local,web,eval]'
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

demo: $(VENV)/.demo
	$(VENV)/bin/finetune-web prepare examples/demo/demo.toml --output demo-output
	$(VENV)/bin/finetune-web prepare examples/demo/web_pages.toml --output demo-output/web-pages
	$(VENV)/bin/finetune-web prepare examples/demo/talk.toml --output demo-output/talk
	$(PY) examples/demo/local_finetune.py --data demo-output $(if $(MODEL),--model $(MODEL))

lint: $(VENV)/.dev
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m mypy --strict src

test: lint
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache .hypothesis
