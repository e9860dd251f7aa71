"""Tests for lesson 11: each function against minimac's own version and hand-made cases."""
import numpy as np
import pytest

from minimac import metrics
from minimac.learner import mixing
from minimac.learner.strategies import LearnerConfig


def test_chunk_ids_small_case(ex):
    assert [list(c) for c in ex.chunk_ids(list(range(10)), 4)] == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8], [8, 9]]
    assert [list(c) for c in ex.chunk_ids([7, 8], 4)] == [[7, 8]]


@pytest.mark.parametrize("n, seq_len", [(2, 1), (17, 16), (100, 16), (33, 8), (64, 64)])
def test_chunk_ids_matches_minimac_and_covers_every_target_once(ex, n, seq_len):
    ids = list(range(100, 100 + n))
    mine = [list(c) for c in ex.chunk_ids(ids, seq_len)]
    assert mine == [c.tolist() for c in mixing.chunk_ids(ids, seq_len)]
    assert [t for c in mine for t in c[1:]] == ids[1:]


@pytest.mark.parametrize("batch_size, ratio, rows", [(8, 0.5, 4), (10, 0.3, 3), (10, 0.4, 4), (8, 0.0, 0),
                                                     (8, 1.0, 7), (4, 0.125, 1), (4, 0.1, 0)])
def test_replay_rows(ex, batch_size, ratio, rows):
    assert ex.replay_rows(batch_size, ratio) == rows
    assert rows == LearnerConfig(strategy="lora+replay", batch_size=batch_size, replay_ratio=ratio).replay_rows()


def test_mixed_batch_shifts_once_and_pads(ex):
    x, y, w = ex.mixed_batch([[5, 6, 7]], [[8, 9]], batch_size=3, seq_len=4, replay_ratio=0.5)
    assert x.tolist() == [[5, 6, 0, 0], [8, 0, 0, 0], [0, 0, 0, 0]]
    assert y.tolist() == [[6, 7, -1, -1], [9, -1, -1, -1], [-1, -1, -1, -1]]
    np.testing.assert_allclose(w, [[0.25, 0.25, 0, 0], [0.5, 0, 0, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.9])
def test_mixed_batch_matches_minimac(ex, ratio):
    rng = np.random.default_rng(int(ratio * 100))
    new = [rng.integers(1, 50, rng.integers(2, 10)).tolist() for _ in range(2)]
    old = [rng.integers(1, 50, rng.integers(2, 10)).tolist() for _ in range(3)]
    for replay in (old, []):
        mine = ex.mixed_batch(new, replay, 6, 9, ratio)
        ref = mixing.mixed_batch([np.array(c) for c in new], [np.array(c) for c in replay], 6, 9, ratio)
        for a, b in zip(mine, ref):
            np.testing.assert_allclose(np.asarray(a, dtype=np.float64), b, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.sum(mine[2]), 1.0, rtol=1e-6)


R = [[1.0, 3.0, 4.0],
     [1.2, 2.0, 3.0],
     [1.5, 2.5, 1.5]]


def test_forgetting_and_backward_transfer_by_hand(ex):
    np.testing.assert_allclose(ex.forgetting(R), [0.5, 0.5])
    np.testing.assert_allclose(ex.backward_transfer(R), -0.5)
    np.testing.assert_allclose(ex.forgetting([[1, 3], [2, 1]]), [1.0])


def test_forgetting_matches_minimac_on_random_matrices(ex):
    rng = np.random.default_rng(0)
    for stages in (2, 3, 5):
        Rr = rng.uniform(0.5, 4.0, (stages, stages))
        np.testing.assert_allclose(ex.forgetting(Rr), metrics.forgetting(Rr), rtol=1e-12)
        np.testing.assert_allclose(ex.backward_transfer(Rr), metrics.backward_transfer(Rr), rtol=1e-12)
        assert (np.asarray(ex.forgetting(Rr)) >= 0).all()


@pytest.mark.parametrize("n_chunks, epochs", [(1, 1.0), (3, 2.0), (1000, 1.0), (1000, 0.5), (77, 3.0)])
def test_default_steps_matches_minimac(ex, n_chunks, epochs):
    config = LearnerConfig(strategy="lora+replay", batch_size=8, replay_ratio=0.5, min_steps=30, epochs=epochs)
    assert ex.default_steps(n_chunks, 8, 4, epochs, 30) == config.default_steps(n_chunks)
