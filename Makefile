# The two commands: `make demo` runs the whole system, `make test` the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck install bench clean agent-wheelhouse

$(BIN)/truyenthanh: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The Pi agent's distribution (receivers/pyproject.toml) and a wheel of every dependency it has, so it
# installs with `pip install --no-index --find-links var/agent-wheelhouse truyenthanh-agent` (as
# tests/receivers/test_agent_dist.py does). Wheels for this machine's platform; on a Pi, pip fetches its own.
AGENT_WHEELHOUSE := var/agent-wheelhouse
AGENT_SOURCES := receivers/pyproject.toml $(shell find receivers -path receivers/build -prune -o -type f \( -name '*.py' -o -path 'receivers/deploy/*' \) -print)

$(AGENT_WHEELHOUSE)/.built: $(BIN)/truyenthanh $(AGENT_SOURCES)
	rm -f $(AGENT_WHEELHOUSE)/truyenthanh_agent-*.whl
	$(BIN)/pip wheel --quiet ./receivers -w $(AGENT_WHEELHOUSE)
	rm -rf receivers/build receivers/truyenthanh_agent.egg-info
	touch $@

agent-wheelhouse: $(AGENT_WHEELHOUSE)/.built

install: $(BIN)/truyenthanh agent-wheelhouse

demo: install
	$(BIN)/truyenthanh-dev demo

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

# Two workers (pytest-xdist): the staff UI's browser tests share one world on one of them (an xdist group),
# the rest run on the other; about 15 minutes on a 2-core machine (TT_LONG=1 adds the long scenarios).
test: install lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadgroup --durations=25

bench: install
	$(BIN)/python bench/fanout.py --receivers 1000

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
