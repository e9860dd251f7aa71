"""LoRA adapters on a whole model, with PEFT's names: several named adapters in every targeted layer. Lesson 08.

The layer itself (LoRAConfig, LoRALinear: y = x W^T + dropout(x) A^T B^T * lora_alpha / r, W frozen) is
minimac/lora_layer.py's; this module wraps a model's layers in it and manages the adapters by name.

    >>> model = inject_lora(model, LoRAConfig(r=8))            # wraps every q_proj ... w3, adapter "default"
    >>> opt = AdamW(lora_parameters(model))                   # only that adapter's A and B
    >>> add_adapter(model, "code", LoRAConfig(r=8)); set_adapter(model, "code")
    >>> with disable_adapters(model): base_logits = model(x)  # the frozen base model
    >>> save_adapter(model, "ckpt/code", "code")              # adapter_config.json + adapter_model.safetensors

Multi-adapter support is real (the seed's MultiAdapterLoRAModel was a stub): every wrapped layer holds one (A, B)
pair per adapter name, and a Python-level switch picks the active one.

JIT: which adapter runs, and whether adapters are disabled or merged, are Python decisions, so a TinyJit captured
with one adapter keeps replaying that adapter's kernels. Keep one jitted step per adapter, or call `jit.reset()`
after set_adapter / disable_adapters / merge_adapter / delete_adapter / load_adapter.

Files: save_adapter / load_adapter (PEFT's layout) are in minimac/lora_files.py. Adapters that
learn faster (rsLoRA's alpha / sqrt(r) scaling, LoRA+ learning rates, PiSSA's start from the top singular vectors,
per-adapter copies of the norms: PEFT's `modules_to_save`) are in minimac/lora_variants.py; LoRAConfig names them.

The tied embedding / lm_head: a low-rank delta and an output bias per adapter (LoRAConfig's embedding_r and
output_bias) are in minimac/lora_embedding.py.

Not covered: mixing several adapters in one forward pass.
"""
from __future__ import annotations

import types

from tinygrad import Tensor
from tinygrad.nn import Linear
from tinygrad.nn.state import get_state_dict

from minimac import lora_embedding, lora_variants
from minimac.lora_layer import LoRAConfig, LoRALinear  # the layer; `lora.LoRAConfig` keeps working

# ---- walking a model tree (objects, lists, dicts), the way tinygrad's get_state_dict names things ----

def _walk(obj, prefix: str = "", seen: set | None = None):
    """Yield (path, parent, key, child) below `obj`; stops at Tensors and at Linear / LoRALinear layers."""
    seen = set() if seen is None else seen
    if isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    elif isinstance(obj, dict):
        items = obj.items()
    elif hasattr(obj, "__dict__") and not isinstance(obj, (type, types.ModuleType, types.FunctionType)):
        items = vars(obj).items()
    else:
        return
    for key, child in list(items):
        if isinstance(child, Tensor) or id(child) in seen:
            continue
        seen.add(id(child))
        path = f"{prefix}{key}"
        yield path, obj, key, child
        if not isinstance(child, (Linear, LoRALinear)):
            yield from _walk(child, path + ".", seen)


def _matching_target(path: str, targets: tuple[str, ...]) -> str | None:
    # FIX (seed): whole-name match only ("q_proj" matches "layers.0.attention.q_proj"), never a substring regex,
    # so "…q_proj.base_layer" can never match and re-wrapping cannot nest adapters
    return next((t for t in targets if path == t or path.endswith("." + t)), None)


def _replace(parent, key, new) -> None:
    if isinstance(parent, (list, dict)):
        parent[key] = new
    else:
        setattr(parent, key, new)


def lora_layers(model) -> dict[str, LoRALinear]:
    """Every LoRALinear in the model by path, e.g. {"layers.0.attention.q_proj": LoRALinear, ...}."""
    return {path: child for path, _, _, child in _walk(model) if isinstance(child, LoRALinear)}


def adapter_names(model) -> list[str]:
    return sorted({name for layer in lora_layers(model).values() for name in layer.configs})


def active_adapter(model) -> str | None:
    return next((layer.active_adapter for layer in lora_layers(model).values() if layer.active_adapter), None)


def _check_name(model, name: str) -> None:
    if name not in adapter_names(model):
        raise ValueError(f"no adapter named {name!r}; this model has {adapter_names(model)}")


def _check_not_merged(model, action: str) -> None:
    if any(layer.merged_adapter for layer in lora_layers(model).values()):
        raise ValueError(f"cannot {action} while an adapter is merged into the base weights; call unmerge_adapter first")


# ---- adapters on a whole model (PEFT's names) ----

def add_adapter(model, adapter_name: str, config: LoRAConfig) -> None:
    """Give every Linear whose name is in config.target_modules a new (A, B) pair (wrapping it in a LoRALinear the
    first time). It becomes the active adapter only if none is active; otherwise call set_adapter (as in PEFT)."""
    if not isinstance(config, LoRAConfig):
        raise TypeError(f"config must be a LoRAConfig, got {type(config).__name__}")
    if adapter_name in adapter_names(model):
        raise ValueError(f"adapter {adapter_name!r} already exists; delete_adapter it first or pick another name")
    found, hits, linear_names = [], {t: 0 for t in config.target_modules}, set()
    for path, parent, key, child in _walk(model):
        if isinstance(child, (Linear, LoRALinear)):
            linear_names.add(str(key))
        if child is None or isinstance(child, (bool, int, float, str)):
            continue
        if (target := _matching_target(path, config.target_modules)) is None:
            continue
        if not isinstance(child, (Linear, LoRALinear)):
            raise TypeError(f"target {target!r} matched {path!r}, a {type(child).__name__}; LoRA wraps nn.Linear only")
        found.append((parent, key, child))
        hits[target] += 1
    if missing := [t for t, n in hits.items() if n == 0]:
        raise ValueError(f"target_modules {missing} match no Linear layer; the model's Linear layers are "
                         f"{sorted(linear_names)}")
    disabled = any(layer.disabled for layer in lora_layers(model).values())
    for parent, key, child in found:  # mutate only after every check passed
        if isinstance(child, Linear):
            _replace(parent, key, child := LoRALinear(child))
            child.disabled = disabled
        child.add_adapter(adapter_name, config)
    if config.embedding_r or config.output_bias:
        lora_embedding.add_head(model, adapter_name, config, LoRALinear, disabled)
    if config.modules_to_save:
        lora_variants.add_saved(model, adapter_name, config.modules_to_save)
    if active_adapter(model) is None:
        set_adapter(model, adapter_name)


