"""Text generation: `generate`, `stream` and `generate_batch` on token ids, and `python -m minimac.generate`. Lesson 06.

The loop itself (prefill once, one cached step a token) and how a token is picked are in minimac/decoding.py.
Arguments are checked here, before any work: temperature >= 0 (0 = greedy), top_k >= 1, top_p in (0, 1],
repetition_penalty > 0, ids inside the vocabulary. Generation stops after `max_new_tokens` or right after `eos_id`.
Batches: `generate_batch` takes several prompts (of any lengths) and gives each one's new ids.

    python -m minimac.generate --checkpoint DIR --prompt "Once upon a time" --max-new-tokens 50 --seed 0

DIR holds model.safetensors + config.json (`minimac.checkpoint.save(model, DIR)`) and the tokenizer in DIR/tokenizer/
(`tokenizer.save(DIR / "tokenizer")`; the tokenizer's own config.json would collide with the model's).

Speed: after `minimac.fast.install()` (the command line calls it), minimac/fast/decode.py runs the loop: a chunk of
tokens at a time with the picking on the device, prompts of different lengths decoded together, an active LoRA
adapter merged into a copy of the weights for decoding. Greedy decoding gives the same ids on both paths; sampling
with a seed is reproducible on each, but the two paths draw different random numbers.
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from minimac import fast
from minimac.decoding import decode_batch, decode_tokens, process_logits, sample_token
from minimac.model import check_ids


def _validate(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None,
              repetition_penalty: float) -> None:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be >= 0 and finite (0 = greedy), got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an int >= 1 or None, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")
    if not (math.isfinite(repetition_penalty) and repetition_penalty > 0):
        raise ValueError(f"repetition_penalty must be > 0 and finite (1 = off), got {repetition_penalty}")


def stream(model: Any, prompt_ids: list[int], max_new_tokens: int, temperature: float = 0.8,
           top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
           eos_id: int | None = None, seed: int | None = None, vocab_limit: int | None = None) -> Iterator[int]:
    """Yield up to `max_new_tokens` new token ids after `prompt_ids` (see the module doc)."""
    settings = _settings(model, max_new_tokens, temperature, top_k, top_p, repetition_penalty, vocab_limit)
    return decode_tokens(model, _check_prompt(model, prompt_ids), max_new_tokens, eos_id, settings, seed)


def _settings(model, max_new_tokens, temperature, top_k, top_p, repetition_penalty, vocab_limit) -> dict:
    _validate(max_new_tokens, temperature, top_k, top_p, repetition_penalty)
    if vocab_limit is not None and not 0 < vocab_limit <= model.config.vocab_size:
        raise ValueError(f"vocab_limit must be in [1, {model.config.vocab_size}], got {vocab_limit}")
    return {"temperature": temperature, "top_k": top_k, "top_p": top_p, "repetition_penalty": repetition_penalty,
            "vocab_limit": vocab_limit}


def _check_prompt(model, prompt_ids) -> list[int]:
    ids = [int(i) for i in np.asarray(prompt_ids).reshape(-1)] if len(prompt_ids) else []
    if not ids:
        raise ValueError("prompt_ids is empty: give at least one token (e.g. the tokenizer's eot_id)")
    check_ids(ids, model.config.vocab_size)
    return ids


def generate(model: Any, prompt_ids: list[int], max_new_tokens: int, temperature: float = 0.8,
             top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
             eos_id: int | None = None, seed: int | None = None, vocab_limit: int | None = None) -> list[int]:
    """The new token ids (not the prompt) after `prompt_ids`.

    >>> new = generate(model, tokenizer.encode("Once"), 20, temperature=0, eos_id=tokenizer.eot_id)  # doctest: +SKIP
    """
    return list(stream(model, prompt_ids, max_new_tokens, temperature, top_k, top_p, repetition_penalty,
                       eos_id, seed, vocab_limit))


def generate_batch(model: Any, prompts: list[list[int]], max_new_tokens: int, temperature: float = 0.8,
                   top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
                   eos_id: int | None = None, seed: int | None = None,
                   vocab_limit: int | None = None) -> list[list[int]]:
    """The new ids of each prompt (prompts may differ in length): greedy, the same as `generate` on each.

    >>> generate_batch(model, [tok.encode("Once"), tok.encode("The cat")], 20, temperature=0)  # doctest: +SKIP
    """
    settings = _settings(model, max_new_tokens, temperature, top_k, top_p, repetition_penalty, vocab_limit)
    if not prompts:
        raise ValueError("prompts is empty: give at least one prompt")
    return decode_batch(model, [_check_prompt(model, p) for p in prompts], max_new_tokens, eos_id, settings, seed)


# ---- command line -------------------------------------------------------------------------------------------------
def load_for_generation(directory: str | Path, tokenizer_dir: str | Path | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a checkpoint dir; the tokenizer from `tokenizer_dir`, else DIR/tokenizer/."""
    d = Path(directory)
    previous = d.with_name(d.name + ".previous")
    if not d.exists() and previous.is_dir():   # a learner save interrupted between its two renames: the old one
        print(f"note: '{d}' is missing; using '{previous}', left by an interrupted save", file=sys.stderr)
        d = previous
    if not d.is_dir():
        raise FileNotFoundError(f"checkpoint directory '{d}' does not exist")
    if not (d / "model.safetensors").exists():   # a learner's checkpoint writes one too: its adapter merged in
        raise FileNotFoundError(f"'{d}' holds no checkpoint (looked for model.safetensors)")
    from minimac.checkpoint import load
    model = load(d)
    from minimac.tokenizer import Tokenizer  # lazy: only the CLI needs it
    tok_dir = Path(tokenizer_dir) if tokenizer_dir is not None else d / "tokenizer"
    if not tok_dir.is_dir():
        raise FileNotFoundError(f"no tokenizer at '{tok_dir}': save one with tokenizer.save('{d / 'tokenizer'}') "
                                "or pass --tokenizer DIR")
    tokenizer = Tokenizer.load(tok_dir)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"tokenizer at '{tok_dir}' has {tokenizer.vocab_size} ids but the model only "
                         f"{model.config.vocab_size}")
    return model, tokenizer


