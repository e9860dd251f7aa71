# session 7, call D: the LoRA update again, bf16 then fp32 (tinygrad only), to see how much it moves between calls

# (.gpu/ is the git-ignored folder carried to the device: env.sh here, the tinygrad and rich wheels, a compile cache)
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
b() { echo "== $1"; shift; timeout $T "$@" 2>&1 | tail -${N:-1}; }
T=120 N=3 b "lora bf16" python3 benchmarks/bench_train.py --preset small --what lora --matmul-dtype bfloat16 --json $OUT/lora_small_bf16_run2.json
T=120 N=3 b "lora fp32" python3 benchmarks/bench_train.py --preset small --what lora --json $OUT/lora_small_run2.json
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
