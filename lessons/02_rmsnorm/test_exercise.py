"""Tests for lesson 02. `pytest lessons/02_rmsnorm` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py.

Each stage compares your functions with float64 numpy references written here and with minimac/norm.py.
Run one stage at a time with -k, e.g. `pytest lessons/02_rmsnorm -k stage1`.
"""
import numpy as np
import pytest
from tinygrad import Tensor, dtypes
from tinygrad.nn.state import get_parameters

from minimac import norm as mnorm

RNG = np.random.default_rng(0)
X = RNG.normal(loc=1.5, scale=3.0, size=(2, 5, 16))  # (B, T, d)
W = RNG.normal(size=16)
B = RNG.normal(size=16)


def reference_rms(x, w, eps):
    rms = np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + eps)
    return x / rms * w


def test_stage1_layer_norm(ex):
    np.testing.assert_allclose(ex.layer_norm_np(np.array([1.0, 3.0]), np.ones(2), np.zeros(2), eps=0), [-1.0, 1.0])
    y = ex.layer_norm_np(X, np.ones(16), np.zeros(16), eps=0.0)
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.std(-1), 1.0, rtol=1e-12)
    expected = (X - X.mean(-1, keepdims=True)) / np.sqrt(X.var(-1, keepdims=True) + 1e-6) * W + B
    np.testing.assert_allclose(ex.layer_norm_np(X, W, B), expected, rtol=1e-12, atol=1e-12)


def test_stage1_rms_norm_np(ex):
    np.testing.assert_allclose(ex.rms_norm_np(np.array([3.0, 4.0]), eps=0.0), [0.848528, 1.131371], rtol=1e-6)
    np.testing.assert_allclose(ex.rms_norm_np(X, W, eps=1e-6), reference_rms(X, W, 1e-6), rtol=1e-12)
    y = ex.rms_norm_np(X)  # weight None means ones
    np.testing.assert_allclose(np.sqrt((y ** 2).mean(-1)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(ex.rms_norm_np(7.0 * X), y, rtol=1e-6)  # the scale is forgotten
    assert not np.allclose(ex.rms_norm_np(X + 3.0), y)  # a shift is not (that is LayerNorm's job)


def test_stage1_eps_goes_inside_the_sqrt(ex):
    tiny = np.full(4, 1e-4)
    np.testing.assert_allclose(ex.rms_norm_np(tiny, eps=1e-6), tiny / np.sqrt(1e-8 + 1e-6), rtol=1e-9)
    assert np.all(ex.rms_norm_np(np.zeros(4), eps=1e-6) == 0.0)  # no 0/0


def test_stage2_rms_norm_tinygrad(ex):
    out = ex.rms_norm(Tensor(X.astype(np.float32)), Tensor(W.astype(np.float32)))
    assert isinstance(out, Tensor) and out.dtype == dtypes.float32
    np.testing.assert_allclose(out.numpy(), reference_rms(X, W, 1e-6), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ex.rms_norm(Tensor(X.astype(np.float32))).numpy(), reference_rms(X, 1.0, 1e-6),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.numpy(), mnorm.rms_norm(Tensor(X.astype(np.float32)),
                                                           Tensor(W.astype(np.float32))).numpy(), rtol=1e-6, atol=1e-6)


def test_stage2_half_precision_input_is_squared_in_float32(ex):
    xh = Tensor(np.full((2, 8), 300.0, dtype=np.float32)).cast(dtypes.float16)  # 300**2 overflows float16
    out = ex.rms_norm(xh)
    assert out.dtype == dtypes.float16, "cast the result back to the input dtype"
    np.testing.assert_allclose(out.numpy().astype(np.float32), 1.0, rtol=1e-3)


def test_stage3_module(ex):
    norm = ex.RMSNorm(16)
    assert tuple(norm.weight.shape) == (16,) and norm.weight.dtype == dtypes.float32
    np.testing.assert_array_equal(norm.weight.numpy(), np.ones(16))
    assert len(get_parameters(norm)) == 1, "the weight is the only trainable tensor"
    norm.weight.assign(Tensor(W.astype(np.float32)))
    ref = mnorm.RMSNorm(16)
    ref.weight.assign(Tensor(W.astype(np.float32)))
    xt = Tensor(X.astype(np.float32))
    np.testing.assert_allclose(norm(xt).numpy(), ref(xt).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ex.RMSNorm(2, eps=0.0)(Tensor([[3.0, 4.0]])).numpy(), [[0.848528, 1.131371]], rtol=1e-5)


def test_stage3_bad_sizes_raise(ex):
    with pytest.raises(ValueError, match="dim must be positive"):
        ex.RMSNorm(0)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        ex.RMSNorm(4, eps=-1.0)


def test_stage4_gradient_by_hand(ex):
    g = RNG.normal(size=X.shape)
    dx, dw = ex.rms_norm_grad_np(X, W, g)
    assert dx.shape == X.shape and dw.shape == W.shape
    # tinygrad's autograd through minimac's rms_norm is the reference
    xt, wt = Tensor(X.astype(np.float32)), Tensor(W.astype(np.float32))
    loss = (mnorm.rms_norm(xt, wt) * Tensor(g.astype(np.float32))).sum()
    tdx, tdw = loss.gradient(xt, wt)
    np.testing.assert_allclose(dx, tdx.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, tdw.numpy(), rtol=1e-4, atol=1e-4)
    # central finite differences on one coordinate, in float64
    h, idx = 1e-6, (1, 2, 3)
    xp, xm = X.copy(), X.copy()
    xp[idx] += h
    xm[idx] -= h
    numeric = ((reference_rms(xp, W, 1e-6) - reference_rms(xm, W, 1e-6)) * g).sum() / (2 * h)
    np.testing.assert_allclose(dx[idx], numeric, rtol=1e-5)


def test_stage4_gradient_is_finite_at_zero(ex):
    dx, dw = ex.rms_norm_grad_np(np.zeros((1, 4)), np.ones(4), np.ones((1, 4)), eps=1e-6)
    assert np.isfinite(dx).all() and np.isfinite(dw).all()
    np.testing.assert_allclose(dx, 1.0 / np.sqrt(1e-6), rtol=1e-9)  # eps inside: slope 1/sqrt(eps), not inf
