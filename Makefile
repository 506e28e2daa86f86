# Two entry points (see README): `make demo` and `make test`. Each installs what is missing first.
VENV := .venv
PLAIT := $(VENV)/bin/plait
PROMPT ?= What is the capital of France?
RECIPE ?= default
OUT ?= out/smollm2-$(RECIPE)

.PHONY: setup demo test test-fast coverage mutation
setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PLAIT) compile smollm2 --recipe $(RECIPE) -o $(OUT)
	$(PLAIT) run $(OUT) --prompt "$(PROMPT)"

test: setup
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile --durations=60

# Verilator line/branch/toggle coverage of the DSP chain's all-modes run and of the LUT
# core's small-build all-modes run, with the floors CI enforces
# (tests/test_rtl_dsp_chain.py and tests/test_rtl_lut_core.py COVERAGE_FLOOR)
coverage: setup
	$(VENV)/bin/python -m pytest -q -s tests/test_rtl_dsp_chain.py -k test_rtl_all_modes
	$(VENV)/bin/python -m pytest -q -s tests/test_rtl_lut_core.py -k "test_rtl_small_build_bit_exact and 4"

# both engines' full mutation campaigns (every enumerated site; the LUT core's takes about 2
# minutes, the DSP chain's about a minute; CI runs a sample of each, a few mutants per site
# class: tests/test_rtl_lut_core.py, tests/test_rtl_dsp_chain_mutants.py); prints the
# survival tables, fails if a mutant not listed as equivalent survives
mutation: setup
	$(VENV)/bin/python -m plait.sim.mutate lut_core
	$(VENV)/bin/python -m plait.sim.mutate dsp_chain

test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow"

# llmcompressor beside plait (benchmarks/peer_llmcompressor.py), in its own venv: llmcompressor
# 0.14.0.1 pins transformers<=5.17 and huggingface-hub<2 (.venv has newer). Not part of setup/CI.
PEER_VENV := .venv-peer
.PHONY: peer-venv
peer-venv:
	@[ -x $(PEER_VENV)/bin/python ] || $${PYTHON:-python3.11} -m venv $(PEER_VENV)
	@$(PEER_VENV)/bin/pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	@# torch first, pinned: the CPU build on this machine (a bare requirement would pull CUDA)
	@$(PEER_VENV)/bin/pip install -q torch==2.13.0 2>&1 | grep -v '^WARNING: Location' || true
	@$(PEER_VENV)/bin/pip install -q llmcompressor==0.14.0.1 2>&1 | grep -v '^WARNING: Location' || true
	$(PEER_VENV)/bin/python -c "import llmcompressor, torch, transformers; print('peer-venv: llmcompressor', llmcompressor.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
