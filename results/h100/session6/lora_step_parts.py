"""Where a LoRA learn_from_text step's wall time goes: set_lr, writing the inputs, launching the jit, waiting for the GPU."""
import sys, time, os
import numpy as np
from tinygrad import Tensor, Device
from minimac.learner import ContinualLearner
from minimac.model import Transformer, ModelConfig
from minimac.strategies import LearnerConfig
from minimac.tokenizer import Tokenizer
from minimac.mixing import chunk_ids, mixed_batch
preset = sys.argv[1] if len(sys.argv) > 1 else "nano"
cfg = ModelConfig.from_preset(preset)
text = " ".join(f"Sentence number {i} says something new about the domain." for i in range(200))
learner = ContinualLearner(Transformer(cfg), Tokenizer(), LearnerConfig(strategy="lora", seq_len=64))
t0 = time.perf_counter(); learner.learn_from_text(text, domain="w", steps=3); print("warmup", time.perf_counter() - t0)
tr = next(iter(learner._trainers.values()))
ids = learner.encode(text); chunks = chunk_ids(ids, 64)
x, y, w = mixed_batch(chunks[:8], [], 8, 64, 0.0)
def sync(): Device[Device.DEFAULT].synchronize()
for rep in range(3):
    T = {"set_lr": 0, "inputs": 0, "jit": 0, "sync_numpy": 0}
    n = 20
    for _ in range(n):
        a = time.perf_counter(); tr.set_lr(1e-3); b = time.perf_counter()
        tx, ty, tw = tr._inputs(x, y, w); c = time.perf_counter()
        out = tr.jit(tx, ty, tw); d = time.perf_counter()
        out.numpy(); e = time.perf_counter()
        T["set_lr"] += b - a; T["inputs"] += c - b; T["jit"] += d - c; T["sync_numpy"] += e - d
    print({k: f"{1000 * v / n:.1f} ms" for k, v in T.items()}, "total", f"{1000 * sum(T.values()) / n:.1f} ms/step")
t0 = time.perf_counter(); r = learner.learn_from_text(text, domain="w", steps=40); dt = time.perf_counter() - t0
print("learn_from_text 40 steps", f"{dt:.2f}s", f"step_seconds {r['step_seconds']:.2f}", f"{1000 * r['step_seconds'] / 40:.1f} ms/step")
import cProfile, pstats
pr = cProfile.Profile(); pr.enable(); learner.learn_from_text(text, domain="w", steps=20); pr.disable()
pstats.Stats(pr).sort_stats("cumulative").print_stats(25)
