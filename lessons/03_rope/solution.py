"""Lesson 03 reference solution: RoPE tables, half-split and interleaved rotation, and a tinygrad module."""
from __future__ import annotations

import numpy as np
from tinygrad import Tensor, dtypes


def inv_frequencies(head_dim: int, base: float = 10000.0) -> np.ndarray:
    """The d/2 rotation speeds base ** (-2i / d), float64."""
    if head_dim <= 0 or head_dim % 2:
        raise ValueError(f"head_dim must be a positive even number, got {head_dim}")
    return base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)


def rope_tables(head_dim: int, max_seq_len: int, base: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin), each (max_seq_len, head_dim), half-split layout cat(angles, angles)."""
    angles = np.outer(np.arange(max_seq_len, dtype=np.float64), inv_frequencies(head_dim, base))  # (L, d/2)
    emb = np.concatenate([angles, angles], axis=-1)  # feature i and i + d/2 share angle i
    return np.cos(emb), np.sin(emb)


def rotate_half(x: np.ndarray) -> np.ndarray:
    """[x1, x2] -> [-x2, x1] over the last axis."""
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def apply_rope(x: np.ndarray, start_pos: int = 0, base: float = 10000.0) -> np.ndarray:
    """Half-split RoPE on x (..., T, d) at positions start_pos .. start_pos + T - 1."""
    T, d = x.shape[-2], x.shape[-1]
    cos, sin = rope_tables(d, start_pos + T, base)
    cos, sin = cos[start_pos:], sin[start_pos:]  # (T, d), broadcast over the leading axes
    return x * cos + rotate_half(x) * sin


def apply_rope_interleaved(x: np.ndarray, start_pos: int = 0, base: float = 10000.0) -> np.ndarray:
    """Interleaved RoPE: pair i is features (2i, 2i + 1)."""
    T, d = x.shape[-2], x.shape[-1]
    angles = np.outer(np.arange(start_pos, start_pos + T), inv_frequencies(d, base))  # (T, d/2)
    cos, sin = np.cos(angles), np.sin(angles)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty(x.shape, dtype=np.float64)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = a * sin + b * cos
    return out


def interleaved_permutation(head_dim: int) -> np.ndarray:
    """Even features first, then odd ones: interleaved pair (2i, 2i+1) lands on half-split pair (i, i + d/2)."""
    return np.concatenate([np.arange(0, head_dim, 2), np.arange(1, head_dim, 2)])


class RotaryEmbedding:
    """tinygrad RoPE with float32 tables; not a parameter (no __dict__)."""

    __slots__ = ("cos", "max_seq_len", "sin")

    def __init__(self, head_dim: int, max_seq_len: int, base: float = 10000.0):
        cos, sin = rope_tables(head_dim, max_seq_len, base)  # float64 on the host only
        self.cos = Tensor(cos.astype(np.float32), dtype=dtypes.float32)
        self.sin = Tensor(sin.astype(np.float32), dtype=dtypes.float32)
        self.max_seq_len = max_seq_len

    def __call__(self, x: Tensor, start_pos: int = 0) -> Tensor:
        T, h = x.shape[-2], x.shape[-1] // 2
        if not 0 <= start_pos <= self.max_seq_len - T:
            raise ValueError(f"RoPE positions {start_pos}..{start_pos + T - 1} exceed max_seq_len {self.max_seq_len}")
        cos, sin = self.cos[start_pos:start_pos + T], self.sin[start_pos:start_pos + T]  # (T, d)
        return x * cos + (-x[..., h:]).cat(x[..., :h], dim=-1) * sin
