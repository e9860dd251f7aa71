"""Lesson 05 exercise: the SwiGLU feed-forward network. Fill in each function, then run `pytest lessons/05_swiglu`.

README.md gives the stages; peek at minimac/feedforward.py if stuck. numpy functions are float64 references; weights
are stored (out, in) like tinygrad.nn.Linear, so a projection is x @ W.T.
"""
from __future__ import annotations

import numpy as np
from tinygrad import Tensor
from tinygrad.nn import Linear  # noqa: F401


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), without overflow warnings for large |z| (try z = -1000).

    sigmoid(np.array([0.0])) -> [0.5]
    """
    raise NotImplementedError("Stage 1: sigmoid")


def silu(z: np.ndarray) -> np.ndarray:
    """SiLU (Swish): z * sigmoid(z). silu(np.array([1.0])) -> [0.7311]"""
    raise NotImplementedError("Stage 1: silu")


def silu_grad(z: np.ndarray) -> np.ndarray:
    """d silu / dz = sigmoid(z) * (1 + z * (1 - sigmoid(z))). Unlike ReLU's, it is not zero for negative z."""
    raise NotImplementedError("Stage 1: silu_grad")


def swiglu_np(x: np.ndarray, w1: np.ndarray, w2: np.ndarray, w3: np.ndarray) -> np.ndarray:
    """w2( silu(w1 x) * (w3 x) ) for x (..., d_model); w1, w3 (d_ff, d_model) gate and up; w2 (d_model, d_ff) down."""
    raise NotImplementedError("Stage 2: swiglu_np")


def ffn_param_count(d_model: int, d_ff: int, gated: bool = True) -> int:
    """Weights of a bias-free FFN: three d_model x d_ff matrices if gated (SwiGLU), two if plain (w2 relu(w1 x)).

    ffn_param_count(256, 1024) -> 786432;  ffn_param_count(256, 1024, gated=False) -> 524288
    """
    raise NotImplementedError("Stage 3: ffn_param_count")


def llama_d_ff(d_model: int, multiple_of: int = 256) -> int:
    """LLaMA's SwiGLU hidden size: int(2/3 * 4 * d_model), rounded *up* to a multiple of `multiple_of`.

    llama_d_ff(4096) -> 11008 (LLaMA-7B);  llama_d_ff(256) -> 768
    """
    raise NotImplementedError("Stage 3: llama_d_ff")


class SwiGLU:
    """Gated FFN (..., d_model) -> (..., d_model) with w1, w2, w3 = tinygrad.nn.Linear(..., bias=False).

    Sizes that are not positive raise ValueError("SwiGLU sizes must be positive, got d_model=32, d_ff=0").
    """

    def __init__(self, d_model: int, d_ff: int):
        raise NotImplementedError("Stage 4: SwiGLU.__init__")

    def __call__(self, x: Tensor) -> Tensor:
        raise NotImplementedError("Stage 4: SwiGLU.__call__")
