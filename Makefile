# Two commands (see README):  make demo  (set up + run the embedded benchmark)   make test  (set up + tests)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= all
TEST_WORKERS ?= 2   # pytest-xdist processes (most tests run single-threaded subprocesses)
INSTALLER ?= pip    # or uv: the same packages from the same sources (pip's configuration, scripts/uv_env.py),
                    # installed in parallel: ~48 s instead of ~99 s on 2 cores from a fresh clone (CI uses it)
# workflow jobs call `python -m vem ...`: the venv's python must come first on PATH
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup data demo smoke slurm-smoke test lint clean gpu-wheels

setup: $(VENV)/.installed data

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null
ifeq ($(strip $(INSTALLER)),uv)
	$(BIN)/pip install uv >/dev/null
	eval "$$($(BIN)/python scripts/uv_env.py)" && $(BIN)/uv pip install --python $(BIN)/python --compile-bytecode -e '.[dev]'
else
	$(BIN)/pip install -e '.[dev]'
endif
	touch $@

data: resources/fmnist/.ok

resources/fmnist/.ok: | $(VENV)/.installed
	bash scripts/get-fmnist.sh $(BIN)/python
	touch $@

demo: setup
	$(BIN)/snakemake --cores $(CORES)

smoke: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/smoke.yaml

slurm-smoke: smoke
	bash scripts/slurm-smoke.sh "$(CURDIR)"

test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

# the packages a bare GPU image lacks for scripts/gpu-check.sh, as wheels in .whl/ (needs PyPI)
gpu-wheels: $(VENV)/.installed
	bash scripts/gpu-wheels.sh $(BIN)/python

clean:
	rm -rf results logs .snakemake resources/data
