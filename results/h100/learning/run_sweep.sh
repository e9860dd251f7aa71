#!/bin/bash
# Device call 1 (one H100): build the full-mode base once, then the sweep of adapter recipes and the references, one
# process per run, all at once on the one GPU; pooled with --merge. Run from the checkout root with .gpu_learning
# carried (a copy of minimac/, benchmarks/, the corpora in data/ and the tinygrad wheel in whl/).
cd .gpu_learning || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 DEV=CUDA MINIMAC_DATA=$PWD/data MINIMAC_CACHE=/tmp/mc
export NVRTC_PATH=$(find / -name 'libnvrtc.so*' -type f 2>/dev/null | grep -v stub | head -1)
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); echo "$GPU"; nproc
END=$((SECONDS + ${BUDGET:-555}))
mkdir -p /tmp/o
python3 - <<'PY' 2>&1 | tee /tmp/o/base.log
import sys; sys.path.insert(0, "benchmarks")
import forgetting as F
from minimac.base_cache import BaseSpec, cached_base
args = F.parse_args([]); plan = F.load_plan(args)
print(cached_base(BaseSpec(preset=args.preset, base_steps=args.base_steps), plan["base_docs"], list(plan["tok_docs"].values()))[0])
PY
BASE=$(ls -d /tmp/mc/base-tiny-* | head -1); echo "base $BASE after ${SECONDS}s"
run() {  # NAME ARGS...: one benchmark process in the background, stopped at the deadline
  local name=$1; shift
  timeout $((END - SECONDS)) python3 benchmarks/forgetting.py --base-folder "$BASE" --note "$GPU" --out /tmp/o/$name "$@" \
    > /tmp/o/$name.log 2>&1 &
}
. ./sweep_runs.sh
wait
echo "runs done after ${SECONDS}s"
python3 benchmarks/forgetting.py --merge $(ls -d /tmp/o/*/ | grep -v base) --out $OUT/sweep > /tmp/o/merge.log 2>&1
tail -40 /tmp/o/merge.log
tar czf $OUT/runs.tgz -C /tmp/o --exclude='*.png' .
tar czf - -C /tmp/mc "$(basename $BASE)" | split -b 15M - $OUT/base.tgz.part-
ls -la $OUT $OUT/sweep
