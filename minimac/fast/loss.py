"""logsumexp with one pass of exp: the fast version of the `logsumexp` seam (minimac/ops.py), inside every
cross-entropy. Lesson 07 (speed appendix).

e = exp(x - max) is stored and the backward pass reads it: d logsumexp(x) / dx = softmax(x) = e / sum(e). tinygrad's
own gradient evaluates exp again, over every (token, vocabulary entry) pair: on the CPU, where exp is a software
polynomial, that second pass cost 4-8 ms of a nano step.
"""
from __future__ import annotations

from tinygrad import Tensor, UOp, function

from minimac.fast.fast_exp import exp


def _logsumexp_backward(grad: UOp, call: UOp) -> tuple[UOp, None, None, None]:
    """d logsumexp(x) / dx = softmax(x) = e / s, from the stored e = exp(x - max) and s = sum(e)."""
    e, s = call.src[2], call.src[3]
    return e * (grad / s), None, None, None


@function(grad_fxn=_logsumexp_backward)
def _logsumexp_of(x: Tensor, e: Tensor, s: Tensor, m: Tensor) -> Tensor:
    return m + s.log()


def logsumexp(x: Tensor) -> Tensor:
    """x.logsumexp(-1), the same numbers, with one pass of exp. x (..., V) -> (...)"""
    m = x.max(-1, keepdim=True).detach()                       # (..., 1): exp never overflows
    e = exp(x - m).contiguous().detach()                       # (..., V), stored once
    return _logsumexp_of(x, e, e.sum(-1, keepdim=True).contiguous().detach(), m).squeeze(-1)
