#!/bin/bash
# The decoding figures of docs/performance.md for one NVIDIA GPU, in one call: small and medium at batch 1 and 8, with
# an adapter, a 512-token prefill, PyTorch's KV-cache loop in the same process; then 1 against 4 decode steps per jit
# call (minimac/fast/devices.py: decode_steps_per_call). Run from the repository root with tinygrad and torch
# installed; results go to $OUT (default ./results/gpu_decode). Sequential: one GPU, one benchmark at a time.
export DEV=${DEV:-CUDA} PYTHONUNBUFFERED=1
OUT=${OUT:-results/gpu_decode}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/gpu.txt"
END=$((SECONDS + ${BUDGET:-280}))
b() {  # NAME ARGS...: one bench_generate run, stopped at the deadline
  local name=$1; shift; local left=$((END - SECONDS)); [ $left -lt 15 ] && { echo "skip $name"; return; }
  echo "=== $name ($left s left)"
  timeout $left python3 benchmarks/bench_generate.py --json "$OUT/$name.json" "$@" 2>&1 | tail -16 | tee "$OUT/$name.txt"
}
MINIMAC_DECODE_STEPS=4 b medium_k4 --preset medium --new-tokens 128 --prefill 512
MINIMAC_DECODE_STEPS=4 b small_k4 --preset small --new-tokens 128 --prefill 512
MINIMAC_DECODE_STEPS=1 b small_k1 --preset small --new-tokens 128 --prefill 512 --repeats 2
MINIMAC_DECODE_STEPS=1 b medium_k1 --preset medium --new-tokens 128 --prefill 512 --repeats 2
echo "done after ${SECONDS}s"
