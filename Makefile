# Set-up, run, test and benchmark. Every target installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi:app
export HAYSTACK_TELEMETRY_ENABLED := False

.PHONY: run test bench install install-dev node-deps clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/activate requirements.txt constraints.txt
	$(BIN)/pip install -q -r requirements.txt -c constraints.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt -c constraints.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

node-deps: voximplant/node_modules/.installed
voximplant/node_modules/.installed: voximplant/package.json voximplant/package-lock.json
	cd voximplant && npm ci --no-audit --no-fund --silent
	touch $@

# The service on its embedded defaults: SQLite, embedded search, offline answers without a key.
run: install
	$(BIN)/flask db upgrade
	$(BIN)/flask reindex --if-needed
	$(BIN)/flask voice-url
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: install-dev node-deps
	$(BIN)/python -m pytest

bench: install-dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) voximplant/node_modules .pytest_cache
