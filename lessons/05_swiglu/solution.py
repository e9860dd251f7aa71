"""Lesson 05 reference solution: SiLU, SwiGLU, FFN parameter arithmetic and a tinygrad module."""
from __future__ import annotations

import numpy as np
from tinygrad import Tensor
from tinygrad.nn import Linear


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) through tanh, which never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def silu(z: np.ndarray) -> np.ndarray:
    """SiLU (Swish): z * sigmoid(z)."""
    return z * sigmoid(z)


def silu_grad(z: np.ndarray) -> np.ndarray:
    """d/dz [z s(z)] = s + z s (1 - s)."""
    s = sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def swiglu_np(x: np.ndarray, w1: np.ndarray, w2: np.ndarray, w3: np.ndarray) -> np.ndarray:
    """w2( silu(w1 x) * (w3 x) )."""
    hidden = silu(x @ w1.T) * (x @ w3.T)  # (..., d_ff): the gate times the up projection
    return hidden @ w2.T                  # (..., d_model)


def ffn_param_count(d_model: int, d_ff: int, gated: bool = True) -> int:
    """Three d_model x d_ff matrices if gated, two if plain."""
    return (3 if gated else 2) * d_model * d_ff


def llama_d_ff(d_model: int, multiple_of: int = 256) -> int:
    """int(2/3 * 4d) rounded up to a multiple of `multiple_of`: about the weights of a plain 4d MLP."""
    hidden = int(2 * 4 * d_model / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class SwiGLU:
    """Gated FFN with bias-free w1 (gate), w3 (up), w2 (down)."""

    def __init__(self, d_model: int, d_ff: int):
        if d_model <= 0 or d_ff <= 0:
            raise ValueError(f"SwiGLU sizes must be positive, got d_model={d_model}, d_ff={d_ff}")
        self.w1 = Linear(d_model, d_ff, bias=False)
        self.w2 = Linear(d_ff, d_model, bias=False)
        self.w3 = Linear(d_model, d_ff, bias=False)

    def __call__(self, x: Tensor) -> Tensor:
        return self.w2(self.w1(x).silu() * self.w3(x))
