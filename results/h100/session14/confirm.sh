#!/bin/bash
# Issue 21 and 19, one call on one NVIDIA GPU, after session 14 turned the GPU decoding schedules on in the CUDA/NV
# rows (matvec_threads=32, wide_sum_threads=256, padded_window=1; decode_schedules.sh measured them off/on).
# 1. issue 19's pair: medium's bfloat16 training step before the restructure (6dd00a4, carried in .gpu_before) and
#    now with the new choices off (the restructure alone); 2. medium's decoding with the new default row against
#    PyTorch's loop; 3. training with the choices off and on (they also take training kernels of their shape);
#    4. a batch's attention sums a thread an output (symbolic_sum_threads, off in every row until this run);
#    4 decode steps a jit call; decode_shared_inputs; 5. where a batch of 8's step goes.
# Carry .whl and .gpu_before. Results in $OUT.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl 2>/dev/null
export DEV=CUDA PYTHONUNBUFFERED=1 NVRTC_PATH=$(find / -name 'libnvrtc.so*' -type f 2>/dev/null | grep -v stub | head -1)
OUT=${OUT:-results/gpu_confirm}; mkdir -p "$OUT" /tmp/json; LOG=$OUT/log.txt   # at most 8 files come back: JSONs in one tar
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$LOG"
OFF=matvec_threads=0,wide_sum_threads=0,padded_window=0
END=$((SECONDS + ${BUDGET:-540}))
left() { echo $((END - SECONDS)); }
train() {  # NAME PYTHONPATH BENCH_DIR CAPABILITIES ARGS...
  local name=$1 p=$2 b=$3 caps=$4; shift 4; local l=$(left); [ $l -lt 70 ] && { echo "skip $name" | tee -a "$LOG"; return; }
  echo "=== $name ($l s left) MINIMAC_CAPABILITIES=$caps" | tee -a "$LOG"
  MINIMAC_CAPABILITIES=$caps PYTHONPATH=$p timeout $((l < 150 ? l : 150)) python3 $b/bench_train.py "$@" 2>&1 \
    | grep -E "tinygrad|compile|LoRA" | tee -a "$LOG"
}
gen() {  # NAME CAPABILITIES ARGS...
  local name=$1 caps=$2; shift 2; local l=$(left); [ $l -lt 50 ] && { echo "skip $name" | tee -a "$LOG"; return; }
  echo "=== $name ($l s left) MINIMAC_CAPABILITIES=$caps" | tee -a "$LOG"
  MINIMAC_CAPABILITIES=$caps PYTHONPATH=/tmp/site:$PWD timeout $l python3 benchmarks/bench_generate.py \
    --json "/tmp/json/$name.json" "$@" 2>&1 | grep -v -i warn | tail -16 | tee -a "$LOG"
}
M="--preset medium --batch-size 8 --seq-len 512 --what train --matmul-dtype bfloat16 --only tinygrad"
S="--preset small --batch-size 16 --seq-len 256 --what ${SMALL_WHAT:-train lora} --matmul-dtype bfloat16 --only tinygrad"
train pair_before /tmp/site:$PWD/.gpu_before .gpu_before/benchmarks "" $M
train pair_after_off /tmp/site:$PWD benchmarks $OFF $M
gen medium_default "" --preset medium --new-tokens 128 --prefill 512
gen medium_symbolic symbolic_sum_threads=32 --preset medium --new-tokens 128 --skip-torch   # batch 8's attention sums
MINIMAC_DECODE_STEPS=4 gen medium_steps4 "" --preset medium --new-tokens 128 --skip-torch
MINIMAC_DECODE_STEPS=4 gen small_steps4 "" --preset small --new-tokens 128 --skip-torch
train small_off /tmp/site:$PWD benchmarks $OFF $S
train small_default /tmp/site:$PWD benchmarks "" $S
gen medium_shared decode_shared_inputs=1 --preset medium --new-tokens 128 --skip-torch
gen small_shared decode_shared_inputs=1 --preset small --new-tokens 128 --skip-torch
train medium_train_default /tmp/site:$PWD benchmarks "" $M
l=$(left); [ $l -gt 40 ] && PYTHONPATH=/tmp/site:$PWD timeout $l python3 benchmarks/decode_kernels.py --preset medium \
  --batch 8 --top 25 2>&1 | grep -v -i warn | tee "$OUT/medium_batch8_kernels.txt"
tar -C /tmp -cf "$OUT/json.tar" json
echo "done after ${SECONDS}s" | tee -a "$LOG"
