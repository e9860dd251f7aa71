"""The forgetting benchmark: continual-learning strategies side by side on a sequence of real domains, beside two
references (the per-domain expert and the joint fine-tune).

    MINIMAC_DATA=../shared/data python benchmarks/forgetting.py --quick     # 2-core CPU, 2 domains
    MINIMAC_DATA=../shared/data python benchmarks/forgetting.py --seeds 0,1,2   # the full run (a GPU: see the docs)
    python benchmarks/forgetting.py --quick --strategies adapter-per-domain,expert --set r=16,use_rslora=true
    python benchmarks/forgetting.py --merge out/a out/b --out results     # runs made by separate processes, pooled

One base model (minimac/base_cache.py: BPE tokenizer + a model pretrained on the base corpus, Gutenberg novels
by default, cached) is copied for every run; each copy remembers a sample of the base text (for replay / EWC),
then learns the domains in order (default tinyshakespeare -> scotus -> medquad -> gsm8k -> python_stdlib), each from
the first `--train-chars` of its training split, with the SAME budget per stage for every strategy: `--steps`
optimizer steps of batch_size x seq_len tokens (replay strategies spend part of each batch on replayed rows: same
compute, fewer new tokens). Same base, seed (LoRA init, batch order) and text for all. Two references, run like
strategies (`--strategies expert,joint`): "expert" fine-tunes every weight of a fresh copy of the base on one domain
alone (same text, same steps), one copy per domain; "joint" fine-tunes one copy on every domain's text mixed, for
the same total steps. Both use LearnerConfig's strategy "full" and its defaults.

After every stage: bits per byte (metrics.bits_per_byte_of_text) on the first `--eval-chars` characters of every
domain's *test* split, seen and unseen, and of WikiText-2 test (a probe never trained on): the R matrix
R[stage][set]. adapter-per-domain routes every test set with the library's router (minimac/learner/routing.py, on
the set's first route_windows windows; it never gets the set's name), and is also scored routed by name (an oracle
row); after the last stage its router is scored on every held-out 256-token window of each test set (a confusion
matrix) and the time to route and to switch adapters is measured. Numbers and tables: benchmarks/forgetting_report.py.

Leaves out: the base pretraining itself (python -m minimac.pretrain).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from forgetting_report import (
    BY_NAME,
    GOAL_FORGET_PCT,
    GOAL_GAIN,
    REFERENCES,
    add_summaries,
    aggregate,
    goal_met,
    learning_goal,
    markdown,
    plot,
    summarize,
    terminal_table,
    verdict,
)

from minimac import metrics
from minimac.files import atomic_write
from minimac.learner.hooks import Controller

__all__ = ["BY_NAME", "GOAL_FORGET_PCT", "GOAL_GAIN", "goal_met", "summarize", "verdict"]
STRATEGIES = ("full", "full+replay", "full+replay+ewc", "lora", "lora+replay", "lora+replay+ewc", "adapter-per-domain")
NEURO = ("autonomous_lr", "neuromodulation", "hippocampus", "sleep")
# The best neuro configuration known: docs/neuro.md's ablation (CPU) found no controller that beats plain
# lora+replay+ewc beyond noise; hippocampus was the only one with lower forgetting and no loss of plasticity.
BEST_NEURO = ("hippocampus",)
FULL_DOMAINS = ("tinyshakespeare", "scotus", "medquad", "gsm8k", "python_stdlib")
QUICK = {"domains": "tinyshakespeare,scotus", "steps": 24, "train_chars": 60_000, "eval_chars": 12_000,
         "base_chars": 400_000, "tokenizer_chars": 60_000, "preset": "nano", "base_steps": 150}
FULL = {"domains": ",".join(FULL_DOMAINS), "steps": 300, "train_chars": 1_000_000, "eval_chars": 40_000,
        "base_chars": 4_000_000, "tokenizer_chars": 400_000, "preset": "tiny", "base_steps": 3000}
WINDOW_TOKENS = 256  # the confusion matrix's held-out windows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/forgetting.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"small CPU run: {QUICK}")
    p.add_argument("--corpus", default="registry", help="'registry' (MINIMAC_DATA corpora) or 'default' (docs->code)")
    p.add_argument("--base", default="gutenberg", help="base corpus (registry)")
    p.add_argument("--domains", help="comma-separated domains in order (registry names; default corpus: code)")
    p.add_argument("--probe", default="wikitext2", help="never-trained probe corpus, or 'none'")
    p.add_argument("--strategies", help=f"comma-separated subset of {STRATEGIES + REFERENCES} (default: all)")
    p.add_argument("--neuro", help=f"add 'lora+replay+ewc+neuro' with these controllers {NEURO} (comma-separated; "
                   f"'all' = every one, 'none' = no neuro run; default: {','.join(BEST_NEURO)} when --strategies "
                   "is not given, else none)")
    p.add_argument("--neuro-strategy", default="lora+replay+ewc", help="the strategy the neuro controllers run on")
    p.add_argument("--route-windows", type=int, help="the router scores each prompt's first N windows of seq_len "
                   "tokens (default: LearnerConfig's)")
    p.add_argument("--route-margin", type=float, help="nats per token an adapter must beat the bare base by "
                   "(default: LearnerConfig's)")
    for name in ("steps", "train_chars", "eval_chars", "base_chars", "tokenizer_chars", "base_steps"):
        p.add_argument("--" + name.replace("_", "-"), type=int, help=f"default {QUICK[name]} quick, {FULL[name]} full")
    p.add_argument("--base-folder", help="use this base model folder (model + tokenizer/, as base_cache writes) "
                   "instead of the cached base for these settings")
    p.add_argument("--preset", help="model preset of the base (default nano quick, tiny full)")
    p.add_argument("--lora-lr", type=float, help="learning rate of the LoRA strategies (default: strategies.py's); "
                   "runs are then named e.g. 'lora (lr 0.005, r 8)'")
    p.add_argument("--rank", type=int, help="LoRA rank r (default: LearnerConfig's); names the runs as --lora-lr")
    p.add_argument("--lora-alpha", type=float, help="LoRA alpha (default: LearnerConfig's); names the runs")
    p.add_argument("--replay-ratio", type=float, help="share of each batch given to replay by the replay strategies "
                   "(default: LearnerConfig's 0.5); their runs are then named e.g. 'full+replay (replay 0.25)'")
    p.add_argument("--set", dest="overrides", default="", help="more LearnerConfig fields for every run of this "
                   "command, e.g. 'r=24,use_rslora=true,modules_to_save=norm' (tuples joined by '+'); the runs are "
                   "then named with them, or with --tag")
    p.add_argument("--tag", help="name the runs 'STRATEGY (TAG)' instead of listing the --set fields")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, each a whole run (default 0)")
    p.add_argument("--seed", type=int, help="one seed (the same as --seeds N)")
    p.add_argument("--out", default="results", help="folder for forgetting.json / .md / .png, learning_goal.json")
    p.add_argument("--append", action="store_true", help="keep the other runs of an earlier forgetting.json in --out "
                   "made with the same settings")
    p.add_argument("--merge", nargs="+", metavar="DIR", help="pool the forgetting.json of these folders (same "
                   "settings) into --out, running nothing")
    p.add_argument("--note", default="", help="added to the machine description in the report (e.g. the GPU)")
    p.add_argument("--expert-run", help="the reference run the gains are measured against (default: 'expert')")
    p.add_argument("--facts", help="a benchmarks/facts.py result (facts.json): learning_goal.json takes its fact "
                   "recall from the last run of the goal's strategy")
    p.add_argument("--goal-run", help="the run that learning_goal.json summarises (default: LearnerConfig's "
                   "default strategy, untagged)")
    args = p.parse_args(argv)
    strategies_given = args.strategies is not None
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.corpus == "default" and args.domains in (QUICK["domains"], FULL["domains"]):
        args.domains = "code"
    every = ",".join(STRATEGIES + REFERENCES)
    args.strategies = [s.strip() for s in (args.strategies if strategies_given else every).split(",") if s.strip()]
    if bad := [s for s in args.strategies if s not in STRATEGIES + REFERENCES]:
        p.error(f"unknown strategy {bad}; choose from {STRATEGIES + REFERENCES}")
    if args.neuro is None:
        args.neuro = "none" if strategies_given else ",".join(BEST_NEURO)
    args.neuro = list(NEURO) if args.neuro == "all" else [] if args.neuro == "none" else \
        [s.strip() for s in args.neuro.split(",") if s.strip()]
    if bad := [s for s in args.neuro if s not in NEURO]:
        p.error(f"unknown neuro controller {bad}; choose from {NEURO}")
    if args.replay_ratio is not None and not 0 < args.replay_ratio < 1:
        p.error(f"--replay-ratio must be between 0 and 1, got {args.replay_ratio}")
    if any(v is not None and not v > 0 for v in (args.lora_lr, args.rank, args.lora_alpha, args.route_windows)):
        p.error(f"--lora-lr, --rank, --lora-alpha and --route-windows must be positive, got {args.lora_lr}, "
                f"{args.rank}, {args.lora_alpha}, {args.route_windows}")
    if args.route_margin is not None and not args.route_margin >= 0:
        p.error(f"--route-margin must be >= 0, got {args.route_margin}")
    if args.corpus not in ("registry", "default"):
        p.error(f"--corpus must be 'registry' or 'default', got {args.corpus!r}")
    try:
        args.seeds = [args.seed] if args.seed is not None else [int(s) for s in args.seeds.split(",") if s.strip()]
        args.overrides = parse_overrides(args.overrides)
    except ValueError as e:
        p.error(str(e))
    if not args.seeds or min(args.seeds) < 0:
        p.error(f"--seeds must list integers >= 0, got {args.seeds}")
    return args


def parse_overrides(text: str) -> dict:
    """'r=24,use_rslora=true,modules_to_save=norm' -> {"r": 24, "use_rslora": True, "modules_to_save": ("norm",)},
    each value parsed as its LearnerConfig field's type; the whole config is checked by LearnerConfig itself."""
    from minimac.learner.strategies import LearnerConfig
    defaults = {f.name: f.default for f in dataclasses.fields(LearnerConfig)}
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in defaults or key == "strategy":
            raise ValueError(f"--set takes FIELD=VALUE pairs of LearnerConfig fields (not strategy), got {item!r}")
        d = defaults[key]
        if isinstance(d, tuple):
            out[key] = tuple(v for v in value.split("+") if v)
        elif isinstance(d, bool) or value.lower() in ("true", "false"):
            out[key] = value.lower() == "true" if value.lower() in ("true", "false") else value
        elif value.lower() == "none":
            out[key] = None
        else:
            try:
                out[key] = int(value) if value.lstrip("-").isdigit() and not isinstance(d, float) else float(value)
            except ValueError:
                out[key] = value
    LearnerConfig(**out)  # refuses bad values now, before any training
    return out


