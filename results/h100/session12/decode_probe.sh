#!/bin/bash
# Issue 21: where a GPU decoding step's time goes (kernel by kernel), and what tinygrad's BEAM search makes of the
# decoding kernels; small and medium, one call on one GPU. Results under $OUT.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD DEV=CUDA PYTHONUNBUFFERED=1 NVRTC_PATH=$(find / -name 'libnvrtc.so*' -type f 2>/dev/null | grep -v stub | head -1)
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
END=$((SECONDS + 440))
p() { local left=$((END - SECONDS)); [ $left -lt 20 ] && { echo "skip $*"; return; }
  echo "=== $* ($left s left)"; timeout $left python3 benchmarks/decode_kernels.py "$@" 2>&1 | grep -v Warn | tee -a $OUT/probe.txt; }
S=--set=decode_shared_inputs=1
p --preset medium --top 25 --prefill 512
p --preset medium --top 25 $S
p --preset small --top 12
p --preset small --top 12 $S
p --preset small --batch 8 --top 12
p --preset small --batch 8 --top 12 --set=decode_batch_transposed=1
p --preset medium --beam 2 --top 25 $S
echo "done after ${SECONDS}s"
