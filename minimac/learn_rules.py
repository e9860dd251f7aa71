"""What `python -m minimac.learn` may do with your files and your text, checked before any training. Lesson 14.

    save_folder(args)          --save DIR, or runs/<domain> with --data, or None (nothing saved)
    check_save(args, folder)   refuse a folder holding a learner checkpoint this run did not --resume (unless
                               --overwrite), and a non-empty folder that is not a checkpoint: before any training
    resume_settings(args, L)   a resumed learner keeps its strategy, base model (--preset) and seed: flags that differ
                               are refused, each named; --lr and --replay-ratio are applied; the rest is said to be kept
    read_data(paths)           UTF-8 text files (a folder, a missing, empty or non-UTF-8 file: an error naming it)
    eval_sample(text)          at most EVAL_CHARS characters in EVAL_PIECES pieces spread over the text: the bounded
                               set a --data domain is evaluated on after every stage
    data_steps(...)            --data trains on all of the text, one pass over its windows, up to DATA_MAX_STEPS
                               steps; past that it trains on windows drawn at random from the whole text and says
                               exactly how many

Domain names are checked by DOMAIN_NAME (letters, digits, '-', '_', '.'; a letter or digit first): the default
checkpoint folder is runs/<domain>, so a name must not be able to reach outside runs/.
Leaves out: the learning (minimac/learner/), saving itself (minimac/learner/checkpoint.py: atomic, finite-only).
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
EVAL_CHARS, EVAL_PIECES = 4000, 8   # evaluation per set: 8 pieces of 500 characters, spread over the text
# With the demo's nano base on a 2-core CPU a LoRA step takes ~0.1 s: 600 steps keep a 1 MB text under 3 minutes
DATA_MAX_STEPS = 600


def save_folder(args: argparse.Namespace) -> Path | None:
    return Path(args.save) if args.save else Path("runs") / args.domain if args.data else None


def saved_domains(folder: Path) -> list[str]:
    """The domains a learner checkpoint has learned, read from its learner.json (no weights loaded)."""
    try:
        return list(json.loads((folder / META).read_text(encoding="utf-8")).get("domains", []))
    except (OSError, ValueError, AttributeError):
        return []


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
    return lines + (["  from the flags: " + ", ".join(applied)] if applied else [])


def read_data(paths: list[str]) -> str:
    return "\n".join(_read(p) for p in paths)


def _read(path: str) -> str:
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"--data '{p}' is a folder; give the text files in it, e.g. --data {p}/*.txt")
    if not p.is_file():
        raise FileNotFoundError(f"--data file '{p}' does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"--data file '{p}' is not UTF-8 text ({e})") from None
    if not text.strip():
        raise ValueError(f"--data file '{p}' is empty")
    return text


def eval_sample(text: str, chars: int = EVAL_CHARS, pieces: int = EVAL_PIECES) -> str:
    """The text if it is short, else `pieces` slices of chars // pieces characters at evenly spaced places.

    eval_sample("abcdefghij", chars=4, pieces=2) -> "ab\\n\\nij"
    """
    if len(text) <= chars:
        return text
    size = chars // pieces
    starts = [round(i * (len(text) - size) / (pieces - 1)) for i in range(pieces)] if pieces > 1 else [0]
    return "\n\n".join(text[s:s + size] for s in starts)


def data_steps(n_windows: int, new_rows: int, min_steps: int, steps: int | None) -> tuple[int, str]:
    """(steps, what part of the text they train on): one pass over the windows, at least min_steps, at most
    DATA_MAX_STEPS, unless --steps says otherwise."""
    one_pass = max(min_steps, math.ceil(n_windows / new_rows))
    chosen = steps or min(one_pass, DATA_MAX_STEPS)
    used = min(n_windows, chosen * new_rows)
    if used >= n_windows:
        part = f"all {n_windows:,} windows" + (f", {chosen * new_rows / n_windows:.1f} times" if chosen > one_pass
                                               else "")
    else:
        part = (f"{used:,} of its {n_windows:,} windows ({100 * used / n_windows:.0f}%), drawn at random from the whole "
                f"text" + ("" if steps else f" (at most {DATA_MAX_STEPS} steps by default; --steps {one_pass} "
                                                "for one full pass)"))
    return chosen, part
