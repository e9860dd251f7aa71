# session 6: the skinny split gated on TRAINING: LoRA step (bf16) and cached generation
# (.gpu/ is the git-ignored folder carried to the device: env.sh here, the tinygrad and rich wheels, a compile cache)
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
echo -n "lora step bf16: "; MINIMAC_MATMUL_DTYPE=bfloat16 timeout 120 python3 .gpu/ab.py small 2>&1 | tail -1
echo -n "lora step fp32: "; timeout 120 python3 .gpu/ab.py small 2>&1 | tail -1
timeout 120 python3 benchmarks/bench_train.py --preset small --what generate --only tinygrad 2>&1 | tail -1