def head(docs: list[str], n: int) -> list[str]:
    """The first n characters of a list of documents, whole documents (the last one cut); as neuro_ablation."""
    out, left = [], n
    for d in docs:
        if left <= 0:
            break
        out.append(d[:left])
        left -= len(out[-1])
    return out


def load_plan(args: argparse.Namespace) -> dict:
    """{"base", "domains", "probes", "base_docs", "tok_docs" {d: docs}, "train" {d: text}, "test" {set: text}}."""
    from minimac.data import load_corpus
    if args.corpus == "default":
        base, domains = "docs", [d.strip() for d in args.domains.split(",")]

        def docs(n: str, split: str) -> list[str]:
            return load_corpus("default", split, domain=n)
    else:
        base, domains = args.base, [d.strip() for d in args.domains.split(",") if d.strip()]

        def docs(n: str, split: str) -> list[str]:
            return load_corpus(n, split)
    if not domains or base in domains or len(set(domains)) != len(domains):
        raise ValueError(f"--domains must name distinct domains other than the base {base!r}, got {domains}")
    probes = [] if args.probe == "none" or args.corpus == "default" else [args.probe]
    test = {n: "\n\n".join(docs(n, "test"))[:args.eval_chars] for n in [base, *domains]}
    test.update({p: "\n\n".join(load_corpus(p, "test"))[:args.eval_chars] for p in probes})
    return {"base": base, "domains": domains, "probes": probes, "base_docs": head(docs(base, "train"), args.base_chars),
            "tok_docs": {d: head(docs(d, "train"), args.tokenizer_chars) for d in domains},
            "train": {d: "\n\n".join(head(docs(d, "train"), args.train_chars)) for d in domains}, "test": test}


