"""The forgetting benchmark: continual-learning strategies side by side on a sequence of real domains. Issue 7.

    MINIMAC_DATA=../shared/data python benchmarks/forgetting.py --quick     # 2-core CPU, ~10 min, 2 domains
    MINIMAC_DATA=../shared/data python benchmarks/forgetting.py             # the full run (a GPU: see docs below)
    python benchmarks/forgetting.py --corpus default --quick                # pydoc docs -> stdlib code, no download

The seeds claim "zero catastrophic forgetting, < 5% degradation on old tasks" and "updates in seconds". This measures
it. One base model (minimac/base_cache.py: BPE tokenizer + a model pretrained on the base corpus, Gutenberg novels
by default, cached) is copied for every strategy; each copy remembers a sample of the base text (for replay / EWC),
then learns the domains in order (default tinyshakespeare -> scotus -> medquad -> gsm8k -> python_stdlib), each from
the first `--train-chars` of its training split, with the SAME budget per stage for every strategy: `--steps`
optimizer steps of batch_size x seq_len tokens (replay strategies spend part of each batch on replayed rows: same
compute, fewer new tokens). Same base, seed (LoRA init, batch order) and text for all.

After every stage: bits per byte (metrics.bits_per_byte_of_text) on the first `--eval-chars` characters of every
domain's *test* split, seen and unseen, and of WikiText-2 test (a probe never trained on): the R matrix
R[stage][set]. adapter-per-domain routes every test set automatically (the lowest loss on the set's first
--route-windows windows, default 4; 1 = routing.route: the router never gets the set's name), and is also scored
routed by name (an oracle row). Without --strategies, a sixth run adds the best neuro configuration known
(BEST_NEURO, on lora+replay+ewc). Reported per strategy:

    forgetting %   (last - best) / best bits per byte on each earlier set (the base and every domain learned before
                   the last); avg and worst at the end, and worst at any stage (what the goal checks)
    gain fraction  gain on each new domain (bpb before its stage - after) / full fine-tuning's gain; min and mean
    BWT, FWT       metrics.backward_transfer / forward_transfer (bpb; BWT < 0 = forgot, FWT > 0 = earlier helped)
    s / 1k ex.     training wall time per 1,000 training rows (examples), all stages, JIT compiles included; and the
                   steady state (median step time, compiles excluded)
    goal           every earlier set within 2% of its best at every stage AND >= 90% of full FT's gain everywhere

Leaves out: multiple seeds (run twice with --seed), the base pretraining itself (python -m minimac.pretrain).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from minimac import metrics
from minimac.files import atomic_write
from minimac.learner.hooks import Controller

STRATEGIES = ("full", "full+replay", "full+replay+ewc", "lora", "lora+replay", "lora+replay+ewc", "adapter-per-domain")
NEURO = ("autonomous_lr", "neuromodulation", "hippocampus", "sleep")
# The best neuro configuration known: docs/neuro.md's ablation (CPU) found no controller that beats plain
# lora+replay+ewc beyond noise; hippocampus was the only one with lower forgetting and no loss of plasticity.
BEST_NEURO = ("hippocampus",)
ROUTE_WINDOWS = 4  # windows of seq_len tokens the benchmark's router scores (routing.route itself uses 1)
FULL_DOMAINS = ("tinyshakespeare", "scotus", "medquad", "gsm8k", "python_stdlib")
QUICK = {"domains": "tinyshakespeare,scotus", "steps": 24, "train_chars": 60_000, "eval_chars": 12_000,
         "base_chars": 400_000, "tokenizer_chars": 60_000, "preset": "nano", "base_steps": 150}
FULL = {"domains": ",".join(FULL_DOMAINS), "steps": 300, "train_chars": 1_000_000, "eval_chars": 40_000,
        "base_chars": 4_000_000, "tokenizer_chars": 400_000, "preset": "tiny", "base_steps": 3000}
GOAL_FORGET_PCT, GOAL_GAIN = 2.0, 0.9
BY_NAME = " (routed by name)"  # the oracle view of adapter-per-domain: each set through its own domain's adapter


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/forgetting.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"small CPU run: {QUICK}")
    p.add_argument("--corpus", default="registry", help="'registry' (MINIMAC_DATA corpora) or 'default' (docs->code)")
    p.add_argument("--base", default="gutenberg", help="base corpus (registry)")
    p.add_argument("--domains", help="comma-separated domains in order (registry names; default corpus: code)")
    p.add_argument("--probe", default="wikitext2", help="never-trained probe corpus, or 'none'")
    p.add_argument("--strategies", help=f"comma-separated subset of {STRATEGIES} (default: all)")
    p.add_argument("--neuro", help=f"add 'lora+replay+ewc+neuro' with these controllers {NEURO} (comma-separated; "
                   f"'all' = every one, 'none' = no neuro run; default: {','.join(BEST_NEURO)} when --strategies "
                   "is not given, else none)")
    p.add_argument("--route-windows", type=int, default=ROUTE_WINDOWS, help="adapter-per-domain's automatic router "
                   "picks the adapter with the lowest loss on a set's first N windows (1 = minimac.learner.routing.route)")
    for name in ("steps", "train_chars", "eval_chars", "base_chars", "tokenizer_chars", "base_steps"):
        p.add_argument("--" + name.replace("_", "-"), type=int, help=f"default {QUICK[name]} quick, {FULL[name]} full")
    p.add_argument("--base-folder", help="use this base model folder (model + tokenizer/, as base_cache writes) "
                   "instead of the cached base for these settings")
    p.add_argument("--preset", help="model preset of the base (default nano quick, tiny full)")
    p.add_argument("--lora-lr", type=float, help="learning rate of the LoRA strategies (default: strategies.py's); "
                   "runs are then named e.g. 'lora (lr 0.005, r 8)'")
    p.add_argument("--rank", type=int, help="LoRA rank r (default: LearnerConfig's 8); names the runs as --lora-lr")
    p.add_argument("--lora-alpha", type=float, help="LoRA alpha, scaling = alpha / r (default: LearnerConfig's 16); "
                   "names the runs as --lora-lr")
    p.add_argument("--replay-ratio", type=float, help="share of each batch given to replay by the replay strategies "
                   "(default: LearnerConfig's 0.5); their runs are then named e.g. 'full+replay (replay 0.25)'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results", help="folder for forgetting.json / .md / .png")
    p.add_argument("--append", action="store_true", help="keep the other strategies' runs of an earlier "
                   "forgetting.json in --out with the same settings (run strategies in separate processes)")
    p.add_argument("--note", default="", help="added to the machine description in the report (e.g. the GPU)")
    args = p.parse_args(argv)
    strategies_given = args.strategies is not None
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.corpus == "default" and args.domains in (QUICK["domains"], FULL["domains"]):
        args.domains = "code"
    args.strategies = [s.strip() for s in (args.strategies if strategies_given else ",".join(STRATEGIES)).split(",")
                       if s.strip()]
    if bad := [s for s in args.strategies if s not in STRATEGIES]:
        p.error(f"unknown strategy {bad}; choose from {STRATEGIES}")
    if args.neuro is None:
        args.neuro = "none" if strategies_given else ",".join(BEST_NEURO)
    args.neuro = list(NEURO) if args.neuro == "all" else [] if args.neuro == "none" else \
        [s.strip() for s in args.neuro.split(",") if s.strip()]
    if bad := [s for s in args.neuro if s not in NEURO]:
        p.error(f"unknown neuro controller {bad}; choose from {NEURO}")
    if args.replay_ratio is not None and not 0 < args.replay_ratio < 1:
        p.error(f"--replay-ratio must be between 0 and 1, got {args.replay_ratio}")
    if any(v is not None and not v > 0 for v in (args.lora_lr, args.rank, args.lora_alpha)) or args.route_windows < 1:
        p.error(f"--lora-lr, --rank, --lora-alpha and --route-windows must be positive, got {args.lora_lr}, "
                f"{args.rank}, {args.lora_alpha}, {args.route_windows}")
    if args.corpus not in ("registry", "default"):
        p.error(f"--corpus must be 'registry' or 'default', got {args.corpus!r}")
    return args


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


def route(learner, text: str, windows: int = ROUTE_WINDOWS) -> str | None:
    """The route (adapter name, None = bare base) with the lowest loss on the text's first `windows` windows.

    windows=1 is minimac.learner.routing.route (learner.route). Why more: one 64-token window is often a document's caption
    (a SCOTUS case header reads like any other text), and the one-window router sent SCOTUS to the Shakespeare
    adapter. The router sees only those windows' tokens, never the set's name."""
    from minimac.learner import routing
    if windows == 1 or not learner.config.per_domain or not learner.adapters:
        return learner.route(text)
    ids = np.asarray(learner.encode(text)[:windows * learner.config.seq_len + 1])
    losses = {}
    for name in [None, *learner.adapters]:
        with routing.using(learner, name):
            losses[name] = metrics.evaluate(learner.model, ids, learner.config.seq_len, learner.config.batch_size)["loss"]
    return min(losses, key=losses.get)


def evaluate_routed(learner, sets: dict[str, str], windows: int = ROUTE_WINDOWS
                    ) -> tuple[dict[str, float], dict[str, str | None]]:
    """{set: bits per byte}, {set: route}: every set through `route` (automatic, never by the set's name)."""
    from minimac.learner import routing
    scores, routes = {}, {}
    for name, text in sets.items():
        routes[name] = route(learner, text, windows)
        with routing.using(learner, routes[name]):
            scores[name] = metrics.bits_per_byte_of_text(learner.model, learner.tokenizer, text,
                                                         learner.config.seq_len, learner.config.batch_size)
    return scores, routes


def run_strategy(name: str, make_model, tokenizer, plan: dict, steps: int, batch_size: int, seq_len: int,
                 seed: int = 0, neuro: list[str] = (), remember_chars: int = 40_000, say=print,
                 strategy: str | None = None, lora_lr: float | None = None, rank: int | None = None,
                 overrides: dict | None = None, route_windows: int = ROUTE_WINDOWS,
                 replay_ratio: float | None = None) -> dict:
    """One strategy through the whole stream: {"strategy", "R", "sets", "stages", "routes", "train" [per stage]}.

    `name` labels the run; `strategy` (default: name, or lora+replay+ewc with neuro controllers) is the learner's;
    `overrides` are more LearnerConfig fields (e.g. lora_alpha, ewc_lambda) for the LoRA strategies; `replay_ratio`
    (default LearnerConfig's) is for every strategy that replays."""
    from tinygrad import Tensor

    from minimac.learner import ContinualLearner, routing
    from minimac.learner.strategies import LearnerConfig
    Tensor.manual_seed(seed)  # the same LoRA init for every strategy
    model = make_model()
    clock = _StepClock()
    strategy = strategy or ("lora+replay+ewc" if neuro else name)
    lora = LearnerConfig(strategy=strategy).uses_lora  # --lora-lr, --rank and --lora-alpha: LoRA strategies only
    config = LearnerConfig(strategy=strategy, batch_size=batch_size, seq_len=seq_len, seed=seed, fisher_samples=16,
                           learning_rate=lora_lr if lora else None, r=rank or 8, **((overrides or {}) if lora else {}),
                           **({"replay_ratio": replay_ratio} if replay_ratio is not None else {}))
    learner = ContinualLearner(model, tokenizer, config, controllers=[clock, *make_controllers(list(neuro))])
    base, domains = plan["base"], plan["domains"]
    learner.remember("\n\n".join(plan["base_docs"])[:remember_chars], base)
    learner.consolidate(base)
    sets = [base, *domains, *plan["probes"]]
    R, routes, train, oracle = [], [], [], []
    t0 = time.perf_counter()
    for stage in [base, *domains]:
        if stage != base:
            n0 = len(clock.stamps)
            res = learner.learn_from_text(plan["train"][stage], stage, steps=steps)
            learner.consolidate(stage)
            dt = np.diff(clock.stamps[n0:])
            train.append({"stage": stage, "steps": res["steps"], "examples": res["steps"] * batch_size,
                          "new_chunks": res["examples"], "seconds": res["seconds"], "step_seconds": res["step_seconds"],
                          "median_step_s": float(np.median(dt)) if len(dt) else math.nan,
                          "loss_before": res["loss_before"], "loss_after": res["loss_after"]})
        scores, chosen = evaluate_routed(learner, {s: plan["test"][s] for s in sets}, route_windows)
        R.append([scores[s] for s in sets])
        routes.append(chosen)
        if config.per_domain:  # routed by name: a domain's own adapter, the bare base for the base set
            named = {s: s if s in learner.adapters else None for s in [base, *domains]}
            redo = {s: plan["test"][s] for s in named if named[s] != chosen[s]}
            again = {}
            for s, text in redo.items():
                with routing.using(learner, named[s]):
                    again[s] = metrics.bits_per_byte_of_text(learner.model, tokenizer, text, seq_len, batch_size)
            oracle.append([again.get(s, scores[s]) for s in sets])
        say(f"  {name:22s} after {stage:16s} " + " ".join(f"{s}={v:.3f}" for s, v in scores.items()))
    out = {"strategy": name, "R": R, "sets": sets, "stages": [base, *domains], "routes": routes, "train": train,
           "wall_s": time.perf_counter() - t0}
    return {**out, "R_by_name": oracle} if oracle else out


def with_named_routing(runs: list[dict]) -> list[dict]:
    """Each adapter-per-domain run, plus a copy scored with routing by name (R_by_name) right after it."""
    out = []
    for r in runs:
        out.append(r)
        if r.get("R_by_name") and not r["strategy"].endswith(BY_NAME):
            out.append({**{k: v for k, v in r.items() if k != "R_by_name"}, "strategy": r["strategy"] + BY_NAME,
                        "R": r["R_by_name"], "routes": [{s: s if j else None for j, s in enumerate(r["stages"])}]})
    return out


def summarize(R, num_stages: int, full_gains: list[float] | None = None) -> dict:
    """The report's numbers from one R matrix (rows = stages done, first num_stages columns = the stages' sets).

    full_gains[j - 1] is full fine-tuning's gain on domain j (same stage), for the gain fractions."""
    R = np.asarray(R, dtype=np.float64)
    t = R.shape[0] - 1
    gains = [metrics.gain(R, j) for j in range(1, t + 1)]
    fracs = [g / f if f and f > 0 else math.nan for g, f in zip(gains, full_gains or [math.nan] * t)]
    final = metrics.relative_forgetting(R) if t else np.array([])
    any_stage = [metrics.relative_forgetting(R[:k + 1]).max() for k in range(1, t + 1)]
    probes = list(range(num_stages, R.shape[1]))
    return {"forgetting_pct": final.tolist(),
            "avg_forgetting_pct": float(final.mean()) if final.size else math.nan,
            "worst_forgetting_pct": float(final.max()) if final.size else math.nan,
            "worst_forgetting_pct_any_stage": float(max(any_stage)) if any_stage else math.nan,
            "gains": gains, "gain_fraction": fracs,
            "min_gain_fraction": float(np.nanmin(fracs)) if not all(map(math.isnan, fracs)) else math.nan,
            "mean_gain_fraction": float(np.nanmean(fracs)) if not all(map(math.isnan, fracs)) else math.nan,
            "bwt": metrics.backward_transfer(R), "fwt": metrics.forward_transfer(R, num_stages),
            "probe_change_pct": [float(100 * (R[-1, j] - R[0, j]) / R[0, j]) for j in probes]}


def goal_met(s: dict) -> bool:
    """Every earlier set within GOAL_FORGET_PCT of its best at every stage, >= GOAL_GAIN of full FT's gain on each."""
    fr = [f for f in s["gain_fraction"] if not math.isnan(f)]
    return bool(s["worst_forgetting_pct_any_stage"] <= GOAL_FORGET_PCT and fr and min(fr) >= GOAL_GAIN
                and len(fr) == len(s["gain_fraction"]))


def add_summaries(runs: list[dict]) -> None:
    """Fill run["summary"] and run["timing"] for every run, gains relative to the 'full' run (if there is one)."""
    full = next((r for r in runs if r["strategy"] == "full"), None)
    for r in runs:
        full_gains = summarize(full["R"], len(full["stages"]))["gains"] if full else None
        s = summarize(r["R"], len(r["stages"]), full_gains)
        s["goal_met"] = goal_met(s)
        r["summary"] = s
        ex = sum(t["examples"] for t in r["train"])
        r["timing"] = {"s_per_1k_examples": 1000 * sum(t["step_seconds"] for t in r["train"]) / max(ex, 1),
                       "steady_s_per_1k_examples": 1000 * float(np.nanmedian([t["median_step_s"] for t in r["train"]]))
                       / (ex / max(sum(t["steps"] for t in r["train"]), 1)),
                       "mean_stage_s": float(np.mean([t["seconds"] for t in r["train"]]))}


def _fmt(v: float, f: str = "{:.2f}") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f.format(v)


COLUMNS = ("strategy", "avg forget %", "worst forget %", "worst % any stage", "gain / full (min)", "gain / full (mean)",
           "BWT", "FWT", "probe %", "s / 1k ex.", "steady s / 1k", "s / stage", "goal")


def rows(runs: list[dict]) -> list[list[str]]:
    out = []
    for r in runs:
        s, t = r["summary"], r["timing"]
        out.append([r["strategy"], _fmt(s["avg_forgetting_pct"]), _fmt(s["worst_forgetting_pct"]),
                    _fmt(s["worst_forgetting_pct_any_stage"]), _fmt(s["min_gain_fraction"]),
                    _fmt(s["mean_gain_fraction"]), _fmt(s["bwt"], "{:+.3f}"), _fmt(s["fwt"], "{:+.3f}"),
                    ", ".join(_fmt(p, "{:+.1f}") for p in s["probe_change_pct"]) or "-",
                    _fmt(t["s_per_1k_examples"], "{:.0f}"), _fmt(t["steady_s_per_1k_examples"], "{:.0f}"),
                    _fmt(t["mean_stage_s"], "{:.0f}"), "yes" if s["goal_met"] else "no"])
    return out


def verdict(runs: list[dict]) -> str:
    met = [r["strategy"] for r in runs if r["summary"]["goal_met"]]
    if met:
        return f"Goal met by: {', '.join(met)} (earlier sets within {GOAL_FORGET_PCT}% of best at every stage, " \
               f">= {GOAL_GAIN:.0%} of full fine-tuning's gain on every new domain)."
    why = []
    for r in runs:
        s = r["summary"]
        if r["strategy"] == "full":
            continue
        why.append(f"{r['strategy']}: worst forgetting {_fmt(s['worst_forgetting_pct_any_stage'])}% "
                   f"(limit {GOAL_FORGET_PCT}%), min gain fraction {_fmt(s['min_gain_fraction'])} (need {GOAL_GAIN})")
    return "Goal NOT met by any strategy. " + "; ".join(why) + "."


def markdown(result: dict) -> str:
    runs, m = result["runs"], result["meta"]
    load = (f"Load average (1 min) at start / end: {m['load_start']:.2f} / {m['load_end']:.2f} "
            "(a shared CPU makes timings noisy)  ")
    stream = f"Stream: {m['base']} (base) -> {' -> '.join(m['domains'])}; probes: {', '.join(m['probes']) or 'none'}  "
    budget = (f"Budget per stage, every strategy: {m['steps']} steps x {m['batch_size']} rows x {m['seq_len']} tokens "
              f"= {m['tokens_per_stage']:,} tokens; training text: the first {m['train_chars']:,} characters of each "
              f"train split; evaluation: the first {m['eval_chars']:,} characters of each test split; base model: "
              f"{m['base_folder']}; adapter-per-domain's automatic router scores the first "
              f"{m.get('route_windows', 1)} window(s) of {m['seq_len']} tokens of each set  ")
    legend = ("Forgetting % = (last - best) / best bits per byte, over the base and every domain learned before the "
              "last (avg / worst at the end; worst at any stage). Gain / full = gain on each new domain (bpb before "
              "its stage - after) over full fine-tuning's. BWT < 0 = forgot, FWT > 0 = earlier domains helped (bpb). "
              "Probe % = change of the never-trained probe's bpb from the base. s / 1k ex. = training seconds per "
              "1,000 training rows (compiles included); steady = from the median step time (compiles excluded).")
    commands = list(dict.fromkeys(r.get("command", m["command"]) for r in runs))  # --append: several made the runs
    said = [f"Command: `{m['command']}`  "] if commands == [m["command"]] else \
        ["Commands (each run names its own in forgetting.json):  "] + [f"`{c}`  " for c in commands]
    lines = ["# Forgetting benchmark", "", *said, f"Machine: {m['machine']}  ", load, stream, budget,
             f"Total wall time: {m['wall_s']:.0f} s" + (" (the last command)" if len(commands) > 1 else ""), "",
             "## Summary", "", legend, "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(runs)]
    lines += ["", "**" + verdict(runs) + "**", "", ("What the numbers mean, and what would close the gap: "
              "docs/forgetting.md."), "", "## R matrices (bits per byte, lower is better)", ""]
    for r in runs:
        lines += [f"### {r['strategy']}", "", "| after stage | " + " | ".join(r["sets"]) + " |",
                  "|" + "---|" * (len(r["sets"]) + 1)]
        for st, row in zip(r["stages"], r["R"]):
            lines.append(f"| {st} | " + " | ".join(f"{v:.4f}" for v in row) + " |")
        if r["strategy"].startswith("adapter-per-domain") and not r["strategy"].endswith(BY_NAME):
            lines += ["", "Automatic routes chosen (per stage, set -> adapter; None = bare base): " +
                      "; ".join(f"{st}: " + ", ".join(f"{k}->{v}" for k, v in rt.items())
                                for st, rt in zip(r["stages"], r["routes"]))]
        lines.append("")
    return "\n".join(lines)


def terminal_table(runs: list[dict]):
    from rich.table import Table
    table = Table(title="forgetting benchmark (lower forgetting better; gain fraction vs full fine-tuning)")
    for c in COLUMNS:
        table.add_column(c, justify="left" if c == "strategy" else "right")
    for row in rows(runs):
        table.add_row(*row)
    return table


def plot(result: dict, path: Path) -> bool:
    """Each set's bits per byte across stages, one panel per strategy (PNG). False if matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    runs = result["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 3.6), sharey=True, squeeze=False)
    for ax, r in zip(axes[0], runs):
        R = np.asarray(r["R"])
        for j, s in enumerate(r["sets"]):
            ax.plot(range(len(R)), R[:, j], marker="o", label=s, linestyle="--" if j >= len(r["stages"]) else "-")
        ax.set_xticks(range(len(R)), r["stages"], rotation=30, fontsize=7)
        ax.set_title(r["strategy"], fontsize=9)
    axes[0][0].set_ylabel("bits per byte (test)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def earlier_runs(path: Path, plan: dict, args: argparse.Namespace, base_folder: str, names: list[str]) -> list:
    """The runs of an earlier result file made with the same base, stream and budget, minus those run again now."""
    if not path.is_file():
        return []
    old = json.loads(path.read_text())
    m = old["meta"]
    same = (m["base_folder"], m["domains"], m["probes"], m["steps"], m["train_chars"], m["eval_chars"], m["seed"]) == \
        (base_folder, plan["domains"], plan["probes"], args.steps, args.train_chars, args.eval_chars, args.seed)
    if not same:
        raise ValueError(f"--append: {path} was made with other settings (base {m['base_folder']}, domains "
                         f"{m['domains']}, steps {m['steps']}); use another --out or drop --append")
    return [r for r in old["runs"] if r["strategy"] not in names]


def main(argv: list[str] | None = None) -> int:
    import minimac.fast
    minimac.fast.install()  # the same numbers, faster; MINIMAC_PLAIN=1 keeps the plain path
    from rich.console import Console
    args = parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    from tinygrad import Device

    from minimac.base_cache import BaseSpec, cached_base
    from minimac.checkpoint import load as load_model
    from minimac.learner.strategies import LearnerConfig
    from minimac.tokenizer import Tokenizer
    load_start, wall = os.getloadavg()[0], time.perf_counter()
    plan = load_plan(args)
    spec = BaseSpec(preset=args.preset, base_steps=args.base_steps)
    if args.base_folder:
        folder, built = Path(args.base_folder).expanduser(), False
        if not (folder / "tokenizer").is_dir():
            raise FileNotFoundError(f"--base-folder '{folder}' has no tokenizer/ folder: not a base model folder")
    else:
        folder, built = cached_base(spec, plan["base_docs"], list(plan["tok_docs"].values()), say=console.print)
    console.print(f"base model {folder} ({'built' if built else 'cached'}); stream {plan['base']} -> "
                  f"{' -> '.join(plan['domains'])}; device {Device.DEFAULT}; load {load_start:.2f}")
    tokenizer = Tokenizer.load(folder / "tokenizer")
    strategies = list(args.strategies) + (["lora+replay+ewc"] if args.neuro else [])
    tag = "" if args.lora_lr is None and args.rank is None and args.lora_alpha is None else \
        f" (lr {args.lora_lr or 'default'}, r {args.rank or 8}" + (f", alpha {args.lora_alpha:g})" if args.lora_alpha
                                                                    else ")")
    overrides = {"lora_alpha": args.lora_alpha} if args.lora_alpha else {}
    # run names: the LoRA knobs tag the LoRA strategies, --replay-ratio the replaying ones (strategies.py decides)
    configs = [LearnerConfig(strategy=s) for s in strategies]
    names = [s + (tag if c.uses_lora else "") for s, c in zip(args.strategies, configs)]
    names += ["lora+replay+ewc+neuro(" + ",".join(args.neuro) + ")" + tag] if args.neuro else []
    if args.replay_ratio is not None:
        names = [n + (f" (replay {args.replay_ratio:g})" if c.uses_replay else "") for n, c in zip(names, configs)]
    runs = earlier_runs(Path(args.out) / "forgetting.json", plan, args, folder.name, names) if args.append else []
    command = "python benchmarks/forgetting.py " + " ".join(sys.argv[1:] if argv is None else argv)
    command = ("MINIMAC_DATA=... " if os.environ.get("MINIMAC_DATA") else "") + command.strip()
    for name, strategy in zip(names, strategies):
        runs.append(run_strategy(name, lambda: load_model(folder), tokenizer, plan, args.steps, spec.batch_size,
                                 spec.seq_len, args.seed, args.neuro if "neuro" in name else (), say=console.print,
                                 strategy=strategy, lora_lr=args.lora_lr, rank=args.rank, overrides=overrides,
                                 route_windows=args.route_windows, replay_ratio=args.replay_ratio))
        runs[-1]["command"] = command
        console.print(f"{name}: {runs[-1]['wall_s']:.0f}s")
    order = {n: i for i, n in enumerate(dict.fromkeys([*STRATEGIES, *names]))}
    runs = [r for r in runs if not r["strategy"].endswith(BY_NAME)]
    runs.sort(key=lambda r: order.get(r["strategy"], len(order)))
    runs = with_named_routing(runs)
    add_summaries(runs)
    meta = {"command": command,
            "machine": f"{platform.platform()}, {os.cpu_count()} CPU cores, tinygrad device {Device.DEFAULT}",
            "load_start": load_start, "load_end": os.getloadavg()[0], "wall_s": time.perf_counter() - wall,
            "base": plan["base"], "domains": plan["domains"], "probes": plan["probes"], "steps": args.steps,
            "batch_size": spec.batch_size, "seq_len": spec.seq_len, "preset": args.preset,
            "tokens_per_stage": args.steps * spec.batch_size * spec.seq_len, "train_chars": args.train_chars,
            "eval_chars": args.eval_chars, "base_folder": folder.name, "base_steps": args.base_steps,
            "seed": args.seed, "quick": args.quick, "route_windows": args.route_windows, "goal": {"forget_pct": GOAL_FORGET_PCT, "gain": GOAL_GAIN}}
    result = {"meta": meta, "runs": runs}
    console.print(terminal_table(runs))
    console.print(verdict(runs))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "forgetting.json", json.dumps(result, indent=1))
    atomic_write(out / "forgetting.md", markdown(result))
    wrote = plot(result, out / "forgetting.png")
    console.print(f"wrote {out / 'forgetting.json'}, {out / 'forgetting.md'}"
                  + (f", {out / 'forgetting.png'}" if wrote else " (no matplotlib: no plot)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
