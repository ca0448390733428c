# The two commands: `make demo` and `make test`. Both set up everything they need
# on a fresh Debian/Ubuntu machine (root or sudo) and then do their job.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := python3-venv libzbar0 mosquitto mosquitto-clients fonts-dejavu-core \
                postgresql shellcheck libglib2.0-0 python3-pygame chromium chromium-driver
PYTEST_ARGS ?=

.PHONY: demo test lint bench bench-province apt venv clean

demo: apt venv
	$(PY) -m kiosk demo

test: apt venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check kiosk tests bench examples
	$(VENV)/bin/mypy kiosk
	$(VENV)/bin/lint-imports --no-logo

# A quick run of every benchmark; bench/central.py at a small scale (a few minutes). The province
# at full scale (7 million events a day, 10,000 venues, 30 days; about 30 minutes): make bench-province.
CENTRAL_QUICK ?= --ingest-events 20000 --devices 200 --events 200000 --venues 1000 --history-days 14

bench: venv
	@for b in bench/*.py; do echo "== $$b"; \
		if [ $$b = bench/central.py ]; then $(PY) $$b $(CENTRAL_QUICK) || exit 1; else $(PY) $$b || exit 1; fi; \
	done

bench-province: venv
	$(PY) bench/central.py

# Installs only the Debian packages that are missing, so a second run is instant.
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build dist *.egg-info demo-out
