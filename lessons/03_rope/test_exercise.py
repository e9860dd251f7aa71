"""Tests for lesson 03. `pytest lessons/03_rope` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py.

The float64 reference here is independent of the table formula: a half-split pair (x_i, x_{i+d/2}) is the complex
number x_i + 1j * x_{i+d/2}, and RoPE multiplies it by exp(1j * position * inv_freq[i]). Your tinygrad module is also
compared with minimac/rope.py. Run one stage at a time with -k, e.g. `pytest lessons/03_rope -k stage2`.
"""
import numpy as np
import pytest
from tinygrad import Tensor
from tinygrad.nn.state import get_parameters, get_state_dict

from minimac import rope as mrope

RNG = np.random.default_rng(0)


def complex_rope(x, positions, base=10000.0):
    """Half-split RoPE as complex multiplication, float64."""
    d = x.shape[-1]
    inv = 1.0 / base ** (np.arange(d // 2) * 2.0 / d)
    z = (x[..., : d // 2] + 1j * x[..., d // 2:]) * np.exp(1j * np.outer(positions, inv))
    return np.concatenate([z.real, z.imag], axis=-1)


def test_stage1_inv_frequencies(ex):
    np.testing.assert_allclose(ex.inv_frequencies(4, base=100.0), [1.0, 0.1], rtol=1e-12)
    inv = ex.inv_frequencies(64)
    assert inv.shape == (32,) and inv[0] == 1.0 and np.all(np.diff(inv) < 0)  # from fast to slow
    for bad in (0, 7, -2):
        with pytest.raises(ValueError, match="positive even"):
            ex.inv_frequencies(bad)


def test_stage1_rope_tables_match_minimac(ex):
    cos, sin = ex.rope_tables(4, 3, base=100.0)
    np.testing.assert_allclose(sin[2], np.sin([2.0, 0.2, 2.0, 0.2]), rtol=1e-12)
    for head_dim, length, base in [(8, 16, 10000.0), (64, 40, 500000.0)]:
        cos, sin = ex.rope_tables(head_dim, length, base)
        mcos, msin = mrope.rope_tables(head_dim, length, base)
        assert cos.shape == (length, head_dim) and cos.dtype == np.float64
        np.testing.assert_allclose(cos, mcos, atol=1e-12)
        np.testing.assert_allclose(sin, msin, atol=1e-12)


def test_stage2_rotate_half(ex):
    np.testing.assert_array_equal(ex.rotate_half(np.array([1, 2, 3, 4])), [-3, -4, 1, 2])  # not [-2, 1, -4, 3]
    x = RNG.normal(size=(2, 3, 8))
    np.testing.assert_array_equal(ex.rotate_half(ex.rotate_half(x)), -x)  # two quarter turns


def test_stage2_apply_rope_matches_complex_reference(ex):
    x = RNG.normal(size=(2, 3, 10, 16))  # (B, H, T, hd)
    np.testing.assert_allclose(ex.apply_rope(x), complex_rope(x, np.arange(10)), atol=1e-12)
    np.testing.assert_allclose(ex.apply_rope(x, start_pos=5, base=100.0), complex_rope(x, np.arange(5, 15), 100.0),
                               atol=1e-12)
    np.testing.assert_allclose(ex.apply_rope(x)[..., 0, :], x[..., 0, :], atol=1e-12)  # position 0: no rotation
    np.testing.assert_allclose(np.linalg.norm(ex.apply_rope(x), axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-12)


def test_stage2_scores_depend_only_on_distance(ex):
    q, k = RNG.normal(size=(1, 32)), RNG.normal(size=(1, 32))
    def score(m, n):
        return float((ex.apply_rope(q, start_pos=m) * ex.apply_rope(k, start_pos=n)).sum())
    for m, n in [(0, 3), (7, 2), (40, 40)]:
        for shift in (1, 13, 200):
            assert score(m, n) == pytest.approx(score(m + shift, n + shift), abs=1e-9)
    assert score(0, 3) != pytest.approx(score(0, 4), abs=1e-6)


def test_stage2_offset_equals_rows_of_the_full_pass(ex):
    x = RNG.normal(size=(12, 8))
    np.testing.assert_allclose(ex.apply_rope(x[7:], start_pos=7), ex.apply_rope(x)[7:], atol=1e-12)


def test_stage3_interleaved_layout(ex):
    x = np.array([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_allclose(ex.apply_rope_interleaved(x, start_pos=0), x)  # position 0: no rotation
    y = ex.apply_rope_interleaved(x, start_pos=1, base=1.0)  # every pair turned by 1 radian
    c, s = np.cos(1.0), np.sin(1.0)
    np.testing.assert_allclose(y, [[c - 2 * s, s + 2 * c, 3 * c - 4 * s, 3 * s + 4 * c]], atol=1e-12)
    x = RNG.normal(size=(6, 8))
    assert not np.allclose(ex.apply_rope_interleaved(x), ex.apply_rope(x)), "the two layouts pair different features"


def test_stage3_permutation_links_the_layouts(ex):
    np.testing.assert_array_equal(ex.interleaved_permutation(8), [0, 2, 4, 6, 1, 3, 5, 7])
    for d in (2, 8, 32):
        perm = ex.interleaved_permutation(d)
        x = RNG.normal(size=(2, 9, d))
        np.testing.assert_allclose(ex.apply_rope_interleaved(x, start_pos=3),
                                   ex.apply_rope(x[..., perm], start_pos=3)[..., np.argsort(perm)], atol=1e-12)


def test_stage4_tinygrad_module_matches_minimac(ex):
    rope, ref = ex.RotaryEmbedding(16, 32), mrope.RotaryEmbedding(16, 32)
    x = RNG.normal(size=(2, 3, 5, 16))
    xt = Tensor(x.astype(np.float32))
    for start_pos in (0, 4, 27):
        out = rope(xt, start_pos)
        assert isinstance(out, Tensor) and out.shape == xt.shape
        np.testing.assert_allclose(out.numpy(), complex_rope(x, np.arange(start_pos, start_pos + 5)),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out.numpy(), ref(xt, start_pos).numpy(), rtol=1e-6, atol=1e-6)


def test_stage4_tables_are_not_parameters(ex):
    rope = ex.RotaryEmbedding(8, 16)
    assert get_parameters(rope) == [] and get_state_dict(rope) == {}
    with pytest.raises(ValueError, match="exceed max_seq_len 16"):
        rope(Tensor.zeros(1, 4, 8), start_pos=13)