class _StepClock(Controller):
    """A learner controller that only notes the time of every optimizer step (for the steady-state step time)."""

    def __init__(self):
        self.stamps: list[float] = []

    def on_step(self, learner, stats: dict) -> None:
        self.stamps.append(time.perf_counter())


def make_controllers(names: list[str]) -> list:
    from minimac.neuro import build_controllers
    return build_controllers(names)  # in the order given (NEURO's), default configs


def learner_config(strategy: str, batch_size: int, seq_len: int, seed: int, lora_lr: float | None = None,
                   rank: int | None = None, overrides: dict | None = None, replay_ratio: float | None = None):
    """The run's LearnerConfig: LearnerConfig's defaults, the LoRA knobs (--lora-lr, --rank) for LoRA strategies,
    `overrides` (--set) for every strategy, and the replay ratio for those that replay."""
    from minimac.learner.strategies import LearnerConfig
    lora = LearnerConfig(strategy=strategy).uses_lora
    knobs = {"learning_rate": lora_lr, "r": rank} if lora else {}
    knobs = {k: v for k, v in knobs.items() if v is not None}
    extra = {"replay_ratio": replay_ratio} if replay_ratio is not None else {}
    return LearnerConfig(strategy=strategy, batch_size=batch_size, seq_len=seq_len, seed=seed, fisher_samples=16,
                         **{**knobs, **(overrides or {}), **extra})


