"""Time other schedules for the tensor-core kernels of a minimac training step (how `minimac.fast.gpu_tiles` was chosen).

While one training step compiles, records every kernel that gets tensor cores. Then, for each, slowest first, times
tinygrad's heuristic, minimac's rule (`gpu_tiles.tc_tiled`) and a grid of alternatives after the same TC opt: N and M
upcast by 4 or 8 / 2, 4 or 8 tensor-core blocks, 2 x 2 warps a block (LOCAL) or one, the order of the blocks swapped
(SWAP) or not. `--beam W` also runs tinygrad's BEAM search of width W on the `--beam-top` kernels with the most work.
Writes one JSON row per kernel (times in microseconds), after each kernel, so a run cut short keeps what it measured.

    DEV=CUDA python benchmarks/tc_search.py --preset medium --batch-size 8 --seq-len 512 --json tc.json
    DEV=CUDA python benchmarks/tc_search.py --grid none --beam 4 --beam-top 3          # BEAM on the three largest
    DEV=PYTHON::sm_80 python benchmarks/tc_search.py --toy    # the mechanics on an emulated GPU (times meaningless)

Needs a GPU with tensor cores (results/h100/session8/ has the H100's). Compiles in this process (PARALLEL=0), so that
the recording hook sees every kernel.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("PARALLEL", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import numpy as np
import tinygrad.codegen.opt.heuristic as _heuristic
from tinygrad import Device, Tensor
from tinygrad.codegen import to_program
from tinygrad.codegen.opt import KernelOptError, Opt, OptOps
from tinygrad.codegen.opt.postrange import args_from_ast
from tinygrad.codegen.opt.search import _ensure_buffer_alloc, _time_program, beam_search
from tinygrad.helpers import prod
from tinygrad.uop.ops import Ops

from minimac.fast import cpu_tiles, gpu_tiles

GRID = list(itertools.product([4, 8], [2, 4, 8], [1, 2], [False, True]))  # (up N, up M, locals per axis, swap)
recorded: dict = {}  # ast key -> tinygrad's Scheduler before any opt


def _record(hook):
    def recording(k):
        out = hook(k)
        if getattr(out, "tensor_core", None) is not None:
            recorded.setdefault(k.ast.key, k.copy())
        return out
    return recording


def timed(k, rawbufs, var_vals, runs: int = 5) -> float:
    """Seconds of the fastest of `runs` launches of the kernel that Scheduler `k` describes."""
    ast = k.get_optimized_ast(name_override="test")
    ast = ast.substitute({p: p.replace(arg=replace(p.arg, device=Device.DEFAULT)) for p in ast.toposort()
                          if p.op is Ops.PARAM})
    return min(_time_program(to_program(ast, k.ren), var_vals, rawbufs, allow_test_size=False, cnt=runs))


def _tflops(flops: int, us: float | None) -> str:
    return f"{flops / us / 1e6:5.1f} TF" if us else "  -  "


def candidate(s, tc_opt, up_n: int, up_m: int, local: int, swap: bool):
    k = s.copy()
    rngs = k.apply_opt(tc_opt)                  # (N, M, K)
    rngs[1] = gpu_tiles.upcast(k, rngs[1], up_m)
    rngs[0] = gpu_tiles.upcast(k, rngs[0], up_n)
    if local > 1:
        rngs[0] = k.apply_opt(Opt(OptOps.LOCAL, k.rngs.index(rngs[0]), local))[0]
        rngs[1] = k.apply_opt(Opt(OptOps.LOCAL, k.rngs.index(rngs[1]), local))[0]
    if swap:
        k.apply_opt(Opt(OptOps.SWAP, 0, 1))
    return k


def compile_step(args) -> None:
    from minimac.fast.linear import matmul, set_matmul_dtype
    set_matmul_dtype(args.dtype)
    if args.toy:
        a, b = Tensor.randn(64, 128).contiguous().realize(), Tensor.randn(128, 64).contiguous().realize()
        a.requires_grad = b.requires_grad = True
        matmul(a, b).sum().backward()
        Tensor.realize(a.grad, b.grad)
        return
    from minimac.model import ModelConfig, Transformer
    from minimac.train import TrainConfig, Trainer
    cfg = ModelConfig.from_preset(args.preset)
    rng, shape = np.random.default_rng(0), (args.batch_size, args.seq_len + 1)
    trainer = Trainer(Transformer(cfg), TrainConfig(batch_size=args.batch_size, seq_len=args.seq_len),
                      lambda step: rng.integers(0, cfg.vocab_size, shape))
    trainer.train_step(rng.integers(0, cfg.vocab_size, shape))


def main(argv: list[str] | None = None) -> None:
    import minimac.fast
    minimac.fast.install()  # the same numbers, faster; MINIMAC_FAST=0 keeps the plain path
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--dtype", default="bfloat16", help="the matmul dtype (tensor cores need half precision)")
    ap.add_argument("--toy", action="store_true", help="one small matmul and its gradients instead of a step")
    ap.add_argument("--grid", choices=["full", "none"], default="full")
    ap.add_argument("--beam", type=int, default=0, help="BEAM width (0: no search)")
    ap.add_argument("--beam-top", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    _heuristic.hand_coded_optimizations = _record(_heuristic.hand_coded_optimizations)
    t0 = time.perf_counter()
    compile_step(args)
    print(f"step compiled in {time.perf_counter() - t0:.1f} s; {len(recorded)} tensor-core kernels", flush=True)

    rows = []
    for s in sorted(recorded.values(), key=lambda s: -prod(int(x) for x in s.full_shape)):
        rawbufs, var_vals = args_from_ast(s.ast, Device.DEFAULT)
        rawbufs = _ensure_buffer_alloc(rawbufs)
        flops = 2 * prod(int(x) for x in s.full_shape)
        theirs = cpu_tiles._tinygrad_heuristic(s)
        ours = gpu_tiles.tc_tiled(s, theirs)
        row = {"shape": [int(x) for x in s.full_shape], "flops": flops,
               "tinygrad_opts": [str(o) for o in theirs.applied_opts], "tinygrad_us": timed(theirs, rawbufs, var_vals) * 1e6,
               "minimac_opts": [str(o) for o in ours.applied_opts] if ours else None,
               "minimac_us": timed(ours, rawbufs, var_vals) * 1e6 if ours else None, "grid": []}
        for up_n, up_m, local, swap in (GRID if args.grid == "full" else []):
            try:
                t = timed(candidate(s, theirs.applied_opts[0], up_n, up_m, local, swap), rawbufs, var_vals)
            except (KernelOptError, RuntimeError, AssertionError, IndexError, ValueError):
                continue  # an opt tinygrad refuses for this shape, or a kernel that does not compile
            row["grid"].append([up_n, up_m, local, swap, t * 1e6])
        best = min([row["tinygrad_us"]] + [g[-1] for g in row["grid"]])
        print(f"{row['shape']!s:26s} tinygrad {row['tinygrad_us']:7.1f} us {_tflops(flops, row['tinygrad_us'])} | minimac "
              f"{row['minimac_us'] or 0:7.1f} us {_tflops(flops, row['minimac_us'])} | best of {len(row['grid'])} {best:7.1f} us "
              f"{_tflops(flops, best)}", flush=True)
        rows.append((row, s, rawbufs, var_vals))
        if args.json:
            Path(args.json).write_text(json.dumps([r[0] for r in rows], indent=1))

    if args.beam:
        from tinygrad.helpers import PARALLEL
        PARALLEL.value = int(os.environ.get("BEAM_PARALLEL", "12"))  # the search compiles its candidates in parallel
        for row, s, rawbufs, var_vals in sorted(rows, key=lambda r: -r[0]["flops"])[:args.beam_top]:
            t0 = time.perf_counter()
            k = beam_search(s.copy(), rawbufs, var_vals, args.beam, disable_cache=True)
            row["beam_us"], row["beam_opts"] = timed(k, rawbufs, var_vals) * 1e6, [str(o) for o in k.applied_opts]
            print(f"BEAM {args.beam} {row['shape']!s:26s} {row['beam_us']:7.1f} us "
                  f"{row['flops'] / row['beam_us'] / 1e6:5.1f} TF after {time.perf_counter() - t0:.0f} s of search: "
                  f"{row['beam_opts']}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps([r[0] for r in rows], indent=1))


if __name__ == "__main__":
    main()
