"""SwiGLU feed-forward network, as in LLaMA. Lesson 05.

    FFN(x) = w2( silu(w1 x) * (w3 x) )        silu(z) = z * sigmoid(z)

`w1` is the gate projection, `w3` the "up" projection (both d_model -> d_ff) and `w2` the "down" projection
(d_ff -> d_model); all three are bias-free. These names (from the seed and Meta's LLaMA code) are what LoRA targets.
The hidden size is `d_ff` exactly as configured: there is no "2/3 * 4d, rounded to a multiple of 256" rule, and the
seed's presets all use d_ff = 4 * d_model.

Worked example (d_model = d_ff = 1, all weights 1): x = 1 -> silu(1) * 1 = 0.7311 -> 0.7311.

`swiglu_hidden` is the formula as written; `minimac.fast.install()` puts minimac/fast/feedforward.py's version in
its place (the same numbers, with sigmoid and the gradients stored once, which tinygrad would otherwise recompute).

Not covered: GeGLU and plain GELU/ReLU MLPs (the seed's alternative `ff_type`s), mixture-of-experts.
"""
from __future__ import annotations

from tinygrad import Tensor

from minimac.ops import Linear, seam


@seam
def swiglu_hidden(gate: Tensor, up: Tensor) -> Tensor:
    """silu(gate) * up, with silu(z) = z * sigmoid(z). gate = w1 x, up = w3 x: (..., d_ff) -> (..., d_ff)."""
    return gate.silu() * up


class SwiGLU:
    """Gated feed-forward block: (..., d_model) -> (..., d_model).

    >>> ffn = SwiGLU(d_model=64, d_ff=256)
    >>> ffn(Tensor.randn(2, 5, 64)).shape
    (2, 5, 64)
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        if d_model <= 0 or d_ff <= 0:
            raise ValueError(f"SwiGLU sizes must be positive, got d_model={d_model}, d_ff={d_ff}")
        self.w1 = Linear(d_model, d_ff, bias=False)  # gate
        self.w2 = Linear(d_ff, d_model, bias=False)  # down
        self.w3 = Linear(d_model, d_ff, bias=False)  # up
        self.dropout = dropout

    def __call__(self, x: Tensor) -> Tensor:
        hidden = swiglu_hidden(self.w1(x), self.w3(x))               # (..., d_ff)
        return self.w2(hidden.dropout(self.dropout))                 # dropout only under Context(TRAINING=1)
