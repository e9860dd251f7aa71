"""Lesson 04 exercise: grouped-query attention with a KV cache. Fill in each function, then run
`pytest lessons/04_attention`.

README.md gives the stages; peek at minimac/attention.py if stuck. Everything here is numpy float64. Shapes:
B batch, T new tokens, S keys (= cached + new), Hq query heads, Hkv key/value heads, hd head size, d = Hq * hd.
Weights are stored (out, in) like tinygrad.nn.Linear, so a projection is x @ W.T.
"""
from __future__ import annotations

import numpy as np

MASK_VALUE = float(np.finfo(np.float32).min)  # the finite "minus infinity" minimac uses for hidden scores


def apply_rope(x: np.ndarray, start_pos: int = 0, base: float = 10000.0) -> np.ndarray:
    """Given (lesson 03): half-split RoPE on x (..., T, hd) at positions start_pos .. start_pos + T - 1."""
    T, hd = x.shape[-2], x.shape[-1]
    angles = np.outer(np.arange(start_pos, start_pos + T), base ** (-np.arange(0, hd, 2) / hd))  # (T, hd/2)
    cos, sin = np.cos(np.concatenate([angles, angles], -1)), np.sin(np.concatenate([angles, angles], -1))
    return x * cos + np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], axis=-1) * sin


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, stable for large inputs (subtract the row maximum first).

    softmax(np.array([1000.0, 1000.0])) -> [0.5, 0.5]
    """
    raise NotImplementedError("Stage 1: softmax")


def causal_mask(T: int, start_pos: int = 0) -> np.ndarray:
    """Boolean (T, start_pos + T): True where query i (at absolute position start_pos + i) may see key j, i.e. j <= start_pos + i.

    causal_mask(2, start_pos=2) -> [[True, True, True, False], [True, True, True, True]]
    """
    raise NotImplementedError("Stage 1: causal_mask")


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Scaled dot-product attention: softmax(q k^T / sqrt(hd)) v.

    q (..., T, hd), k and v (..., S, hd), mask bool broadcastable to (..., T, S) (True = visible) -> (..., T, hd).
    Hidden scores are set to MASK_VALUE (not -inf), so a row with nothing visible stays finite.
    """
    raise NotImplementedError("Stage 1: attention")


def repeat_kv(x: np.ndarray, n_rep: int) -> np.ndarray:
    """(B, Hkv, S, hd) -> (B, Hkv * n_rep, S, hd), each KV head repeated n_rep times in a row: [k0, k0, k1, k1]."""
    raise NotImplementedError("Stage 2: repeat_kv")


class KVCache:
    """The keys and values seen so far, each (B, Hkv, S, hd); empty (None) at first."""

    def __init__(self):
        self.k: np.ndarray | None = None
        self.v: np.ndarray | None = None

    def __len__(self) -> int:
        """How many positions are cached (0 when empty)."""
        raise NotImplementedError("Stage 3: KVCache.__len__")

    def update(self, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append k, v (B, Hkv, T, hd) after the cached positions; return all keys and values (B, Hkv, S, hd)."""
        raise NotImplementedError("Stage 3: KVCache.update")


def gqa_forward(x: np.ndarray, weights: dict[str, np.ndarray], num_query_heads: int, num_kv_heads: int,
                cache: KVCache | None = None, base: float = 10000.0) -> np.ndarray:
    """Causal grouped-query self-attention on x (B, T, d) -> (B, T, d).

    weights: {"q": (Hq*hd, d), "k": (Hkv*hd, d), "v": (Hkv*hd, d), "o": (d, Hq*hd)}.
    Steps: project; split heads to (B, H, T, hd); RoPE on q and k; (stage 3) with a cache, the new tokens sit at
    positions len(cache) .. len(cache) + T - 1, and their k, v are appended to the cache (after RoPE, before
    repeat_kv); repeat the KV heads; attend with causal_mask(T, start_pos); merge heads to (B, T, Hq*hd); project out.
    Raises ValueError("num_query_heads (4) must be a multiple of num_kv_heads (3)") for heads that do not divide.
    """
    raise NotImplementedError("Stage 2: gqa_forward (stage 3: the cache)")


def kv_cache_bytes(num_layers: int, num_kv_heads: int, head_dim: int, num_tokens: int,
                   bytes_per_value: int = 4) -> int:
    """Bytes of KV cache for one sequence of num_tokens tokens: a key and a value vector per layer and KV head.

    kv_cache_bytes(4, 2, 64, 1) -> 4096      (the tiny preset, float32, one token)
    """
    raise NotImplementedError("Stage 4: kv_cache_bytes")
