# The two entry points of the README: `make demo` and `make test`.
# Nothing but Python 3.11, git and make is assumed; everything else goes into .venv/.
# `make bench BENCH_ARGS="--only push,discovery --quick"` runs a subset of the benchmark, small.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[pulumi,test]'
	# Bytecode now, as a non-editable install would: no start-up pays for compiling (PYTHONDONTWRITEBYTECODE).
	$(BIN)/python -m compileall -q syncops
	touch $(STAMP)

demo: $(STAMP)
	bash demo/demo.sh

test: $(STAMP)
	$(BIN)/ruff check syncops tests bench __main__.py
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -m "not slow" -n 4

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench,test]'
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
