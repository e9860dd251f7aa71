# session 8, call E: with gpu_tiles + dK stored: small bf16 training (both frameworks), the LoRA update in bf16 and
# fp32 (both frameworks), and PyTorch's medium bf16 step once more (its figure moves between calls)
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
b() { echo "== $1"; shift; timeout $T "$@" 2>&1 | tail -${N:-1}; }
S="--preset small --batch-size 16 --seq-len 256 --what train --matmul-dtype bfloat16"
T=150 N=4 b "small tinygrad bf16" python3 benchmarks/bench_train.py $S --only tinygrad --json $OUT/train_small_tinygrad_bf16.json
T=60 N=4 b "small torch bf16" python3 benchmarks/bench_train.py $S --only torch --json $OUT/train_small_torch_bf16.json
T=150 N=4 b "lora bf16" python3 benchmarks/bench_train.py --preset small --what lora --matmul-dtype bfloat16 --json $OUT/lora_small_bf16.json
T=150 N=4 b "lora fp32" python3 benchmarks/bench_train.py --preset small --what lora --json $OUT/lora_small.json
T=60 N=4 b "medium torch bf16" python3 benchmarks/bench_train.py --preset medium --batch-size 8 --seq-len 512 --what train --matmul-dtype bfloat16 --only torch --json $OUT/train_medium_torch_bf16_run2.json
