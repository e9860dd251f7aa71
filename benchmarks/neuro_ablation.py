"""Ablation of the brain-inspired controllers (minimac/neuro/): each one on vs off, on a real domain sequence.

    MINIMAC_DATA=../shared/data python benchmarks/neuro_ablation.py                  # gutenberg -> shakespeare -> scotus
    python benchmarks/neuro_ablation.py --corpus default                              # docs -> code, no download
    python benchmarks/neuro_ablation.py --seeds 0,1 --write-docs                      # the table in docs/neuro.md

Every variant starts from the same cached base model (minimac/base_cache.py: BPE tokenizer + a nano model
pretrained on the first corpus) with the same seed, data and step budget: the learner ("lora+replay+ewc") remembers a
sample of the base domain, then learns each later domain as `--texts` consecutive texts of `--steps` steps each,
and the R matrix (bits per byte of every domain's held-out text after every stage) is recorded. Reported per
variant: new-domain bits per byte (mean over the learned domains of R[stage j][domain j], right after learning it:
plasticity), average forgetting (metrics.average_forgetting at the end: last minus best, over the base and every
domain learned before the last; > 0 = forgot), BWT, and wall time of the learning part (evaluations included).
A short warm-up run first compiles the shared training and evaluation kernels, so the baseline does not pay them;
each controller's own kernels (probe forwards, encodings, dreams) are compiled inside its own variant, as a user
would pay them. With several seeds the table shows mean and spread (max - min), to tell effects from noise.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tinygrad import Device, Tensor

from minimac import metrics
from minimac.base_cache import BaseSpec, cached_base
from minimac.checkpoint import load as load_model
from minimac.files import atomic_write
from minimac.learner import ContinualLearner
from minimac.learner.strategies import TARGET_MODULES, LearnerConfig
from minimac.neuro import AutonomousLR, Hippocampus, Homeostasis, Neuromodulation, Sleep, use_dendritic_ffn
from minimac.tokenizer import Tokenizer

VARIANTS = ("baseline", "autonomous_lr", "neuromodulation", "homeostasis", "dendritic", "hippocampus", "sleep", "all",
            "ref_lr_half", "ref_more_replay")
# the two references are plain baselines with a fixed knob: half the learning rate, or replay ratio 0.8 and 3x the EWC
# strength. A controller that only moves along the plasticity/stability trade-off should be compared with them.
REFERENCE = {"ref_lr_half": lambda c: {"learning_rate": c.lr / 2},
             "ref_more_replay": lambda c: {"replay_ratio": 0.8, "ewc_lambda": 3 * c.ewc_lambda}}
DOCS_START, DOCS_END = "<!-- ablation:start -->", "<!-- ablation:end -->"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default="gutenberg,tinyshakespeare,scotus",
                   help="'default' (docs -> code) or registry names, base first, comma-separated")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (each variant runs once per seed)")
    p.add_argument("--steps", type=int, default=12, help="optimizer steps per text")
    p.add_argument("--texts", type=int, default=3, help="texts per domain (the stream of each domain)")
    p.add_argument("--train-chars", type=int, default=60_000, help="characters of each domain's training text")
    p.add_argument("--eval-chars", type=int, default=6_000, help="characters of each held-out set")
    p.add_argument("--base-chars", type=int, default=400_000, help="characters of base text to pretrain on")
    p.add_argument("--base-steps", type=int, default=150, help="pretraining steps of the cached base")
    p.add_argument("--no-warmup", action="store_true", help="skip the compile warm-up (the first variant pays it)")
    p.add_argument("--json", help="write every run's numbers here")
    p.add_argument("--write-docs", action="store_true", help="replace the ablation table in docs/neuro.md")
    return p.parse_args(argv)


def load_plan(corpus: str, train_chars: int, eval_chars: int, base_chars: int) -> dict:
    from minimac.data import DEFAULT_DOMAINS, load_corpus
    names = list(DEFAULT_DOMAINS) if corpus == "default" else [c.strip() for c in corpus.split(",") if c.strip()]
    if len(names) < 2:
        raise ValueError(f"--corpus needs a base and at least one domain, got {names}")

    def docs(name: str, split: str) -> list[str]:
        return load_corpus("default", split, domain=name) if corpus == "default" else load_corpus(name, split)

    def head(ds: list[str], n: int) -> list[str]:   # the first n characters, whole documents (the last one cut)
        out, left = [], n
        for d in ds:
            if left <= 0:
                break
            out.append(d[:left])
            left -= len(out[-1])
        return out

    return {"base": names[0], "stream": names[1:],
            "train": {n: head(docs(n, "train"), base_chars if i == 0 else train_chars) for i, n in enumerate(names)},
            "eval": {n: "\n\n".join(docs(n, "valid"))[:eval_chars] for n in names}}


def controllers_for(variant: str, model) -> tuple[list, tuple[str, ...]]:
    """(controllers, LoRA target modules) of a variant; model changes (dendritic, homeostasis) happen here."""
    if variant == "dendritic":
        use_dendritic_ffn(model)
        return [], (*TARGET_MODULES, "context_gate")     # LoRA on the gate: else it stays frozen at "all open"
    make = {"autonomous_lr": lambda: [AutonomousLR()], "neuromodulation": lambda: [Neuromodulation()],
            "homeostasis": lambda: [Homeostasis(model)], "hippocampus": lambda: [Hippocampus()],
            "sleep": lambda: [Sleep()], "baseline": list, "ref_lr_half": list, "ref_more_replay": list,
            "all": lambda: [Hippocampus(), AutonomousLR(), Neuromodulation(), Homeostasis(model), Sleep()]}
    return make[variant](), TARGET_MODULES


def run_variant(variant: str, seed: int, folder: Path, plan: dict, args: argparse.Namespace, spec: BaseSpec) -> dict:
    Tensor.manual_seed(seed)                          # the same LoRA init in every variant of a seed
    model = load_model(folder)
    ctls, targets = controllers_for(variant, model)
    config = LearnerConfig(batch_size=spec.batch_size, seq_len=spec.seq_len, seed=seed, fisher_samples=16,
                           target_modules=targets)
    if variant in REFERENCE:
        config = LearnerConfig(**{**config.to_dict(), **REFERENCE[variant](config)})
    learner = ContinualLearner(model, Tokenizer.load(folder / "tokenizer"), config, controllers=ctls)
    base = plan["base"]
    learner.remember("\n\n".join(plan["train"][base])[:40_000], base)
    learner.consolidate(base)
    items = []
    for d in plan["stream"]:
        text = "\n\n".join(plan["train"][d])
        cut = len(text) // args.texts
        items += [(d, text[i * cut:(i + 1) * cut]) for i in range(args.texts)]
    t0 = time.perf_counter()
    learner.learn_stream(items, plan["eval"], base=base, steps=args.steps)
    wall = time.perf_counter() - t0
    R = learner.r_matrix.values
    readouts = {c.name: c.readout() for c in ctls if hasattr(c, "readout")}
    return {"variant": variant, "seed": seed, "R": R.tolist(), "sets": learner.r_matrix.sets,
            "new_domain_bpb": float(np.mean([R[j, j] for j in range(1, R.shape[0])])),
            "avg_forgetting": metrics.average_forgetting(R), "bwt": metrics.backward_transfer(R),
            "final_mean_bpb": float(R[-1].mean()), "wall_s": wall, "readouts": readouts}


def table(runs: list[dict]) -> str:
    base = {r["seed"]: r for r in runs if r["variant"] == "baseline"}
    lines = ["| variant | new-domain bpb | avg forgetting (bpb) | BWT | final mean bpb | wall s |",
             "|---|---|---|---|---|---|"]
    for v in dict.fromkeys(r["variant"] for r in runs):
        rs = [r for r in runs if r["variant"] == v]

        def cell(key: str, fmt: str = "{:.4f}", rs=rs, v=v) -> str:
            vals = np.array([r[key] for r in rs])
            delta = ""
            if v != "baseline" and all(r["seed"] in base for r in rs) and key != "wall_s":
                d = np.mean([r[key] - base[r["seed"]][key] for r in rs])
                delta = f" ({d:+.4f})"
            spread = f" ±{(vals.max() - vals.min()) / 2:.4f}" if len(vals) > 1 and key != "wall_s" else ""
            return fmt.format(vals.mean()) + spread + delta

        lines.append(f"| {v} | {cell('new_domain_bpb')} | {cell('avg_forgetting')} | {cell('bwt')} | "
                     f"{cell('final_mean_bpb')} | {cell('wall_s', '{:.0f}')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    import minimac.fast
    minimac.fast.install()  # the same numbers, faster; MINIMAC_FAST=0 keeps the plain path
    args = parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}; choose from {VARIANTS}")
    seeds = [int(s) for s in args.seeds.split(",")]
    plan = load_plan(args.corpus, args.train_chars, args.eval_chars, args.base_chars)
    spec = BaseSpec(base_steps=args.base_steps)
    t0 = time.perf_counter()
    folder, built = cached_base(spec, plan["train"][plan["base"]], [plan["train"][d] for d in plan["stream"]])
    print(f"base model {folder} ({'built' if built else 'cached'}, {time.perf_counter() - t0:.0f}s); "
          f"stream {plan['base']} -> {' -> '.join(plan['stream'])}; device {Device.DEFAULT}", flush=True)
    if not args.no_warmup:
        warm = argparse.Namespace(**{**vars(args), "steps": 3, "texts": 1})
        t0 = time.perf_counter()
        run_variant("baseline", 12345, folder, plan, warm, spec)      # compile the shared kernels once
        print(f"warm-up (compiling the training and evaluation kernels): {time.perf_counter() - t0:.0f}s", flush=True)
    runs = []
    for seed in seeds:
        for v in variants:
            runs.append(run_variant(v, seed, folder, plan, args, spec))
            r = runs[-1]
            print(f"{v:16s} seed {seed}: new-domain {r['new_domain_bpb']:.4f} bpb, forgetting "
                  f"{r['avg_forgetting']:+.4f}, BWT {r['bwt']:+.4f}, {r['wall_s']:.0f}s", flush=True)
            if args.json:   # after every run: a run cut short still leaves its finished variants
                Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs}, indent=2))
    command = "python benchmarks/neuro_ablation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    machine = f"{platform.platform()}, {os.cpu_count()} CPU cores, tinygrad device {Device.DEFAULT}"
    md = (f"Command: `{'MINIMAC_DATA=... ' if os.environ.get('MINIMAC_DATA') else ''}{command.strip()}`  \n"
          f"Machine: {machine}  \nStream: {plan['base']} (base) -> {' -> '.join(plan['stream'])}; "
          f"{args.texts} texts x {args.steps} steps per domain; seeds {seeds}. Lower bpb is better; "
          "(±) is half the spread over seeds, (+/-x) the mean difference from the baseline of the same seed.\n\n"
          + table(runs))
    print("\n" + md)
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "machine": machine, "runs": runs}, indent=2))
    if args.write_docs:
        path = Path(__file__).resolve().parent.parent / "docs" / "neuro.md"
        text = path.read_text()
        if DOCS_START not in text or DOCS_END not in text:
            sys.exit(f"{path} has no {DOCS_START} ... {DOCS_END} block to replace")
        head, rest = text.split(DOCS_START, 1)
        atomic_write(path, head + DOCS_START + "\n" + md + "\n" + DOCS_END + rest.split(DOCS_END, 1)[1])
        print(f"wrote the table into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
