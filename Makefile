# One command for each thing a person does. Every target creates or updates the virtual environment itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: help venv demo test test-fast lint data-full release reference grade benchmark clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## create/update the virtual environment in .venv (pinned torch, timm, medmnist, nbgrader, ...)

demo: $(STAMP)  ## the main job: run the solution notebook end to end (quick mode on the sample), save figures, summarise
	$(PY) -m dinocourse.demo

test: $(STAMP)  ## the whole test suite, slow end-to-end tests included (what CI runs)
	$(PY) -m pytest

test-fast: $(STAMP)  ## the test suite without the slow end-to-end tests
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)  ## ruff on the code and on the notebooks
	$(VENV)/bin/ruff check .

data-full: $(STAMP)  ## download full PathMNIST (~200 MB, needs internet) into data/
	$(PY) -m dinocourse.data --root data --download

release: $(STAMP)  ## regenerate the student notebook assignments/01_dino/dino.ipynb from solutions/ (nbgrader)
	$(PY) -m autograder release

reference: $(STAMP)  ## regenerate autograder/reference_values.json from the solution notebook
	$(PY) -m autograder reference

grade: $(STAMP)  ## grade one notebook as nbgrader autograde would: make grade NOTEBOOK=path/to/dino.ipynb
	$(PY) -m autograder grade $(NOTEBOOK) $(if $(JSON),--json $(JSON))

benchmark: $(STAMP)  ## seconds to grade one submission (median of 5, solution and stubs)
	$(PY) -m autograder.benchmark

clean:  ## remove outputs of the demo and of notebook runs (keeps .venv and data)
	rm -rf build results solutions/01_dino/results assignments/01_dino/results
