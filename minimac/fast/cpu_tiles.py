"""Outer-product register tiles for matmuls on tinygrad's CPU backend. Lesson 07 (speed appendix).

tinygrad compiles every reduction to a loop nest and then picks "opts" for it: which loops to unroll into registers
(UPCAST for output axes, UNROLL for summed axes) and which to split across threads (THREAD). A hand-written
heuristic, `tinygrad.codegen.opt.heuristic.hand_coded_optimizations`, makes that choice when BEAM search is off. For a
matmul C = A @ B on the CPU it keeps a 4 x 4 block of C in registers and unrolls the summed axis by 4: a dot-product
schedule. On this project's 2-core x86 machine that ran at 8-25 GFLOPS, where numpy's BLAS does 140-190.

CPUs prefer the outer-product schedule. Keep a 4 x 16 tile of C in registers. For each step k of the sum, load 16
consecutive values of B's row k (four 4-wide vector loads) and 4 values of A's column k (broadcast): 64
multiply-adds for 20 loads, and every load is contiguous. This needs B contiguous along C's columns, so `tile_axes`
reads the strides of every buffer's index and applies the tile only when the kernel has that shape. All other
kernels keep tinygrad's heuristic.

    C[m, n] += A[m, k] * B[k, n]     n: stride 1 in C and in B; A does not depend on n; B does not depend on m
    opts: UPCAST n by 16 (as 4 x 4), UPCAST m by 4, THREAD over the outer loop

Copies that transpose (y = x^T stored, as minimac.fast.linear makes for the weight gradient) get the same treatment: 16
values along the input's rows (whole cache lines) and 4 along the output's, as one block. tinygrad's heuristic
upcasts only one axis, so one side of the copy strides across rows: 21 ms for a 1024 x 4096 transpose here, 4 ms as
blocks.

Measured on the 2-core dev machine (`python benchmarks/bench_matmul.py`, a plain jitted `a @ b`): 43-51 GFLOPS
against 8-26 with tinygrad's heuristic. In a whole training step (nano, 8 x 128) the kernel time fell from about 620
to 390 ms. docs/performance.md has the step-level figures. BEAM search at width 4 finds a similar tile, but it
searches for 20-60 s per kernel shape.

`install()` hooks this into tinygrad. It replaces the heuristic with `hand_coded_optimizations` below. tinygrad
compiles in worker processes started with `spawn`, which do not see the parent's hook, so `install()` also makes
tinygrad start its workers with an initializer that installs it there. `minimac.fast.install()` calls it. It leaves
kernels alone on devices with local memory (CUDA, METAL): their heuristic is a different one, and
`minimac.fast.gpu_tiles` adds larger tensor-core tiles on NVIDIA GPUs through the same hook. Set MINIMAC_CPU_TILES=0
to keep tinygrad's own choice everywhere (MINIMAC_GPU_TILES=0: only on GPUs).

Worked example: for `a @ b` with a (1024, 128) and b (128, 2048), `tile_axes` finds n = the 2048 axis and m = the
1024 axis. The kernel becomes r_128_128_2_4_4_4_128: 1024 = 128 x 2 (threads) x 4 (upcast), 2048 = 128 x 4 x 4.
The numbers are those of `a @ b`, up to float32 rounding in the order of the sum (tests/test_cpu_tiles.py).

Not covered: the attention score kernels and the cross-entropy reductions over the vocabulary keep tinygrad's
heuristic (their operands are not laid out for an outer product); GPU schedules are `minimac.fast.gpu_tiles`'s.
"""
from __future__ import annotations

import atexit
import multiprocessing
import os

import tinygrad.codegen.opt.heuristic as _heuristic
import tinygrad.engine.realize as _realize
import tinygrad.engine.worker as _worker
from tinygrad.codegen.opt import KernelOptError, Opt, OptOps
from tinygrad.helpers import PARALLEL, getenv, prod
from tinygrad.uop.ops import AxisType, Ops

