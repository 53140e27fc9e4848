# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make run    - the bot (the terminal console when no DISCORD_TOKEN is set)
#   make test   - the test suite (and lint)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: run console test lint format bench bench-full clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m bot $(ARGS)

console: $(VENV)/.installed
	$(PY) -m bot console $(ARGS)

test: $(VENV)/.installed
	$(VENV)/bin/ruff check bot tests bench
	$(PY) -m pytest $(ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check bot tests bench
	$(VENV)/bin/ruff format --check bot tests bench

format: $(VENV)/.installed
	$(VENV)/bin/ruff format bot tests bench
	$(VENV)/bin/ruff check --fix bot tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

bench: $(VENV)/.installed
	$(PY) -m bench.run --sizes 1000 10000 $(ARGS)
	$(PY) -m bench.loop --talks 10000
	$(PY) -m bench.dm_fanout --users 2000
	-$(PY) -m bench.reload --talks 10000

bench-full: $(VENV)/.installed
	$(PY) -m bench.run --sizes 1000 10000 100000 $(ARGS)
