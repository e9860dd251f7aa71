"""Grouped-query attention arranged for speed: the fast version of the `attention` seam (minimac/attention.py).
Lesson 04 (speed appendix).

The same arithmetic as `attention.attention`, laid out so that tinygrad schedules it well:
- no K/V copies for GQA: the n_rep query heads of a group are stacked along the time axis and share one key matrix;
- the scores and probabilities, and their gradients, are stored once instead of being recomputed (exp included)
  inside each matmul that reads them (`contiguous_backward`);
- the two matmuls use minimac.fast.linear.matmul, and `softmax` evaluates exp once (minimac.fast.fast_exp) and
  differentiates from the stored probabilities (tinygrad's own gradient of exp evaluates it again, a software
  polynomial on the CPU);
- where the device table asks (`padded_window`), keys and values of a symbolic length S (a decoding step of one
  row reads the cache up to its position, a bound Variable) are padded with zeros to the longest S, masked: the
  softmax and the probabilities @ values then sum over a fixed length, which a GPU can split across threads
  (tinygrad splits no sum of a symbolic length, and ran each of them in one block of 3-16 threads looping over every
  position).
tests/test_speed_paths.py checks values and gradients against the plain version.
"""
from __future__ import annotations

import math

from tinygrad import Tensor, UOp, function

from minimac.attention import MASK_VALUE
from minimac.fast.devices import capabilities
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
    # keys up to a symbolic position (a decoding step), one row: no gradient, no layout copies of the cache. Not for
    # batches: their probabilities @ values have more outputs than tinygrad splits (4,096 for small at batch 8), and
    # padded, its 256 threads would loop over max_seq_len keys instead of those so far (`decode_kernels.py --target`)
    padded = isinstance(k.shape[2], UOp) and q.shape[0] == 1 and capabilities(q).padded_window
    if padded:
        k, v, mask = padded_window(k, v, mask)
    B, Hq, T, hd = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    n_rep = Hq // Hkv
    scores = matmul(q.reshape(B, Hkv, n_rep * T, hd).float(), k.float().transpose(-2, -1),
                    plain=padded)                                                        # (B, Hkv, n_rep*T, S)
    scores = (scores * (1.0 / math.sqrt(hd))).contiguous_backward()  # d(scores) is stored once, read by two matmuls
    if mask is not None:  # (b, 1, T, S) -> the same rows for each of the n_rep stacked heads: (b, 1, n_rep*T, S)
        mask = mask.unsqueeze(2).expand(mask.shape[0], 1, n_rep, T, S).reshape(mask.shape[0], 1, n_rep * T, S)
        scores = mask.where(scores, MASK_VALUE)
    # stored once (not recomputed, exp included, inside probs @ v), and so is its gradient
    probs = softmax(scores).contiguous_backward().dropout(dropout)
    return matmul(probs.cast(v.dtype), v, plain=padded).reshape(B, Hq, T, hd)       # (B, Hq, T, hd)


def padded_window(k: Tensor, v: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """k, v (B, Hkv, S, hd) with S symbolic -> (B, Hkv, S_max, hd), zeros past S, and a mask (b, 1, T, S_max) that
    hides them: the same attention over a fixed number of keys. The zeros are not read from memory (tinygrad gates
    the loads), but every step now loops over S_max keys."""
    S = k.shape[2]
    longest = int(S.vmax)
    k, v = (t.pad(((0, 0), (0, 0), (0, longest - S), (0, 0))) for t in (k, v))
    if mask is None:
        return k, v, (Tensor.arange(longest) < S).reshape(1, 1, 1, longest).to(k.device)
    return k, v, mask.pad(((0, 0), (0, 0), (0, 0), (0, longest - S)))   # pads with False
