# session 6, final code on CUDA: LoRA step breakdown (host launch vs wait) in float32 and bfloat16
# (.gpu/ is the git-ignored folder carried to the device: env.sh here, the tinygrad and rich wheels, a compile cache)
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
for dt in float32 bfloat16; do echo "== $dt"; MINIMAC_MATMUL_DTYPE=$dt timeout 150 python3 results/h100/session6/lora_step_parts.py small 2>&1 | sed -n 2,5p; done
