"""Tests for lesson 11: each function against minimac's own version and hand-made cases; stage 5 on a tiny model.

`pytest lessons/11_learner` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py. One stage at a time:
`pytest lessons/11_learner -k stage1`.
"""
import numpy as np
import pytest
from tinygrad import Tensor

from minimac.learner import ContinualLearner, mixing
from minimac.learner.strategies import LearnerConfig
from minimac.model import ModelConfig, Transformer
from minimac.tokenizer import Tokenizer


def test_stage1_chunk_ids_small_case(ex):
    assert [list(c) for c in ex.chunk_ids(list(range(10)), 4)] == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8], [8, 9]]
    assert [list(c) for c in ex.chunk_ids([7, 8], 4)] == [[7, 8]]


@pytest.mark.parametrize("n, seq_len", [(2, 1), (17, 16), (100, 16), (33, 8), (64, 64)])
def test_stage1_chunk_ids_matches_minimac_and_covers_every_target_once(ex, n, seq_len):
    ids = list(range(100, 100 + n))
    mine = [list(c) for c in ex.chunk_ids(ids, seq_len)]
    assert mine == [c.tolist() for c in mixing.chunk_ids(ids, seq_len)]
    assert [t for c in mine for t in c[1:]] == ids[1:]


@pytest.mark.parametrize("batch_size, ratio, rows", [(8, 0.5, 4), (10, 0.3, 3), (10, 0.4, 4), (8, 0.0, 0),
                                                     (8, 1.0, 7), (4, 0.125, 1), (4, 0.1, 0)])
def test_stage2_replay_rows(ex, batch_size, ratio, rows):
    assert ex.replay_rows(batch_size, ratio) == rows
    assert rows == LearnerConfig(strategy="lora+replay", batch_size=batch_size, replay_ratio=ratio).replay_rows()


def test_stage3_mixed_batch_shifts_once_and_pads(ex):
    x, y, w = ex.mixed_batch([[5, 6, 7]], [[8, 9]], batch_size=3, seq_len=4, replay_ratio=0.5)
    assert x.tolist() == [[5, 6, 0, 0], [8, 0, 0, 0], [0, 0, 0, 0]]
    assert y.tolist() == [[6, 7, -1, -1], [9, -1, -1, -1], [-1, -1, -1, -1]]
    np.testing.assert_allclose(w, [[0.25, 0.25, 0, 0], [0.5, 0, 0, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.9])
def test_stage3_mixed_batch_matches_minimac(ex, ratio):
    rng = np.random.default_rng(int(ratio * 100))
    new = [rng.integers(1, 50, rng.integers(2, 10)).tolist() for _ in range(2)]
    old = [rng.integers(1, 50, rng.integers(2, 10)).tolist() for _ in range(3)]
    for replay in (old, []):
        mine = ex.mixed_batch(new, replay, 6, 9, ratio)
        ref = mixing.mixed_batch([np.array(c) for c in new], [np.array(c) for c in replay], 6, 9, ratio)
        for a, b in zip(mine, ref):
            np.testing.assert_allclose(np.asarray(a, dtype=np.float64), b, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.sum(mine[2]), 1.0, rtol=1e-6)


@pytest.mark.parametrize("n_chunks, epochs", [(1, 1.0), (3, 2.0), (1000, 1.0), (1000, 0.5), (77, 3.0)])
def test_stage4_default_steps_matches_minimac(ex, n_chunks, epochs):
    config = LearnerConfig(strategy="lora+replay", batch_size=8, replay_ratio=0.5, min_steps=30, epochs=epochs)
    assert ex.default_steps(n_chunks, 8, 4, epochs, 30) == config.default_steps(n_chunks)


# Stage 5: a one-layer model on the byte tokenizer learns prose, then numbers, with naive full fine-tuning.
# Its embeddings are scaled up (std 0.2) so that an untrained model can make some tokens likely at all.
PROSE = "The cat sat on the mat, and the dog lay by the door. " * 12
NUMBERS = " ".join(str(i * i) for i in range(150))
SETS = {"base": "A quiet morning by the river, with a book. " * 4, "prose": PROSE[-300:], "numbers": NUMBERS[-300:]}
EVERY, STEPS = 5, 20


@pytest.fixture(scope="module")
def run(ex):
    Tensor.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=300, d_model=32, num_layers=1, num_query_heads=2, num_kv_heads=1,
                                    d_ff=64, max_seq_len=32))
    model.token_embedding.weight.assign(model.token_embedding.weight * 10).realize()
    curves = ex.LearningCurves(dict(SETS), EVERY)
    learner = ContinualLearner(model, Tokenizer(), LearnerConfig(strategy="full", batch_size=4, seq_len=16,
                                                                 learning_rate=1e-2), controllers=[curves])
    learner.learn_stream([("prose", PROSE), ("numbers", NUMBERS)], eval_sets=SETS, base="base", steps=STEPS)
    return learner, curves.rows


def test_stage5_a_row_every_few_steps(run):
    _, rows = run
    assert [r["step"] for r in rows] == list(range(EVERY, 2 * STEPS + 1, EVERY))
    assert [r["domain"] for r in rows] == ["prose"] * (STEPS // EVERY) + ["numbers"] * (STEPS // EVERY)
    assert all(set(SETS) <= set(r) for r in rows), "each row holds bits per byte on every eval set"


def test_stage5_rows_are_the_learners_own_measurements(run):
    learner, rows = run
    at_change, last = rows[STEPS // EVERY - 1], rows[-1]
    R = learner.r_matrix
    for j, name in enumerate(R.sets):   # R row 1: after prose; row 2: after numbers (no EWC: nothing moves between)
        np.testing.assert_allclose(at_change[name], R.values[1][j], rtol=1e-5)
        np.testing.assert_allclose(last[name], R.values[2][j], rtol=1e-5)


def test_stage5_the_domain_change_shows(run):
    _, rows = run
    first, second = rows[: STEPS // EVERY], rows[STEPS // EVERY:]
    assert second[-1]["numbers"] < first[-1]["numbers"], "numbers are learned in their own stage"
    assert second[-1]["prose"] > first[-1]["prose"], "naive fine-tuning on numbers forgets some prose"
