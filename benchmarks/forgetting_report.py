"""The forgetting benchmark's report: numbers from R matrices, the references, seeds pooled, tables and a summary.

    summarize(R, num_stages, full_gains, base_row, expert)   one run's forgetting, gains, BWT / FWT
    add_summaries(runs)       every run's summary, against the full and expert runs of the same seed
    aggregate(runs)           one row per strategy: mean and spread (sample std) over seeds, goal on the worst seed
    markdown(result)          the report (results/forgetting.md); learning_goal(result) the summary JSON

Gains: "gain / full" is today's column (the gain on each new domain at its stage, bpb before - after, over
sequential full fine-tuning's); "gain / expert" is the issue's goal: (base bpb - bpb after the domain's stage) over
(base bpb - the expert's bpb), the expert being full fine-tuning of the same base on that domain alone, same text
and steps. The joint run (every domain mixed, the same total steps) is the upper bound of the literature.

Leaves out: running anything (benchmarks/forgetting.py).
"""
from __future__ import annotations

import math

import numpy as np

from minimac import metrics

GOAL_FORGET_PCT, GOAL_GAIN, GOAL_PARAMS_PCT = 1.0, 0.9, 15.0
GOAL_SEEDS = 3  # the full mode's goal is judged on at least three seeds
BY_NAME = " (routed by name)"  # the oracle view of adapter-per-domain: each set through its own domain's adapter
REFERENCES = ("expert", "joint")


def summarize(R, num_stages: int, full_gains: list[float] | None = None, expert: list[float] | None = None) -> dict:
    """The report's numbers from one R matrix (rows = stages done, first num_stages columns = the stages' sets).

    full_gains[j - 1]: sequential full fine-tuning's gain on domain j; expert[j - 1]: the expert's final bpb on it."""
    R = np.asarray(R, dtype=np.float64)
    t = R.shape[0] - 1
    gains = [metrics.gain(R, j) for j in range(1, t + 1)]
    fracs = [g / f if f and f > 0 else math.nan for g, f in zip(gains, full_gains or [math.nan] * t)]
    vs_expert = [(R[0, j] - R[j, j]) / (R[0, j] - e) if e is not None and R[0, j] - e > 0 else math.nan
                 for j, e in zip(range(1, t + 1), expert or [None] * t)]
    final = metrics.relative_forgetting(R) if t else np.array([])
    any_stage = [metrics.relative_forgetting(R[:k + 1]).max() for k in range(1, t + 1)]
    probes = list(range(num_stages, R.shape[1]))
    return {"forgetting_pct": final.tolist(),
            "avg_forgetting_pct": float(final.mean()) if final.size else math.nan,
            "worst_forgetting_pct": float(final.max()) if final.size else math.nan,
            "worst_forgetting_pct_any_stage": float(max(any_stage)) if any_stage else math.nan,
            "gains": gains, "gain_fraction": fracs, "min_gain_fraction": _nanmin(fracs),
            "mean_gain_fraction": _nanmean(fracs), "gain_vs_expert": vs_expert,
            "min_gain_vs_expert": _nanmin(vs_expert), "mean_gain_vs_expert": _nanmean(vs_expert),
            "final_bpb": R[-1, 1:num_stages].tolist(),
            "bwt": metrics.backward_transfer(R), "fwt": metrics.forward_transfer(R, num_stages),
            "probe_change_pct": [float(100 * (R[-1, j] - R[0, j]) / R[0, j]) for j in probes]}


def _nanmin(v: list[float]) -> float:
    return float(np.nanmin(v)) if v and not all(map(math.isnan, v)) else math.nan


def _nanmean(v: list[float]) -> float:
    return float(np.nanmean(v)) if v and not all(map(math.isnan, v)) else math.nan


def goal_met(s: dict) -> bool:
    """Every earlier set within GOAL_FORGET_PCT of its best at every stage, >= GOAL_GAIN of the expert's gain on
    every domain, and at most GOAL_PARAMS_PCT of the base's parameters added per domain (when known)."""
    fr = [f for f in s.get("gain_vs_expert", []) if not math.isnan(f)]
    params_ok = s.get("params_per_domain_pct") is None or s["params_per_domain_pct"] <= GOAL_PARAMS_PCT
    return bool(s["worst_forgetting_pct_any_stage"] <= GOAL_FORGET_PCT and fr and min(fr) >= GOAL_GAIN
                and len(fr) == len(s["gain_vs_expert"]) and params_ok)


def _reference(runs: list[dict], kind: str, seed, name: str | None = None) -> dict | None:
    """The reference run of `kind` for `seed`: the one named `name` (default: exactly `kind`; variants are named
    "expert (...)") first, of the same seed if there is one."""
    pool = [r for r in runs if r.get("kind") == kind]
    pool = [r for r in pool if r["strategy"] == (name or kind)] or pool
    return next((r for r in pool if r.get("seed") == seed), pool[0] if pool else None)


