"""`python -m minimac.learn`: watch a small model learn a new domain without forgetting the old one. Lesson 11.

    python -m minimac.learn                                    # the demo: no flags, no download, a few minutes
    python -m minimac.learn --strategy lora+replay+ewc         # the demo with another strategy (and naive beside)
    python -m minimac.learn --data notes.txt --domain notes    # teach it your own text (saved to runs/notes)
    python -m minimac.learn --neuro all                        # with the brain-inspired controllers (lessons 13-15)
    python -m minimac.generate --checkpoint runs/notes --prompt "..."

The demo: build (first run) or reuse a cached base model pretrained on the corpus's first domain
(minimac/base_cache.py), let it remember a sample of that domain (for replay and EWC), ask it six invented facts
(FACTS in minimac/learn_plan.py: it cannot know them), then learn each later domain and, last, a short text stating
the facts, with `ContinualLearner.learn_stream`. Every domain's bits per byte is measured every CURVE_EVERY steps
and after each stage. Then the same stream again from the same base by naive full fine-tuning, for contrast
(`--no-naive` skips it). The end shows the R matrix, forgetting / BWT / FWT, the curves of both learners (a line
of blocks per set in the terminal, and a PNG in runs/, never over an existing file: minimac/learn_show.py) and the
facts asked again: answers of the base, the learner and the naive one.
A rich Live panel shows the stage, step, loss, learning rate, tokens/s, ETA, a per-domain table with forgetting
coloured and the curves so far.
`--corpus` is "default" (Python's own docs, then stdlib code: no download) or registry names, comma-separated,
base first (e.g. gutenberg,tinyshakespeare,scotus; MINIMAC_DATA points at an offline mirror).
`--neuro` switches on controllers of minimac/neuro/ by name (comma-separated, or `all`); the panel then shows each
one's state (learning-rate scale, neuromodulator levels, dead units, stored episodes, sleep counts), and --save /
--resume keep that state. The dendritic feed-forward is a model option, not a controller: ModelConfig(ffn_type=...).
`--data` learns all of your text (one pass, capped; the part used and the time are said before training) and
evaluates a bounded sample of it; with `--resume` every domain learned before is evaluated too. What a run may
write and what --resume keeps are the rules of minimac/learn_rules.py, checked before training; what is learned and
evaluated, and the time estimate, are minimac/learn_plan.py's.
Leaves out: the learning itself (minimac/learner/learner.py), the forgetting benchmark (python benchmarks/forgetting.py).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from minimac import fast
from minimac.device import BackendUnavailable, check_device
from minimac.learn_plan import (
    CURVE_EVERY,
    DATA_MAX_STEPS,
    DEMO,
    FACTS,
    FACTS_DOMAIN,
    estimate,
    eval_sets_for,
    guess_stage_steps,
    load_plan,
    measure_step,
    naive_contrast,
    stream_items,
    tokens_generated,
)
from minimac.learn_quiz import quiz, quiz_table
from minimac.learn_rules import DOMAIN_NAME, check_save, interrupted, resume_settings, save_folder
from minimac.learn_show import curves_table, learn_with_readout, report, save_png
from minimac.learner.strategies import STRATEGIES as STRATEGY_NAMES
from minimac.neuro import CONTROLLER_NAMES as NEURO_NAMES  # hippocampus first: it chooses the replay
from minimac.neuro import build_controllers
from minimac.readout import Readout, fmt_seconds

NEURO_ALIASES = {"neuromod": "neuromodulation"}   # the controller's own `name`
PACE_STEPS = 24   # the first run's time is announced after this many pretraining steps (the compile and 20 more)
NAIVE_LR = 1e-3   # the naive run's rate: the forgetting benchmark's expert (docs/forgetting.md), which learns fastest
DEFAULTS = {"strategy": "adapter-per-domain", "preset": "nano", "seed": 0, "base_seconds": 60.0}   # unless --resume


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m minimac.learn", description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default="default", help="'default' or registry names, base first, comma-separated")
    p.add_argument("--strategy", choices=STRATEGY_NAMES, help=f"(default {DEFAULTS['strategy']})")
    p.add_argument("--preset", help=f"model size of the base (default {DEFAULTS['preset']})")
    p.add_argument("--steps", type=int, help=f"optimizer steps per domain (default {DEMO['stage_steps']}; with --data: "
                                             f"one pass over the text, at most {DATA_MAX_STEPS})")
    p.add_argument("--base-steps", type=int, help="pretraining steps of the cached base (default: as many as fit in "
                                                  "--base-seconds)")
    p.add_argument("--base-seconds", type=float, help="pretraining time of the cached base, compile excluded "
                                                      f"(default {DEFAULTS['base_seconds']:g})")
    p.add_argument("--lr", type=float, help="learning rate (default: the strategy's, see minimac/learner/strategies.py)")
    p.add_argument("--replay-ratio", type=float, help="share of each batch given to replay by the replay strategies "
                   "(default 0.5; docs/forgetting.md: full+replay+ewc met the forgetting goal at 0.25)")
    p.add_argument("--seed", type=int, help=f"(default {DEFAULTS['seed']})")
    p.add_argument("--no-live", action="store_true", help="plain log lines instead of a live panel (logs, CI)")
    p.add_argument("--no-naive", action="store_true", help="skip the naive full fine-tuning that the demo runs "
                                                           "after the learner, for contrast")
    p.add_argument("--save", metavar="DIR", help="save the learner after every domain (atomic; resumable)")
    p.add_argument("--resume", metavar="DIR", help="continue from a learner saved with --save (keeps its strategy, "
                                                   "base and seed; --lr and --replay-ratio apply)")
    p.add_argument("--overwrite", action="store_true", help="let --save replace a learner checkpoint this run did not "
                                                            "resume from (refused otherwise)")
    p.add_argument("--data", nargs="+", metavar="FILE", help="UTF-8 text file(s) to learn, as domain --domain")
    p.add_argument("--domain", help="domain name for --data: letters, digits, '-', '_', '.' (saved to runs/NAME)")
    p.add_argument("--neuro", metavar="NAMES", help="brain-inspired controllers to switch on, comma-separated, or "
                                                     f"'all': {', '.join(NEURO_NAMES)}")
    args = p.parse_args(argv)
    try:
        args.neuro = neuro_names(args.neuro)
    except ValueError as e:
        p.error(str(e))
    for name in ("steps", "base_steps", "base_seconds", "lr"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            p.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.replay_ratio is not None and not 0 <= args.replay_ratio < 1:
        p.error(f"--replay-ratio must be at least 0 and below 1, got {args.replay_ratio}")
    if bool(args.data) != bool(args.domain):
        p.error("--data and --domain go together: --data FILE... --domain NAME")
    if args.domain is not None and not DOMAIN_NAME.fullmatch(args.domain):
        p.error(f"--domain {args.domain!r}: use letters, digits, '-', '_' and '.' (a letter or digit first, at most "
                "64): it names the folder runs/NAME")
    return args


def neuro_names(spec: str | None) -> list[str]:
    """--neuro's value -> controller names in NEURO_NAMES order: "sleep,hippocampus" -> ["hippocampus", "sleep"]."""
    if spec is None:
        return []
    names = [NEURO_ALIASES.get(n.strip(), n.strip()) for n in spec.split(",") if n.strip()]
    if "all" in names:
        return list(NEURO_NAMES)
    if "dendritic" in names:
        raise ValueError("--neuro: 'dendritic' is a model option, not a controller: build the model with "
                         "ModelConfig(ffn_type=\"dendritic\") (see docs/neuro.md)")
    unknown = [n for n in names if n not in NEURO_NAMES]
    if unknown or not names:
        raise ValueError(f"--neuro: unknown controller(s) {', '.join(map(repr, unknown)) or repr(spec)}; choose "
                         f"from {', '.join(NEURO_NAMES)} (comma-separated), or all")
    return [n for n in NEURO_NAMES if n in names]


