#!/bin/bash
# Issue 19's GPU pair: medium's bfloat16 training step before the restructure (6dd00a4, copied into .gpu_before) and
# now, tinygrad only, alternating in one call on one GPU (the same flags both sides). Results under $OUT.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl 2>/dev/null
export DEV=CUDA PYTHONUNBUFFERED=1 NVRTC_PATH=$(find / -name 'libnvrtc.so*' -type f 2>/dev/null | grep -v stub | head -1)
nvidia-smi --query-gpu=name --format=csv,noheader
A="--preset medium --batch-size 8 --seq-len 512 --what train --matmul-dtype bfloat16 --only tinygrad"
for side in ${SIDES:-before after before after}; do
  if [ $side = before ]; then P=/tmp/site:$PWD/.gpu_before; B=.gpu_before/benchmarks; else P=/tmp/site:$PWD; B=benchmarks; fi
  echo "=== $side"; PYTHONPATH=$P timeout 140 python3 $B/bench_train.py $A 2>&1 | grep -E "tinygrad  |compile" | tee -a $OUT/pair.txt
done
