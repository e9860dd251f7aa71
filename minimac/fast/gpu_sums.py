"""Sums on a GPU with enough threads: matrix-vector products as one block of threads an output row, and sums to a
few values as one wide block each. The schedules of a decoding step's reductions. Lesson 06 (speed appendix).

A decoding step multiplies one row x (a few, for a batch) by each weight W (out, in): every output is a dot product
of length `in`, and each value of W is read once and used once. Such a kernel is as fast as the GPU reads W, and a GPU
reads fast only when many threads read at once, the 32 threads of a warp from consecutive addresses.

tinygrad's heuristic (`hand_coded_optimizations`) gives these kernels few threads with long loops. Listed for an
sm_90 target (`python benchmarks/decode_kernels.py --preset medium --target sm_90`, no GPU needed), medium's decoding
step multiplies by its feed-forward weights (768 -> 3,072) in 32 blocks of 32 threads, each thread summing 3 rows of
768 values one after the other (`r_32_32_3_192_4`), and by w2 (3,072 -> 768) in 48 blocks, each thread looping 384
times (`r_48_8_4_4_384`): 1,024-1,536 threads to read 9.4 MB, where an H100 runs up to 270,000 at once (132 x 2,048).

**Matrix-vector products** (`rows`, devices.py `matvec_threads`): each output row is one block of T threads (32, one
warp). Thread t reads W[row, 4t .. 4t+3] as one float4, then the 4 values T float4s further on, and so on; a warp's
load is 512 consecutive bytes. The block adds its T partial sums in shared memory. A batch (at most 8 rows of x) is
unrolled inside each thread, so each value of W is loaded once for every row.

    y[b, row] = sum_k x[b, k] * W[row, k]      W: stride 1 along k; x reads k but not row
    opts: UNROLL k by 4 (the float4), GROUP k by T (threads), UPCAST b (the whole batch)

    medium's w1:  r_32_32_3_192_4 (tinygrad: 1,024 threads, 192 loads each)
              ->  r_3072_32_6_4   (3,072 blocks of 32 threads, 6 float4 loads each)

**Sums to a few values** (`wide`, devices.py `wide_sum_threads`): greedy decoding's argmax over the vocabulary, the
softmax's max and sum over the keys. tinygrad splits a sum with at most 2,048 outputs over 16 threads each, so
small's argmax over 8,000 logits is one block of 16 threads looping 500 times (`r_16_500`). Here a sum to at most 64
values is split over T threads each, T about the square root of its length (at most N, and dividing it): each thread
loops over length / T values, then one thread adds the T partial sums from shared memory, so the two loops are
about equally long. For 8,000 logits: 80 threads of 100 values (`r_80_100`).

**Sums over a symbolic number of values** (`symbolic`, devices.py `symbolic_sum_threads`): a batch's decoding
attention sums over the keys so far, a length that is a bound Variable (the position), and tinygrad splits no such
sum; it gives each thread 4 x 4 outputs instead, so medium's probabilities @ values at batch 8 run on 384 threads
looping over every key, and the softmax's sums on 24 (`decode_kernels.py --preset medium --target sm_90 --batch 8`).
Here each output gets its own thread, in blocks of up to N threads along the last output axis (consecutive values,
so a warp's loads of v are contiguous): 6,144 threads for those probabilities @ values. A single row needs no such
rule: its keys are padded to a fixed length (fast/attention.py, `padded_window`) that `wide` splits.

The rules take every kernel of their shape, not only a decoding step's: a training step's sums to a few values (the
loss's mean, the gradient norm's sum of each tensor) and LoRA's weight gradient for A (r <= 8 rows of dy^T B summed
against the inputs over the tokens) are such kernels too.

The numbers are the same sums in another order (float32 rounding; tests/test_gpu_sums.py runs them on tinygrad's
emulated NVIDIA GPU against numpy). Which devices use them is minimac/fast/devices.py (0: tinygrad's heuristic);
MINIMAC_CAPABILITIES=matvec_threads=32,wide_sum_threads=256,symbolic_sum_threads=32 overrides the table, for
measuring.
"""
from __future__ import annotations

from tinygrad.codegen.opt import KernelOptError, Opt, OptOps
from tinygrad.helpers import prod
from tinygrad.uop.ops import AxisType, Ops

from minimac.fast import kernel_layout
from minimac.fast.devices import capabilities

VECTOR = 4        # values of W a thread loads at once (a float4)
MAX_BATCH = 8     # rows of x a kernel may carry (a decoding batch), unrolled inside each thread
FEW = 64          # `wide`: sums with at most this many outputs
MANY = 65536      # `symbolic`: sums with at most this many outputs (more keep tinygrad's outputs a thread)


