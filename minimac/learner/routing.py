"""Using what a continual learner knows: pick an adapter (or the bare base), then evaluate or generate. Lesson 11.

"One base model, many domain adapters": under strategy "adapter-per-domain" every domain has its own LoRA adapter,
and a route says which one runs. A route is an adapter name, or None for the frozen base with adapters disabled.

- By name: `generate(..., domain="law")` runs adapter "law" (an unknown name is a ValueError listing the adapters).
- Automatic: `route(learner, ids)` scores each adapter, and the bare base, on the first window of the text
  ([eot] + its first seq_len tokens) and picks the lowest loss. The router sees those tokens and nothing else.
  In `evaluate`, a set named like an adapter uses that adapter; any other set is routed automatically on its own
  first window, which is then also scored: those window tokens are the only scored tokens the choice has seen.
- Other strategies have one model and nothing to choose: the route is their (single) adapter.

Leaves out: mixing adapters in one forward pass, learned (gating-network) routers.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from minimac import generate as generation
from minimac import lora, metrics


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
    """The route with the lowest loss on ids[:seq_len + 1] (adapter-per-domain), else the learner's one adapter."""
    if not learner.config.per_domain:
        return lora.active_adapter(learner.model) if learner.config.uses_lora else None
    if len(ids) < 2 or not learner.adapters:
        return None
    probe = np.asarray(ids[:learner.config.seq_len + 1])
    losses = {}
    for name in [None, *learner.adapters]:
        with using(learner, name):
            losses[name] = metrics.evaluate(learner.model, probe, learner.config.seq_len, 1)["loss"]
    return min(losses, key=losses.get)


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
