# session 8, call C: with dK stored before its transpose; a grid of larger tensor-core register tiles (upcast N in
# {4, 8}, M in {2, 4, 8}, locals 1x1 or 2x2, global axes swapped or not) on every TC kernel of the medium bf16 step
# (.gpu/tc_search.py was the first version of benchmarks/tc_search.py: grid "big" is its GRID; grid "small" was up N, M in {2, 4}, LOCAL N in {1, 2, 4}, LOCAL M in {1, 2}, UNROLL K in {1, 2})
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
timeout 575 python3 .gpu/tc_search.py --preset medium --batch-size 8 --seq-len 512 --grid big --json $OUT/tc_grid_big.json 2>&1 | grep -v "^\s*$" | tail -40
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
