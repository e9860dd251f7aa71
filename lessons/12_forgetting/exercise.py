"""Lesson 12 exercise: read a continual learner's R matrix the way the forgetting benchmark does. Fill in each
function, then `pytest lessons/12_forgetting`. README.md gives the stages; peek at minimac/metrics.py if stuck.

R[i][j] is the bits per byte on test set j after stage i (lower is better). Stage 0 is the base model, stage j
trains domain j, so column j < number of stages is the set of the domain trained at stage j (column 0: the base);
any later columns are probes never trained on. Worked example used below:

    R = [[1.0, 3.0, 4.0],     stage 0 (base)      sets: base, law, med
         [1.2, 2.0, 3.0],     stage 1 (law)
         [1.5, 2.5, 1.5]]     stage 2 (med)
"""
import numpy as np


def relative_forgetting(R) -> np.ndarray:
    """For each set j trained before the last stage t: 100 * (R[t][j] - best) / best, with best the lowest value
    the set ever had (min over stages k <= t). Example -> [50.0, 25.0]."""
    raise NotImplementedError("Stage 1: relative_forgetting")


def worst_forgetting_any_stage(R) -> float:
    """A set can get worse and recover. The largest relative_forgetting of R[:k + 1] over k = 1 .. t, over every
    set. Example -> 50.0 (stage 1 alone: base 1.0 -> 1.2 is 20%)."""
    raise NotImplementedError("Stage 2: worst_forgetting_any_stage")


def gains(R) -> np.ndarray:
    """For each domain j >= 1 (one per stage after the base): R[j-1][j] - R[j][j], what its own stage bought.
    Example -> [1.0, 1.5]."""
    raise NotImplementedError("Stage 3: gains")


def gain_fractions(R, R_full) -> np.ndarray:
    """gains(R) / gains(R_full): each gain as a fraction of naive full fine-tuning's on the same domain."""
    raise NotImplementedError("Stage 3: gain_fractions")


def backward_transfer(R) -> float:
    """BWT for a loss: mean over sets j < t of R[j][j] - R[t][j]. Example -> -0.5 (< 0: later stages hurt them)."""
    raise NotImplementedError("Stage 4: backward_transfer")


def forward_transfer(R, num_stages: int) -> float:
    """FWT for a loss: mean over domains 2 <= j < num_stages of R[0][j] - R[j-1][j]: did the domains learned before j
    already help it? Example (num_stages 3) -> 4.0 - 3.0 = 1.0."""
    raise NotImplementedError("Stage 4: forward_transfer")


def goal_met(R, R_full, forget_pct: float = 2.0, gain: float = 0.9) -> bool:
    """The design's promise, as the benchmark tests it: every earlier set within forget_pct % of its best at every
    stage (worst_forgetting_any_stage), and at least `gain` of full fine-tuning's gain on every new domain."""
    raise NotImplementedError("Stage 5: goal_met")
