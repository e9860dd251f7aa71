"""`matmul`, `linear` and `embedding` with every matmul laid out for a fast schedule: the fast versions of the seams
`linear`, `low_rank_linear` and `embedding` (minimac/ops.py). Lesson 07 (speed appendix).

`matmul(a, b)` is `a @ b` with a hand-written backward pass, and `linear` is `x @ W^T` through it. How fast a matmul
runs depends on how its operands lie in memory. CPUs run C[m, n] += A[m, k] B[k, n] fastest when B and C are
contiguous along n (`minimac.fast.cpu_tiles`, outer-product tiles). nn.Linear computes x @ W^T with W stored
(out, in), so B = W^T is contiguous along k instead. That is a dot-product layout, and on the CPU it ran at half the
speed. So `matmul` lays out all three of a layer's matmuls that way:

    forward      y  = x @ W^T       W^T copied to (in, out) first: out-features contiguous, the copy is weight-sized
    input grad   dx = dy @ W        W (out, in): in-features contiguous, as stored
    weight grad  dW = dy^T @ x      dy^T copied to (out, tokens) once; x read by rows as it lies

The weight gradient sums over tokens. Read in place, dy's rows lie out-features apart: for the tied lm_head that is
16 KB, a power of two, and the strided reads of 4 values per row kept evicting each other from the cache (the kernel
ran at 22-29 GFLOPS). The copy of dy^T (tokens x out, memory-bound, 4 ms for the lm_head with cpu_tiles' blocked
transpose) makes each read a stream along the tokens, and the result comes out in W's own (out, in) layout. An earlier
version copied x^T and dy^T both, to suit tinygrad's default dot-product schedule; docs/performance.md has the
measurements.

What else the backward pass stores: dx, so that where one input feeds several matmuls (q, k, v; w1, w3) their
gradients are added afterwards instead of being fused into one kernel of several sums; and x, so that a norm in front
of the layer is not recomputed inside dW for every output tile (nano on the CPU: 484 -> 342 ms of kernels a step).

Mixed precision (`set_matmul_dtype("bfloat16")`, or MINIMAC_MATMUL_DTYPE): every matmul's operands are cast to half
precision and stored once that way, so that tensor cores load them directly; sums, results, weights, gradients and
the optimizer stay float32, as in torch.autocast. On GPUs two more things keep tensor cores fed: a weight gradient's
sum over the tokens is split into chunks (`_weight_grad_t`), and the embedding's gradient is a one-hot matmul
(`embedding`). And on GPUs a matmul with few outputs (LoRA's rank-8 side, the 512-token matmuls of a LoRA step)
splits its sum the same way (`_k_chunks`), so that enough threads share the work. Off by default: float32 is exact
and what the tests compare with numpy, and the CPU gains nothing.

Worked example: matmul(Tensor([[1., 2.]]), Tensor([[3.], [4.]])) -> [[11.]], and its gradients are those of `a @ b`
(tests/test_speed_paths.py checks values and gradients against numpy; tests/test_mixed_precision.py the half
precision and GPU paths).

Not covered: bias-carrying layers use nn.Linear's own path; no custom kernels (the copies are plain tinygrad ops);
float16 without loss scaling (bfloat16 has float32's range and needs none; float16 gradients below 6e-8 vanish).
"""
from __future__ import annotations

import os
import types

from tinygrad import Context, Tensor, UOp, dtypes, function, nn
from tinygrad.dtype import DType

from minimac import ops
from minimac.fast.devices import capabilities

MATMUL_DTYPES = {"float32": dtypes.float32, "bfloat16": dtypes.bfloat16, "float16": dtypes.float16}
_operand_dtype: DType = dtypes.float32


def set_matmul_dtype(name: str) -> None:
    """The dtype matmul operands are cast to: "float32" (default, exact), "bfloat16" or "float16" (tensor cores on
    GPUs). Sums are always float32, and so are the results, the weights and their gradients ("mixed precision").
    Set it before a step is jitted: a TinyJit keeps the dtype it captured. `MINIMAC_MATMUL_DTYPE` sets it at import.
    """
    global _operand_dtype
    if name not in MATMUL_DTYPES:
        raise ValueError(f"unknown matmul dtype {name!r}; choose one of {sorted(MATMUL_DTYPES)}")
    _operand_dtype = MATMUL_DTYPES[name]
    ops.flags["matmul_dtype"] = name  # part of minimac.jit_cache's key: a captured graph keeps the dtype it saw


def matmul_dtype() -> str:
    """The name set by `set_matmul_dtype`: "float32", "bfloat16" or "float16"."""
    return next(name for name, dt in MATMUL_DTYPES.items() if dt == _operand_dtype)


