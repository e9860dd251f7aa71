"""The five-factor learning rate (minimac/neuro/autonomous_lr.py): formulas against numpy, the seed's saturation,
our relative mode, the real previous loss, and NaN / non-positive rates clamped and counted."""
import math

import numpy as np
import pytest

from minimac.learner import ContinualLearner
from minimac.learner.strategies import LearnerConfig
from minimac.model import ModelConfig, Transformer
from minimac.neuro import lr_scales, set_lr_scale
from minimac.neuro.autonomous_lr import SEED_STATE, AutonomousLR, AutonomousLRConfig, five_factors, update_statistics
from minimac.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def model():
    return Transformer(ModelConfig(vocab_size=300, d_model=32, num_layers=1, num_query_heads=2, num_kv_heads=1,
                                   d_ff=64, max_seq_len=16))


@pytest.fixture
def learner(model):
    return ContinualLearner(model, Tokenizer(), LearnerConfig(strategy="lora+replay+ewc", batch_size=4, seq_len=16,
                                                              learning_rate=1e-3))


def stats(loss=5.0, grad_norm=1.0, ewc=0.0, step=1):
    return {"step": step, "global_step": step, "loss": loss, "ewc": ewc, "grad_norm": grad_norm, "domain": "a"}


def reference(losses, norms, pes, alpha=0.01, uw=0.5, mw=0.1, sens=1.0):
    """The seed's update and factors, written out in float64 numpy, one step after another."""
    avgL, avgG, avgPE, succ, gvar, met = 1.0, 0.1, 1.0, 0.5, 0.1, 0.0
    out, prev = [], None
    for L, n, pe in zip(losses, norms, pes):
        n = np.asarray(n, dtype=np.float64)
        g = n.mean()
        avgG = (1 - alpha) * avgG + alpha * g
        if len(n) > 1:
            gvar = (1 - alpha) * gvar + alpha * np.var(n, ddof=1)
        avgL = (1 - alpha) * avgL + alpha * L
        avgPE = (1 - alpha) * avgPE + alpha * pe
        if prev is not None:
            succ = (1 - alpha) * succ + alpha * float(prev > L)
        met = 0.99 * met + 0.01 * g * avgL
        f = [np.sqrt(avgPE / (1 + avgL)), 1 / (1 + avgG), 1 + uw * np.sqrt(gvar), 0.5 + succ, 1 / (1 + mw * met)]
        out.append(sens * np.prod(f))
        prev = L
    return np.array(out)


def test_formulas_match_numpy_reference():
    rng = np.random.default_rng(0)
    losses = list(5 - np.linspace(0, 2, 40) + rng.normal(0, 0.2, 40))
    norms = [list(rng.uniform(0.1, 3.0, 5)) for _ in losses]          # per-tensor norms, as the seed had
    pes = [L * 0.9 for L in losses]
    cfg = AutonomousLRConfig.seed_defaults()
    state, got, prev = dict(SEED_STATE), [], None
    for L, n, pe in zip(losses, norms, pes):
        state = update_statistics(state, L, n, cfg.adaptation_speed, pe, prev)
        got.append(cfg.base_sensitivity * math.prod(five_factors(state, cfg).values()))
        prev = L
    np.testing.assert_allclose(got, reference(losses, norms, pes), rtol=1e-12)


def test_single_norm_uses_variance_over_steps():
    state = update_statistics(dict(SEED_STATE), 5.0, [2.1], alpha=0.5)
    assert state["gradient_variance"] == pytest.approx(0.5 * 0.1 + 0.5 * (2.1 - 0.1) ** 2)


def test_seed_mode_saturates_at_the_clamp():
    ctl, learner = AutonomousLR(AutonomousLRConfig.seed_defaults()), None
    raws = []
    for i in range(50):
        raw = ctl.update(5.0 - 0.02 * i, [0.5, 1.0, 2.0], previous_loss=ctl.previous_loss)
        ctl.previous_loss = 5.0 - 0.02 * i
        raws.append(raw)
        assert ctl.rate(raw, base_lr=1e-4) == 1e-2      # every step pinned at max_rate, as measured in the seed
    assert 0.5 < min(raws) and max(raws) < 1.0          # the product is ~0.7, 70x the clamp
    assert ctl.counts["saturated"] == 50
    del learner


