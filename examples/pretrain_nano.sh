#!/usr/bin/env bash
# Pretrain `nano` for 5 minutes on the embedded corpus, then on the Gutenberg novels (needs the corpora: an offline
# mirror in MINIMAC_DATA, or a download), and print each run's held-out bits per byte and tokens/s.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m minimac.pretrain --preset nano --corpus default --minutes "${MINUTES:-5}" --out runs/nano-default --no-live
python -m minimac.pretrain --preset nano --corpus gutenberg --minutes "${MINUTES:-5}" --out runs/nano-gutenberg --no-live
for run in runs/nano-default runs/nano-gutenberg; do
  python -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[1], 'bits/byte', round(m['heldout_bits_per_byte'],3), 'tokens/s', round(m['tokens_per_s']))" "$run/metrics.json"
done
# carry on with the first run for 5 more minutes:  python -m minimac.pretrain --resume runs/nano-default --minutes 5
