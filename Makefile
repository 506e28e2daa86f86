# Two entry points (see README): `make demo` and `make test`. Each installs what is missing first.
VENV := .venv
PLAIT := $(VENV)/bin/plait
PROMPT ?= What is the capital of France?
RECIPE ?= default
OUT ?= out/smollm2-$(RECIPE)

.PHONY: setup demo test test-fast
setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PLAIT) compile smollm2 --recipe $(RECIPE) -o $(OUT)
	$(PLAIT) run $(OUT) --prompt "$(PROMPT)"

test: setup
	$(VENV)/bin/python -m pytest -q

test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow"
