# dsrg: the two commands of the README are `make book` and `make test`; both set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DATA   ?= data/synthetic
# notebooks executed at once by `make book` (scripts/execute_notebooks.py)
BOOK_JOBS ?= 2

.PHONY: help setup test test-all book data demo spread bench bench-gpu gpu-check bench-paper-scale bench-demo clean lab chromium torchvision-check

help:
	@echo "make book      build the Jupyter Book on the embedded dataset (the main job)"
	@echo "make test      run the test suite (slow and GPU tests skipped)"
	@echo "make test-all  run every test, slow ones included (GPU tests skip without CUDA)"
	@echo "make data      write the embedded dataset to $(DATA)"
	@echo "make demo      run the whole pipeline on the embedded dataset (dsrg run --profile demo)"
	@echo "make spread    Tables 1 and 2 and Fig. 4 over seeds 0-4: records in spread/ (about 2 h 10 min on 2 cores)"
	@echo "make bench     run the benchmarks in benchmarks/ (CPU shapes)"
	@echo "make bench-gpu on CUDA: the paper-shape benchmarks, recorded in benchmarks/results/ for the book"
	@echo "make gpu-check on a CUDA machine without the venv: gpu tests + paper-shape benchmarks, about 6 min"
	@echo "make torchvision-check  our VGG16 / ResNet-101 against torchvision's models on the CPU (downloads its wheel once)"
	@echo "make bench-paper-scale  project a paper-scale run from a slice (CPU: about 10 min with the set)"
	@echo "make bench-demo  time the demo from nothing and run its ablation rows (about 20 min)"
	@echo "make lab       JupyterLab on the venv's kernel; the .md notebooks open as notebooks (jupytext)"
	@echo "make chromium  install Debian's chromium for the book's browser tests if missing (root + apt only)"

# The virtual environment: torch first, pinned exactly (a CPU wheel here; unpinned pulls CUDA builds),
# then the package with every pinned dependency (pyproject.toml). TORCH_INDEX: where torch comes from, e.g.
# https://download.pytorch.org/whl/cpu on a machine without a GPU whose pip reads PyPI (PyPI's Linux wheel
# is the CUDA build, gigabytes of it).
TORCH_INDEX ?=
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "dsrg needs Python >= 3.11, found " + sys.version' 
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --disable-pip-version-check -q -e '.[book,test]'
	@# Triton, for region growing's CUDA kernel: torch's CUDA wheels bring their own; elsewhere its interpreter
	@# runs the kernel's tests on the CPU (tests/test_growing.py).
	$(PY) -c 'import triton' 2>/dev/null || $(PY) -m pip install --disable-pip-version-check -q \
	  'triton==3.9.0; platform_system == "Linux" and platform_machine == "x86_64"'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)

test: chromium $(STAMP)
	$(PY) -m pytest -m "not slow and not gpu"

# Headless Chromium for tests/test_book.py's browser checks (they skip without it). Installed from
# Debian's packages where we are root and apt-get answers (about 70 s the first time); anywhere else,
# or if apt fails, a note is printed and `make test` goes on.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    echo "installing Debian's chromium for the book's browser tests (apt-get, about a minute)" && \
	    { timeout 900 sh -c 'apt-get update -qq -o Acquire::Retries=1 -o Acquire::http::Timeout=30 && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium' >/dev/null 2>&1; } && \
	    command -v chromium >/dev/null 2>&1; } || \
	  echo "no chromium installed: tests/test_book.py's browser checks use google-chrome if on PATH, else skip"

# JupyterLab on the project's venv kernel. jupytext's server extension serves notebooks/*.md as
# notebooks; the override below (written into the venv, not your home) makes a double click open
# Markdown/MyST files with the "Jupytext Notebook" viewer. Extra options: make lab LAB_ARGS="--port 8899".
LAB_ARGS ?=
lab: $(STAMP)
	@$(VENV)/bin/jupytext-config --settings-file $(VENV)/share/jupyter/lab/settings/overrides.json \
	  set-default-viewer markdown myst
	$(VENV)/bin/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Our backbones against torchvision's model definitions (tests/test_torchvision_backbones.py). The registry's
