"""Lesson 11 exercise: the bookkeeping around the continual learner's training step. See README.md."""
import numpy as np


def chunk_ids(ids: list[int], seq_len: int) -> list[list[int]]:
    """Windows of at most seq_len + 1 ids starting every seq_len ids; each holds at least 2 ids.

    chunk_ids(list(range(10)), 4) -> [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8], [8, 9]]
    """
    raise NotImplementedError("Stage 1: cut the ids into overlapping windows")


def replay_rows(batch_size: int, replay_ratio: float) -> int:
    """round(batch_size * replay_ratio), halves rounded up, at most batch_size - 1. replay_rows(8, 0.5) -> 4."""
    raise NotImplementedError("Stage 2: rows of the batch given to replay")


def mixed_batch(new: list[list[int]], replay: list[list[int]], batch_size: int, seq_len: int,
                replay_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x int32, y int32, w float32), each (batch_size, seq_len); rows: new, replay, padding (x 0, y -1, w 0)."""
    raise NotImplementedError("Stage 3: shift once, pad, and weight new and replayed tokens")


def forgetting(R) -> np.ndarray:
    """For each set j < last stage t: R[t][j] - min(R[:t+1, j]). R = [[1, 3], [2, 1]] -> [1.0]."""
    raise NotImplementedError("Stage 4: forgetting of a loss (lower is better)")


def backward_transfer(R) -> float:
    """Mean over sets j < t of R[j][j] - R[t][j]. R = [[1, 3], [2, 1]] -> -1.0."""
    raise NotImplementedError("Stage 4: backward transfer")


def default_steps(n_chunks: int, batch_size: int, n_replay_rows: int, epochs: float, min_steps: int) -> int:
    """max(min_steps, ceil(epochs * n_chunks / (batch_size - n_replay_rows))). (1000, 8, 4, 1, 30) -> 250."""
    raise NotImplementedError("Stage 5: steps for one learn_from_text call")
