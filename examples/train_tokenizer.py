"""Train a byte-level BPE tokenizer on your own text files, save it, load it back and try it.

    python examples/train_tokenizer.py my_texts/*.txt --vocab-size 4000 --out runs/my_tokenizer

With no files, it trains on the Python documentation that ships with every Python (pydoc_data.topics).
The command-line equivalent is `python -m minimac.tokenizer train --input FILES --vocab-size N --out DIR`.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
from minimac.tokenizer import Tokenizer

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("files", nargs="*", type=Path, help="UTF-8 text files (default: Python's help topics)")
parser.add_argument("--vocab-size", type=int, default=2000)
parser.add_argument("--out", type=Path, default=Path("runs/tokenizer"))
args = parser.parse_args()

if args.files:
    data = args.files  # Path items are read as files; str items would be taken as texts
else:
    import pydoc_data.topics
    data = list(pydoc_data.topics.topics.values())

tokenizer = Tokenizer().train(data, vocab_size=args.vocab_size, min_frequency=2)  # shows a progress bar
tokenizer.save(args.out)
tokenizer = Tokenizer.load(args.out)
print(f"saved {tokenizer} to {args.out}/ (config.json, vocab.json, merges.json)")

text = "def greet(name):\n    return f'Hello, {name}!'  # 👋"
ids = tokenizer.encode(text)
print(f"{len(text.encode())} bytes -> {len(ids)} tokens: {[tokenizer.vocab[i] for i in ids]}")
assert tokenizer.decode(ids) == text

batch = tokenizer.encode_batch(["a short one", "and a somewhat longer second text"], padding=True)
print("padded batch:", batch.input_ids, "\nattention mask:", batch.attention_mask)
