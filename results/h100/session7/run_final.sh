# session 7, call E, final code: the LoRA update in bf16 and fp32 (both frameworks), medium training in bf16 (each
# framework in its own process)
# (.gpu/ is the git-ignored folder carried to the device: env.sh here, the tinygrad and rich wheels, a compile cache)
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
b() { echo "== $1"; shift; timeout $T "$@" 2>&1 | tail -${N:-1}; }
T=120 N=3 b "lora bf16" python3 benchmarks/bench_train.py --preset small --what lora --matmul-dtype bfloat16 --json $OUT/lora_small_bf16_final.json
T=120 N=3 b "lora fp32" python3 benchmarks/bench_train.py --preset small --what lora --json $OUT/lora_small_final.json
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
M="--preset medium --batch-size 8 --seq-len 512 --what train --matmul-dtype bfloat16"
T=240 b "medium tinygrad bf16" python3 benchmarks/bench_train.py $M --only tinygrad --json $OUT/train_medium_tinygrad_bf16.json
T=90 b "medium torch bf16" python3 benchmarks/bench_train.py $M --only torch --json $OUT/train_medium_torch_bf16.json
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
