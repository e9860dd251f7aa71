"""Text generation with a KV cache: prefill the prompt once, then one token per step. Lesson 06.

    prompt ids -> model(prompt, use_cache) -> last logits -> pick a token -> model(token, start_pos) -> ...

Picking a token (on the host, numpy float64, from the last position's logits), in the seed's order:
repetition penalty -> temperature -> top-k -> top-p -> softmax -> sample (or argmax when temperature == 0).

- Repetition penalty (HF style; FIX: the seed divided negative logits too, making them *more* likely): for every
  token id already in the context (prompt included), a positive logit is divided by the penalty, a negative one
  multiplied. Penalty and temperature commute, since both keep signs and scale.
- temperature 0 means greedy (FIX: the seed divided by zero). top-k keeps the k largest logits (ties kept).
- top-p keeps the smallest set of most likely tokens whose probability reaches p: a token is kept if the
  probability of the tokens ranked above it is still <= p, so the first token over p and the top-1 are always kept.
  Worked example: probs [0.5, 0.3, 0.2], p = 0.6 -> keep the first two.
- Stops after `max_new_tokens` or right after `eos_id` (returned as the last id). FIX: the seed never stopped.

Batches: `generate_batch` takes several prompts (of any lengths) and gives each one's new ids.

Decoding steps run through a TinyJit with `start_pos` as a symbolic variable, so one compiled graph serves every step.
Capturing it costs about two eager steps (seconds on a GPU, where a replayed step takes milliseconds), so the JIT is
kept per model and reused by later calls while it still describes the model (minimac/jit_cache.py: keyed by the
buffers of every weight and KV cache and by each LoRA layer's mode; LoRA wrapping a layer, an adapter switched or
merged, or `load_state_dict` swapping a buffer means a fresh capture, and weights updated in place are read anew).
Context longer than max_seq_len: the model sees only the last max_seq_len tokens (a sliding window, as the seed
crops). Once the window is full, each step re-prefills the last max_seq_len tokens (positions restart at 0), which
gives exactly the seed's numbers but costs a full forward pass per token from then on.

    python -m minimac.generate --checkpoint DIR --prompt "Once upon a time" --max-new-tokens 50 --seed 0

DIR holds model.safetensors + config.json (`minimac.checkpoint.save(model, DIR)`) and the tokenizer in DIR/tokenizer/
(`tokenizer.save(DIR / "tokenizer")`; the tokenizer's own config.json would collide with the model's).

Speed: `decode_tokens` and `decode_batch` are seams (minimac/ops.py). After `minimac.fast.install()`,
minimac/fast/decode.py runs them instead: a chunk of tokens at a time with the picking on the device, prompts of
different lengths decoded together, an active LoRA adapter merged into a copy of the weights for decoding. Greedy
decoding gives the same ids on both paths; sampling with a seed is reproducible on each, but the two paths draw
different random numbers.

Not covered: beam search, speculative decoding, constrained decoding.
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tinygrad import Context, Tensor, TinyJit, UOp, dtypes

from minimac import fast
from minimac.jit_cache import cached_jit
from minimac.model import check_ids
from minimac.ops import seam


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


def process_logits(logits: np.ndarray, context: list[int], temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None, repetition_penalty: float = 1.0,
                   vocab_limit: int | None = None) -> np.ndarray:
    """Logits (V,) -> filtered, scaled logits (float64; removed tokens are -inf). temperature 0 is not scaled.

    vocab_limit: only ids below it may be picked (a tokenizer smaller than the model's embedding table)."""
    x = np.asarray(logits, dtype=np.float64).copy()
    if vocab_limit is not None:
        x[vocab_limit:] = -np.inf
    if repetition_penalty != 1.0 and context:
        seen = np.unique(np.asarray(context))
        x[seen] = np.where(x[seen] > 0, x[seen] / repetition_penalty, x[seen] * repetition_penalty)
    if temperature > 0:
        x = x / temperature
    if top_k is not None and top_k < x.size:
        kth = np.partition(x, -top_k)[-top_k]
        x[x < kth] = -np.inf
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-x, kind="stable")
        probs = np.exp(x[order] - x[order[0]])
        probs /= probs.sum()
        above = np.cumsum(probs) - probs  # probability mass ranked above each token
        x[order[above > top_p]] = -np.inf
    return x


def sample_token(logits: np.ndarray, context: list[int], temperature: float = 0.8, top_k: int | None = None,
                 top_p: float | None = None, repetition_penalty: float = 1.0,
                 rng: np.random.Generator | None = None, vocab_limit: int | None = None) -> int:
    """Pick the next token id from last-position logits (V,). temperature 0 -> argmax (first on ties)."""
    x = process_logits(logits, context, temperature, top_k, top_p, repetition_penalty, vocab_limit)
    if temperature == 0:
        return int(np.argmax(x))
    probs = np.exp(x - x.max())
    probs /= probs.sum()
    return int((rng or np.random.default_rng()).choice(x.size, p=probs))


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


@seam
def decode_tokens(model: Any, ids: list[int], max_new_tokens: int, eos_id: int | None, settings: dict,
                  seed: int | None) -> Iterator[int]:
    """The decoding loop: prefill, then one jitted step a token, each token picked on the host from the logits."""
    V, L = model.config.vocab_size, model.config.max_seq_len
    rng = np.random.default_rng(seed)

    def prefill() -> np.ndarray:  # positions restart at 0 for the last L tokens
        with Context(TRAINING=0):
            return model([ids[-L:]], 0, use_cache=True, last_only=True).numpy().reshape(V)

    position = UOp.variable("start_pos", 1, max(L - 1, 1))  # symbolic: one compiled step for every position
    if max_new_tokens == 0:
        return
    logits, pos = prefill(), min(len(ids), L)
    decode = _decoder(model)  # after prefill: every weight and the KV caches are realized buffers now
    for n in range(max_new_tokens):
        next_id = sample_token(logits, ids, rng=rng, **settings)
        ids.append(next_id)
        yield next_id
        if next_id == eos_id or n == max_new_tokens - 1:
            return
        if pos < L:
            with Context(TRAINING=0):
                token = Tensor([[next_id]], dtype=dtypes.int32)
                logits = decode(token, position.bind(pos)).numpy().reshape(V)
            pos += 1
        else:  # the window is full: slide it (recompute the last L tokens)
            logits = prefill()


def _decoder(model: Any) -> TinyJit:
    """The model's jitted decode step, (1, 1) id at a symbolic start_pos -> (1, 1, V) logits, reused across calls
    while the model's buffers and LoRA modes are the ones it captured (minimac/jit_cache.py)."""
    def make(ref):
        @TinyJit
        def decode(token: Tensor, start_pos: UOp) -> Tensor:
            return ref()(token, start_pos, use_cache=True, last_only=True).realize()
        return decode

    return cached_jit(model, "decode", make)


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


@seam
def decode_batch(model: Any, rows: list[list[int]], max_new_tokens: int, eos_id: int | None, settings: dict,
                 seed: int | None) -> list[list[int]]:
    """Several prompts: here one after another (the fast path decodes them together, left-padded)."""
    return [list(decode_tokens(model, row, max_new_tokens, eos_id, settings, seed)) for row in rows]


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


if __name__ == "__main__":
    sys.exit(main())
