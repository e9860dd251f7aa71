"""Rotary position embeddings (RoPE), half-split rotation as in GPT-NeoX and HF Llama. Lesson 03.

RoPE encodes the position p of a query or key by rotating pairs of its features by the angle p * inv_freq[i], with
inv_freq[i] = base ** (-2i / d) for i in [0, d/2). The dot product of a rotated query and a rotated key then depends
only on their *distance*, which is what attention needs.

Which features form a pair? minimac (like the seed's code, GPT-NeoX and HF Llama) pairs feature i with feature
i + d/2: the "half-split" layout, with tables cos/sin = cat(freqs, freqs) of shape (max_seq_len, d) and

    rotate_half([x1, x2]) = [-x2, x1]          rotate_half([1, 2, 3, 4]) -> [-3, -4, 1, 2]
    x' = x * cos + rotate_half(x) * sin

The seed's docstring describes the *interleaved* layout of the original paper (pairs (0, 1), (2, 3), ...;
rotate_half([1, 2, 3, 4]) -> [-2, 1, -4, 3]), but its code is half-split. We follow the code. Both layouts are the
same model up to a fixed permutation of the q/k projection rows, but checkpoints are not interchangeable.

FIX (seed bug): the seed always used positions 0..T-1, which breaks cached decoding. Here `start_pos` shifts the
positions, so T new tokens after a cache of `start_pos` tokens sit at start_pos..start_pos+T-1.

The tables are computed once in numpy float64 on the host and stored as float32 (METAL has no float64). They are
not parameters: `RotaryEmbedding` uses `__slots__`, so tinygrad's `get_state_dict`/`get_parameters` (which walk
`__dict__`) never see them and no optimizer can touch them.

Not covered: NTK / YaRN context extension, partial rotary dimensions, the interleaved layout.
"""
from __future__ import annotations

import numpy as np
from tinygrad import Tensor, UOp, dtypes


def rope_tables(head_dim: int, max_seq_len: int, base: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """Host-side cos and sin tables, each (max_seq_len, head_dim) float64, in the cat(freqs, freqs) layout.

    >>> cos, sin = rope_tables(4, 3)
    >>> cos.shape, float(cos[0, 0]), round(float(sin[1, 0]), 4)
    ((3, 4), 1.0, 0.8415)
    """
    if head_dim <= 0 or head_dim % 2:
        raise ValueError(f"RoPE head_dim must be a positive even number, got {head_dim}")
    if max_seq_len <= 0:
        raise ValueError(f"RoPE max_seq_len must be positive, got {max_seq_len}")
    if base <= 0:
        raise ValueError(f"RoPE base must be positive, got {base}")
    inv_freq = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (d/2,)
    freqs = np.outer(np.arange(max_seq_len, dtype=np.float64), inv_freq)      # (max_seq_len, d/2)
    emb = np.concatenate([freqs, freqs], axis=-1)                              # (max_seq_len, d)
    return np.cos(emb), np.sin(emb)


def rotate_half(x: Tensor) -> Tensor:
    """[x1, x2] -> [-x2, x1] over the last axis (half-split pairs i and i + d/2)."""
    d = x.shape[-1] // 2
    return (-x[..., d:]).cat(x[..., :d], dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x (..., T, d) by cos/sin (T, d), which broadcast over the leading axes."""
    return x * cos + rotate_half(x) * sin


class RotaryEmbedding:
    """Holds the cos/sin tables for one head size and applies them from a position offset.

    >>> rope = RotaryEmbedding(head_dim=8, max_seq_len=16)
    >>> q = Tensor.ones(1, 2, 3, 8)          # (B, H, T, hd)
    >>> rope(q, start_pos=5).shape           # positions 5, 6, 7
    (1, 2, 3, 8)
    """

    __slots__ = ("base", "cos", "head_dim", "max_seq_len", "sin")  # no __dict__: invisible to get_parameters

    def __init__(self, head_dim: int, max_seq_len: int, base: float = 10000.0):
        cos, sin = rope_tables(head_dim, max_seq_len, base)
        self.head_dim, self.max_seq_len, self.base = head_dim, max_seq_len, float(base)
        # float64 only on the host; the device sees float32 buffers
        self.cos = Tensor(cos.astype(np.float32), dtype=dtypes.float32).realize()
        self.sin = Tensor(sin.astype(np.float32), dtype=dtypes.float32).realize()

    def __call__(self, x: Tensor, start_pos: int | UOp = 0) -> Tensor:
        """x: (..., T, head_dim) at positions start_pos..start_pos+T-1. `start_pos` may be a bound UOp variable."""
        T = x.shape[-2]
        if isinstance(start_pos, int) and not 0 <= start_pos <= self.max_seq_len - T:
            raise ValueError(f"RoPE positions {start_pos}..{start_pos + T - 1} exceed max_seq_len {self.max_seq_len}")
        cos = self.cos[start_pos:start_pos + T].cast(x.dtype)  # (T, hd)
        sin = self.sin[start_pos:start_pos + T].cast(x.dtype)
        return apply_rotary(x, cos, sin)
