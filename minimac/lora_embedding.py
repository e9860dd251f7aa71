"""LoRA on the tied embedding and a per-adapter output bias: what an adapter may change besides the projections.
Lesson 08, third part.

minimac ties its input and output vocabularies: lm_head.weight IS token_embedding.weight, one (V, d) matrix E. A full
per-adapter copy of E costs V * d numbers (11.7% of the tiny model), too much for a light adapter. Two cheap ways to
let each adapter move it anyway, both switches of `LoRAConfig`:

- `embedding_r = k`: a low-rank delta on E, E' = E + s B A with A (k, d) and B (V, k), B = 0 at the start (so a fresh
  adapter changes nothing). The same E' is read twice, as with the tied E: the token lookup takes its rows,
  x = E'[tokens] = E[tokens] + s B[tokens] A, and lm_head projects onto it, logits = h E'^T = h E^T + s (h A^T) B^T.
  The delta lives in lm_head's LoRALinear (its lora_A / lora_B, saved, switched and deleted with the rest of the
  adapter); the model's token_embedding becomes a `TiedLoRAEmbedding` whose `.weight` reads E plus the running
  adapter's delta. k (V + d) numbers: k = 32 is 73,728 on the tiny model (1.7%).
- `output_bias = True`: a trainable bias over the vocabulary, logits = h E'^T + b, b (V,) zeros at the start.
  A domain's text uses its tokens at other rates than the base's (code: brackets and indentation); a bias moves
  those rates directly, for V numbers (0.05% of the tiny model). Its learning rate is LoRA+'s B rate (it starts
  at zero and is the only thing that moves it, like B). A merged adapter keeps its bias at run time: the base
  lm_head has no bias to fold it into, so a merged model.safetensors leaves it out.

    >>> cfg = LoRAConfig(r=16, use_rslora=True, embedding_r=32, output_bias=True)       # doctest: +SKIP
    >>> add_adapter(model, "code", cfg)    # q_proj ... w3 at rank 16, E at rank 32, a bias on the logits

Leaves out: an untied lm_head's own embedding delta (with untied weights only lm_head gets the delta), DoRA.
"""
from __future__ import annotations

import dataclasses
import weakref
from typing import Any

from tinygrad import Tensor

HEAD = "lm_head"


def head_config(config: Any) -> Any:
    """The LoRAConfig lm_head's LoRALinear keeps for an adapter: rank embedding_r (1 when only a bias is asked for:
    the layer then holds no A and B), nothing else of the projections' settings besides alpha, rsLoRA and init."""
    return dataclasses.replace(config, r=config.embedding_r or 1, target_modules=(HEAD,), embedding_r=0,
                               output_bias=False, modules_to_save=())


class TiedLoRAEmbedding:
    """The model's token_embedding, whose `.weight` is E plus the running adapter's delta (lm_head's s B A).

    `base_layer` is the nn.Embedding (so the state dict keeps E as "token_embedding.base_layer.weight", as a
    LoRALinear keeps its weight); lm_head is held by a weak reference, out of the state dict (it is there already).
    """

    def __init__(self, base_layer: Any, head: Any):
        self.base_layer = base_layer
        self._head = weakref.ref(head)

    @property
    def weight(self) -> Tensor:
        head, e = self._head(), self.base_layer.weight
        name = None if head is None else head.active_adapter
        # merged: E itself holds the delta already (merge folds it into lm_head.weight, which is E)
        if name is None or head.disabled or head.merged_adapter is not None or name not in head.lora_A:
            return e
        return e.detach() + head.delta_weight(name)   # (V, d); only A and B get a gradient

    def __call__(self, idx: Tensor) -> Tensor:
        return self.weight[idx]


def add_head(model: Any, adapter_name: str, config: Any, wrap: Any, disabled: bool = False) -> None:
    """Give adapter `adapter_name` its embedding delta and/or output bias on lm_head (`wrap` = LoRALinear, passed in
    to keep this module below minimac/lora.py; `disabled` as the model's other LoRA layers). Wraps lm_head, and the
    tied token_embedding, the first time."""
    head = getattr(model, HEAD, None)
    if head is None:
        raise ValueError(f"embedding_r / output_bias need a model with an '{HEAD}' layer; this one has none")
    if not isinstance(head, wrap):
        head = wrap(head)
        head.disabled = disabled
        setattr(model, HEAD, head)
    cfg = head_config(config)
    if config.embedding_r:
        head.add_adapter(adapter_name, cfg)
    else:
        head.configs[adapter_name] = cfg
    if config.output_bias:
        head.lora_bias[adapter_name] = Tensor.zeros(head.out_features).contiguous().realize()
    emb = getattr(model, "token_embedding", None)
    if config.embedding_r and not isinstance(emb, TiedLoRAEmbedding) and getattr(emb, "weight", None) is head.weight:
        model.token_embedding = TiedLoRAEmbedding(emb, head)     # tied: the lookup reads E + delta too


def expected_shapes(model: Any, config: Any) -> dict[str, tuple[int, ...]]:
    """{key: shape} of the head tensors a saved adapter with `config` holds (minimac/lora_files.py checks them)."""
    head = getattr(model, HEAD, None)
    if head is None or not (config.embedding_r or config.output_bias):
        return {}
    out_features, in_features = head.weight.shape
    shapes = {}
    if config.embedding_r:
        shapes[f"{HEAD}.lora_A.weight"] = (config.embedding_r, in_features)
        shapes[f"{HEAD}.lora_B.weight"] = (out_features, config.embedding_r)
    if config.output_bias:
        shapes[f"{HEAD}.lora_bias.weight"] = (out_features,)
    return shapes
