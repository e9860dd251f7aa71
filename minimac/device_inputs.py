"""A jitted step's inputs, written into device buffers made once instead of new Tensors every step. Lesson 07.

A replayed TinyJit reads whatever its input buffers hold, so a training loop only has to put the next batch (and the
learning rate) there. Used by pretraining's Trainer (minimac/train.py) and the learner's step (learner_step.py).
On several devices (minimac/parallel.py) an input's rows are cut across them and a learning rate is copied to each.
"""
from __future__ import annotations

import numpy as np
from tinygrad import Tensor
from tinygrad.device import Buffer
from tinygrad.dtype import _to_np_dtype


def write_into(t: Tensor, array: np.ndarray) -> None:
    """Copy `array` into the device buffer of the realized tensor `t`, in place (same number of bytes).

    For a jitted step's inputs and learning rate: `t.assign(Tensor(array)).realize()`, or a fresh `Tensor(array)`,
    builds and schedules a small graph every step (5.6 ms for the learner's three (8, 64) arrays on the CPU here);
    this copy is 0.7 ms. A replayed TinyJit reads whatever its input buffers hold.
    """
    a = np.ascontiguousarray(array, dtype=_to_np_dtype(t.dtype))
    if isinstance(t.device, tuple):   # several devices: each holds a copy (axis None) or a slice along `axis`
        bufs = t.uop.buffer.bufs if t.uop.base.realized is not None or t.uop.has_buffer_identity() else None
        parts = [a] * len(t.device) if t.uop.axis is None else np.split(a, len(t.device), axis=t.uop.axis)
    else:
        bufs, parts = [t.uop.base.realized], [a]
    if bufs is None or None in bufs or any(p.nbytes != b.nbytes for p, b in zip(parts, bufs, strict=True)):
        raise ValueError(f"cannot write an array of {a.nbytes} bytes into a tensor of shape {t.shape} "
                         f"({'unrealized' if bufs is None or None in bufs else 'another size'})")
    for buf, part in zip(bufs, parts, strict=True):
        part = np.ascontiguousarray(part)
        buf.copy_from(Buffer("PYTHON", buf.size, buf.dtype, opaque=memoryview(part).cast("B")))


class DeviceInputs:
    """A jitted step's fixed-shape inputs: device tensors made on the first call and refilled in place afterwards
    (`write_into`). Arrays of a new shape or dtype get new tensors.

    >>> inputs = DeviceInputs()
    >>> (x,) = inputs(np.array([[1, 2]], dtype=np.int32)); (x2,) = inputs(np.array([[3, 4]], dtype=np.int32))
    >>> x2 is x, x.tolist()
    (True, [[3, 4]])
    """

    def __init__(self, devices: tuple[str, ...] | None = None):
        self.tensors: list[Tensor] = []
        self.devices = devices   # None: the default device

    def _place(self, a: np.ndarray) -> Tensor:
        t = Tensor(np.ascontiguousarray(a))
        if self.devices is not None:
            t = t.to(self.devices[0]) if len(self.devices) == 1 else t.shard(self.devices, axis=0)  # rows cut across
        return t.realize()

    def __call__(self, *arrays: np.ndarray) -> list[Tensor]:
        arrays = tuple(np.asarray(a) for a in arrays)
        if [(t.shape, _to_np_dtype(t.dtype)) for t in self.tensors] != [(a.shape, a.dtype) for a in arrays]:
            self.tensors = [self._place(a) for a in arrays]
        else:
            for t, a in zip(self.tensors, arrays):
                write_into(t, a)
        return self.tensors