from minimac.fast import gpu_sums, gpu_tiles, kernel_layout

N_TILE, M_TILE = 16, 4                          # outputs kept in registers: 4 rows x 16 columns
# tinygrad's originals, kept on tinygrad's modules so that a second import of this module (importlib.reload) finds them
_tinygrad_heuristic = _heuristic.__dict__.setdefault("_tinygrad_hand_coded_optimizations",
                                                     _heuristic.hand_coded_optimizations)
_tinygrad_get_worker_pool = _realize.__dict__.setdefault("_tinygrad_get_worker_pool", _realize.get_worker_pool)


def _layout(k):
    """(loops, output strides, {input buffer: strides}) of a CPU kernel with one output, or None."""
    if k.ren.target.device != "CPU" or k.ren.has_local:
        return None
    return kernel_layout.layout(k)


def tile_axes(k) -> tuple[int, int] | None:
    """(n, m) axes of a CPU kernel laid out for an outer product, or None. `k` is tinygrad's Scheduler.

    n: an output axis with stride 1 in the output and in an operand B that also walks the summed axis;
    m: another output axis that an operand A reads and B does not.
    """
    red = k.reduceop
    if red is None or red.arg[0] is not Ops.ADD or not k.unrollable_dims or (layout := _layout(k)) is None:
        return None
    rngs, out, bufs = layout
    summed = [rngs[i] for i in k.unrollable_dims]
    longest = max(summed, key=lambda r: r.vmax)
    # only the buffers read inside the sum decide the layout (a bias added after it does not)
    ins = [s for s in bufs.values() if any(s[r] != 0 for r in summed)]
    for n_ax in k.upcastable_dims:
        n = rngs[n_ax]
        if out[n] != 1 or not any(s[n] == 1 and s[longest] not in (0, 1) for s in ins):
            continue
        for m_ax in k.upcastable_dims:
            m = rngs[m_ax]
            if m_ax != n_ax and any(s[m] != 0 and s[n] == 0 for s in ins) \
                    and not any(s[n] == 1 and s[m] != 0 for s in ins):
                return n_ax, m_ax
    return None


def _largest_divisor(size, limit: int) -> int:
    d = limit
    while d > 1 and size % d:
        d //= 2
    return d


def _upcast(k, upcasts: list[tuple[int, int]]):
    """A copy of `k` with these (axis, amount) UPCASTs and then threads, or None if tinygrad refuses one of them."""
    k = k.copy()
    try:
        for axis, amount in upcasts:
            k.apply_opt(Opt(OptOps.UPCAST, axis, amount))
        _add_threads(k)
    except KernelOptError:
        return None
    return k


def tiled(k):
    """`k` with the outer-product opts applied, or None when the kernel does not fit them."""
    axes = tile_axes(k)
    if axes is None:
        return None
    n_ax, m_ax = axes
    n_up, m_up = _largest_divisor(k.full_shape[n_ax], N_TILE), _largest_divisor(k.full_shape[m_ax], M_TILE)
    if n_up < 4:
        return None
    # 16 as 4 x 4 (8 as 4 x 2): tinygrad's CPU loads are float4 at most
    upcasts = [(n_ax, 4)] * (2 if n_up == 16 else 1) + ([(n_ax, 2)] if n_up == 8 else [])
    return _upcast(k, upcasts + ([(m_ax, m_up)] if m_up > 1 else []))


def _add_threads(k) -> None:
    """Split the outermost loop that divides evenly across the CPU's threads (tinygrad's rule: >= 128 K ops each)."""
    if not k.ren.has_threads or k.ren.global_max is None:
        return
    work = prod(int(s) for s in k.full_shape)
    for threads in (32, 16, 12, 8, 6, 5, 4, 3, 2):
        if threads > k.ren.global_max[0] or work // (128 << 10) < threads:
            continue
        for axis in k.axes_of(AxisType.WEAK, AxisType.LOOP, AxisType.GLOBAL):
            if k.full_shape[axis] % threads == 0:
                try:
                    k.apply_opt(Opt(OptOps.THREAD, axis, threads))
                    return
                except KernelOptError:
                    pass


