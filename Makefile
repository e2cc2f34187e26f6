# sigprop: the two commands a reader needs are `make book` and `make test`.
#
#   make book        set up .venv, then build the website in _build/html, executing every chapter
#   make test        set up .venv, then run every test (library, notebooks, consistency, book build)
#   make notebooks   re-execute every chapter and store its outputs in book/*.ipynb
#   make bench       run the performance suite (benchmarks/run.py) and the time-budget tests
#   make reference   measure the book's side of the paper-beside-the-book tables at the medium scale
#   make clean       remove build outputs (keeps .venv); `make distclean` removes .venv too
#
# Knobs (set on the command line: `make book TORCH_SPEC="..."`):
#   PYTHON       interpreter that creates the venv (default python3, 3.9 or newer)
#   VENV         where the venv lives (default .venv)
#   TORCH_SPEC   pip arguments that install torch, before anything else. Default: torch==2.13.0,
#                as tested. A particular CUDA build, e.g. in a venv of its own:
#                make book VENV=.venv-cuda TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
#   JB_FLAGS     flags for `jupyter-book build` (default: strict, every page rebuilt)
#   PYTEST_ARGS  extra pytest arguments, e.g. PYTEST_ARGS="-x -k meanfield"

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
JB_FLAGS ?= --all --warningiserror --keep-going
PYTEST_ARGS ?=

PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.sigprop-installed
TORCH_STAMP := $(VENV)/.sigprop-torch-spec

# The pytest call of `make test`: library tests, consistency tests and the book build in
# tests/, and nbval over every chapter notebook. Only cells tagged nbval-check-output
# have their outputs compared (--nbval-lax); the rest must merely run without error.
NBVAL_FLAGS := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
NOTEBOOKS := $(sort $(wildcard book/*.ipynb))

# Offline machines (the developers', CI) keep real data in ../shared/data. When that folder
# is there and SIGPROP_DATA is unset, the chapters read it instead of downloading; elsewhere
# sigprop.data uses its own default (~/.cache/sigprop).
SHARED_DATA := $(abspath $(wildcard ../shared/data))
ifneq ($(SHARED_DATA),)
export SIGPROP_DATA ?= $(SHARED_DATA)
endif

.PHONY: help setup browser sandbox book test notebooks bench reference clean distclean FORCE

help:
	@sed -n '3,8p' Makefile | sed 's/^# \{0,1\}//'

# ---------------------------------------------------------------------------- set-up
# Idempotent: the stamp is newer than everything it was installed from, so a second run
# installs nothing. Editing lib/pyproject.toml or requirements-book.txt, or asking for
# another TORCH_SPEC, re-runs pip in the same venv (pip only adds what is missing).
setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Rewritten only when TORCH_SPEC changes, so that its timestamp says when it last did.
$(TORCH_STAMP): FORCE | $(PY)
	@echo '$(TORCH_SPEC)' > $@.new
	@if cmp -s $@.new $@; then rm -f $@.new; else mv -f $@.new $@; fi

$(STAMP): lib/pyproject.toml requirements-book.txt $(TORCH_STAMP) | $(PY)
	$(PIP) install --progress-bar off $(TORCH_SPEC)
	$(PIP) install --progress-bar off -e lib -r requirements-book.txt
	@touch $@

# ---------------------------------------------------------------------------- the book
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . $(JB_FLAGS)
	@echo "The website is in _build/html/index.html"

# One pytest call. tests/conftest.py builds the book with the same command as `make book`,
# in the background from the start (its tests run last and wait for it); deselect them with
# PYTEST_ARGS='-m "not book"'.
# Tests run at the small scale unless SIGPROP_SCALE says otherwise.
test: export SIGPROP_SCALE ?= small
# One BLAS/OpenMP thread per process: on a 2-core machine two threads per kernel thrash
# when pytest, the notebook kernels and Sphinx run side by side (measured 8-10x slower).
test: export OMP_NUM_THREADS ?= 1
# --durations lists the 15 slowest tests at the end, so that a slower suite is seen where it grew.
test: $(STAMP) browser sandbox
	$(PY) -m pytest tests $(NOTEBOOKS) $(NBVAL_FLAGS) --durations=15 $(PYTEST_ARGS)

# tests/test_site.py opens the built website in Debian's chromium through chromedriver. When
# they are missing and this runs as root with apt-get, install them; otherwise say so (the
# site test then skips, saying why). Never fails the test run.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and chromium-driver for tests/test_site.py"; \
	  { apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && \
	      apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1; }; } || \
	  echo "could not install chromium: tests/test_site.py will skip"; \
	else echo "chromium/chromedriver missing and cannot install them (not root, or no apt-get): tests/test_site.py will skip"; fi

# tools/assignments.py grades each notebook inside bubblewrap (network off, filesystem
# read-only outside its scratch copy) when bwrap works here; tests/test_assignments.py runs
# its file-vandalizing submission only then. Install it like the browser; never fails.
sandbox:
	@if command -v bwrap >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing bubblewrap for tools/assignments.py"; \
	  { apt-get install -y -q --no-install-recommends bubblewrap >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && \
	      apt-get install -y -q --no-install-recommends bubblewrap >/dev/null 2>&1; }; } || \
	  echo "could not install bubblewrap: grading runs without its sandbox"; \
	else echo "bubblewrap missing and cannot install it (not root, or no apt-get): grading runs without its sandbox"; fi

# Re-executes each chapter from its Markdown source and stores the outputs in the .ipynb
# that Colab opens and nbval compares against.
notebooks: export SIGPROP_SCALE ?= small
notebooks: $(STAMP)
	$(VENV)/bin/jupytext --sync $(NOTEBOOKS:.ipynb=.md)
	$(PY) tools/execute_notebooks.py $(NOTEBOOKS)

# The performance suite, then the tests that assert a time budget (marker `timing`, which
# `make test` deselects so that a busy machine cannot fail it).
bench: $(STAMP)
	$(PY) benchmarks/run.py
	$(PY) -m pytest tests -m timing -q

# The paper beside the book: execute temporary copies of chapters at SIGPROP_SCALE=medium
# (the largest sizes a two-core CPU runs in reasonable time; a chapter without medium
# sizes runs its small ones) and store the measured values in book/reference/chNN.yaml.
# Not part of `make test`, which only checks the stored values (tests/test_reference.py).
# Chapters with medium sizes: 1 (about 5 minutes on two busy cores), 2 (9), 4 (5), 5 (5), 6 (3).
REFERENCE_CHAPTERS ?= ch01 ch02 ch04 ch05 ch06
REFERENCE_SCALE ?= medium
reference: export OMP_NUM_THREADS ?= 1
reference: $(STAMP)
	$(PY) tools/reference.py --scale $(REFERENCE_SCALE) $(REFERENCE_CHAPTERS)
	$(PY) -m pytest tests/test_reference.py -q

clean:
	rm -rf _build .jupyter_cache .pytest_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

FORCE:
