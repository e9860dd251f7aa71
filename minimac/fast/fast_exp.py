"""exp for tinygrad's CPU backend, written so that clang compiles it to vector code. Lesson 07 (speed appendix).

tinygrad's CPU backend compiles freestanding C without libm, so `Tensor.exp` becomes exp2 by range reduction and a
polynomial, plus selects for nan, the infinities, overflow and underflow, all written out lane by lane. clang leaves
that as scalar code: about 3 ns a value on this project's machine. A training step still makes three passes of exp
over large tensors (the loss's logsumexp, the attention softmax, SwiGLU's sigmoid), about 8 million values a step for
nano. `exp` here does the same range reduction with the same polynomial (tinygrad's coefficients), but clamps the
argument instead of selecting: 3.0 against 12.9-21 ms for 4 million values, with the same largest relative error
against numpy (3.8e-6 for |x| < 87; `tests/test_speed_paths.py`):

    exp(x) = 2^t,  t = x log2(e), clamped to [-127, 126]
    2^t    = 2^n 2^f,  n = round(t), f = t - n in [-1/2, 1/2]
    2^f    ~ 1 + f (0.6931 + f (0.2402 + f (0.0555 + f (0.00962 + f (0.00134 + f 0.000154)))))
    2^n    = the float32 whose exponent bits hold n + 127 (a bit cast, no arithmetic); n = -127 gives the bits of 0.0

So exp(x) is exactly 0 below x = -87.7 (where the true value is a subnormal float), and 2^126 (8.5e37) above 87.3
instead of inf; a nan stays nan. Fine for what minimac feeds it (x - max <= 0, and a sigmoid's exp(-x)).
Why exactly 0 matters: a masked attention score becomes exp(MASK_VALUE - max). With the clamp at -126 it was
2^-126, the smallest normal float, and divided by the row's sum a *subnormal* probability: half of every causal
attention matrix. Intel CPUs run each multiply with a subnormal operand through a microcode assist (AMD's Zen do
not), so the attention matmuls over those probabilities ran at about 1 GFLOPS on an AVX-512 Xeon, half of a nano
training step (`python benchmarks/profile_step.py` counts the subnormals of a step's attention; tests check 0).
GPUs have exp2 in hardware, and there `exp` is `Tensor.exp`.

    >>> round(exp(Tensor([0.0, 1.0])).tolist()[1], 5)
    2.71828
"""
from __future__ import annotations

import math

from tinygrad import Tensor, dtypes

from minimac.fast.devices import capabilities

EXP2_COEFFICIENTS = (0.00015359208919107914, 0.0013392627006396651, 0.009618384763598442, 0.055503472685813904,
                     0.24022644758224487, 0.6931471824645996, 1.0)  # 2^f on [-1/2, 1/2], highest power first


def exp2_polynomial(t: Tensor) -> Tensor:
    """2^t for float32 t, by range reduction, a polynomial and a bit cast (see the module docstring)."""
    t = t.maximum(-127.0).minimum(126.0)                                  # -127: n + 127 = 0, the bits of 0.0
    n = (t + 0.5).floor()                                                 # round to nearest
    f = t - n                                                             # in [-1/2, 1/2]
    p = EXP2_COEFFICIENTS[0] * f + EXP2_COEFFICIENTS[1]
    for c in EXP2_COEFFICIENTS[2:]:                                       # Horner
        p = p * f + c
    two_n = ((n.cast(dtypes.int32) + 127) * (1 << 23)).bitcast(dtypes.float32)  # exponent bits = n + 127
    return p * two_n


def exp(x: Tensor) -> Tensor:
    """x.exp(): the clamped polynomial on the CPU (4x faster there), tinygrad's own elsewhere. Same shape."""
    if not capabilities(x).polynomial_exp:
        return x.exp()
    # no explicit nan select (it made the kernel 3x slower): maximum/minimum pass a nan through, and so does the rest
    return exp2_polynomial(x * (1 / math.log(2)))


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), with `exp` above: x.sigmoid() to float32 precision."""
    return 1 / (1 + exp(-x))
