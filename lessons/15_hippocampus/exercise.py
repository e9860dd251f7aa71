"""Lesson 15 exercise: pattern separation and completion (the hippocampus as a replay selector) and sleep's noisy
replay, Hebbian rule and pruning. Fill in each function, then run `pytest lessons/15_hippocampus`. README.md gives
the stages; peek at minimac/neuro/hippocampus.py and minimac/neuro/sleep.py if stuck. Everything is numpy.
"""
from __future__ import annotations

import numpy as np


def pattern_separation(h: np.ndarray, W: np.ndarray, b: np.ndarray, sparsity: float = 0.02) -> np.ndarray:
    """(N, d) hidden states -> (N, D) sparse codes, D = W.shape[1]:

        z = relu(h W + b); k = max(1, int(sparsity * D)); keep in each row only the values >= that row's k-th
        largest value (and > 0), set everything else to 0.

    With D = 512 and sparsity 0.02, 10 units of 512 stay active (about 2%, the design's "dentate gyrus").
    """
    raise NotImplementedError("Stage 1: pattern_separation")


def cosine_recall(query: np.ndarray, keys: np.ndarray, k: int,
                  importance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """query (D,), keys (M, D). Return (indices, scores) of the k best keys, best first, where
    score_i = cos(query, key_i) = key_i . query / (|key_i| |query| + 1e-8), times importance_i if given.
    Ties: the lower index first (np.argsort(..., kind="stable") on -score does that).
    """
    raise NotImplementedError("Stage 2: cosine_recall")


def flip_tokens(tokens: np.ndarray, prob: float, vocab_size: int, rng: np.random.Generator,
                mask: np.ndarray | None = None) -> np.ndarray:
    """A copy of tokens where each position (only where mask is 1, if a mask is given) is replaced with
    probability prob by a uniform random id in [0, vocab_size). The input array must not change."""
    raise NotImplementedError("Stage 3: flip_tokens")


def coactivation(u: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """u (N, T, r): each token's activation of the adapter's r directions (u = x A^T); mask (N, T), 1 = real token.
    Return C = sum over the real tokens of the outer product u u^T, shape (r, r)."""
    raise NotImplementedError("Stage 4: coactivation")


def replay_hebbian(B: np.ndarray, C: np.ndarray, lr: float) -> np.ndarray:
    """B (out, r), C (r, r). Return B + lr B (C / (trace(C) / r) - I): directions the dreams used more than
    average grow, the others shrink. If trace(C) <= 0 (no activity), return B unchanged."""
    raise NotImplementedError("Stage 4: replay_hebbian")


def prune(w: np.ndarray, threshold: float, relative: bool = True) -> tuple[np.ndarray, int]:
    """Zero the entries with |w| < cut, cut = threshold * rms(w) (relative) or threshold (absolute). Return
    (the new array, how many entries were non-zero before and are zero now). prune([0, .001, .5], .01, False) -> 1
    """
    raise NotImplementedError("Stage 5: prune")