def run(args: argparse.Namespace, console: Console) -> int:
    from minimac.base_cache import CALIBRATION, BaseSpec, at_current_pace, cached_base, find_timings, read_timings

    wall = time.perf_counter()
    plan = load_plan(args)
    base, stream, domains = plan["base"], plan["stream"], plan["domains"]
    save = save_folder(args)
    check_save(args, save)   # before any training: a refusal loses nothing
    live = not args.no_live
    strategy = args.strategy or DEFAULTS["strategy"]
    if args.resume:   # the controllers are built again, on the loaded model, and get their saved state back
        from minimac.learner import ContinualLearner
        learner = ContinualLearner.load_checkpoint(args.resume, lambda model: build_controllers(args.neuro, model))
        for line in resume_settings(args, learner):
            console.print(line)
        if base not in learner.domains:
            raise ValueError(f"{args.resume} was not built on {base!r} (the base of --corpus {args.corpus}); it has "
                             f"learned {learner.domains}: pass the --corpus it was made with")
        stream = [d for d in stream if d not in learner.domains]
        if not stream:
            console.print(f"{args.resume} has already learned {learner.domains}; nothing left (try --data FILE)")
            return 0
        timings, setup_s, folder, built = at_current_pace(find_timings(learner.model.config)), None, None, False
    else:
        spec = BaseSpec(preset=args.preset or DEFAULTS["preset"], base_steps=args.base_steps,
                        base_seconds=args.base_seconds or DEFAULTS["base_seconds"])
        stage_guess = guess_stage_steps(args, domains, spec.batch_size, spec.seq_len)
        with Readout(live=live, console=console, every=25) as r:
            shown_from = 1 if spec.base_steps else CALIBRATION + 1   # a time-boxed run's first steps time it
            pace_at = min(PACE_STEPS, max(2, spec.base_steps)) if spec.base_steps else PACE_STEPS

            def log(rec: dict) -> None:
                stamps = rec["stamps"]
                if len(stamps) == shown_from:
                    r.stage(f"{base} (pretraining the base model)", 0, len(stream), spec.base_steps)
                if len(stamps) >= shown_from:
                    r.step(rec)
                if len(stamps) == pace_at:   # compile done, the pace of up to 20 steps seen: how long this run takes
                    step_s = float(np.median(np.diff(stamps[min(CALIBRATION, len(stamps) - 2):])))
                    done = stamps[-1] - stamps[1]
                    base_rest = ((spec.base_steps - len(stamps)) * step_s if spec.base_steps
                                 else max(0.0, spec.base_seconds - done))
                    rest = base_rest + estimate({"first_steps_s": stamps[1] - wall, "pretrain_step_s": step_s},
                                                None, None, len(stream), stage_guess,
                                                len(domains) * (len(stream) + 1), tokens_generated(args, stream),
                                                strategy == "adapter-per-domain", naive_contrast(args, strategy),
                                                base_built=True)
                    r.message(f"measured {step_s:.3f}s per pretraining step: this first run will take about "
                              f"{fmt_seconds(time.perf_counter() - wall + rest)} in all; later runs reuse the base")

            folder, built = _base_folder(spec, plan, r, cached_base, log)
        timings = read_timings(folder) if built else at_current_pace(read_timings(folder))   # built now: its pace
        setup = time.perf_counter()
        learner = _new_learner(args, strategy, folder, spec, None)
        learner.remember("\n\n".join(domains[base]["train"])[:DEMO["remember_chars"]], base)
        learner.consolidate(base)
        setup_s = time.perf_counter() - setup if learner.config.uses_ewc else None   # the Fisher compiled the step
    eval_sets = eval_sets_for(learner, plan, stream)
    if missing := [d for d in learner.domains if d not in eval_sets]:
        console.print(f"no evaluation text kept for {', '.join(missing)} (a checkpoint of an older minimac)")
    items, stage_steps = stream_items(args, learner, stream, domains, console)
    naive = naive_contrast(args, strategy) and folder is not None
    step_s = measure_step(learner)
    if timings or step_s:
        rest = estimate(timings, setup_s, step_s, len(stream), stage_steps, len(eval_sets) * (len(stream) + 1),
                        tokens_generated(args, stream), learner.config.per_domain, naive, built)
        how = f"{step_s:.2f}s per step, measured now" if step_s else "the base's measured step time"
        console.print(f"from {how}, this run should take about {fmt_seconds(time.perf_counter() - wall + rest)} in "
                      "all")
    facts = FACTS if FACTS_DOMAIN in stream else ()
    prompts = {d: domains[d]["prompts"] for d in [base, *stream] if d != FACTS_DOMAIN} if args.data else {}
    before = {d: [learner.generate(p, DEMO["new_tokens"], seed=0) for p in ps] for d, ps in prompts.items()}
    answers = {"the base model": quiz(learner, facts)} if facts else {}
    if facts:
        console.print(f"{len(facts)} facts no model can know (an invented island), asked before learning; the answers "
                      "of the base model: " + ", ".join(f"{p} {a.strip().split(chr(10))[0]!r}"
                                                       for (p, _), (a, _, _) in zip(facts[:2], answers["the base model"]))
                      + ", ...")
    label = "protected" if learner.config.per_domain or "+" in strategy else strategy
    runs = {label: learn_with_readout(learner, items, eval_sets, base, stage_steps, stream, save, live, console,
                                      f"1/2 the learner ({strategy})" if naive else f"the learner ({strategy})")}
    if naive:   # the same stream and steps from the same base, by plain full fine-tuning: forgetting by contrast
        other = _new_learner(args, "full", folder, spec, [])
        runs["naive"] = learn_with_readout(other, items, eval_sets, base, stage_steps, stream, None, live, console,
                                           f"2/2 naive full fine-tuning (lr {other.learning_rate:g}), for contrast")
    report(learner, console, prompts, before)
    if naive:
        console.print(f"protected = the learner ({strategy}); naive = full fine-tuning of the same base, same text "
                      "and steps")
    console.print(curves_table(runs, title=f"bits per byte over the steps (lower is better), a block every "
                                           f"{CURVE_EVERY} steps and at each stage's end"))
    if facts:
        answers[label] = quiz(learner, facts)
        if naive:
            answers["naive"] = quiz(other, facts)
        console.print(quiz_table(facts, answers))
        console.print("facts recalled: " + ", ".join(f"{who} {sum(ok for _, ok, _ in rows)}/{len(rows)}"
                                                     for who, rows in answers.items()))
    if len(runs[label].points) > 1:
        png = save_png(runs, "runs", stream)
        console.print(f"chart saved to {png}" if png else "no chart saved: matplotlib is not installed "
                      "(pip install matplotlib)")
    console.print(f"done in {fmt_seconds(time.perf_counter() - wall)}" +
                  (f"; try: python -m minimac.generate --checkpoint {save} --prompt \"...\"" if save else ""))
    return 0


