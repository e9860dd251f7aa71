"""`python -m minimac.learn`: watch a small model learn a new domain without forgetting the old one. Lesson 11.

    python -m minimac.learn                                    # the demo: no flags, no download, a few minutes
    python -m minimac.learn --strategy full                    # the same with naive fine-tuning: watch it forget
    python -m minimac.learn --data notes.txt --domain notes    # teach it your own text (saved to runs/notes)
    python -m minimac.learn --neuro all                        # with the brain-inspired controllers (lessons 13-15)
    python -m minimac.generate --checkpoint runs/notes --prompt "..."

The demo: build (first run) or reuse a cached base model pretrained on the corpus's first domain
(minimac/base_cache.py), let it remember a sample of that domain (for replay and EWC), then learn each later domain
with `ContinualLearner.learn_stream`, evaluating bits per byte on every domain's held-out text after each stage.
A rich Live panel shows the stage, step, loss, learning rate, tokens/s, ETA and a per-domain table with forgetting
coloured; the end shows the R matrix, forgetting / BWT / FWT, and generations before and after learning.
`--corpus` is "default" (Python's own docs, then stdlib code: no download) or registry names, comma-separated,
base first (e.g. gutenberg,tinyshakespeare,scotus; MINIMAC_DATA points at an offline mirror).
`--neuro` switches on controllers of minimac/neuro/ by name (comma-separated, or `all`); the panel then shows each
one's state (learning-rate scale, neuromodulator levels, dead units, stored episodes, sleep counts), and --save /
--resume keep that state. The dendritic feed-forward is a model option, not a controller: ModelConfig(ffn_type=...).
Leaves out: the learning itself (minimac/learner/learner.py), the forgetting benchmark (python benchmarks/forgetting.py).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from minimac import fast
from minimac.device import BackendUnavailable, check_device
from minimac.learn_rules import (
    DATA_MAX_STEPS,
    DOMAIN_NAME,
    EVAL_CHARS,
    check_save,
    data_steps,
    eval_sample,
    read_data,
    resume_settings,
    save_folder,
    saved_domains,
)
from minimac.learner.checkpoint import find_checkpoint
from minimac.learner.hooks import Controller
from minimac.learner.strategies import STRATEGIES as STRATEGY_NAMES
from minimac.neuro import CONTROLLER_NAMES as NEURO_NAMES  # hippocampus first: it chooses the replay
from minimac.neuro import build_controllers
from minimac.readout import Readout, fmt_seconds, r_matrix_table

NEURO_ALIASES = {"neuromod": "neuromodulation"}   # the controller's own `name`
DEFAULTS = {"strategy": "lora+replay+ewc", "preset": "nano", "seed": 0, "base_seconds": 60.0}   # unless --resume
DEMO = {"stage_steps": 40, "train_chars": 200_000, "remember_chars": 40_000, "prompt_chars": 40, "new_tokens": 24}


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


def _prompts(docs: list[str], n: int = 2) -> list[str]:
    """The first words (up to prompt_chars, cut at a space) of the first n non-empty documents."""
    out = []
    for d in docs:
        d = " ".join(d.split(" ")[:50]).strip()
        if d:
            cut = d[:DEMO["prompt_chars"]]
            out.append(cut[:cut.rfind(" ")] if " " in cut[8:] else cut)
        if len(out) == n:
            break
    return out


def load_plan(args: argparse.Namespace) -> dict:
    """What to learn and test: {"base": name, "stream": [names], "tokenizer_docs": [[docs] per later corpus domain],
    "domains": {name: {"train": [docs], "valid": text, "prompts": [...]}}}. With --data the stream is the user's
    text only, but the base (and its tokenizer) stays the corpus's, so every --data run shares one cached base.
    A corpus domain is evaluated on the first EVAL_CHARS characters of its valid split, --data on eval_sample."""
    from minimac.data import DEFAULT_DOMAINS, load_corpus
    names = list(DEFAULT_DOMAINS) if args.corpus == "default" else [c.strip() for c in args.corpus.split(",") if c]
    if len(names) < 2 and not args.data:
        raise ValueError(f"--corpus needs a base and at least one domain to learn, got {names}")
    if args.data and args.domain in names[:1]:
        raise ValueError(f"--domain {args.domain!r} is the name of the base domain; pick another name")
    data = read_data(args.data) if args.data else None  # read first: a bad file fails fast

    def docs(name: str, split: str) -> list[str]:
        return load_corpus("default", split, domain=name) if args.corpus == "default" else load_corpus(name, split)

    learn = names[:1] if data else names
    domains = {n: {"train": docs(n, "train"), "valid": "\n\n".join(docs(n, "valid"))[:EVAL_CHARS],
                   "prompts": _prompts(docs(n, "test"))} for n in learn}
    if data:
        domains[args.domain] = {"train": [data], "valid": eval_sample(data), "prompts": _prompts(data.split("\n\n"))}
    tokenizer_docs = [domains[n]["train"] if n in domains else docs(n, "train") for n in names[1:]]
    return {"base": names[0], "domains": domains, "stream": [n for n in domains if n != names[0]],
            "tokenizer_docs": tokenizer_docs}


class _Show(Controller):
    """A learner controller (minimac/learner/hooks.py) that only watches: each step goes to the readout, and the end
    of a domain (just before its evaluation) says what is evaluated."""

    def __init__(self, readout: Readout, stream: list[str], eval_sets: dict[str, str] | None = None):
        self.readout, self.stream, self.domain, self.eval_sets = readout, stream, None, eval_sets or {}

    def on_step(self, learner, stats: dict) -> None:
        if stats["domain"] != self.domain:
            self.domain = stats["domain"]
            self.readout.stage(self.domain, self.stream.index(self.domain) + 1, len(self.stream), stats["steps"])
        self.show_controllers(learner)
        self.readout.step(stats)

    def on_domain_end(self, learner, domain: str) -> None:
        if self.eval_sets:
            self.readout.message(evaluating(self.eval_sets))

    def show_controllers(self, learner) -> None:
        """Every other controller's readout() (the neuro ones have one) goes to the panel's controller rows."""
        rows = {getattr(c, "name", type(c).__name__): c.readout() for c in learner.controllers
                if c is not self and callable(getattr(c, "readout", None))}
        if rows:
            self.readout.neuro(rows)


def evaluating(sets: dict[str, str]) -> str:
    return (f"evaluating bits per byte on {len(sets)} set(s), {', '.join(sets)}: at most {EVAL_CHARS:,} characters "
            f"each ({sum(map(len, sets.values())):,} in all)")


def _estimate(t: dict, stages: int, steps: int, evals: int, generations: int, compiled: bool) -> float:
    """Seconds for what is left of the run, from the base's measured compile and step times (see base_cache): the
    LoRA step's compile (unless the base's EWC Fisher already compiled it), its steps, the evaluations, generation.
    The factors were measured on a 2-core CPU with nano (a LoRA step ~0.6 of a pretraining step)."""
    compile_s, step_s = t.get("first_steps_s", 60.0), t.get("pretrain_step_s", 1.0)
    return ((0 if compiled else compile_s) + 0.8 * compile_s + stages * steps * 0.6 * step_s + evals * 2 * step_s
            + generations * DEMO["new_tokens"] * 0.05 * step_s)


def run(args: argparse.Namespace, console: Console) -> int:
    from tinygrad import Tensor

    from minimac.base_cache import BaseSpec, cached_base, find_timings, read_timings
    from minimac.checkpoint import load as load_model
    from minimac.learner import ContinualLearner
    from minimac.learner.strategies import LearnerConfig
    from minimac.tokenizer import Tokenizer

    wall = time.perf_counter()
    plan = load_plan(args)
    base, stream, domains = plan["base"], plan["stream"], plan["domains"]
    save = save_folder(args)
    check_save(args, save)   # before any training: a refusal loses nothing
    live = not args.no_live
    if args.resume:   # the controllers are built again, on the loaded model, and get their saved state back
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
        timings = find_timings(learner.model.config)
    else:
        spec = BaseSpec(preset=args.preset or DEFAULTS["preset"], base_steps=args.base_steps,
                        base_seconds=args.base_seconds or DEFAULTS["base_seconds"])
        stage_guess = args.steps or DEMO["stage_steps"]
        with Readout(live=live, console=console, every=25) as r:
            said: list[bool] = []

            def log(rec: dict) -> None:
                if not said:
                    said.append(True)
                    r.stage(f"{base} (pretraining the base model)", 0, len(stream), rec["steps"])
                r.step(rec)
                stamps = rec["stamps"]
                if len(stamps) == 4:  # compile done and two steps timed: say how long this first run takes
                    step_s = (stamps[3] - stamps[1]) / 2
                    base_rest = ((spec.base_steps - 4) * step_s if spec.base_steps else
                                 max(0.0, spec.base_seconds - (stamps[3] - stamps[1])))
                    rest = base_rest + _estimate({"first_steps_s": stamps[1] - wall, "pretrain_step_s": step_s},
                                                 len(stream), stage_guess, len(domains) * (len(stream) + 1),
                                                 2 * len(domains), False)
                    r.message(f"measured {step_s:.2f}s per pretraining step: this first run will take about "
                              f"{fmt_seconds(time.perf_counter() - wall + rest)} in all; later runs reuse the base")

            folder, built = _base_folder(spec, plan, r, cached_base, log)
        timings = {} if built else read_timings(folder)
        # LoRA on q and v only (the LoRA paper's choice): on a 2-core CPU all seven targets compile ~1.7x longer
        # and step ~1.4x slower for about the same gain on this demo (measured on nano)
        config = LearnerConfig(strategy=args.strategy or DEFAULTS["strategy"], learning_rate=args.lr,
                               batch_size=spec.batch_size, seq_len=spec.seq_len,
                               seed=DEFAULTS["seed"] if args.seed is None else args.seed, fisher_samples=16,
                               target_modules=("q_proj", "v_proj"),
                               **({} if args.replay_ratio is None else {"replay_ratio": args.replay_ratio}))
        Tensor.manual_seed(config.seed)  # the LoRA init draws from tinygrad's RNG: same seed, same run, cached or not
        model = load_model(folder)
        learner = ContinualLearner(model, Tokenizer.load(folder / "tokenizer"), config,
                                   controllers=build_controllers(args.neuro, model))
        learner.remember("\n\n".join(domains[base]["train"])[:DEMO["remember_chars"]], base)
        learner.consolidate(base)
    eval_sets = eval_sets_for(learner, plan, stream)
    if missing := [d for d in learner.domains if d not in eval_sets]:
        console.print(f"no evaluation text kept for {', '.join(missing)} (a checkpoint of an older minimac)")
    items, stage_steps = _stream_items(args, learner, stream, domains, console)
    if timings:
        rest = _estimate(timings, len(stream), stage_steps, len(eval_sets) * (len(stream) + 1), 2 * len(domains),
                         learner.config.uses_ewc and not args.resume)
        console.print(f"from the base's measured step time, this run should take about "
                      f"{fmt_seconds(time.perf_counter() - wall + rest)} in all")
    show = _Show(None, stream, eval_sets)
    learner.controllers.append(show)
    prompts = {d: domains[d]["prompts"] for d in [base, *stream]}
    before = {d: [learner.generate(p, DEMO["new_tokens"], seed=0) for p in ps] for d, ps in prompts.items()}
    with Readout(live=live, console=console, every=10) as r:
        show.readout = r

        def on_stage(stage: str, scores: dict) -> None:
            show.show_controllers(learner)   # after the domain's end: sleep has run
            m = learner.r_matrix
            r.scores(m.sets, m.values.tolist(), m.stages)
            if save and stage != m.stages[0]:
                learner.save_checkpoint(save)
                r.message(f"saved {save} after learning {stage}")

        r.message(evaluating(eval_sets))
        learner.learn_stream(items, eval_sets, base=base, steps=stage_steps, on_stage=on_stage)
    report(learner, console, prompts, before)
    console.print(f"done in {fmt_seconds(time.perf_counter() - wall)}" +
                  (f"; try: python -m minimac.generate --checkpoint {save} --prompt \"...\"" if save else ""))
    return 0


def eval_sets_for(learner, plan: dict, stream: list[str]) -> dict[str, str]:
    """Every domain the learner knows is evaluated after each stage: the base, earlier ones (their text is kept in the
    checkpoint, learner.eval_sets), and this run's."""
    domains, base = plan["domains"], plan["base"]
    earlier = {d: t for d, t in learner.eval_sets.items() if d != base and d not in stream}
    return {base: domains[base]["valid"], **earlier, **{d: domains[d]["valid"] for d in stream}}


