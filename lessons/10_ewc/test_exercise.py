"""Tests for lesson 10. `pytest lessons/10_ewc` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py.

Each stage compares your numpy functions with hand-worked numbers, with minimac's own EWC (minimac/ewc.py) and with
tinygrad's autograd. Run one stage at a time with -k, e.g. `pytest lessons/10_ewc -k stage1`.
"""
import numpy as np
from tinygrad import Tensor

from minimac.ewc import EWC, empirical_fisher

RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 3)) * np.array([3.0, 1.0, 0.2])
W_TRUE = np.array([1.0, -2.0, 0.5])
Y = X @ W_TRUE + RNG.normal(size=12)
W = W_TRUE + 0.1
SHAPES = [(3,), (2, 4)]


def experience(seed):
    rng = np.random.default_rng(seed)
    return [rng.random(s) * (rng.random(s) > 0.3) for s in SHAPES], [rng.normal(size=s) for s in SHAPES]


def test_stage1_per_sample_grads(ex):
    np.testing.assert_allclose(ex.per_sample_grads([[1.0, 2.0]], [0.0], [1.0, 1.0]), [[3.0, 6.0]])
    grads = ex.per_sample_grads(X, Y, W)
    assert np.shape(grads) == (12, 3)
    for i in range(12):  # the derivative of 0.5 * (x . w - y)^2, checked by finite differences
        eps = 1e-6
        numeric = [(0.5 * (X[i] @ (W + eps * e) - Y[i]) ** 2 - 0.5 * (X[i] @ (W - eps * e) - Y[i]) ** 2) / (2 * eps)
                   for e in np.eye(3)]
        np.testing.assert_allclose(grads[i], numeric, rtol=1e-5, atol=1e-6)


def test_stage2_fisher_diagonal(ex):
    np.testing.assert_allclose(ex.fisher_diagonal([[1.0, 2.0], [3.0, 0.0]]), [5.0, 2.0])
    w = Tensor(W.astype(np.float32)).realize()
    batches = [(Tensor(X[i:i + 4].astype(np.float32)), Tensor(Y[i:i + 4].astype(np.float32))) for i in range(0, 12, 4)]

    def loss_fn(batch):
        x, y = batch
        return (0.5 * (x @ w - y) ** 2).sum()
    grads = ex.per_sample_grads(X, Y, W)
    np.testing.assert_allclose(ex.fisher_diagonal(grads), empirical_fisher([w], loss_fn, batches, normalize=False)[0].numpy(),
                               rtol=1e-4)
    normalized = ex.fisher_diagonal(grads, normalize=True)
    np.testing.assert_allclose(normalized, empirical_fisher([w], loss_fn, batches)[0].numpy(), rtol=1e-4)
    assert abs(normalized.max() - 1) < 1e-6


def test_stage3_ewc_penalty_and_gradient(ex):
    fishers, anchors = experience(1)
    params = [RNG.normal(size=s) for s in SHAPES]
    ewc = EWC(ewc_lambda=5.0)
    ewc.consolidate([Tensor(a.astype(np.float32)) for a in anchors], [Tensor(f.astype(np.float32)) for f in fishers])
    params_t = [Tensor(p.astype(np.float32)) for p in params]
    penalty = ewc.penalty(params_t)
    np.testing.assert_allclose(ex.ewc_penalty(params, fishers, anchors, 5.0), penalty.item(), rtol=1e-5)
    assert ex.ewc_penalty(anchors, fishers, anchors, 5.0) == 0.0
    for mine, autograd in zip(ex.ewc_gradient(params, fishers, anchors, 5.0), penalty.gradient(*params_t)):
        np.testing.assert_allclose(mine, autograd.numpy(), rtol=1e-5, atol=1e-6)


def test_stage4_online_update(ex):
    F_old, F_new = np.array([1.0, 4.0]), np.array([2.0, 0.0])
    np.testing.assert_allclose(ex.online_update(F_old, F_new, 0.5), [2.5, 2.0])
    (f1, a1), (f2, a2) = experience(2), experience(3)
    online = EWC(ewc_lambda=1.0, mode="online", decay_factor=0.7)
    for f, a in ((f1, a1), (f2, a2)):
        online.consolidate([Tensor(x.astype(np.float32)) for x in a], [Tensor(x.astype(np.float32)) for x in f])
    for i in range(len(SHAPES)):
        np.testing.assert_allclose(ex.online_update(f1[i], f2[i], 0.7), online.experiences[0][0][i], rtol=1e-6)


def test_stage4_combine_experiences(ex):
    exps = [experience(seed) for seed in (4, 5, 6)]
    fishers, anchors = [e[0][1] for e in exps], [e[1][1] for e in exps]  # the (2, 4) tensor of each experience
    F_tot, a_bar, c = ex.combine_experiences(fishers, anchors)
    np.testing.assert_allclose(F_tot, sum(fishers))
    for seed in range(5):
        theta = np.random.default_rng(seed).normal(size=(2, 4)) * 3
        naive = sum(np.sum(F * (theta - a) ** 2) for F, a in zip(fishers, anchors))
        np.testing.assert_allclose(np.sum(F_tot * (theta - a_bar) ** 2) + c, naive, rtol=1e-9)
    ewc = EWC(ewc_lambda=2.0)
    for f, a in exps:
        ewc.consolidate([Tensor(x.astype(np.float32)) for x in a], [Tensor(x.astype(np.float32)) for x in f])
    theta = [np.random.default_rng(9).normal(size=s) for s in SHAPES]
    combined = [ex.combine_experiences([e[0][i] for e in exps], [e[1][i] for e in exps]) for i in range(len(SHAPES))]
    mine = sum(np.sum(F * (t - a) ** 2) + c for (F, a, c), t in zip(combined, theta))
    penalty = ewc.penalty([Tensor(t.astype(np.float32)) for t in theta]).item()
    np.testing.assert_allclose(mine, penalty, rtol=1e-5)  # ewc_lambda / 2 == 1
