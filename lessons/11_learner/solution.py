"""Lesson 11 reference solution (minimac/learner/mixing.py, strategies.py and metrics.py hold the library versions)."""
import math

import numpy as np


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


def forgetting(R) -> np.ndarray:
    """For each set j < last stage t: R[t][j] - min(R[:t+1, j])."""
    R = np.asarray(R, dtype=np.float64)
    t = R.shape[0] - 1
    return R[t, :t] - R[:, :t].min(axis=0)


def backward_transfer(R) -> float:
    """Mean over sets j < t of R[j][j] - R[t][j]."""
    R = np.asarray(R, dtype=np.float64)
    t = R.shape[0] - 1
    return float(np.mean([R[j, j] - R[t, j] for j in range(t)]))


def default_steps(n_chunks: int, batch_size: int, n_replay_rows: int, epochs: float, min_steps: int) -> int:
    """max(min_steps, ceil(epochs * n_chunks / (batch_size - n_replay_rows)))."""
    return max(min_steps, math.ceil(epochs * n_chunks / (batch_size - n_replay_rows)))
