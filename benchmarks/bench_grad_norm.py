"""Milliseconds of one sum over many tensors (a global gradient norm), in the layouts minimac could use.

    python benchmarks/bench_grad_norm.py                 # the CPU here
    DEV=CUDA python benchmarks/bench_grad_norm.py        # a GPU

The tensors are the LoRA A and B matrices of the `small` preset (6 layers x 7 target modules, r = 8: 84 tensors,
528,384 values). `minimac.fast.grad_norm.sum_all` picks `added` on the CPU and `each stored` elsewhere; this script is
the measurement behind that choice (with the training step's own figures in docs/performance.md, item 18).

    stacked       Tensor.stack(*[t.square().sum() for t in ts]).sum()    one kernel, a reduction per input
    added         sum(t.square().sum() for t in ts)                       one kernel, the reductions in turn
    each stored   sum(t.square().sum().contiguous() for t in ts)          a kernel per input, then one to add
    concatenated  Tensor.cat(*[t.flatten() for t in ts]).square().sum()   one kernel: a select per element
    cat, stored   Tensor.cat(...).contiguous().square().sum()             one copy, then one parallel reduction

The inputs are unrealized (each tensor times a scale read from memory), as gradients are inside a training step:
realized inputs would let tinygrad keep the copy apart from the sum, which it does not do in a step.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

def layouts() -> dict:
    """name -> the sum of squares over a list of tensors, laid out that way (the table in the module docstring)."""
    from tinygrad import Tensor

    return {
        "stacked": lambda ts: Tensor.stack(*[t.square().sum() for t in ts]).sum(),
        "added": lambda ts: sum(t.square().sum() for t in ts),
        "each stored": lambda ts: sum(t.square().sum().contiguous() for t in ts),
        "concatenated": lambda ts: Tensor.cat(*[t.flatten() for t in ts]).square().sum(),
        "cat, stored": lambda ts: Tensor.cat(*[t.flatten() for t in ts]).contiguous().square().sum(),
    }


def lora_shapes(d: int = 512, kv: int = 128, d_ff: int = 2048, layers: int = 6, r: int = 8) -> list[tuple[int, int]]:
    """(A, B) shapes of q, k, v, o, w1, w2, w3 per layer: A is (r, in), B is (out, r)."""
    per_layer = [(d, d), (kv, d), (kv, d), (d, d), (d_ff, d), (d, d_ff), (d_ff, d)]  # (out, in)
    return [s for _ in range(layers) for out, inp in per_layer for s in ((r, inp), (out, r))]


def time_layout(fn, tensors, repeats: int) -> tuple[float, float]:
    """(ms per call, value) of fn(tensors) under TinyJit, the tensors closed over as they are in a training step."""
    from tinygrad import Device, Tensor, TinyJit

    scale = Tensor([1.0]).realize()
    step = TinyJit(lambda: fn([t * scale for t in tensors]).contiguous().realize())
    for _ in range(3):
        out = step()
    Device[Device.DEFAULT].synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        out = step()
    Device[Device.DEFAULT].synchronize()
    return 1000 * (time.perf_counter() - start) / repeats, out.item()


def main(argv: list[str] | None = None) -> None:
    import minimac.fast
    minimac.fast.install()  # the same numbers, faster; MINIMAC_FAST=0 keeps the plain path
    import numpy as np
    from tinygrad import Device, Tensor

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in lora_shapes()]
    tensors = [Tensor(a).realize() for a in arrays]
    want = sum(float((a.astype(np.float64) ** 2).sum()) for a in arrays)
    print(f"{Device.DEFAULT}: {len(arrays)} tensors, {sum(a.size for a in arrays):,} values")
    for name, fn in layouts().items():
        ms, got = time_layout(fn, tensors, args.repeats)
        print(f"  {name:13s} {ms:8.3f} ms   relative error {abs(got - want) / want:.1e}")


if __name__ == "__main__":
    main()
