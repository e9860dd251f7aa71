# session 6 final, call A: small train fp32 + bf16 (both frameworks), LoRA fp32 + bf16
# (.gpu/ is the git-ignored folder carried to the device: env.sh here, the tinygrad and rich wheels, a compile cache)
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
S="--preset small --batch-size 16 --seq-len 256 --what train"
b() { echo "== $1"; shift; timeout $T "$@" 2>&1 | tail -${N:-1}; }
T=120 b "small tinygrad bf16" python3 benchmarks/bench_train.py $S --only tinygrad --matmul-dtype bfloat16 --json $OUT/train_small_tinygrad_bf16.json
T=60 b "small torch bf16" python3 benchmarks/bench_train.py $S --only torch --matmul-dtype bfloat16 --json $OUT/train_small_torch_bf16.json
T=120 b "small tinygrad fp32" python3 benchmarks/bench_train.py $S --only tinygrad --json $OUT/train_small_tinygrad.json
T=60 b "small torch fp32" python3 benchmarks/bench_train.py $S --only torch --json $OUT/train_small_torch.json
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
T=100 N=3 b "lora fp32" python3 benchmarks/bench_train.py --preset small --what lora --json $OUT/lora_small.json
T=100 N=3 b "lora bf16" python3 benchmarks/bench_train.py --preset small --what lora --matmul-dtype bfloat16 --json $OUT/lora_small_bf16.json
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
