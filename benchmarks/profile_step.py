"""Where a training step's time goes: every kernel of one jitted minimac training step, slowest first.

Runs three warm-up steps (compile + JIT capture), then one step under tinygrad's DEBUG=2, which prints each kernel's
name, time and GFLOPS; this script captures those lines and sums them. Kernel names encode the loop shape
(`r_` = has a reduction, `E_` = elementwise), which is usually enough to tell which layer a kernel belongs to.
The jits run with JIT=2 (no graphs: CUDA graphs, minimac.fast.cpu_graph), so that every kernel is launched and timed on
its own; the step's wall time is then longer than in training, and its kernel time the same.

    python benchmarks/profile_step.py --preset nano                      # the CPU here
    python benchmarks/profile_step.py --preset nano --lora               # one LoRA step of learn_from_text (8 x 64)
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

SLOW_GFLOPS = 5  # the floor for a CPU training step's kernels
LINE = re.compile(r"\*\*\* \S+\s+\d+\s+(\S+).*?tm\s+([\d.]+)(us|ms)/\s*[\d.]+ms \(\s*([\d.]+) GFLOPS")


def _capture(run) -> list[tuple[float, str, float]]:
    """Run `run()` under DEBUG=2 and return (ms, kernel name, GFLOPS) for every kernel it launched."""
    from tinygrad.helpers import Context

    log = io.StringIO()
    with contextlib.redirect_stdout(log), Context(DEBUG=2):
        run()
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.getvalue())
    return [(float(m.group(2)) / (1000 if m.group(3) == "us" else 1), m.group(1), float(m.group(4)))
            for m in LINE.finditer(text)]


def train_step_kernels(cfg, batch_size: int, seq_len: int) -> list[tuple[float, str, float]]:
    import numpy as np

    from minimac.model import Transformer
    from minimac.train import TrainConfig, Trainer

    rng = np.random.default_rng(0)
    shape = (batch_size, seq_len + 1)
    trainer = Trainer(Transformer(cfg), TrainConfig(batch_size=batch_size, seq_len=seq_len),
                      lambda step: rng.integers(0, cfg.vocab_size, shape))
    for _ in range(3):  # compile + JIT capture
        trainer.train_step(rng.integers(0, cfg.vocab_size, shape))
    return _capture(lambda: trainer.train_step(rng.integers(0, cfg.vocab_size, shape)))


def lora_step_kernels(cfg) -> list[tuple[float, str, float]]:
    """One step of ContinualLearner.learn_from_text, strategy "lora" (the learner's batch and seq_len 64)."""
    from minimac.learner import ContinualLearner
    from minimac.learner.strategies import LearnerConfig
    from minimac.model import Transformer
    from minimac.tokenizer import Tokenizer

    text = " ".join(f"Sentence number {i} says something new about the domain." for i in range(200))
    learner = ContinualLearner(Transformer(cfg), Tokenizer(), LearnerConfig(strategy="lora", seq_len=64))
    learner.learn_from_text(text, domain="warmup", steps=3)  # compile + JIT capture
    trainer = next(iter(learner._trainers.values()))
    step, rows = trainer.step, []

    def profiled(*a, **kw):  # only the jitted step itself, not the learner's evaluation before and after
        out = []
        rows.extend(_capture(lambda: out.append(step(*a, **kw))))
        return out[0]

    trainer.step = profiled
    try:
        learner.learn_from_text(text, domain="warmup", steps=1)
    finally:
        trainer.step = step
    return rows


def main(argv: list[str] | None = None) -> None:
    import minimac.fast
    minimac.fast.install()  # the same numbers, faster; MINIMAC_PLAIN=1 keeps the plain path
    from tinygrad.helpers import JIT

    from minimac.model import ModelConfig

    JIT.value = 2  # kernels one by one, each with its own DEBUG=2 line (a graph would run the batch as one)

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="nano")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--lora", action="store_true", help="profile a LoRA learn_from_text step instead")
    ap.add_argument("--top", type=int, default=20, help="kernels to list")
    args = ap.parse_args(argv)

    cfg = ModelConfig.from_preset(args.preset)
    if args.lora:
        rows, what = lora_step_kernels(cfg), "LoRA learn_from_text step"
    else:
        rows, what = train_step_kernels(cfg, args.batch_size, args.seq_len), f"batch {args.batch_size} x {args.seq_len}"
    total = sum(r[0] for r in rows)
    print(f"{args.preset}, {what}: {len(rows)} kernels, {total:.1f} ms of kernel time")
    print(f"{'ms':>8} {'share':>6} {'GFLOPS':>7}  kernel")
    for ms, name, gflops in sorted(rows, reverse=True)[:args.top]:
        print(f"{ms:8.2f} {100 * ms / total:5.1f}% {gflops:7.0f}  {name}")
    # The check that would have caught the subnormal attention probabilities (minimac/fast/fast_exp.py): on an Intel
    # CPU their matmuls ran at ~1 GFLOPS, half of a nano step. Kernels doing real arithmetic (>= 4 MFLOP) that slow
    # point at something of the machine's, not of the algorithm: subnormals, a spilled tile, oversubscribed threads.
    slow = [(ms, name, g) for ms, name, g in rows if g < SLOW_GFLOPS and ms * g * 1e6 >= 4e6]
    print(f"kernels of >= 4 MFLOP under {SLOW_GFLOPS} GFLOPS: {len(slow)}, {sum(r[0] for r in slow):.1f} ms "
          f"({100 * sum(r[0] for r in slow) / total:.1f}% of the step){' <- look at these' if slow else ''}")
    for ms, name, gflops in sorted(slow, reverse=True)[:5]:
        print(f"{ms:8.2f} {100 * ms / total:5.1f}% {gflops:7.1f}  {name}")


if __name__ == "__main__":
    main()
