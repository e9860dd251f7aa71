"""Lesson 11 reference solution (minimac/learner/mixing.py and strategies.py hold the library versions)."""
import math

import numpy as np

from minimac.learner.hooks import Controller


def chunk_ids(ids: list[int], seq_len: int) -> list[list[int]]:
    """Windows of at most seq_len + 1 ids starting every seq_len ids; each holds at least 2 ids."""
    ids = list(ids)
    return [ids[i:i + seq_len + 1] for i in range(0, len(ids) - 1, seq_len)]


def replay_rows(batch_size: int, replay_ratio: float) -> int:
    """round(batch_size * replay_ratio), halves rounded up, at most batch_size - 1."""
    return min(batch_size - 1, math.floor(batch_size * replay_ratio + 0.5))


def mixed_batch(new: list[list[int]], replay: list[list[int]], batch_size: int, seq_len: int,
                replay_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x int32, y int32, w float32), each (batch_size, seq_len); rows: new, replay, padding (x 0, y -1, w 0)."""
    x = np.zeros((batch_size, seq_len), dtype=np.int32)
    y = np.full((batch_size, seq_len), -1, dtype=np.int32)
    for row, ids in enumerate([*new, *replay]):
        n = len(ids) - 1
        x[row, :n], y[row, :n] = ids[:-1], ids[1:]          # shifted once
    w = np.zeros((batch_size, seq_len), dtype=np.float64)
    valid = y != -1
    is_new = np.arange(batch_size)[:, None] < len(new)
    share = replay_ratio if replay else 0.0
    for mask, part in ((valid & is_new, 1.0 - share), (valid & ~is_new, share)):
        if mask.any():
            w[mask] = part / mask.sum()
    return x, y, w.astype(np.float32)


def default_steps(n_chunks: int, batch_size: int, n_replay_rows: int, epochs: float, min_steps: int) -> int:
    """max(min_steps, ceil(epochs * n_chunks / (batch_size - n_replay_rows)))."""
    return max(min_steps, math.ceil(epochs * n_chunks / (batch_size - n_replay_rows)))


class LearningCurves(Controller):
    """Every `every` optimizer steps, bits per byte on every eval set: one row per measurement."""

    def __init__(self, eval_sets: dict[str, str], every: int):
        self.eval_sets, self.every, self.rows = eval_sets, every, []

    def on_step(self, learner, stats: dict) -> None:
        if stats["global_step"] % self.every == 0:
            self.rows.append({"step": stats["global_step"], "domain": stats["domain"],
                              **learner.evaluate(self.eval_sets)})