def evaluate_routed(learner, sets: dict[str, str], memo: dict | None = None
                    ) -> tuple[dict[str, float], dict[str, str | None]]:
    """{set: bits per byte}, {set: route}: every set through the library's router (never by the set's name).
    `memo` {(set, route): bpb} skips what cannot have changed (adapter-per-domain: a route trained earlier)."""
    from minimac.learner import routing
    names = list(sets)
    ids = [learner.encode(sets[n]) for n in names]
    if learner.config.per_domain:
        chosen = dict(zip(names, routing.route_many(learner, ids)))
    else:
        chosen = {n: routing.route(learner, i) for n, i in zip(names, ids)}
    scores = {}
    for name in names:
        key = (name, chosen[name])
        if memo is None or key not in memo:
            with routing.using(learner, chosen[name]):
                value = metrics.bits_per_byte_of_text(learner.model, learner.tokenizer, sets[name],
                                                      learner.config.seq_len, learner.config.batch_size)
            if memo is None:
                scores[name] = value
                continue
            memo[key] = value
        scores[name] = memo[key]
    return scores, chosen


def confusion(learner, sets: dict[str, str], base: str, window_tokens: int = WINDOW_TOKENS) -> dict:
    """The router on every held-out window of window_tokens tokens of each set: {"matrix" {set: {route: count}},
    "accuracy" over sets that have a right answer (the base set -> bare base, a domain -> its adapter), ...}."""
    from minimac.learner import routing
    prompts, truth = [], []
    for name, text in sets.items():
        ids = learner.encode(text)
        for i in range(0, len(ids) - window_tokens, window_tokens):
            prompts.append(ids[i:i + window_tokens + 1])
            truth.append(name)
    t0 = time.perf_counter()
    chosen = routing.route_many(learner, prompts)
    route_ms = 1000 * (time.perf_counter() - t0) / max(len(prompts), 1)
    labels = ["base", *learner.adapters]
    matrix = {s: {k: 0 for k in labels} for s in sets}
    for s, r in zip(truth, chosen):
        matrix[s]["base" if r is None else r] += 1
    right = {s: "base" if s == base else s for s in sets if s == base or s in learner.adapters}
    correct = sum(matrix[s][k] for s, k in right.items())
    total = sum(sum(matrix[s].values()) for s in right)
    t0, n = time.perf_counter(), 0
    for _ in range(5):
        for name in [None, *learner.adapters]:
            with routing.using(learner, name):
                n += 1
    return {"matrix": matrix, "labels": labels, "correct": correct, "total": total,
            "accuracy": correct / total if total else math.nan, "window_tokens": window_tokens, "route_ms": route_ms,
            "switch_ms": 1000 * (time.perf_counter() - t0) / n, "margin": learner.config.route_margin,
            "route_windows": learner.config.route_windows}


