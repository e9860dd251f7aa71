"""Pretrain the `nano` model on the embedded corpus with the library API (what `python -m minimac.pretrain` does).

    python examples/pretrain_nano.py            # about 200 steps; a few minutes on a laptop CPU
    python examples/pretrain_nano.py 50         # fewer steps

It trains a tokenizer, runs `Trainer` (a jitted AdamW step with warmup + cosine, held-out bits per byte every 50
steps, a resumable checkpoint in runs/example-nano/), then prints a sample. Run it again to resume from the checkpoint.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without pip install

import numpy as np  # noqa: E402
from tinygrad import Tensor  # noqa: E402

from minimac import metrics  # noqa: E402
from minimac.data import DEFAULT_DOMAINS, encode_documents, load_corpus  # noqa: E402
from minimac.generate import generate  # noqa: E402
from minimac.model import ModelConfig, Transformer  # noqa: E402
from minimac.pretrain import step_batches  # noqa: E402
from minimac.tokenizer import Tokenizer  # noqa: E402
from minimac.train import CHECKPOINT, TrainConfig, Trainer  # noqa: E402

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
out = Path("runs/example-nano")

docs = {split: [d for dom in DEFAULT_DOMAINS for d in load_corpus("default", split, domain=dom)]
        for split in ("train", "valid")}
tokenizer = Tokenizer.load(out / "tokenizer") if (out / "tokenizer").is_dir() else \
    Tokenizer().train(docs["train"], 4096, verbose=False)
train_ids = encode_documents(docs["train"], tokenizer)
valid_text = "\n\n".join(docs["valid"])
valid_ids = np.array([tokenizer.eot_id, *tokenizer.encode(valid_text)], dtype=np.int32)

B, T = 16, 128
Tensor.manual_seed(0)
model = Transformer(ModelConfig.from_preset("nano", vocab_size=tokenizer.vocab_size))
config = TrainConfig(batch_size=B, seq_len=T, lr=1e-3, min_lr=1e-4, warmup_steps=30, max_steps=steps,
                     eval_every=50, ckpt_every=50)


def heldout(m) -> dict:
    return metrics.evaluate(m, valid_ids, T, B, num_bytes=len(valid_text.encode()))


trainer = Trainer(model, config, step_batches(train_ids, B, T, seed=0), evaluate=heldout, out_dir=out)
if (out / CHECKPOINT).exists():
    trainer.load(out)
    print(f"resumed from {out} at step {trainer.step}")
tokenizer.save(out / "tokenizer")


def log(r: dict) -> None:
    if r["step"] % 10 == 0:
        print(f"step {r['step']:4d}/{steps}  loss {r['loss']:.3f}  lr {r['lr']:.2e}  {r['tokens_per_s']:,.0f} tok/s")
    if "eval" in r:
        print(f"           held-out {r['eval']['bits_per_byte']:.3f} bits per byte")


print(trainer.fit(log=log))
prompt = tokenizer.encode("The with statement")
print(repr(tokenizer.decode(prompt + generate(model, prompt, 60, temperature=0.8, top_k=40, seed=0))))
