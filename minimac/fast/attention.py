"""Grouped-query attention arranged for speed: the fast version of the `attention` seam (minimac/attention.py).
Lesson 04 (speed appendix).

The same arithmetic as `attention.attention`, laid out so that tinygrad schedules it well:
- no K/V copies for GQA: the n_rep query heads of a group are stacked along the time axis and share one key matrix;
- the scores and probabilities, and their gradients, are stored once instead of being recomputed (exp included)
  inside each matmul that reads them (`contiguous_backward`);
- the two matmuls use minimac.fast.linear.matmul, and `softmax` evaluates exp once (minimac.fast.fast_exp) and
  differentiates from the stored probabilities (tinygrad's own gradient of exp evaluates it again, a software
  polynomial on the CPU).
tests/test_speed_paths.py checks values and gradients against the plain version.
"""
from __future__ import annotations

import math

from tinygrad import Tensor, UOp, function

from minimac.attention import MASK_VALUE
from minimac.fast.fast_exp import exp
from minimac.fast.linear import matmul


def _softmax_backward(grad: UOp, call: UOp) -> tuple[UOp, None]:
    """d(scores) = p * (grad - sum(grad * p)), from the stored probabilities p."""
    p = call.src[2]
    return p * (grad - (grad * p).sum(-1, keepdim=True)), None


@function(grad_fxn=_softmax_backward)
def _softmax_of(scores: Tensor, probs: Tensor) -> Tensor:
    return probs


def softmax(scores: Tensor) -> Tensor:
    """scores.softmax(-1), the same numbers, computed with one pass of exp and differentiated from the stored
    probabilities."""
    e = exp(scores - scores.max(-1, keepdim=True)).contiguous()         # stored once: read by the sum and the divide
    return _softmax_of(scores, (e / e.sum(-1, keepdim=True)).contiguous().detach())


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout: float = 0.0) -> Tensor:
    """Same as `minimac.attention.attention`: q (B, Hq, T, hd), k/v (B, Hkv, S, hd), mask bool (b, 1, T, S).

    Query head h = g * n_rep + r reads KV head g, so q (B, Hq, T, hd) viewed as (B, Hkv, n_rep*T, hd) puts the n_rep
    heads of group g one after another along the time axis, where they all meet k[:, g]: one (n_rep*T, S) score
    matrix per KV head, and no repeat_kv copies.
    """
    B, Hq, T, hd = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    n_rep = Hq // Hkv
    scores = matmul(q.reshape(B, Hkv, n_rep * T, hd).float(), k.float().transpose(-2, -1))  # (B, Hkv, n_rep*T, S)
    scores = (scores * (1.0 / math.sqrt(hd))).contiguous_backward()  # d(scores) is stored once, read by two matmuls
    if mask is not None:  # (b, 1, T, S) -> the same rows for each of the n_rep stacked heads: (b, 1, n_rep*T, S)
        mask = mask.unsqueeze(2).expand(mask.shape[0], 1, n_rep, T, S).reshape(mask.shape[0], 1, n_rep * T, S)
        scores = mask.where(scores, MASK_VALUE)
    # stored once (not recomputed, exp included, inside probs @ v), and so is its gradient
    probs = softmax(scores).contiguous_backward().dropout(dropout)
    return matmul(probs.cast(v.dtype), v).reshape(B, Hq, T, hd)                    # (B, Hq, T, hd)
