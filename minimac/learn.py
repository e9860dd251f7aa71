"""`python -m minimac.learn`: watch a small model learn a new domain without forgetting the old one. Lesson 14.

    python -m minimac.learn                                    # the demo: no flags, no download, a few minutes
    python -m minimac.learn --strategy full                    # the same with naive fine-tuning: watch it forget
    python -m minimac.learn --data notes.txt --domain notes    # teach it your own text (saved to runs/notes)
    python -m minimac.learn --neuro all                        # with the brain-inspired controllers (lessons 11-13)
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
Leaves out: the learning itself (minimac/learner/learner.py), the forgetting benchmark (--benchmark, minimac/forgetting.py).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from minimac.device import BackendUnavailable, check_device
from minimac.learner.hooks import Controller
from minimac.neuro import CONTROLLER_NAMES as NEURO_NAMES  # hippocampus first: it chooses the replay
from minimac.neuro import build_controllers
from minimac.readout import Readout, fmt_seconds, r_matrix_table
from minimac.learner.strategies import STRATEGIES as STRATEGY_NAMES

NEURO_ALIASES = {"neuromod": "neuromodulation"}   # the controller's own `name`
DEMO = {"stage_steps": 40, "eval_chars": 4000, "train_chars": 200_000, "remember_chars": 40_000,
        "prompt_chars": 40, "new_tokens": 24}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m minimac.learn", description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default="default", help="'default' or registry names, base first, comma-separated")
    p.add_argument("--strategy", default="adapter-per-domain", choices=STRATEGY_NAMES)
    p.add_argument("--preset", default="nano", help="model size of the base (default nano)")
    p.add_argument("--steps", type=int, help=f"optimizer steps per domain (default {DEMO['stage_steps']}; with "
                                             "--data: LearnerConfig's epochs rule)")
    p.add_argument("--base-steps", type=int, help="pretraining steps of the cached base (default: as many as fit in "
                                                  "--base-seconds)")
    p.add_argument("--base-seconds", type=float, default=60.0, help="pretraining time of the cached base, compile "
                                                                     "excluded (default 60)")
    p.add_argument("--lr", type=float, help="learning rate (default: the strategy's, see minimac/learner/strategies.py)")
    p.add_argument("--replay-ratio", type=float, help="share of each batch given to replay by the replay strategies "
                   "(default 0.5; docs/forgetting.md: full+replay+ewc met the forgetting goal at 0.25)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-live", action="store_true", help="plain log lines instead of a live panel (logs, CI)")
    p.add_argument("--save", metavar="DIR", help="save the learner after every domain (atomic; resumable)")
    p.add_argument("--resume", metavar="DIR", help="continue from a learner saved with --save")
    p.add_argument("--data", nargs="+", metavar="FILE", help="UTF-8 text file(s) to learn, as domain --domain")
    p.add_argument("--domain", help="domain name for --data")
    p.add_argument("--neuro", metavar="NAMES", help="brain-inspired controllers to switch on, comma-separated, or "
                                                     f"'all': {', '.join(NEURO_NAMES)}")
    p.add_argument("--benchmark", action="store_true", help="run the forgetting benchmark (minimac/forgetting.py)")
    args = p.parse_args(argv)
    try:
        args.neuro = neuro_names(args.neuro)
    except ValueError as e:
        p.error(str(e))
    for name in ("steps", "base_steps", "base_seconds", "lr"):
        if getattr(args, name) is not None and not getattr(args, name) > 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.replay_ratio is not None and not 0 <= args.replay_ratio < 1:
        p.error(f"--replay-ratio must be at least 0 and below 1, got {args.replay_ratio}")
    if bool(args.data) != bool(args.domain):
        p.error("--data and --domain go together: --data FILE... --domain NAME")
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
    text only, but the base (and its tokenizer) stays the corpus's, so every --data run shares one cached base."""
    from minimac.data import DEFAULT_DOMAINS, load_corpus
    names = list(DEFAULT_DOMAINS) if args.corpus == "default" else [c.strip() for c in args.corpus.split(",") if c]
    if len(names) < 2 and not args.data:
        raise ValueError(f"--corpus needs a base and at least one domain to learn, got {names}")
    if args.data and args.domain in names[:1]:
        raise ValueError(f"--domain {args.domain!r} is the name of the base domain; pick another name")
    data = "\n".join(_read(f) for f in args.data) if args.data else None  # read first: a bad file fails fast

    def docs(name: str, split: str) -> list[str]:
        return load_corpus("default", split, domain=name) if args.corpus == "default" else load_corpus(name, split)

    learn = names[:1] if data else names
    domains = {n: {"train": docs(n, "train"), "valid": "\n\n".join(docs(n, "valid"))[:DEMO["eval_chars"]],
                   "prompts": _prompts(docs(n, "test"))} for n in learn}
    if data:
        domains[args.domain] = {"train": [data], "valid": data, "prompts": _prompts(data.split("\n\n"))}
    tokenizer_docs = [domains[n]["train"] if n in domains else docs(n, "train") for n in names[1:]]
    return {"base": names[0], "domains": domains, "stream": [n for n in domains if n != names[0]],
            "tokenizer_docs": tokenizer_docs}


