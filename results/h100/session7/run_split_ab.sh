# session 7: split the sums of mid-sized matmuls too (SPLIT_OUTPUTS, then SKINNY_OUTPUTS, 65536 -> 1M, 4M): LoRA step alone, fp32 and bf16
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
for dt in bfloat16 float32; do
  for s in 65536 1048576 4194304; do
    echo "== $dt $s"; MINIMAC_MATMUL_DTYPE=$dt timeout 150 python3 results/h100/session7/lora_split.py small $s 2>&1 | tail -2
  done
done
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
