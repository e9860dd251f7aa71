#!/bin/bash
# Device call 1 of the goal branch (one GPU): the embedding / output-bias sweep (adapter-per-domain, seed 0), the
# neuro controllers on the default, and fact recall (--full), one process per run, all at once, on the cached base.
cd .gpu_goal || exit 1
L=$PWD/../.gpu_learning
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $L/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 DEV=CUDA MINIMAC_DATA=$L/data MINIMAC_CACHE=/tmp/mc
export NVRTC_PATH=$(find / -name 'libnvrtc.so*' -type f 2>/dev/null | grep -v stub | head -1)
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); echo "$GPU"; nproc
END=$((SECONDS + ${BUDGET:-535}))
mkdir -p /tmp/mc /tmp/o && cp -r $L/base/base-tiny-59bf1cf918d1 /tmp/mc/
BASE=/tmp/mc/base-tiny-59bf1cf918d1
run() {  # NAME ARGS...: one forgetting-benchmark process in the background, stopped at the deadline
  local name=$1; shift
  timeout $((END - SECONDS)) python3 benchmarks/forgetting.py --base-folder "$BASE" --note "$GPU" --out /tmp/o/$name "$@" \
    > /tmp/o/$name.log 2>&1 &
}
facts() {  # NAME ARGS...: one fact-recall process (full mode: the same cached base through MINIMAC_CACHE)
  local name=$1; shift
  timeout $((END - SECONDS)) python3 benchmarks/facts.py --full --strategies adapter-per-domain --out /tmp/o/$name "$@" \
    > /tmp/o/$name.log 2>&1 &
}
. ./runs1.sh
wait
echo "runs done after ${SECONDS}s"
python3 benchmarks/forgetting.py --merge $(ls -d /tmp/o/[an]_*/) --out $OUT/sweep2 > /tmp/o/merge.log 2>&1
tail -12 /tmp/o/merge.log
tar czf $OUT/runs.tgz -C /tmp/o --exclude='*.png' .
ls -la $OUT
