"""Cutting new text into chunks and mixing them with replayed ones into fixed-shape, weighted batches. Lesson 11.

Three host-side (numpy) pieces the learner calls at every step:

- `chunk_ids`: cut a long token sequence into windows of at most seq_len + 1 tokens. Consecutive windows share one
  token, so every next-token target of the text is trained exactly once per pass (the seed had no chunking: long
  text crashed the forward).
- `new_chunk_schedule`: which new chunks go into each step: shuffled passes over all of them, never the same chunk
  twice in one step, and at least one new chunk in every step (the seed drew the "new" half at random from a recent
  window, so the text just added could be missing from its own update).
- `mixed_batch`: rows = new chunks, then replayed chunks, then padding; inputs and targets shifted ONCE
  (x = ids[:-1], y = ids[1:]); padding gets target -1 and weight 0. The weight matrix `w` (B, T) sums to 1:
  new tokens share 1 - replay_ratio and replayed tokens share replay_ratio, so the ratio holds for the loss too,
  whatever the lengths (a one-line fact is not drowned by full-length replayed chunks).

Leaves out: the model and the loss (minimac/learner/learner.py), which experiences to replay (minimac/replay.py).

    >>> [c.tolist() for c in chunk_ids(list(range(10)), seq_len=4)]
    [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8], [8, 9]]
    >>> x, y, w = mixed_batch([np.array([5, 6, 7])], [np.array([8, 9])], batch_size=3, seq_len=4, replay_ratio=0.5)
    >>> x.tolist(), y.tolist()
    ([[5, 6, 0, 0], [8, 0, 0, 0], [0, 0, 0, 0]], [[6, 7, -1, -1], [9, -1, -1, -1], [-1, -1, -1, -1]])
    >>> w.tolist()
    [[0.25, 0.25, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IGNORE_INDEX = -1
PAD_ID = 0  # <|endoftext|>: padded inputs are never targets, so their value only has to be a valid id


def chunk_ids(ids: Sequence[int], seq_len: int) -> list[np.ndarray]:
    """Windows of at most seq_len + 1 tokens with stride seq_len; each has at least 2 tokens (one target)."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    ids = np.asarray(ids, dtype=np.int32)
    if len(ids) < 2:
        raise ValueError(f"text is too short to learn from: it encodes to {len(ids)} token(s), and predicting the "
                         "next token needs at least 2")
    return [ids[i:i + seq_len + 1] for i in range(0, len(ids) - 1, seq_len)]


def new_chunk_schedule(n_chunks: int, rows: int, steps: int, rng: np.random.Generator) -> list[list[int]]:
    """For each step, min(rows, n_chunks) distinct chunk indices, walking through shuffled passes over the chunks.

    >>> new_chunk_schedule(3, rows=2, steps=3, rng=np.random.default_rng(0))
    [[2, 0], [1, 2], [0, 2]]
    """
    if n_chunks < 1 or rows < 1 or steps < 0:
        raise ValueError(f"need n_chunks >= 1, rows >= 1 and steps >= 0, got {n_chunks}, {rows}, {steps}")
    k, order, out = min(rows, n_chunks), [], []
    for _ in range(steps):
        if len(order) < k:  # start a new pass; the chunks left from the old one go first so a pass is never cut short
            fresh = [int(i) for i in rng.permutation(n_chunks) if i not in order]
            order = order + fresh
        out.append(order[:k])
        order = order[k:]
    return out


def mixed_batch(new: Sequence[np.ndarray], replay: Sequence[np.ndarray], batch_size: int, seq_len: int,
                replay_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Build (x, y, w), each (batch_size, seq_len): int32 inputs, int32 targets (-1 = ignore), float32 weights.

    New tokens share weight 1 - replay_ratio and replayed tokens share replay_ratio; with no replay rows the new
    tokens share all of it. Chunks hold up to seq_len + 1 ids; shorter ones are right-padded.
    """
    if not new:
        raise ValueError("a batch needs at least one chunk of the new text")
    if len(new) + len(replay) > batch_size:
        raise ValueError(f"{len(new)} new + {len(replay)} replay chunks do not fit in batch_size {batch_size}")
    x = np.full((batch_size, seq_len), PAD_ID, dtype=np.int32)
    y = np.full((batch_size, seq_len), IGNORE_INDEX, dtype=np.int32)
    for row, ids in enumerate([*new, *replay]):
        ids = np.asarray(ids, dtype=np.int32)[:seq_len + 1]  # a longer replayed item is cut to the context
        if len(ids) < 2:
            raise ValueError(f"chunk {row} has {len(ids)} token(s); a chunk needs at least 2")
        x[row, :len(ids) - 1], y[row, :len(ids) - 1] = ids[:-1], ids[1:]
    valid = (y != IGNORE_INDEX)
    is_new = np.zeros((batch_size, 1), dtype=bool)
    is_new[:len(new)] = True
    share_replay = float(replay_ratio) if replay else 0.0
    w = np.zeros((batch_size, seq_len), dtype=np.float64)  # host-side float64, cast to float32 before the device
    for mask, share in ((valid & is_new, 1.0 - share_replay), (valid & ~is_new, share_replay)):
        if mask.any():
            w[mask] = share / mask.sum()
    return x, y, w.astype(np.float32)
