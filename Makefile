# niftykit: `make demo` and `make test` work on a fresh Linux machine with Python >= 3.10.
# EXTRAS picks the TensorFlow wheel: cpu (default, tensorflow-cpu) or gpu (tensorflow[and-cuda]).
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= cpu
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(EXTRAS)
BENCH_VENV ?= .venv-bench
BENCH_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install test demo quickstart bench clean help

help:
	@echo "make demo   - install into $(VENV) and run the abdominal CT reproduction, CPU-sized (about 10 min):"
	@echo "              phantoms, dense V-network training, inference, evaluation, per-organ table, report"
	@echo "make quickstart - the 20-second tour: a small U-Net on generated balls and boxes"
	@echo "make test   - install into $(VENV) and run the test suite"
	@echo "make bench  - install the peers (MONAI, TorchIO, torch CPU) into $(BENCH_VENV) and run benchmarks/"
	@echo "              (make bench BENCH_ARGS=--record appends the run to benchmarks/RESULTS.md)"
	@echo "make clean  - remove runs/ and build artefacts (keeps $(VENV))"

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS),sitk,test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) demos/abdominal_ct/run_demo.py

quickstart: $(STAMP)
	$(PY) demos/quickstart.py

bench:
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[cpu,bench]' torch==2.13.0 monai torchio
	$(BENCH_VENV)/bin/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf runs build *.egg-info .pytest_cache
