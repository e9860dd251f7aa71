"""Teach a small pretrained model some text of your own in seconds, then ask it about it.

    python examples/learn_your_text.py                  # a few made-up facts
    python examples/learn_your_text.py notes.txt        # your own text

The base model is the demo's (built once, a minute or two, then cached: see minimac/base_cache.py). LoRA trains a
few thousand numbers on top of it; the loss on your text falls, and the rest of what the model knows stays put.
The command-line version of this script is `python -m minimac.learn --data FILE --domain NAME`.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without pip install

from minimac import checkpoint
from minimac.base_cache import default_base
from minimac.learner import ContinualLearner
from minimac.learner.strategies import LearnerConfig
from minimac.tokenizer import Tokenizer

FACTS = """The planet Zorbia has two moons, Plim and Quax.
The capital of Zorbia is Quixville, a city built on stilts.
Zorbians drink blue tea at sunrise and sing to the moons at night.
"""

text = Path(sys.argv[1]).read_text(encoding="utf-8") if len(sys.argv) > 1 else FACTS
folder = default_base()
model, tokenizer = checkpoint.load(folder), Tokenizer.load(folder / "tokenizer")
learner = ContinualLearner(model, tokenizer, LearnerConfig(strategy="lora", seq_len=64, batch_size=8))

prompt = " ".join(text.split()[:4])
print("before:", repr(learner.generate(prompt, 30, temperature=0.0)))
stats = learner.learn_from_text(text, domain="mine")  # steps: LearnerConfig's rule (epochs, at least min_steps)
print(f"learned {stats['tokens']} tokens in {stats['seconds']:.1f}s ({stats['steps']} steps): loss "
      f"{stats['loss_before']:.2f} -> {stats['loss_after']:.2f} nats per token")
print("after: ", repr(learner.generate(prompt, 30, temperature=0.0)))

learner.save_checkpoint("runs/mine")
print("saved runs/mine; try: python -m minimac.generate --checkpoint runs/mine --prompt", repr(prompt))