def run_strategy(name: str, make_model, tokenizer, plan: dict, steps: int, batch_size: int, seq_len: int,
                 seed: int = 0, neuro: list[str] = (), remember_chars: int = 40_000, say=print,
                 strategy: str | None = None, lora_lr: float | None = None, rank: int | None = None,
                 overrides: dict | None = None, replay_ratio: float | None = None) -> dict:
    """One strategy through the whole stream: {"strategy", "seed", "R", "sets", "stages", "routes", "train" [per
    stage], "params_per_domain"(_pct), and for adapter-per-domain "R_by_name" and "confusion"}.

    `name` labels the run; `strategy` (default: name, or lora+replay+ewc with neuro controllers) is the learner's."""
    from tinygrad import Tensor

    from minimac import lora as lora_mod
    from minimac.learner import ContinualLearner, routing
    Tensor.manual_seed(seed)  # the same LoRA init for every strategy
    model = make_model()
    base_params = sum(int(np.prod(t.shape)) for t in model.parameters()) if hasattr(model, "parameters") else 0
    clock = _StepClock()
    strategy = strategy or ("lora+replay+ewc" if neuro else name)
    config = learner_config(strategy, batch_size, seq_len, seed, lora_lr, rank, overrides, replay_ratio)
    learner = ContinualLearner(model, tokenizer, config, controllers=[clock, *make_controllers(list(neuro))])
    base, domains = plan["base"], plan["domains"]
    learner.remember("\n\n".join(plan["base_docs"])[:remember_chars], base)
    learner.consolidate(base)
    sets = [base, *domains, *plan["probes"]]
    R, routes, train, oracle = [], [], [], []
    memo = {} if config.per_domain else None
    added = None
    t0 = time.perf_counter()
    for stage in [base, *domains]:
        if stage != base:
            n0 = len(clock.stamps)
            res = learner.learn_from_text(plan["train"][stage], stage, steps=steps)
            learner.consolidate(stage)
            if added is None and config.uses_lora:
                added = lora_mod.count_parameters(model, lora_mod.active_adapter(model))["trainable"]
            dt = np.diff(clock.stamps[n0:])
            train.append({"stage": stage, "steps": res["steps"], "examples": res["steps"] * batch_size,
                          "new_chunks": res["examples"], "seconds": res["seconds"], "step_seconds": res["step_seconds"],
                          "median_step_s": float(np.median(dt)) if len(dt) else math.nan,
                          "loss_before": res["loss_before"], "loss_after": res["loss_after"],
                          "best_step": res.get("best_step")})
        scores, chosen = evaluate_routed(learner, {s: plan["test"][s] for s in sets}, memo)
        R.append([scores[s] for s in sets])
        routes.append(chosen)
        if config.per_domain:  # routed by name: a domain's own adapter, the bare base for the base set
            named = {s: s if s in learner.adapters else None for s in [base, *domains]}
            again = {}
            for s, route in named.items():
                if (s, route) not in memo:
                    with routing.using(learner, route):
                        memo[(s, route)] = metrics.bits_per_byte_of_text(learner.model, tokenizer, plan["test"][s],
                                                                          seq_len, batch_size)
                again[s] = memo[(s, route)]
            oracle.append([again.get(s, scores[s]) for s in sets])
        say(f"  {name:22s} seed {seed} after {stage:16s} " + " ".join(f"{s}={v:.3f}" for s, v in scores.items()))
    out = {"strategy": name, "seed": seed, "R": R, "sets": sets, "stages": [base, *domains], "routes": routes,
           "train": train, "wall_s": time.perf_counter() - t0, "config": config.to_dict(),
           "params_per_domain": added,
           "params_per_domain_pct": 100 * added / base_params if added and base_params else None,
           "base_params": base_params}
    if config.per_domain:
        out["R_by_name"] = oracle
        out["confusion"] = confusion(learner, {s: plan["test"][s] for s in [base, *domains, *plan["probes"]]}, base)
        say(f"  routing accuracy {out['confusion']['accuracy']:.1%} on {out['confusion']['total']} windows; "
            f"{out['confusion']['route_ms']:.0f} ms a route, {out['confusion']['switch_ms']:.2f} ms a switch")
    return out


