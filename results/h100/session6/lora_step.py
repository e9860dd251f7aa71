"""The jitted LoRA step of ContinualLearner alone, ms a step (four rounds of ten): python lora_step.py small"""
import sys, time
from minimac.learner import ContinualLearner
from minimac.model import Transformer, ModelConfig
from minimac.strategies import LearnerConfig
from minimac.tokenizer import Tokenizer
from minimac.mixing import chunk_ids, mixed_batch
cfg = ModelConfig.from_preset(sys.argv[1] if len(sys.argv) > 1 else "nano")
text = " ".join(f"Sentence number {i} says something new about the domain." for i in range(200))
learner = ContinualLearner(Transformer(cfg), Tokenizer(), LearnerConfig(strategy="lora", seq_len=64))
learner.learn_from_text(text, domain="w", steps=3)
tr = next(iter(learner._trainers.values()))
chunks = chunk_ids(learner.encode(text), 64)
x, y, w = mixed_batch(chunks[:8], [], 8, 64, 0.0)
best = []
for rep in range(4):
    t = time.perf_counter()
    for _ in range(10): tr.step(x, y, w, 1e-3)
    best.append((time.perf_counter() - t) / 10 * 1000)
print(" ".join(f"{b:.1f}" for b in best), "ms/step")
