# Two commands on a fresh machine (see README):
#   make figures   set up .venv, execute the notebook series, regenerate figures/
#   make test      set up .venv, ruff, every test (slow ones included), every notebook at smoke size (CI=1)
#   make unit      the fast lane for development: the tests not marked slow (no worker processes, no browser)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# two pytest workers on 2 cores: one thread each, else tiny tensor ops oversubscribe the cores
# toy notebooks (01-05) and the digits-only notebook 10: executed in place, committed with the outputs of a full run; notebook 05's Stable
# Diffusion section is skipped there (SDELAB_SD_MODEL=none), so the same outputs come back on any machine
FULL_NOTEBOOKS ?= $(sort $(wildcard notebooks/0[1-5]_*.ipynb notebooks/10_*.ipynb))
# image notebooks: the digits-first 06-08 and the DragBench notebook 09 (its shapes run first, 15-30 min on 2 cores),
# executed in place with their Stable Diffusion sections on SD_MODEL (06, 07 and 09 label the tiny model's pictures
# as random; 08's SD part runs only with a GPU); SD_MODEL=tiny keeps `make figures` offline, a hub id or a local
# folder runs the real model
IMAGE_NOTEBOOKS ?= $(sort $(wildcard notebooks/0[6-9]_*.ipynb))
SD_MODEL ?= tiny

.PHONY: setup figures test lint unit tests notebooks clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	@# Keep an installed torch (Colab, a CUDA machine). With none and no NVIDIA GPU, take the CPU build
	@# (local wheel first, else the PyTorch CPU index) so pip never pulls a multi-GB CUDA build.
	$(PY) -c "import torch" 2>/dev/null || command -v nvidia-smi >/dev/null || \
	  $(PIP) install "torch==2.13.0+cpu" || \
	  $(PIP) install "torch==2.13.0+cpu" --index-url https://download.pytorch.org/whl/cpu
	$(PIP) install -e ".[dev]"
	touch $@

figures: setup
	OMP_NUM_THREADS=1 SDELAB_SD_MODEL=none $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	  $(FULL_NOTEBOOKS)
	SDELAB_SD_MODEL=$(SD_MODEL) OMP_NUM_THREADS=1 $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.timeout=3600 $(IMAGE_NOTEBOOKS)

lint: setup
	$(VENV)/bin/ruff check .

unit: setup
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest -n 2 -m "not slow" tests

tests: setup
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest -n 2 tests

notebooks: setup
	CI=1 OMP_NUM_THREADS=1 $(VENV)/bin/pytest -n 2 --nbmake notebooks

test: lint tests notebooks

clean:
	rm -rf $(VENV)
