"""What a person sees of `python -m minimac.learn`: the steps, bits per byte over them, the R matrix. Lesson 11.

    Curves(sets, every=10)       a learner controller that evaluates every set every `every` steps and at the end
                                 of each stage: points (step, {set: bits per byte}) of one learner
    curves_table(runs)           the curves in the terminal, one row per set and learner: a line of block
                                 characters (the same scale for every learner of a set), the first and last value
    save_png(runs, folder)       the same curves as a PNG (matplotlib), in a new file; its path, or None
    StepShow(readout, stream)    a learner controller that only watches: each step to the readout (minimac/readout.py)
    report(learner, console, ..) the R matrix, forgetting / BWT / FWT, and generations before and after (--data)
    learn_with_readout(...)      learn_stream with all of the above on screen; returns the learner's Curves

`runs` is {learner label: Curves}, e.g. {"protected (adapter-per-domain)": ..., "naive (full fine-tuning)": ...}.
Leaves out: the live panel itself (minimac/readout.py), what is learned (minimac/learn_plan.py), the facts asked
(minimac/learn_quiz.py).
"""
from __future__ import annotations

import io
import math
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from minimac.learn_plan import CURVE_EVERY, DEMO, evaluating
from minimac.learner.hooks import Controller
from minimac.readout import Readout, r_matrix_table

BLOCKS = "▁▂▃▄▅▆▇█"


class Curves(Controller):
    """Bits per byte of every set, every `every` steps of each stage and after it: what the demo draws.

    The points are (global step, {set: bpb}); `stage_ends` are the global steps where a stage ended. The evaluation
    inside a stage is the one the learner does after it (ContinualLearner.evaluate: adapters routed as in use)."""

    def __init__(self, sets: dict[str, str], every: int = 10, on_point=None):
        self.sets, self.every, self.on_point = sets, max(1, int(every)), on_point
        self.points: list[tuple[int, dict[str, float]]] = []
        self.stage_ends: list[int] = []
        self.step = 0

    def on_step(self, learner, stats: dict) -> None:
        self.step += 1
        if stats["step"] % self.every == 0 and stats["step"] < stats["steps"]:  # the stage's end comes from add()
            self.add(learner.evaluate(self.sets))

    def add(self, scores: dict[str, float]) -> None:
        """A point at the current step (the learner's own R-matrix rows come here at each stage's end)."""
        self.points.append((self.step, dict(scores)))
        if self.on_point is not None:
            self.on_point(self)

    def end_stage(self) -> None:
        self.stage_ends.append(self.step)

    def series(self, name: str) -> tuple[list[int], list[float]]:
        steps = [s for s, scores in self.points if name in scores]
        return steps, [scores[name] for _, scores in self.points if name in scores]


def sparkline(values: list[float], low: float, high: float) -> str:
    """Block characters for values on the scale low..high: sparkline([1, 2, 3], 1, 3) -> '▁▅█'."""
    span = high - low
    return "".join(BLOCKS[0] if not span > 0 else BLOCKS[min(len(BLOCKS) - 1, int((v - low) / span * len(BLOCKS)))]
                   for v in values)


def curves_table(runs: dict[str, Curves], title: str | None = None) -> Table:
    """One row per set and learner: its curve, first and last bits per byte, and the change in percent (red when
    it got worse by 2% or more, green when better). A set's rows share one scale, so learners compare by eye."""
    table = Table(title=title or "bits per byte over the steps (lower is better; a block a point)",
                  title_justify="left")
    for col in ("set", "learner", "curve", "first", "last", "change"):
        table.add_column(col, justify="right" if col in ("first", "last", "change") else "left")
    sets = list(dict.fromkeys(name for c in runs.values() for _, scores in c.points for name in scores))
    for name in sets:
        values = [v for c in runs.values() for v in c.series(name)[1]]
        low, high = min(values, default=0.0), max(values, default=0.0)
        for label, c in runs.items():
            ys = c.series(name)[1]
            if not ys:
                continue
            change = 100.0 * (ys[-1] - ys[0]) / ys[0] if ys[0] > 0 else math.nan
            style = "red" if change >= 2.0 else "green" if change < 0 else ""
            table.add_row(name, label, sparkline(ys, low, high), f"{ys[0]:.3f}", f"{ys[-1]:.3f}",
                          Text(f"{change:+.1f}%", style=style))
    return table