def inject_lora(model, config: LoRAConfig, adapter_name: str = "default"):
    """Wrap the model's target layers in place (PEFT's get_peft_model), activate the adapter, return the model."""
    add_adapter(model, adapter_name, config)
    set_adapter(model, adapter_name)
    return model


def set_adapter(model, adapter_name: str) -> None:
    """Make `adapter_name` the one that runs; layers without it run their base weight only."""
    _check_name(model, adapter_name)
    _check_not_merged(model, "switch adapters")
    for layer in lora_layers(model).values():
        layer.active_adapter = adapter_name if adapter_name in layer.configs else None
    _sync(model)


def _sync(model) -> None:
    """After any switch: the model's saved-module tensors hold the running adapter's copies (lora_variants.py)."""
    layers = lora_layers(model).values()
    lora_variants.sync(model, None if any(layer.disabled for layer in layers) else active_adapter(model))


class _ReEnable:
    def __init__(self, model):
        self.model = model

    def __enter__(self):
        return self.model

    def __exit__(self, *exc):
        enable_adapters(self.model)


def disable_adapters(model) -> _ReEnable:
    """Run the base model only. Takes effect at once; used as `with disable_adapters(model):` it re-enables on exit."""
    _check_not_merged(model, "disable adapters")
    for layer in lora_layers(model).values():
        layer.disabled = True
    _sync(model)
    return _ReEnable(model)


def enable_adapters(model) -> None:
    for layer in lora_layers(model).values():
        layer.disabled = False
    _sync(model)


def delete_adapter(model, adapter_name: str) -> None:
    """Remove an adapter; a layer left with no adapter goes back to being its plain base Linear."""
    _check_name(model, adapter_name)
    if any(layer.merged_adapter == adapter_name for layer in lora_layers(model).values()):
        raise ValueError(f"adapter {adapter_name!r} is merged into the base weights; call unmerge_adapter first")
    lora_variants.drop_saved(model, adapter_name)
    for path, parent, key, child in list(_walk(model)):
        if isinstance(child, LoRALinear):
            child.delete_adapter(adapter_name)
            if not child.configs:
                _replace(parent, key, child.base_layer)
    head = getattr(model, lora_embedding.HEAD, None)
    if isinstance(getattr(model, "token_embedding", None), lora_embedding.TiedLoRAEmbedding) and \
            not (isinstance(head, LoRALinear) and head.lora_A):
        model.token_embedding = model.token_embedding.base_layer   # no embedding delta left: the plain nn.Embedding


def merge_adapter(model) -> None:
    """Fold the active adapter into the base weights (fast inference); the LoRA path is then skipped."""
    if active_adapter(model) is None or any(layer.disabled for layer in lora_layers(model).values()):
        raise ValueError("merge_adapter needs an active, enabled adapter; call set_adapter / enable_adapters first")
    for layer in lora_layers(model).values():
        layer.merge()


def unmerge_adapter(model) -> None:
    for layer in lora_layers(model).values():
        layer.unmerge()


def _resolve(model, adapter_name: str | None) -> str:
    if adapter_name is None and (adapter_name := active_adapter(model)) is None:
        raise ValueError(f"no active adapter; name one of {adapter_names(model)} or call set_adapter")
    _check_name(model, adapter_name)
    return adapter_name


def adapter_state_dict(model, adapter_name: str | None = None) -> dict[str, Tensor]:
    """{"layers.0.attention.q_proj.lora_A.weight": A, "...lora_B.weight": B, ...} for one adapter (the active one),
    then its saved modules, if any, under their own paths ("norm.weight", ...; see lora_variants.py)."""
    name, out = _resolve(model, adapter_name), {}
    for path, layer in lora_layers(model).items():
        if name in layer.lora_A:
            out[f"{path}.lora_A.weight"], out[f"{path}.lora_B.weight"] = layer.lora_A[name], layer.lora_B[name]
        if name in layer.lora_bias:
            out[f"{path}.lora_bias.weight"] = layer.lora_bias[name]
    return {**out, **lora_variants.saved_state_dict(model, name)}


def lora_parameters(model, adapter_name: str | None = None) -> list[Tensor]:
    """The tensors to hand the optimizer: that adapter's A and B in every layer (and its saved modules), nothing
    else. Take them while the adapter is active: a saved module is then the model's own tensor."""
    return list(adapter_state_dict(model, adapter_name).values())


def count_parameters(model, adapter_name: str | None = None) -> dict[str, int]:
    """{"trainable": numbers in lora_parameters(model, adapter_name), "total": every distinct parameter in the model}.

    Each tensor is counted once (FIX: the seed counted LoRA tensors twice), tied weights too.
    """
    distinct = {id(t): t for t in get_state_dict(model).values() if t.is_param and t.is_floating_point()}
    return {"trainable": sum(t.numel() for t in lora_parameters(model, adapter_name)),
            "total": sum(t.numel() for t in distinct.values())}

