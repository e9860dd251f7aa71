"""Grouped-query attention against a numpy float64 reference: plain, padded, and with a prefilled KV cache."""
import contextlib

import numpy as np
import pytest
from tinygrad import Tensor, UOp

from minimac import ops
from minimac.attention import GroupedQueryAttention, build_attention_mask, repeat_kv
from minimac.fast.attention import attention as fast_attention

D, HQ, HKV, MAX_LEN = 32, 4, 2, 16


def np_rope(x, start=0, base=10000.0):
    T, d = x.shape[-2], x.shape[-1]
    angles = np.arange(start, start + T)[:, None] * base ** (-np.arange(0, d, 2) / d)[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    a, b = x[..., : d // 2], x[..., d // 2:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)


def np_attention(attn, x, pad=None):
    """Float64 causal GQA over the whole sequence x (B, T, d); query head h reads KV head h // n_rep."""
    w = {n: getattr(attn, f"{n}_proj").weight.numpy().astype(np.float64) for n in "qkvo"}
    B, T, _ = x.shape
    hq, hkv, hd = attn.num_query_heads, attn.num_kv_heads, attn.head_dim
    q = np_rope((x @ w["q"].T).reshape(B, T, hq, hd).transpose(0, 2, 1, 3))
    k = np_rope((x @ w["k"].T).reshape(B, T, hkv, hd).transpose(0, 2, 1, 3))
    v = (x @ w["v"].T).reshape(B, T, hkv, hd).transpose(0, 2, 1, 3)
    real = np.ones((B, T), bool) if pad is None else pad.astype(bool)
    allowed = np.tril(np.ones((T, T), bool))[None] & real[:, None]  # (B, T, T)
    out = np.zeros((B, hq, T, hd))
    for h in range(hq):
        g = h // (hq // hkv)
        s = np.where(allowed, q[:, h] @ k[:, g].transpose(0, 2, 1) / np.sqrt(hd), -np.inf)
        with np.errstate(invalid="ignore"):  # rows with no visible key become NaN here; tests skip them
            p = np.exp(s - s.max(-1, keepdims=True))
            out[:, h] = p / p.sum(-1, keepdims=True) @ v[:, g]
    return out.transpose(0, 2, 1, 3).reshape(B, T, hq * hd) @ w["o"].T


@pytest.fixture(scope="module")
def attn():
    Tensor.manual_seed(0)
    return GroupedQueryAttention(D, HQ, HKV, MAX_LEN)


@contextlib.contextmanager
def path(fused: bool):
    """Inside the block, the fast attention (minimac/fast/attention.py) or the plain one (minimac/attention.py)."""
    with ops.plain():
        if fused:
            ops.replace(attention=fast_attention)
        yield


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal((2, 8, D)).astype(np.float32)


@pytest.mark.parametrize("fused", [True, False])
def test_matches_numpy_reference(attn, x, fused):
    with path(fused):
        np.testing.assert_allclose(attn(Tensor(x)).numpy(), np_attention(attn, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("hkv", [1, 4])
def test_multi_query_and_multi_head_extremes(x, hkv):
    a = GroupedQueryAttention(D, HQ, hkv, MAX_LEN)
    np.testing.assert_allclose(a(Tensor(x)).numpy(), np_attention(a, x), rtol=1e-4, atol=1e-5)


def test_kv_heads_are_shared_by_contiguous_groups():
    k = Tensor(np.arange(2, dtype=np.float32).reshape(1, 2, 1, 1))  # KV heads 0 and 1
    assert repeat_kv(k, 3).numpy().ravel().tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("fused", [True, False])
def test_padding_mask(attn, x, fused):
    pad = np.ones((2, 8), np.int32)
    pad[0, 6:] = 0  # right padding
    pad[1, :3] = 0  # left padding: queries 0..2 see no real key at all
    with path(fused):
        got = attn(Tensor(x), attention_mask=Tensor(pad)).numpy()
    assert np.isfinite(got).all()
    want = np_attention(attn, x, pad)
    real = pad.astype(bool)
    np.testing.assert_allclose(got[real], want[real], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_cached_decoding_matches_full_recompute(attn, x, fused):
    want = np_attention(attn, x)
    with path(fused):
        got = [attn(Tensor(x[:, :3]), 0, use_cache=True).numpy()]          # prefill 3
        got.append(attn(Tensor(x[:, 3:5]), 3, use_cache=True).numpy())     # a 2-token step on a prefilled cache
        pos = UOp.variable("start_pos", 1, MAX_LEN - 1)
        for p in range(5, 8):                                               # 1-token steps, symbolic position
            got.append(attn(Tensor(x[:, p:p + 1]), pos.bind(p), use_cache=True).numpy())
    np.testing.assert_allclose(np.concatenate(got, axis=1), want, rtol=1e-4, atol=1e-5)


def test_cache_with_padding_fused_equals_reference(attn, x):
    pad = np.ones((2, 8), np.int32)
    pad[1, :2] = 0
    outs = []
    for fused in (True, False):
        with path(fused):
            attn(Tensor(x[:, :4]), 0, attention_mask=Tensor(pad[:, :4]), use_cache=True)
            outs.append(attn(Tensor(x[:, 4:6]), 4, attention_mask=Tensor(pad[:, :6]), use_cache=True).numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs[0], np_attention(attn, x[:, :6], pad[:, :6])[:, 4:6], rtol=1e-4, atol=1e-5)


def test_mask_for_a_prefilled_cache():
    mask = build_attention_mask(2, start_pos=2).numpy()[0, 0]
    assert mask.tolist() == [[True, True, True, False], [True, True, True, True]]
    assert build_attention_mask(1, start_pos=5) is None


def test_bad_arguments_raise(attn, x):
    with pytest.raises(ValueError, match="divisible by num_query_heads"):
        GroupedQueryAttention(30, 4, 2, 8)
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        GroupedQueryAttention(32, 4, 3, 8)
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(batch, keys\) = \(2, 8\)"):
        attn(Tensor(x), attention_mask=Tensor.ones(2, 5))
    fresh = GroupedQueryAttention(D, HQ, HKV, MAX_LEN)
    with pytest.raises(ValueError, match="start_pos=0"):
        fresh(Tensor(x[:, :1]), 3, use_cache=True)
    fresh(Tensor(x[:, :2]), 0, use_cache=True)
    with pytest.raises(ValueError, match="does not match the KV cache"):
        fresh(Tensor(x[:1, 2:3]), 2, use_cache=True)
