"""Benchmark minimac's byte-level BPE: training time and encoding throughput on the Gutenberg base corpus.

    python benchmarks/bench_tokenizer.py                      # 8,000-token vocab, table printed with rich
    python benchmarks/bench_tokenizer.py --json results/tok.json --vocab-size 8000

Data: the 11 Gutenberg novels from $MINIMAC_DATA (or ../shared/data next to the repo). Each book is cut to the text
between its `*** START OF` and `*** END OF` lines; its first 90% (cut at a blank line) is the training split and its
last 5% the held-out text we encode. Encoding is timed cold (empty word cache, as for new text) and warm (the same
text again). If the Rust libraries `tokenizers` (Hugging Face) or `tiktoken` are importable, they are measured side
by side; they are never dependencies of minimac. tiktoken cannot train, so it encodes with minimac's own vocabulary
(same merges, Rust encoder), which also checks that both give the same ids.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from minimac.tokenizer import EOT, Tokenizer

TIKTOKEN = "tiktoken (Rust)*"
REPEAT = 3  # encode/decode timings are the best of 3 runs; training runs once
SEED_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def data_dir() -> Path:
    env = os.environ.get("MINIMAC_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def blank_line_after(text: str, fraction: float) -> int:
    k = text.find("\n\n", int(fraction * len(text)))
    return len(text) if k < 0 else k


def gutenberg_splits(folder: Path) -> tuple[list[str], list[str]]:
    """(train, test) texts, one per book: first 90% and last 5% of the body, each cut at a blank line."""
    books = sorted(p for p in folder.glob("*.txt") if p.name != "PG_LICENSE.txt")
    if not books:
        raise SystemExit(f"no Gutenberg books in {folder}: set MINIMAC_DATA to the shared data folder")
    train, test = [], []
    for path in books:
        lines = path.read_text(encoding="utf-8-sig").replace("\r\n", "\n").split("\n")
        start = next(i for i, line in enumerate(lines) if line.startswith("*** START OF"))
        end = next(i for i, line in enumerate(lines) if line.startswith("*** END OF"))
        body = "\n".join(lines[start + 1:end]).strip("\n")
        train.append(body[:blank_line_after(body, 0.90)])
        test.append(body[blank_line_after(body, 0.95):].lstrip("\n"))
    return train, test


def timed(fn, *args, repeat: int = 1, before=None):
    """(result, best time of `repeat` runs): the minimum is the least disturbed by other work on the machine."""
    best = float("inf")
    for _ in range(repeat):
        if before is not None:
            before()
        t0 = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return out, best


def bench_minimac(train: list[str], held_out: str, vocab_size: int) -> tuple[dict, Tokenizer]:
    tok, train_s = timed(lambda: Tokenizer().train(train, vocab_size, verbose=False))
    ids, cold_s = timed(tok.encode, held_out, repeat=REPEAT, before=tok.clear_cache)
    _, warm_s = timed(tok.encode, held_out, repeat=REPEAT)
    text, decode_s = timed(tok.decode, ids, repeat=REPEAT)
    assert text == held_out, "round trip failed"
    return {"train_s": train_s, "cold_s": cold_s, "warm_s": warm_s, "decode_s": decode_s, "tokens": len(ids),
            "vocab_size": tok.vocab_size}, tok


def bench_hf_tokenizers(train: list[str], held_out: str, vocab_size: int) -> dict | None:
    try:
        from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers
        from tokenizers import Tokenizer as HFTokenizer
    except ImportError:
        return None
    hf = HFTokenizer(models.BPE())
    hf.normalizer = normalizers.NFC()
    hf.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(SEED_PATTERN), behavior="isolated"),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    _, train_s = timed(hf.train_from_iterator, train, trainer)
    enc, cold_s = timed(hf.encode, held_out)  # HF's word cache cannot be cleared, so only the first run is cold
    _, warm_s = timed(hf.encode, held_out, repeat=REPEAT)
    _, decode_s = timed(hf.decode, enc.ids, repeat=REPEAT)
    return {"train_s": train_s, "cold_s": cold_s, "warm_s": warm_s, "decode_s": decode_s, "tokens": len(enc.ids),
            "vocab_size": hf.get_vocab_size()}


def bench_tiktoken(tok: Tokenizer, held_out: str, minimac_ids: list[int]) -> dict | None:
    try:
        import tiktoken
    except ImportError:
        return None
    ranks = {tok.token_bytes(i): i for i in range(len(tok.special_tokens), tok.vocab_size)}
    enc = tiktoken.Encoding("minimac", pat_str=SEED_PATTERN, mergeable_ranks=ranks, special_tokens={EOT: 0})
    ids, cold_s = timed(enc.encode_ordinary, held_out, repeat=REPEAT)  # tiktoken keeps no word cache
    _, warm_s = timed(enc.encode_ordinary, held_out, repeat=REPEAT)
    _, decode_s = timed(enc.decode, ids, repeat=REPEAT)
    same = sum(a == b for a, b in zip(ids, minimac_ids)) if len(ids) == len(minimac_ids) else 0
    return {"train_s": None, "cold_s": cold_s, "warm_s": warm_s, "decode_s": decode_s, "tokens": len(ids),
            "vocab_size": tok.vocab_size, "same_ids_as_minimac": ids == minimac_ids, "same_id_fraction":
            same / max(len(ids), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--no-others", action="store_true", help="skip tokenizers and tiktoken")
    args = parser.parse_args()

    train, test = gutenberg_splits(data_dir() / "gutenberg_novels")
    held_out = "\n\n".join(test)
    train_mb = sum(len(t.encode()) for t in train) / 1e6
    test_mb = len(held_out.encode()) / 1e6
    rows = {}
    rows["minimac (Python)"], tok = bench_minimac(train, held_out, args.vocab_size)
    if not args.no_others:
        if (hf := bench_hf_tokenizers(train, held_out, args.vocab_size)) is not None:
            rows["HF tokenizers (Rust)"] = hf
        if (tt := bench_tiktoken(tok, held_out, tok.encode(held_out))) is not None:
            rows[TIKTOKEN] = tt

    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"Byte-level BPE, {args.vocab_size:,}-token vocab: train on Gutenberg base train "
                        f"({train_mb:.2f} MB), encode held-out ({test_mb:.2f} MB)")
    for col in ("tokenizer", "train s", "encode MB/s (cold)", "encode MB/s (warm)", "decode MB/s", "bytes/token"):
        table.add_column(col, justify="left" if col == "tokenizer" else "right")
    for name, r in rows.items():
        table.add_row(name, "-" if r["train_s"] is None else f"{r['train_s']:.1f}", f"{test_mb / r['cold_s']:.2f}",
                      f"{test_mb / r['warm_s']:.2f}", f"{test_mb / r['decode_s']:.1f}",
                      f"{test_mb * 1e6 / r['tokens']:.2f}")
    console = Console(width=max(Console().width, 110))
    console.print(table)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    console.print(f"machine: {machine}")
    if TIKTOKEN in rows:
        console.print(f"* tiktoken cannot train: it encodes with minimac's merges. Same ids as minimac: "
                      f"{rows[TIKTOKEN]['same_ids_as_minimac']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"vocab_size": args.vocab_size, "train_mb": train_mb, "test_mb": test_mb,
                                         "machine": machine, "results": rows}, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
