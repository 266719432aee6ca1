# The two commands of the README: `make run` and `make test`.
# Both create the virtualenv and install what they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-slow test-ha lint venv clean chaos stop

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,embedded,ui]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) -m tasks.demo

# The dashboard's browser tests (tests/ui) drive Debian's headless Chromium;
# installed here when missing (CI runs as root on a fresh machine).
BROWSER := /usr/bin/chromium

$(BROWSER):
	@command -v apt-get >/dev/null || { echo "install chromium for tests/ui"; exit 1; }
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver

test: $(STAMP) $(BROWSER)
	$(PY) -m ruff check supervisor tasks tests
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -p no:cacheprovider -n 2 -m "not slow and not ha"

# Real Redis Sentinel and Cluster deployments (tests marked `ha`: tests/ha, a
# failover and a master kill under load, a resharding; the chaos run on
# Sentinel; ~5 minutes): apart because each test starts six to nine servers;
# .ci/run runs it too.
test-ha: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m ha tests/ha tests/chaos

# The slow group (tests marked `slow`: 100,000 delayed jobs, Redis down for
# 20 s, the network partition): apart so `make test` stays under ten minutes;
# .ci/run runs both.
test-slow: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m slow

# The long chaos run (CHAOS_SECONDS of random faults, default 600; CHAOS_SEED replays one;
# logs and data stay in CHAOS_WORKDIR).
chaos: $(STAMP)
	CHAOS_SECONDS=$${CHAOS_SECONDS:-600} CHAOS_WORKDIR=$${CHAOS_WORKDIR:-/tmp/supervisor-chaos} \
	    $(PY) -m pytest -s -q -p no:cacheprovider -m chaos tests/chaos/test_chaos.py

lint: $(STAMP)
	$(PY) -m ruff check supervisor tasks tests
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

# Stop the embedded server of `make run` (./.supervisor) if one is running.
stop:
	-[ -x $(PY) ] && $(PY) -c 'from pathlib import Path; from supervisor.broker.embedded import stop_server; stop_server(Path(".supervisor").resolve(), wait=10)'

clean: stop
	rm -rf $(VENV) .supervisor

# The benchmark (benchmarks/README.md): ours and its peers side by side on a
# private Redis; peers go into benchmarks/.venv-peers/, never into .venv.
.PHONY: bench
bench: $(STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)
