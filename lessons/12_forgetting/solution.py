"""Lesson 12 reference solution: the forgetting benchmark's report, from R matrices (minimac/metrics.py and
benchmarks/forgetting.py hold the library versions)."""
import numpy as np


def relative_forgetting(R) -> np.ndarray:
    """For each set j trained before the last stage t: 100 * (R[t][j] - best) / best, best = min over k <= t."""
    R = np.asarray(R, dtype=np.float64)
    t = R.shape[0] - 1
    best = R[:, :t].min(axis=0)
    return 100.0 * (R[t, :t] - best) / best


def worst_forgetting_any_stage(R) -> float:
    """The largest relative_forgetting over every stage k >= 1 (R cut after row k), over every set."""
    R = np.asarray(R, dtype=np.float64)
    return float(max(relative_forgetting(R[:k + 1]).max() for k in range(1, R.shape[0])))


def gains(R) -> np.ndarray:
    """Gain of each domain j >= 1 from its own stage: R[j-1][j] - R[j][j] (> 0 = it learned)."""
    R = np.asarray(R, dtype=np.float64)
    return np.array([R[j - 1, j] - R[j, j] for j in range(1, R.shape[0])])


def gain_fractions(R, R_full) -> np.ndarray:
    """gains(R) / gains(R_full): each domain's gain as a fraction of naive full fine-tuning's."""
    return gains(R) / gains(R_full)


def backward_transfer(R) -> float:
    """Mean over sets j < t of R[j][j] - R[t][j] (< 0: later stages made them worse)."""
    R = np.asarray(R, dtype=np.float64)
    t = R.shape[0] - 1
    return float(np.mean([R[j, j] - R[t, j] for j in range(t)]))


def forward_transfer(R, num_stages: int) -> float:
    """Mean over domains 2 <= j < num_stages of R[0][j] - R[j-1][j] (> 0: the earlier domains helped j)."""
    R = np.asarray(R, dtype=np.float64)
    return float(np.mean([R[0, j] - R[j - 1, j] for j in range(2, num_stages)]))


def goal_met(R, R_full, forget_pct: float = 2.0, gain: float = 0.9) -> bool:
    """Every earlier set within forget_pct % of its best at every stage, and every gain fraction >= gain."""
    return bool(worst_forgetting_any_stage(R) <= forget_pct and gain_fractions(R, R_full).min() >= gain)