def main(argv: list[str] | None = None) -> int:
    fast.install()  # the same numbers, faster (minimac/fast/); MINIMAC_PLAIN=1 keeps the plain path
    ap = argparse.ArgumentParser(prog="python -m minimac.generate", description="Stream text from a checkpoint.")
    ap.add_argument("--checkpoint", required=True, help="dir with model.safetensors, config.json, tokenizer/")
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--tokenizer", default=None, help="tokenizer dir (default: CHECKPOINT/tokenizer)")
    ap.add_argument("--max-new-tokens", type=int, default=100)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--top-p", type=float, default=None)
    ap.add_argument("--repetition-penalty", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    try:
        model, tokenizer = load_for_generation(args.checkpoint, args.tokenizer)
        prompt = tokenizer.encode(args.prompt) or [tokenizer.eot_id]
        tokens = stream(model, prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p,
                        args.repetition_penalty, eos_id=tokenizer.eot_id, seed=args.seed,
                        vocab_limit=tokenizer.vocab_size)
        sys.stdout.write(args.prompt)
        pending: list[int] = []  # a multi-byte character may span several tokens: print once it decodes cleanly
        for token in tokens:
            pending.append(token)
            text = tokenizer.decode(pending, skip_special_tokens=True)
            if not text.endswith("\ufffd"):
                sys.stdout.write(text)
                sys.stdout.flush()
                pending = []
        sys.stdout.write(tokenizer.decode(pending, skip_special_tokens=True) + "\n")
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0


__all__ = ["generate", "generate_batch", "load_for_generation", "main", "process_logits", "sample_token", "stream"]


if __name__ == "__main__":
    sys.exit(main())

