"""Neuromodulation (minimac/neuro/neuromodulation.py): each modulator's formula against numpy, each one turning its
knob on a real learner when on, and leaving it alone when off."""
import math

import numpy as np
import pytest

from minimac.learner import ContinualLearner
from minimac.learner.strategies import LearnerConfig
from minimac.model import ModelConfig, Transformer
from minimac.neuro import lr_scales
from minimac.neuro.neuromodulation import (
    Neuromodulation,
    NeuromodulationConfig,
    dopamine_level,
    dopamine_step,
    serotonin_step,
    temperature,
)
from minimac.replay import Experience
from minimac.tokenizer import Tokenizer

ONLY = {m: {k: k == m for k in ("dopamine", "serotonin", "acetylcholine", "noradrenaline")}
        for m in ("dopamine", "serotonin", "acetylcholine", "noradrenaline")}


@pytest.fixture(scope="module")
def model():
    return Transformer(ModelConfig(vocab_size=300, d_model=32, num_layers=1, num_query_heads=2, num_kv_heads=1,
                                   d_ff=64, max_seq_len=16))


@pytest.fixture
def learner(model):
    return ContinualLearner(model, Tokenizer(), LearnerConfig(strategy="lora+replay+ewc", batch_size=4, seq_len=16,
                                                              learning_rate=1e-3))


def feed(nm, learner, losses):
    for i, loss in enumerate(losses):
        nm.on_step(learner, {"step": i + 1, "global_step": i + 1, "loss": loss, "ewc": 0.0, "grad_norm": 1.0})


def test_dopamine_matches_numpy_reference():
    cfg = NeuromodulationConfig()
    losses = 5 - np.linspace(0, 1, 20) + np.random.default_rng(0).normal(0, 0.05, 20)
    avg, trace, want = losses[0], 0.0, []
    for L in losses:                         # written out: relative RPE, its running mean, then the clip
        rpe = (avg - L) / avg
        trace = 0.9 * trace + 0.1 * rpe
        want.append(min(max(1 + 5.0 * trace, 0.1), 3.0))
        avg = 0.9 * avg + 0.1 * L
    avg, trace, got = losses[0], 0.0, []
    for L in losses:
        _, trace = dopamine_step(avg, trace, L, cfg)
        got.append(dopamine_level(trace, cfg))
        avg = 0.9 * avg + 0.1 * L
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_serotonin_rule_is_the_seeds_stability_plasticity_step():
    cfg = NeuromodulationConfig(serotonin_step=0.1, progress_threshold=0.01)
    assert serotonin_step(0.5, fast=3.0, slow=3.001, cfg=cfg) == pytest.approx(0.6)     # settled: stability
    assert serotonin_step(0.5, fast=3.0, slow=3.5, cfg=cfg) == pytest.approx(0.4)       # moving: plasticity
    assert serotonin_step(1.95, 3.0, 3.0, cfg) == 2.0 and serotonin_step(0.05, 3.0, 4.0, cfg) == 0.0  # [0, 2]


def test_temperature_formula():
    cfg = NeuromodulationConfig(base_temperature=0.8, temperature_gain=1.0)
    sig = lambda x: 1 / (1 + np.exp(-x))
    assert temperature(0.3, cfg) == pytest.approx(0.8)
    assert temperature(2.0, cfg) == pytest.approx(0.8 * (1 + sig(2.0) - sig(0.3)))


def test_dopamine_scales_the_learning_rate(learner):
    nm = Neuromodulation(NeuromodulationConfig(**ONLY["dopamine"]))
    feed(nm, learner, 5 - 0.05 * np.arange(20))            # the loss keeps beating its running average
    assert nm.dopamine > 1 and learner.learning_rate == pytest.approx(1e-3 * nm.dopamine)
    feed(nm, learner, [9.0] * 3)                             # far worse than expected: dopamine dips below 1
    assert nm.dopamine < 1 and learner.learning_rate < 1e-3


def test_serotonin_raises_replay_and_ewc_when_the_loss_settles(learner):
    nm = Neuromodulation(NeuromodulationConfig(**ONLY["serotonin"]))
    feed(nm, learner, [4.0] * 30)
    assert nm.serotonin > 0.5
    assert learner.replay_ratio > learner.config.replay_ratio and learner.ewc_lambda > learner.config.ewc_lambda
    assert learner.replay_ratio <= 0.9
    feed(nm, learner, 4.0 - 0.1 * np.arange(1, 40))          # learning fast again: plasticity
    assert learner.replay_ratio < learner.config.replay_ratio


