"""`sum_all` (the gradient norm's and the EWC penalty's sum over many tensors) laid out for each device. Lesson 07
(speed appendix); the plain version and the clipping that uses it are in minimac/ops.py.

How the sum over many tensors is laid out matters more than the arithmetic (docs/performance.md, items 6 and 18).
"""
from __future__ import annotations

from tinygrad import Tensor

from minimac.fast.devices import capabilities


def sum_all(tensors: list[Tensor]) -> Tensor:
    """The sum of every entry of every tensor, in the layout each device runs fastest (`python
    benchmarks/bench_grad_norm.py`, the 84 LoRA tensors of `small`, unrealized as gradients are):

    - CPU (`serial_sum`): the per-tensor sums added up, which tinygrad makes one kernel that runs them in turn
      (0.9 ms; 2.6 ms with a kernel per tensor).
    - GPUs: one kernel per tensor, then one to add their sums (0.5 ms on an H100). The single kernel gets 16 threads
      there (4.4 ms; 8 ms inside the LoRA step, 15% of it). Concatenating the tensors first is faster alone (0.05 ms)
      but copies every gradient: the small training step ran at 92,148 tok/s that way and 109,538 this way.

    >>> sum_all([Tensor([1.0, 2.0]), Tensor([[3.0], [4.0]])]).item()
    10.0
    """
    if not tensors:
        raise ValueError("sum_all needs at least one tensor")
    if capabilities(tensors[0]).serial_sum:
        return sum(t.sum() for t in tensors)
    return sum(t.sum().contiguous() for t in tensors)
