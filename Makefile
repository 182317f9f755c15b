# The two commands of the README: `make demo` and `make test`.
# Each sets itself up on a fresh machine: a virtualenv (.venv) unless one is
# already active, torch first (the CPU wheel torch==2.13.0 only where no torch
# is importable, so a user's own CUDA build is left alone), then this package.

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=

ifneq ($(strip $(VIRTUAL_ENV)$(CONDA_PREFIX)),)
PY := python
else
PY := $(VENV)/bin/python
endif

STAMP := $(dir $(PY)).alseg_monai.installed

.PHONY: setup demo study test

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.cfg setup.py | $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

BUNDLE := bundles/slice_active_learning
# The study's data config: phantom (cardiac cine MR) or abdomen_phantom (abdominal CT);
# any other data config of configs/data works the same way. STUDY=options_study compares
# the K-Center options (geometry, first centre, embedding) instead of the strategies.
DATA ?= phantom
STUDY ?= study
RUN_BUNDLE = $(PY) -m monai.bundle run --bundle_root $(BUNDLE) \
	--meta_file $(BUNDLE)/configs/metadata.json --logging_file $(BUNDLE)/configs/logging.conf --config_file
configs = "[$(foreach c,active_learning.json $(1),'$(BUNDLE)/configs/$(c)',)]"

demo: setup
	$(RUN_BUNDLE) $(call configs,data/phantom.json cpu.json demo.json)

# Strategies judged over repeats: study.md and study.png in runs/<STUDY>_<DATA> (configs/<STUDY>.json).
study: setup
	$(RUN_BUNDLE) $(call configs,data/$(DATA).json cpu.json $(STUDY).json) --output_dir $(BUNDLE)/runs/$(STUDY)_$(DATA)

# pytest exits 5 when it collects no test (e.g. a PYTEST_ARGS filter that
# matches nothing): report it instead of failing the run.
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; rc=0; fi; exit $$rc
