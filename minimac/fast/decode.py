"""KV-cached generation with every step on the device: the fast version of the `decode_tokens` and `decode_batch`
seams (minimac/decoding.py). Lesson 06 (speed appendix).

The readable loop in minimac/decoding.py reads the logits back after every token and picks the next one in numpy.
Here a whole chunk of tokens is made without the host looking:

    prompts -> left-pad to P, ids (B, L+1) and a key mask on the device -> prefill jit (bucket >= P) -> first id
            -> decode jit x CHUNK (position = a bound symbolic Variable: one capture for every position)
            -> read the ids back once a chunk, stop rows at EOS -> ... -> window full: slide, prefill again

- Each decode step reads its input id from the ids buffer at `pos` and writes the id it picks at `pos + 1`
  (minimac/fast/sampling.py picks it on the device), so no id travels between host and device inside a chunk.
  The KV caches, the ids, the key mask and the sampling settings are device buffers the jits captured; the host
  refills them in place (minimac.device_inputs.write_into) for each generation.
- The prompt is prefilled by a jit per bucket (32, 64, ... up to max_seq_len tokens, right-padded: causal attention
  keeps the padding out of sight, and decoding overwrites its cache entries); which position's logits are read is a
  bound Variable too.
- Several prompts of different lengths decode together, left-padded, with a key mask that hides the padding: a
  shorter row's positions start later, which RoPE makes invisible up to rounding (attention sees only distances).
- Weights: the decoding copy of the model (`decoding_copy`, fast/decode_weights.py) shares every weight, replacing
  each bias-free linear layer by `DecodeLinear`, which reads its weight as stored (one dot product per output: a
  step's matmuls have one row per sequence, and fast/linear.py's layout would copy the weight every step). An
  active, unmerged LoRA adapter is merged into a copy of the weight (W + scaling * B A); where the device table
  asks, q/k/v and w1/w3 are concatenated into one copy each and batches read W^T copies. A small jit makes every
  copy again at the start of each generation (`Decoder.refresh`), so training that changed weights in place is seen:
  the adapter costs nothing per token. Equal to the unmerged layers up to rounding (tests/test_decode.py).
- Beyond max_seq_len the window slides as in minimac/decoding.py: the last max_seq_len ids are prefilled again each
  token.

Sampling with a seed is reproducible here, but it draws other numbers than the numpy path of minimac/decoding.py;
greedy decoding gives the same ids as that loop (tests/test_decode.py). Not covered: speculative decoding, paged
caches, per-row settings.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
from tinygrad import Context, Tensor, TinyJit, UOp, dtypes

from minimac.device_inputs import write_into
from minimac.fast.decode_weights import DecodeLinear, SharedInput, decoding_copy
from minimac.fast.devices import capabilities
from minimac.fast.sampling import Rules, SamplingState, pick
from minimac.jit_cache import cached_jit

CHUNK = 16        # decode steps between two reads of the ids: one sync per chunk, EOS checked per chunk
MIN_BUCKET = 32   # the smallest prefill length; then doubling, up to max_seq_len


def steps_per_call(t: Tensor) -> int:
    """Decode steps captured in one jit call on t's device (minimac/fast/devices.py; MINIMAC_DECODE_STEPS overrides)."""
    return int(os.environ.get("MINIMAC_DECODE_STEPS", "0")) or capabilities(t).decode_steps_per_call


def buckets(max_seq_len: int) -> list[int]:
    """Prefill lengths: buckets(256) -> [32, 64, 128, 256]; buckets(100) -> [32, 64, 100]."""
    out, b = [], MIN_BUCKET
    while b < max_seq_len:
        out.append(b)
        b *= 2
    return out + [max_seq_len]


