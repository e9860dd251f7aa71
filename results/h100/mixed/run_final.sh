# final code: set_matmul_dtype sets TC_OPT; small bf16 + fp32 + torch, medium fp32 + bf16, LoRA fp32 + bf16
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
S="--preset small --batch-size 16 --seq-len 256 --what train"
M="--preset medium --batch-size 8 --seq-len 512 --what train"
b() { echo "== $1"; shift; timeout $T "$@" 2>&1 | tail -${N:-1}; }
T=120 b "small tinygrad bf16" python3 benchmarks/bench_train.py $S --only tinygrad --matmul-dtype bfloat16 --json $OUT/train_small_tinygrad_bf16.json
T=60 b "small torch bf16" python3 benchmarks/bench_train.py $S --only torch --matmul-dtype bfloat16 --json $OUT/train_small_torch_bf16.json
T=120 b "small tinygrad fp32" python3 benchmarks/bench_train.py $S --only tinygrad --json $OUT/train_small_tinygrad.json
T=60 b "small torch fp32" python3 benchmarks/bench_train.py $S --only torch --json $OUT/train_small_torch.json
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
T=120 N=2 b "lora bf16" python3 benchmarks/bench_train.py --preset small --what lora --matmul-dtype bfloat16 --json $OUT/lora_small_bf16.json
T=120 N=2 b "lora fp32" python3 benchmarks/bench_train.py --preset small --what lora --json $OUT/lora_small.json
T=150 b "medium tinygrad bf16" python3 benchmarks/bench_train.py $M --only tinygrad --matmul-dtype bfloat16 --json $OUT/train_medium_tinygrad_bf16.json
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
T=200 b "medium tinygrad fp32" python3 benchmarks/bench_train.py $M --only tinygrad --json $OUT/train_medium_tinygrad.json
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