def save_png(runs: dict[str, Curves], folder: Path | str = "runs", stream: list[str] | None = None) -> Path | None:
    """One panel per set, bits per byte against the step, a line per learner, every other stage shaded.
    Written to a new file folder/learn-YYYYmmdd-HHMMSS.png (never over an existing file). None if matplotlib is
    missing (`pip install matplotlib`)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    sets = list(dict.fromkeys(name for c in runs.values() for _, scores in c.points for name in scores))
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.4), squeeze=False)
    for ax, name in zip(axes[0], sets):
        for (label, c), color in zip(runs.items(), ("tab:green", "tab:red", "tab:blue", "tab:orange")):
            ax.plot(*c.series(name), marker=".", color=color, label=label)
        ends = next(iter(runs.values())).stage_ends
        for k, (start, end) in enumerate(zip([0, *ends], ends)):
            if k % 2:
                ax.axvspan(start, end, color="0.93")
            if stream and k < len(stream):
                ax.text((start + end) / 2, 0.98, f"learning\n{stream[k]}", fontsize=7, ha="center", va="top",
                        color="grey", transform=ax.get_xaxis_transform())
        ax.set_title(name)
        ax.set_xlabel("training step")
    axes[0][0].set_ylabel("bits per byte (lower is better)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(100):
        path = folder / (f"learn-{stamp}.png" if k == 0 else f"learn-{stamp}-{k}.png")
        try:
            with open(path, "xb") as f:   # "x": never over a file that exists
                f.write(buf.getvalue())
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not find a new file name for the chart in {folder}")


class StepShow(Controller):
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


def report(learner, console: Console, prompts: dict, before: dict) -> None:
    m = learner.r_matrix
    console.print(r_matrix_table(m.sets, m.values.tolist(), m.stages))
    s = m.summary()
    fwt = ("n/a (needs two learned domains)" if math.isnan(s["forward_transfer"])
           else f"{s['forward_transfer']:+.3f} (>0 = earlier domains helped)")
    console.print(f"average forgetting {s['average_forgetting']:+.3f} bits/byte (>0 = forgot), "
                  f"BWT {s['backward_transfer']:+.3f} (<0 = forgot), FWT {fwt}")
    if not prompts:
        return
    table = Table(title="generations (temperature 0.8, seed 0)", title_justify="left", show_lines=True)
    for col in ("domain", "prompt", "before learning", "after learning"):
        table.add_column(col, overflow="fold")
    for d, ps in prompts.items():
        for p, b in zip(ps, before[d]):
            a = learner.generate(p, DEMO["new_tokens"], seed=0, domain=d if d in learner.adapters else None)
            table.add_row(d, repr(p), repr(b), repr(a))
    console.print(table)


def learn_with_readout(learner, items, eval_sets: dict[str, str], base: str, steps: int, stream: list[str],
                       save: Path | None, live: bool, console: Console, title: str) -> Curves:
    """learn_stream with the readout: the live panel (steps, scores, the curves so far), saving after each domain.
    Returns the curves: every set's bits per byte every CURVE_EVERY steps and after each stage."""
    show = StepShow(None, stream, eval_sets)
    curves = Curves(eval_sets, every=CURVE_EVERY)
    learner.controllers += [show, curves]
    console.print(Text(title, style="bold"))
    with Readout(live=live, console=console, every=10) as r:
        show.readout = r
        curves.on_point = lambda c: r.chart(curves_table({title: c}, title="bits per byte so far"))

        def on_stage(stage: str, scores: dict) -> None:
            show.show_controllers(learner)   # after the domain's end: sleep has run
            if stage != base:
                curves.end_stage()
            curves.add(scores)
            m = learner.r_matrix
            r.scores(m.sets, m.values.tolist(), m.stages)
            if save and stage != m.stages[0]:
                learner.save_checkpoint(save)
                r.message(f"saved {save} after learning {stage}")

        r.message(evaluating(eval_sets))
        learner.learn_stream(items, eval_sets, base=base, steps=steps, on_stage=on_stage)
    learner.controllers = [c for c in learner.controllers if c not in (show, curves)]
    return curves
