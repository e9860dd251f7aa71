"""Does this CPU slow down on subnormal floats? A float32 matmul timed with normal operands, then with half of one
operand's entries subnormal (as a causal attention matrix's masked probabilities were before minimac/fast/fast_exp.py
returned exact zeros; docs/performance.md, "The CPU training step on an Intel machine").

    python benchmarks/subnormal_probe.py            # -> "subnormal / normal time: 1.0x" (AMD Zen) or far more (Intel)

numpy's BLAS does the matmul, so this measures the CPU, not minimac; tinygrad's CPU kernels meet the same hardware.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def best_ms(a: np.ndarray, b: np.ndarray, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=512, help="matrix side")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    a = rng.random((args.n, args.n), dtype=np.float32)
    b = rng.random((args.n, args.n), dtype=np.float32)
    sub = a.copy()
    sub[np.triu_indices(args.n, 1)] = np.float32(2.0 ** -126) / 64     # subnormal, like 2^-126 / a row's sum
    assert 0 < sub[0, 1] < np.finfo(np.float32).tiny
    normal, subnormal = best_ms(a, b, args.repeats), best_ms(sub, b, args.repeats)
    print(f"{cpu_name()}: {args.n} x {args.n} float32 matmul, best of {args.repeats}: "
          f"normal {normal:.2f} ms, half subnormal {subnormal:.2f} ms; subnormal / normal time: {subnormal / normal:.1f}x")


if __name__ == "__main__":
    main()
