"""Using what a continual learner knows: pick an adapter (or the bare base), then evaluate or generate. Lesson 11.

"One base model, many domain adapters": under strategy "adapter-per-domain" every domain has its own LoRA adapter,
and a route says which one runs. A route is an adapter name, or None for the frozen base with adapters disabled.

- By name: `generate(..., domain="law")` runs adapter "law" (an unknown name is a ValueError listing the adapters).
- Automatic, by likelihood (as DEMix routes its experts, Gururangan et al. 2022): `route(learner, ids)` scores
  each adapter and the bare base on the prompt's first `route_windows` windows of seq_len tokens (the whole prompt
  when it is shorter) and takes the lowest loss, in nats per token, with a margin: an adapter wins only if it beats
  the bare base by `route_margin`, so text of no learned domain keeps the base model. The router sees those
  tokens and nothing else. `route_many` routes many prompts at once (one batched pass per route).
  In `evaluate`, a set named like an adapter uses that adapter; any other set is routed automatically on its own
  first windows, which are then also scored: those tokens are the only scored tokens the choice has seen.
- Other strategies have one model and nothing to choose: the route is their (single) adapter.

Switching is cheap: a Python-level choice of the LoRA pair per layer, plus copying the saved modules (RMSNorm
gains: a few thousand numbers) into the model; the benchmark measures it (docs/forgetting.md).

Leaves out: mixing adapters in one forward pass, learned (gating-network) routers.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from tinygrad import Context, Tensor, TinyJit

from minimac import generate as generation
from minimac import lora, metrics
from minimac.jit_cache import cached_jit
from minimac.learner.mixing import chunk_ids


@contextmanager
def using(learner: Any, route: str | None) -> Iterator[None]:
    """Run with adapter `route` (None: the bare base), then put back the adapter that was active."""
    model = learner.model
    if not learner.config.uses_lora:
        yield
        return
    before = lora.active_adapter(model)
    try:
        if route is None:
            lora.disable_adapters(model)
        else:
            lora.enable_adapters(model)
            lora.set_adapter(model, route)
        yield
    finally:
        lora.enable_adapters(model)
        if before is not None:
            lora.set_adapter(model, before)


def route(learner: Any, ids: list[int]) -> str | None:
    """The route of one prompt (adapter-per-domain), else the learner's one adapter. See `route_many`."""
    if not learner.config.per_domain:
        return lora.active_adapter(learner.model) if learner.config.uses_lora else None
    return route_many(learner, [ids])[0]


def route_many(learner: Any, prompts: list[list[int]]) -> list[str | None]:
    """For each prompt (token ids): the adapter with the lowest loss on its first route_windows windows, or None
    (the bare base) unless that adapter beats the bare base by route_margin nats per token."""
    if not learner.adapters:
        return [None] * len(prompts)
    losses = losses_by_route(learner, prompts)
    return [choose({r: v[i] for r, v in losses.items()}, learner.config.route_margin) for i in range(len(prompts))]


def choose(losses: dict[str | None, float], margin: float) -> str | None:
    """The lowest loss among the adapters, unless it is not `margin` below the bare base's (key None).

    >>> choose({None: 3.0, "law": 2.8, "med": 2.9}, margin=0.1), choose({None: 3.0, "law": 2.95}, margin=0.1)
    ('law', None)
    """
    adapters = {r: v for r, v in losses.items() if r is not None}
    best = min(adapters, key=adapters.get) if adapters else None
    if best is None or (None in losses and not adapters[best] < losses[None] - margin):
        return None
    return best


def losses_by_route(learner: Any, prompts: list[list[int]]) -> dict[str | None, np.ndarray]:
    """{route: (n,) mean loss in nats per token of each prompt's first route_windows windows} for the bare base
    (None) and every adapter. Prompts with fewer than 2 ids get 0 everywhere (and so the bare base)."""
    cfg = learner.config
    windows, owner = [], []
    for i, ids in enumerate(prompts):
        if len(ids) >= 2:
            chunks = chunk_ids(ids, cfg.seq_len)[:cfg.route_windows]
            windows += chunks
            owner += [i] * len(chunks)
    owner = np.asarray(owner, dtype=np.int64)
    tokens = np.bincount(owner, [len(w) - 1 for w in windows], len(prompts)) if windows else np.zeros(len(prompts))
    out = {}
    for name in [None, *learner.adapters]:
        with using(learner, name):
            nll = window_nll(learner, windows) if windows else np.zeros(0)
        out[name] = np.bincount(owner, nll, len(prompts)) / np.maximum(tokens, 1)
    return out


