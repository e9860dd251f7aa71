"""Hippocampus (minimac/neuro/hippocampus.py): pattern separation and completion against numpy, and the controller
used as the learner's replay selector (domain quotas kept, nearest episodes recalled)."""
import numpy as np
import pytest

from minimac.learner import ContinualLearner
from minimac.learner.strategies import LearnerConfig
from minimac.model import ModelConfig, Transformer
from minimac.neuro.hippocampus import (
    Hippocampus,
    HippocampusConfig,
    dentate_projection,
    pattern_completion,
    pattern_separation,
)
from minimac.replay import Experience
from minimac.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def model():
    return Transformer(ModelConfig(vocab_size=300, d_model=32, num_layers=1, num_query_heads=2, num_kv_heads=1,
                                   d_ff=64, max_seq_len=16))


@pytest.fixture
def learner(model):
    learner = ContinualLearner(model, Tokenizer(), LearnerConfig(strategy="lora+replay+ewc", batch_size=4, seq_len=16))
    rng = np.random.default_rng(0)
    for d, lo in (("prose", 97), ("code", 32)):      # two domains over different byte ranges (+1: the byte offset)
        learner.replay.add_many(Experience(rng.integers(lo + 1, lo + 27, 16), domain=d) for _ in range(10))
    return learner


def test_pattern_separation_matches_numpy_reference():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(5, 128))
    W, b = dentate_projection(128, 4, seed=1)
    codes = pattern_separation(h, W, b, 0.02)
    z = np.maximum(h @ W.astype(np.float64) + b, 0)
    k = int(0.02 * 512)                                          # 10 of 512 units: the seed's 2%
    want = np.zeros_like(z)
    for i, row in enumerate(z):
        top = np.argsort(-row)[:k]
        want[i, top] = row[top]
    np.testing.assert_allclose(codes, want, rtol=1e-6)
    assert np.all(np.count_nonzero(codes, axis=1) == k)
    assert np.abs(W).max() <= 1 / np.sqrt(128) and W.dtype == np.float32


def test_pattern_completion_is_cosine_times_importance():
    rng = np.random.default_rng(2)
    keys, q, imp = rng.uniform(0, 1, (20, 16)), rng.uniform(0, 1, 16), rng.uniform(0, 2, 20)
    cos = keys @ q / (np.linalg.norm(keys, axis=1) * np.linalg.norm(q))
    idx, scores = pattern_completion(q, keys, 3)
    np.testing.assert_array_equal(idx, np.argsort(-cos)[:3])
    np.testing.assert_allclose(scores, np.sort(cos)[::-1][:3], rtol=1e-6)
    idx, _ = pattern_completion(q, keys, 3, imp)
    np.testing.assert_array_equal(idx, np.argsort(-cos * imp)[:3])


def test_select_replay_recalls_the_nearest_episode_of_each_domain(learner):
    hip = Hippocampus(HippocampusConfig(recall_pool=1, encode_rows=4))
    cue = learner.replay.experiences[3].input_ids                 # a stored prose episode as the cue
    picked = hip.select_replay(learner, 2, new=[cue])
    assert sorted(e.domain for e in picked) == ["code", "prose"]   # the per-domain quotas hold
    assert any(e is learner.replay.experiences[3] for e in picked)  # its own trace is the nearest: completion
    items = learner.replay.experiences
    h = hip.encode(learner.model, [e.input_ids for e in items] + [cue], 16)   # check "nearest" independently
    codes = hip.separate(h)
    code_idx = [i for i, e in enumerate(items) if e.domain == "code"]
    cos = [codes[i] @ codes[-1] / (np.linalg.norm(codes[i]) * np.linalg.norm(codes[-1]) + 1e-8) for i in code_idx]
    assert next(e for e in picked if e.domain == "code") is items[code_idx[int(np.argmax(cos))]]
    assert hip.readout()["episodes"] == 20 and hip.recalls == 2


def test_codes_are_sparse_and_computed_once(learner):
    hip = Hippocampus(HippocampusConfig(encode_rows=4))
    assert hip.store(learner) == 20 and hip.store(learner) == 0
    assert hip.readout()["active_fraction"] == pytest.approx(int(0.02 * 4 * 32) / (4 * 32))


def test_learner_replays_what_the_hippocampus_selects(learner):
    hip = Hippocampus(HippocampusConfig(recall_pool=2, encode_rows=4))
    learner.controllers = [hip]
    rows = learner._replay_rows(4)                    # the learner's own replay path, as used at every step
    assert hip.recalls == 4 and len(rows) == 4
    assert {e.domain for e in rows} == {"prose", "code"}
    pools = {}                                        # with the most recent items as the cue, only the 2 nearest
    for e in rows:                                    # of each domain can come back: at most 2 distinct per domain
        pools.setdefault(e.domain, set()).add(e.hash)
    assert all(len(v) <= 2 for v in pools.values())


def test_the_learner_cues_recall_with_the_new_text(learner):
    hip = Hippocampus(HippocampusConfig(recall_pool=1, encode_rows=4))
    learner.controllers = [hip]
    items = learner.replay.experiences
    for i in (3, 14):                                 # a prose episode, then a code one, as the step's new text
        rows = learner._replay_rows(2, [items[i].input_ids])    # as learn_from_text calls it: n, the new chunks
        assert sorted(e.domain for e in rows) == ["code", "prose"]
        assert any(e is items[i] for e in rows)       # pattern completion: the episode most like the new text


def test_off_keeps_the_default_draw(learner):
    learner.controllers = []
    assert len(learner._replay_rows(4)) == 4          # the buffer's own per-domain draw, no controller involved


def test_empty_memory_returns_none(model):
    learner = ContinualLearner(model, Tokenizer(), LearnerConfig(strategy="lora+replay+ewc", batch_size=4, seq_len=16))
    assert Hippocampus().select_replay(learner, 2) is None


@pytest.mark.parametrize("field, value", [("sparsity", 0.0), ("sparsity", 1.5), ("expansion_factor", 0),
                                          ("recall_pool", 0), ("encode_rows", -1)])
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"HippocampusConfig.{field}"):
        HippocampusConfig(**{field: value})