def _operand(t):
    """t in the matmul dtype. A cast operand is stored once, so that tensor cores load it directly (tinygrad applies
    them only to plain loads) and the backward pass keeps the half-sized copy."""
    return t if t.dtype == _operand_dtype else t.cast(_operand_dtype).contiguous()


SPLIT_OUTPUTS = 1 << 20  # on GPUs, a 2-D matmul with fewer outputs than this splits its sum (`_k_chunks`)
MIN_CHUNK = 64           # ... into chunks of at least this many terms


def _k_chunks(a, b) -> int:
    """How many chunks the sum of a (M, K) @ b (K, N) is split into: 1, except on GPUs for a result of fewer than
    SPLIT_OUTPUTS entries.

    A GPU thread computes an output (or a few) with a loop over K. LoRA's matmuls have r = 8 columns or rows:
    (tokens, in) @ (in, 8) makes 4,096 outputs for 512 tokens, too few threads for an H100, each with a loop of 512
    to 2,048 steps (60-100 GFLOPS, 14 ms of the 46 ms LoRA step of `small`). The base model's matmuls in the same
    step are little better: (512, 2048) @ (2048, 512) is 262,144 outputs, a few dozen tiles for 132 SMs, and ran at
    3-5 TFLOPS. Split into S chunks, S partial sums run in parallel and are added afterwards; S is a power of two
    that divides K, with at least MIN_CHUNK terms a chunk, and about SPLIT_OUTPUTS * 4 partial outputs in all.
    Training batches (4,096 tokens x 512 and up) are above the limit and keep one sum. The CPU has two cores to fill:
    never split there.
    """
    if a.ndim != 2 or b.ndim != 2 or not capabilities(a).split_matmul_sums:
        return 1
    (M, K), N = a.shape, b.shape[1]
    if not all(isinstance(v, int) for v in (M, K, N)) or M * N >= SPLIT_OUTPUTS:
        return 1
    S = 1
    while K % (2 * S) == 0 and K // (2 * S) >= MIN_CHUNK and M * N * S < 4 * SPLIT_OUTPUTS:
        S *= 2
    return S