def test_relative_mode_starts_at_the_configured_rate_and_follows_the_factors(learner):
    ctl = AutonomousLR()
    ctl.on_step(learner, stats(loss=5.0, grad_norm=1.0))
    assert learner.learning_rate == pytest.approx(1e-3)          # scale 1 at the first step: no saturation
    for i in range(30):                                           # gradients grow tenfold: the gradient factor drops
        ctl.on_step(learner, stats(loss=5.0, grad_norm=10.0, step=i + 2))
    assert 1e-4 <= learner.learning_rate < 1e-3
    assert ctl.counts["saturated"] == 0 and lr_scales(learner)["autonomous_lr"] == pytest.approx(ctl.scale)


def test_success_term_moves_with_the_real_previous_loss(learner):
    ctl = AutonomousLR()
    for i in range(100):
        ctl.on_step(learner, stats(loss=5.0 - 0.01 * i, step=i + 1))   # the loss falls every step
    assert ctl.state["success_rate"] > 0.8 and ctl.factors["meta"] > 1.3


def test_readout_is_published_into_the_step_stats(learner):
    s = stats()
    AutonomousLR().on_step(learner, s)
    assert {"autonomous_lr.lr", "autonomous_lr.f_error", "autonomous_lr.lr_clamped"} <= set(s)
    assert s["autonomous_lr.lr"] == learner.learning_rate


def test_nan_inputs_are_skipped_and_counted(learner):
    ctl = AutonomousLR()
    ctl.on_step(learner, stats(loss=5.0))
    before = learner.learning_rate
    ctl.on_step(learner, stats(loss=math.nan, step=2))
    assert ctl.counts["nonfinite_inputs"] == 1 and learner.learning_rate == before
    assert math.isfinite(ctl.state["avg_loss"])


def test_nan_or_nonpositive_rate_is_clamped_and_reported(learner):
    ctl = AutonomousLR()
    ctl.on_step(learner, stats(loss=-0.5))        # a negative loss makes sqrt(avgPE / (1 + avgL)) NaN
    assert math.isnan(ctl.factors["error"])
    assert ctl.counts["lr_clamped"] == 1
    assert math.isfinite(learner.learning_rate) and learner.learning_rate > 0


def test_lr_scales_compose_and_clamp(learner):
    assert not set_lr_scale(learner, "a", 2.0)
    assert not set_lr_scale(learner, "b", 0.25)
    assert learner.learning_rate == pytest.approx(1e-3 * 0.5)
    assert set_lr_scale(learner, "a", math.nan)               # NaN: the previous factor is kept
    assert learner.learning_rate == pytest.approx(1e-3 * 0.5)
    assert set_lr_scale(learner, "b", -1.0)                   # non-positive: the floor, never <= 0
    assert 0 < learner.learning_rate < 1e-9


def test_off_means_untouched(learner):
    assert learner.learning_rate == learner.config.lr and lr_scales(learner) == {}


@pytest.mark.parametrize("field, value", [("adaptation_speed", 0.0), ("adaptation_speed", 1.5),
                                          ("base_sensitivity", -1.0), ("min_scale", 2.0), ("max_scale", 0.5),
                                          ("max_rate", 1e-9), ("uncertainty_weight", math.nan)])
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"AutonomousLRConfig.{field}"):
        AutonomousLRConfig(**{field: value})


def test_invalid_mode_and_type():
    with pytest.raises(ValueError, match="mode"):
        AutonomousLRConfig(mode="fast")
    with pytest.raises(TypeError, match="AutonomousLRConfig"):
        AutonomousLR(config={"mode": "seed"})
