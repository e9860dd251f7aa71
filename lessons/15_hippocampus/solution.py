"""Lesson 15 solution: pattern separation and completion (the hippocampus as a replay selector) and sleep's noisy
replay, Hebbian rule and pruning, in numpy. The library versions are minimac/neuro/hippocampus.py and sleep.py.
"""
from __future__ import annotations

import numpy as np


def pattern_separation(h: np.ndarray, W: np.ndarray, b: np.ndarray, sparsity: float = 0.02) -> np.ndarray:
    """(N, d) -> (N, D) sparse codes: relu(h W + b), keeping in each row only the values >= its k-th largest
    (k = max(1, int(sparsity * D))); zeros stay zero."""
    z = np.maximum(h @ W + b, 0.0)
    k = max(1, int(sparsity * z.shape[1]))
    kth = np.sort(z, axis=1)[:, -k][:, None]
    return np.where((z >= kth) & (z > 0), z, 0.0)


def cosine_recall(query: np.ndarray, keys: np.ndarray, k: int,
                  importance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the k best keys, best first: score = cos(query, key) (times importance if given)."""
    cos = keys @ query / (np.linalg.norm(keys, axis=1) * np.linalg.norm(query) + 1e-8)
    scores = cos if importance is None else cos * importance
    idx = np.argsort(-scores, kind="stable")[:k]
    return idx, scores[idx]


def flip_tokens(tokens: np.ndarray, prob: float, vocab_size: int, rng: np.random.Generator,
                mask: np.ndarray | None = None) -> np.ndarray:
    """A copy with each position (where mask is 1) replaced, with probability prob, by a uniform id in [0, vocab)."""
    flip = rng.random(tokens.shape) < prob
    if mask is not None:
        flip &= mask.astype(bool)
    return np.where(flip, rng.integers(0, vocab_size, tokens.shape), tokens)


def coactivation(u: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """u (N, T, r) adapter activations, mask (N, T): C = sum over real tokens of u u^T, shape (r, r)."""
    rows = u[mask.astype(bool)]          # (tokens, r)
    return rows.T @ rows


def replay_hebbian(B: np.ndarray, C: np.ndarray, lr: float) -> np.ndarray:
    """B + lr B (C / (trace(C) / r) - I); B unchanged when trace(C) is 0."""
    r, tr = C.shape[0], np.trace(C)
    return B if tr <= 0 else B + lr * B @ (C / (tr / r) - np.eye(r))


def prune(w: np.ndarray, threshold: float, relative: bool = True) -> tuple[np.ndarray, int]:
    """Zero the entries with |w| < cut (cut = threshold * rms(w) if relative, else threshold); return (w, number of
    entries that were non-zero and are now zero)."""
    cut = threshold * np.sqrt(np.mean(w ** 2)) if relative else threshold
    dead = (np.abs(w) < cut) & (w != 0)
    return np.where(dead, 0.0, w), int(dead.sum())
