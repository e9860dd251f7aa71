"""Dendritic feed-forward: SwiGLU hidden units grouped into compartments, each gated by the context. Lesson 14.

Source: the seed's DendriticLayer (seed-analysis §6.5), never used by its model: four branches Linear(d, d/4) + an
activation, concatenated, multiplied by gates sigmoid(Linear(d, 4)(context)) when a context was passed (it never
was), then a "soma" Linear(d, d). It had about 2 d^2 parameters, more than the Linear it claimed to save.

Ours keeps the idea (compartments whose output is switched by context) inside the block's SwiGLU, so that it can be
swapped into a *pretrained* model without changing what the model computes:

    hidden = silu(w1 x) * (w3 x)                              (..., d_ff), as SwiGLU
    gates  = 2 sigmoid(context_gate(x))                       (..., K): one gate per compartment, 1 at init
    out    = w2( hidden reshaped (..., K, d_ff/K) * gates[..., None] )

`context_gate` is a bias-free Linear(d_model, K) that starts at zero, so at init every gate is exactly 1 and the
block is the SwiGLU it replaced. The context is the block's own input x: attention has already mixed the preceding
tokens into it, so it says what kind of text this is, and a per-token gate stays correct with the KV cache (a
sequence-level context, like a running mean over the prompt, would not). w1, w2, w3 keep their names and weights,
so LoRA targets and checkpoints of the base still fit. To let continual learning move the gates, add
"context_gate" to LearnerConfig.target_modules (LoRA on the gate) or train it in the "full" strategy.
Extra parameters: d_model * K per block (512 for d = 128, K = 4).

Echoes: context-dependent gating against forgetting (Masse, Grant & Freedman 2018); active dendrites (Iyer et al.
2022, "Avoiding catastrophe"); compartmentalised dendrites (Poirazi, Brannon & Mel 2003).
Where the metaphor ends: a "dendrite" is a slice of the hidden vector times one learned sigmoid. There is no
dendritic spike, no separate integration, no plateau potential; functionally it is a soft mixture of K experts
that share their input projections.

Leaves out: the seed's DendriticMLP (dendritic layer + GELU MLP), dendritic attention, per-sequence contexts.

As a model option: `ModelConfig(ffn_type="dendritic", num_dendrites=4)` (d_ff % num_dendrites == 0) makes every
TransformerBlock build a DendriticFFN; its checkpoints (config.json + model.safetensors, with
layers.N.feed_forward.context_gate.weight) round-trip like any other. A model built that way starts its context gate
at N(0, 0.02) like every other weight (Transformer's init), so its gates start near, not at, 1; to turn a
*pretrained* SwiGLU model into a dendritic one that computes exactly what it did, use `use_dendritic_ffn(model)`
(it also gives the model a config with ffn_type="dendritic", so a saved model loads back as one).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tinygrad import Tensor

from minimac.neuro.base import check_int
from minimac.ops import Linear  # nn.Linear through the `linear` seam, as SwiGLU uses


@dataclass
class DendriticConfig:
    num_dendrites: int = 4   # seed

    def __post_init__(self):
        check_int("DendriticConfig", "num_dendrites", self.num_dendrites)


class DendriticFFN:
    """(..., d_model) -> (..., d_model): SwiGLU whose d_ff units form `num_dendrites` context-gated compartments.

    >>> ffn = DendriticFFN(d_model=32, d_ff=64, num_dendrites=4)
    >>> ffn(Tensor.randn(2, 5, 32)).shape
    (2, 5, 32)
    """

    def __init__(self, d_model: int, d_ff: int, num_dendrites: int = 4, dropout: float = 0.0):
        if d_model <= 0 or d_ff <= 0:
            raise ValueError(f"DendriticFFN sizes must be positive, got d_model={d_model}, d_ff={d_ff}")
        check_int("DendriticConfig", "num_dendrites", num_dendrites)
        if d_ff % num_dendrites:
            raise ValueError(f"d_ff ({d_ff}) must be divisible by num_dendrites ({num_dendrites}): each compartment "
                             "gets d_ff / num_dendrites hidden units")
        self.w1 = Linear(d_model, d_ff, bias=False)
        self.w2 = Linear(d_ff, d_model, bias=False)
        self.w3 = Linear(d_model, d_ff, bias=False)
        self.context_gate = Linear(d_model, num_dendrites, bias=False)
        self.context_gate.weight = Tensor.zeros(num_dendrites, d_model).contiguous().realize()
        self.num_dendrites, self.dropout = num_dendrites, dropout

    def gates(self, x: Tensor) -> Tensor:
        return 2 * self.context_gate(x).sigmoid()                                   # (..., K), 1 at init

    def __call__(self, x: Tensor) -> Tensor:
        # the storage hints of SwiGLU.__call__ (minimac/feedforward.py): same numbers, no recomputed activations
        gate, up = self.w1(x).contiguous_backward(), self.w3(x).contiguous_backward()   # (..., d_ff) each
        hidden = (gate.silu() * up).contiguous().contiguous_backward()                 # (..., d_ff)
        K = self.num_dendrites
        compartments = hidden.reshape(*hidden.shape[:-1], K, hidden.shape[-1] // K)  # (..., K, d_ff/K)
        gated = (compartments * self.gates(x).unsqueeze(-1)).reshape(hidden.shape)  # (..., d_ff)
        return self.w2(gated.dropout(self.dropout))


def use_dendritic_ffn(model: Any, config: DendriticConfig | None = None) -> Any:
    """Replace every block's SwiGLU by a DendriticFFN holding the *same* w1, w2, w3 (and LoRA wrappers, if any) and
    a zero context gate: the model computes exactly what it did. Returns the model. Do it before building the
    learner (a TinyJit captured on the old forward would keep running it).
    """
    config = DendriticConfig() if config is None else config
    if not isinstance(config, DendriticConfig):
        raise TypeError(f"config must be a DendriticConfig, got {type(config).__name__}")
    d_model, d_ff = model.config.d_model, model.config.d_ff
    if d_ff % config.num_dendrites:
        raise ValueError(f"d_ff ({d_ff}) must be divisible by num_dendrites ({config.num_dendrites})")
    for i, block in enumerate(model.layers):
        old = block.feed_forward
        if isinstance(old, DendriticFFN):
            raise TypeError(f"layer {i} already has a dendritic feed-forward")
        if type(old).__name__ != "SwiGLU":
            raise TypeError(f"layer {i}'s feed_forward is a {type(old).__name__}; use_dendritic_ffn replaces SwiGLU "
                            "only (install homeostasis after it, not before)")
        new = DendriticFFN(d_model, d_ff, config.num_dendrites, getattr(old, "dropout", 0.0))
        new.w1, new.w2, new.w3 = old.w1, old.w2, old.w3
        block.feed_forward = new
    # the config says what the model is, so that model.save() / Transformer.load() round-trip the dendritic blocks
    model.config = dataclasses.replace(model.config, ffn_type="dendritic", num_dendrites=config.num_dendrites)
    return model
