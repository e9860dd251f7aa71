"""Tests for lesson 09. `pytest lessons/09_replay` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py.

Each stage compares your numpy functions with exact probabilities, with statistics over many random trials, and with
minimac's own ReplayBuffer (minimac/replay.py) and batch mixing (minimac/learner/mixing.py). Randomness is seeded, so a
test that passes passes every time. Run one stage at a time with -k, e.g. `pytest lessons/09_replay -k stage1`.
"""
import itertools

import numpy as np
import pytest

from minimac.learner.mixing import mixed_batch
from minimac.learner.strategies import LearnerConfig
from minimac.replay import Experience, ReplayBuffer


def test_stage1_reservoir_fills_then_replaces(ex):
    memory, rng = [], np.random.default_rng(0)
    assert all(ex.reservoir_add(memory, item, n, 3, rng) for n, item in enumerate("abc", start=1))
    assert memory == ["a", "b", "c"]
    stored = [ex.reservoir_add(memory, item, n, 3, rng) for n, item in enumerate("defghijklm", start=4)]
    assert len(memory) == 3 and 0 < sum(stored) < 10  # full: some new items get in, some do not
    assert set(memory) <= set("abcdefghijklm")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stage1_reservoir_matches_minimac(ex, seed):
    """Same seed, same draws: your memory holds exactly what ReplayBuffer(policy="reservoir") holds, slot by slot."""
    buf, memory, rng = ReplayBuffer(10, "reservoir", seed=seed), [], np.random.default_rng(seed)
    for n in range(1, 201):
        assert ex.reservoir_add(memory, n, n, 10, rng) == buf.add(Experience([n]))
    assert memory == [int(e.input_ids[0]) for e in buf.experiences]