def _stream_items(args, learner, stream: list[str], domains: dict, console: Console) -> tuple[list, int]:
    """(domain, text) pairs to learn and the steps per domain; with --data, says what part of the text is used."""
    if not args.data:
        return [(d, "\n\n".join(domains[d]["train"])[:DEMO["train_chars"]]) for d in stream], \
            args.steps or DEMO["stage_steps"]
    cfg, text = learner.config, domains[args.domain]["train"][0]
    n_windows = math.ceil((len(learner.encode(text)) - 1) / cfg.seq_len)
    replaying = cfg.uses_replay and len(learner.replay) > 0
    new_rows = cfg.batch_size - (cfg.replay_rows(learner.replay_ratio) if replaying else 0)
    steps, part = data_steps(n_windows, new_rows, cfg.min_steps, args.steps)
    console.print(f"{args.domain}: {len(text):,} characters, {n_windows:,} windows of {cfg.seq_len} tokens; training "
                  f"on {part}: {steps:,} steps of {new_rows} new windows each")
    return [(args.domain, text)], steps


def _base_folder(spec, plan: dict, readout: Readout, cached_base, log) -> tuple[Path, bool]:
    """cached_base for the plan: the base domain's documents, and the later corpus domains' for the tokenizer."""
    folder, built = cached_base(spec, plan["domains"][plan["base"]]["train"], plan["tokenizer_docs"],
                                say=readout.message, log=log)
    if not built:
        readout.message(f"reusing the cached base model in {folder}")
    return folder, built