def add_summaries(runs: list[dict], expert: str | None = None) -> None:
    """Fill run["summary"] and run["timing"] for every strategy run, against 'full' and the expert (the run named
    `expert`, default "expert") of its seed."""
    name = expert
    for r in runs:
        if r.get("kind") in REFERENCES:
            continue
        full = next((f for f in runs if f["strategy"] == "full" and f.get("seed") == r.get("seed")), None)
        expert = _reference(runs, "expert", r.get("seed"), name)
        full_gains = summarize(full["R"], len(full["stages"]))["gains"] if full else None
        s = summarize(r["R"], len(r["stages"]), full_gains,
                      [expert["final"][d] for d in r["stages"][1:]] if expert else None)
        s["params_per_domain"], s["params_per_domain_pct"] = r.get("params_per_domain"), r.get("params_per_domain_pct")
        s["goal_met"] = goal_met(s)
        r["summary"] = s
        ex = sum(t["examples"] for t in r["train"])
        r["timing"] = {"s_per_1k_examples": 1000 * sum(t["step_seconds"] for t in r["train"]) / max(ex, 1),
                       "steady_s_per_1k_examples": 1000 * float(np.nanmedian([t["median_step_s"] for t in r["train"]]))
                       / (ex / max(sum(t["steps"] for t in r["train"]), 1)),
                       "mean_stage_s": float(np.mean([t["seconds"] for t in r["train"]]))}


SCALARS = ("avg_forgetting_pct", "worst_forgetting_pct", "worst_forgetting_pct_any_stage", "min_gain_fraction",
           "mean_gain_fraction", "min_gain_vs_expert", "mean_gain_vs_expert", "bwt", "fwt")


def aggregate(runs: list[dict]) -> list[dict]:
    """One entry per strategy name, in the runs' order: {"strategy", "seeds", "mean" {k}, "std" {k}, "worst" {k},
    "timing", "probe", "params_pct", "goal_met"}. The goal is judged on the worst seed (max forgetting, min gain)."""
    out = []
    for name in dict.fromkeys(r["strategy"] for r in runs if "summary" in r):
        group = [r for r in runs if r["strategy"] == name and "summary" in r]
        vals = {k: np.array([g["summary"][k] for g in group], dtype=np.float64) for k in SCALARS}
        worst = {"worst_forgetting_pct_any_stage": float(np.nanmax(vals["worst_forgetting_pct_any_stage"])),
                 "gain_vs_expert": [float(np.nanmin(c)) if not np.isnan(c).all() else math.nan
                                    for c in np.array([g["summary"]["gain_vs_expert"] for g in group]).T],
                 "params_per_domain_pct": group[0]["summary"]["params_per_domain_pct"]}
        out.append({"strategy": name, "seeds": [g.get("seed", 0) for g in group],
                    "mean": {k: _nanmean(list(v)) for k, v in vals.items()},
                    "std": {k: float(np.nanstd(v, ddof=1)) if np.isfinite(v).sum() > 1 else math.nan
                            for k, v in vals.items()}, "worst": worst,
                    "probe": np.mean([g["summary"]["probe_change_pct"] for g in group], axis=0).tolist(),
                    "timing": {k: float(np.mean([g["timing"][k] for g in group])) for k in group[0]["timing"]},
                    "params_pct": group[0]["summary"]["params_per_domain_pct"],
                    "routing_accuracy": _nanmean([g["confusion"]["accuracy"] for g in group if g.get("confusion")]),
                    "goal_met": goal_met(worst)})
    return out


def _fmt(v, f: str = "{:.2f}") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f.format(v)


def _pm(a: dict, k: str, f: str = "{:.2f}") -> str:
    m, s = a["mean"][k], a["std"][k]
    return _fmt(m, f) + ("" if math.isnan(s) else " ± " + _fmt(s, f.replace("+", "")))


COLUMNS = ("strategy", "seeds", "avg forget %", "worst forget %", "worst % any stage", "gain / full (min)",
           "gain / full (mean)", "gain / expert (min)", "gain / expert (mean)", "BWT", "FWT", "probe %",
           "s / 1k ex.", "steady s / 1k", "s / stage", "params / domain %", "goal")


