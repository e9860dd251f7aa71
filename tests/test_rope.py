"""RoPE: tables, half-split rotation, position offsets, and that the tables are buffers, not parameters."""
import numpy as np
import pytest
from tinygrad import Tensor, dtypes
from tinygrad.nn.state import get_parameters, get_state_dict

from minimac.rope import RotaryEmbedding, rope_tables, rotate_half


def np_rope(x, positions, base=10000.0):
    """Float64 reference, written pair by pair: feature i rotates with feature i + d/2 by angle pos * base^(-2i/d)."""
    d = x.shape[-1]
    out = np.empty_like(x, dtype=np.float64)
    for t, pos in enumerate(positions):
        for i in range(d // 2):
            theta = pos * base ** (-2 * i / d)
            a, b = x[..., t, i], x[..., t, i + d // 2]
            out[..., t, i] = a * np.cos(theta) - b * np.sin(theta)
            out[..., t, i + d // 2] = b * np.cos(theta) + a * np.sin(theta)
    return out


def test_tables_follow_the_formula():
    cos, sin = rope_tables(8, 5, base=100.0)
    inv_freq = 100.0 ** (-np.arange(0, 8, 2) / 8)
    angles = np.arange(5)[:, None] * np.concatenate([inv_freq, inv_freq])[None, :]
    np.testing.assert_allclose(cos, np.cos(angles), rtol=0, atol=1e-15)
    np.testing.assert_allclose(sin, np.sin(angles), rtol=0, atol=1e-15)


def test_rotate_half_is_half_split_not_interleaved():
    np.testing.assert_array_equal(rotate_half(Tensor([1.0, 2.0, 3.0, 4.0])).numpy(), [-3.0, -4.0, 1.0, 2.0])


@pytest.mark.parametrize("start_pos", [0, 7])
def test_matches_pairwise_reference_with_offset(start_pos):
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 16)).astype(np.float32)  # (B, H, T, hd)
    rope = RotaryEmbedding(16, 32)
    got = rope(Tensor(x), start_pos=start_pos).numpy()
    np.testing.assert_allclose(got, np_rope(x, range(start_pos, start_pos + 4)), rtol=1e-5, atol=1e-5)


def test_scores_depend_only_on_distance():
    rng = np.random.default_rng(2)
    q, k = (Tensor(rng.standard_normal((1, 1, 1, 8)).astype(np.float32)) for _ in range(2))
    rope = RotaryEmbedding(8, 64)
    s1 = (rope(q, 10) * rope(k, 7)).sum().item()
    s2 = (rope(q, 40) * rope(k, 37)).sum().item()
    assert abs(s1 - s2) < 1e-5


def test_tables_are_float32_buffers_not_parameters():
    rope = RotaryEmbedding(8, 16)
    assert rope.cos.dtype == dtypes.float32 and rope.sin.dtype == dtypes.float32
    holder = type("Holder", (), {})()
    holder.rope = rope
    assert get_state_dict(holder) == {} and get_parameters(holder) == []


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7, 16)
    with pytest.raises(ValueError, match="max_seq_len must be positive"):
        rope_tables(8, 0)
    with pytest.raises(ValueError, match="base must be positive"):
        rope_tables(8, 4, base=0.0)
    with pytest.raises(ValueError, match="exceed max_seq_len 16"):
        RotaryEmbedding(8, 16)(Tensor.zeros(1, 1, 4, 8), start_pos=14)
