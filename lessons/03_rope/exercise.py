"""Lesson 03 exercise: rotary position embeddings (RoPE). Fill in each function, then run `pytest lessons/03_rope`.

README.md gives the stages; peek at minimac/rope.py if stuck. Shapes: x is (..., T, d) with d = head_dim even; a
position p rotates pair i by the angle p * inv_freq[i]. numpy functions are float64 references; the tinygrad class
stores float32 tables.
"""
from __future__ import annotations

import numpy as np
from tinygrad import Tensor, dtypes  # noqa: F401


def inv_frequencies(head_dim: int, base: float = 10000.0) -> np.ndarray:
    """The d/2 rotation speeds base ** (-2i / d) for i = 0 .. d/2 - 1, float64.

    inv_frequencies(4, base=100.0) -> [1.0, 0.1]
    A head_dim that is not a positive even number raises ValueError("... must be a positive even number ...").
    """
    raise NotImplementedError("Stage 1: inv_frequencies")


def rope_tables(head_dim: int, max_seq_len: int, base: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin), each (max_seq_len, head_dim) float64, in the half-split layout: angles = outer(positions, inv_freq)
    of shape (max_seq_len, d/2), then cat(angles, angles) on the last axis so that features i and i + d/2 share one.

    rope_tables(4, 3, base=100.0)[1][2] -> sin([2.0, 0.2, 2.0, 0.2])
    """
    raise NotImplementedError("Stage 1: rope_tables")


def rotate_half(x: np.ndarray) -> np.ndarray:
    """[x1, x2] -> [-x2, x1] over the last axis (x1 = first half, x2 = second half).

    rotate_half(np.array([1, 2, 3, 4])) -> [-3, -4, 1, 2]
    """
    raise NotImplementedError("Stage 2: rotate_half")


def apply_rope(x: np.ndarray, start_pos: int = 0, base: float = 10000.0) -> np.ndarray:
    """Half-split RoPE on x (..., T, d): the T rows sit at positions start_pos .. start_pos + T - 1.

    x' = x * cos + rotate_half(x) * sin, with the rows start_pos .. start_pos + T - 1 of the tables.
    """
    raise NotImplementedError("Stage 2: apply_rope")


def apply_rope_interleaved(x: np.ndarray, start_pos: int = 0, base: float = 10000.0) -> np.ndarray:
    """The RoPE paper's layout: pair i is features (2i, 2i + 1), rotated by (start_pos + t) * inv_freq[i].

    For each pair (a, b) and angle g: (a, b) -> (a cos g - b sin g, a sin g + b cos g).
    """
    raise NotImplementedError("Stage 3: apply_rope_interleaved")


def interleaved_permutation(head_dim: int) -> np.ndarray:
    """The feature permutation `perm` (int array of length head_dim) such that, for every x,

        apply_rope_interleaved(x) == apply_rope(x[..., perm])[..., np.argsort(perm)]

    interleaved_permutation(8) -> [0, 2, 4, 6, 1, 3, 5, 7]
    """
    raise NotImplementedError("Stage 3: interleaved_permutation")


class RotaryEmbedding:
    """tinygrad RoPE: float32 cos/sin Tensors of shape (max_seq_len, head_dim), built from your `rope_tables`.

    Call as rope(x, start_pos) with x (..., T, head_dim) Tensor -> Tensor of the same shape. Positions outside
    0 .. max_seq_len - 1 raise ValueError("RoPE positions 30..34 exceed max_seq_len 32").
    The tables must not be trainable: declare __slots__ = ("cos", "max_seq_len", "sin") so the object has no __dict__,
    and tinygrad's get_parameters / get_state_dict will not find them.
    """

    def __init__(self, head_dim: int, max_seq_len: int, base: float = 10000.0):
        raise NotImplementedError("Stage 4: RotaryEmbedding.__init__")

    def __call__(self, x: Tensor, start_pos: int = 0) -> Tensor:
        raise NotImplementedError("Stage 4: RotaryEmbedding.__call__")
