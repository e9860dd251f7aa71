"""Lesson 04 reference solution: attention, grouped-query attention with RoPE, a KV cache, cache memory."""
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
    """Softmax over the last axis, stable for large inputs."""
    e = np.exp(x - x.max(-1, keepdims=True))  # the largest exponent is 0: no overflow
    return e / e.sum(-1, keepdims=True)


def causal_mask(T: int, start_pos: int = 0) -> np.ndarray:
    """Boolean (T, start_pos + T): query i sees key j iff j <= start_pos + i."""
    return np.tril(np.ones((T, start_pos + T), dtype=bool), k=start_pos)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """softmax(q k^T / sqrt(hd)) v with hidden scores set to MASK_VALUE."""
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])  # (..., T, S)
    if mask is not None:
        scores = np.where(mask, scores, MASK_VALUE)
    return softmax(scores) @ v                                  # (..., T, hd)


def repeat_kv(x: np.ndarray, n_rep: int) -> np.ndarray:
    """(B, Hkv, S, hd) -> (B, Hkv * n_rep, S, hd), contiguous groups."""
    return np.repeat(x, n_rep, axis=1)


class KVCache:
    """The keys and values seen so far, each (B, Hkv, S, hd); empty (None) at first."""

    def __init__(self):
        self.k: np.ndarray | None = None
        self.v: np.ndarray | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def update(self, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.k = k if self.k is None else np.concatenate([self.k, k], axis=2)
        self.v = v if self.v is None else np.concatenate([self.v, v], axis=2)
        return self.k, self.v


def gqa_forward(x: np.ndarray, weights: dict[str, np.ndarray], num_query_heads: int, num_kv_heads: int,
                cache: KVCache | None = None, base: float = 10000.0) -> np.ndarray:
    """Causal grouped-query self-attention on x (B, T, d) -> (B, T, d), optionally through a KV cache."""
    if num_query_heads % num_kv_heads:
        raise ValueError(f"num_query_heads ({num_query_heads}) must be a multiple of num_kv_heads ({num_kv_heads})")
    B, T, _ = x.shape
    hd = weights["q"].shape[0] // num_query_heads

    def heads(y, H):  # (B, T, H*hd) -> (B, H, T, hd)
        return y.reshape(B, T, H, hd).transpose(0, 2, 1, 3)

    start_pos = 0 if cache is None else len(cache)
    q = apply_rope(heads(x @ weights["q"].T, num_query_heads), start_pos, base)  # (B, Hq, T, hd)
    k = apply_rope(heads(x @ weights["k"].T, num_kv_heads), start_pos, base)     # (B, Hkv, T, hd)
    v = heads(x @ weights["v"].T, num_kv_heads)                                  # (B, Hkv, T, hd)
    if cache is not None:
        k, v = cache.update(k, v)  # (B, Hkv, start_pos + T, hd): the cache keeps Hkv heads, not Hq
    n_rep = num_query_heads // num_kv_heads
    out = attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), causal_mask(T, start_pos))  # (B, Hq, T, hd)
    return out.transpose(0, 2, 1, 3).reshape(B, T, num_query_heads * hd) @ weights["o"].T


def kv_cache_bytes(num_layers: int, num_kv_heads: int, head_dim: int, num_tokens: int,
                   bytes_per_value: int = 4) -> int:
    """2 (key and value) x layers x KV heads x head_dim x tokens x bytes per number."""
    return 2 * num_layers * num_kv_heads * head_dim * num_tokens * bytes_per_value
