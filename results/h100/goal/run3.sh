#!/bin/bash
# Device call 3 of the goal issue (one GPU), run from the repository root with .gpu_learning carried (its data/, the
# cached full-mode tiny base and the tinygrad wheel): three seeds of today's default (LearnerConfig(): r 16 + a rank-96
# embedding delta, no output bias; spelled out so the runs do not depend on the checkout), the four brain-inspired
# controllers with that default as their baseline (seed 0), and fact recall (--full) with it. All processes run at
# once on the one GPU; the experts and the joint fine-tune (seeds 0-2) are reused from results/h100/learning/final.
L=$PWD/.gpu_learning
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 DEV=CUDA MINIMAC_DATA=$L/data MINIMAC_CACHE=/tmp/mc
export NVRTC_PATH=$(find / -name 'libnvrtc.so*' -type f 2>/dev/null | grep -v stub | head -1)
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); echo "$GPU"; nproc; git log --oneline -1 2>/dev/null
END=$((SECONDS + ${BUDGET:-470}))
mkdir -p /tmp/mc /tmp/o && cp -r $L/base/base-tiny-59bf1cf918d1 /tmp/mc/
BASE=/tmp/mc/base-tiny-59bf1cf918d1
run() {  # NAME ARGS...: one forgetting-benchmark process in the background, stopped at the deadline
  local name=$1; shift
  timeout $((END - SECONDS)) python3 benchmarks/forgetting.py --base-folder "$BASE" --note "$GPU" --out /tmp/o/$name "$@" \
    > /tmp/o/$name.log 2>&1 &
}
N="r=16,embedding_r=96,output_bias=false,use_rslora=true,lora_alpha=16,loraplus_lr_ratio=16,lr_schedule=cosine,warmup_ratio=0.05,min_lr_ratio=0.1,route_margin=0.05,route_windows=4,learning_rate=0.0005"
for s in 0 1 2; do
  run a_n_$s --strategies adapter-per-domain --seeds $s --set $N --tag ""
done
for n in autonomous_lr neuromodulation hippocampus sleep; do
  run n_$n --strategies "" --neuro $n --neuro-strategy adapter-per-domain --seeds 0 --set $N --tag ""
done
timeout $((END - SECONDS)) python3 benchmarks/facts.py --full --strategies adapter-per-domain --out /tmp/o/f_n --set $N \
  --tag "default" > /tmp/o/f_n.log 2>&1 &
wait
echo "runs done after ${SECONDS}s"
python3 benchmarks/forgetting.py --merge $(ls -d /tmp/o/[an]_*/) --out $OUT/final3 > /tmp/o/merge.log 2>&1
tail -12 /tmp/o/merge.log
tar czf $OUT/runs.tgz -C /tmp/o --exclude='*.png' .
ls -la $OUT
