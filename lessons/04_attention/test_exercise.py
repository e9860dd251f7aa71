"""Tests for lesson 04. `pytest lessons/04_attention` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py.

Your numpy functions are compared with slow loop-by-loop references written here and with minimac/attention.py
(weights copied into minimac's GroupedQueryAttention). Run one stage at a time with -k, e.g. `-k stage1`.
"""
import math

import numpy as np
import pytest
from tinygrad import Tensor

from minimac import attention as mattn
from minimac.model import ModelConfig

RNG = np.random.default_rng(0)
D, HQ, HKV = 32, 4, 2
HD = D // HQ
WEIGHTS = {"q": RNG.normal(size=(HQ * HD, D)) / math.sqrt(D), "k": RNG.normal(size=(HKV * HD, D)) / math.sqrt(D),
           "v": RNG.normal(size=(HKV * HD, D)) / math.sqrt(D), "o": RNG.normal(size=(D, HQ * HD)) / math.sqrt(D)}
X = RNG.normal(size=(2, 9, D))


@pytest.fixture(scope="module")
def minimac_attention():
    attn = mattn.GroupedQueryAttention(d_model=D, num_query_heads=HQ, num_kv_heads=HKV, max_seq_len=16)
    for name in "qkvo":
        getattr(attn, f"{name}_proj").weight.assign(Tensor(WEIGHTS[name].astype(np.float32)))
    return attn


def loop_attention(q, k, v, visible):
    """One query, one key at a time: q (T, hd), k/v (S, hd), visible(i, j) -> bool."""
    out = np.zeros_like(q)
    for i in range(q.shape[0]):
        keys = [j for j in range(k.shape[0]) if visible(i, j)]
        s = np.array([q[i] @ k[j] / math.sqrt(q.shape[1]) for j in keys])
        w = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
        out[i] = sum(wj * v[j] for wj, j in zip(w, keys))
    return out


def test_stage1_softmax(ex):
    np.testing.assert_allclose(ex.softmax(np.array([1000.0, 1000.0])), [0.5, 0.5])
    z = RNG.normal(size=(3, 7)) * 50
    p = ex.softmax(z)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p, np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1,
                               keepdims=True), rtol=1e-12)


def test_stage1_causal_mask(ex):
    np.testing.assert_array_equal(ex.causal_mask(3), np.tril(np.ones((3, 3), dtype=bool)))
    np.testing.assert_array_equal(ex.causal_mask(2, start_pos=2), [[1, 1, 1, 0], [1, 1, 1, 1]])
    assert ex.causal_mask(2, start_pos=2).dtype == bool
    for T, start_pos in [(4, 0), (3, 5), (5, 1)]:
        np.testing.assert_array_equal(ex.causal_mask(T, start_pos), mattn.build_attention_mask(T, start_pos).numpy()[0, 0])


def test_stage1_attention(ex):
    q, k, v = RNG.normal(size=(3, 6, 8))
    np.testing.assert_allclose(ex.attention(q, k, v), loop_attention(q, k, v, lambda i, j: True), rtol=1e-10)
    np.testing.assert_allclose(ex.attention(q, k, v, np.tril(np.ones((6, 6), dtype=bool))),
                               loop_attention(q, k, v, lambda i, j: j <= i), rtol=1e-10)
    batched = RNG.normal(size=(3, 2, 4, 6, 8))  # (q/k/v, B, H, T, hd)
    ours = ex.attention(*batched, np.tril(np.ones((6, 6), dtype=bool)))
    ref = Tensor(batched[0].astype(np.float32)).scaled_dot_product_attention(
        Tensor(batched[1].astype(np.float32)), Tensor(batched[2].astype(np.float32)), is_causal=True)
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_stage1_a_row_with_nothing_visible_stays_finite(ex):
    q, k, v = RNG.normal(size=(3, 2, 4))
    out = ex.attention(q, k, v, np.array([[True, False], [False, False]]))
    assert np.isfinite(out).all(), "mask with MASK_VALUE, not -inf"


def test_stage2_repeat_kv(ex):
    kv = RNG.normal(size=(2, 3, 5, 4))
    np.testing.assert_array_equal(ex.repeat_kv(kv, 1), kv)
    got = ex.repeat_kv(kv, 2)
    assert got.shape == (2, 6, 5, 4)
    np.testing.assert_array_equal(got[:, 0], got[:, 1])  # query heads 0 and 1 share KV head 0
    np.testing.assert_allclose(got, mattn.repeat_kv(Tensor(kv.astype(np.float32)), 2).numpy(), rtol=1e-6)


