# bridge: two commands matter. `make run` starts the service on embedded defaults;
# `make test` runs the whole suite (it needs the PostgreSQL and Redis named below).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test test-deps lint check-config migrate worker web clean lock

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

## Set up, migrate, and start web + worker (and the tracker sandbox when no tracker is configured).
## The console shows the bridge's events and warnings; VERBOSE=1 adds every task and request.
run: venv
	$(BIN)/python -m bridge.devserver $(if $(filter-out 0,$(VERBOSE)),--verbose)

## The whole test suite: unit, integration (SQLite, PostgreSQL, Redis, SMTP, IMAP) and end-to-end.
test: venv test-deps
	$(BIN)/python -m pytest

# Programs the tests start, as command:Debian package. Chromium renders the status page, Dovecot
# serves IMAP to the poller, openssl makes the test certificates. A missing one fails its tests.
TEST_TOOLS := chromium:chromium dovecot:dovecot-imapd openssl:openssl

## Install the programs the tests start when missing (apt-get as root; otherwise say which and how).
test-deps:
	@PATH="$$PATH:/usr/sbin:/usr/local/sbin"; missing=""; \
	for pair in $(TEST_TOOLS); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "test-deps: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq -o DPkg::Lock::Timeout=300$$missing >/dev/null || exit 1; \
	else \
	  echo "test-deps: the tests need the Debian packages$$missing, which are not installed." >&2; \
	  echo "test-deps: install them with:  sudo apt-get install -y$$missing" >&2; \
	  exit 1; \
	fi

## ruff, formatting and mypy.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

check-config: venv
	$(BIN)/python -m bridge check-config

migrate: venv
	$(BIN)/python -m bridge migrate

web: venv
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

worker: venv
	$(BIN)/python -m bridge.worker

## Benchmarks (bench/README.md): intake ceiling, latencies, backlog drain, scale; ~20 min, BENCH_QUICK=1 ~4 min.
.PHONY: bench
bench: venv
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi; }
	$(BIN)/python -m bench

## Soak test (soak/run.py): SOAK_REPORTS (2000) reports and tracker changes under SIGKILLs, SMTP downtime
## and tracker faults, on SQLite then PostgreSQL + Redis (SOAK_BACKEND); < 15 min. Writes soak/results/latest.json.
.PHONY: soak
soak: venv
	SOAK_BACKEND=$${SOAK_BACKEND:-sqlite,postgres} $(BIN)/python -m soak

## Re-pin requirements.txt from requirements.in in a scratch environment.
lock:
	rm -rf /tmp/bridge-lock && $(PYTHON) -m venv /tmp/bridge-lock
	/tmp/bridge-lock/bin/pip install --quiet -r requirements.in
	{ echo "# Pinned runtime dependencies (from requirements.in). Regenerate: make lock"; \
	  /tmp/bridge-lock/bin/pip freeze; } > requirements.txt

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache mutants

## Mutation testing (mutmut; [tool.mutmut] in pyproject.toml) of the pure core against the fast tests; not in CI.
.PHONY: mutation
mutation: venv
	rm -rf mutants
	$(BIN)/mutmut run --max-children $${MUTATION_JOBS:-2}
	$(BIN)/python -m tests.mutation_score
