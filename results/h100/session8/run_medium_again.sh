# session 8, call F: the committed code (93b8405): medium bf16 training once more, tinygrad then PyTorch, each in its
# own process (PyTorch's figure moved by 30% between calls)
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
b() { echo "== $1"; shift; timeout $T "$@" 2>&1 | tail -${N:-1}; }
M="--preset medium --batch-size 8 --seq-len 512 --what train --matmul-dtype bfloat16"
T=260 N=4 b "medium tinygrad bf16" python3 benchmarks/bench_train.py $M --only tinygrad --json $OUT/train_medium_tinygrad_bf16_again.json
T=90 N=4 b "medium torch bf16" python3 benchmarks/bench_train.py $M --only torch --json $OUT/train_medium_torch_bf16_again.json
T=90 N=4 b "medium torch bf16, second process" python3 benchmarks/bench_train.py $M --only torch --json $OUT/train_medium_torch_bf16_again2.json
