"""Grouped-query attention (GQA) with rotary positions and a KV cache for decoding. Lesson 04.

Each of the Hq query heads looks at one of Hkv key/value heads (Hkv divides Hq). The KV heads are shared by
*contiguous* groups: query heads [g*n_rep, (g+1)*n_rep) use KV head g, with n_rep = Hq // Hkv. Hkv = Hq is ordinary
multi-head attention, Hkv = 1 is multi-query attention. Fewer KV heads means fewer parameters and a smaller cache.

    q = x Wq^T -> (B, Hq, T, hd)     k, v = x Wk^T, x Wv^T -> (B, Hkv, T, hd)     (bias-free, weights (out, in))
    q, k = rope(q), rope(k)                                            positions start_pos..start_pos+T-1
    scores = q k^T / sqrt(hd), masked -> softmax in float32 -> @ v -> (B, Hq, T, hd) -> o_proj

Masking: a query at absolute position p may attend keys 0..p (causal), and, if a padding mask (B, S) is given
(1 = real token, 0 = padding), only real keys. Masked scores are set to float32's most negative *finite* value, not
-inf, so a row with no visible key (a padding query under left padding) gives a finite garbage row instead of NaN,
which would poison the gradients.

KV cache: `use_cache=True` writes this call's keys/values (after RoPE, before head repetition, Hkv heads) into a
preallocated (B, Hkv, max_seq_len, hd) buffer at start_pos..start_pos+T-1 with `assign`, and attends over positions
0..start_pos+T-1. The buffer never changes shape, so `start_pos` may be a symbolic `UOp` variable and a TinyJit'd
decode step is compiled once (the idiom of tinygrad/llm/model.py). FIX (seed bug): the seed's cache restarted RoPE at
0 and built a T x T mask that broke for multi-token steps; here the mask is (T, start_pos+T) with key j visible to
query i iff j <= start_pos + i.

`attention` spells out repeat / matmul / mask / softmax; it is what runs, unless `minimac.fast.install()` has put
minimac/fast/attention.py's version in its place (the same numbers, arranged for speed: no K/V copies for GQA,
scores and probabilities stored once, exp evaluated once). `attention_sdpa` calls tinygrad's
`scaled_dot_product_attention` (an explicit additive mask, since `is_causal=True` is wrong with a prefilled cache),
kept for comparison. tests/test_speed_paths.py checks that all three agree.

Not covered: sliding-window attention, flash-attention kernels, paged caches, ALiBi.
"""
from __future__ import annotations

import math

import numpy as np
from tinygrad import Tensor, UOp, dtypes

from minimac.ops import Linear, seam
from minimac.rope import RotaryEmbedding

MASK_VALUE = float(np.finfo(np.float32).min)  # finite "minus infinity" for masked scores


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """(B, Hkv, S, hd) -> (B, Hkv*n_rep, S, hd), each KV head repeated n_rep times in a row: [k0, k0, k1, k1]."""
    if n_rep == 1:
        return x
    B, Hkv, S, hd = x.shape
    return x.unsqueeze(2).expand(B, Hkv, n_rep, S, hd).reshape(B, Hkv * n_rep, S, hd)


def build_attention_mask(T: int, start_pos: int | UOp = 0, padding_mask: Tensor | None = None,
                         device: str | tuple[str, ...] | None = None) -> Tensor | None:
    """Boolean mask (1 or B, 1, T, S), S = start_pos + T, True where query i may attend key j; None if all may.

    Query i sits at absolute position start_pos + i and sees keys j <= start_pos + i (and real keys only, if a
    padding mask (B, S) is given). Example with start_pos=2, T=2 (S=4): rows [1 1 1 0] and [1 1 1 1].
    `device`: where the queries are (a tuple when the model is replicated on several devices, minimac/parallel.py).
    """
    S = start_pos + T
    mask = None
    if T > 1:  # a single new token sees every cached key: no causal mask needed
        mask = Tensor.ones(T, S, dtype=dtypes.bool, device=device).tril(start_pos).reshape(1, 1, T, S)
    if padding_mask is not None:
        pad = padding_mask.cast(dtypes.bool).reshape(padding_mask.shape[0], 1, 1, S)  # (B, 1, 1, S)
        mask = pad if mask is None else mask & pad
    return mask


@seam
def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout: float = 0.0) -> Tensor:
    """The GQA core. q (B, Hq, T, hd), k/v (B, Hkv, S, hd), mask bool (.., T, S) -> (B, Hq, T, hd)."""
    n_rep = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)                                # (B, Hq, S, hd)
    scores = q.float() @ k.float().transpose(-2, -1) * (1.0 / math.sqrt(q.shape[-1]))  # (B, Hq, T, S)
    if mask is not None:
        scores = mask.where(scores, MASK_VALUE)
    probs = scores.softmax(-1).dropout(dropout)  # float32 softmax; dropout only under Context(TRAINING=1)
    return probs.cast(v.dtype) @ v                                                # (B, Hq, T, hd)


def attention_sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout: float = 0.0) -> Tensor:
    """Same as `attention` through `Tensor.scaled_dot_product_attention` (kept for comparison)."""
    additive = None if mask is None else mask.where(0.0, MASK_VALUE)  # float, so empty rows stay finite
    return q.scaled_dot_product_attention(k, v, attn_mask=additive, dropout_p=dropout, enable_gqa=True)


