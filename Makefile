# dsrg: the two commands of the README are `make book` and `make test`; both set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DATA   ?= data/synthetic

.PHONY: help setup test test-all book data demo bench bench-demo clean

help:
	@echo "make book      build the Jupyter Book on the embedded dataset (the main job)"
	@echo "make test      run the test suite (slow and GPU tests skipped)"
	@echo "make test-all  run every test, slow ones included (GPU tests skip without CUDA)"
	@echo "make data      write the embedded dataset to $(DATA)"
	@echo "make demo      run the whole pipeline on the embedded dataset (dsrg run --profile demo)"
	@echo "make bench     run the benchmarks in benchmarks/"
	@echo "make bench-demo  time the demo from nothing and run its ablation rows (about 20 min)"

# The virtual environment: torch first, pinned exactly (a CPU wheel here; unpinned pulls CUDA builds),
# then the package with every pinned dependency (pyproject.toml).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "dsrg needs Python >= 3.11, found " + sys.version' 
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q torch==2.13.0
	$(PY) -m pip install --disable-pip-version-check -q -e '.[book,test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -m "not slow and not gpu"

test-all: $(STAMP)
	$(PY) -m pytest

data: $(STAMP)
	$(VENV)/bin/dsrg data synth --out $(DATA)

bench: data
	$(PY) benchmarks/grow.py
	$(PY) benchmarks/synth.py
	$(PY) benchmarks/saliency_precision.py --root $(DATA) --split val

demo: $(STAMP)
	$(VENV)/bin/dsrg run --profile demo

bench-demo: $(STAMP)
	$(PY) benchmarks/demo.py

book: $(STAMP)
	$(VENV)/bin/jupyter-book build -W -n --keep-going .

clean:
	rm -rf _build .pytest_cache