class Session:
    """One batch size's decoding state: a decoding copy with its own KV caches, the ids and key mask (B, L+1), the
    sampling buffers, and the jits (prefill per bucket and rules, decode step per rules)."""

    def __init__(self, model, linears: dict[int, DecodeLinear], groups: dict[tuple, SharedInput], batch: int):
        c = model.config
        self.B, self.L, self.V = batch, c.max_seq_len, c.vocab_size
        self.ids = Tensor.zeros(batch, self.L + 1, dtype=dtypes.int32).contiguous().realize()
        self.twin = decoding_copy(model, linears, groups if capabilities(self.ids).decode_shared_inputs else None)
        self.mask = Tensor.ones(batch, self.L + 1, dtype=dtypes.int32).contiguous().realize()  # 0 = left padding
        self.state = SamplingState(batch, self.V)
        self.jits: dict[tuple, TinyJit] = {}

    def _finish(self, nxt: Tensor, at: UOp | int, rules: Rules) -> None:
        """Realize the picked ids (with the KV caches and sampling state they wrote), then store them at `at`.

        Two realizes: realized together with the assign, tinygrad 0.14 left the KV caches as unrealized graphs."""
        Tensor.realize(nxt, *([self.state.counter] if rules.sample else []),
                       *([self.state.seen] if rules.penalty else []))
        self.ids[:, at:at + 1].assign(nxt.reshape(self.B, 1)).realize()

    def prefill(self, bucket: int, last: int, rules: Rules) -> None:
        """Run ids[:, :bucket] through the model from position 0; pick from the logits at `last`, write at last+1."""
        key = ("prefill", bucket, rules)
        if key not in self.jits:
            def run(at: UOp) -> None:
                mask = self.mask[:, :bucket] if self.B > 1 else None
                h = self.twin.hidden_states(self.ids[:, :bucket], 0, mask, use_cache=True)   # (B, bucket, d)
                logits = self.twin.lm_head(h[:, at:at + 1]).float()                          # (B, 1, V)
                self._finish(pick(logits[:, 0], self.state, rules), at + 1, rules)
            self.jits[key] = TinyJit(run)
        self.jits[key](UOp.variable("last", 0, bucket - 1).bind(last))

    def step(self, pos: int, rules: Rules, count: int = 1) -> None:
        """Feed ids[:, pos] at position pos (its keys and values cached there); pick the next id into pos + 1; then
        the same from pos + 1, `count` steps in all, in one jit call (fewer calls: less host time a token)."""
        key = ("step", rules, count)
        if key not in self.jits:
            def run(p: UOp) -> None:
                for i in range(count):
                    mask = self.mask[:, :p + i + 1] if self.B > 1 else None
                    logits = self.twin(self.ids[:, p + i:p + i + 1], p + i, mask, use_cache=True, last_only=True)
                    self._finish(pick(logits[:, 0], self.state, rules), p + i + 1, rules)          # (B, 1, V) ^
            self.jits[key] = TinyJit(run)
        threads = capabilities(self.ids).decode_threads   # read when the kernels are compiled (the first two calls)
        with Context(NUM_CPU_THREADS=threads) if threads else contextlib.nullcontext():
            self.jits[key](UOp.variable("start_pos", 1, self.L - count).bind(pos))


class Decoder:
    """Everything decoding keeps for one model as it is now (minimac.jit_cache: a new one when a weight buffer, a
    block or an adapter changes): the shared DecodeLinears and their refresh jit, and a Session per batch size."""

    def __init__(self, model):
        self.linears: dict[int, DecodeLinear] = {}
        self.groups: dict[tuple, SharedInput] = {}
        self.sessions: dict[int, Session] = {}
        self.model = model  # a weak reference (minimac.jit_cache): the Decoder must not keep its model alive
        self._refresh = TinyJit(lambda: Tensor.realize(*[t for d in self.copies() for t in d.refresh()]))

    def copies(self) -> list:
        """What holds a copy of weights (merged adapters, W^T for batches, concatenated groups): refreshed each call."""
        return [d for d in [*self.linears.values(), *self.groups.values()] if d.copied]

    def session(self, batch: int) -> Session:
        if batch not in self.sessions:
            self.sessions[batch] = s = Session(self.model(), self.linears, self.groups, batch)
            if batch > 1 and capabilities(s.ids).decode_batch_transposed:
                grouped = {id(layer) for g in self.groups.values() for layer in g.layers}
                for d in [*self.groups.values(), *[d for d in self.linears.values() if id(d) not in grouped]]:
                    d.keep_transposed()
            self._refresh.reset()   # its capture lists the copies to refresh, and a session may have added some
        return self.sessions[batch]

    def refresh(self) -> None:
        """Make the copies again from the weights as they are now (training may have changed them in place): the
        adapters merged, the transposed copies for batches, the concatenated groups."""
        if self.copies():
            self._refresh()