def _read(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--data file '{p}' does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"--data file '{p}' is not UTF-8 text ({e})") from None
    if not text.strip():
        raise ValueError(f"--data file '{p}' is empty")
    return text


class _Show(Controller):
    """A learner controller (minimac/learner/hooks.py) that only watches: each step goes to the readout."""

    def __init__(self, readout: Readout, stream: list[str]):
        self.readout, self.stream, self.domain = readout, stream, None

    def on_step(self, learner, stats: dict) -> None:
        if stats["domain"] != self.domain:
            self.domain = stats["domain"]
            self.readout.stage(self.domain, self.stream.index(self.domain) + 1, len(self.stream), stats["steps"])
        self.show_controllers(learner)
        self.readout.step(stats)

    def show_controllers(self, learner) -> None:
        """Every other controller's readout() (the neuro ones have one) goes to the panel's controller rows."""
        rows = {getattr(c, "name", type(c).__name__): c.readout() for c in learner.controllers
                if c is not self and callable(getattr(c, "readout", None))}
        if rows:
            self.readout.neuro(rows)


def _estimate(t: dict, n_stages: int, stage_steps: int, evals: int) -> float:
    """Seconds for the learning part, from the base build's measured compile and step times (see base_cache)."""
    compile_s, step_s = t.get("first_steps_s", 60.0), t.get("pretrain_step_s", 1.0)
    # a LoRA step skips the big weight gradients (~0.6 of a full step); its compile is about that of the base's, and
    # evaluation and generation compile their own kernels too (~0.8 of it; measured on a 2-core CPU)
    return 1.8 * compile_s + n_stages * stage_steps * 0.6 * step_s + evals * 4 * step_s