def rows(agg: list[dict]) -> list[list[str]]:
    out = []
    for a in agg:
        t = a["timing"]
        out.append([a["strategy"], str(len(a["seeds"])), _pm(a, "avg_forgetting_pct"), _pm(a, "worst_forgetting_pct"),
                    _pm(a, "worst_forgetting_pct_any_stage"), _pm(a, "min_gain_fraction"),
                    _pm(a, "mean_gain_fraction"), _pm(a, "min_gain_vs_expert"), _pm(a, "mean_gain_vs_expert"),
                    _pm(a, "bwt", "{:+.3f}"), _pm(a, "fwt", "{:+.3f}"),
                    ", ".join(_fmt(p, "{:+.1f}") for p in a["probe"]) or "-",
                    _fmt(t["s_per_1k_examples"], "{:.0f}"), _fmt(t["steady_s_per_1k_examples"], "{:.0f}"),
                    _fmt(t["mean_stage_s"], "{:.0f}"), _fmt(a["params_pct"], "{:.1f}") +
                    (" (over 15%)" if (a["params_pct"] or 0) > GOAL_PARAMS_PCT else ""),
                    "yes" if a["goal_met"] else "no"])
    return out


def final_table(result: dict) -> list[str]:
    """Markdown: every strategy's final bpb on each domain (mean ± spread over seeds) beside the expert and joint."""
    runs, domains = result["runs"], result["meta"]["domains"]
    names = list(dict.fromkeys(r["strategy"] for r in runs))
    lines = ["| run | seeds | " + " | ".join(domains) + " |", "|" + "---|" * (len(domains) + 2)]
    for name in names:
        group = [r for r in runs if r["strategy"] == name]
        vals = np.array([[r["final"][d] for d in domains] if r.get("kind") in REFERENCES
                         else r["summary"]["final_bpb"] for r in group])
        cells = [_fmt(float(m), "{:.3f}") + ("" if len(group) < 2 else f" ± {float(s):.3f}")
                 for m, s in zip(vals.mean(axis=0), vals.std(axis=0, ddof=1) if len(group) > 1 else vals[0])]
        lines.append(f"| {name} | {len(group)} | " + " | ".join(cells) + " |")
    return lines


