"""The weights a decoding step reads: a shallow copy of the model whose linear layers read their weight as stored, an
active LoRA adapter merged into a copy. Lesson 06 (speed appendix); used by minimac/fast/decode.py.

One token a sequence makes every matmul of a step a matrix-vector product per row: one dot product per output, read
straight from W (out, in) as nn.Linear stores it. fast/linear.py lays weights out as W^T for training's large
matmuls, which here would copy every weight on every token (29 copies, 2.9 of 4.3 ms of nano's step before).
A LoRA layer with an active, unmerged adapter becomes a plain layer over W + scaling * B A, kept in a buffer of its
own and refreshed (`DecodeLinear.refresh`) at the start of each generation, so training that changes A and B in place
is seen. Worked example: a LoRALinear with W = 0, A = [[1, 2]], B = [[3]], scaling 2 -> DecodeLinear weight [[6, 12]].
Where the device table (minimac/fast/devices.py) asks for them, two more copies, refreshed the same way:
- q, k, v (and w1, w3) read the same input: `SharedInput` keeps their weights side by side and makes one kernel of
  their three (two) products, its output sliced (nano's step: 79 -> 75 kernels).
- a batch of rows reads W^T: with 8 rows the step's matmuls are small matrix products, which clang vectorises along
  the outputs when they are contiguous.
"""
from __future__ import annotations

import copy
import types

from tinygrad import Tensor, nn

from minimac import ops


class DecodeLinear:
    """A bias-free linear layer for decoding: x @ W^T with W read as stored; prefill (more than one row a sequence)
    goes through the `linear` seam. With `lora`, W is a merged copy: base + scaling * B @ A of its active adapter.
    With `keep_transposed()`, batches of several rows read a copy laid out as W^T (in, out) instead (where the device
    table says that is faster: minimac/fast/devices.py, decode_batch_transposed)."""

    def __init__(self, weight: Tensor, lora=None):
        self.base, self.lora = weight, lora
        self.weight = weight if lora is None else self._source().contiguous().realize()
        self.transposed: Tensor | None = None

    def _source(self) -> Tensor:
        """W as the model has it now: the base weight, plus the active adapter's scaling * B @ A if there is one."""
        if self.lora is None:
            return self.base.detach()
        return (self.base.detach() + self.lora.delta_weight(self.lora.active_adapter)).cast(self.base.dtype)

    @property
    def copied(self) -> bool:
        """Whether this layer holds copies of weights (W when it is not the model's, W^T): what `refresh` makes."""
        return self.weight is not self.base or self.transposed is not None

    def keep_transposed(self) -> None:
        if self.transposed is None:
            self.transposed = self._source().transpose().contiguous().realize()

    def refresh(self) -> list[Tensor]:
        """The copies recomputed from the weights now: training changes them in place."""
        return ([self.weight.assign(self._source())] if self.weight is not self.base else []) + \
            ([self.transposed.assign(self._source().transpose())] if self.transposed is not None else [])

    def __call__(self, x: Tensor) -> Tensor:
        if x.shape[-2] == 1:      # one new token a sequence: a matrix-vector product per row
            if self.transposed is not None and x.shape[0] > 1:
                return x @ self.transposed
            return x @ self.weight.transpose()
        return ops.linear(x, self.weight)


class SharedInput(DecodeLinear):
    """Linear layers that read the same input (q, k and v; w1 and w3) as one: a DecodeLinear over a copy of their
    weights side by side, one matrix-vector product where there were three (or two), refreshed like the others.
    `part(i, x)` is layer i's output; the first call with a new x computes all of them, the others slice."""

    def __init__(self, layers: list[DecodeLinear]):
        self.layers, self.sizes = layers, [layer.weight.shape[0] for layer in layers]
        super().__init__(None)
        self.weight = self._source().contiguous().realize()
        self._x: Tensor | None = None
        self._parts: list[Tensor] = []

    def _source(self) -> Tensor:
        return Tensor.cat(*[layer._source() for layer in self.layers])

    def part(self, i: int, x: Tensor) -> Tensor:
        if x.shape[-2] != 1:              # prefill: each layer alone (training's layout, fast/linear.py)
            return self.layers[i](x)
        if x is not self._x:
            self._x, self._parts = x, list(self(x).split(self.sizes, dim=-1))
        return self._parts[i]


class Part:
    """Layer i of a SharedInput group, called like the layer it replaces."""

    def __init__(self, group: SharedInput, i: int):
        self.group, self.i = group, i

    def __call__(self, x: Tensor) -> Tensor:
        return self.group.part(self.i, x)


SHARED_INPUTS = (("q_proj", "k_proj", "v_proj"), ("w1", "w3"))   # attention's and SwiGLU's layers, by name


def decoding_copy(obj, linears: dict[int, DecodeLinear], groups: dict[tuple, SharedInput] | None = None):
    """A shallow copy of a model (or block) for decoding: containers copied, linear layers replaced by DecodeLinear
    (shared through `linears`, keyed by the original's id), KV caches cleared; every weight is shared. With
    `groups`, the layers of SHARED_INPUTS become SharedInputs (shared through `groups`, keyed by their layers)."""
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
        return [decoding_copy(x, linears, groups) for x in obj]
    if isinstance(obj, (Tensor, dict, tuple, type, types.ModuleType, types.FunctionType, types.MethodType)) or \
            not hasattr(obj, "__dict__"):
        return obj
    new = copy.copy(obj)
    for key, value in vars(obj).items():
        if isinstance(value, list) or (hasattr(value, "__dict__") and not isinstance(value, Tensor)):
            setattr(new, key, decoding_copy(value, linears, groups))
    if "cache" in vars(new):
        new.cache = None
    for names in SHARED_INPUTS if groups is not None else ():
        layers = [vars(new).get(name) for name in names]
        if all(isinstance(layer, DecodeLinear) for layer in layers) and \
                len({(layer.weight.shape[1], layer.weight.dtype) for layer in layers}) == 1:
            key = tuple(id(layer) for layer in layers)
            if key not in groups:
                groups[key] = SharedInput(layers)
            for i, name in enumerate(names):
                setattr(new, name, Part(groups[key], i))
    return new
