"""Lesson 02 exercise: RMSNorm from scratch. Fill in each function, then run `pytest lessons/02_rmsnorm`.

README.md gives the stages; peek at minimac/norm.py if stuck. numpy functions work in float64 (they are references);
tinygrad functions work in float32 (the device may not have float64).
"""
from __future__ import annotations

import numpy as np
from tinygrad import Tensor, dtypes  # noqa: F401


def layer_norm_np(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * weight + bias.

    layer_norm_np(np.array([1.0, 3.0]), np.ones(2), np.zeros(2), eps=0) -> [-1.0, 1.0]
    """
    raise NotImplementedError("Stage 1: layer_norm_np")


def rms_norm_np(x: np.ndarray, weight: np.ndarray | None = None, eps: float = 1e-6) -> np.ndarray:
    """RMSNorm over the last axis: x / sqrt(mean(x**2) + eps) * weight (weight None means ones). eps inside the sqrt.

    rms_norm_np(np.array([3.0, 4.0]), eps=0) -> [0.8485, 1.1314]   (mean square 12.5, rms 3.5355)
    """
    raise NotImplementedError("Stage 1: rms_norm_np")


def rms_norm(x: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """RMSNorm in tinygrad. Compute in float32 whatever x's dtype, and return the result cast back to x.dtype.

    Hint: x.cast(dtypes.float32), .square(), .mean(axis=-1, keepdim=True), .rsqrt().
    """
    raise NotImplementedError("Stage 2: rms_norm")


class RMSNorm:
    """RMSNorm with a learned gain `weight` of shape (dim,), float32, initialised to ones.

    RMSNorm(0) raises ValueError("RMSNorm dim must be positive, got 0"); a negative eps raises
    ValueError("RMSNorm eps must be >= 0, got -1.0").
    """

    def __init__(self, dim: int, eps: float = 1e-6):
        raise NotImplementedError("Stage 3: RMSNorm.__init__")

    def __call__(self, x: Tensor) -> Tensor:
        raise NotImplementedError("Stage 3: RMSNorm.__call__")


def rms_norm_grad_np(x: np.ndarray, weight: np.ndarray, grad_out: np.ndarray,
                     eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Backward pass of y = rms_norm_np(x, weight, eps), by hand.

    x and grad_out (= dL/dy) have shape (..., d), weight (d,). Return (dL/dx of shape (..., d), dL/dweight of shape (d,)).
    With r = (mean(x**2) + eps) ** -0.5:  dL/dx_j = r * g_j w_j - r**3 * x_j / d * sum_i(g_i w_i x_i),
    and dL/dw is (g * x * r) summed over every axis but the last.
    """
    raise NotImplementedError("Stage 4: rms_norm_grad_np")
