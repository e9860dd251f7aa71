"""Tests for lesson 15. `pytest lessons/15_hippocampus` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py.

Your functions are compared with float64 references written here and with minimac/neuro (hippocampus, sleep).
Run one stage at a time with -k, e.g. `pytest lessons/15_hippocampus -k stage1`.
"""
import numpy as np
import pytest

from minimac.neuro import hippocampus, sleep

RNG = np.random.default_rng(0)


def test_stage1_pattern_separation(ex):
    h = RNG.normal(size=(6, 128))
    W, b = hippocampus.dentate_projection(128, 4, seed=3)
    W, b = W.astype(np.float64), b.astype(np.float64)
    codes = ex.pattern_separation(h, W, b, 0.02)
    assert codes.shape == (6, 512) and np.all(np.count_nonzero(codes, axis=1) == 10)   # 2% of 4 x 128
    np.testing.assert_allclose(codes, hippocampus.pattern_separation(h, W, b, 0.02), rtol=1e-12)
    z = np.maximum(h @ W + b, 0)
    for row, c in zip(z, codes):
        top = np.argsort(-row)[:10]
        np.testing.assert_allclose(c[top], row[top], rtol=1e-12)


def test_stage1_few_positive_values(ex):
    h, W, b = np.ones((1, 2)), np.array([[1.0, -1, -1, -1], [0, -1, -1, -1]]), np.zeros(4)
    np.testing.assert_array_equal(ex.pattern_separation(h, W, b, 0.5), [[1, 0, 0, 0]])   # k = 2, one positive


def test_stage2_cosine_recall(ex):
    keys, q, imp = RNG.uniform(0, 1, (30, 16)), RNG.uniform(0, 1, 16), RNG.uniform(0, 2, 30)
    cos = np.array([k @ q / (np.linalg.norm(k) * np.linalg.norm(q)) for k in keys])
    idx, scores = ex.cosine_recall(q, keys, 4)
    np.testing.assert_array_equal(idx, np.argsort(-cos)[:4])
    np.testing.assert_allclose(scores, cos[idx], rtol=1e-6)
    for mine, ref in zip(ex.cosine_recall(q, keys, 4, imp), hippocampus.pattern_completion(q, keys, 4, imp)):
        np.testing.assert_allclose(mine, ref, rtol=1e-12)


def test_stage2_completion_recovers_a_stored_episode_from_a_noisy_cue(ex):
    W, b = hippocampus.dentate_projection(64, 4, seed=0)
    episodes = RNG.normal(size=(50, 64))
    keys = ex.pattern_separation(episodes, W, b, 0.05)
    cue = episodes[17] + RNG.normal(0, 0.3, 64)                     # a degraded version of episode 17
    idx, _ = ex.cosine_recall(ex.pattern_separation(cue[None], W, b, 0.05)[0], keys, 1)
    assert idx[0] == 17


def test_stage3_flip_tokens(ex):
    tokens = np.full((100, 50), 7)
    mask = np.ones_like(tokens)
    mask[:, 40:] = 0
    out = ex.flip_tokens(tokens, 0.1, 300, np.random.default_rng(0), mask)
    assert np.all(tokens == 7), "flip_tokens must not change its input"
    assert np.all(out[:, 40:] == 7) and 0.08 < np.mean(out[:, :40] != 7) < 0.12
    assert out.min() >= 0 and out.max() < 300
    assert np.all(ex.flip_tokens(tokens, 0.0, 300, np.random.default_rng(0)) == 7)


def test_stage4_coactivation_and_hebbian(ex):
    u, mask = RNG.normal(size=(3, 5, 4)), np.ones((3, 5))
    mask[1, 2:] = 0
    C = ex.coactivation(u, mask)
    want = sum(np.outer(u[i, t], u[i, t]) for i in range(3) for t in range(5) if mask[i, t])
    np.testing.assert_allclose(C, want, rtol=1e-12)
    B = RNG.normal(size=(6, 4))
    np.testing.assert_allclose(ex.replay_hebbian(B, C, 0.05), sleep.replay_hebbian(B, C, 0.05), rtol=1e-12)
    np.testing.assert_array_equal(ex.replay_hebbian(B, np.zeros((4, 4)), 0.05), B)
    new = ex.replay_hebbian(np.ones((2, 2)), np.diag([3.0, 1.0]), 0.1)
    assert np.all(new[:, 0] > 1) and np.all(new[:, 1] < 1)       # the busier direction grows


def test_stage5_prune(ex):
    w = np.array([0.0, 0.001, -0.002, 0.5, -0.3])
    new, n = ex.prune(w, 0.01, relative=False)
    np.testing.assert_array_equal(new, [0, 0, 0, 0.5, -0.3])
    assert n == 2
    w = RNG.normal(size=200)
    for rel in (True, False):
        mine, ref = ex.prune(w, 0.2, rel), sleep.prune(w, 0.2, rel)
        np.testing.assert_array_equal(mine[0], ref[0])
        assert mine[1] == ref[1] > 0


@pytest.mark.parametrize("sparsity", [0.01, 0.1])
def test_stage1_sparsity_matches_minimac(ex, sparsity):
    h = RNG.normal(size=(3, 32))
    W, b = hippocampus.dentate_projection(32, 4, seed=1)
    np.testing.assert_allclose(ex.pattern_separation(h, W, b, sparsity),
                               hippocampus.pattern_separation(h, W, b, sparsity), rtol=1e-6)
