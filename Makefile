# The README's two commands are the contract: `make run` and `make test`
# both set everything up from a fresh clone.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8501
CHROMIUM ?= /usr/bin/chromium
HAPROXY ?= /usr/sbin/haproxy
# Empty: one more than the machine's cores (optlab.workshop.config.default_replicas).
REPLICAS ?=

.PHONY: run test lint format bench chromium haproxy clean screenshot workshop

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps make pip run again only when a requirements file changes.
$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

# The tests also install the optimizer pack (requirements-extra.txt), so the
# whole suite covers its optimizers.
$(VENV)/.dev-deps: requirements.txt requirements-dev.txt requirements-extra.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -r requirements-extra.txt
	touch $(VENV)/.run-deps $@

run: $(VENV)/.run-deps
	$(BIN)/python -m streamlit run app.py --server.address $(HOST) --server.port $(PORT)

# A workshop past one process (docs/workshop.md): REPLICAS streamlit processes (the
# machine's cores + 1 unless set) on
# 127.0.0.1:PORT+1..PORT+REPLICAS behind HAProxy on HOST:PORT, sharing one runs
# folder. Debian's haproxy is installed with apt-get when missing and we are root.
workshop: $(VENV)/.run-deps haproxy
	$(BIN)/python -m optlab workshop $(if $(REPLICAS),--replicas $(REPLICAS)) --port $(PORT) \
	  --host $(HOST) --haproxy $(HAPROXY)

# Debian's haproxy, for the workshop and its tests (the failover test, the load
# test through replicas). Installed with apt-get when missing and we are root;
# otherwise `optlab workshop` itself says how to install it.
haproxy:
	@if [ ! -x "$(HAPROXY)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian haproxy for the workshop"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy; \
	  else \
	    echo "warning: $(HAPROXY) is missing and cannot be installed here (not root):" \
	         "install it with 'sudo apt-get install haproxy' (the workshop needs it;" \
	         "its tests are skipped, and fail under CI=true)" >&2; \
	  fi; \
	fi

# Browser tests use Debian's Chromium (never `playwright install`, which
# downloads a browser). Installed with apt-get when missing and we are root.
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian chromium for the browser tests"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "warning: $(CHROMIUM) is missing and cannot be installed here (not root);" \
	         "browser tests will be skipped (they fail under CI=true)"; \
	  fi; \
	fi

lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-deps
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The example plugin (optlab/examples/lion.py) and the pytorch_optimizer pack are
# loaded for the whole suite, so every test parametrised over the optimizers
# covers a plugin's and the pack's optimizers too.
# Two parts: the tests that may share the machine, on both cores (one module per
# worker, so a module's server or Ray starts once); then the `quiet` ones alone:
# browsers, servers and benchmarks that time things (tests/conftest.py marks them).
PYTEST = OPTLAB_PLUGINS=$(CURDIR)/optlab/examples OPTLAB_PACKS=pytorch_optimizer $(BIN)/python -m pytest
test: $(VENV)/.dev-deps chromium haproxy lint
	$(PYTEST) -m "not quiet" -n 2 --dist loadfile
	$(PYTEST) -m quiet

bench: $(VENV)/.run-deps
	$(BIN)/python -m bench.surface_engine
	$(BIN)/python -m bench.sweep
	$(BIN)/python -m bench.cnn_throughput
	$(BIN)/python -m bench.startup

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

# Refreshes the README's screenshot from the browser test.
screenshot: $(VENV)/.dev-deps chromium
	OPTLAB_SCREENSHOT=docs/playground.png $(BIN)/python -m pytest -q tests/browser/test_playground.py -k home
