#!/bin/bash
# One call: issue 19's medium pair (restructure_pair_medium.sh), then as much of issue 21's decoding probe
# (benchmarks/decode_kernels.py with each decoding copy on and off) as the call's time allows. Results under $OUT.
START=$SECONDS
SIDES='before after before' bash results/h100/session12/restructure_pair_medium.sh
echo "pair done after $((SECONDS - START))s"
export PYTHONPATH=/tmp/site:$PWD DEV=CUDA PYTHONUNBUFFERED=1 NVRTC_PATH=$(find / -name 'libnvrtc.so*' -type f 2>/dev/null | grep -v stub | head -1)
END=$((START + 380))
p() { local left=$((END - SECONDS)); [ $left -lt 20 ] && { echo "skip $*"; return; }
  echo "=== $* ($left s left)" | tee -a $OUT/probe.txt; timeout $left python3 benchmarks/decode_kernels.py "$@" 2>&1 | grep -v Warn | tee -a $OUT/probe.txt; }
S=--set=decode_shared_inputs
p --preset medium --top 25 --prefill 512
p --preset medium --top 25 $S=1
p --preset small --top 12
p --preset small --top 12 $S=1
p --preset small --batch 8 --top 12
p --preset small --batch 8 --top 12 --set=decode_batch_transposed=1
p --preset small --batch 8 --top 12 $S=1
echo "done after $((SECONDS - START))s"
