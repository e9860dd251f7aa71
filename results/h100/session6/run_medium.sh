# session 6 final, call B: medium train bf16 + fp32 (both frameworks)
# (.gpu/ is the git-ignored folder carried to the device: env.sh here, the tinygrad and rich wheels, a compile cache)
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
M="--preset medium --batch-size 8 --seq-len 512 --what train"
b() { echo "== $1"; shift; timeout $T "$@" 2>&1 | tail -${N:-1}; }
T=170 b "medium tinygrad bf16" python3 benchmarks/bench_train.py $M --only tinygrad --matmul-dtype bfloat16 --json $OUT/train_medium_tinygrad_bf16.json
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
T=60 b "medium torch bf16" python3 benchmarks/bench_train.py $M --only torch --matmul-dtype bfloat16 --json $OUT/train_medium_torch_bf16.json
T=60 b "medium torch fp32" python3 benchmarks/bench_train.py $M --only torch --json $OUT/train_medium_torch.json
T=230 b "medium tinygrad fp32" python3 benchmarks/bench_train.py $M --only tinygrad --json $OUT/train_medium_tinygrad.json
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
