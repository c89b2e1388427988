# One root virtual environment for the whole monorepo (.venv), created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The three deployed packages, the tools around them (CLI, local pipeline, fixtures) and the
# infra package (Pulumi program and the two Lambda entry points).
PACKAGES := receipt_dynamo receipt_dynamo_stream receipt_chroma
INSTALLED := $(PACKAGES) receipt_compaction_tools infra
PYPROJECTS := pyproject.toml $(addsuffix /pyproject.toml,$(INSTALLED))
TEST_PATHS := $(wildcard $(addsuffix /tests,$(PACKAGES) receipt_compaction_tools) infra/tests)
PYTEST_ARGS ?=

.PHONY: install test test-core test-samples test-explorer test-unit test-integration lint format typecheck clean package-stream bench bench-quick demo reliability

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"

# Everything in one pip command so the resolver sees every constraint at once
# (installed separately, chromadb's kubernetes pin can conflict with botocore's
# python-dateutil).
# Editable installs put each package folder on sys.path (package-dir "" = "." in each
# pyproject), so running from the repository root never picks the outer folder up as a
# namespace package, and new modules are found without reinstalling.
$(STAMP): $(BIN)/python $(PYPROJECTS)
	$(BIN)/pip install --quiet $(addprefix -e ./,$(INSTALLED)) --group dev
	$(BIN)/pip check
	@touch $@

install: $(STAMP)

# Tests run in parallel, one pytest-xdist worker more than there are cores (PYTEST_WORKERS=0:
# in one process), file by file in collection order: conftest.py collects the slow tests
# first. The extra worker fills the time tests spend waiting on servers, leases and child
# processes (quiet 2-core machine, make test-core: 5 min 35 s with 2 workers, 4 min 51 s
# with 3).
# (--dist loadgroup does not group with pytest 9.2: pytest-xdist issue 1386.)
PYTEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print((os.cpu_count() or 1) + 1)")
XDIST_ARGS = -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: install
	$(BIN)/pytest $(XDIST_ARGS) $(TEST_PATHS) $(PYTEST_ARGS)

# make test in its two budgets (issue 24 item 6, quiet 2-core machine): test-core is every
# test but the fixed samples (<= 6 min), test-samples the interleaving explorer's and the
# convergence model's fixed samples (<= 4 min); make test runs both in one pass (<= 10 min).
test-core: install
	$(BIN)/pytest $(XDIST_ARGS) -m "not explorer and not model" $(TEST_PATHS) $(PYTEST_ARGS)

test-samples: install
	$(BIN)/pytest $(XDIST_ARGS) -m "explorer or model" $(TEST_PATHS) $(PYTEST_ARGS)

# The interleaving explorer's fixed sample alone (it also runs in make test).
test-explorer: install
	$(BIN)/pytest -m explorer receipt_compaction_tools/tests/integration/test_interleavings.py $(PYTEST_ARGS)

test-unit: install
	$(BIN)/pytest $(XDIST_ARGS) $(wildcard $(addsuffix /unit,$(TEST_PATHS))) $(PYTEST_ARGS)

test-integration: install
	$(BIN)/pytest $(XDIST_ARGS) $(wildcard $(addsuffix /integration,$(TEST_PATHS))) $(PYTEST_ARGS)

# The two light packages' suites on their own, as a user of either package runs them: a
# fresh venv (deleted afterwards) holding only receipt_dynamo, receipt_dynamo_stream and
# their test extras, and `pytest` from each package's folder, whose own pytest settings keep
# the workspace's conftest.py and the tools plugin out. A skipped test fails the target:
# nothing in these suites may depend on what the light venv lacks.
.PHONY: test-standalone
test-standalone:
	@set -e; venv=$$(mktemp -d); trap 'rm -rf "$$venv"' EXIT; \
	$(PYTHON) -m venv "$$venv"; \
	"$$venv/bin/pip" install --quiet --disable-pip-version-check \
		-e "./receipt_dynamo[test]" -e "./receipt_dynamo_stream[test]"; \
	"$$venv/bin/pip" check; \
	for package in receipt_dynamo receipt_dynamo_stream; do \
		log="$$venv/$$package.log"; \
		(cd $$package && "$$venv/bin/pytest" -p no:cacheprovider) >"$$log" 2>&1 \
			|| { cat "$$log"; exit 1; }; \
		cat "$$log"; \
		if tail -n 1 "$$log" | grep -q skipped; then echo "$$package: tests were skipped"; exit 1; fi; \
	done

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/mypy $(addprefix -p ,$(PACKAGES)) -p receipt_compaction_tools -p chromadb_compaction

# The whole pipeline locally: moto server, real Chroma, both Lambda handlers (< 3 min).
demo: install
	$(BIN)/receipt-compaction demo $(DEMO_ARGS)

# The proof of issue 21 in one timed run (budget 90 min on 2 cores): the interleaving
# explorer's full space (both sinks, plus seeded three-compactor schedules; its report in
# bench/results/explorer.json), the convergence model at 500 examples (50 run in
# `make test`), then load, concurrency, crashes, poison input, hostile deltas and lease
# pathologies at full scale (a CI-sized subset runs in `make test`). One report:
# bench/results/reliability.json.
reliability: install
	$(BIN)/python bench/reliability.py --scale full

# The stream Lambda's deployment zip (handler + dependencies, without boto3/botocore).
package-stream: install
	$(BIN)/python infra/chromadb_compaction/build_stream_zip.py --output dist/stream_processor.zip

# Benchmarks print JSON with ratios measured side by side in one run; bench/run.py runs
# them one by one, times each against the budget (45 min; on a quiet machine) and writes
# bench/results/. bench-quick: the same scripts at development sizes (~3 min, budget 10), written to
# build/bench-quick/ so they never replace a committed figure.
bench: install
	$(BIN)/python bench/run.py

bench-quick: install
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) dist .pytest_cache .mypy_cache .ruff_cache htmlcov .coverage
