"""Homeostasis (minimac/neuro/homeostasis.py): the update rule and the probe against numpy, identity at install,
nothing leaks into the model's parameters, and the rule pulls drifted units back to their set point."""
from types import SimpleNamespace

import numpy as np
import pytest
from tinygrad import Tensor

from minimac.model import ModelConfig, Transformer
from minimac.neuro.homeostasis import Homeostasis, HomeostasisConfig, HomeostaticSwiGLU, homeostatic_update, install
from minimac.replay import Experience, ReplayBuffer


@pytest.fixture(scope="module")
def model():
    return Transformer(ModelConfig(vocab_size=300, d_model=32, num_layers=1, num_query_heads=2, num_kv_heads=1,
                                   d_ff=64, max_seq_len=16))


@pytest.fixture
def homeo(model):
    h = Homeostasis(model, HomeostasisConfig(probe_every=2, probe_rows=4))
    yield h
    h.remove()


TOKENS = np.random.default_rng(0).integers(1, 300, (4, 16)).astype(np.int32)
TOKENS[3, 10:] = 0   # padding: must not count


def test_update_matches_numpy_reference():
    rng = np.random.default_rng(1)
    avg, thr, gain = rng.uniform(0, 1, 8), rng.normal(0, 1, 8), rng.uniform(0.5, 2, 8)
    rate, std, t_rate, t_std = rng.uniform(0, 1, 8), rng.uniform(0.1, 2, 8), rng.uniform(0, 1, 8), rng.uniform(0.1, 2, 8)
    seed = HomeostasisConfig.seed_defaults()
    a, t, g = homeostatic_update(avg, thr, gain, rate, std, seed, 0.1)
    want_a = (1 - 1 / 1000) * avg + rate / 1000
    np.testing.assert_allclose(a, want_a, rtol=1e-12)
    np.testing.assert_allclose(t, np.clip(thr + 0.01 * (want_a - 0.1), -5, 5), rtol=1e-12)
    np.testing.assert_allclose(g, np.clip(0.999 * gain + 0.001 / (std + 1e-8), 0.1, 10), rtol=1e-12)
    ours = HomeostasisConfig()
    a, t, g = homeostatic_update(avg, thr, gain, rate, std, ours, t_rate, t_std)
    want_a = 0.9 * avg + 0.1 * rate
    np.testing.assert_allclose(t, np.clip(thr + 1.0 * (want_a - t_rate), -5, 5), rtol=1e-12)
    np.testing.assert_allclose(g, np.clip(0.9 * gain + 0.1 * gain * t_std / (std + 1e-8), 0.1, 10), rtol=1e-12)


def test_install_is_identity_and_invisible_to_parameters(model):
    keys, n_params = set(model.state_dict()), len(model.parameters())
    x = Tensor(np.random.default_rng(1).normal(size=(4, 16, 32)).astype(np.float32))
    plain = model.layers[0].feed_forward
    before = plain(x).numpy()
    h = Homeostasis(model)
    try:
        wrapped = model.layers[0].feed_forward
        assert isinstance(wrapped, HomeostaticSwiGLU) and wrapped.w1 is plain.w1
        np.testing.assert_allclose(wrapped(x).numpy(), before, rtol=1e-5, atol=1e-6)   # gain 1, threshold 0
        assert set(model.state_dict()) == keys and len(model.parameters()) == n_params   # gain/threshold hidden
        with pytest.raises(TypeError, match="already has a homeostatic"):
            install(model)
    finally:
        h.remove()
    assert model.layers[0].feed_forward is plain


def test_probe_matches_numpy_reference(model, homeo):
    blk = model.layers[0]
    x = model.token_embedding(Tensor(TOKENS))
    ffn_in = blk.ffn_norm(x + blk.attention(blk.attention_norm(x))).numpy().astype(np.float64)   # (4, 16, 32)
    y = ffn_in @ blk.feed_forward.w1.weight.numpy().astype(np.float64).T                          # (4, 16, 64)
    mask = (TOKENS != 0)
    rate, std = homeo.probe(TOKENS)
    np.testing.assert_allclose(rate[0], (1 / (1 + np.exp(-y)))[mask].mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(std[0], y[mask].std(0), rtol=1e-3, atol=1e-5)


def test_setpoint_rule_pulls_drifted_units_back(model, homeo):
    homeo.step(TOKENS)                                        # first probe: set points, no change
    assert np.allclose(homeo.threshold, 0, atol=1e-12) and np.allclose(homeo.gain, 1)
    w1 = model.layers[0].feed_forward.w1.weight
    saved = w1.numpy().copy()
    try:
        w1.assign(Tensor(saved * 1.5)).realize()              # a "new domain" makes every gate 1.5x sharper
        homeo.step(TOKENS)
        first = homeo.last["drift"]
        for _ in range(25):
            homeo.step(TOKENS)
        assert homeo.last["drift"] < 0.5 * first               # back towards each unit's own rate
        assert 0.6 < homeo.gain.mean() < 0.9                   # the gain undoes most of the 1.5x
        g = model.layers[0].feed_forward.units.gain.numpy()    # the knob the forward pass reads
        np.testing.assert_allclose(g, homeo.gain[0], rtol=1e-6)
    finally:
        w1.assign(Tensor(saved)).realize()


def test_seed_rule_shuts_the_gates_of_a_swiglu(model):
    h = Homeostasis(model, HomeostasisConfig(rule="seed", tau=2.0, threshold_lr=1.0))
    try:
        for _ in range(6):
            h.step(TOKENS)
        assert h.threshold.mean() > 0.5 and h.last["rate"] < 0.4   # target 0.1 vs rates near 0.5
    finally:
        h.remove()


def test_on_step_probes_replay_items_and_publishes(homeo):
    replay = ReplayBuffer(10)
    learner = SimpleNamespace(replay=replay, config=SimpleNamespace(seq_len=16))
    s = {"global_step": 1, "loss": 3.0}
    homeo.on_step(learner, s)                                   # empty memory: nothing to probe
    assert homeo.probes == 0 and s["homeostasis.probes"] == 0
    replay.add_many(Experience(row[row != 0]) for row in TOKENS)
    for step in range(1, 5):
        homeo.on_step(learner, {"global_step": step, "loss": 3.0})
    assert homeo.probes == 2                                    # steps 1 and 3 (probe_every=2)
    assert 0 <= homeo.readout()["dead_fraction"] <= 1


def test_dead_fraction_counts_silent_units(homeo):
    homeo.step(TOKENS)
    homeo.avg[0, :16] = 0.0
    assert homeo.readout()["dead_fraction"] == pytest.approx(16 / 64)


@pytest.mark.parametrize("field, value", [("tau", 0.5), ("target_rate", 1.0), ("min_gain", 0.0),
                                          ("max_gain", 0.5), ("scaling_rate", 2.0), ("probe_every", 0),
                                          ("probe_rows", 1.5)])
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"HomeostasisConfig.{field}"):
        HomeostasisConfig(**{field: value})


def test_invalid_rule():
    with pytest.raises(ValueError, match="HomeostasisConfig.rule"):
        HomeostasisConfig(rule="fast")
