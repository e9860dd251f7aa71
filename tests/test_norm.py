"""RMSNorm against a numpy float64 reference."""
import numpy as np
import pytest
from tinygrad import Tensor, dtypes

from minimac.norm import RMSNorm, rms_norm


def np_rms_norm(x, w, eps):
    x = x.astype(np.float64)
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * w


def test_matches_numpy_reference():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 5, 16)).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    norm = RMSNorm(16, eps=1e-6)
    norm.weight = Tensor(w)
    np.testing.assert_allclose(norm(Tensor(x)).numpy(), np_rms_norm(x, w, 1e-6), rtol=1e-5, atol=1e-6)


def test_weight_starts_at_ones_and_docstring_example():
    norm = RMSNorm(2, eps=0.0)
    np.testing.assert_array_equal(norm.weight.numpy(), [1.0, 1.0])
    np.testing.assert_allclose(norm(Tensor([[3.0, 4.0]])).numpy(), [[0.8485281, 1.1313708]], rtol=1e-6)


def test_eps_is_inside_the_square_root():
    # x = [3, 4], eps = 1: inside gives x / sqrt(12.5 + 1) = [0.8165, 1.0887]; outside would give [0.6629, 0.8839]
    y = rms_norm(Tensor([[3.0, 4.0]]), eps=1.0).numpy()
    np.testing.assert_allclose(y, [[3 / np.sqrt(13.5), 4 / np.sqrt(13.5)]], rtol=1e-6)
    np.testing.assert_array_equal(rms_norm(Tensor.zeros(1, 4), eps=1e-6).numpy(), np.zeros((1, 4)))


def test_half_input_is_computed_in_float32_and_cast_back():
    x = Tensor([[300.0, -300.0, 300.0, 300.0]], dtype=dtypes.float16)  # 300**2 overflows float16
    y = RMSNorm(4)(x)
    assert y.dtype == dtypes.float16
    np.testing.assert_allclose(y.numpy().astype(np.float64), [[1.0, -1.0, 1.0, 1.0]], rtol=1e-3)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="dim must be positive"):
        RMSNorm(0)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        RMSNorm(4, eps=-1.0)
