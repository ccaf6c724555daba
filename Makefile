# Every target sets itself up: a fresh clone needs only `make demo` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Runs a command with the project's Airflow settings (include/airflow_env.py).
AF := $(PY) -m include.airflow_env
EMULATOR_PORT ?= 8765
# make airflow: the UI/API port, and the first of the two log servers' ports (the triggerer's is the next).
AIRFLOW_PORT ?= 8080
LOG_SERVER_PORT ?= 8793
MEMBERS ?= 1000
# pytest-xdist workers for the test targets; 0 runs in one process. Four on this 2-core machine:
# the tests wait on the emulator, the databases, Airflow's stacks and dag.test()'s own threads, so
# fewer workers leave the cores idle (two: 22-29%, make test-quick 13 min 18 s; three: 15-19%, the
# full suite 12 min 48 s; four: 7%, 11 min 47 s, the same tests). worksteal: an idle worker takes
# queued tests from a busy one (the suite's tests range from ms to minutes).
PYTEST_WORKERS ?= 4
# make test-quick: engine, hooks, emulator, member DB and every DAG scenario on SQLite only (no
# end-to-end run of airflow standalone, the browser or the demo).
QUICK_ARGS := -m "not postgres and not mariadb and not contract and not browser" --ignore=tests/test_demo.py \
	--ignore=tests/test_airflow_ui.py \
	--ignore=tests/dags/test_cli.py --ignore=tests/test_ci_honesty.py

.PHONY: help venv browser test test-browser test-contract test-quick test-all-dialects lint format demo emulator airflow bench migrate sample-data clean

help:
	@echo "make demo         set everything up and run the two-way sync on SQLite + the emulator"
	@echo "make test         set up and run ruff and the test suite"
	@echo "make test-quick   the quick subset: engine, hooks, and every DAG scenario on SQLite"
	@echo "make test-contract  the contract suite: schemathesis runs the official spec against the emulator"
	@echo "make test-all-dialects  every DAG scenario on SQLite, PostgreSQL and MariaDB"
	@echo "make airflow      start the Airflow UI (airflow standalone) with the project's DAGs on"
	@echo "                  127.0.0.1:$(AIRFLOW_PORT); AIRFLOW_PORT=, EMULATOR_PORT=, LOG_SERVER_PORT= move them"
	@echo "make airflow EXECUTOR=celery  the same on CeleryExecutor: Redis, PostgreSQL metadata DB, two workers"
	@echo "make emulator     serve the Constant Contact v3 emulator on 127.0.0.1:$(EMULATOR_PORT)"
	@echo "make sample-data  create the demo member database (MEMBERS=$(MEMBERS))"
	@echo "make migrate      migrate the sync's bookkeeping tables in the member database"
	@echo "make bench        run the benchmarks and write bench/RESULTS.md"

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

venv: $(VENV)/.installed

# Headless Chromium from Debian for the console's browser test (Playwright drives it through
# executable_path; it never downloads a browser). Installing needs root, as in CI's container.
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

test-browser: venv browser
	$(PY) -m pytest -m browser tests/browser

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: venv lint browser
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal --durations=30 $(PYTEST_ARGS)

# The contract suite alone: schemathesis fuzzes the official spec against the emulator (a few minutes).
test-contract: venv
	$(PY) -m pytest -n 0 -m contract tests/contract $(PYTEST_ARGS)

test-quick: venv
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-quick} $(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(QUICK_ARGS) $(PYTEST_ARGS)

test-all-dialects: venv lint
	CC_SYNC_TEST_ALL_DIALECTS=1 $(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

demo: venv
	$(AF) python -m include.demo

emulator: venv
	$(PY) -m include.cc_emulator --port $(EMULATOR_PORT) --state-file var/emulator-state.json

# EXECUTOR=celery: the CeleryExecutor on Redis with two workers and a PostgreSQL metadata DB
# (include/airflow_celery.py); otherwise airflow standalone (LocalExecutor, include/airflow_ui.py).
AIRFLOW_MODULE = $(if $(filter celery,$(EXECUTOR)),include.airflow_celery,include.airflow_ui)
airflow: venv
	CC_SYNC_AIRFLOW_PORT=$(AIRFLOW_PORT) CC_SYNC_LOG_SERVER_PORT=$(LOG_SERVER_PORT) \
		$(AF) python -m $(AIRFLOW_MODULE) --emulator-port $(EMULATOR_PORT)

sample-data: venv
	$(AF) python -m include.sample_data --members $(MEMBERS)

migrate: venv
	$(AF) python -m cc_sync.member_db.migrate upgrade

bench: venv
	$(AF) python -m bench

clean:
	rm -rf .airflow var .pytest_cache .ruff_cache .hypothesis
