# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint clean

$(BIN)/stylestream: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/stylestream

demo: install
	$(BIN)/stylestream demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check engines streamer tests benchmarks

clean:
	rm -rf $(VENV) *.egg-info
