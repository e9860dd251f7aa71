"""GFLOPS of a jitted `a @ b` on tinygrad: its own heuristic against minimac's outer-product CPU tiles.

    python benchmarks/bench_matmul.py            # the CPU here (DEV=CPU)
    python benchmarks/bench_matmul.py --numpy    # and numpy's BLAS on the same shapes, for scale

See minimac/fast/cpu_tiles.py for what the tiles are; on devices with local memory (CUDA, METAL) both columns are the same
schedule.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

SHAPES = ((1024, 128, 2048), (1024, 2048, 128), (128, 1024, 2048), (1024, 128, 512), (1024, 512, 128))


def gflops(m: int, k: int, n: int, repeats: int = 10) -> float:
    from tinygrad import Device, Tensor, TinyJit
    from tinygrad.codegen import to_program_cache

    to_program_cache.clear()                    # compile again with whichever heuristic is installed now
    a, b = Tensor.randn(m, k).realize(), Tensor.randn(k, n).realize()
    step = TinyJit(lambda a, b: (a @ b).realize())
    for _ in range(3):
        step(a, b)
    Device[Device.DEFAULT].synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        step(a, b)
    Device[Device.DEFAULT].synchronize()
    return 2 * m * k * n * repeats / (time.perf_counter() - start) / 1e9


def numpy_gflops(m: int, k: int, n: int, repeats: int = 10) -> float:
    import numpy as np

    a, b = np.random.randn(m, k).astype(np.float32), np.random.randn(k, n).astype(np.float32)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * m * k * n * repeats / (time.perf_counter() - start) / 1e9


def main(argv: list[str] | None = None) -> None:
    import minimac.fast
    minimac.fast.install()  # the same numbers, faster; MINIMAC_FAST=0 keeps the plain path
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--numpy", action="store_true", help="also time numpy's a @ b")
    args = ap.parse_args(argv)

    import os

    from tinygrad import Device

    from minimac.fast import cpu_tiles

    print(f"device {Device.DEFAULT}, load average {os.getloadavg()[0]:.2f}; GFLOPS of a jitted a @ b (m x k x n)")
    print(f"{'m x k x n':>18}  {'tinygrad':>9}  {'tiles':>9}" + (f"  {'numpy':>9}" if args.numpy else ""))
    for shape in SHAPES:
        cpu_tiles.uninstall()
        before = gflops(*shape)
        cpu_tiles.install()
        after = gflops(*shape)
        extra = f"  {numpy_gflops(*shape):9.1f}" if args.numpy else ""
        print(f"{' x '.join(map(str, shape)):>18}  {before:9.1f}  {after:9.1f}{extra}")


if __name__ == "__main__":
    main()
