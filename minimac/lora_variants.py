"""Adapters that learn faster than plain LoRA, with the names the papers and PEFT use. Lesson 08, second part.

Plain LoRA (minimac/lora.py) starts from B = 0, scales by alpha / r and trains A and B at one learning rate. Four
changes, each a switch in `LoRAConfig` or the learner's config, each measured in docs/forgetting.md:

- rsLoRA (Kalajdzievski 2023, "A Rank Stabilization Scaling Factor"): scaling = alpha / sqrt(r) instead of
  alpha / r, so a higher rank is not a smaller update. `LoRAConfig(use_rslora=True)`; the formula is in
  LoRAConfig.scaling.
- LoRA+ (Hayou, Ghosh, Yu 2024): B learns `loraplus_lr_ratio` times faster than A (the paper suggests ~16), since
  with B = 0 at the start only B's step moves the output. `minimac.learner.step.param_groups` gives the optimizer
  the two groups.
- PiSSA (Meng, Wang, Zhang 2024): A and B start from the weight's top-r singular vectors instead of noise and zero,
  so the first steps move the directions the weight already uses most. PEFT moves that top-r part out of the base
  weight (W_res = W - s B0 A0); minimac keeps several adapters on one frozen base, so instead each adapter subtracts
  its own frozen start: y = W x + s (B A - B0 A0) x. A fresh adapter still adds exactly nothing, and the gradients
  are PiSSA's. A0 and B0 are recomputed from the base weight when an adapter is loaded (they are never saved).
- modules_to_save (PEFT's name): a trainable per-adapter copy of whole tensors, here every RMSNorm gain ("norm",
  2,304 numbers on the tiny model) and/or the token embedding ("token_embedding", tied to lm_head). The model's own
  tensor holds the active adapter's copy: switching adapters (lora.set_adapter, disable_adapters, ...) writes the
  old owner's values back into its copy and the new owner's (or the base's) into the model, in place, so jitted
  code that reads those buffers stays valid.

    >>> cfg = LoRAConfig(r=16, lora_alpha=16, use_rslora=True, modules_to_save=("norm",))   # doctest: +SKIP
    >>> add_adapter(model, "law", cfg)                                                      # doctest: +SKIP

Leaves out: DoRA, OLoRA, LoftQ and PEFT's other inits, learning-rate schedules (the learner's,
minimac/learner/strategies.py). A low-rank delta on the tied embedding and an output bias: minimac/lora_embedding.py.
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np
from tinygrad import Tensor
from tinygrad.nn.state import get_state_dict

_SAVED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # model -> _Saved (kept out of its state dict)


class _Frozen:
    """PiSSA's start (A0 (r, in), B0 (out, r)). No __dict__, so get_state_dict and checkpoints never see it."""
    __slots__ = ("A0", "B0")

    def __init__(self, A0: Tensor, B0: Tensor):
        self.A0, self.B0 = A0, B0


def pissa_init(layer: Any, name: str, config: Any) -> None:
    """A = sqrt(S_r) V_r^T / sqrt(s), B = U_r sqrt(S_r) / sqrt(s), from the base weight's SVD W = U S V^T (host,
    float64), so that s B A is W's best rank-r part (as PEFT's `init_lora_weights="pissa"`); (A0, B0) keep the start.

    Worked example: W = diag(3, 1), r = 1, s = 1 -> A = [[sqrt(3), 0]], B = [[sqrt(3)], [0]], s B A = diag(3, 0).
    """
    w = layer.base_layer.weight.numpy().astype(np.float64)                      # (out, in)
    if config.r > min(w.shape):
        raise ValueError(f"PiSSA needs r <= min(out, in) = {min(w.shape)} for a {w.shape} weight, got r={config.r}")
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    root = np.sqrt(s[:config.r] / config.scaling)                               # (r,)
    a, b = (root[:, None] * vt[:config.r]).astype(np.float32), (u[:, :config.r] * root).astype(np.float32)
    device = layer.base_layer.weight.device
    layer.lora_A[name] = Tensor(a, device=device).contiguous().realize()
    layer.lora_B[name] = Tensor(b, device=device).contiguous().realize()
    layer.lora_offset[name] = _Frozen(Tensor(a, device=device).realize(), Tensor(b, device=device).realize())


# ---- modules_to_save: per-adapter copies of whole tensors ----

class _Saved:
    """One model's per-adapter copies: {adapter: {path: Tensor}}, the base values, and whose values the model holds."""

    def __init__(self):
        self.base: dict[str, Tensor] = {}
        self.copies: dict[str, dict[str, Tensor]] = {}
        self.owner: str | None = None


def saved_paths(model: Any, modules: tuple[str, ...]) -> list[str]:
    """State-dict paths of the tensors `modules` names: "norm" -> every "...norm.weight", "token_embedding" -> its
    weight (which lm_head shares when tied)."""
    out = []
    for path in get_state_dict(model):
        if ("norm" in modules and path.endswith("norm.weight")) or \
                ("token_embedding" in modules and path == "token_embedding.weight"):
            out.append(path)
    return out


def _live(model: Any) -> dict[str, Tensor]:
    return get_state_dict(model)


def add_saved(model: Any, adapter_name: str, modules: tuple[str, ...]) -> None:
    """Give `adapter_name` its own copy (starting from the base values) of every tensor `modules` names."""
    paths = saved_paths(model, modules)
    if not paths:
        return
    saved, live = _SAVED.setdefault(model, _Saved()), _live(model)
    for p in paths:
        if p not in saved.base:  # nobody owns p yet, so the model holds its base value
            saved.base[p] = live[p].clone().realize()
    saved.copies[adapter_name] = {p: saved.base[p].clone().realize() for p in paths}


def sync(model: Any, running: str | None) -> None:
    """Make the model's tensors hold the copies of adapter `running` (the one that runs now; the base values when
    None runs). Called by minimac/lora.py after every switch."""
    saved = _SAVED.get(model)
    if saved is None:
        return
    want = running if running in saved.copies else None
    if want == saved.owner:
        return
    live, old, new = _live(model), saved.copies.get(saved.owner, {}), saved.copies.get(want, {})
    for p, base in saved.base.items():
        if p in old:
            old[p].assign(live[p].detach()).realize()      # the old owner's trained values go back into its copy
        if p in old or p in new:
            live[p].assign(new.get(p, base).detach()).realize()
    saved.owner = want


def drop_saved(model: Any, adapter_name: str) -> None:
    """Forget an adapter's copies (delete_adapter); the model gets the base values back if it held them."""
    saved = _SAVED.get(model)
    if saved is None or adapter_name not in saved.copies:
        return
    live = _live(model)
    if saved.owner == adapter_name:
        for p in saved.copies[adapter_name]:
            live[p].assign(saved.base[p].detach()).realize()
        saved.owner = None
    del saved.copies[adapter_name]


def saved_state_dict(model: Any, adapter_name: str) -> dict[str, Tensor]:
    """{path: tensor} of an adapter's copies: the model's own tensor while that adapter runs (what an optimizer must
    train), else the stored copy."""
    saved = _SAVED.get(model)
    if saved is None or adapter_name not in saved.copies:
        return {}
    live = _live(model)
    return {p: live[p] if saved.owner == adapter_name else t for p, t in saved.copies[adapter_name].items()}


def base_values(model: Any) -> dict[str, Tensor]:
    """{path: the base model's value} of every tensor some adapter keeps a copy of (for saving the base model)."""
    saved = _SAVED.get(model)
    return dict(saved.base) if saved is not None else {}
