#!/bin/bash
# Device call 2 (one H100): the final full-mode table, three seeds, on the base built in call 1 (carried in
# .gpu_learning/base). One process per run, all at once on the one GPU; pooled with --merge.
cd .gpu_learning || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 DEV=CUDA MINIMAC_DATA=$PWD/data MINIMAC_CACHE=/tmp/mc
export NVRTC_PATH=$(find / -name 'libnvrtc.so*' -type f 2>/dev/null | grep -v stub | head -1)
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); echo "$GPU"; nproc
END=$((SECONDS + ${BUDGET:-540}))
BASE=$PWD/base/base-tiny-59bf1cf918d1; ls $BASE || exit 1
mkdir -p /tmp/o
run() {  # NAME ARGS...: one benchmark process in the background, stopped at the deadline
  local name=$1; shift
  timeout $((END - SECONDS)) python3 benchmarks/forgetting.py --base-folder "$BASE" --note "$GPU" --out /tmp/o/$name "$@" \
    > /tmp/o/$name.log 2>&1 &
}
. ./final_runs.sh
wait
echo "runs done after ${SECONDS}s"
python3 benchmarks/forgetting.py --merge $(ls -d /tmp/o/*/) --out $OUT/final > /tmp/o/merge.log 2>&1
tail -5 /tmp/o/merge.log
tar czf $OUT/runs.tgz -C /tmp/o --exclude='*.png' .
ls -la $OUT $OUT/final
