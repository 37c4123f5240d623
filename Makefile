# One command for each thing a person does. Every target creates or updates the virtual environment itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: help venv sandbox demo test test-fast lint data-full release reference grade autograde kit benchmark benchmark-class benchmark-training gpu-check reference-run clean
ASSIGNMENT ?= 01_dino

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## create/update the virtual environment in .venv (pinned torch, timm, medmnist, nbgrader, ...)

sandbox:  ## install bubblewrap, the sandbox of class grading (apt-get; needs root or sudo; warns if it cannot)
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq bubblewrap; } >/dev/null 2>&1 || \
	  echo "WARNING: could not install bubblewrap; class grading will use resource limits only (see autograder/README.md)"; }

demo: $(STAMP) sandbox  ## the main job: every solution notebook end to end (quick budget), then autograde example submissions
	$(PY) -m autograder demo --env DINO_MODE=$(or $(DINO_MODE),quick)

test: $(STAMP) sandbox  ## the whole test suite, slow end-to-end tests included (what CI runs)
	$(PY) -m pytest

test-fast: $(STAMP)  ## the test suite without the slow end-to-end tests
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)  ## ruff on the code and on the notebooks
	$(VENV)/bin/ruff check .

data-full: $(STAMP)  ## download full PathMNIST (~200 MB, needs internet) into data/
	$(PY) -m dinocourse.data --root data --download

release: $(STAMP)  ## regenerate every student notebook in assignments/ from solutions/ (nbgrader)
	$(PY) -m autograder release

reference: $(STAMP)  ## regenerate every assignment's reference values from its solution notebook
	$(PY) -m autograder reference

grade: $(STAMP) sandbox  ## grade notebooks with the engine: make grade NOTEBOOK=path/to/dino.ipynb [JSON=out.json]
	$(PY) -m autograder grade $(NOTEBOOK) $(if $(JSON),--json $(JSON))

autograde: $(STAMP) sandbox  ## grade a class: make autograde [ASSIGNMENT=01_dino] [COURSE=dir] [WORKERS=n]
	$(PY) -m autograder autograde $(ASSIGNMENT) --course $(or $(COURSE),.) $(if $(WORKERS),--workers $(WORKERS))

kit: $(STAMP)  ## the student download of an assignment: make kit [ASSIGNMENT=01_dino] -> build/kit/*.zip
	$(PY) -m autograder kit $(ASSIGNMENT)

benchmark: $(STAMP) sandbox  ## seconds to grade one submission from a cold start (median of 5, correct and untouched)
	$(PY) -m autograder benchmark $(ASSIGNMENT)

benchmark-class: $(STAMP) sandbox  ## seconds per submission grading 20 generated submissions with 1 and 2 workers
	$(PY) -m autograder benchmark-class $(ASSIGNMENT)

benchmark-training: $(STAMP)  ## Assignment 1's training: images/s of the view pipelines, model step fp32/bf16, projected full run
	$(PY) benchmarks/training_throughput.py

gpu-check: $(STAMP)  ## Assignment 1's full budget timed on this machine (a GPU: <= 8 min), then make benchmark-training
	$(PY) benchmarks/gpu_check.py
	$(PY) benchmarks/training_throughput.py

reference-run: $(STAMP)  ## the shipped reference runs in data/reference/ (2 CPU cores: about two hours)
	$(PY) -m dinolab.dino_reference --name dino-long --epochs 100 --eval-every 5
	$(PY) -m dinolab.dino_reference --name dino-quick-original --recipe original --epochs 10 --eval-every 10 --no-teacher
	$(PY) -m dinolab.random_teachers_reference --seeds 0,1,2,3,4 --jobs 2

clean:  ## remove outputs of the demo and of notebook runs (keeps .venv and data)
	rm -rf build results solutions/*/results assignments/*/results
