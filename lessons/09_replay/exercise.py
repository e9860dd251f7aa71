"""Lesson 09 exercise: experience replay in plain numpy. Fill in each function, then `pytest lessons/09_replay`.

README.md gives the stages; peek at minimac/replay.py (and ReplayBuffer.add, .sample, .sample_by_domain) if stuck.
"""
import math  # noqa: F401  (you may need it)

import numpy as np  # noqa: F401  (you will need it)


def reservoir_add(memory, item, n_seen, mem_size, rng):
    """Vitter's algorithm R, one step. `item` is the n_seen-th item of the stream (counting from 1).
    Not full: append. Full: j = rng.integers(n_seen); if j < mem_size, memory[j] = item. Returns True if stored.
    """
    raise NotImplementedError("Stage 1: reservoir_add")


def weighted_sample_without_replacement(weights, k, rng):
    """k distinct indices: each draw picks among the indices not drawn yet, with probability proportional to weight.
    Needs at least k positive weights (ValueError otherwise). Returns an int array of length k, in draw order.
    """
    raise NotImplementedError("Stage 2: weighted_sample_without_replacement")


def domain_quota(sizes, n):
    """How many items to draw from each domain: deal n (at most sum(sizes)) out one at a time, round robin over the
    domains in the order given, skipping a domain once it has given all it has. sizes: {domain: stored} -> {domain: k}.

    domain_quota({"a": 1, "b": 5}, 4) -> {"a": 1, "b": 3}
    """
    raise NotImplementedError("Stage 3: domain_quota")


def balanced_by_domain(domains, n, rng):
    """domains[i] is the domain of stored item i. Return the indices of n items (fewer if there are fewer), drawn
    uniformly without replacement inside each domain, with per-domain counts domain_quota(sizes, n), where sizes
    lists the domains in sorted order. Return them shuffled.
    """
    raise NotImplementedError("Stage 3: balanced_by_domain")


def replay_rows(batch_size, replay_ratio):
    """Rows of a batch given to replay: round(batch_size * replay_ratio) (halves round up), but at most
    batch_size - 1, so the new text always has a row. replay_rows(8, 0.5) -> 4; replay_rows(4, 1.0) -> 3.
    """
    raise NotImplementedError("Stage 4: replay_rows")


def mix_batch(new, pool, batch_size, replay_ratio, rng):
    """Rows for one training step, and a loss weight for each target token.

    new: the new sequences (the first batch_size - replay_rows(...) of them are used); pool: sequences to replay,
    of which min(replay_rows(...), len(pool)) are drawn uniformly without replacement with rng.choice.
    Returns (rows, weights): rows = used new sequences, then the replayed ones; weights[r] has one entry per target
    of rows[r] (len(rows[r]) - 1 of them). The new targets share 1 - replay_ratio equally, the replayed ones share
    replay_ratio; with nothing replayed, the new targets share all of it. Total weight: 1.
    """
    raise NotImplementedError("Stage 4: mix_batch")
