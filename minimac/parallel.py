"""Data parallelism: one training step split across several devices with tinygrad's own sharding. Lesson 07.

    weights, RoPE tables, AdamW moments   replicated: a full copy on every device    w.to_(devices)
    the batch (B, T+1)                    cut along the batch axis: B/N rows each    batch.shard(devices, axis=0)
    forward and loss                      each device on its own rows; the mean over all rows needs a sum across
                                          devices, which tinygrad inserts (an all-reduce)
    gradients                             d(loss)/d(replicated weight) sums the devices' parts: again an all-reduce
    AdamW step                            the same update, computed on every device: the copies stay equal

So N devices with a global batch B compute the same numbers as one device with batch B (up to float32 rounding:
the sums run in another order). Nothing here is an engine of its own: `Tensor.shard` and `Tensor.to` over a tuple
of device names are tinygrad's (examples/beautiful_mnist_multigpu.py in tinygrad's repository does the same).

    >>> resolve_devices(2)                  # doctest: +SKIP
    ('CPU', 'CPU:1')                        # "CPU:0" is spelled "CPU"; on a GPU machine ('CUDA', 'CUDA:1')
    >>> replicate(model, ('CPU', 'CPU:1'))  # doctest: +SKIP   every weight and the RoPE tables on both
    >>> gather(model)                       # doctest: +SKIP   back on one device (generation, saving, lessons)

Used by pretraining's Trainer (minimac/train.py, `TrainConfig(devices=N)`, `python -m minimac.pretrain --devices N`)
and the learner's full fine-tuning (minimac/learner/step.py). Leaves out: model or pipeline parallelism (weights cut
across devices), several machines, gradient accumulation.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from tinygrad import Device, Tensor
from tinygrad.nn.state import get_state_dict

Devices = tuple[str, ...]


def resolve_devices(devices: int | str | Sequence[str] | None) -> Devices:
    """1 or None -> (the default device,); N -> the first N devices of the default backend; names -> those names.

    Raises ValueError naming the problem when N is below 1 or larger than what this machine has. On the CPU backend
    tinygrad will open any "CPU:k", but two devices on one core only take turns, so N may be at most the core count.
    """
    if devices is None:
        devices = 1
    if isinstance(devices, bool) or not isinstance(devices, (int, str, Sequence)):
        raise TypeError(f"devices must be a number of devices or a tuple of device names, got {devices!r}")
    if isinstance(devices, str):
        devices = (devices,)
    if isinstance(devices, int):
        if devices < 1:
            raise ValueError(f"devices must be at least 1, got {devices}")
        backend = Device.DEFAULT
        names = tuple(backend if i == 0 else f"{backend}:{i}" for i in range(devices))
    else:
        if not devices or not all(isinstance(d, str) and d for d in devices):
            raise ValueError(f"devices must be a non-empty tuple of device names like ('CPU:0', 'CPU:1'), "
                             f"got {devices!r}")
        names = tuple(Device.canonicalize(d) for d in devices)
        if len(set(names)) != len(names):
            raise ValueError(f"devices {tuple(devices)} names a device twice")
    if len(names) == 1:
        return names
    cpus = [d for d in names if d.split(":")[0] == "CPU"]
    if len(cpus) > (os.cpu_count() or 1):
        raise ValueError(f"{len(names)} devices asked for, but this machine has {os.cpu_count()} CPU cores: "
                         f"at most {os.cpu_count()} CPU devices can run side by side")
    for name in names:
        try:
            Device[name]                          # opens it: a GPU index that is not there fails here
        except Exception as e:                    # each backend raises its own error type
            raise ValueError(f"{len(names)} devices asked for, but device {name} cannot be opened on this machine "
                             f"({type(e).__name__}: {e}); ask for fewer devices") from e
    return names


def check_batch(batch_size: int, devices: Devices) -> None:
    """Every device takes an equal share of the batch rows: refuse a batch size that N does not divide."""
    if batch_size % len(devices):
        raise ValueError(f"batch_size {batch_size} is not divisible by the {len(devices)} devices {devices}: each "
                         f"device takes an equal share of the rows; use a batch size that is a multiple of "
                         f"{len(devices)}")


def _movable(model: Any, params: Sequence[Tensor] = ()) -> list[Tensor]:
    """The model's weights (each once), the extra tensors `params`, and the RoPE tables (not parameters)."""
    state = model.state_dict() if hasattr(model, "state_dict") else get_state_dict(model)
    tensors = [*state.values(), *params]
    rope = getattr(model, "rope", None)
    if rope is not None:
        tensors += [rope.cos, rope.sin]
    return list({id(t): t for t in tensors}.values())


def replicate(model: Any, devices: Devices, params: Sequence[Tensor] = ()) -> None:
    """Put a copy of every weight of `model` (and `params`, and the RoPE tables) on each of `devices`, in place:
    the same Tensor objects, so tied weights stay tied and the optimizer built afterwards sees the copies."""
    target = devices if len(devices) > 1 else devices[0]
    Tensor.realize(*[t.to_(target) for t in _movable(model, params)])
    if hasattr(model, "reset_cache"):
        model.reset_cache()               # a KV cache stays where it was made: the next prefill makes a new one


def gather(model: Any, device: str | None = None, params: Sequence[Tensor] = ()) -> None:
    """Back to one device (the default one): the weights are equal on every device, so the first copy is kept."""
    replicate(model, (Device.canonicalize(device) if device else Device.DEFAULT,), params)


def devices_of(t: Tensor) -> Devices:
    """The devices a tensor lives on, as a tuple: ('CPU',) or ('CPU', 'CPU:1')."""
    return t.device if isinstance(t.device, tuple) else (t.device,)


def place_input(x: Tensor, devices: Devices, replicated: bool = False) -> Tensor:
    """A one-device input for a model whose weights sit on `devices`: its rows cut across the devices when their
    number divides evenly (else, or with `replicated`, a full copy on each)."""
    if len(devices) == 1:
        return x.to(devices[0])
    axis = None if replicated or x.shape[0] % len(devices) else 0
    return x.shard(devices, axis=axis)