def run_reference(kind: str, make_model, tokenizer, plan: dict, steps: int, batch_size: int, seq_len: int,
                  seed: int = 0, say=print, overrides: dict | None = None) -> dict:
    """"expert": full fine-tuning of a fresh copy of the base on each domain alone (`steps` each); "joint": one
    copy on every domain's text mixed (shuffled chunks), `steps` x domains. {"strategy", "kind", "seed", "base_bpb",
    "final" {domain: bpb}, "train"}."""
    from tinygrad import Tensor

    from minimac.learner import ContinualLearner
    config = learner_config("full", batch_size, seq_len, seed, overrides=overrides)
    domains, t0, train, final = plan["domains"], time.perf_counter(), [], {}
    jobs = [(d, plan["train"][d], steps) for d in domains] if kind == "expert" else \
        [("joint", "\n\n".join(plan["train"][d] for d in domains), steps * len(domains))]
    base_bpb = None
    for label, text, n in jobs:
        Tensor.manual_seed(seed)
        learner = ContinualLearner(make_model(), tokenizer, config)
        if base_bpb is None:
            base_bpb = {s: metrics.bits_per_byte_of_text(learner.model, tokenizer, plan["test"][s], seq_len,
                                                         batch_size) for s in [plan["base"], *domains]}
        res = learner.learn_from_text(text, label, steps=n)
        train.append({"stage": label, "steps": res["steps"], "seconds": res["seconds"],
                      "loss_before": res["loss_before"], "loss_after": res["loss_after"]})
        for d in ([label] if kind == "expert" else domains):
            final[d] = metrics.bits_per_byte_of_text(learner.model, tokenizer, plan["test"][d], seq_len, batch_size)
        if kind == "joint":
            final[plan["base"]] = metrics.bits_per_byte_of_text(learner.model, tokenizer, plan["test"][plan["base"]],
                                                                seq_len, batch_size)
        say(f"  {kind:22s} seed {seed} {label}: " + ", ".join(f"{d}={final[d]:.3f}" for d in final))
    return {"strategy": kind, "kind": kind, "seed": seed, "base_bpb": base_bpb, "final": final, "train": train,
            "wall_s": time.perf_counter() - t0, "config": config.to_dict()}


def with_named_routing(runs: list[dict]) -> list[dict]:
    """Each adapter-per-domain run, plus a copy scored with routing by name (R_by_name) right after it."""
    out = []
    for r in runs:
        out.append(r)
        if r.get("R_by_name") and not r["strategy"].endswith(BY_NAME):
            copy = {k: v for k, v in r.items() if k not in ("R_by_name", "confusion")}
            out.append({**copy, "strategy": r["strategy"] + BY_NAME, "R": r["R_by_name"],
                        "routes": [{s: s if j else None for j, s in enumerate(r["stages"])}]})
    return out


SETTINGS = ("base_folder", "domains", "probes", "steps", "train_chars", "eval_chars")


def earlier_runs(path: Path, meta: dict, keep_out: list[tuple[str, int]]) -> list[dict]:
    """The runs of an earlier result file made with the same base, stream and budget, minus those run again now
    (same name and seed)."""
    if not path.is_file():
        return []
    old = json.loads(path.read_text())
    m = old["meta"]
    if any(m.get(k) != meta[k] for k in SETTINGS):
        raise ValueError(f"{path} was made with other settings (base {m.get('base_folder')}, domains "
                         f"{m.get('domains')}, steps {m.get('steps')}); use another --out or drop --append")
    return [r for r in old["runs"] if not r["strategy"].endswith(BY_NAME)
            and (r["strategy"], r.get("seed", m.get("seed", 0))) not in keep_out]


