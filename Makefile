# onecycle-bench front door. `make test` and `make reproduce` each install what they need first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUITE ?=
ARGS ?=
RESULTS ?= $(or $(ONECYCLE_RESULTS),results)

.PHONY: help install data test run reproduce report bench gpu-check clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install -e .[dev] (once; redone when pyproject.toml changes)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned to the pair the project is tested with; pyproject admits a range.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Fetches and verifies what a suite's tasks read from disk, into $ONECYCLE_DATA (./data) and torch.hub's cache.
data: $(STAMP) ## Fetch and verify a suite's data (SUITE=blog: everything; or TASKS=a,b)
	$(BIN)/python -m suites.data fetch $(if $(TASKS),tasks=$(TASKS),suite=$(or $(SUITE),blog))

test: $(STAMP) ## Run the test suite (CPU, no network)
	$(BIN)/python -m pytest -q -n 2 $(ARGS)

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

report: $(STAMP) ## Build the HTML report of a suite from its records (SUITE=mini)
	$(BIN)/python -m report suite=$(or $(SUITE),mini) results_dir=$(RESULTS) $(ARGS)

bench: $(STAMP) ## Measure the suite's hot paths; writes results/bench/bench.json
	$(BIN)/python -m bench $(ARGS)

gpu-check: $(STAMP) ## Full-size synthetic-data throughput check on CUDA (< 8 minutes)
	$(BIN)/python -m bench --gpu-check $(ARGS)

clean: ## Remove the venv, caches and run data (keeps nothing under results/runs)
	rm -rf $(VENV) .pytest_cache results/runs results/grids results/reports results/bench results/cache outputs multirun
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
