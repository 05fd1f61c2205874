# Tollgate: the two commands that matter are `make run` and `make test`.

CARGO  ?= cargo
VENV   := tests/.venv
PY     := $(VENV)/bin/python
PLUGINS := -p tollgate-metadata-policy -p tollgate-chaos -p tollgate-model-router -p tollgate-budget-limit -p tollgate-hostile -p tollgate-legacy-v0-2 -p tollgate-pii-redact -p tollgate-content-rules -p tollgate-output-check -p tollgate-team-hours

.PHONY: run test setup toolchain browser services venv plugins plugins-rust plugins-python plugins-js build unit unit-guests e2e lint bench bench-load clean

## Start the gateway on the offline embedded default (mock upstream, SQLite in ./data).
run: toolchain plugins-rust
	$(CARGO) run -p tollgate -- serve

## Run every test: Rust unit tests, plugin tests, and the end-to-end suite.
test: setup plugins build unit e2e

setup: toolchain venv browser services

toolchain:
	@scripts/setup-toolchain.sh

## Debian's chromium, for the console's browser test (Playwright drives it).
browser:
	@scripts/setup-browser.sh

## Debian's postgresql and redis-server, for the fleet tests (they start their own instances).
services:
	@scripts/setup-services.sh

venv: $(VENV)/.installed
$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r tests/requirements.txt
	touch $@

## Every first-party plugin: Rust crates, and the Python and JavaScript examples.
plugins: plugins-rust plugins-python plugins-js

plugins-rust:
	$(CARGO) build --release --target wasm32-wasip2 $(PLUGINS)

## componentize-py from the venv (tests/requirements.txt pins it).
plugins-python: venv
	scripts/build-python-plugins.sh

## componentize-js from guest-sdk/js (npm ci, pinned by its package-lock.json).
plugins-js:
	scripts/build-js-plugins.sh

build:
	$(CARGO) build -p tollgate

unit: unit-guests
	$(CARGO) test --workspace

## The Python and JavaScript guest SDKs and example plugins, natively (no wasm).
unit-guests: venv plugins-js
	$(PY) -m pytest -q -p no:cacheprovider guest-sdk/python/tests plugins/team-hours-py/tests
	cd guest-sdk/js && npm test --silent
	cd plugins/team-hours-js && npm install --no-audit --no-fund --silent && npm test --silent

e2e: build plugins venv browser services
	$(PY) -m pytest tests -q -p no:cacheprovider

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## The per-request plugin cost (criterion); see README for the figure.
bench: plugins services
	$(CARGO) bench -p tollgate --bench plugin_call --bench ledger --bench fleet_ledger --bench log_writer --bench relay --bench request --bench guardrails --bench languages

## The load bench against the release binary (nginx upstream, wrk); see bench/run.py.
## ARGS="--peers" adds Portkey and LiteLLM; ARGS="--duration 30 --soak 600" for longer runs.
bench-load:
	bench/run.sh $(ARGS)

clean:
	$(CARGO) clean
	rm -rf $(VENV) data
