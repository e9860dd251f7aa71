"""A TinyJit kept per model and reused while it still describes the model. Lessons 06 and 07.

Capturing a TinyJit costs about two eager calls: scheduling and compiling a whole forward pass, seconds on a CPU or
a GPU, where a replay takes milliseconds. A jit made fresh on every call (the safe default) pays that each time;
`cached_jit` keeps it instead, keyed by what a capture depends on:

    key = (each weight's buffer, each KV cache's buffer, each block's sub-modules, each LoRA layer's mode,
           the seams minimac.fast has replaced and its flags, such as the matmul dtype)
           buffers and sub-modules compared by identity

- weights updated in place (an optimizer step, `assign`) keep their buffers: same key, and a replay reads the new
  values;
- `load_state_dict` swapping a buffer, LoRA wrapping a layer, an adapter switched, disabled or merged, a controller
  swapping a block's feed-forward (homeostasis, dendritic gating): a new key, and a fresh capture (a stale jit
  would silently keep running the old graph).

    >>> jit = cached_jit(model, ("nll", 8, 64), lambda ref: TinyJit(lambda x: ref()(x).realize()))  # doctest: +SKIP

A forward pass that branches on a plain Python attribute (not a Tensor, not a LoRA mode) must not use this.
Entries live as long as the model (a weak-key dictionary). Per name, the jits of the model's current buffers are
kept, at most `MAX_PER_NAME`, the most recently used, so switching between a few adapters (routing) does not
recapture every time; a jit whose buffers the model no longer has is dropped with them.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any

from tinygrad import TinyJit

MAX_PER_NAME = 8
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {name: [(key, jit), ...] newest last}


def graph_key(model: Any, with_caches: bool = True) -> tuple:
    """What a captured forward pass of `model` depends on: every weight's and KV cache's buffer (the objects
    themselves, so a freed buffer's id cannot be reused), every block's sub-modules, every LoRA layer's mode
    and minimac.ops.graph_key() (the fast path's replacements and flags). `with_caches=False` leaves out the KV
    caches, for a jit that keeps caches of its own (minimac/fast/decode.py)."""
    from tinygrad.nn.state import get_state_dict

    from minimac import ops

    buffers = [(name, t.uop.base.realized) for name, t in get_state_dict(model).items()]
    caches = [(c.k.uop.base.realized, c.v.uop.base.realized) for layer in getattr(model, "layers", [])
              if with_caches and (c := getattr(getattr(layer, "attention", None), "cache", None)) is not None]
    blocks = [tuple(vars(layer).values()) for layer in getattr(model, "layers", [])]
    return tuple(buffers), tuple(caches), tuple(blocks), (*adapter_modes(model), ops.graph_key())


def adapter_modes(model: Any) -> list[tuple]:
    """(path, active adapter, disabled, merged adapter) of every LoRA-wrapped layer (minimac/lora.py), found by those
    attributes: this module sits below lora.py and does not import it."""
    found, stack, seen = [], [("", model)], set()
    while stack:
        path, obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, int, float, bool, type(None))):
            continue
        seen.add(id(obj))
        if hasattr(obj, "merged_adapter"):
            found.append((path, obj.active_adapter, obj.disabled, obj.merged_adapter))
        elif isinstance(obj, (list, tuple)):
            stack += [(f"{path}.{i}", v) for i, v in enumerate(obj)]
        elif hasattr(obj, "__dict__") and not hasattr(obj, "uop"):   # modules, not Tensors
            stack += [(f"{path}.{k}", v) for k, v in vars(obj).items()]
    return sorted(found, key=lambda t: t[0])


def same_key(a: Any, b: Any) -> bool:
    """Structural equality, with buffers compared by identity (None, str and bool by value)."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same_key(x, y) for x, y in zip(a, b))
    return a is b if not isinstance(a, (str, bool)) and a is not None else a == b


def cached_jit(model: Any, name: Hashable, make: Callable[[weakref.ref], Any], with_caches: bool = True) -> Any:
    """The jit `make(weakref to model)` built for `model` under `name`, reused while `graph_key(model)` is unchanged.

    Realize the weights before calling (a lazy weight has no buffer yet, so its key would change on first use).
    `make` gets a weak reference so the jit does not keep the model, its own key in the cache, alive. `make` may
    return any object that holds jits (minimac/fast/decode.py keeps a Decoder).
    """
    key, entries = graph_key(model, with_caches), _CACHE.setdefault(model, {}).setdefault(name, [])
    for i, (held, jit) in enumerate(entries):
        if same_key(held, key):
            entries.append(entries.pop(i))  # most recently used last
            return jit
    # a buffer that is no longer the model's never comes back: drop the jits (and the buffers they hold) that used one
    entries[:] = [(held, jit) for held, jit in entries if same_key(held[:2], key[:2])][-(MAX_PER_NAME - 1):]
    jit = make(weakref.ref(model))
    entries.append((key, jit))
    return jit


def cached(model: Any, name: Hashable) -> list[TinyJit]:
    """The jits kept for `model` under `name`, oldest first (for tests and curiosity)."""
    return [jit for _, jit in _CACHE.get(model, {}).get(name, [])]
