# Two commands on a fresh machine with python3 and make: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install compile demo test lint format bench chaos fuzz fuzz-http clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# byte-compile our sources: with PYTHONDONTWRITEBYTECODE set, Python would recompile them
# on every start (site-packages were compiled by pip); stale .pyc files are simply ignored
compile: $(STAMP)
	$(BIN)/python -m compileall -q tickethub_cli

install: $(STAMP) compile

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash demo/demo.sh

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# the whole suite on both backends, on two worker processes (one test module stays on one
# worker: its module fixtures are built once); each worker starts its own PostgreSQL
TEST_WORKERS ?= 2
test: lint compile
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: install
	$(BIN)/python bench/run_all.py

# the long chaos run: make chaos CHAOS_SECONDS=600 SEED=42 (DB_URL=postgresql://…: on PostgreSQL)
CHAOS_SECONDS ?= 120
chaos: install
	$(BIN)/python tools/chaos.py --seconds $(CHAOS_SECONDS) $(if $(SEED),--seed $(SEED)) $(if $(DB_URL),--db-url $(DB_URL))

# the long fuzz run (every family, real processes included): make fuzz FUZZ_EXAMPLES=5000
FUZZ_EXAMPLES ?= 5000
fuzz: install
	TICKETHUB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_fuzz_cli.py

# the long schemathesis run against /openapi.json: make fuzz-http HTTP_FUZZ_EXAMPLES=20000
HTTP_FUZZ_EXAMPLES ?= 5000
fuzz-http: install
	TICKETHUB_HTTP_FUZZ_EXAMPLES=$(HTTP_FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_http_schema.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis demo/out
