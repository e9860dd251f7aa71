"""The measured effect of each brain-inspired controller on a pretrained model, read from docs/neuro.md.

`benchmarks/neuro_ablation.py` ran every controller on and off from the same cached base (lora+replay+ewc, the same
data, seed and step budget) on the project's 2-core CPU and, for five variants with a larger budget, on an H100;
docs/neuro.md keeps both tables. Lessons 13-15 read them here instead of running the ablation again (about 40
minutes on that CPU). Leaves out: running it (`python benchmarks/neuro_ablation.py --variants ...`).

    tables = read_tables()                      # {"CPU": {variant: {column: value}}, "H100": {...}}
    plot_effect(tables, ["autonomous_lr", "neuromodulation"])
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt

DOC = Path(__file__).resolve().parent.parent / "docs" / "neuro.md"
REFERENCES = ("baseline", "ref_lr_half", "ref_more_replay")   # plain lora+replay+ewc, and with one knob moved by hand


def _rows(lines: list[str]) -> dict[str, dict[str, float]]:
    header = [h.strip() for h in lines[0].strip("|").split("|")]
    out = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        out[cells[0]] = {h: float(re.match(r"[-+0-9.]+", c).group()) for h, c in zip(header[1:], cells[1:])}
    return out


def read_tables(path: Path = DOC) -> dict[str, dict[str, dict[str, float]]]:
    """{"CPU": rows, "H100": rows}; rows = {variant: {column name: value}} (a "(+x)" difference is dropped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    tables = {}
    for machine, starts in (("CPU", "| variant |"), ("H100", "| variant (H100")):
        first = next(i for i, line in enumerate(lines) if line.startswith(starts))
        last = next(i for i in range(first, len(lines)) if not lines[i].startswith("|"))
        tables[machine] = _rows(lines[first:last])
    return tables


def plot_effect(tables: dict, highlight: list[str]) -> None:
    """One panel per machine: average forgetting against new-domain bits per byte for every variant (lower-left is
    better on both), the baseline and the hand-set references in grey, the controllers in `highlight` in colour."""
    _, axes = plt.subplots(1, len(tables), figsize=(5.2 * len(tables), 3.4))
    for ax, (machine, rows) in zip(axes, tables.items()):
        for name, r in rows.items():
            x, y = r["avg forgetting (bpb)"], r["new-domain bpb"]
            if name in highlight:
                ax.plot(x, y, "o", ms=8, zorder=3)
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8, weight="bold")
            else:
                ax.plot(x, y, "o", ms=5, color="black" if name == "baseline" else "#bbbbbb", zorder=2)
                if name in REFERENCES:
                    ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, -10), fontsize=7, color="#555555")
        if not set(highlight) & set(rows):
            ax.text(0.5, 0.5, f"{', '.join(highlight)}: not measured here", transform=ax.transAxes, ha="center",
                    fontsize=8, color="#555555")
        ax.set_xlabel("average forgetting (bits per byte)")
        ax.set_ylabel("new-domain bits per byte")
        ax.set_title(f"{machine} (docs/neuro.md): lower-left is better", fontsize=9)
    plt.tight_layout()
    plt.show()