def report(learner, console: Console, prompts: dict, before: dict) -> None:
    m = learner.r_matrix
    console.print(r_matrix_table(m.sets, m.values.tolist(), m.stages))
    s = m.summary()
    fwt = ("n/a (needs two learned domains)" if math.isnan(s["forward_transfer"])
           else f"{s['forward_transfer']:+.3f} (>0 = earlier domains helped)")
    console.print(f"average forgetting {s['average_forgetting']:+.3f} bits/byte (>0 = forgot), "
                  f"BWT {s['backward_transfer']:+.3f} (<0 = forgot), FWT {fwt}")
    table = Table(title="generations (temperature 0.8, seed 0)", title_justify="left", show_lines=True)
    for col in ("domain", "prompt", "before learning", "after learning"):
        table.add_column(col, overflow="fold")
    for d, ps in prompts.items():
        for p, b in zip(ps, before[d]):
            a = learner.generate(p, DEMO["new_tokens"], seed=0, domain=d if d in learner.adapters else None)
            table.add_row(d, repr(p), repr(b), repr(a))
    console.print(table)


def interrupted(args: argparse.Namespace) -> str:
    """What a Ctrl-C left behind: the last checkpoint this run (or an earlier one) saved, or nothing."""
    folder = save_folder(args)
    found = find_checkpoint(folder) if folder is not None else None
    if found is not None:
        return f"the last checkpoint in {found} is intact (it has learned {', '.join(saved_domains(found))})"
    return "nothing saved" + (f"; {args.resume} is untouched" if args.resume else "")


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
