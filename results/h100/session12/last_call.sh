#!/bin/bash
# The short form of pair_and_probe.sh for a call with little device time: medium's restructure pair (before, after),
# then medium's decoding with and without the concatenated q/k/v and w1/w3 copies. Results under $OUT.
START=$SECONDS
SIDES='before after' bash results/h100/session12/restructure_pair_medium.sh
echo "pair done after $((SECONDS - START))s"
export PYTHONPATH=/tmp/site:$PWD DEV=CUDA PYTHONUNBUFFERED=1 NVRTC_PATH=$(find / -name 'libnvrtc.so*' -type f 2>/dev/null | grep -v stub | head -1)
END=$((START + 250))
p() { local left=$((END - SECONDS)); [ $left -lt 20 ] && { echo "skip $*"; return; }
  echo "=== $* ($left s left)" | tee -a $OUT/probe.txt; timeout $left python3 benchmarks/decode_kernels.py "$@" 2>&1 | grep -v Warn | tee -a $OUT/probe.txt; }
p --preset medium --top 25
p --preset medium --top 25 --set=decode_shared_inputs=1
echo "done after $((SECONDS - START))s"
