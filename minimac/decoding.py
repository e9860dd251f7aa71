"""The decoding loop with a KV cache, and how a token is picked from the logits. Lesson 06.

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

Decoding steps run through a TinyJit with `start_pos` as a symbolic variable, so one compiled graph serves every step.
Capturing it costs about two eager steps (seconds on a GPU, where a replayed step takes milliseconds), so the JIT is
kept per model and reused by later calls while it still describes the model (minimac/jit_cache.py: keyed by the
buffers of every weight and KV cache and by each LoRA layer's mode; LoRA wrapping a layer, an adapter switched or
merged, or `load_state_dict` swapping a buffer means a fresh capture, and weights updated in place are read anew).
Context longer than max_seq_len: the model sees only the last max_seq_len tokens (a sliding window, as the seed
crops). Once the window is full, each step re-prefills the last max_seq_len tokens (positions restart at 0), which
gives exactly the seed's numbers but costs a full forward pass per token from then on.

`decode_tokens` (one prompt) and `decode_batch` (several, here one after another) are seams (minimac/ops.py): after
`minimac.fast.install()`, minimac/fast/decode.py runs them instead, a chunk of tokens at a time with the picking on
the device. minimac/generate.py is the API on top (validation, `generate`, `generate_batch`, the command line).

Not covered: beam search, speculative decoding, constrained decoding.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from tinygrad import Context, Tensor, TinyJit, UOp, dtypes

from minimac.jit_cache import cached_jit
from minimac.ops import seam


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


@seam
def decode_batch(model: Any, rows: list[list[int]], max_new_tokens: int, eos_id: int | None, settings: dict,
                 seed: int | None) -> list[list[int]]:
    """Several prompts: here one after another (the fast path decodes them together, left-padded)."""
    return [list(decode_tokens(model, row, max_new_tokens, eos_id, settings, seed)) for row in rows]