def transpose_axes(k) -> tuple[int, int] | None:
    """(i, o) axes of a CPU copy that transposes, or None: o has stride 1 in the output, i in an input (not in o)."""
    if k.reduceop is not None or (layout := _layout(k)) is None:
        return None
    rngs, out, bufs = layout
    ins = list(bufs.values())
    for o_ax in k.upcastable_dims:
        if out[rngs[o_ax]] != 1:
            continue
        for i_ax in k.upcastable_dims:
            i, o = rngs[i_ax], rngs[o_ax]
            if i_ax != o_ax and any(s[i] == 1 and s[o] not in (0, 1, None) for s in ins):
                return i_ax, o_ax
    return None


def transposed(k):
    """A transposing copy in 16 x 4 blocks: whole cache lines of the input, 4-wide stores. None if it does not fit."""
    axes = transpose_axes(k)
    if axes is None:
        return None
    i_ax, o_ax = axes
    i_up, o_up = _largest_divisor(k.full_shape[i_ax], 16), _largest_divisor(k.full_shape[o_ax], 4)
    if i_up < 4 or o_up < 4:
        return None
    return _upcast(k, [(i_ax, i_up), (o_ax, o_up)])


def hand_coded_optimizations(k):
    """tinygrad's heuristic, except for CPU matmuls laid out for an outer product (`tiled`), CPU transposes, and
    on GPUs, where this hook serves minimac.fast.gpu_sums (matrix-vector products, sums to a few values, sums of a
    symbolic length) and minimac.fast.gpu_tiles (tensor-core kernels)."""
    gpu = gpu_sums.rows(k) or gpu_sums.wide(k) or gpu_sums.symbolic(k)
    if (ours := tiled(k) or transposed(k) or gpu) is not None:
        return ours
    theirs = _tinygrad_heuristic(k)
    return gpu_tiles.tc_tiled(k, theirs) or theirs


def _init_worker() -> None:
    """Initializer of the compile workers: the hook first, then tinygrad's own worker setup."""
    _heuristic.hand_coded_optimizations = hand_coded_optimizations
    _worker._init_worker()


def _get_worker_pool():
    """tinygrad's `get_worker_pool` (engine/worker.py, 0.14.0), except that each worker runs `_init_worker` first."""
    if multiprocessing.current_process().daemon or PARALLEL == 0:
        return None
    if _worker.worker_pool is None:
        pool = _worker._WorkerContext().Pool(PARALLEL.value, _init_worker, (), getenv("BEAM_MAX_TASKS_PER_CHILD", 16))
        atexit.register(pool.close)
        _worker.worker_pool = pool
    return _worker.worker_pool


def install() -> bool:
    """Use the outer-product tiles for CPU matmuls from now on (idempotent). False when MINIMAC_CPU_TILES=0."""
    if os.environ.get("MINIMAC_CPU_TILES", "1") == "0":
        return False
    if _heuristic.hand_coded_optimizations is not hand_coded_optimizations:
        _worker.terminate_worker_pool()         # workers started before now run tinygrad's heuristic
        _heuristic.hand_coded_optimizations = hand_coded_optimizations
        _realize.get_worker_pool = _get_worker_pool
    return True


def uninstall() -> None:
    """Back to tinygrad's heuristic. Kernels compiled before keep their opts: tinygrad caches programs per process."""
    if _heuristic.hand_coded_optimizations is not _tinygrad_heuristic:
        _worker.terminate_worker_pool()
        _heuristic.hand_coded_optimizations = _tinygrad_heuristic
        _realize.get_worker_pool = _tinygrad_get_worker_pool
