# initlab: `make demo` runs the canonical sweep, `make test` runs the tests.
# Both create .venv and install what is missing first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch/torchvision pinned to the builds this project is tested with.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-slow test-all lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev,scale]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) train.py -m init=xavier,he,random

# the test suite (under 10 minutes on 2 cores); the slow end-to-end tests run in CI too
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) scripts/bench_overhead.py --epochs 10 --repeats 5

clean:
	rm -rf outputs .pytest_cache