def test_acetylcholine_gates_replay_importance_by_novelty(learner):
    nm = Neuromodulation(NeuromodulationConfig(**ONLY["acetylcholine"], novelty_gate=0.8))
    learner.replay.add(Experience([1, 2, 3], domain="base"))                 # from remember(): left alone
    learner.history.append({"domain": "a", "loss_before": 4.0})
    learner.replay.add_many([Experience([5, 6, 7 + i], domain="a") for i in range(3)])
    feed(nm, learner, [4.0])
    learner.history.append({"domain": "b", "loss_before": 2.0})              # half as surprising: below the gate
    learner.replay.add_many([Experience([9, 9, 9 + i], domain="b") for i in range(3)])
    feed(nm, learner, [4.0])
    learner.history.append({"domain": "c", "loss_before": 6.0})              # more novel than average
    learner.replay.add_many([Experience([8, 8, 8 + i], domain="c") for i in range(3)])
    nm.on_domain_end(learner, "c")
    imp = {e.domain: e.importance for e in learner.replay.experiences}
    assert imp["base"] == 1.0 and imp["a"] == pytest.approx(1.0) and imp["b"] == 0.0
    assert imp["c"] == pytest.approx(6.0 / (0.7 * 4.0 + 0.3 * 2.0))
    assert nm.counts["gated"] == 3 and nm.counts["tagged"] == 9
    for _ in range(5):   # every domain keeps its quota; b's items are all gated, so it falls back to them
        picked = nm.select_replay(learner, 4)
        assert {e.domain for e in picked} == {"a", "b", "base", "c"}


def test_acetylcholine_weighted_draw_prefers_important_items(learner):
    nm = Neuromodulation(NeuromodulationConfig(**ONLY["acetylcholine"]))
    learner.replay.add_many([Experience([1, i + 2], importance=0.0 if i else 5.0, domain="a") for i in range(6)])
    assert all(nm.select_replay(learner, 1)[0].importance == 5.0 for _ in range(10))


def test_noradrenaline_rises_with_surprise(learner):
    nm = Neuromodulation(NeuromodulationConfig(**ONLY["noradrenaline"]))
    feed(nm, learner, 5 - 0.01 * np.arange(20))
    assert nm.noradrenaline == pytest.approx(0.3) and nm.temperature == pytest.approx(0.8)
    feed(nm, learner, [8.0])                                  # a loss spike: surprise
    assert nm.noradrenaline > 0.4 and nm.temperature > 0.8


@pytest.mark.parametrize("on", ["dopamine", "serotonin", "acetylcholine", "noradrenaline"])
def test_each_modulator_off_leaves_the_other_knobs_alone(learner, on):
    nm = Neuromodulation(NeuromodulationConfig(**ONLY[on]))
    learner.replay.add(Experience([1, 2, 3], domain="a"))
    learner.history.append({"domain": "a", "loss_before": 4.0})
    feed(nm, learner, [5.0, 4.0, 3.0, 3.0, 3.0])
    assert (lr_scales(learner) != {}) == (on == "dopamine")
    assert (learner.replay_ratio != learner.config.replay_ratio) == (on == "serotonin")
    assert (learner.ewc_lambda != learner.config.ewc_lambda) == (on == "serotonin")
    assert ("novelty" in learner.replay.experiences[0].metadata) == (on == "acetylcholine")
    assert (nm.select_replay(learner, 1) is not None) == (on == "acetylcholine")
    s = {"loss": 3.0, "ewc": 0.0}
    nm.publish(s)
    assert ("neuromod.temperature" in s) == (on == "noradrenaline") and ("neuromod.dopamine" in s) == (on == "dopamine")


def test_nan_loss_is_ignored(learner):
    nm = Neuromodulation()
    feed(nm, learner, [5.0, math.nan, 4.0])
    assert math.isfinite(nm.dopamine) and math.isfinite(learner.learning_rate)


@pytest.mark.parametrize("field, value", [("reward_speed", 0.0), ("dopamine_min", 2.0), ("dopamine_max", 0.5),
                                          ("serotonin_init", 3.0), ("replay_max", 1.5), ("base_temperature", 0.0),
                                          ("novelty_gate", -1.0)])
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"NeuromodulationConfig.{field}"):
        NeuromodulationConfig(**{field: value})


def test_flags_must_be_bools():
    with pytest.raises(TypeError, match="NeuromodulationConfig.dopamine"):
        NeuromodulationConfig(dopamine="yes")
