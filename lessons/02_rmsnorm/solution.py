"""Lesson 02 reference solution: RMSNorm in numpy (float64 references) and tinygrad (float32)."""
from __future__ import annotations

import numpy as np
from tinygrad import Tensor, dtypes


def layer_norm_np(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * weight + bias."""
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * weight + bias


def rms_norm_np(x: np.ndarray, weight: np.ndarray | None = None, eps: float = 1e-6) -> np.ndarray:
    """RMSNorm over the last axis: x / sqrt(mean(x**2) + eps) * weight (weight None means ones)."""
    x = np.asarray(x, dtype=np.float64)
    y = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps)
    return y if weight is None else y * weight


def rms_norm(x: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """RMSNorm in tinygrad, computed in float32 and cast back to x.dtype."""
    xf = x.cast(dtypes.float32)  # squares of half-precision values overflow: 300**2 > 65504
    y = xf * (xf.square().mean(axis=-1, keepdim=True) + eps).rsqrt()  # (..., d) * (..., 1)
    if weight is not None:
        y = y * weight.cast(dtypes.float32)
    return y.cast(x.dtype)


class RMSNorm:
    """RMSNorm with a learned gain `weight` of shape (dim,), initialised to ones."""

    def __init__(self, dim: int, eps: float = 1e-6):
        if dim <= 0:
            raise ValueError(f"RMSNorm dim must be positive, got {dim}")
        if eps < 0:
            raise ValueError(f"RMSNorm eps must be >= 0, got {eps}")
        self.eps = eps
        self.weight = Tensor.ones(dim, dtype=dtypes.float32).contiguous()  # contiguous: a real, trainable buffer

    def __call__(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.weight, self.eps)


def rms_norm_grad_np(x: np.ndarray, weight: np.ndarray, grad_out: np.ndarray,
                     eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Backward pass of y = x * r * w with r = (mean(x**2) + eps) ** -0.5, by hand."""
    x, g = np.asarray(x, dtype=np.float64), np.asarray(grad_out, dtype=np.float64)
    d = x.shape[-1]
    r = 1.0 / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps)   # (..., 1)
    gw = g * weight                                              # gradient reaching x * r
    # dr/dx_j = -r**3 * x_j / d, so the second term carries the coupling between features
    dx = r * gw - r ** 3 * x / d * (gw * x).sum(-1, keepdims=True)
    dw = (g * x * r).reshape(-1, d).sum(0)
    return dx, dw
