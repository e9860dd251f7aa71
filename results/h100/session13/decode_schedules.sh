#!/bin/bash
# Issue 21, one call on one NVIDIA GPU: do the decoding choices that are off in devices.py's CUDA row pay on a GPU?
# ON = the GPU schedules of minimac/fast/gpu_sums.py (a block of 32 threads an output row for the matrix-vector
# products, about sqrt(length) threads for the argmax and softmax sums) and fast/attention.py's padded window.
# `python benchmarks/decode_kernels.py --preset medium --target sm_90 [--set ...]` lists the kernels either way without
# a GPU. Alternating off/on with bench_generate (PyTorch's loop in the same process), then the kernels timed one by one.
# Carry .whl; results under $OUT. Run from the repository root; a second call repeats it (BUDGET=seconds).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD DEV=CUDA PYTHONUNBUFFERED=1
export NVRTC_PATH=$(find / -name 'libnvrtc.so*' -type f 2>/dev/null | grep -v stub | head -1)
OUT=${OUT:-results/gpu_decode}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/gpu.txt"
ON=matvec_threads=32,wide_sum_threads=256,padded_window=1
SHARED=$ON,decode_shared_inputs=1   # and the CPU's q/k/v, w1/w3 concatenation: medium 177 -> 165 kernels a token
END=$((SECONDS + ${BUDGET:-540}))
b() {  # NAME CAPABILITIES ARGS...: one bench_generate run, stopped at the deadline
  local name=$1 caps=$2; shift 2; local left=$((END - SECONDS)); [ $left -lt 30 ] && { echo "skip $name"; return; }
  echo "=== $name ($left s left) MINIMAC_CAPABILITIES=$caps"
  MINIMAC_CAPABILITIES=$caps timeout $left python3 benchmarks/bench_generate.py --json "$OUT/$name.json" "$@" 2>&1 \
    | grep -v Warn | tail -16 | tee "$OUT/$name.txt"
}
b medium_off "" --preset medium --new-tokens 128 --prefill 512
b medium_on $ON --preset medium --new-tokens 128 --prefill 512
b medium_shared $SHARED --preset medium --new-tokens 128 --skip-torch
b small_off "" --preset small --new-tokens 128 --prefill 512
b small_on $ON --preset small --new-tokens 128 --prefill 512
b small_shared $SHARED --preset small --new-tokens 128 --skip-torch
b medium_off2 "" --preset medium --new-tokens 128 --skip-torch
left=$((END - SECONDS))
[ $left -gt 40 ] && MINIMAC_CAPABILITIES=$ON timeout $left python3 benchmarks/decode_kernels.py --preset medium --top 25 \
  2>&1 | grep -v Warn | tee "$OUT/medium_on_kernels.txt"
# the rules take training's kernels of their shape too (the loss's mean, the gradient norm's sums, LoRA's dA)
T="--preset small --batch-size 16 --seq-len 256 --what train lora --matmul-dtype bfloat16 --only tinygrad"
for caps in "" $ON; do left=$((END - SECONDS)); [ $left -lt 60 ] && break
  echo "=== train MINIMAC_CAPABILITIES=$caps" | tee -a "$OUT/train.txt"
  MINIMAC_CAPABILITIES=$caps timeout $left python3 benchmarks/bench_train.py $T 2>&1 | grep -E "tinygrad|compile|LoRA" \
    | tee -a "$OUT/train.txt"
done
echo "done after ${SECONDS}s"