def decoder(model) -> Decoder:
    """The model's Decoder, kept per model while its weights, blocks and adapters are the ones it copied."""
    def make(ref):
        d = Decoder(ref)
        d.session(1)  # builds the shared DecodeLinears
        return d
    return cached_jit(model, "decoder", make, with_caches=False)


def generate_rows(model, rows: list[list[int]], max_new_tokens: int, eos_id: int | None, settings: dict,
                  seed: int | None) -> Iterator[list[list[int]]]:
    """Yield, once a chunk, the new ids of each row since the last yield (a row that met `eos_id` stops after it).

    settings: temperature, top_k, top_p, repetition_penalty, vocab_limit (validated by minimac.generate)."""
    if max_new_tokens == 0:
        return
    dec = decoder(model)
    dec.refresh()
    s = dec.session(len(rows))
    K = steps_per_call(s.ids)
    B, L, V = s.B, s.L, s.V
    rules = Rules.of(vocab_size=V, **settings)
    window = [r[-L:] for r in rows]
    P = max(len(r) for r in window)
    ids, mask = np.zeros((B, L + 1), np.int32), np.ones((B, L + 1), np.int32)
    for b, r in enumerate(window):
        ids[b, P - len(r):P], mask[b, :P - len(r)] = r, 0
    contexts = np.zeros((B, V), bool)
    for b, r in enumerate(rows):
        contexts[b, r] = True
    write_into(s.ids, ids)
    write_into(s.mask, mask)
    s.state.set(seed=seed, contexts=contexts, **settings)
    done, made, cur = np.zeros(B, bool), 0, P   # cur: the index of the newest id
    with Context(TRAINING=0):
        s.prefill(next(b for b in buckets(L) if b >= P), P - 1, rules)
        fresh, made = 1, 1
        while True:
            n, i = min(CHUNK, max_new_tokens - made, L - cur), 0
            while i < n:
                count = K if n - i >= K else 1
                s.step(cur + i, rules, count)
                i += count
            cur, made, fresh = cur + n, made + n, fresh + n
            if n == 0 and made < max_new_tokens:  # the window is full: slide it by one and prefill it again
                ids = s.ids.numpy()
                yield _new_ids(ids[:, L + 1 - fresh:], done, eos_id)
                if done.all():
                    return
                write_into(s.ids, np.concatenate([ids[:, 1:], ids[:, -1:]], axis=1))
                mask = np.concatenate([mask[:, 1:], mask[:, -1:]], axis=1)
                write_into(s.mask, mask)
                s.prefill(L, L - 1, rules)
                fresh, made = 1, made + 1
                continue
            yield _new_ids(s.ids.numpy()[:, cur + 1 - fresh:cur + 1], done, eos_id)
            fresh = 0
            if made >= max_new_tokens or done.all():
                return


def _new_ids(block: np.ndarray, done: np.ndarray, eos_id: int | None) -> list[list[int]]:
    """Rows of new ids (B, n) -> lists, cut after each row's first eos_id; rows already done get []. Updates done."""
    out = []
    for b, row in enumerate(block.tolist()):
        if done[b]:
            out.append([])
            continue
        if eos_id is not None and eos_id in row:
            row, done[b] = row[:row.index(eos_id) + 1], True
        out.append(row)
    return out


def decode_tokens(model, ids: list[int], max_new_tokens: int, eos_id: int | None, settings: dict,
                  seed: int | None) -> Iterator[int]:
    """The `decode_tokens` seam (minimac/decoding.py): one prompt's new ids, read back a chunk at a time."""
    for chunk in generate_rows(model, [ids], max_new_tokens, eos_id, settings, seed):
        yield from chunk[0]


def decode_batch(model, rows: list[list[int]], max_new_tokens: int, eos_id: int | None, settings: dict,
                 seed: int | None) -> list[list[int]]:
    """The `decode_batch` seam: every row's new ids, the rows decoded together."""
    out: list[list[int]] = [[] for _ in rows]
    for chunk in generate_rows(model, rows, max_new_tokens, eos_id, settings, seed):
        for row, new in zip(out, chunk):
            row.extend(new)
    return out
