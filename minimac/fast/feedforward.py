"""SwiGLU's hidden layer with its intermediates stored once: the fast version of the `swiglu_hidden` seam
(minimac/feedforward.py). Lesson 05 (speed appendix).

Left to itself, tinygrad fuses `silu(w1 x) * (w3 x)`, exp included, into the w2 matmul that reads it and recomputes
it for every few output columns, and in the backward pass it nests the d(hidden) = d(out) @ w2 matmul inside the
matmuls that need it: 2.3x the arithmetic of a training step in all (docs/performance.md). `.contiguous()` stores
`hidden` once; `.contiguous_backward()` stores the gradients that flow into `gate`, `up` and `hidden` once. Neither
changes a number. `gated` computes silu(gate) * up with sigmoid(gate) stored once and a hand-written backward pass
that reads it: tinygrad's own gradient would evaluate exp again for d(gate) and for d(up), and on the CPU exp is a
polynomial in software (nano's step: 3 exp passes over every (token, d_ff) pair per layer, now 1).
"""
from __future__ import annotations

from tinygrad import Tensor, UOp, function

from minimac.fast.fast_exp import sigmoid


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


def swiglu_hidden(gate: Tensor, up: Tensor) -> Tensor:
    """silu(gate) * up, stored once in both directions, with the gradients of gate and up stored once too."""
    return gated(gate.contiguous_backward(), up.contiguous_backward()).contiguous().contiguous_backward()
