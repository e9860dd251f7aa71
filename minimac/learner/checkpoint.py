"""A continual learner's checkpoint: everything needed to go on learning exactly where it stopped. Lesson 11.

The learner's own state comes from `learner.state_dict()` and goes back through `learner.load_state_dict()`
(learner.py); this module only writes it to files, beside the model's weights and adapters, and reads it back:

    DIR/learner.json            format, LearnerConfig, counters, domains, adapters, history, R matrix, RNG states
    DIR/base/                   the frozen base model (minimac.checkpoint format: model.safetensors + config.json)
    DIR/tokenizer/              the tokenizer
    DIR/adapters/NN/            one LoRA adapter each (PEFT layout; its name is inside adapter_config.json)
    DIR/trainers.npz            per trainer (adapter, or the whole model for "full"): AdamW moments and step
                                powers, EWC Fisher and anchors (numpy, written on the host: many small arrays)
    DIR/replay.npz              the replay buffer (minimac.replay format)
    DIR/fisher_pool.npz         chunks kept for the Fisher of the domain being learned
    DIR/controllers.npz         the controllers' numpy arrays (e.g. the hippocampus's episode codes); their other
                                state (running averages, counters, RNG states) is in learner.json, by controller name
    DIR/model.safetensors       + DIR/config.json: the model as it generates now (the active adapter merged into
                                the base), so `python -m minimac.generate --checkpoint DIR` works as is

Atomic: everything is written into a temp folder beside DIR (.DIR.tmp-PID-*), then DIR is swapped in with os.replace
(an existing DIR is first moved to DIR.previous, removed once the new one is in place). An interrupted save leaves
the old checkpoint intact: either still at DIR, or at DIR.previous, which `load_learner` falls back to (and
`python -m minimac.generate` too); the next save cleans temp folders left by a killed process.
Finite: nothing non-finite is written. `save_learner` refuses (ValueError, nothing written) when a trainer's weights,
optimizer state or EWC arrays, or the last evaluation, hold a nan or inf; `nonfinite` is the one check, which the
learner also runs after the last update of every `learn_from_text` call.
Loading checks each file and names the one that is missing or corrupt, and that the trainer state fits the model.

Controllers (minimac/learner/hooks.py): each one's `state_dict()` is saved under its `name`; `load_learner(DIR, controllers)`
gives it back to the controller of that name (`load_state_dict`), so a run resumes with the same running averages,
counters, memories and random draws. Controllers are not rebuilt from the file: pass them again, built the same
way. One that changes the model (Homeostasis(model)) must be built on the loaded model, so `controllers` may be a
function of the model: `load_learner(DIR, lambda model: [Hippocampus(), Homeostasis(model)])`. A saved state with
no controller of its name is left unused (resuming without a controller is allowed).

Leaves out: the TinyJit captures (rebuilt on first use).
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from tinygrad import Tensor
from tinygrad.nn.state import get_state_dict

from minimac import checkpoint, lora, lora_files
from minimac.files import replace_folder
from minimac.learner.strategies import LearnerConfig
from minimac.replay import ReplayBuffer

FORMAT, VERSION = "minimac-learner", 1
META, TRAINERS, REPLAY, POOL = "learner.json", "trainers.npz", "replay.npz", "fisher_pool.npz"
CONTROLLERS = "controllers.npz"


class _Plain:
    """What minimac.checkpoint.save needs from a model: `.config` and `.state_dict()`."""

    def __init__(self, config: Any, state: dict[str, Tensor]):
        self.config, self._state = config, state

    def state_dict(self) -> dict[str, Tensor]:
        return self._state


def base_state_dict(model: Any) -> dict[str, Tensor]:
    """The model's own weights under seed names, LoRA left out ("q_proj.base_layer.weight" -> "q_proj.weight")."""
    return {k.replace(".base_layer.", "."): v for k, v in get_state_dict(model).items()
            if ".lora_A." not in k and ".lora_B." not in k and ".lora_bias." not in k}