def test_stage2_gqa_matches_minimac(ex, minimac_attention):
    ours = ex.gqa_forward(X, WEIGHTS, HQ, HKV)
    assert ours.shape == X.shape
    np.testing.assert_allclose(ours, minimac_attention(Tensor(X.astype(np.float32))).numpy(), rtol=1e-5, atol=1e-5)


def test_stage2_gqa_is_mha_with_tied_kv_weights(ex):
    def tied(w):  # repeat each KV head's rows for its group of query heads
        return np.repeat(w.reshape(HKV, HD, D), HQ // HKV, axis=0).reshape(HQ * HD, D)
    mha = ex.gqa_forward(X, {**WEIGHTS, "k": tied(WEIGHTS["k"]), "v": tied(WEIGHTS["v"])}, HQ, HQ)
    np.testing.assert_allclose(ex.gqa_forward(X, WEIGHTS, HQ, HKV), mha, atol=1e-10)
    # multi-query attention: one KV head for all
    mqa = {**WEIGHTS, "k": WEIGHTS["k"][:HD], "v": WEIGHTS["v"][:HD]}
    np.testing.assert_allclose(ex.gqa_forward(X, mqa, HQ, 1),
                               ex.gqa_forward(X, {**mqa, "k": np.tile(mqa["k"], (HQ, 1)),
                                                  "v": np.tile(mqa["v"], (HQ, 1))}, HQ, HQ), atol=1e-10)


def test_stage2_gqa_is_causal(ex):
    changed = X.copy()
    changed[:, 6:] += 5.0  # the future must not change the past
    np.testing.assert_allclose(ex.gqa_forward(changed, WEIGHTS, HQ, HKV)[:, :6],
                               ex.gqa_forward(X, WEIGHTS, HQ, HKV)[:, :6], atol=1e-12)


def test_stage2_heads_that_do_not_divide_raise(ex):
    with pytest.raises(ValueError, match=r"num_query_heads \(4\) must be a multiple of num_kv_heads \(3\)"):
        ex.gqa_forward(X, WEIGHTS, 4, 3)


def test_stage3_cache(ex):
    cache = ex.KVCache()
    assert len(cache) == 0
    k, v = RNG.normal(size=(2, 1, 2, 3, 4))
    k_all, v_all = cache.update(k, v)
    assert len(cache) == 3 and k_all.shape == (1, 2, 3, 4)
    k_all, v_all = cache.update(k[:, :, :1], v[:, :, :1])
    assert len(cache) == 4
    np.testing.assert_array_equal(k_all[:, :, 3], k[:, :, 0])
    np.testing.assert_array_equal(v_all[:, :, :3], v)


def test_stage3_cached_decoding_equals_full_recompute(ex, minimac_attention):
    full = ex.gqa_forward(X, WEIGHTS, HQ, HKV)
    cache, pieces, pos = ex.KVCache(), [], 0
    for n in [4, 3, 1, 1]:  # a prompt, a chunk, then one token at a time
        pieces.append(ex.gqa_forward(X[:, pos:pos + n], WEIGHTS, HQ, HKV, cache=cache))
        pos += n
    assert len(cache) == 9 and cache.k.shape == (2, HKV, 9, HD), "the cache keeps Hkv heads, before repeat_kv"
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, atol=1e-10)
    # minimac's cache gives the same numbers
    minimac_attention.reset_cache()
    out, pos = [], 0
    for n in [4, 3, 1, 1]:
        out.append(minimac_attention(Tensor(X[:, pos:pos + n].astype(np.float32)), start_pos=pos, use_cache=True).numpy())
        pos += n
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), np.concatenate(out, axis=1), rtol=1e-5, atol=1e-5)


def test_stage4_kv_cache_bytes(ex):
    assert ex.kv_cache_bytes(4, 2, 64, 1) == 4096
    expected = {"tiny": 4, "small": 6, "medium": 18, "large": 32}  # MiB for a full 1,024-token float32 context
    for name, mib in expected.items():
        c = ModelConfig.from_preset(name)
        full = ex.kv_cache_bytes(c.num_layers, c.num_kv_heads, c.head_dim, c.max_seq_len, 4)
        assert full == mib * 2 ** 20
        assert ex.kv_cache_bytes(c.num_layers, c.num_kv_heads, c.head_dim, c.max_seq_len, 2) == full // 2
        mha = ex.kv_cache_bytes(c.num_layers, c.num_query_heads, c.head_dim, c.max_seq_len, 4)
        assert mha == full * c.num_query_heads // c.num_kv_heads  # what GQA saves


def test_stage4_matches_the_buffers_minimac_allocates(ex):
    cache = mattn.KVCache(batch_size=1, num_kv_heads=HKV, max_seq_len=16, head_dim=HD)
    assert cache.k.nbytes() + cache.v.nbytes() == ex.kv_cache_bytes(1, HKV, HD, 16, 4)