def with_fact_recall(goal: dict, facts: str | None) -> dict:
    """goal with fact_recall_now / _later (and the machine and command that measured them) from the last run of a
    benchmarks/facts.py result whose strategy is the goal's strategy or starts with it; unchanged without one."""
    if not facts:
        return goal
    runs = [r for r in json.loads(Path(facts).read_text())["runs"] if r["strategy"].split(" (")[0] ==
            goal["strategy"].split(" (")[0]]
    if not runs:
        raise ValueError(f"--facts: {facts} has no run of {goal['strategy']!r}")
    r = runs[-1]
    return {**goal, "fact_recall_now": r["fact_recall_now"], "fact_recall_later": r["fact_recall_later"],
            "fact_recall_run": r["strategy"], "fact_recall_machine": r["machine"], "fact_recall_command": r["command"]}


def write_result(result: dict, out: Path, console, goal_run: str | None = None, expert_run: str | None = None,
                 facts: str | None = None) -> None:
    """forgetting.json / .md / .png, and learning_goal.json when the library's default strategy was run (its fact
    recall from `facts`, a benchmarks/facts.py result, when given)."""
    from minimac.learner.strategies import LearnerConfig
    runs = [r for r in result["runs"] if not r["strategy"].endswith(BY_NAME)]
    order = {n: i for i, n in enumerate(dict.fromkeys([*STRATEGIES, *[r["strategy"] for r in runs], *REFERENCES]))}
    runs.sort(key=lambda r: (order.get(r["strategy"], len(order)), r.get("seed", 0)))
    result["runs"] = runs = with_named_routing(runs)
    if expert_run:
        result["meta"]["expert_run"] = expert_run
    add_summaries(runs, result["meta"].get("expert_run"))
    console.print(terminal_table(runs))
    console.print(verdict(aggregate(runs)))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "forgetting.json", json.dumps(result, indent=1))
    atomic_write(out / "forgetting.md", markdown(result))
    wrote = plot(result, out / "forgetting.png")
    # the goal is the full mode's: a quick run never writes (or overwrites) learning_goal.json
    goal = None if result["meta"].get("quick") else learning_goal(result, goal_run or LearnerConfig().strategy)
    if goal is not None:
        atomic_write(out / "learning_goal.json", json.dumps(with_fact_recall(goal, facts), indent=1))
    console.print(f"wrote {out / 'forgetting.json'}, {out / 'forgetting.md'}" + (", forgetting.png" if wrote else "")
                  + (", learning_goal.json" if goal is not None else ""))


def merge(args: argparse.Namespace, console) -> int:
    found = [Path(d) / "forgetting.json" for d in args.merge if (Path(d) / "forgetting.json").is_file()]
    if missing := [d for d in args.merge if Path(d) / "forgetting.json" not in found]:
        console.print(f"--merge: no forgetting.json in {missing} (a run that did not finish); pooling the others")
    if not found:
        raise FileNotFoundError(f"--merge: none of {args.merge} holds a forgetting.json")
    parts = [json.loads(f.read_text()) for f in found]
    meta = dict(parts[0]["meta"])
    runs: dict = {}
    for part in parts:
        if any(part["meta"].get(k) != meta[k] for k in SETTINGS):
            raise ValueError(f"--merge: {args.merge} were made with different settings ({SETTINGS})")
        for r in part["runs"]:
            if not r["strategy"].endswith(BY_NAME):
                runs[(r["strategy"], r.get("seed", 0))] = r
    meta["command"] = "python benchmarks/forgetting.py --merge " + " ".join(args.merge)
    meta["wall_s"] = max(p["meta"]["wall_s"] for p in parts)
    write_result({"meta": meta, "runs": list(runs.values())}, Path(args.out), console, args.goal_run, args.expert_run,
                 args.facts)
    return 0


