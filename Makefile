PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-fast check bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	@providers="$$($(BIN)/python -m devinfra model provider 2>/dev/null)"; \
	if [ -z "$${STEPLINE_AI_PROVIDERS:-}" ] && [ -n "$$providers" ]; then \
		echo "AI steps use the local model started by make model: STEPLINE_AI_PROVIDERS=$$providers"; \
		export STEPLINE_AI_PROVIDERS="$$providers"; fi; \
	$(BIN)/stepline up --examples

check: install
	$(BIN)/ruff check libs services stepline devinfra tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install check
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -m "not e2e and not model"

# The chaos test (tests/chaos): `test-chaos` runs its short profile (also part of `test`), `chaos` the
# long one (300 runs under faults), asserting the issue's recovery thresholds; both print the figures.
.PHONY: test-chaos chaos
test-chaos: install
	$(BIN)/pytest -q -s -m chaos tests/chaos
chaos: install
	STEPLINE_CHAOS_PROFILE=long $(BIN)/pytest -q -s -m chaos tests/chaos

bench: install
	$(BIN)/python tests/bench/bench_embedded.py
	$(BIN)/python tests/bench/bench_auth.py
	$(BIN)/python tests/bench/bench_ai.py
	@if command -v java >/dev/null 2>&1 && command -v go >/dev/null 2>&1; then \
		$(BIN)/python tests/bench/bench_distributed.py; \
	else \
		echo "bench: skipping the distributed benchmark (it needs java and go on PATH for Kafka and FerretDB)"; \
	fi

clean:
	rm -rf $(VENV) .stepline .mypy_cache .pytest_cache

# Development Kafka (KRaft) and FerretDB on 127.0.0.1, fetched/built into .cache/infra (see devinfra/).
.PHONY: infra-fetch infra-up infra-down
INFRA_ARGS ?=
infra-fetch: install
	$(BIN)/python -m devinfra fetch $(INFRA_ARGS)
infra-up: install
	$(BIN)/python -m devinfra up $(INFRA_ARGS)
infra-down:
	$(BIN)/python -m devinfra down $(INFRA_ARGS)

# The local language model for AI steps (SmolLM2-135M-Instruct served by llama-cpp-python on 127.0.0.1:18080;
# the first run builds llama-cpp-python into .cache/infra/model, see devinfra/model.py).
# `make run` then points AI steps at it (provider "local") unless STEPLINE_AI_PROVIDERS is set.
.PHONY: model model-down
model: install
	$(BIN)/python -m devinfra model up $(INFRA_ARGS)
model-down:
	$(BIN)/python -m devinfra model down $(INFRA_ARGS)
