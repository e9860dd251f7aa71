# session 6: FUSE_OPTIM=1 on the LoRA step (fp32, bf16) and on medium bf16, after this session's changes
# (.gpu/ is the git-ignored folder carried to the device: env.sh here, the tinygrad and rich wheels, a compile cache)
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
for dt in float32 bfloat16; do for f in 0 1; do echo -n "lora $dt FUSE_OPTIM=$f: "; MINIMAC_MATMUL_DTYPE=$dt FUSE_OPTIM=$f timeout 100 python3 results/h100/session6/lora_step.py small 2>&1 | tail -1; done; done
M="--preset medium --batch-size 8 --seq-len 512 --what train --only tinygrad --matmul-dtype bfloat16"
echo "medium bf16 FUSE_OPTIM=1"; FUSE_OPTIM=1 timeout 170 python3 benchmarks/bench_train.py $M --json $OUT/train_medium_tinygrad_bf16_fuse_optim.json 2>&1 | tail -1
