"""LoRA step alone (ms a step, four rounds of ten) with linear.SPLIT_OUTPUTS set from argv[2]: python lora_split.py small 1048576"""
import sys, time
from minimac import linear
if len(sys.argv) > 2: linear.SPLIT_OUTPUTS = int(sys.argv[2])  # named SKINNY_OUTPUTS when this ran
from minimac.learner import ContinualLearner
from minimac.model import Transformer, ModelConfig
from minimac.strategies import LearnerConfig
from minimac.tokenizer import Tokenizer
from minimac.mixing import chunk_ids, mixed_batch
cfg = ModelConfig.from_preset(sys.argv[1])
text = " ".join(f"Sentence number {i} says something new about the domain." for i in range(200))
learner = ContinualLearner(Transformer(cfg), Tokenizer(), LearnerConfig(strategy="lora", seq_len=64))
t0 = time.perf_counter()
learner.learn_from_text(text, domain="w", steps=3)
print(f"SPLIT_OUTPUTS {linear.SPLIT_OUTPUTS}: compile {time.perf_counter() - t0:.1f} s")
tr = next(iter(learner._trainers.values()))
chunks = chunk_ids(learner.encode(text), 64)
x, y, w = mixed_batch(chunks[:8], [], 8, 64, 0.0)
best, losses = [], []
for rep in range(4):
    t = time.perf_counter()
    for _ in range(10): losses.append(tr.step(x, y, w, 1e-3)[0])
    best.append((time.perf_counter() - t) / 10 * 1000)
print(" ".join(f"{b:.1f}" for b in best), "ms/step; first losses", [round(l, 4) for l in losses[:3]])