def _mm(a, b):
    """a @ b with operands in the matmul dtype, summed in float32 into a float32 result (Tensors or UOps)."""
    a, b = _operand(a), _operand(b)
    S = _k_chunks(a, b)
    if S == 1:
        return a.matmul(b, dtype=dtypes.float32)
    (M, K), N = a.shape, b.shape[1]
    return _sum_of_chunks(a.reshape(M, S, K // S).permute(1, 0, 2), b.reshape(S, K // S, N))  # (S, M, K/S) @ ...


def _sum_of_chunks(a_s, b_s):
    """(S, M, k) @ (S, k, N) -> (M, N): the S partial products of a split sum, made in parallel and then added.

    Both stored: fused into the matmul, the sum over S made it a kernel of two sums again (which tensor cores do not
    serve), and left unstored, every reader of the result (AdamW's three updates, the global norm) added the S
    partials up again.
    """
    return _mm(a_s, b_s).contiguous().sum(0).contiguous()


def _matmul_backward(grad: UOp, call: UOp) -> tuple[UOp, UOp]:
    """c = a @ b, a (..., M, K), b (..., K, N): both gradients read their operands in the order they are stored."""
    a, b = call.src[1:]
    # (M, N) @ (N, K): for b = W^T this is W itself, contiguous along K. Stored, so that where a layer's input feeds
    # several matmuls (q, k, v; w1, w3) their gradients are added after, not fused into one multi-sum kernel
    da = _mm(grad, b.transpose(-1, -2)).contiguous()
    # db_t stored as the matmul makes it: left unstored, a reader's layout (attention's dK, transposed back into
    # k_proj's (B, T, Hkv * hd)) was fused into the matmul's store, the merged Hkv * hd axis is not one affine index,
    # and tensor cores did not apply (5.6 TFLOPS, 7 ms of the medium bf16 step on the H100)
    db_t = _weight_grad_t(grad, a).contiguous()
    return da, db_t.transpose(-1, -2)  # for b = W^T, W's gradient is db_t itself: (out, in)


SPLIT_ROWS = 512  # where split_matmul_sums (minimac/fast/devices.py), a weight gradient sums over chunks of these


def _weight_grad_t(grad: UOp, a: UOp) -> UOp:
    """grad^T @ a, (N, M) @ (M, K): grad^T copied once, a stored once (not recomputed per output tile: a norm, say).

    The sum runs over M, the tokens (4,096 in a 16 x 256 batch), and the result is weight-sized, so a GPU gets few
    output tiles for many threads: the gradient of a 128 x 512 projection ran at 1 TFLOPS on the H100. There the sum
    is split into chunks of SPLIT_ROWS rows, one batched matmul (S, N, M/S) @ (S, M/S, K) makes S partial sums in
    parallel, and they are added. The CPU (two cores here) is busy enough without it.
    """
    g, a = grad.cast(_operand_dtype), _operand(a).contiguous()
    M = a.shape[-2]
    S = M // SPLIT_ROWS if a.ndim == 2 and M % SPLIT_ROWS == 0 and capabilities(a).split_matmul_sums else 1
    if S <= 1:
        return _mm(g.transpose(-1, -2).contiguous(), a)
    g_t = g.reshape(S, M // S, g.shape[-1]).transpose(-1, -2).contiguous()                  # (S, N, M/S)
    return _sum_of_chunks(g_t, a.reshape(S, M // S, a.shape[-1]))                           # (N, K)


@function(grad_fxn=_matmul_backward)
def _matmul(a: Tensor, b: Tensor) -> Tensor:
    return _mm(a, b.cast(_operand_dtype).contiguous())  # b contiguous along N (for b = W^T: a weight-sized copy)


def matmul(a: Tensor, b: Tensor, plain: bool = False) -> Tensor:
    """`a @ b` (the same numbers), its operands and gradients laid out for fast schedules; see the module docstring.

    a (..., M, K) @ b (..., K, N) with the same leading axes; anything else (broadcasting, symbolic shapes, as in a
    cached decoding step), or `plain`, is `a @ b` in the matmul dtype, with tinygrad's own backward pass.
    """
    concrete = all(isinstance(s, int) for s in (*a.shape, *b.shape))
    if plain or not concrete or a.ndim != b.ndim or a.shape[:-2] != b.shape[:-2]:
        return _mm(a, b)
    return _matmul(a, b)


def _embedding_backward(grad: UOp, call: UOp) -> tuple[UOp, None]:
    """d(weight) = onehot(idx)^T @ grad: a (V, N) @ (N, d) matmul, the one-hot stored once in the matmul dtype."""
    weight, idx = call.src[1:]
    g = Tensor(grad).reshape(-1, weight.shape[1])                                       # (N, d)
    onehot_t = Tensor.arange(weight.shape[0]).reshape(-1, 1) == Tensor(idx).reshape(1, -1)      # (V, N) bool
    dw = _mm(onehot_t.cast(_operand_dtype).contiguous(), g).contiguous()               # (V, N) @ (N, d) -> (V, d)
    return dw.uop, None  # stored: with tied weights it is added to lm_head's gradient, not fused into its matmul


@function(grad_fxn=_embedding_backward)
def _embedding(weight: Tensor, idx: Tensor) -> Tensor:
    return weight[idx]                                                                 # tinygrad folds this to a gather


def embedding(weight: Tensor, idx: Tensor) -> Tensor:
    """weight[idx]: (V, d) rows picked by int ids (...,) -> (..., d), for the `embedding` seam (minimac/ops.py).

    Left to itself, tinygrad sums the gradient with a compare-and-select over every (token, vocabulary entry) pair,
    a reduction that it fused with the tied lm_head's weight gradient into the step's slowest kernel on the H100.
    Where the device has an atomic scatter-add (`atomic_embedding`: tinygrad's nn.Embedding under USE_ATOMICS, the
    CPU's fastest way) that is used; elsewhere the gradient is one (V, N) @ (N, d) matmul with a stored one-hot, on
    the same fast matmul schedules (tensor cores in bfloat16).
    """
    if capabilities(weight).atomic_embedding:
        with Context(USE_ATOMICS=1):
            return nn.Embedding.__call__(types.SimpleNamespace(weight=weight), idx)
    return _embedding(weight, idx)


def linear(x: Tensor, weight: Tensor) -> Tensor:
    """x (..., in) @ weight^T, weight (out, in) as nn.Linear stores it, through `matmul`: (..., out)."""
    y = matmul(x.reshape(-1, x.shape[-1]), weight.transpose())          # (N, in) @ (in, out)
    return y.reshape(*x.shape[:-1], weight.shape[0])


def low_rank_linear(x: Tensor, weight: Tensor) -> Tensor:
    """x (..., in) @ weight^T for a weight with few rows or columns: LoRA's A (r, in) and B (out, r), r = 8.

    On GPUs through `linear`, whose matmuls split the sums of such skinny results (`_k_chunks`): the LoRA step of
    `small` on an H100 went from 41.8 to 36.5 ms. The CPU never splits, and there `linear`'s copies and stored
    gradients only added kernels (206 for nano's LoRA step, each a few microseconds of work and more of dispatch:
    4-6 ms a step), so it keeps tinygrad's plain matmul and backward pass.
    """
    if not capabilities(x).split_matmul_sums:
        return x @ weight.transpose()
    return linear(x, weight)


set_matmul_dtype(os.environ.get("MINIMAC_MATMUL_DTYPE", "float32"))
