"""One LoRA layer, with PEFT's names: a frozen Linear plus a trainable low-rank update per adapter name. Lesson 08.

    y = x W^T + dropout(x) A^T B^T * (lora_alpha / r)        W (out, in) frozen, A (r, in), B (out, r)

A starts from U(-1/sqrt(in), 1/sqrt(in)) and B from zeros, so a fresh adapter changes nothing. Only A and B are
trained: r * (in + out) numbers per layer instead of in * out. Worked example: in = out = 4096, r = 8 -> 65,536
trained numbers for a 16.8 M weight (0.4%).

Frozen base: LoRALinear reads base_layer.weight through `.detach()`, so no gradient reaches it. tinygrad 0.14's
`backward()` still attaches a (zero) `.grad` to every float tensor the graph reads and keeps adding to it, and
`opt.zero_grad()` clears only the optimizer's own tensors; a long eager loop is leaner with
`grads = loss.gradient(*lora_parameters(model))`, which touches nothing else.

`merge()` folds the active adapter into W in place (W + scaling * B A) and `unmerge()` takes it out again. Putting
layers like this one into a whole model, and several adapters side by side, is minimac/lora.py's.

Not covered: trained biases of the base, DoRA, quantised bases (QLoRA).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from tinygrad import Tensor
from tinygrad.nn import Linear

from minimac import lora_embedding, lora_variants
from minimac.ops import linear, low_rank_linear


@dataclass
class LoRAConfig:
    r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "w1", "w2", "w3")
    use_rslora: bool = False           # scaling alpha / sqrt(r) instead of alpha / r (lora_variants.py)
    init_lora_weights: bool | str = True  # True: A uniform, B = 0; "pissa": the weight's top-r singular vectors
    modules_to_save: tuple[str, ...] = ()  # e.g. ("norm",): a trainable per-adapter copy of every RMSNorm gain
    embedding_r: int = 0          # rank of a low-rank delta on the tied embedding / lm_head (lora_embedding.py)
    output_bias: bool = False     # a per-adapter bias over the vocabulary on lm_head's logits (lora_embedding.py)

    def __post_init__(self):
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"r must be an integer >= 1, got {self.r!r}")
        if not self.lora_alpha > 0:
            raise ValueError(f"lora_alpha must be > 0, got {self.lora_alpha!r}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        if isinstance(self.target_modules, str) or not self.target_modules or \
                not all(isinstance(t, str) and t for t in self.target_modules):
            raise ValueError(f"target_modules must be a non-empty list of names, got {self.target_modules!r}")
        self.target_modules = tuple(self.target_modules)
        if not isinstance(self.use_rslora, bool) or self.init_lora_weights not in (True, "pissa"):
            raise ValueError(f"use_rslora must be True/False and init_lora_weights True or 'pissa', got "
                             f"{self.use_rslora!r}, {self.init_lora_weights!r}")
        if isinstance(self.modules_to_save, str) or not all(m in ("norm", "token_embedding")
                                                            for m in self.modules_to_save):
            raise ValueError(f"modules_to_save may name 'norm' and 'token_embedding', got {self.modules_to_save!r}")
        self.modules_to_save = tuple(self.modules_to_save)
        if isinstance(self.embedding_r, bool) or not isinstance(self.embedding_r, int) or self.embedding_r < 0 or \
                not isinstance(self.output_bias, bool):
            raise ValueError(f"embedding_r must be an integer >= 0 and output_bias True/False, got "
                             f"{self.embedding_r!r}, {self.output_bias!r}")
        if (self.embedding_r or self.output_bias) and lora_embedding.HEAD in self.target_modules:
            raise ValueError("embedding_r / output_bias adapt lm_head themselves; leave 'lm_head' out of target_modules")

    @property
    def scaling(self) -> float:
        return self.lora_alpha / (math.sqrt(self.r) if self.use_rslora else self.r)


class LoRALinear:
    """A frozen `base_layer` (tinygrad.nn.Linear) plus one (lora_A, lora_B) pair per adapter name."""

    def __init__(self, base_layer: Linear):
        # realized: a still-lazy weight (a fresh nn.Linear's random init) is a graph that others can share, and then
        # gradients of those others would show up as its "gradient" too
        Tensor.realize(*[t for t in (base_layer.weight, base_layer.bias) if t is not None])
        self.base_layer = base_layer
        self.lora_A: dict[str, Tensor] = {}  # name -> (r, in)
        self.lora_B: dict[str, Tensor] = {}  # name -> (out, r)
        self.configs: dict[str, LoRAConfig] = {}
        self.active_adapter: str | None = None
        self.disabled = False
        self.merged_adapter: str | None = None  # set while scaling * B @ A is folded into base_layer.weight
        self.lora_offset: dict = {}  # PiSSA only: the start (A0, B0), subtracted so a fresh adapter adds 0
        self.lora_bias: dict[str, Tensor] = {}  # name -> (out,), lm_head's output_bias only (lora_embedding.py)

    weight = property(lambda self: self.base_layer.weight)  # so code that reads `.weight` keeps working (as PEFT)
    bias = property(lambda self: self.base_layer.bias)
    out_features = property(lambda self: self.base_layer.weight.shape[0])
    in_features = property(lambda self: self.base_layer.weight.shape[1])

    def add_adapter(self, name: str, config: LoRAConfig) -> None:
        self.configs[name] = config
        if config.init_lora_weights == "pissa":
            return lora_variants.pissa_init(self, name, config)
        bound = 1 / math.sqrt(self.in_features)  # kaiming_uniform_(a=sqrt(5)) on (r, in), as PEFT and the seed
        self.lora_A[name] = Tensor.uniform(config.r, self.in_features, low=-bound, high=bound).contiguous().realize()
        self.lora_B[name] = Tensor.zeros(self.out_features, config.r).contiguous().realize()

    def delete_adapter(self, name: str) -> None:
        for table in (self.lora_A, self.lora_B, self.configs, self.lora_offset, self.lora_bias):
            table.pop(name, None)
        if self.active_adapter == name:
            self.active_adapter = None

    def __call__(self, x: Tensor) -> Tensor:
        # detach(): no gradient reaches the frozen base weight (backward() may still attach a zero .grad to it)
        weight = self.base_layer.weight.detach()
        # minimac's layers have no bias: the frozen matmul through the `linear` seam (minimac/ops.py)
        y = linear(x, weight) if self.bias is None else x.linear(weight.transpose(), self.bias.detach())
        name = self.active_adapter
        if name is None or self.disabled:
            return y
        if (bias := self.lora_bias.get(name)) is not None:  # output_bias: kept when merged (the base has no bias)
            y = y + bias
        if self.merged_adapter is not None or name not in self.lora_A:
            return y
        config = self.configs[name]
        h = x.dropout(config.lora_dropout)  # a no-op outside Context(TRAINING=1)
        # h @ A^T (tokens, r) is stored once; left to itself tinygrad recomputes it inside B's matmul, per output column
        down = low_rank_linear(h, self.lora_A[name]).contiguous().contiguous_backward()
        y = y + low_rank_linear(down, self.lora_B[name]) * config.scaling
        if (off := self.lora_offset.get(name)) is not None:  # PiSSA: scaling * (B A - B0 A0) h, A0 and B0 frozen
            y = y - low_rank_linear(low_rank_linear(h, off.A0), off.B0) * config.scaling
        return y

    def delta_weight(self, name: str) -> Tensor:
        delta = (self.lora_B[name] @ self.lora_A[name]) * self.configs[name].scaling  # (out, r) @ (r, in)
        off = self.lora_offset.get(name)
        return delta if off is None else delta - (off.B0 @ off.A0) * self.configs[name].scaling

    def merge(self) -> None:
        """Fold the active adapter into the base weight in place: W <- W + scaling * B @ A."""
        if self.merged_adapter is None and self.active_adapter in self.lora_A:
            w = self.base_layer.weight
            w.assign((w.detach() + self.delta_weight(self.active_adapter)).cast(w.dtype)).realize()
            self.merged_adapter = self.active_adapter

    def unmerge(self) -> None:
        if self.merged_adapter is not None:
            w = self.base_layer.weight
            w.assign((w.detach() - self.delta_weight(self.merged_adapter)).cast(w.dtype)).realize()
            self.merged_adapter = None
