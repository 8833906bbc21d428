# Borgerblik: `make up` runs the platform, `make test` runs the tests (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install up demo test test-kafka schemas clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# axe-core for the accessibility tests (the form's own assets are vendored, npm is not needed to run)
	if command -v npm >/dev/null 2>&1; then \
	  (cd services/responses/frontend && npm ci --no-audit --no-fund --silent) && \
	  (cd tests/analytics/dashboard && npm ci --no-audit --no-fund --silent); fi
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/python -m shared.devstack up

demo: $(STAMP)
	$(BIN)/python -m shared.devstack demo

# BORGERBLIK_ROUTE_LOG: every service records the routes the tests reach, in a fresh directory;
# at the end the run fails if a route has no test reaching its success path (shared/testing/route_log.py).
test: $(STAMP)
	BORGERBLIK_ROUTE_LOG=$$(mktemp -d -t borgerblik-routes-XXXXXX) $(BIN)/pytest -q -m "not kafka"

# The bus, Kafka-only and end-to-end tests on a real Apache Kafka (KRaft, jars from Maven Central,
# cached in ~/.cache/borgerblik/kafka).
test-kafka: $(STAMP)
	$(BIN)/pytest -q --broker=kafka tests/e2e tests/bus tests/kafka tests/bus_real_kafka_smoke

schemas: $(STAMP)
	$(BIN)/python -m shared.events schemas shared/schemas

clean:
	rm -rf .run
