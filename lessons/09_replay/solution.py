"""Lesson 09 solution: experience replay in plain numpy. Compare with your exercise.py; minimac/replay.py is the library.
"""
import math

import numpy as np


def reservoir_add(memory, item, n_seen, mem_size, rng):
    """Vitter's algorithm R, one step. `item` is the n_seen-th item of the stream (counting from 1).
    Not full: append. Full: j = rng.integers(n_seen); if j < mem_size, memory[j] = item. Returns True if stored.
    """
    if len(memory) < mem_size:
        memory.append(item)
        return True
    j = int(rng.integers(n_seen))  # uniform over the n_seen items so far: lands in memory with probability m / n
    if j < mem_size:
        memory[j] = item
        return True
    return False


def weighted_sample_without_replacement(weights, k, rng):
    """k distinct indices: each draw picks among the indices not drawn yet, with probability proportional to weight.
    Needs at least k positive weights (ValueError otherwise). Returns an int array of length k, in draw order.
    """
    w = np.asarray(weights, dtype=np.float64).copy()
    if (w < 0).any() or not np.isfinite(w).all():
        raise ValueError("weights must be finite and >= 0")
    if k > np.count_nonzero(w):
        raise ValueError(f"cannot draw {k} distinct items: only {np.count_nonzero(w)} have a positive weight")
    picked = []
    for _ in range(k):
        i = int(rng.choice(len(w), p=w / w.sum()))
        picked.append(i)
        w[i] = 0.0  # never again
    return np.array(picked, dtype=np.int64)


def domain_quota(sizes, n):
    """How many items to draw from each domain: deal n (at most sum(sizes)) out one at a time, round robin over the
    domains in the order given, skipping a domain once it has given all it has. sizes: {domain: stored} -> {domain: k}.

    domain_quota({"a": 1, "b": 5}, 4) -> {"a": 1, "b": 3}
    """
    want = {d: 0 for d in sizes}
    left = min(n, sum(sizes.values()))
    while left > 0:
        for d in sizes:
            if left > 0 and want[d] < sizes[d]:
                want[d] += 1
                left -= 1
    return want


def balanced_by_domain(domains, n, rng):
    """domains[i] is the domain of stored item i. Return the indices of n items (fewer if there are fewer), drawn
    uniformly without replacement inside each domain, with per-domain counts domain_quota(sizes, n), where sizes
    lists the domains in sorted order. Return them shuffled.
    """
    groups = {}
    for i, d in enumerate(domains):
        groups.setdefault(d, []).append(i)
    groups = {d: groups[d] for d in sorted(groups)}
    want = domain_quota({d: len(g) for d, g in groups.items()}, n)
    idx = np.concatenate([rng.choice(g, size=want[d], replace=False) for d, g in groups.items()]).astype(np.int64)
    rng.shuffle(idx)
    return idx


def replay_rows(batch_size, replay_ratio):
    """Rows of a batch given to replay: round(batch_size * replay_ratio) (halves round up), but at most
    batch_size - 1, so the new text always has a row. replay_rows(8, 0.5) -> 4; replay_rows(4, 1.0) -> 3.
    """
    return min(batch_size - 1, math.floor(batch_size * replay_ratio + 0.5))


def mix_batch(new, pool, batch_size, replay_ratio, rng):
    """Rows for one training step, and a loss weight for each target token.

    new: the new sequences (the first batch_size - replay_rows(...) of them are used); pool: sequences to replay,
    of which min(replay_rows(...), len(pool)) are drawn uniformly without replacement with rng.choice.
    Returns (rows, weights): rows = used new sequences, then the replayed ones; weights[r] has one entry per target
    of rows[r] (len(rows[r]) - 1 of them). The new targets share 1 - replay_ratio equally, the replayed ones share
    replay_ratio; with nothing replayed, the new targets share all of it. Total weight: 1.
    """
    k = replay_rows(batch_size, replay_ratio)
    fresh = list(new[:batch_size - k])
    replayed = [pool[i] for i in rng.choice(len(pool), size=min(k, len(pool)), replace=False)]
    share_replay = replay_ratio if replayed else 0.0
    n_fresh = sum(len(r) - 1 for r in fresh)  # targets: a sequence of L ids predicts L - 1 next tokens
    n_replayed = sum(len(r) - 1 for r in replayed)
    weights = ([np.full(len(r) - 1, (1.0 - share_replay) / n_fresh) for r in fresh]
               + [np.full(len(r) - 1, share_replay / n_replayed) for r in replayed])
    return fresh + replayed, weights
