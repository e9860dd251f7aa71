"""Tests for lesson 07. `pytest lessons/07_pretraining` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py.

Each stage compares your functions with float64 numpy references written here and with minimac/train.py.
Run one stage at a time with -k, e.g. `pytest lessons/07_pretraining -k stage1`.
"""
import math

import numpy as np
import pytest
from tinygrad import Context, Tensor
from tinygrad.nn.optim import AdamW

from minimac import metrics
from minimac import train as mtrain

RNG = np.random.default_rng(0)


def ce_reference(logits, targets, ignore_index=-1):
    logits = np.asarray(logits, dtype=np.float64)
    m = logits.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
    valid = targets != ignore_index
    picked = np.take_along_axis(logits, np.where(valid, targets, 0)[..., None], -1)[..., 0]
    return float(((lse - picked) * valid).sum() / max(valid.sum(), 1))


def test_stage1_shift_labels(ex):
    x, y = ex.shift_labels(Tensor([[5, 6, 7, 8], [1, 2, 3, 4]]))
    assert x.tolist() == [[5, 6, 7], [1, 2, 3]] and y.tolist() == [[6, 7, 8], [2, 3, 4]]
    batch = Tensor(RNG.integers(0, 50, (3, 9)).astype(np.int32))
    for mine, ref in zip(ex.shift_labels(batch), mtrain.shift_labels(batch)):
        assert mine.tolist() == ref.tolist()


def test_stage2_cross_entropy_matches_numpy(ex):
    logits = RNG.normal(size=(2, 6, 11)).astype(np.float32) * 2
    targets = RNG.integers(0, 11, (2, 6))
    targets[1, 2] = -1
    got = ex.cross_entropy(Tensor(logits), Tensor(targets.astype(np.int32))).item()
    np.testing.assert_allclose(got, ce_reference(logits, targets), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, mtrain.cross_entropy(Tensor(logits), Tensor(targets.astype(np.int32))).item(),
                               rtol=1e-5, atol=1e-5)


def test_stage2_cross_entropy_edge_cases(ex):
    np.testing.assert_allclose(ex.cross_entropy(Tensor.zeros(1, 3, 8), Tensor([[0, 5, 7]])).item(), math.log(8),
                               rtol=1e-6)
    huge = np.array([[[1000.0, 0.0, -1000.0]]], dtype=np.float32)
    np.testing.assert_allclose(ex.cross_entropy(Tensor(huge), Tensor([[1]])).item(), 1000.0, rtol=1e-6)
    assert ex.cross_entropy(Tensor.ones(1, 2, 4), Tensor([[-1, -1]])).item() == 0.0


def test_stage2_cross_entropy_gradient(ex):
    logits = RNG.normal(size=(1, 2, 5)).astype(np.float32)
    x = Tensor(logits)
    (g,) = ex.cross_entropy(x, Tensor([[3, 0]])).gradient(x)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    p[0, 0, 3] -= 1
    p[0, 1, 0] -= 1
    np.testing.assert_allclose(g.numpy(), p / 2, rtol=1e-5, atol=1e-6)


def test_stage3_lr_at(ex):
    args = (1.0, 0.1, 10, 110)
    np.testing.assert_allclose([ex.lr_at(s, *args) for s in (0, 9, 60, 110, 1000)], [0.1, 1.0, 0.55, 0.1, 0.1])
    config = mtrain.TrainConfig(lr=3e-3, min_lr=3e-4, warmup_steps=7, max_steps=50)
    for step in range(60):
        np.testing.assert_allclose(ex.lr_at(step, 3e-3, 3e-4, 7, 50), mtrain.lr_at(step, config), rtol=1e-12)


def test_stage4_clip_by_global_norm(ex):
    grads = [RNG.normal(size=(4, 3)), RNG.normal(size=(6,))]
    norm = math.sqrt(sum((g ** 2).sum() for g in grads))
    clipped, got = ex.clip_by_global_norm([Tensor(g.astype(np.float32)) for g in grads], 0.5)
    np.testing.assert_allclose(got.item(), norm, rtol=1e-5)
    for c, g in zip(clipped, grads):
        np.testing.assert_allclose(c.numpy(), g * 0.5 / norm, rtol=1e-4, atol=1e-6)
    same, _ = ex.clip_by_global_norm([Tensor(g.astype(np.float32)) for g in grads], 1e3)
    np.testing.assert_allclose(same[1].numpy(), grads[1], rtol=1e-5, atol=1e-6)


class Bigram:
    """The smallest language model: a table of next-token logits, one row per current token."""

    def __init__(self, vocab: int):
        self.table = Tensor.zeros(vocab, vocab).contiguous()

    def __call__(self, x: Tensor) -> Tensor:
        return self.table[x]     # (B, T) -> (B, T, V)


def test_stage5_train_step_learns_a_pattern(ex):
    V = 8
    batch = Tensor((np.arange(17)[None, :] + np.arange(4)[:, None]) % V)   # next token = (token + 1) % V
    model = Bigram(V)
    losses = [ex.train_step(model, [model.table], batch, lr=20.0) for _ in range(30)]
    np.testing.assert_allclose(losses[0], math.log(V), rtol=1e-5)          # zeros: uniform before the first update
    assert losses[-1] < 0.1 * losses[0]
    assert model.table.numpy().argmax(-1).tolist() == [(i + 1) % V for i in range(V)]


def test_stage6_adamw_matches_tinygrad(ex):
    w0 = RNG.normal(size=(3, 4))
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    ref = Tensor(w0.astype(np.float32)).contiguous().realize()
    opt = AdamW([ref], lr=0.05, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1)
    for t in range(1, 6):
        g = RNG.normal(size=w0.shape) * 10.0 ** (t - 3)          # gradients of very different sizes
        w, m, v = ex.adamw_update(w, g, m, v, t, lr=0.05)
        ref.grad = Tensor(g.astype(np.float32))
        with Context(TRAINING=1):
            opt.step()
        np.testing.assert_allclose(w, ref.numpy(), rtol=1e-4, atol=1e-5)
    step = np.abs(ex.adamw_update(w0, np.full_like(w0, 1e-3), 0 * w0, 0 * w0, 1, lr=0.01, weight_decay=0.0)[0] - w0)
    np.testing.assert_allclose(step, 0.01, rtol=1e-4)             # the first step is lr, whatever the gradient's size


def test_stage7_bits_per_byte(ex):
    assert ex.bits_per_byte(math.log(256), 10, 10) == pytest.approx(8.0)
    assert ex.bits_per_byte(math.log(2), 100, 200) == pytest.approx(0.5)   # 1 bit per token, 2 bytes per token
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 40, 300)).astype(np.float32)
    ids = rng.integers(0, 300, 41).astype(np.int32)

    def model(x):           # a fixed table of logits, so metrics.evaluate can score it
        return Tensor(logits[:, : x.shape[1]]).expand(x.shape[0], -1, -1)
    e = metrics.evaluate(model, ids, 40, 1, num_bytes=97, jit=False)
    assert ex.bits_per_byte(e["loss"], e["num_tokens"], 97) == pytest.approx(e["bits_per_byte"], rel=1e-9)
