"""Tests for lesson 12. `pytest lessons/12_forgetting` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py.

Each function is checked on the worked example, against minimac/metrics.py on random matrices, and against the
report of a real run stored in results/forgetting.json. One stage at a time: `pytest lessons/12_forgetting -k stage1`.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from minimac import metrics

R = [[1.0, 3.0, 4.0],
     [1.2, 2.0, 3.0],
     [1.5, 2.5, 1.5]]
RESULTS = Path(__file__).resolve().parents[2] / "results" / "forgetting.json"
RNG = np.random.default_rng(0)
RANDOM = [RNG.uniform(0.5, 4.0, (n, n + 1)) for n in (2, 3, 5)]   # one probe column each


@pytest.fixture(scope="module")
def runs():
    data = json.loads(RESULTS.read_text())
    return {r["strategy"]: r for r in data["runs"] if "R" in r}, data["meta"]   # the references have no R matrix


def test_stage1_relative_forgetting(ex):
    np.testing.assert_allclose(ex.relative_forgetting(R), [50.0, 25.0])
    for Rr in RANDOM:
        np.testing.assert_allclose(ex.relative_forgetting(Rr), metrics.relative_forgetting(Rr), rtol=1e-12)
        assert (np.asarray(ex.relative_forgetting(Rr)) >= 0).all()


def test_stage1_matches_a_real_report(ex, runs):
    for name, run in runs[0].items():
        np.testing.assert_allclose(ex.relative_forgetting(run["R"]), run["summary"]["forgetting_pct"], rtol=1e-9,
                                   err_msg=name)


def test_stage2_worst_any_stage(ex, runs):
    assert ex.worst_forgetting_any_stage(R) == pytest.approx(50.0)
    dips = [[1.0, 5.0], [1.3, 2.0], [1.0, 2.0]]   # the base got 30% worse at stage 1, then recovered
    assert ex.worst_forgetting_any_stage(dips) == pytest.approx(30.0)
    for name, run in runs[0].items():
        assert ex.worst_forgetting_any_stage(run["R"]) == pytest.approx(
            run["summary"]["worst_forgetting_pct_any_stage"], rel=1e-9), name


def test_stage3_gains(ex, runs):
    np.testing.assert_allclose(ex.gains(R), [1.0, 1.5])
    for Rr in RANDOM:
        np.testing.assert_allclose(ex.gains(Rr), [metrics.gain(Rr, j) for j in range(1, len(Rr))], rtol=1e-12)
    by_name = runs[0]
    for name, run in by_name.items():
        np.testing.assert_allclose(ex.gain_fractions(run["R"], by_name["full"]["R"]), run["summary"]["gain_fraction"],
                                   rtol=1e-9, err_msg=name)


def test_stage4_transfer(ex):
    assert ex.backward_transfer(R) == pytest.approx(-0.5)
    assert ex.forward_transfer(R, 3) == pytest.approx(1.0)
    for Rr in RANDOM:
        assert ex.backward_transfer(Rr) == pytest.approx(metrics.backward_transfer(Rr), rel=1e-12)
        n = len(Rr)
        if n > 2:
            assert ex.forward_transfer(Rr, n) == pytest.approx(metrics.forward_transfer(Rr, n), rel=1e-12)


def test_stage5_goal_on_the_stored_runs(ex, runs):
    by_name, meta = runs
    goal = meta["goal"]
    for name, run in by_name.items():
        s = run["summary"]
        expected = s["worst_forgetting_pct_any_stage"] <= goal["forget_pct"] and s["min_gain_fraction"] >= goal["gain"]
        assert ex.goal_met(run["R"], by_name["full"]["R"], goal["forget_pct"], goal["gain"]) == expected, name
    assert not ex.goal_met(by_name["full"]["R"], by_name["full"]["R"], 0.0, 0.9), "full fine-tuning forgets"
    assert math.isclose(np.min(ex.gain_fractions(by_name["full"]["R"], by_name["full"]["R"])), 1.0)
