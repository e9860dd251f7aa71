"""RMSNorm: scale each vector by the inverse of its root-mean-square. Lesson 02.

    y = x / sqrt(mean(x**2 over the last axis) + eps) * weight

Unlike LayerNorm there is no mean subtraction and no bias. `eps` sits *inside* the square root (as in the seed and
in HF Llama), and the arithmetic runs in float32 even when the activations are float16/bfloat16, because squaring a
half-precision number overflows quickly; the result is cast back to the input dtype.

Worked example (eps = 0, weight = ones): x = [3, 4] has mean(x**2) = 12.5, rms = 3.5355, so y = [0.8485, 1.1314].

Not covered: LayerNorm (the seed's alternative `norm_type`), which minimac does not use.
"""
from __future__ import annotations

from tinygrad import Tensor, dtypes


def rms_norm(x: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """Normalise `x` (..., d) by its root-mean-square over the last axis; multiply by `weight` (d,) if given."""
    xf = x.cast(dtypes.float32)
    y = xf * (xf.square().mean(axis=-1, keepdim=True) + eps).rsqrt()  # (..., d) / (..., 1)
    if weight is not None:
        y = y * weight.cast(dtypes.float32)
    return y.cast(x.dtype)


class RMSNorm:
    """Root-mean-square normalisation with a learned per-feature gain `weight` (initialised to ones).

    >>> norm = RMSNorm(2, eps=0.0)
    >>> [round(float(v), 4) for v in norm(Tensor([[3.0, 4.0]])).numpy()[0]]
    [0.8485, 1.1314]
    """

    def __init__(self, dim: int, eps: float = 1e-6):
        if dim <= 0:
            raise ValueError(f"RMSNorm dim must be positive, got {dim}")
        if eps < 0:
            raise ValueError(f"RMSNorm eps must be >= 0, got {eps}")
        self.eps = eps
        self.weight = Tensor.ones(dim, dtype=dtypes.float32).contiguous()  # a real buffer, so it can be trained

    def __call__(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.weight, self.eps)