def test_stage1_every_item_survives_with_probability_m_over_n(ex):
    N, m, trials = 50, 10, 4000
    rng, kept = np.random.default_rng(0), np.zeros(N)
    for _ in range(trials):
        memory = []
        for n in range(1, N + 1):
            ex.reservoir_add(memory, n - 1, n, m, rng)
        kept[memory] += 1
    freq = kept / trials
    # binomial standard deviation sqrt(0.2 * 0.8 / 4000) = 0.0063; 0.035 is more than 5 of them
    np.testing.assert_allclose(freq, m / N, atol=0.035)
    assert abs(freq[:N // 2].mean() - freq[N // 2:].mean()) < 0.02  # no lean towards early or late items


def exact_inclusion(weights, k):
    """P(index i is among the k draws) of successive sampling, by summing over every ordered sequence of draws."""
    w = np.asarray(weights, dtype=np.float64)
    p = np.zeros(len(w))
    for seq in itertools.permutations(range(len(w)), k):
        prob, left = 1.0, w.sum()
        for i in seq:
            prob, left = prob * w[i] / left, left - w[i]
        p[list(seq)] += prob
    return p


def test_stage2_draws_are_distinct_and_skip_zero_weights(ex):
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = ex.weighted_sample_without_replacement([0.0, 1.0, 5.0, 0.0, 2.0, 1.0], 3, rng)
        assert len(idx) == 3 and len({int(i) for i in idx}) == 3
        assert not {0, 3} & {int(i) for i in idx}
    with pytest.raises(ValueError):
        ex.weighted_sample_without_replacement([1.0, 0.0, 0.0], 2, rng)


def test_stage2_inclusion_probabilities_are_exact(ex):
    weights, k, trials = [1.0, 2.0, 3.0, 4.0, 10.0], 2, 20000
    rng = np.random.default_rng(1)
    first, included = np.zeros(5), np.zeros(5)
    for _ in range(trials):
        idx = ex.weighted_sample_without_replacement(weights, k, rng)
        first[idx[0]] += 1
        included[idx] += 1
    np.testing.assert_allclose(first / trials, np.array(weights) / sum(weights), atol=0.015)  # the first draw: ∝ w
    np.testing.assert_allclose(included / trials, exact_inclusion(weights, k), atol=0.015)   # not 2 * w / sum(w)!


def test_stage2_agrees_with_numpy_and_minimac(ex):
    """numpy's Generator.choice(replace=False, p=...) and ReplayBuffer.sample draw the same way (successive sampling)."""
    weights, k, trials = [0.5, 1.0, 1.0, 4.0], 2, 8000
    rng, buf = np.random.default_rng(2), ReplayBuffer(4, seed=3)
    for i, w in enumerate(weights):
        buf.add(Experience([i + 1], importance=w))
    mine, numpy_, minimac_ = np.zeros(4), np.zeros(4), np.zeros(4)
    for _ in range(trials):
        mine[ex.weighted_sample_without_replacement(weights, k, rng)] += 1
        numpy_[rng.choice(4, size=k, replace=False, p=np.array(weights) / sum(weights))] += 1
        minimac_[[int(e.input_ids[0]) - 1 for e in buf.sample(k)]] += 1
    np.testing.assert_allclose(mine / trials, numpy_ / trials, atol=0.03)
    np.testing.assert_allclose(mine / trials, minimac_ / trials, atol=0.03)


def test_stage3_domain_quota(ex):
    assert ex.domain_quota({"a": 1, "b": 5}, 4) == {"a": 1, "b": 3}
    assert ex.domain_quota({"a": 3, "b": 3, "c": 3}, 7) == {"a": 3, "b": 2, "c": 2}
    assert ex.domain_quota({"a": 2, "b": 1}, 10) == {"a": 2, "b": 1}  # asking for more than there is: everything
    assert ex.domain_quota({"x": 4, "y": 0, "z": 4}, 5) == {"x": 3, "y": 0, "z": 2}


def stream(domains_and_sizes):
    domains = [d for d, size in domains_and_sizes for _ in range(size)]
    return domains, [Experience([i + 1], domain=d) for i, d in enumerate(domains)]


def test_stage3_balanced_counts_and_membership(ex):
    domains, _ = stream([("code", 30), ("news", 4), ("chat", 10)])
    rng = np.random.default_rng(0)
    for n in (3, 9, 12, 20, 100):
        idx = [int(i) for i in ex.balanced_by_domain(domains, n, rng)]
        assert len(idx) == len(set(idx)) == min(n, len(domains))
        counts = {d: sum(domains[i] == d for i in idx) for d in sorted(set(domains))}
        assert counts == ex.domain_quota({"chat": 10, "code": 30, "news": 4}, n)


@pytest.mark.parametrize("seed", [0, 7])
def test_stage3_matches_minimac_sample_by_domain(ex, seed):
    """Same seed, same calls (rng.choice per domain in sorted order, then rng.shuffle): the very same items."""
    domains, exps = stream([("b", 6), ("a", 15), ("c", 2)])
    buf = ReplayBuffer(100, seed=seed)
    buf.add_many(exps)
    mine = [int(i) for i in ex.balanced_by_domain(domains, 9, np.random.default_rng(seed))]
    assert mine == [int(e.input_ids[0]) - 1 for e in buf.sample_by_domain(9)]


def test_stage4_replay_rows_match_the_learner(ex):
    assert ex.replay_rows(8, 0.5) == 4 and ex.replay_rows(4, 1.0) == 3 and ex.replay_rows(8, 0.0) == 0
    assert ex.replay_rows(8, 0.3) != ex.replay_rows(8, 0.4)  # int(8 * 0.7) == int(8 * 0.6): truncation would tie them
    for batch_size, ratio in itertools.product([2, 4, 8, 10, 16], [0.0, 0.1, 0.25, 0.3, 0.4, 0.5, 0.75, 0.9, 1.0]):
        config = LearnerConfig(strategy="lora+replay", batch_size=batch_size, replay_ratio=ratio)
        assert ex.replay_rows(batch_size, ratio) == config.replay_rows()


def sequences(rng, n, low=2, high=12):
    return [rng.integers(1, 100, size=int(rng.integers(low, high))) for _ in range(n)]


@pytest.mark.parametrize("batch_size,ratio", [(8, 0.5), (8, 0.25), (6, 0.7), (4, 0.0)])
def test_stage4_mix_batch_matches_mixed_batch(ex, batch_size, ratio):
    rng = np.random.default_rng(batch_size)
    new, pool = sequences(rng, 10), sequences(rng, 20)
    rows, weights = ex.mix_batch(new, pool, batch_size, ratio, np.random.default_rng(0))
    k = ex.replay_rows(batch_size, ratio)
    assert len(rows) == len(weights) == batch_size
    assert all(r is n for r, n in zip(rows, new[:batch_size - k]))          # the new text first, in order
    replayed = rows[batch_size - k:]
    assert len({id(r) for r in replayed}) == k and all(any(r is p for p in pool) for r in replayed)
    assert [len(w) for w in weights] == [len(r) - 1 for r in rows]
    np.testing.assert_allclose(sum(w.sum() for w in weights), 1.0)
    if k:
        np.testing.assert_allclose(sum(w.sum() for w in weights[batch_size - k:]), ratio)
    _, _, w = mixed_batch(rows[:batch_size - k], replayed, batch_size, seq_len=12, replay_ratio=ratio)
    for r, row_weights in enumerate(weights):  # the same per-token loss weights as minimac's batches
        np.testing.assert_allclose(w[r, :len(row_weights)], row_weights, rtol=1e-6)
        assert not w[r, len(row_weights):].any()


def test_stage4_empty_pool_gives_the_new_text_everything(ex):
    rng = np.random.default_rng(0)
    new = sequences(rng, 3)
    rows, weights = ex.mix_batch(new, [], 8, 0.5, rng)
    assert len(rows) == 3 and all(r is n for r, n in zip(rows, new))
    np.testing.assert_allclose(sum(w.sum() for w in weights), 1.0)
    short = [np.array([1, 2]), np.array([3, 4, 5, 6, 7, 8, 9])]  # by token, not by row: 1 target vs 6
    rows, weights = ex.mix_batch(short, sequences(rng, 5), 4, 0.5, rng)
    np.testing.assert_allclose([weights[0].sum(), weights[1].sum()], [0.5 / 7, 0.5 * 6 / 7])
