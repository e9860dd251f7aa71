"""The terminal readout of `python -m minimac.learn`: a `rich` Live panel, or plain lines for logs and CI. Lesson 11.

The live panel shows the current stage and domain, a progress line (step, loss, learning rate, tokens/s, ETA) and a
table of bits per byte per evaluation set, with each set's forgetting coloured: green (under 2 % worse than its
best so far), yellow (under 10 %), red (10 % or more). With brain-inspired controllers on (`--neuro`), one row per
controller shows its current state: the few numbers of its `readout()` listed in NEURO_KEYS (learning-rate scale,
neuromodulator levels, dead-unit fraction, stored episodes, sleep counts). `live=False` prints the same facts as
plain lines, one per `every` steps, which is what a log file or CI wants.

Leaves out: computing any of the numbers (minimac/learner/learner.py and minimac/metrics.py do that).

    >>> with Readout(live=False) as r:                                  # doctest: +SKIP
    ...     r.stage("code", 1, 2, steps=40)
    ...     r.step({"step": 1, "loss": 2.0, "lr": 2e-3, "tokens_per_s": 900.0, "eta_s": 12.0})
"""
from __future__ import annotations

import math
import time
from collections import deque

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

GREEN_PCT, YELLOW_PCT = 2.0, 10.0
# what the panel shows of each controller's readout() (minimac/neuro/), by controller name, as (key, label)
NEURO_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "hippocampus": (("episodes", "episodes"), ("recalls", "recalls"), ("recall_similarity", "similarity"),
                    ("active_fraction", "active")),
    "autonomous_lr": (("lr", "lr"), ("scale", "scale"), ("success_rate", "success"), ("saturated", "saturated"),
                      ("lr_clamped", "clamped")),
    "neuromod": (("dopamine", "DA"), ("serotonin", "5-HT"), ("acetylcholine", "ACh"), ("noradrenaline", "NE"),
                 ("temperature", "temp"), ("lr_clamped", "clamped")),
    "homeostasis": (("dead_fraction", "dead"), ("drift", "rate drift"), ("mean_gain", "gain"),
                    ("mean_abs_threshold", "|threshold|"), ("probes", "probes")),
    "sleep": (("sleeps", "sleeps"), ("connections_strengthened", "strengthened"), ("connections_pruned", "pruned"),
              ("last_dreams", "last dreams")),
}


def forgetting_style(pct: float) -> str:
    """Colour for a relative forgetting in percent: 1.0 -> 'green', 5.0 -> 'yellow', 20.0 -> 'red'."""
    if not math.isfinite(pct) or pct < GREEN_PCT:
        return "green"
    return "yellow" if pct < YELLOW_PCT else "red"


def fmt_seconds(s: float) -> str:
    """95.0 -> '1m35s', 7.25 -> '7.2s'."""
    if not math.isfinite(s):
        return "?"
    return f"{s:.1f}s" if s < 60 else f"{int(s // 60)}m{int(s % 60):02d}s"


def scores_table(sets: list[str], rows: list[list[float]], stages: list[str]) -> Table:
    """Bits per byte now, best so far and forgetting (now - best, and % of best) per set, after the last row."""
    R = np.asarray(rows, dtype=np.float64)
    table = Table(title="bits per byte (lower is better)", title_justify="left")
    for col in ("set", "before", "now", "best", "forgetting"):
        table.add_column(col, justify="left" if col == "set" else "right")
    for j, name in enumerate(sets):
        now, best = R[-1, j], R[:, j].min()
        pct = 100.0 * (now - best) / best if best > 0 else 0.0
        style = forgetting_style(pct)
        trained = " (trained)" if name in stages[1:len(R)] else ""
        table.add_row(name + trained, f"{R[0, j]:.3f}", f"{now:.3f}", f"{best:.3f}",
                      Text(f"{now - best:+.3f} ({pct:.1f}%)", style=style))
    return table


def fmt_value(v: float) -> str:
    """A readout number, short: 4.0 -> '4', 12345.0 -> '12,345', 0.51234 -> '0.512', 2.1e-4 -> '2.10e-04', nan -> '-'."""
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return "-"
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:.2e}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.3f}"


def neuro_cells(name: str, readout: dict[str, float]) -> str:
    """'DA 1.02  5-HT 0.510 ...': the NEURO_KEYS of a controller present in its readout (the first 5 if unknown)."""
    keys = NEURO_KEYS.get(name) or tuple((k, k) for k in list(readout)[:5])
    return "  ".join(f"{label} {fmt_value(readout[k])}" for k, label in keys if k in readout)


def neuro_table(rows: dict[str, dict[str, float]]) -> Table:
    """One row per controller: its name and its current state (neuro_cells)."""
    table = Table(title="brain-inspired controllers", title_justify="left")
    table.add_column("controller")
    table.add_column("state")
    for name, readout in rows.items():
        table.add_row(name, neuro_cells(name, readout))
    return table