def _new_learner(args: argparse.Namespace, strategy: str, folder: Path, spec, controllers: list):
    """A learner on a fresh copy of the cached base, with `controllers` (None: those of --neuro, built on it)."""
    from tinygrad import Tensor

    from minimac.checkpoint import load as load_model
    from minimac.learner import ContinualLearner
    from minimac.learner.strategies import LearnerConfig
    from minimac.tokenizer import Tokenizer
    # LoRA on all seven projections (the library's default): on q and v only, 50 steps taught none of the six facts
    # (loss on them 6.05 -> 1.26), on the feed-forward's three 2 of 6 in 40 steps (-> 0.49); on all seven, 40 steps
    # taught all six (-> 0.31). Nano, lr 5e-4, the demo's own base, on a 2-core CPU.
    # The naive run learns at NAIVE_LR: at full fine-tuning's default 3e-4 it recalled 2 of the 6 after 50 steps.
    lr = NAIVE_LR if strategy == "full" and args.lr is None else args.lr
    config = LearnerConfig(strategy=strategy, learning_rate=lr, batch_size=spec.batch_size, seq_len=spec.seq_len,
                           seed=DEFAULTS["seed"] if args.seed is None else args.seed, fisher_samples=16,
                           **({} if args.replay_ratio is None else {"replay_ratio": args.replay_ratio}))
    Tensor.manual_seed(config.seed)  # the LoRA init draws from tinygrad's RNG: same seed, same run, cached or not
    model = load_model(folder)
    return ContinualLearner(model, Tokenizer.load(folder / "tokenizer"), config,
                            controllers=build_controllers(args.neuro, model) if controllers is None else controllers)


def _base_folder(spec, plan: dict, readout: Readout, cached_base, log) -> tuple[Path, bool]:
    """cached_base for the plan: the base domain's documents, and the later corpus domains' for the tokenizer."""
    folder, built = cached_base(spec, plan["domains"][plan["base"]]["train"], plan["tokenizer_docs"],
                                say=readout.message, log=log)
    if not built:
        readout.message(f"reusing the cached base model in {folder}")
    return folder, built


def main(argv: list[str] | None = None) -> int:
    fast.install()  # the same numbers, faster (minimac/fast/); MINIMAC_PLAIN=1 keeps the plain path
    args = parse_args(argv)
    console = Console(highlight=False, soft_wrap=True)  # soft wrap: a log line stays one line in a file
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        console.print(f"minimac learn: tinygrad device {check_device()}")
    except BackendUnavailable as e:
        errors.print(f"error: {e}")
        return 2
    from minimac.train import NonFiniteLossError
    try:
        return run(args, console)
    except KeyboardInterrupt:
        console.print("interrupted: " + interrupted(args))
        return 130
    except (ValueError, FileNotFoundError, TypeError, NonFiniteLossError) as e:
        errors.print(f"error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
