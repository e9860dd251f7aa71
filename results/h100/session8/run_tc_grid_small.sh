# session 8, call A: tensor-core schedules for the medium bf16 step's matmul kernels (grid of upcast/local/unroll)
source .gpu/env.sh
# (.gpu/tc_search.py was the first version of benchmarks/tc_search.py: grid "big" is its GRID; grid "small" was up N, M in {2, 4}, LOCAL N in {1, 2, 4}, LOCAL M in {1, 2}, UNROLL K in {1, 2})
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
timeout 560 python3 .gpu/tc_search.py --preset medium --batch-size 8 --seq-len 512 --grid small --json $OUT/tc_medium.json 2>&1 | tail -40
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
