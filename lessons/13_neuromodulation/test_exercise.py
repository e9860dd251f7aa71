"""Tests for lesson 13. `pytest lessons/13_neuromodulation` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py.

Your functions are compared with float64 references written here and with minimac/neuro (which the library uses).
Run one stage at a time with -k, e.g. `pytest lessons/13_neuromodulation -k stage1`.
"""
import math

import numpy as np
import pytest

from minimac.neuro import autonomous_lr as alr
from minimac.neuro import neuromodulation as nm

RNG = np.random.default_rng(0)
LOSSES = list(5 - np.linspace(0, 1.5, 30) + RNG.normal(0, 0.1, 30))
NORMS = [list(RNG.uniform(0.2, 2.0, 4)) for _ in LOSSES]


def test_stage1_update_statistics_matches_minimac(ex):
    mine, ref, prev = dict(ex.INITIAL_STATE), dict(alr.SEED_STATE), None
    for loss, norms in zip(LOSSES, NORMS):
        mine = ex.update_statistics(mine, loss, norms, 0.05, prediction_error=0.9 * loss, previous_loss=prev)
        ref = alr.update_statistics(ref, loss, norms, 0.05, 0.9 * loss, prev)
        prev = loss
    for k in ref:
        assert mine[k] == pytest.approx(ref[k], rel=1e-12), k


def test_stage1_update_statistics_edge_cases(ex):
    state = dict(ex.INITIAL_STATE)
    new = ex.update_statistics(state, 3.0, [0.5], alpha=0.5)
    assert state == ex.INITIAL_STATE, "update_statistics must return a new dict"
    assert new["gradient_variance"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.4 ** 2)    # one norm: over steps
    assert new["avg_prediction_error"] == new["avg_loss"] == pytest.approx(2.0)      # no prediction error given
    assert new["success_rate"] == 0.5                                                # no previous loss given


def test_stage1_five_factors(ex):
    f = ex.five_factors(ex.INITIAL_STATE)
    assert f["error"] == pytest.approx(math.sqrt(0.5)) and f["meta"] == 1.0 and f["metabolic"] == 1.0
    state = alr.update_statistics(dict(alr.SEED_STATE), 4.0, [1.0, 3.0], 0.1, 3.0, 5.0)
    ref = alr.five_factors(state, alr.AutonomousLRConfig(uncertainty_weight=0.3, metabolic_cost_weight=0.2))
    mine = ex.five_factors(state, 0.3, 0.2)
    assert set(mine) == set(ref)
    for k in ref:
        assert mine[k] == pytest.approx(ref[k], rel=1e-12), k


def test_stage2_the_designed_rate_saturates(ex):
    state, prev = dict(ex.INITIAL_STATE), None
    for loss, norms in zip(LOSSES, NORMS):
        state = alr.update_statistics(state, loss, norms, 0.01, None, prev)
        prev = loss
        product = math.prod(alr.five_factors(state, alr.AutonomousLRConfig()).values())
        assert 0.4 < product < 1.2
        assert ex.clamped_rate(product) == 0.01        # pinned at max_rate: the product is ~70x the clamp
    assert ex.clamped_rate(1e-9) == 1e-6 and ex.clamped_rate(0.004, sensitivity=0.5) == pytest.approx(0.002)


def test_stage2_relative_rate(ex):
    assert ex.relative_rate(0.7, 0.7, 2e-3) == pytest.approx(2e-3)
    assert ex.relative_rate(0.35, 0.7, 2e-3) == pytest.approx(1e-3)
    assert ex.relative_rate(0.35, 0.7, 2e-3, sensitivity=2.0) == pytest.approx(5e-4)
    assert ex.relative_rate(70.0, 0.7, 2e-3) == pytest.approx(2e-2)          # clipped at max_scale
    assert ex.relative_rate(1e-6, 0.7, 2e-3) == pytest.approx(2e-4)          # clipped at min_scale
    ctl = alr.AutonomousLR()                                                  # what minimac does with a product
    raw = ctl.update(4.0, [1.0])
    assert ctl.rate(raw, 2e-3) == pytest.approx(ex.relative_rate(raw, raw, 2e-3))


def test_stage3_dopamine(ex):
    assert ex.dopamine_step(4.0, 0.0, 3.0) == pytest.approx((0.25, 0.025))
    assert ex.dopamine_level(0.025) == pytest.approx(1.125)
    assert ex.dopamine_level(-1.0) == 0.1 and ex.dopamine_level(1.0) == 3.0
    cfg = nm.NeuromodulationConfig(dopamine_speed=0.2, dopamine_gain=3.0)
    avg, mine, ref = LOSSES[0], 0.0, 0.0
    for loss in LOSSES:
        _, mine = ex.dopamine_step(avg, mine, loss, 0.2)
        _, ref = nm.dopamine_step(avg, ref, loss, cfg)
        assert ex.dopamine_level(mine, 3.0) == pytest.approx(nm.dopamine_level(ref, cfg), rel=1e-12)
        avg = 0.9 * avg + 0.1 * loss


def test_stage4_serotonin(ex):
    assert ex.serotonin_step(0.5, 3.0, 3.0) == pytest.approx(0.51)
    assert ex.serotonin_step(0.5, 3.0, 3.05) == pytest.approx(0.51)     # within 2%: settled
    assert ex.serotonin_step(0.5, 3.0, 3.5) == pytest.approx(0.49)
    assert ex.serotonin_step(1.99, 3.0, 3.0) == 2.0 and ex.serotonin_step(0.01, 2.0, 3.0) == 0.0
    cfg = nm.NeuromodulationConfig(serotonin_step=0.05, progress_threshold=0.02)
    for fast, slow in [(3.0, 3.01), (3.0, 3.2), (2.0, 1.5)]:
        assert ex.serotonin_step(1.0, fast, slow, 0.05, 0.02) == pytest.approx(nm.serotonin_step(1.0, fast, slow, cfg))
