# consentinel: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY        ?= python3
VENV      ?= .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
# the bench's own environment: consentinel plus the peers it is measured against (Quix
# Streams); never in consentinel's dependencies, so `pip install consentinel` stays lean
BENCH_VENV  ?= build/bench-venv
BENCH_STAMP := $(BENCH_VENV)/.installed
export KAFKA_PORT ?= 9092
export CONSENTINEL_BOOTSTRAP_SERVERS ?= 127.0.0.1:$(KAFKA_PORT)

.PHONY: help setup broker broker-stop broker-status topics lint format test test-unit test-integration verify run bench bench-env clean

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install consentinel with the pinned versions
	@bash deploy/tools.sh

broker: ## start the local single-node Kafka (KRaft) on 127.0.0.1:$KAFKA_PORT
	@bash deploy/kafka.sh start

broker-stop: ## stop the local Kafka
	@bash deploy/kafka.sh stop

broker-status: ## is the local Kafka running?
	@bash deploy/kafka.sh status

topics: setup broker ## create the topics (idempotent)
	$(BIN)/consentinel topics create

lint: setup ## ruff (lint + format check) and mypy
	$(BIN)/ruff check streams connectors tests
	$(BIN)/ruff format --check streams connectors tests
	@mkdir -p build/typecheck/consentinel
	@ln -sfn ../../../streams build/typecheck/consentinel/streams
	@ln -sfn ../../../connectors build/typecheck/consentinel/connectors
	MYPYPATH=build/typecheck $(BIN)/mypy -p consentinel.streams -p consentinel.connectors

format: setup ## format the code with ruff
	$(BIN)/ruff format streams connectors tests
	$(BIN)/ruff check --fix streams connectors tests

test: setup broker ## the whole suite: lint, unit and integration tests on the real broker
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest

test-unit: setup ## unit tests only (no broker)
	$(BIN)/python -m pytest -m 'not integration'

verify: setup broker ## differential test, 1e6 events: worker (with SIGKILLs) vs the offline oracle; prints time and peak memory
	mkdir -p build
	CONSENTINEL_DIFF_EVENTS=$${CONSENTINEL_DIFF_EVENTS:-1000000} \
	  /usr/bin/time -f 'verify: %e s elapsed, peak RSS %M KB (test process)' \
	  $(BIN)/python -m pytest -s -p no:cacheprovider --basetemp=build/verify \
	    tests/integration/test_differential.py

run: setup ## run the monitor: broker, topics, workers, ingest, console, demo feed
	@bash deploy/run.sh

$(BENCH_STAMP): pyproject.toml constraints.txt tests/bench/requirements.txt
	@test -x $(BENCH_VENV)/bin/python || $(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -c constraints.txt -e '.[dev]' -r tests/bench/requirements.txt
	@touch $(BENCH_STAMP)

bench-env: $(BENCH_STAMP) ## the bench's own environment (build/bench-venv): consentinel + its peers
	@$(BENCH_VENV)/bin/python -W ignore -c "import quixstreams; print('bench-env: quixstreams', quixstreams.__version__)"

bench: setup bench-env broker ## benchmarks (checker vs ceilings and peers; ingest), BENCH_ARGS=--quick|--scaleout|...
	$(BENCH_VENV)/bin/python tests/bench/bench.py $(BENCH_ARGS)

clean: ## remove the virtualenv and caches (not the broker's data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

.PHONY: soak cluster cluster-stop cluster-status
SOAK_KILLS ?= 20

soak: setup broker ## SIGKILL worker, ingest, router in turn under load (SOAK_KILLS=20 each); prints counts
	$(BIN)/python tests/soak/soak.py --kills $(SOAK_KILLS) --bootstrap $(CONSENTINEL_BOOTSTRAP_SERVERS) $(SOAK_ARGS)

cluster: ## start a local 3-broker KRaft cluster (127.0.0.1:19092-19094; RF 3, min ISR 2)
	@bash deploy/kafka.sh cluster start

cluster-stop: ## stop the local 3-broker cluster
	@bash deploy/kafka.sh cluster stop

cluster-status: ## is the local 3-broker cluster running?
	@bash deploy/kafka.sh cluster status
