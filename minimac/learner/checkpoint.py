"""A continual learner's checkpoint: everything needed to go on learning exactly where it stopped. Lesson 11.

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
from minimac.learner.step import param_groups
from minimac.learner.strategies import LearnerConfig
from minimac.metrics import RMatrix
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
    model, cfg = learner.model, learner.config
    states = {**learner._pending_state, **{k: t.state_arrays() for k, t in learner._trainers.items()}}
    last = learner.stages[-1]["scores"] if learner.stages else {}
    bad = nonfinite({f"{k} {name}": a for k, arrays in states.items() for name, a in arrays.items()} | last)
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
    np.savez(d / TRAINERS, **{f"{k}\t{name}": a for k, arrays in states.items() for name, a in arrays.items()})
    learner.replay.save(d / REPLAY)
    pool = {f"{dom}\t{i:06d}": c for dom, chunks in learner._fisher_pool.items() for i, c in enumerate(chunks)}
    np.savez(d / POOL, **pool)
    controllers, arrays = _controller_states(learner.controllers)
    np.savez(d / CONTROLLERS, **arrays)
    meta = {"format": FORMAT, "version": VERSION, "config": cfg.to_dict(), "model_config": model.config.to_dict(),
            "step_count": learner.step_count, "domains": learner.domains, "adapters": adapters, "active": active,
            "trainers": sorted(states), "history": learner.history, "stages": learner.stages,
            "r_matrix": learner.r_matrix.to_dict() if learner.r_matrix is not None else None,
            "learning_rate": learner.learning_rate, "replay_ratio": learner.replay_ratio,
            "ewc_lambda": learner.ewc_lambda, "rng": learner.rng.bit_generator.state,
            "controllers": controllers, "lr_scales": dict(learner.lr_scales), "eval_sets": learner.eval_sets}
    (d / META).write_text(json.dumps(meta, indent=1, default=_plain))


def _plain(value: Any) -> Any:
    """JSON for numpy scalars (a counter that became np.int64); anything else is an error naming the type."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot save {type(value).__name__} {value!r:.60} in {META}: a controller's state_dict() may "
                    "hold numbers, strings, lists, dicts and top-level numpy arrays only")


def controller_keys(controllers: Any) -> dict[str, Any]:
    """{key: controller}: the key is the controller's `name` (its class name if it has none), "#2", "#3"... added
    for repeats, so the same list of controllers gets the same keys when it is built again."""
    out: dict[str, Any] = {}
    for c in controllers:
        base = str(getattr(c, "name", type(c).__name__))
        key, i = base, 2
        while key in out:
            key, i = f"{base}#{i}", i + 1
        out[key] = c
    return out


def _controller_states(controllers: Any) -> tuple[dict, dict[str, np.ndarray]]:
    """({key: {"class", "state"}} for learner.json, {"key\tfield": array} for controllers.npz)."""
    meta, arrays = {}, {}
    for key, c in controller_keys(controllers).items():
        state = c.state_dict() if callable(getattr(c, "state_dict", None)) else {}
        if not state:
            continue
        meta[key] = {"class": type(c).__name__,
                     "state": {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}}
        arrays.update({f"{key}\t{k}": v for k, v in state.items() if isinstance(v, np.ndarray)})
    return meta, arrays


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
        keys = ("step_count", "domains", "adapters", "active", "trainers", "history", "stages", "rng")
        step_count, domains, adapters, active, trainer_keys, history, stages, rng = (meta[k] for k in keys)
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
    for key, name, array in _read_npz(d / TRAINERS):
        learner._pending_state.setdefault(key, {})[name] = array
    missing = sorted(set(trainer_keys) - set(learner._pending_state))
    if missing:
        raise ValueError(f"'{d / TRAINERS}' is corrupt: it has no state for trainer(s) {missing}")
    learner.replay = ReplayBuffer.load(d / REPLAY)
    for domain, _, chunk in _read_npz(d / POOL):
        learner._fisher_pool.setdefault(domain, []).append(chunk)
    _check_trainer_shapes(d, learner)
    learner.step_count, learner.domains, learner.history, learner.stages = step_count, domains, history, stages
    learner.eval_sets = dict(meta.get("eval_sets") or {})   # absent in checkpoints saved before it was kept
    learner.r_matrix = RMatrix.from_dict(meta["r_matrix"]) if meta.get("r_matrix") else None
    learner.rng.bit_generator.state = rng
    learner.set_learning_rate(meta["learning_rate"])
    learner.set_replay_ratio(meta["replay_ratio"])
    learner.set_ewc_lambda(meta["ewc_lambda"])
    _load_controllers(d, meta, learner.controllers)
    learner.lr_scales = {str(k): float(v) for k, v in (meta.get("lr_scales") or {}).items()}
    return learner


def _check_trainer_shapes(d: Path, learner: Any) -> None:
    """Each saved trainer's arrays must fit the loaded model's tensors (a trainers.npz of another preset would only
    fail at the first step, inside tinygrad): "opt.NNNN" are the tensors, then AdamW's m and v, then two powers."""
    for key, arrays in learner._pending_state.items():
        if learner.config.uses_lora and key not in learner.adapters:
            raise ValueError(f"'{d / TRAINERS}' has state for trainer {key!r}, but the checkpoint has no such adapter "
                             f"(adapters: {learner.adapters})")
        if learner.config.uses_lora:   # the tensors of the adapter's trainer, in its order (LoRA+ groups)
            params = [t for ts, _, _ in param_groups(learner.model, key, learner.config.loraplus_lr_ratio) for t in ts]
        else:                          # the one trainer of the "full" strategies: every weight
            params = learner.model.parameters()
        want = [tuple(p.shape) for p in params] * 3
        got = [tuple(arrays[k].shape) for k in sorted(k for k in arrays if k.startswith("opt."))][:len(want)]
        if got != want:
            i = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
            raise ValueError(f"'{d / TRAINERS}' does not fit this model: trainer {key!r} has {len(got)} tensors where "
                             f"the model needs {len(want)}, the first mismatch at #{i} "
                             f"({got[i] if i < len(got) else None} vs {want[i] if i < len(want) else None}); "
                             "was it saved with another preset or strategy?")


def _load_controllers(d: Path, meta: dict, controllers: list) -> None:
    saved = meta.get("controllers") or {}   # absent in checkpoints saved before controllers had state
    if not saved:
        return
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for key, field, array in _read_npz(d / CONTROLLERS):
        arrays.setdefault(key, {})[field] = array
    for key, c in controller_keys(controllers).items():
        if key not in saved:
            continue
        entry = saved[key]
        if not isinstance(entry, dict) or entry.get("class") != type(c).__name__:
            found = entry.get("class") if isinstance(entry, dict) else entry
            raise ValueError(f"'{d / META}' has state for a {found} named {key!r}, not for the {type(c).__name__} "
                             "passed under that name")
        try:
            c.load_state_dict({**entry["state"], **arrays.get(key, {})})
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"'{d / META}' / '{d / CONTROLLERS}': cannot restore controller {key!r}: "
                             f"{type(e).__name__}: {e}") from None


__all__ = ["CONTROLLERS", "META", "base_state_dict", "check_writable", "controller_keys", "find_checkpoint",
           "load_learner", "merged_state_dict", "nonfinite", "save_learner"]