def window_nll(learner: Any, windows: list[np.ndarray]) -> np.ndarray:
    """(n,) summed next-token loss (nats) of each window (at most seq_len + 1 ids), in (batch_size, seq_len)
    batches through one jitted forward pass (kept per model and route, minimac/jit_cache.py)."""
    cfg, model = learner.config, learner.model
    B, T = cfg.batch_size, cfg.seq_len
    n = -(-len(windows) // B) * B
    x, y = np.zeros((n, T), dtype=np.int32), np.full((n, T), -1, dtype=np.int32)
    for i, w in enumerate(windows):
        x[i, :len(w) - 1], y[i, :len(w) - 1] = w[:-1], w[1:]
    Tensor.realize(*model.parameters())  # the jit's key must see real buffers
    step = cached_jit(model, ("row_nll", B, T), lambda ref: TinyJit(lambda x, y: _row_nll(ref(), x, y)))
    with Context(TRAINING=0):
        out = [step(Tensor(x[b:b + B]), Tensor(y[b:b + B])).numpy() for b in range(0, n, B)]
    return np.concatenate(out)[:len(windows)].astype(np.float64)


def _row_nll(model: Any, x: Tensor, y: Tensor) -> Tensor:
    """x, y (B, T) int (y = -1: not scored) -> (B,) summed next-token nll of each row."""
    logits = model(x).float()                                                      # (B, T, V)
    picked = logits.gather(-1, (y != -1).where(y, 0).unsqueeze(-1)).squeeze(-1)     # (B, T)
    return ((logits.logsumexp(-1) - picked) * (y != -1).float()).sum(axis=1).realize()


def resolve(learner: Any, domain: str | None, ids: list[int]) -> str | None:
    """domain=None: automatic; a name: that adapter (adapter-per-domain only; other strategies ignore it)."""
    if domain is None or not learner.config.per_domain:
        return route(learner, ids)
    if domain not in learner.adapters:
        raise ValueError(f"unknown domain {domain!r} for routing; the adapters are {learner.adapters} "
                         "(or pass domain=None to route automatically)")
    return domain


def evaluate(learner: Any, sets: dict[str, str]) -> dict[str, float]:
    """{set name: bits per byte} via metrics.bits_per_byte_of_text, each set through its route (see module doc)."""
    if not isinstance(sets, dict) or not sets:
        raise TypeError(f"evaluate takes a non-empty dict {{name: text}}, got {type(sets).__name__}")
    out = {}
    for name, text in sets.items():
        ids = learner.encode(text)
        with using(learner, resolve(learner, name if name in learner.adapters else None, ids)):
            out[name] = metrics.bits_per_byte_of_text(learner.model, learner.tokenizer, text, learner.config.seq_len,
                                              learner.config.batch_size)
    return out


def stream(learner: Any, prompt: str, max_new_tokens: int, temperature: float, top_k: int | None,
           top_p: float | None, domain: str | None, seed: int | None) -> Iterator[str]:
    """Text pieces of the continuation of `prompt`; the route is chosen now, before the first piece."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    ids = [learner.tokenizer.eot_id, *learner.tokenizer.encode(prompt)]
    return _pieces(learner, ids, resolve(learner, domain, ids), max_new_tokens, temperature, top_k, top_p, seed)


def _pieces(learner, ids, chosen, max_new_tokens, temperature, top_k, top_p, seed) -> Iterator[str]:
    tok = learner.tokenizer
    with using(learner, chosen):
        pending: list[int] = []  # a multi-byte character can span tokens: yield once it decodes cleanly
        for token in generation.stream(learner.model, ids, max_new_tokens, temperature=temperature, top_k=top_k,
                                       top_p=top_p, eos_id=tok.eot_id, seed=seed):
            pending.append(token)
            text = tok.decode(pending, skip_special_tokens=True)
            if not text.endswith("\ufffd"):
                yield text
                pending = []
        if pending:
            yield tok.decode(pending, skip_special_tokens=True)
