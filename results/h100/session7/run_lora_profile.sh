# session 7: per-kernel GPU times of one LoRA step (small), float32 and bfloat16, JIT=2 (no CUDA graph) under DEBUG=2
source .gpu/env.sh
rm -f /tmp/tgc.db*; gunzip -c .gpu/tg_cache.db.gz > /tmp/tgc.db; export CACHEDB=/tmp/tgc.db
for dt in float32 bfloat16; do
  echo "== $dt"
  MINIMAC_MATMUL_DTYPE=$dt JIT=2 timeout 240 python3 benchmarks/profile_step.py --preset small --lora --top 2000 > $OUT/lora_profile_$dt.txt 2>&1
  head -45 $OUT/lora_profile_$dt.txt
  awk 'NR>2{n[$4]++; t[$4]+=$1} END{for(k in n) printf "%4d %7.3f %s\n", n[k], t[k], k}' $OUT/lora_profile_$dt.txt | sort -k2 -nr | head -40
done
gzip -c /tmp/tgc.db > $OUT/tg_cache.db.gz
