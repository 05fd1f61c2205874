# Tollgate: the two commands that matter are `make run` and `make test`.

CARGO  ?= cargo
VENV   := tests/.venv
PY     := $(VENV)/bin/python
PLUGINS := -p tollgate-metadata-policy -p tollgate-chaos -p tollgate-model-router -p tollgate-budget-limit -p tollgate-hostile -p tollgate-legacy-v0-2 -p tollgate-pii-redact -p tollgate-content-rules -p tollgate-output-check

.PHONY: run test setup toolchain browser services venv plugins build unit e2e lint bench bench-load clean

## Start the gateway on the offline embedded default (mock upstream, SQLite in ./data).
run: toolchain plugins
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

plugins:
	$(CARGO) build --release --target wasm32-wasip2 $(PLUGINS)

build:
	$(CARGO) build -p tollgate

unit:
	$(CARGO) test --workspace

e2e: build plugins venv browser services
	$(PY) -m pytest tests -q -p no:cacheprovider

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## The per-request plugin cost (criterion); see README for the figure.
bench: plugins services
	$(CARGO) bench -p tollgate --bench plugin_call --bench ledger --bench fleet_ledger --bench log_writer --bench relay --bench request --bench guardrails

## The load bench against the release binary (nginx upstream, wrk); see bench/run.py.
## ARGS="--peers" adds Portkey and LiteLLM; ARGS="--duration 30 --soak 600" for longer runs.
bench-load:
	bench/run.sh $(ARGS)

clean:
	$(CARGO) clean
	rm -rf $(VENV) data
