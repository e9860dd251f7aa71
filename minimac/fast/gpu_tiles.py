"""Larger tensor-core tiles for GPU matmuls. Lesson 07 (speed appendix).

On a GPU with tensor cores, tinygrad's heuristic (`hand_coded_optimizations`) turns a half-precision matmul into
warp-wide tensor-core instructions (the TC opt: on NVIDIA a 16 x 8 block of C per instruction, summing 16 terms) and
then gives each warp a few of those blocks: it upcasts the two output axes by the first of 5, 4, 3, 2 that divides
them and spreads one of them over 2-4 warps (LOCAL). Each warp then keeps about 16 blocks of C in registers, so each
value it loads from A and B is used 4 times. On an H100 those kernels ran at 37-52 TFLOPS.

A warp with more blocks reuses each load more. Upcast N by 8 and M by 4 and leave out the locals: 32 blocks a warp,
each A fragment used 8 times and each B fragment 4 times.

    tinygrad:  TC, UPCAST M by 4 (or 5, 3, 2), UPCAST N by 4 (or 5, 3, 2), LOCAL N by 4 (or 2)
    minimac:   TC, UPCAST M by 4, UPCAST N by 8 (as 4 x 2); the first of 8, 4, 5, 3, 2 / 4, 5, 3, 2 that divides

Measured on an H100 for the tensor-core kernels of the `medium` bfloat16 training step (up to 24 schedules per
kernel: N by 4 or 8, M by 2, 4 or 8, locals or none, block order swapped or not; `benchmarks/tc_search.py`, results in
`results/h100/session8/tc_grid_big.json`): for 18 kernel shapes, this tile came within 5% of the fastest schedule
for 16 and within 10% for all; the 18 kernels took 5.3 ms instead of 8.4 ms with tinygrad's choice, the
(4,096 x 768) x (768 x 3,072) kind of matmul 70-77 TFLOPS instead of 42-44. BEAM search at width 4 found 76-94
TFLOPS on the lm_head's three matmuls after 86-145 s of search per kernel (`tc_beam.json`); this rule searches
nothing.

Only for the devices it was measured on (`tensor_core_tiles` in minimac/fast/devices.py: CUDA and NV, tinygrad's
two NVIDIA backends); METAL and AMD
have other tensor-core shapes and keep tinygrad's choice until someone measures them. The numbers are those of
tinygrad's schedule up to float32 rounding in the order of the sum. `minimac.fast.cpu_tiles` owns the hook into tinygrad
and hands `tc_tiled` tinygrad's choice for every kernel its CPU rules leave; MINIMAC_GPU_TILES=0 turns this rule off.

Worked example: the forward matmul of medium's feed-forward, (4,096, 768) @ (768, 3,072) in bfloat16, gets
TC, UPCAST 4, UPCAST 4, UPCAST 2: each warp computes a 64 x 64 block of C (16 x 8 blocks, 4 by 8 of them).
tests/test_gpu_tiles.py runs one on an emulated NVIDIA GPU (tinygrad's `DEV=PYTHON::sm_80`) against numpy.
"""
from __future__ import annotations

import os

from tinygrad.codegen.opt import KernelOptError, Opt, OptOps

from minimac.fast.devices import capabilities

N_UP, M_UP = 8, 4             # tensor-core blocks per warp along N and along M
FACTORS = (8, 4, 5, 3, 2)     # what to try when N_UP or M_UP does not divide an axis, in this order


def enabled() -> bool:
    return os.environ.get("MINIMAC_GPU_TILES", "1") != "0"


def upcast(k, rng, amount: int):
    """UPCAST `rng` of Scheduler `k` by `amount` (8 as 4 x 2); returns the range left."""
    for part in ((4, 2) if amount == 8 else (amount,)):
        rng = k.apply_opt(Opt(OptOps.UPCAST, k.rngs.index(rng), part))[0]
    return rng


def _upcast_up_to(k, rng, most: int):
    """UPCAST `rng` by the first of FACTORS (at most `most`) that divides it; returns the range left."""
    for f in FACTORS:
        if f <= most and rng.src[0].divides(f) is not None:
            return upcast(k, rng, f)
    return rng


def tc_tiled(k, chosen):
    """`k` (tinygrad's Scheduler) with N_UP x M_UP blocks a warp, given `chosen`, what tinygrad's heuristic made of
    `k`; or None, which keeps `chosen`: no tensor cores in it, not a measured device, turned off, or tinygrad refuses
    an opt. The tensor-core opt itself (which axis, which instruction) is tinygrad's, the first of `chosen`'s opts."""
    measured = capabilities(k.ren.target.device).tensor_core_tiles
    if not enabled() or not measured or getattr(chosen, "tensor_core", None) is None:
        return None
    tk = k.copy()
    try:
        rngs = tk.apply_opt(chosen.applied_opts[0])   # (N, M, K), as the TC opt returns them
        rngs[1] = _upcast_up_to(tk, rngs[1], M_UP)
        rngs[0] = _upcast_up_to(tk, rngs[0], N_UP)
    except KernelOptError:
        return None
    return tk
