# Two ways in (README.md): `make demo` and `make test`. Each runs `make setup` first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test fuzz audit bench-fusion bench-gpu gpu-check clean

setup: $(STAMP)

# --system-site-packages: a GPU machine keeps the CUDA torch it already has. Where no torch
# is importable we install the CPU build 2.13.0 (on this machine's disk) explicitly, so pip
# never resolves `torch` to a multi-GB CUDA download.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0"
	$(PY) -c "import triton" 2>/dev/null || $(PY) -m pip install -q "triton==3.9.0"
	$(PY) -m pip install -q -e ".[test,bench,data,ray,onnx]"
	touch $(STAMP)

demo: setup
	$(PY) -m slimtriton.demo

test: setup
	$(PY) -m pytest -q

# Soak (not part of `make test`): random slim graphs and kernel shapes in float32/float16/bfloat16,
# poisoned buffers, repeated calls, NaN/Inf inputs against the reference, never derandomized, for
# MINUTES minutes; each failure is printed as a runnable reproducer (tests/fuzz/fuzzer.py).
MINUTES ?= 10
fuzz: setup
	$(PY) -m tests.fuzz --minutes $(MINUTES)

audit: setup
	$(VENV)/bin/slimtriton audit resnet_v1_50 --dtype float16 --arch 90

bench-fusion: setup
	$(PY) bench/fusion.py

bench-gpu: setup
	$(PY) bench/gpu.py

# On a GPU machine (no setup: its python3 already holds CUDA torch and triton; nothing is
# downloaded): GPU tests, audit, quick benchmarks, results to $$OUT or bench/results/.
gpu-check:
	bash bench/gpu_session.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
