# session 9: the readable-core restructure (minimac/fast/), before (6dd00a4, copied to .gpu_main/before) and after
# (the working tree), small and medium bf16 training and the small LoRA update, both sides in this one call
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONUNBUFFERED=1 DEV=CUDA
export NVRTC_PATH=$(find / -name 'libnvrtc.so*' -type f 2>/dev/null | grep -v stub | head -1)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
S="--preset small --batch-size 16 --seq-len 256 --what train --matmul-dtype bfloat16 --only tinygrad"
L="--preset small --what lora --matmul-dtype bfloat16 --only tinygrad"
M="--preset medium --batch-size 8 --seq-len 512 --what train --matmul-dtype bfloat16 --only tinygrad"
run() {  # side name args...
  local side=$1 name=$2; shift 2
  local dir=$PWD; [ "$side" = before ] && dir=$PWD/.gpu_main/before
  echo "== $name $side"
  (cd "$dir" && PYTHONPATH=/tmp/site:$dir timeout ${T:-150} python3 benchmarks/bench_train.py "$@" --json $OUT/${name}_${side}.json 2>&1 | tail -${N:-3})
}
for side in after before; do T=150 run $side small $S; done
for side in before after; do T=120 run $side lora $L; done
for side in after before; do T=170 run $side medium $M; done
