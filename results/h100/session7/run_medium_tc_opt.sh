# session 7, call F: medium bf16 training (tinygrad only) under tinygrad's TC_OPT=0 (default), 1 and 2
# (.gpu/ is the git-ignored folder carried to the device: env.sh here, the tinygrad and rich wheels, a compile cache)
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
b() { echo "== $1"; shift; timeout $T "$@" 2>&1 | tail -${N:-1}; }
M="--preset medium --batch-size 8 --seq-len 512 --what train --matmul-dtype bfloat16 --only tinygrad"
for tc in 1 2 0; do
  TC_OPT=$tc T=200 b "medium tinygrad bf16 TC_OPT=$tc" python3 benchmarks/bench_train.py $M --json $OUT/train_medium_tinygrad_bf16_tc_opt$tc.json
done
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
