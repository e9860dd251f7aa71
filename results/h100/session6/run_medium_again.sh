# session 6, final code: medium bf16 again, both frameworks (a second pair for the ratio)
# (.gpu/ is the git-ignored folder carried to the device: env.sh here, the tinygrad and rich wheels, a compile cache)
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
M="--preset medium --batch-size 8 --seq-len 512 --what train --matmul-dtype bfloat16"
timeout 170 python3 benchmarks/bench_train.py $M --only tinygrad --json $OUT/train_medium_tinygrad_bf16_run2.json 2>&1 | tail -1
timeout 60 python3 benchmarks/bench_train.py $M --only torch --json $OUT/train_medium_torch_bf16_run2.json 2>&1 | tail -1
