# The two commands: `make demo` runs the whole system, `make test` the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck install bench clean

$(BIN)/truyenthanh: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/truyenthanh

demo: install
	$(BIN)/truyenthanh-dev demo

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

test: install lint typecheck
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/fanout.py --receivers 1000

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
