"""The weights a decoding step reads: a shallow copy of the model whose linear layers read their weight as stored, an
active LoRA adapter merged into a copy. Lesson 06 (speed appendix); used by minimac/fast/decode.py.

One token a sequence makes every matmul of a step a matrix-vector product per row: one dot product per output, read
straight from W (out, in) as nn.Linear stores it. fast/linear.py lays weights out as W^T for training's large
matmuls, which here would copy every weight on every token (29 copies, 2.9 of 4.3 ms of nano's step before).
A LoRA layer with an active, unmerged adapter becomes a plain layer over W + scaling * B A, kept in a buffer of its
own and refreshed (`DecodeLinear.refresh`) at the start of each generation, so training that changes A and B in place
is seen. Worked example: a LoRALinear with W = 0, A = [[1, 2]], B = [[3]], scaling 2 -> DecodeLinear weight [[6, 12]].
"""
from __future__ import annotations

import copy
import types

from tinygrad import Tensor, nn

from minimac import ops


class DecodeLinear:
    """A bias-free linear layer for decoding: x @ W^T with W read as stored; prefill (more than one row a sequence)
    goes through the `linear` seam. With `lora`, W is a merged copy: base + scaling * B @ A of its active adapter."""

    def __init__(self, weight: Tensor, lora=None):
        self.base, self.lora = weight, lora
        self.weight = weight if lora is None else self._merged().contiguous().realize()

    def _merged(self) -> Tensor:
        return (self.base.detach() + self.lora.delta_weight(self.lora.active_adapter)).cast(self.base.dtype)

    def refresh(self) -> Tensor | None:
        """The merged copy recomputed from the adapter's current A and B (None without an adapter)."""
        return None if self.lora is None else self.weight.assign(self._merged())

    def __call__(self, x: Tensor) -> Tensor:
        if x.shape[-2] == 1:      # one new token a sequence: a matrix-vector product per row
            return x @ self.weight.transpose()
        return ops.linear(x, self.weight)


def decoding_copy(obj, linears: dict[int, DecodeLinear]):
    """A shallow copy of a model (or block) for decoding: containers copied, linear layers replaced by DecodeLinear
    (shared through `linears`, keyed by the original's id), KV caches cleared; every weight is shared."""
    if hasattr(obj, "merged_adapter"):                      # a LoRALinear (minimac/lora.py), found by its attributes
        if obj.bias is not None:
            return obj
        if id(obj) not in linears:
            active = obj.active_adapter is not None and not obj.disabled and obj.merged_adapter is None
            linears[id(obj)] = DecodeLinear(obj.base_layer.weight, obj if active else None)
        return linears[id(obj)]
    if isinstance(obj, nn.Linear):
        return obj if obj.bias is not None else linears.setdefault(id(obj), DecodeLinear(obj.weight))
    if isinstance(obj, list):
        return [decoding_copy(x, linears) for x in obj]
    if isinstance(obj, (Tensor, dict, tuple, type, types.ModuleType, types.FunctionType, types.MethodType)) or \
            not hasattr(obj, "__dict__"):
        return obj
    new = copy.copy(obj)
    for key, value in vars(obj).items():
        if isinstance(value, list) or (hasattr(value, "__dict__") and not isinstance(value, Tensor)):
            setattr(new, key, decoding_copy(value, linears))
    if "cache" in vars(new):
        new.cache = None
    return new
