"""Model checkpoints: `model.safetensors` + `config.json` in one directory. Lesson 06.

    save(model, "ckpt/base")
    model = load("ckpt/base")               # the same logits, bit for bit

- `model.safetensors`: every weight under its seed name (`layers.0.attention.q_proj.weight`, float32). With tied
  embeddings only `token_embedding.weight` is stored (the seed stored the same matrix twice).
- `config.json`: {"format_version": 1, "model": ModelConfig.to_dict()}.

Writes are atomic (minimac/files.py): each file goes to a temp file in the same directory, then `os.replace` puts it
in place, so a crash never leaves a half-written file under the real name. The directory may hold other files (a
tokenizer in `tokenizer/`, LoRA adapters, a learner's state); they are left alone.

Loading checks everything before touching a model: a missing directory or file, a truncated or corrupt safetensors
file, an unknown format version, or weights that do not fit the config (a missing key, a shape mismatch) each raise
an error that names the file and the problem. The seed's `from_checkpoint` (documented but missing) is `load`.

Not covered: optimizer state, sharded or half-precision checkpoints, loading the seed's PyTorch pickles.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from tinygrad import Tensor, dtypes

from minimac.files import atomic_write, read_safetensors, write_safetensors

FORMAT_VERSION = 1
WEIGHTS_NAME, CONFIG_NAME = "model.safetensors", "config.json"


def save(model: Any, directory: str | os.PathLike) -> Path:
    """Write `model`'s weights and config into `directory` (created if needed); return the directory."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = dict(model.state_dict())
    if model.config.tie_embeddings:
        state.pop("lm_head.weight", None)  # the same tensor as token_embedding.weight
    state = {k: v.cast(dtypes.float32).contiguous() for k, v in state.items()}
    Tensor.realize(*state.values())
    config = {"format_version": FORMAT_VERSION, "model": model.config.to_dict()}
    atomic_write(d / WEIGHTS_NAME, lambda tmp: write_safetensors(tmp, state))
    atomic_write(d / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    return d


def read_config(directory: str | os.PathLike) -> Any:
    """The ModelConfig stored in `directory`/config.json."""
    from minimac.model import ModelConfig

    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"config file '{path}' is missing")
    try:
        blob = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"config file '{path}' is not valid JSON: {e}") from None
    if not isinstance(blob, dict) or "model" not in blob:
        raise ValueError(f"config file '{path}' has no \"model\" section (is it a model checkpoint?)")
    if blob.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"config file '{path}' has format_version {blob.get('format_version')!r}; "
                         f"this minimac reads version {FORMAT_VERSION}")
    try:
        return ModelConfig.from_dict(blob["model"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"config file '{path}': {e}") from None


def load(directory: str | os.PathLike) -> Any:
    """A Transformer rebuilt from `directory` (config.json + model.safetensors)."""
    from minimac.model import Transformer

    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"checkpoint directory '{d}' does not exist")
    config = read_config(d)
    weights = read_safetensors(d / WEIGHTS_NAME)
    model = Transformer(config)
    own = model.state_dict()
    expected = set(own) - ({"lm_head.weight"} if config.tie_embeddings else set())
    where = f"weights file '{d / WEIGHTS_NAME}'"
    if missing := sorted(expected - set(weights)):
        raise ValueError(f"{where} does not match config.json: missing {', '.join(missing)}")
    if unexpected := sorted(set(weights) - set(own)):
        raise ValueError(f"{where} does not match config.json: unexpected {', '.join(unexpected)}")
    for name in sorted(expected):
        if tuple(weights[name].shape) != tuple(own[name].shape):
            raise ValueError(f"{where} does not match config.json: {name} has shape {tuple(weights[name].shape)}, "
                             f"the config needs {tuple(own[name].shape)}")
    model.load_state_dict({k: Tensor(np.ascontiguousarray(weights[k], dtype=np.float32), dtype=dtypes.float32)
                           for k in expected})
    return model
