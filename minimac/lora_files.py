"""LoRA adapters on disk in PEFT's layout: adapter_config.json + adapter_model.safetensors. Lesson 08.

    save_adapter(model, "ckpt/code", "code")    # both files, each written to a temp file and renamed (atomic)
    load_adapter(fresh_model, "ckpt/code")     # -> "code"; every file, key and shape checked before the model changes

The keys are PEFT's (`layers.0.attention.q_proj.lora_A.weight`, ..., a saved module under its own path such as
`norm.weight`) and the config holds r, lora_alpha, lora_dropout, target_modules, use_rslora, init_lora_weights and
modules_to_save, so the folder reads like a PEFT adapter (a PiSSA adapter's frozen start is recomputed from the base
weight on loading, not saved: see minimac/lora_variants.py). The weights are written on the host
(minimac/files.py), so saving needs no CPU compiler on a GPU machine.

Leaves out: the adapters themselves (minimac/lora.py), whole-learner checkpoints (minimac/learner/checkpoint.py).
"""
from __future__ import annotations

import json
import os
import pathlib
from dataclasses import asdict

import numpy as np
from tinygrad import Tensor
from tinygrad.nn import Linear
from tinygrad.nn.state import get_state_dict

from minimac import lora_embedding
from minimac.files import atomic_write, read_safetensors, write_safetensors
from minimac.lora import (
    _matching_target,
    _resolve,
    _walk,
    adapter_names,
    adapter_state_dict,
    add_adapter,
    lora_layers,
)
from minimac.lora_layer import LoRAConfig, LoRALinear
from minimac.lora_variants import saved_paths

CONFIG_NAME, WEIGHTS_NAME = "adapter_config.json", "adapter_model.safetensors"


def save_adapter(model, directory: str | os.PathLike, adapter_name: str | None = None) -> None:
    """Write adapter_config.json and adapter_model.safetensors into `directory` (each via a temp file + os.replace)."""
    name = _resolve(model, adapter_name)
    config = _config_of(model, name)
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = adapter_state_dict(model, name)
    atomic_write(directory / WEIGHTS_NAME, lambda tmp: write_safetensors(tmp, state))  # on the host: no compiler
    meta = {"peft_type": "LORA", "adapter_name": name, **asdict(config), "target_modules": list(config.target_modules),
            "modules_to_save": list(config.modules_to_save) or None}
    atomic_write(directory / CONFIG_NAME, json.dumps(meta, indent=2))


def load_adapter(model, directory: str | os.PathLike, adapter_name: str | None = None) -> str:
    """Load an adapter saved by save_adapter (as `adapter_name`, default the saved name); returns its name.

    A new name is added (and activated if no adapter is active); an existing one is overwritten in place, so its
    tensors keep their buffers. Every file, key and shape is checked before the model is touched.
    """
    directory = pathlib.Path(directory)
    for file in (directory / CONFIG_NAME, directory / WEIGHTS_NAME):
        if not file.is_file():
            raise FileNotFoundError(f"no {file.name} in {directory}; write one with save_adapter(model, directory)")
    try:
        meta = json.loads((directory / CONFIG_NAME).read_text())
        config = LoRAConfig(r=meta["r"], lora_alpha=meta["lora_alpha"], lora_dropout=meta["lora_dropout"],
                            target_modules=tuple(meta["target_modules"]), use_rslora=meta.get("use_rslora", False),
                            init_lora_weights=meta.get("init_lora_weights", True),
                            modules_to_save=tuple(meta.get("modules_to_save") or ()),
                            embedding_r=meta.get("embedding_r", 0), output_bias=meta.get("output_bias", False))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{directory / CONFIG_NAME} is not a valid adapter config ({type(e).__name__}: {e})") from e
    arrays = read_safetensors(directory / WEIGHTS_NAME)
    name = adapter_name or meta.get("adapter_name", "default")
    if exists := name in adapter_names(model):
        old = _config_of(model, name)
        if (old.init_lora_weights, old.use_rslora) != (config.init_lora_weights, config.use_rslora):
            raise ValueError(f"adapter {name!r} exists with init_lora_weights={old.init_lora_weights!r}, use_rslora="
                             f"{old.use_rslora} but {directory} has {config.init_lora_weights!r}, {config.use_rslora}; "
                             "delete_adapter it first")
        expected = {k: tuple(v.shape) for k, v in adapter_state_dict(model, name).items()}
    else:
        expected = {}
        for path, _, _, child in _walk(model):
            if isinstance(child, (Linear, LoRALinear)) and _matching_target(path, config.target_modules):
                out_features, in_features = child.weight.shape
                expected[f"{path}.lora_A.weight"], expected[f"{path}.lora_B.weight"] = ((config.r, in_features),
                                                                                        (out_features, config.r))
        state = get_state_dict(model)
        expected.update({p: tuple(state[p].shape) for p in saved_paths(model, config.modules_to_save)})
        expected.update(lora_embedding.expected_shapes(model, config))
    if missing := sorted(expected.keys() - arrays.keys()):
        raise ValueError(f"adapter in {directory} lacks {len(missing)} tensors the model needs, e.g. {missing[0]}")
    if extra := sorted(arrays.keys() - expected.keys()):
        raise ValueError(f"adapter in {directory} has {len(extra)} tensors this model has no layer for, e.g. {extra[0]}")
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise ValueError(f"{key}: the adapter has shape {arrays[key].shape} but this model needs {shape}")
    if not exists:
        add_adapter(model, name, config)
    for key, tensor in adapter_state_dict(model, name).items():
        tensor.assign(Tensor(arrays[key].astype(np.float32), device=tensor.device)).realize()
    for path, layer in lora_layers(model).items():
        if name in layer.configs:
            layer.configs[name] = lora_embedding.head_config(config) if path == lora_embedding.HEAD else config
    return name


def _config_of(model, name: str) -> LoRAConfig:
    """The adapter's LoRAConfig, as its projections keep it (lm_head keeps a derived one: lora_embedding.head_config)."""
    configs = [(path, layer.configs[name]) for path, layer in lora_layers(model).items() if name in layer.configs]
    return next((c for path, c in configs if path != lora_embedding.HEAD), configs[0][1])
