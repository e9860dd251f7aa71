"""`Linear` and `matmul`: tinygrad's, with a backward pass that reads its operands in a fast order. Lesson 07.

`matmul(a, b)` is `a @ b` with a hand-written backward pass, and `Linear` is tinygrad's nn.Linear (same weight, same
numbers, same isinstance) that uses it. The gradients of c = a @ b are da = dc @ b^T and db = a^T @ dc. tinygrad's
autograd reads the operands of db = a^T @ dc where they lie, striding across rows to sum over M (the tokens), and its
CPU code for that layout runs at a third of the speed of a matmul whose operands are contiguous along the summed axis.
`matmul`'s backward first copies a^T and dc^T (cheap, memory-bound copies) so both of its matmuls read contiguously.
Weight gradients are a third of a training step's arithmetic; docs/performance.md has the measurements.

Worked example: matmul(Tensor([[1., 2.]]), Tensor([[3.], [4.]])) -> [[11.]], and its gradients are those of `a @ b`
(tests/test_speed_paths.py checks values and gradients against numpy).

Not covered: bias-carrying layers use nn.Linear's own path; no custom kernels (the copies are plain tinygrad ops).
"""
from __future__ import annotations

from tinygrad import Tensor, UOp, function, nn


def _matmul_backward(grad: UOp, call: UOp) -> tuple[UOp, UOp]:
    """c = a @ b, a (..., M, K), b (..., K, N): each gradient's matmul reads both operands along its summed axis."""
    a, b = call.src[1:]
    da = grad.contiguous() @ b.contiguous().transpose(-1, -2)        # sums over N: dc and b are contiguous along N
    at, gt = a.transpose(-1, -2).contiguous(), grad.transpose(-1, -2).contiguous()  # (..., K, M), (..., N, M)
    return da, at @ gt.transpose(-1, -2)                                # sums over M: both copies contiguous along M


@function(grad_fxn=_matmul_backward)
def _matmul(a: Tensor, b: Tensor) -> Tensor:
    return a @ b


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """`a @ b` (the same numbers) with a faster backward pass on tinygrad's CPU backend; see the module docstring.

    a (..., M, K) @ b (..., K, N) with the same leading axes; anything else (broadcasting, symbolic shapes, as in a
    cached decoding step) is plain `a @ b`.
    """
    concrete = all(isinstance(s, int) for s in (*a.shape, *b.shape))
    if not concrete or a.ndim != b.ndim or a.shape[:-2] != b.shape[:-2]:
        return a @ b
    return _matmul(a, b)


class Linear(nn.Linear):
    """tinygrad.nn.Linear with `matmul`'s backward pass when it has no bias (all of minimac's layers): same weight
    (out, in), same numbers, still an nn.Linear for LoRA and get_state_dict."""

    def __call__(self, x: Tensor) -> Tensor:
        if self.bias is not None:
            return super().__call__(x)
        y = matmul(x.reshape(-1, x.shape[-1]), self.weight.transpose())   # (N, in) @ (in, out)
        return y.reshape(*x.shape[:-1], self.weight.shape[0])
