# Set-up and the two jobs the README opens with. Needs only python3 (>= 3.10) and make.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= 2.13.0
# Tests, benchmarks and the demo read real data from the shared copy next to the project.
export TORCHNAS_DATA ?= $(abspath $(CURDIR)/../shared/data)

BIN := $(VENV)/bin

.PHONY: setup demo test bench mutate diagrams clean

$(BIN)/torchnas: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: a bare `torch` would pull a multi-GB CUDA build (DEVELOPERS.md)
	$(BIN)/python -m pip install -q torch==$(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/torchnas

demo: setup
	$(BIN)/torchnas search

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/nb201_strategies.py

mutate: setup
	$(BIN)/python -m pip install -q -e '.[mutate]'
	$(BIN)/python benchmarks/mutate.py

# The published cells and network of ENAS, drawn into docs/images (docs/results.md shows them).
diagrams: setup
	for p in enas-micro-final enas-rnn-final enas-macro-final; do \
	  $(BIN)/torchnas show "$$($(BIN)/torchnas train --preset $$p --dry-run | head -1)" --preset $$p \
	    --out docs/images/$$p; done

clean:
	rm -rf $(VENV) build src/*.egg-info
