"""How a kernel walks memory, read from tinygrad's Scheduler: the stride of each loop in each buffer's index. The
schedule rules of cpu_tiles.py (CPU matmuls and transposes) and gpu_sums.py (GPU matrix-vector products) decide
from it whether a kernel has the shape they were written for. Lesson 07 (speed appendix).

    C[m, n] = sum_k A[m, k] B[k, n], A (M, K) and B (K, N) row-major: A's index is m*K + k, B's is k*N + n
    strides(A's index, (m, n, k)) -> {m: K, n: 0, k: 1}          0: not read along that loop
"""
from __future__ import annotations

from tinygrad.uop.ops import Ops


def strides(idx, rngs) -> dict:
    """The coefficient of each loop in a flat buffer index (0: not read; None: read in a non-affine way)."""
    out = {r: 0 for r in rngs}
    for term in idx.split_uop(Ops.ADD):
        if term.op is Ops.RANGE and term in out:
            out[term] += 1
        elif term.op is Ops.MUL:
            a, b = term.src
            rng, const = (a, b) if a.op is Ops.RANGE else (b, a)
            if rng.op is Ops.RANGE and const.op is Ops.CONST and rng in out:
                out[rng] += const.arg
    for r in rngs:
        if out[r] == 0 and r in idx.backward_slice:
            out[r] = None
    return out


def layout(k):
    """(loops, output strides, {input buffer: strides}) of a kernel with one output, or None."""
    stores = [u.src[0] for u in k.ast.toposort() if u.op is Ops.STORE]
    if len(stores) != 1:
        return None
    rngs = k.rngs
    return rngs, strides(stores[0].src[1].get_idx(), rngs), \
        {b: strides(b.src[1].get_idx(), rngs) for b in k.bufs if b is not stores[0]}