def r_matrix_table(sets: list[str], rows: list[list[float]], stages: list[str]) -> Table:
    """R[stage][set] as a table, one row per finished stage."""
    table = Table(title="R matrix: bits per byte after each stage (rows) on each set (columns)", title_justify="left")
    table.add_column("after stage")
    for name in sets:
        table.add_column(name, justify="right")
    for stage, row in zip(stages, rows):
        table.add_row(stage, *(f"{v:.3f}" for v in row))
    return table


class Readout:
    """Context manager: a rich Live panel (live=True) or plain printed lines (live=False)."""

    def __init__(self, live: bool = True, console: Console | None = None, every: int = 10):
        self.live, self.every = live, max(1, int(every))
        self.console = console or Console()
        self.header, self.progress, self.table, self.extra = Text(""), Text(""), None, None
        self._stamps: deque[tuple[int, float]] = deque(maxlen=20)   # (step, time) of the stage's last steps
        self.controllers: dict[str, dict[str, float]] = {}
        self._live: Live | None = None

    def __enter__(self):  # -> Readout
        if self.live:
            self._live = Live(self.panel(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self.panel())
            self._live.__exit__(*exc)
            self._live = None

    def panel(self) -> Group:
        """What the live panel shows now (a rich renderable: print it on any Console, e.g. one writing a string)."""
        parts = [self.header, self.progress]
        if self.controllers:
            parts.append(neuro_table(self.controllers))
        return Group(*parts, *(x for x in (self.table, self.extra) if x is not None))

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.panel())

    def message(self, text: str) -> None:
        """A line printed above the live panel (or just printed)."""
        self.console.print(text, highlight=False)

    def stage(self, domain: str, index: int, total: int, steps: int | None) -> None:
        """A new stage; steps None: not fixed in advance (a time-boxed pretraining: its step lines say the plan)."""
        self._stamps.clear()
        count = f" ({steps} steps)" if steps is not None else ""
        self.header = Text.assemble(("stage ", "bold"), (f"{index}/{total}", "bold cyan"), "  learning ",
                                    (domain, "bold magenta"), f" {count}")
        self.progress = Text("")
        if self.live:
            self._refresh()
        else:
            self.message(f"stage {index}/{total}: learning {domain}{count}")

    def eta(self, s: dict) -> float:
        """Seconds left in the stage, from the pace of its recent steps; the stage's first step, which carries the
        compile, is left out (s["eta_s"] until there are two steps after it)."""
        self._stamps.append((s.get("step", 0), time.perf_counter()))
        (k0, t0), (k1, t1) = self._stamps[1 if len(self._stamps) > 2 else 0], self._stamps[-1]
        if len(self._stamps) < 3 or k1 <= k0 or not isinstance(s.get("steps"), int):
            return s.get("eta_s", math.nan)
        return (s["steps"] - k1) * (t1 - t0) / (k1 - k0)

    def step(self, s: dict) -> None:
        """s: step, steps, loss, lr, tokens_per_s, eta_s (missing keys are skipped)."""
        line = (f"step {s.get('step', 0)}/{s.get('steps', '?')}  loss {s.get('loss', math.nan):.3f}  "
                f"lr {s.get('lr', math.nan):.2e}  {s.get('tokens_per_s', 0.0):,.0f} tok/s  "
                f"ETA {fmt_seconds(self.eta(s))}")
        if self.live:
            self.progress = Text(line)
            self._refresh()
        elif s.get("step", 0) % self.every == 0 or s.get("step") == s.get("steps"):
            self.message("  " + line)
            self._say_controllers()

    def neuro(self, rows: dict[str, dict[str, float]]) -> None:
        """The controllers' current readouts, {name: readout()}: a table in the panel, or lines with the next step's
        line (or the next scores) when not live."""
        self.controllers = dict(rows)
        if self.live:
            self._refresh()

    def _say_controllers(self) -> None:
        for name, readout in self.controllers.items():
            self.message(f"    {name}: {neuro_cells(name, readout)}")

    def scores(self, sets: list[str], rows: list[list[float]], stages: list[str]) -> None:
        """Show the per-set table after a new row of the R matrix."""
        self.table = scores_table(sets, rows, stages)
        if self.live:
            self._refresh()
        else:
            R = np.asarray(rows)
            cells = [f"{s}={R[-1, j]:.3f} (forgot {R[-1, j] - R[:, j].min():+.3f})" for j, s in enumerate(sets)]
            self.message(f"  bits/byte after {stages[len(rows) - 1]}: " + ", ".join(cells))
            self._say_controllers()

    def chart(self, renderable) -> None:
        """Something drawn below the scores in the live panel (the curves so far); nothing when not live."""
        self.extra = renderable
        self._refresh()

    def show(self, renderable) -> None:
        """Print a table or text below everything (after the live panel has stopped)."""
        if self._live is not None:
            self._live.console.print(renderable)
        else:
            self.console.print(renderable)
