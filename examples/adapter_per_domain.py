"""One base model, one small LoRA adapter per domain, and a router that picks the adapter for each prompt.

    python examples/adapter_per_domain.py

Each domain gets its own adapter, so learning one cannot disturb another (zero forgetting by construction); the
price is that the model must know which adapter to use. `generate(prompt, domain=name)` picks by name;
`domain=None` lets the router pick the adapter (or the bare base) with the lowest loss on the prompt.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without pip install

from minimac import checkpoint
from minimac.base_cache import default_base
from minimac.data import load_corpus
from minimac.learner import ContinualLearner
from minimac.learner.strategies import LearnerConfig
from minimac.tokenizer import Tokenizer

RECIPES = """Pancakes: whisk two eggs with a cup of milk, stir in a cup of flour and a pinch of salt, rest the batter
for ten minutes, then fry thin rounds in a hot buttered pan until golden on both sides.
Tomato soup: soften an onion in olive oil, add a tin of tomatoes and a cup of stock, simmer for twenty minutes and
blend until smooth; season with salt, pepper and a little sugar.
""" * 3

folder = default_base()
learner = ContinualLearner(checkpoint.load(folder), Tokenizer.load(folder / "tokenizer"),
                           LearnerConfig(strategy="adapter-per-domain", seq_len=64, batch_size=8))
code = "\n\n".join(load_corpus("default", "train", domain="code"))[:20000]
tests = {"docs": "\n\n".join(load_corpus("default", "test", domain="docs"))[:3000],
         "code": "\n\n".join(load_corpus("default", "test", domain="code"))[:3000], "recipes": RECIPES[:600]}

learner.learn_stream([("code", code), ("recipes", RECIPES)], eval_sets=tests, base="docs", steps=40)
print("adapters:", learner.adapters)
print("bits per byte after each stage (rows) on each set (columns):", learner.r_matrix.sets)
for stage, row in zip(learner.r_matrix.stages, learner.r_matrix.values):
    print(f"  after {stage:8s}", " ".join(f"{v:6.3f}" for v in row))

for prompt in ("def __init__(self", "Pancakes: whisk", "The with statement"):
    print(f"{prompt!r:22} -> routed to {learner.route(prompt)!s:8} {learner.generate(prompt, 20, seed=0)!r}")
