"""The global gradient norm, and clipping by it, laid out for each device. Lesson 07.

    ||g|| = sqrt(sum over every gradient tensor of its squared entries)      one number for all the gradients
    g    <- g * min(1, max_norm / ||g||)                                     every gradient, the same factor

Both stay on the device (no `.item()`), so they live inside a jitted step. How the sum over many tensors is laid out
matters more than the arithmetic: `sum_all` measures and picks a layout per device (docs/performance.md, items 6
and 18). Used by pretraining (minimac/train.py), the learner's step and the EWC penalty (minimac/ewc.py).
"""
from __future__ import annotations

from tinygrad import Tensor

from minimac.device import backend

SERIAL_SUM_DEVICES = ("CPU",)  # where sum_all lets one kernel run the per-tensor sums one after another


def sum_all(tensors: list[Tensor]) -> Tensor:
    """The sum of every entry of every tensor: a scalar. For a gradient norm or the EWC penalty over many weights.

    The same sum, in the layout each device runs fastest (`python benchmarks/bench_grad_norm.py`, the 84 LoRA
    tensors of `small`, unrealized as gradients are):
    - CPU: the per-tensor sums added up, which tinygrad makes one kernel that runs them in turn (0.9 ms; 2.6 ms with
      a kernel per tensor).
    - GPUs: one kernel per tensor, then one to add their sums (0.5 ms on an H100). The single kernel gets 16 threads
      there (4.4 ms; 8 ms inside the LoRA step, 15% of it). Concatenating the tensors first is faster alone (0.05 ms)
      but copies every gradient: the small training step ran at 92,148 tok/s that way and 109,538 this way.

    >>> sum_all([Tensor([1.0, 2.0]), Tensor([[3.0], [4.0]])]).item()
    10.0
    """
    if not tensors:
        raise ValueError("sum_all needs at least one tensor")
    if backend(tensors[0]) in SERIAL_SUM_DEVICES:
        return sum(t.sum() for t in tensors)
    return sum(t.sum().contiguous() for t in tensors)


def clip_by_global_norm(grads: list[Tensor], max_norm: float) -> tuple[list[Tensor], Tensor]:
    """Scale all gradients by min(1, max_norm / ||g||) where ||g|| is the norm of all of them as one vector.

    Stays on the device (no `.item()`), so it can live inside the jitted step. Returns (clipped grads, norm before).
    """
    # contiguous(): the norm becomes one small kernel of its own. Without it the scheduler fuses the whole global
    # reduction into every consumer, so each parameter's update kernel re-read every gradient (84 times for the
    # LoRA step of `small`: 4.7 ms each on an H100, 90% of that step; benchmarks/profile_step.py shows it).
    norm = sum_all([g.float().square() for g in grads]).sqrt().contiguous()
    if max_norm <= 0:
        return grads, norm
    scale = (max_norm / (norm + 1e-6)).minimum(1.0).contiguous()
    return [g * scale.cast(g.dtype) for g in grads], norm