def _one_sum(k, *reductions, symbolic: bool = False) -> int | None:
    """The axis of a GPU kernel's one sum (by one of `reductions`), with fixed outputs and a fixed length (a symbolic
    one with `symbolic`), before any opt; or None."""
    red, sums = k.reduceop, k.axes_of(AxisType.REDUCE)
    if red is None or red.arg[0] not in reductions or not k.ren.has_local or len(sums) != 1 or \
            not set(k.axis_types) <= {AxisType.GLOBAL, AxisType.REDUCE}:
        return None
    fixed_outputs = all(isinstance(k.full_shape[a], int) for a in k.axes_of(AxisType.GLOBAL))
    return sums[0] if fixed_outputs and isinstance(k.full_shape[sums[0]], int) != symbolic else None


def matvec_axes(k) -> tuple[list[int], list[int], int] | None:
    """(row axes, batch axes, K) of a GPU kernel summing x[b, k] * W[row, k] over k, or None. `k` is tinygrad's
    Scheduler before any opt.

    W: stride 1 along the sum and a multiple of K along each row axis; x: another input, read along the sum and along
    no row axis; batch axes: the other output axes (W does not read them), at most MAX_BATCH values in all."""
    if (axis := _one_sum(k, Ops.ADD)) is None or (found := kernel_layout.layout(k)) is None:
        return None
    rngs, _, bufs = found
    s, K, outs = rngs[axis], k.full_shape[axis], k.axes_of(AxisType.GLOBAL)
    for w in bufs.values():
        if w[s] != 1:
            continue
        rows = [a for a in outs if w[rngs[a]] != 0]
        batch = [a for a in outs if a not in rows]
        if not rows or any(w[rngs[a]] is None or w[rngs[a]] % K for a in rows):
            continue
        if prod(k.full_shape[a] for a in batch) > MAX_BATCH:
            continue
        if any(x is not w and x[s] not in (0, None) and all(x[rngs[a]] == 0 for a in rows) for x in bufs.values()):
            return rows, batch, K
    return None


def rows(k):
    """`k` scheduled as one block of threads per output row (the module's docstring), or None: not a matrix-vector
    product, the device table says 0 threads, K not a multiple of 4 x threads, or tinygrad refuses an opt."""
    t = capabilities(k.ren.target.device).matvec_threads
    if not t or (found := matvec_axes(k)) is None or found[2] % (t * VECTOR):
        return None
    batch = [k.rngs[a] for a in found[1] if k.full_shape[a] > 1]
    tk = k.copy()
    try:
        tk.apply_opt(Opt(OptOps.UNROLL, 0, VECTOR))
        tk.apply_opt(Opt(OptOps.GROUP, 0, t))
        for rng in batch:
            tk.apply_opt(Opt(OptOps.UPCAST, tk.rngs.index(rng), 0))
    except (KernelOptError, ValueError):
        return None
    return tk


def wide(k):
    """`k`, a sum to at most FEW values, split over T threads each (the largest divisor of its length with T * T <=
    length and T <= `wide_sum_threads`), or None: another kind of kernel, 0 in the device table, or T <= 16 (tinygrad
    splits by 16 already)."""
    most = capabilities(k.ren.target.device).wide_sum_threads
    if not most or (axis := _one_sum(k, Ops.ADD, Ops.MAX)) is None:
        return None
    length = k.full_shape[axis]
    if prod(k.full_shape) // length > FEW:
        return None
    group = max((t for t in range(1, most + 1) if length % t == 0 and t * t <= length), default=1)
    if group <= 16:   # tinygrad's GROUPTOP 16 already
        return None
    tk = k.copy()
    try:
        tk.apply_opt(Opt(OptOps.GROUP, 0, group))
    except KernelOptError:
        return None
    return tk


def symbolic(k):
    """`k`, a sum of a symbolic length with fixed outputs (at most MANY), as one thread an output in blocks of T threads
    along its last output axis (the largest divisor of that axis <= `symbolic_sum_threads`), or None: another kind of
    kernel, or 0 in the device table."""
    most, outs = capabilities(k.ren.target.device).symbolic_sum_threads, k.axes_of(AxisType.GLOBAL)
    if not most or not outs or _one_sum(k, Ops.ADD, Ops.MAX, symbolic=True) is None or \
            prod(k.full_shape[a] for a in outs) > MANY:
        return None
    last = k.full_shape[outs[-1]]
    tk = k.copy()
    try:
        tk.apply_opt(Opt(OptOps.LOCAL, outs[-1], max(t for t in range(1, most + 1) if last % t == 0)))
    except KernelOptError:
        return None
    return tk
