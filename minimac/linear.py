"""`Linear` and `matmul`: tinygrad's, with every matmul laid out for a fast schedule. Lesson 07.

`matmul(a, b)` is `a @ b` with a hand-written backward pass, and `Linear` is tinygrad's nn.Linear (same weight, same
numbers, same isinstance) that uses it. How fast a matmul runs depends on how its operands lie in memory. CPUs run
C[m, n] += A[m, k] B[k, n] fastest when B and C are contiguous along n (`minimac.cpu_tiles`, outer-product tiles).
nn.Linear computes x @ W^T with W stored (out, in), so B = W^T is contiguous along k instead. That is a dot-product
layout, and on the CPU it ran at half the speed. So `matmul` lays out all three of a layer's matmuls that way:

    forward      y  = x @ W^T       W^T copied to (in, out) first: out-features contiguous, the copy is weight-sized
    input grad   dx = dy @ W        W (out, in): in-features contiguous, as stored
    weight grad  dW = dy^T @ x      dy^T copied to (out, tokens) once; x read by rows as it lies

The weight gradient sums over tokens. Read in place, dy's rows lie out-features apart: for the tied lm_head that is
16 KB, a power of two, and the strided reads of 4 values per row kept evicting each other from the cache (the kernel
ran at 22-29 GFLOPS). The copy of dy^T (tokens x out, memory-bound, 4 ms for the lm_head with cpu_tiles' blocked
transpose) makes each read a stream along the tokens, and the result comes out in W's own (out, in) layout. An earlier
version copied x^T and dy^T both, to suit tinygrad's default dot-product schedule; docs/performance.md has the
measurements.

Worked example: matmul(Tensor([[1., 2.]]), Tensor([[3.], [4.]])) -> [[11.]], and its gradients are those of `a @ b`
(tests/test_speed_paths.py checks values and gradients against numpy).

Not covered: bias-carrying layers use nn.Linear's own path; no custom kernels (the copy is a plain tinygrad op).
"""
from __future__ import annotations

from tinygrad import Tensor, UOp, function, nn


def _matmul_backward(grad: UOp, call: UOp) -> tuple[UOp, UOp]:
    """c = a @ b, a (..., M, K), b (..., K, N): both gradients read their operands in the order they are stored."""
    a, b = call.src[1:]
    da = grad @ b.transpose(-1, -2)          # (M, N) @ (N, K): for b = W^T this is W itself, contiguous along K
    db_t = grad.transpose(-1, -2).contiguous() @ a  # (N, M) @ (M, K): grad^T copied once, rows of a as they lie
    return da, db_t.transpose(-1, -2)               # for b = W^T, W's gradient is db_t itself: (out, in)


@function(grad_fxn=_matmul_backward)
def _matmul(a: Tensor, b: Tensor) -> Tensor:
    return a @ b.contiguous()                # b contiguous along N (for b = W^T: a weight-sized copy)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """`a @ b` (the same numbers), its operands and gradients laid out for fast schedules; see the module docstring.

    a (..., M, K) @ b (..., K, N) with the same leading axes; anything else (broadcasting, symbolic shapes, as in a
    cached decoding step) is plain `a @ b`.
    """
    concrete = all(isinstance(s, int) for s in (*a.shape, *b.shape))
    if not concrete or a.ndim != b.ndim or a.shape[:-2] != b.shape[:-2]:
        return a @ b
    return _matmul(a, b)


def linear(x: Tensor, weight: Tensor) -> Tensor:
    """x (..., in) @ weight^T, weight (out, in) as nn.Linear stores it, through `matmul`: (..., out)."""
    y = matmul(x.reshape(-1, x.shape[-1]), weight.transpose())          # (N, in) @ (in, out)
    return y.reshape(*x.shape[:-1], weight.shape[0])


class Linear(nn.Linear):
    """tinygrad.nn.Linear through `matmul` when it has no bias (all of minimac's layers): same weight
    (out, in), same numbers, still an nn.Linear for LoRA and get_state_dict."""

    def __call__(self, x: Tensor) -> Tensor:
        return super().__call__(x) if self.bias is not None else linear(x, self.weight)