def run(args: argparse.Namespace, console: Console) -> int:
    from tinygrad import Tensor

    from minimac.base_cache import BaseSpec, cached_base, read_timings
    from minimac.checkpoint import load as load_model
    from minimac.learner import ContinualLearner
    from minimac.learner.strategies import LearnerConfig
    from minimac.tokenizer import Tokenizer

    wall = time.perf_counter()
    plan = load_plan(args)
    base, stream, domains = plan["base"], plan["stream"], plan["domains"]
    stage_steps = args.steps or (None if args.data else DEMO["stage_steps"])
    save = args.save or (f"runs/{args.domain}" if args.data else None)
    live = not args.no_live
    evals = len(domains) * (len(stream) + 1)
    if args.resume:   # the controllers are built again, on the loaded model, and get their saved state back
        learner = ContinualLearner.load_checkpoint(args.resume, lambda model: build_controllers(args.neuro, model))
        stream = [d for d in stream if d not in learner.domains]
        if not stream:
            console.print(f"{args.resume} has already learned {learner.domains}; nothing left (try --data FILE)")
            return 0
        console.print(f"resumed {args.resume}: {learner.config.strategy}, learned {learner.domains}")
    else:
        spec = BaseSpec(preset=args.preset, base_steps=args.base_steps, base_seconds=args.base_seconds)
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
                    rest = base_rest + _estimate(
                        {"first_steps_s": stamps[1] - wall, "pretrain_step_s": step_s},
                        len(stream), stage_steps or 60, evals)
                    r.message(f"measured {step_s:.2f}s per pretraining step: this first run will take about "
                              f"{fmt_seconds(time.perf_counter() - wall + rest)} in all; later runs reuse the base")

            folder, built = _base_folder(spec, plan, r, cached_base, log)
        if not built and (t := read_timings(folder)):
            guess = time.perf_counter() - wall + _estimate(t, len(stream), stage_steps or 60, evals)
            console.print(f"from the base's measured step time, this run should take about {fmt_seconds(guess)}")
        # LoRA on q and v only (the LoRA paper's choice): on a 2-core CPU all seven targets compile ~1.7x longer
        # and step ~1.4x slower for about the same gain on this demo (measured on nano)
        config = LearnerConfig(strategy=args.strategy, learning_rate=args.lr, batch_size=spec.batch_size,
                               seq_len=spec.seq_len, seed=args.seed, fisher_samples=16,
                               target_modules=("q_proj", "v_proj"),
                               **({} if args.replay_ratio is None else {"replay_ratio": args.replay_ratio}))
        Tensor.manual_seed(args.seed)  # the LoRA init draws from tinygrad's RNG: same seed, same run, cached or not
        model = load_model(folder)
        learner = ContinualLearner(model, Tokenizer.load(folder / "tokenizer"), config,
                                   controllers=build_controllers(args.neuro, model))
        learner.remember("\n\n".join(domains[base]["train"])[:DEMO["remember_chars"]], base)
        learner.consolidate(base)
    show = _Show(None, stream)
    learner.controllers.append(show)
    eval_sets = {d: domains[d]["valid"] for d in [base, *stream] if d in domains}
    prompts = {d: domains[d]["prompts"] for d in eval_sets}
    before = {d: [learner.generate(p, DEMO["new_tokens"], seed=0) for p in ps] for d, ps in prompts.items()}
    items = [(d, "\n\n".join(domains[d]["train"])[:DEMO["train_chars"]]) for d in stream]
    with Readout(live=live, console=console, every=10) as r:
        show.readout = r

        def on_stage(stage: str, scores: dict) -> None:
            show.show_controllers(learner)   # after the domain's end: sleep has run
            m = learner.r_matrix
            r.scores(m.sets, m.values.tolist(), m.stages)
            if save and stage != m.stages[0]:
                learner.save_checkpoint(save)
                r.message(f"saved {save} after learning {stage}")

        learner.learn_stream(items, eval_sets, base=base, steps=stage_steps, on_stage=on_stage)
    report(learner, console, prompts, before)
    console.print(f"done in {fmt_seconds(time.perf_counter() - wall)}" +
                  (f"; try: python -m minimac.generate --checkpoint {save} --prompt \"...\"" if save else ""))
    return 0


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


def benchmark(argv: list[str]) -> int:
    from minimac.forgetting import main as forgetting_main
    return forgetting_main([a for a in argv if a != "--benchmark"])


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    if "--benchmark" in raw:  # the benchmark has flags of its own (--quick, --strategies, ...): hand them all over
        return benchmark(raw)
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
        where = args.save or (f"runs/{args.domain}" if args.data else None)
        console.print("interrupted: " + (f"the last checkpoint in {where} is intact" if where else "nothing saved"))
        return 130
    except (ValueError, FileNotFoundError, TypeError, NonFiniteLossError) as e:
        errors.print(f"error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
