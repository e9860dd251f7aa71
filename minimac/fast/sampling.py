"""Picking the next token on the device, inside a jitted decoding step: the same rules as minimac/decoding.py's
`process_logits` and `sample_token`, written without a sort. Lesson 06 (speed appendix).

    logits (B, V) -> vocab limit -> repetition penalty -> temperature -> top-k -> top-p -> argmax or a draw -> (B,)

The host version sorts (numpy) and draws with numpy's generator. Here nothing leaves the device:

- top-k and top-p each keep the tokens whose logit is at least a threshold. The threshold is found by a search over
  the bits of an order-preserving uint32 key of each float logit (`sortable_keys`), from the top bit down: 32 small
  reductions, exact, with no sort. top-k: the largest key c with count(key >= c) >= k (ties at the k-th value kept,
  as on the host). top-p: the largest c with mass(key >= c) > p, which keeps exactly the tokens that the host keeps
  (those whose more likely tokens hold <= p of the probability), except that tokens tied at the boundary value are
  all kept where the host keeps them in index order.
- A draw from softmax(x) is argmax(x + g) with g Gumbel noise, g = -log(-log(u)) (the Gumbel-max trick), u uniform
  from tinygrad's counter-based threefry generator with a key from the seed and a counter that each draw advances:
  the same seed gives the same tokens, run after run; not the numpy draws of the host path.
- Values that change between calls (temperature, k, p, penalty, vocab limit, seed, counter) are device buffers that
  the host refills (`write_into`); which rules run at all (`Rules`) is fixed when a step is captured.

Worked example: logits [2, 1, 0, -1], top_k=2 -> keys ordered like the logits, threshold = key(1) -> [2, 1, -inf, -inf].
Not covered: min-p, typical sampling, beam search.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tinygrad import Tensor, dtypes

NEG_INF = float("-inf")


@dataclass(frozen=True)
class Rules:
    """Which rules a captured step applies (a new combination means a new capture)."""
    sample: bool = False        # temperature > 0: draw; else argmax
    top_k: bool = False
    top_p: bool = False
    penalty: bool = False       # repetition_penalty != 1
    vocab_limit: bool = False   # a tokenizer smaller than the embedding table

    @classmethod
    def of(cls, temperature: float, top_k: int | None, top_p: float | None, repetition_penalty: float,
           vocab_limit: int | None, vocab_size: int) -> Rules:
        sample = temperature > 0
        return cls(sample, sample and top_k is not None and top_k < vocab_size,
                   sample and top_p is not None and top_p < 1.0, repetition_penalty != 1.0,
                   vocab_limit is not None and vocab_limit < vocab_size)


class SamplingState:
    """The device buffers a captured step reads: one row of settings per sequence, the seed and the draw counter."""

    def __init__(self, batch: int, vocab_size: int):
        self.temperature = Tensor.ones(batch, 1).contiguous().realize()
        self.top_k = Tensor.ones(batch, 1, dtype=dtypes.int32).contiguous().realize()
        self.top_p = Tensor.ones(batch, 1).contiguous().realize()
        self.penalty = Tensor.ones(batch, 1).contiguous().realize()
        self.vocab_limit = Tensor.full((1, 1), vocab_size, dtype=dtypes.int32).contiguous().realize()
        self.key = Tensor.zeros(2, dtype=dtypes.uint32).contiguous().realize()
        self.counter = Tensor.zeros(1, dtype=dtypes.uint32).contiguous().realize()
        self.seen = Tensor.zeros(batch, vocab_size, dtype=dtypes.bool).contiguous().realize()  # ids in the context

    def set(self, temperature: float, top_k: int | None, top_p: float | None, repetition_penalty: float,
            vocab_limit: int | None, seed: int | None, contexts: np.ndarray) -> None:
        """Fill the buffers for a new generation; contexts (B, V) bool marks the ids each prompt holds."""
        from minimac.device_inputs import write_into
        B, V = self.seen.shape
        write_into(self.temperature, np.full((B, 1), max(temperature, 1e-30), np.float32))
        write_into(self.top_k, np.full((B, 1), top_k or V, np.int32))
        write_into(self.top_p, np.full((B, 1), 1.0 if top_p is None else top_p, np.float32))
        write_into(self.penalty, np.full((B, 1), repetition_penalty, np.float32))
        write_into(self.vocab_limit, np.full((1, 1), vocab_limit or V, np.int32))
        seed = int(np.random.SeedSequence().entropy) if seed is None else int(seed)  # type: ignore[arg-type]
        write_into(self.key, np.array([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF], np.uint32))
        write_into(self.counter, np.zeros(1, np.uint32))
        write_into(self.seen, contexts)


def sortable_keys(x: Tensor) -> Tensor:
    """float32 -> uint32 with the same order: a >= b exactly when key(a) >= key(b) (-inf lowest).

    Positive floats: their bits with the sign bit set; negative ones: every bit flipped."""
    bits = x.bitcast(dtypes.uint32)
    return (bits >= 0x80000000).where(bits ^ 0xFFFFFFFF, bits | 0x80000000)


def largest_key_where(keys: Tensor, holds) -> Tensor:
    """The largest c (B, 1) with holds(keys >= c) true, for a rule that is true at c = 0 and false beyond some c:
    built bit by bit from the top (32 reductions)."""
    found = Tensor.zeros(keys.shape[0], 1, dtype=dtypes.uint32)
    for bit in range(31, -1, -1):
        candidate = found | (1 << bit)
        found = holds(keys >= candidate).where(candidate, found)
    return found


def filter_top_k(x: Tensor, k: Tensor) -> Tensor:
    """Keep the logits >= the k-th largest of each row (ties kept), the rest -inf. x (B, V), k (B, 1) int32."""
    keys = sortable_keys(x).contiguous()  # stored: read by 32 reductions
    kth = largest_key_where(keys, lambda above: above.cast(dtypes.int32).sum(-1, keepdim=True) >= k)
    return (keys >= kth).where(x, NEG_INF)


def filter_top_p(x: Tensor, p: Tensor) -> Tensor:
    """Keep the most likely tokens up to the first whose more likely tokens hold > p of softmax(x); x (B, V)."""
    keys, probs = sortable_keys(x).contiguous(), x.softmax(-1).contiguous()
    cut = largest_key_where(keys, lambda above: (above.where(probs, 0.0)).sum(-1, keepdim=True) > p)
    return ((keys >= cut) | (p >= 1.0)).where(x, NEG_INF)


def gumbel(state: SamplingState, shape: tuple[int, int]) -> Tensor:
    """Gumbel(0, 1) noise (B, V) from threefry(seed, (counter, index)); advances the counter."""
    n = shape[0] * shape[1]
    index = Tensor.arange(n, dtype=dtypes.uint32)
    bits = Tensor._threefry_random_bits(state.key, index, state.counter.expand(n))[:n]  # type: ignore[attr-defined]
    u = ((bits >> 8).cast(dtypes.float32) + 0.5) * (1.0 / (1 << 24))                     # uniform in (0, 1)
    state.counter.assign(state.counter + 1)
    return -(-u.log()).log().reshape(shape)


def pick(logits: Tensor, state: SamplingState, rules: Rules) -> Tensor:
    """The next id of each row (B,) int32 from last-position logits (B, V), by `rules` (module docstring)."""
    x = logits.float()
    B, V = x.shape
    if rules.vocab_limit:
        x = (Tensor.arange(V).reshape(1, V) < state.vocab_limit).where(x, NEG_INF)
    if rules.penalty:
        pen = state.penalty
        x = state.seen.where((x > 0).where(x / pen, x * pen), x)
    if rules.sample:
        x = (x / state.temperature).contiguous()
        if rules.top_k:
            x = filter_top_k(x, state.top_k).contiguous()
        if rules.top_p:
            x = filter_top_p(x, state.top_p)
        x = x + gumbel(state, (B, V))
    nxt = x.argmax(-1).cast(dtypes.int32)                                                 # first index on ties
    if rules.penalty:  # the new id joins the context
        state.seen.assign(state.seen | (Tensor.arange(V).reshape(1, V) == nxt.reshape(B, 1)))
    return nxt
