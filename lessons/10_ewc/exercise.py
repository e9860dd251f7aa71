"""Lesson 10 exercise: elastic weight consolidation in numpy. Fill in each function, then `pytest lessons/10_ewc`.

README.md gives the stages; peek at minimac/ewc.py if stuck.
"""
import numpy as np  # noqa: F401  (you will need it)


def per_sample_grads(X, y, w):
    """Gradient of 0.5 * (x . w - y)^2 for each row x of X (N, d), y (N,), w (d,) -> (N, d).

    per_sample_grads([[1, 2]], [0], [1, 1]) -> [[3, 6]]
    """
    raise NotImplementedError("Stage 1: per_sample_grads")


def fisher_diagonal(grads, normalize=False):
    """Empirical diagonal Fisher from per-sample gradients (N, ...): the mean over the N samples of grads**2.
    With normalize=True, divide by (its maximum + 1e-8) so the largest entry is about 1.

    fisher_diagonal([[1, 2], [3, 0]]) -> [5, 2]
    """
    raise NotImplementedError("Stage 2: fisher_diagonal")


def ewc_penalty(params, fishers, anchors, ewc_lambda):
    """ewc_lambda / 2 * sum over tensors of sum(F * (theta - anchor)**2). Lists of arrays, one per tensor -> float."""
    raise NotImplementedError("Stage 3: ewc_penalty")


def ewc_gradient(params, fishers, anchors, ewc_lambda):
    """The gradient of ewc_penalty with respect to each parameter tensor: a list of ewc_lambda * F * (theta - anchor)."""
    raise NotImplementedError("Stage 3: ewc_gradient")


def online_update(F_old, F_new, decay_factor):
    """Online EWC's running Fisher: decay_factor * F_old + F_new."""
    raise NotImplementedError("Stage 4: online_update")


def combine_experiences(fishers, anchors):
    """For one tensor and K experiences (lists of K arrays), return (F_tot, a_bar, c) such that for every theta
    sum_k sum(F_k * (theta - a_k)**2) == sum(F_tot * (theta - a_bar)**2) + c.
    F_tot = sum of F_k; a_bar = sum of F_k * a_k over F_tot (0 where F_tot is 0); c is a float.
    """
    raise NotImplementedError("Stage 4: combine_experiences")
