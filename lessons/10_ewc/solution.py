"""Lesson 10 reference solution: elastic weight consolidation in numpy."""
import numpy as np


def per_sample_grads(X, y, w):
    X, y, w = np.asarray(X, dtype=float), np.asarray(y, dtype=float), np.asarray(w, dtype=float)
    residual = X @ w - y                      # (N,)
    return residual[:, None] * X              # (N, d)


def fisher_diagonal(grads, normalize=False):
    F = np.mean(np.asarray(grads, dtype=float) ** 2, axis=0)
    return F / (F.max() + 1e-8) if normalize else F


def ewc_penalty(params, fishers, anchors, ewc_lambda):
    return ewc_lambda / 2 * sum(float(np.sum(F * (p - a) ** 2)) for p, F, a in zip(params, fishers, anchors))


def ewc_gradient(params, fishers, anchors, ewc_lambda):
    return [ewc_lambda * F * (p - a) for p, F, a in zip(params, fishers, anchors)]


def online_update(F_old, F_new, decay_factor):
    return decay_factor * F_old + F_new


def combine_experiences(fishers, anchors):
    # sum_k F_k (t - a_k)^2 = F_tot t^2 - 2 t sum_k F_k a_k + sum_k F_k a_k^2 = F_tot (t - a_bar)^2 + c
    F_tot = sum(fishers)
    weighted = sum(F * a for F, a in zip(fishers, anchors))
    a_bar = np.where(F_tot > 0, weighted / np.where(F_tot > 0, F_tot, 1.0), 0.0)
    c = float(sum(np.sum(F * a * a) for F, a in zip(fishers, anchors)) - np.sum(F_tot * a_bar ** 2))
    return F_tot, a_bar, c
