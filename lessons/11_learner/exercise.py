"""Lesson 11 exercise: the bookkeeping around the continual learner's training step, then a learner watched through
a domain change. See README.md; peek at minimac/learner/ if stuck.
"""
import numpy as np

from minimac.learner.hooks import Controller


def chunk_ids(ids: list[int], seq_len: int) -> list[list[int]]:
    """Windows of at most seq_len + 1 ids starting every seq_len ids; each holds at least 2 ids.

    chunk_ids(list(range(10)), 4) -> [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8], [8, 9]]
    """
    raise NotImplementedError("Stage 1: chunk_ids")


def replay_rows(batch_size: int, replay_ratio: float) -> int:
    """round(batch_size * replay_ratio), halves rounded up, at most batch_size - 1. replay_rows(8, 0.5) -> 4."""
    raise NotImplementedError("Stage 2: replay_rows")


def mixed_batch(new: list[list[int]], replay: list[list[int]], batch_size: int, seq_len: int,
                replay_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x int32, y int32, w float32), each (batch_size, seq_len); rows: new, replay, padding (x 0, y -1, w 0)."""
    raise NotImplementedError("Stage 3: mixed_batch")


def default_steps(n_chunks: int, batch_size: int, n_replay_rows: int, epochs: float, min_steps: int) -> int:
    """max(min_steps, ceil(epochs * n_chunks / (batch_size - n_replay_rows))). (1000, 8, 4, 1, 30) -> 250."""
    raise NotImplementedError("Stage 4: default_steps")


class LearningCurves(Controller):
    """A controller that measures as the learner learns: every `every` optimizer steps (counted over the whole run,
    stats["global_step"]), append to self.rows one dict {"step": global step, "domain": stats["domain"], and for
    each eval set its name: bits per byte now}. learner.evaluate(eval_sets) gives {name: bits per byte}."""

    def __init__(self, eval_sets: dict[str, str], every: int):
        self.eval_sets, self.every, self.rows = eval_sets, every, []

    def on_step(self, learner, stats: dict) -> None:
        raise NotImplementedError("Stage 5: LearningCurves.on_step")