class KVCache:
    """Preallocated keys and values (B, Hkv, max_seq_len, hd), written in place. Not a parameter (no __dict__)."""

    __slots__ = ("k", "v")

    def __init__(self, batch_size: int, num_kv_heads: int, max_seq_len: int, head_dim: int,
                 dtype=dtypes.float32, device: str | tuple[str, ...] | None = None):
        shape = (batch_size, num_kv_heads, max_seq_len, head_dim)   # device: the keys' (a tuple: one copy on each)
        self.k = Tensor.zeros(*shape, dtype=dtype, device=device).contiguous().realize()
        self.v = Tensor.zeros(*shape, dtype=dtype, device=device).contiguous().realize()

    @property
    def batch_size(self) -> int:
        return self.k.shape[0]

    def update(self, k: Tensor, v: Tensor, start_pos: int | UOp) -> tuple[Tensor, Tensor]:
        """Store k, v (B, Hkv, T, hd) at start_pos..start_pos+T-1; return all keys/values 0..start_pos+T-1."""
        T = k.shape[2]
        self.k[:, :, start_pos:start_pos + T].assign(k.cast(self.k.dtype))
        self.v[:, :, start_pos:start_pos + T].assign(v.cast(self.v.dtype))
        return self.k[:, :, :start_pos + T], self.v[:, :, :start_pos + T]  # (B, Hkv, start_pos+T, hd)


class GroupedQueryAttention:
    """Causal grouped-query self-attention with RoPE and an optional KV cache.

    >>> attn = GroupedQueryAttention(d_model=64, num_query_heads=4, num_kv_heads=2, max_seq_len=32)
    >>> attn(Tensor.randn(2, 5, 64)).shape
    (2, 5, 64)
    """

    def __init__(self, d_model: int, num_query_heads: int, num_kv_heads: int, max_seq_len: int,
                 rope_base: float = 10000.0, dropout: float = 0.0, rope: RotaryEmbedding | None = None):
        if d_model % num_query_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_query_heads ({num_query_heads})")
        if num_query_heads % num_kv_heads:
            raise ValueError(f"num_query_heads ({num_query_heads}) must be a multiple of num_kv_heads ({num_kv_heads})")
        self.num_query_heads, self.num_kv_heads = num_query_heads, num_kv_heads
        self.head_dim = d_model // num_query_heads
        self.max_seq_len, self.dropout = max_seq_len, dropout
        self.q_proj = Linear(d_model, num_query_heads * self.head_dim, bias=False)
        self.k_proj = Linear(d_model, num_kv_heads * self.head_dim, bias=False)
        self.v_proj = Linear(d_model, num_kv_heads * self.head_dim, bias=False)
        self.o_proj = Linear(num_query_heads * self.head_dim, d_model, bias=False)
        # shared across layers by the Transformer; __slots__ keeps the tables and the cache out of get_parameters
        self.rope = rope if rope is not None else RotaryEmbedding(self.head_dim, max_seq_len, rope_base)
        self.cache: KVCache | None = None

    def reset_cache(self) -> None:
        self.cache = None

    def __call__(self, x: Tensor, start_pos: int | UOp = 0, attention_mask: Tensor | None = None,
                 use_cache: bool = False) -> Tensor:
        """x (B, T, d_model) at positions start_pos.. -> (B, T, d_model).

        attention_mask: optional (B, S) padding mask, 1 = real token, over every key this call attends:
        S = start_pos + T with `use_cache`, else S = T.
        """
        B, T, _ = x.shape
        q = self.q_proj(x).reshape(B, T, self.num_query_heads, self.head_dim).transpose(1, 2)  # (B, Hq, T, hd)
        k = self.k_proj(x).reshape(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)    # (B, Hkv, T, hd)
        v = self.v_proj(x).reshape(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)    # (B, Hkv, T, hd)
        q, k = self.rope(q, start_pos), self.rope(k, start_pos)

        if use_cache:
            if isinstance(start_pos, int) and start_pos == 0 and (self.cache is None or self.cache.batch_size != B):
                self.cache = KVCache(B, self.num_kv_heads, self.max_seq_len, self.head_dim, k.dtype, k.device)
            if self.cache is None:
                raise ValueError("no KV cache yet: the first call with use_cache=True must have start_pos=0")
            if self.cache.batch_size != B:
                raise ValueError(f"batch size {B} does not match the KV cache's {self.cache.batch_size}; "
                                 "start again from start_pos=0")
            k, v = self.cache.update(k, v, start_pos)  # (B, Hkv, start_pos+T, hd)
            mask_pos = start_pos
        else:
            mask_pos = 0  # without a cache the keys are exactly this call's T tokens
        S = k.shape[2]
        if attention_mask is not None and tuple(attention_mask.shape) != (B, S):
            raise ValueError(f"attention_mask must have shape (batch, keys) = ({B}, {S}), "
                             f"got {tuple(attention_mask.shape)}")
        mask = build_attention_mask(T, mask_pos, attention_mask, device=q.device)
        out = attention(q, k, v, mask, self.dropout)                     # (B, Hq, T, hd)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, self.num_query_heads * self.head_dim))
