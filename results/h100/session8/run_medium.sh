# session 8, call D: medium bf16 training with gpu_tiles + dK stored before its transpose; PyTorch; then
# MINIMAC_GPU_TILES=0 (only the dK change)
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
b() { echo "== $1"; shift; timeout $T "$@" 2>&1 | tail -${N:-1}; }
M="--preset medium --batch-size 8 --seq-len 512 --what train --matmul-dtype bfloat16"
T=230 N=4 b "medium tinygrad bf16" python3 benchmarks/bench_train.py $M --only tinygrad --json $OUT/train_medium_tinygrad_bf16.json
T=90 N=4 b "medium torch bf16" python3 benchmarks/bench_train.py $M --only torch --json $OUT/train_medium_torch_bf16.json
MINIMAC_GPU_TILES=0 T=230 N=4 b "medium tinygrad bf16 MINIMAC_GPU_TILES=0" python3 benchmarks/bench_train.py $M --only tinygrad --json $OUT/train_medium_tinygrad_bf16_no_gpu_tiles.json
