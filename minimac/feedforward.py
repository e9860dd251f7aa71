"""SwiGLU feed-forward network, as in LLaMA. Lesson 05.

    FFN(x) = w2( silu(w1 x) * (w3 x) )        silu(z) = z * sigmoid(z)

`w1` is the gate projection, `w3` the "up" projection (both d_model -> d_ff) and `w2` the "down" projection
(d_ff -> d_model); all three are bias-free. These names (from the seed and Meta's LLaMA code) are what LoRA targets.
The hidden size is `d_ff` exactly as configured: there is no "2/3 * 4d, rounded to a multiple of 256" rule, and the
seed's presets all use d_ff = 4 * d_model.

Worked example (d_model = d_ff = 1, all weights 1): x = 1 -> silu(1) * 1 = 0.7311 -> 0.7311.

Speed (tinygrad): `swiglu_reference` is the formula as written. `SwiGLU.__call__` computes the same numbers but tells
tinygrad which intermediates to store. Left to itself, tinygrad fuses `silu(w1 x) * (w3 x)`, exp included, into the
w2 matmul that reads it and recomputes it for every few output columns, and in the backward pass it nests the
d(hidden) = d(out) @ w2 matmul inside the matmuls that need it: 2.3x the arithmetic of a training step in all
(docs/performance.md). `.contiguous()` stores `hidden` once; `.contiguous_backward()` stores the gradients that
flow into `gate`, `up` and `hidden` once. Neither changes a number. `gated` computes silu(gate) * up with sigmoid(gate)
stored once and a hand-written backward pass that reads it: tinygrad's own gradient would evaluate exp again for
d(gate) and for d(up), and on the CPU exp is a polynomial in software (about 4 ns a value; nano's step: 3 exp passes
over every (token, d_ff) pair per layer, now 1).

Not covered: GeGLU and plain GELU/ReLU MLPs (the seed's alternative `ff_type`s), mixture-of-experts.
"""
from __future__ import annotations

from tinygrad import Tensor, UOp, function

from minimac.fast_exp import sigmoid  # tinygrad's sigmoid, faster on the CPU
from minimac.linear import Linear  # nn.Linear with a faster backward pass


def _gated_backward(grad: UOp, call: UOp) -> tuple[UOp, UOp, None]:
    """h = gate * s * up with s = sigmoid(gate): dh/dgate = up * s * (1 + gate * (1 - s)), dh/dup = gate * s."""
    gate, up, s = call.src[1:]
    return grad * up * s * (1 + gate * (1 - s)), grad * gate * s, None


@function(grad_fxn=_gated_backward)
def _gated(gate: Tensor, up: Tensor, s: Tensor) -> Tensor:
    return gate * s * up


def gated(gate: Tensor, up: Tensor) -> Tensor:
    """silu(gate) * up, the same numbers as `gate.silu() * up`; sigmoid(gate) is computed once and stored, and the
    backward pass reads it instead of computing exp again. gate, up (..., d_ff) -> (..., d_ff)."""
    return _gated(gate, up, sigmoid(gate).contiguous().detach())


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
        gate = self.w1(x).contiguous_backward()                      # (..., d_ff); its gradient is stored once
        up = self.w3(x).contiguous_backward()                        # (..., d_ff)
        hidden = gated(gate, up).contiguous().contiguous_backward()  # silu(gate) * up, stored once, in both directions
        return self.w2(hidden.dropout(self.dropout))                 # dropout only under Context(TRAINING=1)


def swiglu_reference(ffn: SwiGLU, x: Tensor) -> Tensor:
    """The formula as written, without storage hints: w2(silu(w1 x) * w3 x). Same numbers as `ffn(x)`, slower."""
    hidden = ffn.w1(x).silu() * ffn.w3(x)
    return ffn.w2(hidden.dropout(ffn.dropout))
