# onecycle-bench front door. `make test` and `make reproduce` each install what they need first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUITE ?=
ARGS ?=
RESULTS ?= $(or $(ONECYCLE_RESULTS),results)
# Every package `make install` puts in .venv, at one version and its hashes: what CI tested.
LOCK := requirements.lock
# The pair the project is tested with, pinned in the lock; pyproject.toml admits a range for other installs.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# `make lock` resolves with uv, this version, installed beside the venv (not in it: the venv is the lock).
UV_VERSION := 0.13.10
UV := $(VENV)/.uv-$(UV_VERSION)/bin/uv
NORM := tr 'A-Z_.' 'a-z--' | sort

.PHONY: help install lock data test test-full-size run reproduce rehearse report bench gpu-check clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv from requirements.lock, then -e . (redone when it or pyproject.toml changes)

# --require-hashes: each file must be the one locked, wherever pip finds it (PyPI or a local index).
# The project is then built by the locked setuptools, not by an isolated build env's newest one.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@extra=$$($(BIN)/python -m pip freeze --exclude-editable | grep -v '^#' | sed -E 's/[ =@].*//' | $(NORM) \
	  | comm -23 - <(sed -nE 's/^([A-Za-z0-9][A-Za-z0-9._-]*)==.*/\1/p' $(LOCK) | $(NORM))); \
	[ -z "$$extra" ] || echo "note: .venv also holds packages the lock does not name:" $$extra \
	  "(yours? rm -r .venv && make install leaves the lock alone)"
	touch $(STAMP)

# Keeps the lock's pins where pyproject.toml still admits them (UPGRADE=1: the newest it admits), for
# every platform and Python >= 3.11 with one version per package where possible. The installer (pip)
# and the build backend (pyproject's [build-system]) are locked too. uv reads PyPI, or $UV_DEFAULT_INDEX.
lock: ## Re-resolve requirements.lock after editing pyproject.toml (UPGRADE=1: move every pin)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	test -x $(UV) || $(BIN)/python -m pip install -q --target $(VENV)/.uv-$(UV_VERSION) uv==$(UV_VERSION)
	{ printf '%s\n' $(TORCH_PINS) pip; $(BIN)/python -c "import tomllib; \
	  print(*tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires'], sep='\n')"; } \
	| $(UV) pip compile pyproject.toml - --extra dev --generate-hashes --universal --fork-strategy fewest \
	  --python-version 3.11 --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade) -q -o $(LOCK)

# Fetches and verifies what a suite's tasks read from disk, into $ONECYCLE_DATA (./data) and torch.hub's cache.
data: $(STAMP) ## Fetch and verify a suite's data (SUITE=blog: everything; or TASKS=a,b)
	$(BIN)/python -m suites.data fetch $(if $(TASKS),tasks=$(TASKS),suite=$(or $(SUITE),blog))

test: $(STAMP) ## Run the test suite (CPU, no network; the full-size rehearsal tests apart)
	$(BIN)/python -m pytest -q -n 2 -m "not full_size" $(ARGS)

test-full-size: $(STAMP) ## The rehearsal tests at full model size (nightly killed and rerun; each blog claim)
	$(BIN)/python -m pytest -q -n 2 -m full_size $(ARGS)

run: $(STAMP) ## Train one experiment (default: digits_resnet, adamw + one_cycle); ARGS= for overrides
	$(BIN)/python -m runners.train $(ARGS)

# The grid, then the report (even after a failed cell: the page lists it), exiting with the grid's status.
# The CPU suites (mini, *_mini) run one joblib worker per CPU core unless ARGS picks a launcher.
reproduce: $(STAMP) ## Run a suite then build its report (SUITE=blog on CUDA, mini otherwise)
	@suite="$(SUITE)"; \
	if [ -z "$$suite" ]; then suite=$$($(BIN)/python -c "import torch; print('blog' if torch.cuda.is_available() else 'mini')"); \
	  echo "SUITE=$$suite (blog on CUDA, mini otherwise; choose with SUITE=NAME)"; fi; \
	launcher=""; case "$(ARGS)" in *hydra/launcher=*) ;; *) case "$$suite" in mini|*_mini) launcher="hydra/launcher=local_parallel";; esac;; esac; \
	$(BIN)/python -m runners.grid suite=$$suite results_dir=$(RESULTS) $$launcher $(ARGS); status=$$?; \
	[ $$status -eq 2 ] && exit 2; \
	$(BIN)/python -m report suite=$$suite results_dir=$(RESULTS) || exit $$?; \
	exit $$status

# A GPU night on this machine: fabricated data in the real formats (never under ./data), then every cell of
# the suite at full model size, a few batches each, as <suite>-rehearsal, then its marked page.
REHEARSAL_DATA ?= $(RESULTS)/rehearsal/data
# One joblib worker per GPU, or per CPU core without one, unless ARGS picks a launcher.
rehearse: $(STAMP) ## Every cell of a suite at full model size on fabricated data, a few batches each (SUITE=blog)
	@suite="$(or $(SUITE),blog)"; \
	launcher="hydra/launcher=local_parallel"; case "$(ARGS)" in *hydra/launcher=*) launcher="";; esac; \
	$(BIN)/python -m suites.data fake suite=$$suite data_root=$(REHEARSAL_DATA) || exit $$?; \
	$(BIN)/python -m runners.grid suite=$$suite rehearsal=true grid.rehearsal.data_root=$(REHEARSAL_DATA) \
	  results_dir=$(RESULTS) $$launcher $(ARGS); status=$$?; \
	[ $$status -eq 2 ] && exit 2; \
	$(BIN)/python -m report suite=$$suite-rehearsal results_dir=$(RESULTS) || exit $$?; \
	exit $$status

report: $(STAMP) ## Build the HTML report of a suite from its records (SUITE=mini)
	$(BIN)/python -m report suite=$(or $(SUITE),mini) results_dir=$(RESULTS) $(ARGS)

bench: $(STAMP) ## Measure the suite's hot paths; writes results/bench/bench.json
	$(BIN)/python -m bench $(ARGS)

gpu-check: $(STAMP) ## Full-size synthetic-data throughput check on CUDA (< 8 minutes)
	$(BIN)/python -m bench --gpu-check $(ARGS)

clean: ## Remove the venv, caches and run data (keeps nothing under results/runs)
	rm -rf $(VENV) .pytest_cache results/runs results/grids results/reports results/bench results/cache results/rehearsal outputs multirun
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
