"""Tests for lesson 14. `pytest lessons/14_homeostasis` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py.

Your functions are compared with float64 references written here and with minimac/neuro (homeostasis, dendritic).
Run one stage at a time with -k, e.g. `pytest lessons/14_homeostasis -k stage1`.
"""
import numpy as np
import pytest
from tinygrad import Tensor

from minimac.neuro import dendritic, homeostasis

RNG = np.random.default_rng(0)


def test_stage1_gate_rates(ex):
    y = RNG.normal(0, 2, (3, 5, 8))
    mask = np.ones((3, 5))
    mask[2, 3:] = 0
    rate, std = ex.gate_rates(y, mask)
    rows = y.reshape(-1, 8)[mask.reshape(-1) == 1]
    np.testing.assert_allclose(rate, (1 / (1 + np.exp(-rows))).mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, rows.std(0), rtol=1e-12)
    y[2, 4] = 1e6                                    # padding must not count
    np.testing.assert_allclose(ex.gate_rates(y, mask)[0], rate, rtol=1e-12)


def test_stage2_setpoint_rule_matches_minimac(ex):
    avg, thr, gain = RNG.uniform(0, 1, 6), RNG.normal(0, 1, 6), RNG.uniform(0.5, 2, 6)
    rate, std, t_rate, t_std = RNG.uniform(0, 1, 6), RNG.uniform(0.1, 2, 6), RNG.uniform(0, 1, 6), RNG.uniform(0.1, 2, 6)
    cfg = homeostasis.HomeostasisConfig(tau=4.0, threshold_lr=0.5, scaling_rate=0.2)
    mine = ex.homeostatic_update(avg, thr, gain, rate, std, t_rate, t_std, 4.0, 0.5, 0.2)
    ref = homeostasis.homeostatic_update(avg, thr, gain, rate, std, cfg, t_rate, t_std)
    for m, r in zip(mine, ref):
        np.testing.assert_allclose(m, r, rtol=1e-12)


def test_stage2_setpoint_rule_restores_a_drifted_unit(ex):
    # one unit whose gate pre-activation z ~ N(0, 1) becomes 1.5 z + 0.5 (a "new domain" shifted it)
    z = RNG.normal(size=(1, 4000, 1))
    mask = np.ones((1, 4000))
    set_rate, set_std = (1 / (1 + np.exp(-z))).mean(), z.std()
    avg, thr, gain = np.array([set_rate]), np.zeros(1), np.ones(1)
    for _ in range(200):
        y = (1.5 * z + 0.5) * gain - thr
        rate, std = (1 / (1 + np.exp(-y[mask == 1]))).mean(0), y[mask == 1].std(0)
        avg, thr, gain = ex.homeostatic_update(avg, thr, gain, rate, std, np.array([set_rate]), np.array([set_std]))
    y = (1.5 * z + 0.5) * gain - thr
    assert abs((1 / (1 + np.exp(-y))).mean() - set_rate) < 0.01 and abs(y.std() - set_std) < 0.05
    assert gain[0] == pytest.approx(1 / 1.5, rel=0.05)


def test_stage2_inverse_std_scaling(ex):
    g, s = RNG.uniform(0.5, 2, 5), RNG.uniform(0.01, 3, 5)
    np.testing.assert_allclose(ex.inverse_std_scaling(g, s), np.clip(0.999 * g + 0.001 / (s + 1e-8), 0.1, 10),
                               rtol=1e-12)
    assert ex.inverse_std_scaling(np.array([10.0]), np.array([1e-9]))[0] == 10.0


def test_stage3_dead_fraction(ex):
    assert ex.dead_fraction(np.array([0.0, 0.5])) == 0.5
    assert ex.dead_fraction(np.array([0.005, 0.02, 0.3, 0.009]), 0.01) == 0.5


def test_stage4_dendritic_ffn_matches_minimac(ex):
    ffn = dendritic.DendriticFFN(d_model=8, d_ff=12, num_dendrites=3)
    gate_w = RNG.normal(0, 1, (3, 8))
    ffn.context_gate.weight = Tensor(gate_w.astype(np.float32))
    x = RNG.normal(size=(2, 4, 8))
    w1, w2, w3 = (t.weight.numpy().astype(np.float64) for t in (ffn.w1, ffn.w2, ffn.w3))
    np.testing.assert_allclose(ex.dendritic_ffn(x, w1, w2, w3, gate_w), ffn(Tensor(x.astype(np.float32))).numpy(),
                               rtol=1e-4, atol=1e-5)


def test_stage4_zero_gate_is_plain_swiglu(ex):
    d, f = 6, 8
    w1, w3, w2 = RNG.normal(size=(f, d)), RNG.normal(size=(f, d)), RNG.normal(size=(d, f))
    x = RNG.normal(size=(5, d))
    z = x @ w1.T
    swiglu = (z / (1 + np.exp(-z)) * (x @ w3.T)) @ w2.T
    np.testing.assert_allclose(ex.dendritic_ffn(x, w1, w2, w3, np.zeros((4, d))), swiglu, rtol=1e-12)
