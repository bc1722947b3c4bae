# GoChat: `make run` brings the whole system up; `make test` runs every test.
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: venv test-deps venv-s3 run test lint lint-js typecheck constraints services clean bench chaos scale-out status

venv: $(VENV)/.installed

# What `make run` needs, and nothing else: no browser, no test tools.
$(VENV)/.installed: requirements.txt constraints.txt
	bash scripts/ensure-os-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	touch $@

# Tests, benchmarks, fault runs and linters: the test tools and Chromium for the browser tests.
test-deps: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt constraints.txt
	bash scripts/ensure-os-deps.sh --test
	$(PY) -m pip install -q -r requirements-test.txt -c constraints.txt
	touch $@

# GOCHAT_STORAGE=s3 stores uploads through boto3.
venv-s3: $(VENV)/.installed-s3

$(VENV)/.installed-s3: $(VENV)/.installed requirements-s3.txt
	$(PY) -m pip install -q -r requirements-s3.txt -c constraints.txt
	touch $@

run: venv $(if $(filter s3,$(GOCHAT_STORAGE)),venv-s3)
	bash scripts/run.sh

# The processes `make run` supervises, with their state and pids.
status:
	GOCHAT_RUN_DIR=$(CURDIR)/.run $(VENV)/bin/supervisorctl -c scripts/supervisord.conf status

services: venv
	$(PY) manage.py services up
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0

lint: test-deps
	$(PY) -m ruff check .

# Pin every installed distribution (after changing a requirements file and installing it).
constraints: test-deps
	{ sed -n '/^#/p' constraints.txt; $(PY) -m pip freeze --all | grep -v '^\(pip\|setuptools\|wheel\)=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

# The web client's ES modules (web/*.js): ESLint's recommended rules (eslint.config.js), at
# the versions package-lock.json pins; `npm ci` installs them into node_modules/.
node_modules/.installed: package.json package-lock.json
	bash scripts/ensure-os-deps.sh --node
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint-js: node_modules/.installed
	node_modules/.bin/eslint .

# mypy with django-stubs ([tool.mypy] in pyproject.toml); strict on the process packages.
typecheck: test-deps
	$(PY) -m mypy

# tests/conftest.py brings up the services (manage.py services up's code) on the test's ports.
test: test-deps lint lint-js typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .run node_modules

# Benchmarks (docs/benchmarks.md): every scenario on a fresh stack, one warmed broker, about 16 minutes;
# then message search over 1,000,000 seeded messages in a database of its own (about 9 minutes more).
BENCH_ARGS ?= --repeat 3 --duration 60 --latency-duration 8 --baseline-duration 10
SEARCH_BENCH_ARGS ?= --messages 1000000 --repeat 50
bench: test-deps
	$(PY) -m bench all $(BENCH_ARGS)
	$(PY) -m bench.search $(SEARCH_BENCH_ARGS)

# Faults under load (docs/reliability.md) on a three-node Kafka cluster: kill -9 of each
# process, Redis restarted empty, MySQL stopped for 10 s, one broker killed for 10 s and
# restarted on its data, then a 30-minute soak at 500 msg/s on the same cluster (memory
# flat, lag bounded). CI runs the faults and a 180 s soak at 200 msg/s.
CHAOS_ARGS ?= --soak-seconds 1800 --soak-rate 500
chaos: test-deps
	$(PY) -m chaos $(CHAOS_ARGS)

# The same faults with two of every process kind on several partitions and a three-node
# Redis Cluster, 1:1 and group traffic (a large group's chunked fan-out included): each
# fault kills one of two (one Redis node, restarted empty); fails on any loss, or if
# either logic consumer or either persistence worker did no work (docs/reliability.md).
scale-out: test-deps
	$(PY) -m chaos --scale-out --soak-seconds 0
