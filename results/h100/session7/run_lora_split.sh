# session 7, call C: with SPLIT_OUTPUTS = 1 << 20, the LoRA update fp32 + bf16 (both frameworks), and small training
# in bf16 (tinygrad), which the limit should leave alone
# (.gpu/ is the git-ignored folder carried to the device: env.sh here, the tinygrad and rich wheels, a compile cache)
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
b() { echo "== $1"; shift; timeout $T "$@" 2>&1 | tail -${N:-1}; }
T=120 N=3 b "lora bf16" python3 benchmarks/bench_train.py --preset small --what lora --matmul-dtype bfloat16 --json $OUT/lora_small_bf16.json
T=120 N=3 b "lora fp32" python3 benchmarks/bench_train.py --preset small --what lora --json $OUT/lora_small.json
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
S="--preset small --batch-size 16 --seq-len 256 --what train"
T=150 b "small tinygrad bf16" python3 benchmarks/bench_train.py $S --only tinygrad --matmul-dtype bfloat16 --json $OUT/train_small_tinygrad_bf16.json
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