def main(argv: list[str] | None = None) -> int:
    import minimac.fast
    minimac.fast.install()  # the same numbers, faster; MINIMAC_PLAIN=1 keeps the plain path
    from rich.console import Console
    args = parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    if args.merge:
        return merge(args, console)
    from tinygrad import Device

    from minimac.base_cache import BaseSpec, cached_base
    from minimac.checkpoint import load as load_model
    from minimac.tokenizer import Tokenizer
    load_start, wall = os.getloadavg()[0], time.perf_counter()
    plan = load_plan(args)
    spec = BaseSpec(preset=args.preset, base_steps=args.base_steps)
    if args.base_folder:
        folder = Path(args.base_folder).expanduser()
        if not (folder / "tokenizer").is_dir():
            raise FileNotFoundError(f"--base-folder '{folder}' has no tokenizer/ folder: not a base model folder")
    else:
        folder, _ = cached_base(spec, plan["base_docs"], list(plan["tok_docs"].values()), say=console.print)
    console.print(f"base model {folder}; stream {plan['base']} -> {' -> '.join(plan['domains'])}; device "
                  f"{Device.DEFAULT}; load {load_start:.2f}")
    tokenizer = Tokenizer.load(folder / "tokenizer")
    overrides = dict(args.overrides)
    if args.lora_alpha:
        overrides["lora_alpha"] = args.lora_alpha
    for key in ("route_windows", "route_margin"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    runs_todo = [(s, s, ()) for s in args.strategies]
    if args.neuro:
        runs_todo.append((f"{args.neuro_strategy}+neuro(" + ",".join(args.neuro) + ")", args.neuro_strategy,
                          tuple(args.neuro)))
    named = []
    for name, strategy, neuro in runs_todo:
        config = learner_config("full" if strategy in REFERENCES else strategy, 8, 64, 0)
        tags = []
        if config.uses_lora and (args.lora_lr or args.rank or args.lora_alpha):
            tags.append(f"lr {args.lora_lr or 'default'}, r {args.rank or config.r}" +
                        (f", alpha {args.lora_alpha:g}" if args.lora_alpha else ""))
        if args.tag is not None or args.overrides:  # --tag "" names the runs by their strategy alone
            tags += [args.tag] if args.tag is not None and args.tag else [] if args.tag is not None else \
                [", ".join(f"{k} {'+'.join(v) if isinstance(v, tuple) else v}" for k, v in args.overrides.items())]
        if args.replay_ratio is not None and config.uses_replay and strategy not in REFERENCES:
            tags.append(f"replay {args.replay_ratio:g}")
        named.append((name + "".join(f" ({t})" for t in tags), strategy, neuro))
    command = "python benchmarks/forgetting.py " + " ".join(sys.argv[1:] if argv is None else argv)
    command = ("MINIMAC_DATA=... " if os.environ.get("MINIMAC_DATA") else "") + command.strip()
    meta = {"command": command, "machine": f"{platform.platform()}, {os.cpu_count()} CPU cores, tinygrad device "
            f"{Device.DEFAULT}" + (f", {args.note}" if args.note else ""), "load_start": load_start,
            "base": plan["base"], "domains": plan["domains"], "probes": plan["probes"], "steps": args.steps,
            "batch_size": spec.batch_size, "seq_len": spec.seq_len, "preset": args.preset,
            "tokens_per_stage": args.steps * spec.batch_size * spec.seq_len, "train_chars": args.train_chars,
            "eval_chars": args.eval_chars, "base_folder": folder.name, "base_steps": args.base_steps,
            "seeds": args.seeds, "quick": args.quick,
            "goal": {"forget_pct": GOAL_FORGET_PCT, "gain": GOAL_GAIN, "gain_against": "expert"}}
    keys = [(n, s) for n, _, _ in named for s in args.seeds]
    runs = earlier_runs(Path(args.out) / "forgetting.json", meta, keys) if args.append else []
    for seed in args.seeds:
        for name, strategy, neuro in named:
            t0 = time.perf_counter()
            if strategy in REFERENCES:
                run = run_reference(strategy, lambda: load_model(folder), tokenizer, plan, args.steps,
                                    spec.batch_size, spec.seq_len, seed, say=console.print, overrides=overrides)
                run["strategy"] = name
            else:
                run = run_strategy(name, lambda: load_model(folder), tokenizer, plan, args.steps, spec.batch_size,
                                   spec.seq_len, seed, neuro, say=console.print, strategy=strategy,
                                   lora_lr=args.lora_lr, rank=args.rank, overrides=overrides,
                                   replay_ratio=args.replay_ratio)
            run["command"] = command
            runs.append(run)
            console.print(f"{name} seed {seed}: {time.perf_counter() - t0:.0f}s")
    meta.update({"load_end": os.getloadavg()[0], "wall_s": time.perf_counter() - wall})
    write_result({"meta": meta, "runs": runs}, Path(args.out), console, args.goal_run, args.expert_run, args.facts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
