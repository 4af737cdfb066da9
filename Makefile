# embedkit — two commands for a newcomer: `make demo` and `make test`. Both build .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo_run

# kaggle-kit: folder to upload as a Kaggle dataset (wheels for Kaggle's Python/platform + models + kaggle_infer.py)
KIT ?= kaggle_kit
KIT_MODELS ?= models/birdnet-proto
KAGGLE_PYTHON ?= 3.11
KAGGLE_PLATFORM ?= manylinux_2_28_x86_64

.PHONY: venv demo test lint bench clean kaggle-kit fuzz

venv: $(STAMP)

# torch is installed first and pinned to the CPU wheel: an unpinned torch makes pip take a multi-GB CUDA build.
# pyproject keeps torch a range so users' GPU machines bring their own.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m embedkit demo --out $(DEMO)

test: $(STAMP)
	$(BIN)/ruff check embedkit tests benchmarks extract.py fit.py infer.py
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

kaggle-kit: $(STAMP)
	$(BIN)/python -m embedkit kaggle-kit --models $(KIT_MODELS) --out $(KIT) \
		--python-version $(KAGGLE_PYTHON) --platform $(KAGGLE_PLATFORM)

# fuzz: the long fuzz run (tests/fuzz_run.py): FUZZ_MINUTES per run, FUZZ_TARGETS (names or all);
# EMBEDKIT_FUZZ_MEM_MB / EMBEDKIT_FUZZ_TIMEOUT_S set the worker's memory cap and per-case timeout
FUZZ_MINUTES ?= 30
FUZZ_TARGETS ?= all
fuzz: $(STAMP)
	nice -n 10 $(BIN)/python tests/fuzz_run.py --minutes $(FUZZ_MINUTES) --targets $(FUZZ_TARGETS) \
		--log fuzz-failures.jsonl

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO)
