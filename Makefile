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

# Three pytest workers on two cores (pytest-xdist; many tests wait on subprocesses and sockets), a test
# module per worker so that module fixtures are built once:
test: install
	$(BIN)/python -m pytest -q -n 3 --dist loadscope --durations=20

lint: install
	$(BIN)/ruff check engines streamer tests benchmarks

clean:
	rm -rf $(VENV) *.egg-info
