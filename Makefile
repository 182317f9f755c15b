# The two commands of the README: `make demo` and `make test`.
# Each sets itself up on a fresh machine: a virtualenv (.venv) unless one is
# already active, torch first (the CPU wheel torch==2.13.0 only where no torch
# is importable, so a user's own CUDA build is left alone), then this package.
#
# The MONAI Label app (monailabel/alseg) needs the `monailabel` extra, whose
# dependencies pin numpy < 2 and jsonschema < 4: its tests run in a second
# virtualenv, .venv-monailabel (MLVENV), made the same way, always (an active
# env is left alone; MLPY=python runs them in it, if it has the extra).
# `make test` (CI) runs the linter (`make lint`: ruff, ruff.toml, on alseg_monai and
# monailabel), the main suite, then `make test-monailabel` (a real MONAI Label server);
# MONAILABEL=0 skips the latter and its 3.9 GB virtualenv.
# The main suite runs in TEST_WORKERS pytest-xdist processes, a test file per
# process at a time (module fixtures are built once); TEST_WORKERS=0 runs it in one.
# With workers, torch runs one thread per process (OMP_NUM_THREADS=1, inherited by the
# runs the tests start): two-thread ops wait for a core the other worker holds, which
# made a 157-s bundle run exceed its 10-min limit.

PYTHON ?= python3
VENV ?= .venv
MLVENV ?= .venv-monailabel
PYTEST_ARGS ?=
MLPYTEST_ARGS ?=
MONAILABEL ?= 1
TEST_WORKERS ?= 2

ifneq ($(strip $(VIRTUAL_ENV)$(CONDA_PREFIX)),)
PY := python
VENV_PY :=
else
PY := $(VENV)/bin/python
VENV_PY := $(PY)
endif
MLPY ?= $(MLVENV)/bin/python

STAMP := $(dir $(PY)).alseg_monai.installed
MLSTAMP := $(dir $(MLPY)).alseg_monai-monailabel.installed

.PHONY: setup setup-monailabel demo study lint test test-monailabel tutorials

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.cfg setup.py | $(VENV_PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

$(MLVENV)/bin/python:
	$(PYTHON) -m venv $(MLVENV)

# torch first, as above, so that the extra's torchvision pin keeps it.
$(MLSTAMP): setup.cfg setup.py | $(filter $(MLVENV)/bin/python,$(MLPY))
	@$(MLPY) -c "import torch" 2>/dev/null || $(MLPY) -m pip install "torch==2.13.0"
	$(MLPY) -m pip install -q -e ".[monailabel,dev]"
	@touch $(MLSTAMP)

setup-monailabel: $(MLSTAMP)

BUNDLE := bundles/slice_active_learning
# The study's data config: phantom (cardiac cine MR) or abdomen_phantom (abdominal CT);
# any other data config of configs/data works the same way. STUDY=options_study compares
# the K-Center options (geometry, first centre, embedding) instead of the strategies;
# STUDY=schedule_study GCL + Coreset against a schedule that switches to Random after 5 %.
DATA ?= phantom
STUDY ?= study
RUN_BUNDLE = $(PY) -m monai.bundle run --bundle_root $(BUNDLE) \
	--meta_file $(BUNDLE)/configs/metadata.json --logging_file $(BUNDLE)/configs/logging.conf --config_file
configs = "[$(foreach c,active_learning.json $(1),'$(BUNDLE)/configs/$(c)',)]"

demo: setup
	$(RUN_BUNDLE) $(call configs,data/phantom.json cpu.json demo.json)

# Strategies judged over repeats: study.md and study.png in runs/<STUDY>_<DATA> (configs/<STUDY>.json).
# STUDY_ARGS passes bundle overrides, e.g. STUDY_ARGS="--repeats 10" extends a finished
# study with 5 more repeats (the finished ones are reused).
STUDY_ARGS ?=
study: setup
	$(RUN_BUNDLE) $(call configs,data/$(DATA).json cpu.json $(STUDY).json) --output_dir $(BUNDLE)/runs/$(STUDY)_$(DATA) $(STUDY_ARGS)

# Lint only (no formatter): pyflakes, pycodestyle at 120 columns and import order.
LINT_PATHS := alseg_monai monailabel
lint: setup
	$(PY) -m ruff check $(LINT_PATHS)

# The tutorials' committed outputs (tutorials/README.md): tutorials/execute.py runs each notebook
# in place, as the test suite does, and cleans its outputs (no machine paths, times or
# timestamps; PNGs at most 800 px wide). One torch thread, as the committed outputs were made
# (the digits then do not depend on the machine's core count). NOTEBOOKS picks some, e.g.
# NOTEBOOKS=tutorials/03_scribbles_dmpls.ipynb; ALSEG_TUTORIAL_SMOKE=1 runs the tiny settings.
NOTEBOOKS ?=
tutorials: setup
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) tutorials/execute.py $(NOTEBOOKS)

# pytest exits 5 when it collects no test (e.g. a PYTEST_ARGS filter that
# matches nothing): report it instead of failing the run. The main run leaves
# tests/monailabel to test-monailabel (they skip without the extra anyway). The
# lint, the main suite and test-monailabel all run, and the first failure's exit
# status is make's (a lint failure is repeated at the end, below the tests' output).
test: setup
	@$(MAKE) --no-print-directory lint; lint=$$?; \
	$(if $(filter 0,$(TEST_WORKERS)),,OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 )$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS) $(if $(filter 0,$(MONAILABEL)),,--ignore=tests/monailabel); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; rc=0; fi; \
	ml=0; if [ "$(MONAILABEL)" != 0 ]; then $(MAKE) --no-print-directory test-monailabel; ml=$$?; fi; \
	if [ $$lint -ne 0 ]; then echo "make test: lint failed (ruff findings above; make lint)"; exit $$lint; fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; exit $$ml

# The MONAI Label app's tests (a real `monailabel start_server`) in .venv-monailabel;
# there a missing extra is an error, not a skip (tests/monailabel/conftest.py).
test-monailabel: setup-monailabel
	@ALSEG_REQUIRE_MONAILABEL=1 $(MLPY) -m pytest tests/monailabel $(MLPYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; rc=0; fi; exit $$rc