# torchvision wheels are CUDA builds that do not import beside a CPU torch; the test then loads their pure-Python
# models from the wheel unpacked here (downloaded once: a helper that needs the package index, never the tests).
TORCHVISION_SOURCE ?= .cache/torchvision-0.28.0
torchvision-check: $(STAMP)
	@test -d $(TORCHVISION_SOURCE)/torchvision/models || { \
	  $(PY) -m pip download --disable-pip-version-check -q --no-deps torchvision==0.28.0 -d $(TORCHVISION_SOURCE) && \
	  $(PY) -c 'import glob, sys, zipfile; w = glob.glob(sys.argv[1] + "/torchvision-*.whl")[0]; \
	    z = zipfile.ZipFile(w); z.extractall(sys.argv[1], [n for n in z.namelist() if n.startswith("torchvision/")])' \
	    $(TORCHVISION_SOURCE); }
	DSRG_TORCHVISION_SOURCE=$(TORCHVISION_SOURCE) $(PY) -m pytest -p no:cacheprovider -q -rA -m gpu \
	  tests/test_torchvision_backbones.py

test-all: chromium $(STAMP)
	$(PY) -m pytest

data: $(STAMP)
	$(VENV)/bin/dsrg data synth --out $(DATA)

bench: data
	$(PY) benchmarks/grow.py
	$(PY) benchmarks/crf.py
	$(PY) benchmarks/step.py --batch 2 --size 161 --width 0.25
	$(PY) benchmarks/synth.py
	$(PY) benchmarks/preflight.py
	$(PY) benchmarks/saliency_precision.py --root $(DATA) --split val
	$(PY) benchmarks/overlap.py data.root=$(DATA)

# On a machine with CUDA: the paper profile's shapes (batch 20, 21 classes, 41 x 41; VGG16 and ResNet-101 at
# 321 x 321) and a paper-scale slice, recorded in benchmarks/results/, where the book's performance chapter
# reads them. gpu-check adds the gpu tests and runs on the machine's own python3 and torch, no venv (after
# `source .whl/device-setup.sh`: ../shared/reference/gpu.md); bench-gpu runs the benchmarks in the venv.
GPU_PYTHON ?= python3
# GPU_CHECK_ARGS: e.g. --results DIR (where the records go; default benchmarks/results), --only grow,crf, or
# --bundle FILE.tgz --deadline EPOCH on a lent machine that gives back few files (benchmarks/gpu_check.py)
GPU_CHECK_ARGS ?=
gpu-check:
	$(GPU_PYTHON) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

bench-gpu: $(STAMP)
	$(PY) benchmarks/gpu_check.py --only step-vgg16,step-resnet101,grow,crf,paper-scale

# A paper-scale run projected from a slice of a VOC-shaped set (written once into data/paper-scale, about a
# minute here): the CPU's figures; PAPER_SCALE_ARGS="--device cuda" for a GPU's.
PAPER_SCALE_ARGS ?=
bench-paper-scale: $(STAMP)
	$(PY) benchmarks/paper_scale.py --json benchmarks/results/paper-scale-cpu.json $(PAPER_SCALE_ARGS)

# The spread of Tables 1 and 2 and Fig. 4 over seeds, for the book (SPREAD_ARGS="--seeds 5 6": seeds 5 and 6 of
# Table 2's rows added to the records). On the CPU the numbers change with torch's thread count, so it runs with
# the book's (the cores shared out among BOOK_JOBS kernels, as scripts/execute_notebooks.py does): its seed 0 is
# then the book's run.
SPREAD_ARGS ?= --profile demo --seeds 0 1 2 3 4 --rows baseline bsl dsrg retrain resnet101 random-start \
	vgg16-resnet-head resnet101-vgg16-head
SPREAD_THREADS ?= $(shell $(PYTHON) -c 'import os; print(max(1, (os.cpu_count() or 1) // max(1, $(BOOK_JOBS))))')
spread: $(STAMP)
	OMP_NUM_THREADS=$(SPREAD_THREADS) MKL_NUM_THREADS=$(SPREAD_THREADS) $(VENV)/bin/dsrg spread $(SPREAD_ARGS)

demo: $(STAMP)
	$(VENV)/bin/dsrg run --profile demo

bench-demo: $(STAMP)
	$(PY) benchmarks/demo.py

# The demo book goes to _build/html; with DSRG_NOTEBOOK_PROFILE=smoke (say), to _build/smoke/_build/html,
# with its own execution cache (scripts/execute_notebooks.py --output-dir).
book: $(STAMP)
	$(PY) scripts/execute_notebooks.py --jobs $(BOOK_JOBS)
	$(VENV)/bin/jupyter-book build -W -n --keep-going --path-output "$$($(PY) scripts/execute_notebooks.py --output-dir)" .

clean:
	rm -rf _build .pytest_cache
