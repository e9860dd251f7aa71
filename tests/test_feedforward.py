"""SwiGLU against a numpy float64 reference."""
import numpy as np
import pytest
from tinygrad import Tensor

from minimac.feedforward import SwiGLU


def np_swiglu(x, w1, w2, w3):
    gate = x @ w1.T
    return (gate / (1 + np.exp(-gate)) * (x @ w3.T)) @ w2.T


def test_matches_numpy_reference():
    ffn = SwiGLU(16, 48)
    x = np.random.default_rng(0).standard_normal((2, 5, 16)).astype(np.float32)
    w1, w2, w3 = (getattr(ffn, n).weight.numpy().astype(np.float64) for n in ("w1", "w2", "w3"))
    np.testing.assert_allclose(ffn(Tensor(x)).numpy(), np_swiglu(x, w1, w2, w3), rtol=1e-5, atol=1e-6)


def test_hidden_size_is_d_ff_exactly_and_bias_free():
    ffn = SwiGLU(16, 40)
    assert ffn.w1.weight.shape == (40, 16) and ffn.w3.weight.shape == (40, 16) and ffn.w2.weight.shape == (16, 40)
    assert ffn.w1.bias is None and ffn.w2.bias is None and ffn.w3.bias is None


def test_docstring_example():
    ffn = SwiGLU(1, 1)
    for name in ("w1", "w2", "w3"):
        getattr(ffn, name).weight = Tensor([[1.0]])
    np.testing.assert_allclose(ffn(Tensor([[1.0]])).numpy(), [[1 / (1 + np.exp(-1.0))]], rtol=1e-6)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="sizes must be positive"):
        SwiGLU(16, 0)
