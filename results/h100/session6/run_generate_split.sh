# session 6: does the skinny split slow cached decoding on the H100? generate, split on vs off (SKINNY_OUTPUTS=0)
# (.gpu/ is the git-ignored folder carried to the device: env.sh here, the tinygrad and rich wheels, a compile cache)
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
G="--preset small --what generate --only tinygrad"
echo "split on:"; timeout 120 python3 benchmarks/bench_train.py $G 2>&1 | tail -2
echo "split off:"; timeout 120 python3 -c "
import sys, runpy; import minimac.linear as L; L.SKINNY_OUTPUTS = 0
sys.argv = ['bench_train.py'] + '$G'.split(); runpy.run_path('benchmarks/bench_train.py', run_name='__main__')" 2>&1 | tail -2
