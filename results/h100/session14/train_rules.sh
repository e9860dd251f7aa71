#!/bin/bash
# Issue 21, a short call on one NVIDIA GPU: does a bfloat16 training step of small change with the GPU sum rules of
# minimac/fast/gpu_sums.py (on in the CUDA/NV rows since session 14; they take training's kernels of their shape too:
# the loss's mean, the gradient norm's sums, LoRA's dA)? Off, on, off, on, tinygrad only. Carry .whl. Log in $OUT.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD DEV=CUDA PYTHONUNBUFFERED=1
export NVRTC_PATH=$(find / -name 'libnvrtc.so*' -type f 2>/dev/null | grep -v stub | head -1)
OUT=${OUT:-results/gpu_train_rules}; mkdir -p "$OUT"; LOG=$OUT/train_rules.txt
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$LOG"
OFF=matvec_threads=0,wide_sum_threads=0,padded_window=0
S="--preset small --batch-size 16 --seq-len 256 --what ${WHAT:-train} --matmul-dtype bfloat16 --only tinygrad"
END=$((SECONDS + ${BUDGET:-300}))
for caps in $OFF "" $OFF ""; do left=$((END - SECONDS)); [ $left -lt 50 ] && break
  echo "=== MINIMAC_CAPABILITIES=$caps ($left s left)" | tee -a "$LOG"
  MINIMAC_CAPABILITIES=$caps timeout $left python3 benchmarks/bench_train.py $S 2>&1 | grep -E "tinygrad|compile|LoRA" \
    | tee -a "$LOG"
done
echo "done after ${SECONDS}s" | tee -a "$LOG"
