#!/bin/sh
# Issue 16's GPU run, as one command on a lent H200 (the device tool's `run`, which starts
# in the repository root and collects $OUT). That machine's image has JAX with CUDA,
# formulaic, numba, scipy and pandas, but not nlopt: carry its wheel (see
# benchmarks/README.md, "On a GPU") in .whl and name .whl in the call's `carry`.
#
#   1. one evaluation of the all-movies shape (84,432-wide block, 57 GB on the device);
#   2. the whole fit of the 16,034-movie shape (MixedModels.jl: 1,945 s on 16 threads).
set -e
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.95
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import jax; print(jax.__version__, jax.devices())"
python3 benchmarks/bench_wide.py --shape 1-20 --device gpu --evaluation --out "$OUT/gpu_wide.jsonl"
python3 benchmarks/bench_wide.py --shape 50-80 --device gpu --fit --out "$OUT/gpu_wide.jsonl"