def merged_state_dict(model: Any, adapter: str | None) -> dict[str, Tensor]:
    """Seed-named weights with `adapter` folded in (W + scaling * B @ A); the model itself is not changed."""
    state = base_state_dict(model)
    if adapter is not None:
        for path, layer in lora.lora_layers(model).items():
            if adapter in layer.lora_A:
                state[f"{path}.weight"] = merged = layer.base_layer.weight + layer.delta_weight(adapter)
                if layer.base_layer.weight is state.get("token_embedding.weight"):   # tied: lm_head's delta is E's
                    state["token_embedding.weight"] = merged
    return state


def nonfinite(arrays: Any) -> list[str]:
    """Which of the arrays or numbers hold a nan or inf: their keys (a dict) or positions (a list), as strings.
    nonfinite({"a": np.ones(2), "b": float("nan")}) -> ["b"]"""
    named = arrays.items() if isinstance(arrays, dict) else enumerate(arrays)
    return [str(k) for k, v in named if not np.isfinite(np.asarray(v, dtype=np.float64)).all()]


def check_writable(directory: str | os.PathLike) -> Path:
    """A folder save_learner may write: new, empty, or a learner checkpoint already (ValueError otherwise)."""
    final = Path(directory)
    if final.exists() and (not final.is_dir() or (any(final.iterdir()) and not (final / META).exists())):
        raise ValueError(f"refusing to overwrite '{final}': it exists and is not a learner checkpoint (no {META})")
    return final


def find_checkpoint(directory: str | os.PathLike) -> Path | None:
    """DIR if it holds a learner checkpoint, DIR.previous if a save was interrupted between its renames, else None."""
    try:
        return _locate(directory)
    except FileNotFoundError:
        return None


def save_learner(learner: Any, directory: str | os.PathLike) -> Path:
    final = check_writable(directory)
    replace_folder(lambda tmp: _write(learner, tmp), final)
    return final


def _write(learner: Any, d: Path) -> None:
    model, cfg, state = learner.model, learner.config, learner.state_dict()
    trainers, replay, pool, controllers = (state.pop(k) for k in ("trainers", "replay", "fisher_pool", "controllers"))
    last = state["stages"][-1]["scores"] if state["stages"] else {}
    bad = nonfinite({f"{k} {name}": a for k, arrays in trainers.items() for name, a in arrays.items()} | last)
    if bad:
        raise ValueError(f"refusing to save a learner with non-finite values (nan or inf) in {', '.join(bad[:4])}"
                         f"{' and more' if len(bad) > 4 else ''}; nothing was written")
    active = lora.active_adapter(model) if cfg.uses_lora else None
    checkpoint.save(_Plain(model.config, base_state_dict(model)), d / "base")
    checkpoint.save(_Plain(model.config, merged_state_dict(model, active)), d)
    learner.tokenizer.save(d / "tokenizer")
    adapters = learner.adapters
    for i, name in enumerate(adapters):
        lora_files.save_adapter(model, d / "adapters" / f"{i:02d}", name)
    np.savez(d / TRAINERS, **{f"{k}\t{name}": a for k, arrays in trainers.items() for name, a in arrays.items()})
    np.savez(d / REPLAY, **replay)
    np.savez(d / POOL, **{f"{dom}\t{i:06d}": c for dom, chunks in pool.items() for i, c in enumerate(chunks)})
    json_part = {key: {"class": e["class"], "state": {k: v for k, v in e["state"].items() if not isinstance(v, np.ndarray)}}
                 for key, e in controllers.items()}
    np.savez(d / CONTROLLERS, **{f"{key}\t{k}": v for key, e in controllers.items() for k, v in e["state"].items()
                                 if isinstance(v, np.ndarray)})
    meta = {"format": FORMAT, "version": VERSION, "config": cfg.to_dict(), "model_config": model.config.to_dict(),
            "adapters": adapters, "active": active, "trainers": sorted(trainers), "controllers": json_part, **state}
    (d / META).write_text(json.dumps(meta, indent=1, default=_plain))


