"""Tests for lesson 05. `pytest lessons/05_swiglu` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py.

Your numpy functions are compared with float64 references written here, your gradient with tinygrad's autograd, and
your module with minimac/feedforward.py. Run one stage at a time with -k, e.g. `pytest lessons/05_swiglu -k stage1`.
"""
import math
import warnings

import numpy as np
import pytest
from tinygrad import Tensor
from tinygrad.nn.state import get_parameters, get_state_dict

from minimac.feedforward import SwiGLU as MinimacSwiGLU
from minimac.model import ModelConfig

RNG = np.random.default_rng(0)
D, F = 16, 48
W1, W3 = RNG.normal(size=(2, F, D)) / math.sqrt(D)
W2 = RNG.normal(size=(D, F)) / math.sqrt(F)
X = RNG.normal(size=(2, 5, D))


def reference_swiglu(x, w1, w2, w3):
    out = np.zeros(x.shape[:-1] + (w2.shape[0],))
    for idx in np.ndindex(*x.shape[:-1]):
        gate, up = w1 @ x[idx], w3 @ x[idx]
        out[idx] = w2 @ (gate / (1.0 + np.exp(-gate)) * up)
    return out


def test_stage1_sigmoid_and_silu(ex):
    z = np.linspace(-8, 8, 33)
    np.testing.assert_allclose(ex.sigmoid(z), 1.0 / (1.0 + np.exp(-z)), rtol=1e-12)
    np.testing.assert_allclose(ex.silu(z), z / (1.0 + np.exp(-z)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ex.silu(np.array([1.0])), [0.731059], rtol=1e-6)
    assert ex.silu(np.linspace(-3, 0, 3001)).min() == pytest.approx(-0.2785, abs=1e-4)  # the dip below zero


def test_stage1_no_overflow(ex):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning fails the test
        s = ex.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(s, [0.0, 0.5, 1.0], atol=1e-300)


def test_stage1_silu_grad_matches_autograd(ex):
    z = np.linspace(-6, 6, 25)
    zt = Tensor(z.astype(np.float32))
    (grad,) = zt.silu().sum().gradient(zt)
    np.testing.assert_allclose(ex.silu_grad(z), grad.numpy(), rtol=1e-5, atol=1e-6)
    assert ex.silu_grad(np.array([-2.0]))[0] < 0, "negative inputs still get a (small) gradient"


def test_stage2_swiglu_np(ex):
    y = ex.swiglu_np(X, W1, W2, W3)
    assert y.shape == X.shape
    np.testing.assert_allclose(y, reference_swiglu(X, W1, W2, W3), rtol=1e-10, atol=1e-12)
    one = np.ones((1, 1))
    np.testing.assert_allclose(ex.swiglu_np(one, one, one, one), [[0.731059]], rtol=1e-6)
    # a gate that is very negative shuts the hidden feature, whatever the up projection says
    np.testing.assert_allclose(ex.swiglu_np(one, -50 * one, one, 1e6 * one), [[0.0]], atol=1e-9)


def test_stage3_param_arithmetic(ex):
    assert ex.ffn_param_count(256, 1024) == 786432
    assert ex.ffn_param_count(256, 1024, gated=False) == 524288
    assert ex.llama_d_ff(4096) == 11008 and ex.llama_d_ff(256) == 768 and ex.llama_d_ff(5120) == 13824
    for name in ["tiny", "small", "medium", "large"]:
        c = ModelConfig.from_preset(name)
        assert c.d_ff == 4 * c.d_model  # the design's sizes: not LLaMA's rule
        # with LLaMA's hidden size, SwiGLU costs about what a plain 4d MLP costs (rounding up to a multiple of 256
        # adds up to 12.5% at these small widths)
        ratio = ex.ffn_param_count(c.d_model, ex.llama_d_ff(c.d_model)) / ex.ffn_param_count(c.d_model, c.d_ff, False)
        assert 1.0 <= ratio <= 1.125, (name, ratio)


def test_stage4_module_matches_minimac(ex):
    ffn, ref = ex.SwiGLU(D, F), MinimacSwiGLU(D, F)
    shapes = {name: tuple(t.shape) for name, t in get_state_dict(ffn).items()}
    assert shapes == {"w1.weight": (F, D), "w2.weight": (D, F), "w3.weight": (F, D)}, "no biases, LLaMA's names"
    assert len(get_parameters(ffn)) == 3
    for module in (ffn, ref):
        for name, w in [("w1", W1), ("w2", W2), ("w3", W3)]:
            getattr(module, name).weight.assign(Tensor(w.astype(np.float32)))
    xt = Tensor(X.astype(np.float32))
    np.testing.assert_allclose(ffn(xt).numpy(), reference_swiglu(X, W1, W2, W3), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ffn(xt).numpy(), ref(xt).numpy(), rtol=1e-6, atol=1e-6)


def test_stage4_bad_sizes_raise(ex):
    with pytest.raises(ValueError, match="SwiGLU sizes must be positive, got d_model=32, d_ff=0"):
        ex.SwiGLU(32, 0)
