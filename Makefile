# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint run bench bench-api faults migrate clean install

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --no-input -v 0
	DEBUG=$${DEBUG:-true} $(PY) manage.py demo

# lint-imports first: it takes seconds and a broken layer fails fast.
test: $(VENV)/.installed
	$(VENV)/bin/lint-imports --no-logo
	./scripts/test.sh $(PYTEST_ARGS)

# The full stack (web, worker, beat, flower) against PostgreSQL and Redis.
# Every process, migrate included, reads .env through config.env (settings);
# create_database makes the PostgreSQL database on a fresh server first.
# honcho reads the same file for the Procfile's own variables. The web
# process listens on PORT (8000 by default, as the README's curl lines use).
run: $(VENV)/.installed
	@test -n "$$DATABASE_URL" -o -f "$${ENV_FILE:-.env}" || { echo "set DATABASE_URL and CELERY_BROKER_URL (or cp .env.example .env)"; exit 1; }
	$(PY) manage.py create_database
	$(PY) manage.py migrate --no-input
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/honcho start -e "$${ENV_FILE:-.env}" \
		-p "$${PORT:-8000}" web worker beat flower

# Style, format, the architecture's import contracts and the types. mypy's
# django plugin imports config.settings: DEBUG=true lets it load with no
# environment (it never touches a database).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo
	DEBUG=true $(VENV)/bin/mypy .

# The benchmark (docs/BENCHMARK.md) in a database and a Redis DB index of its
# own: it replaces that database's data, so a DATABASE_URL exported for your
# own work is deliberately not used. BENCH_ARGS="--orders 100000" for a quick run.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/bench
BENCH_BROKER_URL ?= redis://127.0.0.1:6379/3
bench: $(VENV)/.installed
	DATABASE_URL=$(BENCH_DATABASE_URL) CELERY_BROKER_URL=$(BENCH_BROKER_URL) \
	ALLOW_INSECURE_DEFAULTS=$${ALLOW_INSECURE_DEFAULTS:-true} \
	$(PY) manage.py bench_healing $(BENCH_ARGS)
	$(MAKE) --no-print-directory bench-api

# The API under load, alone and while a cycle heals (docs/BENCHMARK.md);
# its own database. BENCH_API_ARGS="--clients 20 --seconds 30" by default.
BENCH_API_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/bench_api
bench-api: $(VENV)/.installed
	DATABASE_URL=$(BENCH_API_DATABASE_URL) CELERY_BROKER_URL=$(BENCH_BROKER_URL) \
	REDIS_URL=$(BENCH_BROKER_URL) ALLOW_INSECURE_DEFAULTS=$${ALLOW_INSECURE_DEFAULTS:-true} \
	$(PY) -m bench.api_load $(BENCH_API_ARGS)

# The fault-injection suite (README "Reliability") at full size: 2,000 stuck
# orders per scenario, real workers, figures lines at the end and appended to
# FAULTS_FIGURES_FILE. Needs PostgreSQL and Redis (redis-server for the broker
# restart scenario); CI runs the same scenarios small through `make test`.
FAULTS_FIGURES_FILE ?= /tmp/fault-figures.txt
faults: $(VENV)/.installed
	FAULTS_SCALE=full FAULTS_FIGURES_FILE=$(FAULTS_FIGURES_FILE) ./scripts/test.sh tests/faults $(PYTEST_ARGS)

migrate: $(VENV)/.installed
	$(PY) manage.py migrate --no-input

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-*