def _plain(value: Any) -> Any:
    """JSON for numpy scalars (a counter that became np.int64); anything else is an error naming the type."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot save {type(value).__name__} {value!r:.60} in {META}: a controller's state_dict() may "
                    "hold numbers, strings, lists, dicts and top-level numpy arrays only")


def _locate(directory: str | os.PathLike) -> Path:
    d = Path(directory)
    if (d / META).is_file():
        return d
    previous = d.with_name(d.name + ".previous")
    if not d.exists() and (previous / META).is_file():
        return previous  # a save was interrupted between its two renames: the old checkpoint is here, whole
    if not d.is_dir():
        raise FileNotFoundError(f"learner checkpoint directory '{d}' does not exist")
    raise FileNotFoundError(f"'{d / META}' is missing: '{d}' is not a learner checkpoint (save one with "
                            "learner.save_checkpoint)")


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"'{path}' is corrupt: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"'{path}' is not a minimac learner file (format {FORMAT!r} expected)")
    if meta.get("version") != VERSION:
        raise ValueError(f"'{path}' has version {meta.get('version')!r}; this minimac reads version {VERSION}")
    return meta


def _read_npz(path: Path) -> list[tuple[str, str, np.ndarray]]:
    """[(group, name, array)] from an .npz whose keys are "group\tname", in key order."""
    if not path.is_file():
        raise FileNotFoundError(f"'{path}' is missing")
    try:
        with np.load(path, allow_pickle=False) as z:
            return [(*k.split("\t", 1), z[k]) for k in sorted(z.files)]
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"'{path}' is corrupt ({type(e).__name__}: {e})") from None


def load_learner(directory: str | os.PathLike, controllers: Any, learner_class: type) -> Any:
    """The learner saved in `directory`, with `controllers` (a list, or a function model -> list) and their state."""
    from minimac.tokenizer import Tokenizer

    d = _locate(directory)
    meta = _read_meta(d / META)
    try:
        config = LearnerConfig.from_dict(meta["config"])
        adapters, active, trainer_keys = meta["adapters"], meta["active"], meta["trainers"]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"'{d / META}' is corrupt: {type(e).__name__}: {e}") from None
    model = checkpoint.load(d / "base")
    controllers = list(controllers(model) if callable(controllers) else controllers)
    for c in controllers:
        if getattr(c, "model", None) is not None and c.model is not model:
            raise ValueError(f"controller {getattr(c, 'name', type(c).__name__)!r} was built on another model; pass "
                             "controllers as a function of the loaded model: load_checkpoint(DIR, lambda model: "
                             "[..., Homeostasis(model)])")
    learner = learner_class(model, Tokenizer.load(d / "tokenizer"), config, controllers)
    for i, name in enumerate(adapters):
        lora_files.load_adapter(model, d / "adapters" / f"{i:02d}", name)
    if active is not None:
        lora.set_adapter(model, active)
    trainers: dict[str, dict[str, np.ndarray]] = {}
    for key, name, array in _read_npz(d / TRAINERS):
        trainers.setdefault(key, {})[name] = array
    missing = sorted(set(trainer_keys) - set(trainers))
    if missing:
        raise ValueError(f"'{d / TRAINERS}' is corrupt: it has no state for trainer(s) {missing}")
    replay = ReplayBuffer.load(d / REPLAY).state_dict()   # ReplayBuffer.load names a missing or corrupt file
    pool: dict[str, list[np.ndarray]] = {}
    for domain, _, chunk in _read_npz(d / POOL):
        pool.setdefault(domain, []).append(chunk)
    saved = meta.get("controllers") or {}   # absent in checkpoints saved before controllers had state
    arrays: dict[str, dict[str, np.ndarray]] = {}
    if saved:
        for key, field, array in _read_npz(d / CONTROLLERS):
            arrays.setdefault(key, {})[field] = array
    files = ("format", "version", "config", "model_config", "adapters", "active", "trainers", "controllers")
    try:
        controllers = {key: {**e, "state": {**e["state"], **arrays.get(key, {})}} for key, e in saved.items()}
        state = {**{k: v for k, v in meta.items() if k not in files},
                 "trainers": trainers, "replay": replay, "fisher_pool": pool, "controllers": controllers}
        learner.load_state_dict(state)
    except KeyError as e:
        raise ValueError(f"'{d / META}' is corrupt: it has no {e}") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"'{d}' cannot be resumed: {e}") from None
    return learner


__all__ = ["CONTROLLERS", "META", "base_state_dict", "check_writable", "find_checkpoint",
           "load_learner", "merged_state_dict", "nonfinite", "save_learner"]
