"""Box-and-arrow diagrams for the lesson notebooks, drawn with matplotlib so they show wherever the notebook does.

    from diagrams import flow
    flow({"x": (0, 0, "x (B, T, d)"), "n": (2, 0, "RMSNorm", "op"), "y": (4, 0, "y")},
         [("x", "n"), ("n", "y", "scaled")], title="one step")

A box is (x, y, label) or (x, y, label, kind); kind picks its colour: "data" (default), "op" (a computation),
"param" (trained weights), "frozen" (weights that do not change), "memory" (stored examples), "note" (plain text).
Coordinates are free units: the axes are fitted around the boxes. An arrow is (from, to) or (from, to, label).
Leaves out: automatic layout; each notebook places its boxes by hand, which keeps the picture the one it means.
"""
from __future__ import annotations

import matplotlib.pyplot as plt

COLOURS = {"data": "#dbe9f6", "op": "#fde2c4", "param": "#d5efd2", "frozen": "#e3e3e3", "memory": "#ead7f2",
           "note": "none"}


def flow(boxes: dict, arrows: list, title: str | None = None, size: tuple[float, float] = (9, 2.6),
         fontsize: float = 9, ax=None):
    """Draw the boxes and arrows on `ax` (a new figure if None); returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    texts = {}
    for name, spec in boxes.items():
        x, y, label, kind = (*spec, "data") if len(spec) == 3 else spec
        bbox = None if kind == "note" else {"boxstyle": "round,pad=0.45", "fc": COLOURS[kind], "ec": "#555555",
                                            "lw": 0.8}
        texts[name] = ax.text(x, y, label, ha="center", va="center", fontsize=fontsize, bbox=bbox, zorder=3,
                              style="italic" if kind == "note" else "normal")
    xs = [t.get_position()[0] for t in texts.values()]
    ys = [t.get_position()[1] for t in texts.values()]
    ax.set_xlim(min(xs) - 1.0, max(xs) + 1.0)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.axis("off")
    ax.figure.canvas.draw()                     # lays out the boxes, so their edges are known
    to_data = ax.transData.inverted()
    edges = {}
    for name, t in texts.items():
        patch = t.get_bbox_patch()
        extent = (patch or t).get_window_extent()
        (x0, y0), (x1, y1) = to_data.transform([[extent.x0, extent.y0], [extent.x1, extent.y1]])
        edges[name] = (x0, y0, x1, y1)
    for arrow in arrows:
        a, b, label = (*arrow, None) if len(arrow) == 2 else arrow
        (xa, ya), (xb, yb) = texts[a].get_position(), texts[b].get_position()
        start, end = _leave(edges[a], xa, ya, xb, yb), _leave(edges[b], xb, yb, xa, ya)
        ax.annotate("", xy=end, xytext=start, zorder=2,
                    arrowprops={"arrowstyle": "-|>", "color": "#333333", "lw": 1.0, "shrinkA": 1, "shrinkB": 1})
        if label:
            ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, label, ha="center", va="center",
                    fontsize=fontsize - 1.5, color="#333333", zorder=4, bbox={"fc": "white", "ec": "none", "pad": 0.3})
    if title:
        ax.set_title(title, fontsize=fontsize + 1)
    return ax


def _leave(box: tuple, x: float, y: float, tx: float, ty: float) -> tuple[float, float]:
    """Where the segment from (x, y), the centre of `box` (x0, y0, x1, y1), towards (tx, ty) crosses its edge."""
    x0, y0, x1, y1 = box
    dx, dy = tx - x, ty - y
    scale = min((x1 - x0) / 2 / abs(dx) if dx else float("inf"), (y1 - y0) / 2 / abs(dy) if dy else float("inf"))
    return x + dx * scale, y + dy * scale
