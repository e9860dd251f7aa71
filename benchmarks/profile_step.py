"""Where a training step's time goes: every kernel of one jitted minimac training step, slowest first.

Runs three warm-up steps (compile + JIT capture), then one step under tinygrad's DEBUG=2, which prints each kernel's
name, time and GFLOPS; this script captures those lines and sums them. Kernel names encode the loop shape
(`r_` = has a reduction, `E_` = elementwise), which is usually enough to tell which layer a kernel belongs to.

    python benchmarks/profile_step.py --preset nano                      # the CPU here
    DEV=CUDA python benchmarks/profile_step.py --preset small --batch-size 16 --seq-len 256 --top 30
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

LINE = re.compile(r"\*\*\* \S+\s+\d+\s+(\S+).*?tm\s+([\d.]+)(us|ms)/\s*[\d.]+ms \(\s*([\d.]+) GFLOPS")


def main(argv: list[str] | None = None) -> None:
    import numpy as np
    from tinygrad.helpers import Context

    from minimac.model import ModelConfig, Transformer
    from minimac.train import TrainConfig, Trainer

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="nano")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--top", type=int, default=20, help="kernels to list")
    args = ap.parse_args(argv)

    cfg = ModelConfig.from_preset(args.preset)
    rng = np.random.default_rng(0)
    shape = (args.batch_size, args.seq_len + 1)
    trainer = Trainer(Transformer(cfg), TrainConfig(batch_size=args.batch_size, seq_len=args.seq_len),
                      lambda step: rng.integers(0, cfg.vocab_size, shape))
    for _ in range(3):
        trainer.train_step(rng.integers(0, cfg.vocab_size, shape))
    log = io.StringIO()
    with contextlib.redirect_stdout(log), Context(DEBUG=2):
        trainer.train_step(rng.integers(0, cfg.vocab_size, shape))
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.getvalue())
    rows = []
    for m in LINE.finditer(text):
        ms = float(m.group(2)) / (1000 if m.group(3) == "us" else 1)
        rows.append((ms, m.group(1), float(m.group(4))))
    total = sum(r[0] for r in rows)
    print(f"{args.preset}, batch {args.batch_size} x {args.seq_len}: {len(rows)} kernels, {total:.1f} ms of kernel time")
    print(f"{'ms':>8} {'share':>6} {'GFLOPS':>7}  kernel")
    for ms, name, gflops in sorted(rows, reverse=True)[:args.top]:
        print(f"{ms:8.2f} {100 * ms / total:5.1f}% {gflops:7.0f}  {name}")


if __name__ == "__main__":
    main()
