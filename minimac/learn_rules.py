"""What `python -m minimac.learn` may do with your files, and what a resumed run keeps: checked before training.
Lesson 11.

    save_folder(args)          --save DIR, or runs/<domain> with --data, or None (nothing saved)
    check_save(args, folder)   refuse a folder holding a learner checkpoint this run did not --resume (unless
                               --overwrite), and a non-empty folder that is not a checkpoint: before any training
    resume_settings(args, L)   a resumed learner keeps its strategy, base model (--preset) and seed: flags that differ
                               are refused, each named; --lr and --replay-ratio are applied; the rest is said to be kept
    interrupted(args)          what a Ctrl-C left: the last checkpoint (named only if there is one), or nothing

Domain names are checked by DOMAIN_NAME (letters, digits, '-', '_', '.'; a letter or digit first): the default
checkpoint folder is runs/<domain>, so a name must not be able to reach outside runs/.
Leaves out: what is learned and evaluated (minimac/learn_plan.py), saving itself (minimac/learner/checkpoint.py:
atomic, finite-only), the learning (minimac/learner/).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shlex
from pathlib import Path
from typing import Any

from minimac.learner.checkpoint import META, check_writable, find_checkpoint

DOMAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def save_folder(args: argparse.Namespace) -> Path | None:
    return Path(args.save) if args.save else Path("runs") / args.domain if args.data else None


def saved_meta(folder: Path) -> dict:
    """A learner checkpoint's learner.json (no weights loaded), or {} if it cannot be read."""
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def saved_domains(folder: Path) -> list[str]:
    """The domains a learner checkpoint has learned."""
    return list(saved_meta(folder).get("domains") or [])


def check_save(args: argparse.Namespace, folder: Path | None) -> None:
    """Refuse, before any training, to write where this run would replace work it did not start from."""
    if folder is None:
        return
    found = find_checkpoint(folder)
    if found is None:
        check_writable(folder)   # new, or empty: fine; a folder of other files is refused
        return
    resumed = args.resume is not None and Path(args.resume).resolve() in (folder.resolve(), found.resolve())
    if resumed or args.overwrite:
        return
    learned = saved_domains(found)
    what = (f"'{folder}' holds a learner checkpoint (it has learned {', '.join(learned) or 'nothing yet'}) and this run "
            "did not --resume from it, so saving would replace it.")
    data = f" --data {' '.join(map(shlex.quote, args.data))} --domain {args.domain}" if args.data else ""
    if args.data and args.domain in learned:
        how = f" It has learned {args.domain!r} already; to add more text, resume it under another --domain."
    else:
        how = f" To add to it: python -m minimac.learn --resume {shlex.quote(str(folder))}{data} --save " \
              f"{shlex.quote(str(folder))}."
    raise ValueError(what + how + " To replace it, add --overwrite; or pick another folder with --save.")


def resume_settings(args: argparse.Namespace, learner: Any) -> list[str]:
    """Apply --lr and --replay-ratio to a resumed learner; refuse --strategy, --preset, --seed, --base-steps and
    --base-seconds that would change it (ValueError naming each). Returns lines saying what is kept and applied."""
    from minimac.model import ModelConfig
    from minimac.neuro import lr_scales
    cfg, model_cfg = learner.config, learner.model.config
    refused = []
    if args.strategy is not None and args.strategy != cfg.strategy:
        refused.append(f"--strategy {args.strategy} (the checkpoint's is {cfg.strategy})")
    if args.preset is not None:
        size = {k: v for k, v in ModelConfig.from_preset(args.preset).to_dict().items()
                if k not in ("vocab_size", "max_seq_len")}
        if any(getattr(model_cfg, k) != v for k, v in size.items()):
            refused.append(f"--preset {args.preset} (the checkpoint's base model has d_model {model_cfg.d_model} and "
                           f"{model_cfg.num_layers} layers)")
    if args.seed is not None and args.seed != cfg.seed:
        refused.append(f"--seed {args.seed} (the checkpoint goes on from its own random state, seeded {cfg.seed})")
    for flag in ("base_steps", "base_seconds"):
        if getattr(args, flag) is not None:
            refused.append(f"--{flag.replace('_', '-')} (the base model is in the checkpoint)")
    if args.replay_ratio is not None and not cfg.uses_replay:
        refused.append(f"--replay-ratio (strategy {cfg.strategy} has no replay)")
    if refused:
        raise ValueError(f"--resume {args.resume} keeps the checkpoint's settings; these flags would change them: "
                         f"{'; '.join(refused)}. Leave them out to resume, or start a new run without --resume.")
    kept = [f"strategy {cfg.strategy}", f"base model d_model {model_cfg.d_model} x {model_cfg.num_layers} layers",
            f"seed {cfg.seed}"]
    applied = []
    if args.lr is not None:
        applied.append(f"lr {args.lr:.3g} (was {cfg.lr:.3g})")
        cfg.learning_rate = float(args.lr)
        learner.set_learning_rate(cfg.lr * math.prod(lr_scales(learner).values()))   # controllers' factors kept
    else:
        kept.append(f"lr {cfg.lr:.3g}")
    if args.replay_ratio is not None:
        applied.append(f"replay ratio {args.replay_ratio:g} (was {learner.replay_ratio:g})")
        learner.set_replay_ratio(args.replay_ratio)
    elif cfg.uses_replay:
        kept.append(f"replay ratio {learner.replay_ratio:g}")
    lines = [f"resumed {args.resume}: it has learned {', '.join(learner.domains)}", "  kept from the checkpoint: " +
             ", ".join(kept)]
    lines += ["  from the flags: " + ", ".join(applied)] if applied else []
    found = find_checkpoint(args.resume)
    saved = set(saved_meta(found).get("controllers") or {}) if found is not None else set()
    if unused := sorted(saved - {getattr(c, "name", type(c).__name__) for c in learner.controllers}):
        lines.append(f"  saved controller state not used (not switched on with --neuro): {', '.join(unused)}")
    return lines


def interrupted(args: argparse.Namespace) -> str:
    """What a Ctrl-C left behind: the last checkpoint this run (or an earlier one) saved, or nothing."""
    folder = save_folder(args)
    found = find_checkpoint(folder) if folder is not None else None
    if found is not None:
        return f"the last checkpoint in {found} is intact (it has learned {', '.join(saved_domains(found))})"
    return "nothing saved" + (f"; {args.resume} is untouched" if args.resume else "")