def confusion_table(run: dict) -> list[str]:
    c = run["confusion"]
    cols = list(c["labels"])
    head = (f"Routing of held-out {c['window_tokens']}-token windows ({run['strategy']}, seed {run.get('seed', 0)}): "
            f"accuracy {c['accuracy']:.1%} ({c['correct']}/{c['total']}), margin {c.get('margin', 0):g} nats/token; "
            f"rows = true set, columns = route (base = bare base); routing costs {c['route_ms']:.0f} ms per window, "
            f"a switch {c['switch_ms']:.2f} ms")
    lines = [head, "", "| set \\ route | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for s, row in c["matrix"].items():
        lines.append(f"| {s} | " + " | ".join(str(row.get(k, 0)) for k in cols) + " |")
    return lines


def verdict(agg: list[dict]) -> str:
    met = [a["strategy"] for a in agg if a["goal_met"]]
    if met:
        return f"Goal met by: {', '.join(met)} (every earlier set within {GOAL_FORGET_PCT}% of its best at every " \
               f"stage, >= {GOAL_GAIN:.0%} of the expert's gain on every domain, on every seed)."
    why = [f"{a['strategy']}: worst forgetting {_fmt(a['worst']['worst_forgetting_pct_any_stage'])}% (limit "
           f"{GOAL_FORGET_PCT}%), min gain / expert {_fmt(_nanmin(a['worst']['gain_vs_expert']))} (need {GOAL_GAIN})"
           for a in agg if a["strategy"] != "full"]
    return "Goal NOT met by any strategy. " + "; ".join(why) + "."


def learning_goal(result: dict, strategy: str) -> dict | None:
    """The summary of results/learning_goal.json for `strategy` (the library's default), or None if not run."""
    a = next((a for a in aggregate(result["runs"]) if a["strategy"] == strategy), None)
    if a is None:
        return None
    m = result["meta"]
    commands = list(dict.fromkeys(r.get("command", m["command"]) for r in result["runs"] if r["strategy"] == strategy))
    commands += [m["command"]] if "--merge" in m["command"] else []    # the runs' own commands, then the pooling
    return {"strategy": strategy, "seeds": a["seeds"], "domains": m["domains"],
            "worst_forgetting_pct": a["worst"]["worst_forgetting_pct_any_stage"],
            "min_gain_vs_expert": _nanmin(a["worst"]["gain_vs_expert"]),
            "params_per_domain_pct": a["params_pct"], "routing_accuracy": a["routing_accuracy"],
            "fact_recall_now": None, "fact_recall_later": None, "machine": m["machine"],
            "command": commands,
            # the goal asks for GOAL_SEEDS seeds: fewer can show the figures, not meet it
            "goal_met": a["goal_met"] and len(a["seeds"]) >= GOAL_SEEDS,
            "params_over_limit": (a["params_pct"] or 0) > GOAL_PARAMS_PCT,
            "goal": {"forget_pct": GOAL_FORGET_PCT, "gain_vs_expert": GOAL_GAIN, "params_pct": GOAL_PARAMS_PCT,
                     "seeds": GOAL_SEEDS}}


def markdown(result: dict) -> str:
    runs, m = result["runs"], result["meta"]
    agg = aggregate(runs)
    stream = f"Stream: {m['base']} (base) -> {' -> '.join(m['domains'])}; probes: {', '.join(m['probes']) or 'none'}  "
    budget = (f"Budget per stage, every strategy: {m['steps']} steps x {m['batch_size']} rows x {m['seq_len']} tokens "
              f"= {m['tokens_per_stage']:,} tokens; training text: the first {m['train_chars']:,} characters of each "
              f"train split; evaluation: the first {m['eval_chars']:,} characters of each test split; base model: "
              f"{m['base_folder']}; seeds: {sorted({r.get('seed', 0) for r in runs})}; gains / expert against the "
              f"run named '{m.get('expert_run') or 'expert'}'  ")
    legend = ("Forgetting % = (last - best) / best bits per byte, over the base and every domain learned before the "
              "last (avg / worst at the end; worst at any stage). Gain / full = gain on each new domain (bpb before "
              "its stage - after) over sequential full fine-tuning's. Gain / expert = (base bpb - bpb after the "
              "domain's stage) over (base bpb - the expert's), the expert being full fine-tuning of the base on that "
              "domain alone, same text and steps. BWT < 0 = forgot, FWT > 0 = earlier domains helped (bpb). Probe % "
              "= change of the never-trained probe's bpb from the base. s / 1k ex. = training seconds per 1,000 rows "
              "(compiles included); steady = from the median step time. Params / domain = numbers trained and kept "
              "per domain (one adapter), as % of the base's. Figures with several seeds are mean ± sample std; the "
              "goal is judged on the worst seed.")
    commands = list(dict.fromkeys(r.get("command", m["command"]) for r in runs))
    said = [f"Command: `{m['command']}`  "] if commands == [m["command"]] else \
        ["Commands (each run names its own in forgetting.json):  "] + [f"`{c}`  " for c in commands]
    load = (f"Load average (1 min) at start / end: {m['load_start']:.2f} / {m['load_end']:.2f}  "
            if "load_start" in m else "")
    lines = ["# Forgetting benchmark", "", *said, f"Machine: {m['machine']}  ", load, stream, budget,
             f"Total wall time: {m['wall_s']:.0f} s" + (" (the last command)" if len(commands) > 1 else ""), "",
             "## Summary", "", legend, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(agg)]
    lines += ["", "**" + verdict(agg) + "**", "", "## Final bits per byte on each domain, beside the references", "",
              *final_table(result), "", ("What the numbers mean: docs/forgetting.md."), ""]
    routed = [r for r in runs if r.get("confusion")]
    if routed:
        lines += ["## Automatic routing", ""]
        for r in routed:
            lines += [*confusion_table(r), ""]
    lines += ["## R matrices (bits per byte, lower is better)", ""]
    for r in runs:
        if r.get("kind") in REFERENCES:
            lines += [f"### {r['strategy']} (seed {r.get('seed', 0)})", "",
                      "Final bits per byte: " + ", ".join(f"{k} {v:.4f}" for k, v in r["final"].items()), ""]
            continue
        lines += [f"### {r['strategy']} (seed {r.get('seed', 0)})", "",
                  "| after stage | " + " | ".join(r["sets"]) + " |", "|" + "---|" * (len(r["sets"]) + 1)]
        for st, row in zip(r["stages"], r["R"]):
            lines.append(f"| {st} | " + " | ".join(f"{v:.4f}" for v in row) + " |")
        if r["strategy"].startswith("adapter-per-domain") and not r["strategy"].endswith(BY_NAME) and r.get("routes"):
            lines += ["", "Automatic routes chosen (per stage, set -> adapter; None = bare base): " +
                      "; ".join(f"{st}: " + ", ".join(f"{k}->{v}" for k, v in rt.items())
                                for st, rt in zip(r["stages"], r["routes"]))]
        lines.append("")
    return "\n".join(lines)


def terminal_table(runs: list[dict]):
    from rich.table import Table
    table = Table(title="forgetting benchmark (lower forgetting better; gains vs full fine-tuning and the expert)")
    for c in COLUMNS:
        table.add_column(c, justify="left" if c == "strategy" else "right")
    for row in rows(aggregate(runs)):
        table.add_row(*row)
    return table


def plot(result: dict, path) -> bool:
    """Each set's bits per byte across stages, one panel per strategy (first seed; PNG). False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    runs = [r for r in result["runs"] if "R" in r]
    runs = [next(r for r in runs if r["strategy"] == n) for n in dict.fromkeys(r["strategy"] for r in runs)]
    if not runs:
        return False
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
