"""The fast path (minimac/fast/, docs/performance.md) computes what the readable lesson path computes: values and
gradients, seam by seam (minimac/ops.py) and for a whole model; and only `minimac.fast.install()` changes tinygrad.

Every speed change in minimac only tells tinygrad what to store (`contiguous`, `contiguous_backward`) or arranges the
same arithmetic differently (grouped-query attention without K/V copies); these tests pin that down against the
readable versions and against numpy float64.
"""
import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
from tinygrad import Tensor, UOp, dtypes
from tinygrad.nn import Linear as TinygradLinear

import minimac.fast
from minimac import ops
from minimac.attention import attention, attention_sdpa, build_attention_mask
from minimac.fast import devices
from minimac.fast.attention import attention as attention_fused
from minimac.fast.feedforward import swiglu_hidden as fast_swiglu_hidden
from minimac.fast.linear import linear as fast_linear
from minimac.fast.linear import matmul
from minimac.feedforward import SwiGLU
from minimac.ops import Linear

attention_reference = attention.plain

B, T, HD = 2, 6, 8


def set_capability(monkeypatch, **values):
    """Force entries of this device's row of minimac/fast/devices.py for one test."""
    name = devices.backend(Tensor([0.0]))
    monkeypatch.setitem(devices.DEVICES, name, dataclasses.replace(devices.capabilities(name), **values))


def np_attention(q, k, v, allowed):
    """float64 GQA: q (B, Hq, T, hd), k/v (B, Hkv, S, hd), allowed bool broadcastable to (B, Hq, T, S)."""
    n_rep = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, n_rep, axis=1), np.repeat(v, n_rep, axis=1)
    s = np.where(allowed, q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1]), np.finfo(np.float32).min)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


def qkv(hq, hkv, S, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, hq, T, HD)).astype(np.float32), rng.standard_normal((B, hkv, S, HD)).astype(np.float32),
            rng.standard_normal((B, hkv, S, HD)).astype(np.float32))


def values_and_grads(core, q, k, v, **kw):
    tq, tk, tv = (Tensor(a) for a in (q, k, v))
    out = core(tq, tk, tv, **kw)
    # a fixed random projection of the output as the loss, so every output element gets a different gradient
    w = Tensor(np.random.default_rng(9).standard_normal(out.shape).astype(np.float32))
    grads = (out * w).sum().gradient(tq, tk, tv)
    return [out.numpy()] + [g.numpy() for g in grads]


@pytest.mark.parametrize("hq,hkv", [(4, 2), (4, 4), (4, 1)])
def test_fused_attention_matches_reference_and_numpy_causal(hq, hkv):
    q, k, v = qkv(hq, hkv, T)
    fused = values_and_grads(attention_fused, q, k, v, mask=build_attention_mask(T))
    ref = values_and_grads(attention_reference, q, k, v, mask=build_attention_mask(T))
    sdpa = values_and_grads(attention_sdpa, q, k, v, mask=build_attention_mask(T))
    for a, b, c in zip(fused, ref, sdpa):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(c, b, rtol=1e-5, atol=1e-5)
    want = np_attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), np.tril(np.ones((T, T), bool)))
    np.testing.assert_allclose(fused[0], want, rtol=1e-5, atol=1e-5)


def test_fused_attention_with_padding_and_a_prefilled_cache():
    start = 3                                  # T new queries after 3 cached keys: S = 9
    q, k, v = qkv(4, 2, start + T, seed=1)
    pad = np.ones((B, start + T), np.int32)
    pad[1, :2] = 0                             # left padding in row 1
    mask = build_attention_mask(T, start, Tensor(pad))
    fused = values_and_grads(attention_fused, q, k, v, mask=mask)
    ref = values_and_grads(attention_reference, q, k, v, mask=mask)
    for a, b in zip(fused, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    allowed = mask.numpy()                     # (B, 1, T, S)
    want = np_attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), allowed)
    np.testing.assert_allclose(fused[0], want, rtol=1e-5, atol=1e-5)


def test_fused_attention_one_token_at_a_symbolic_position():
    q, k, v = qkv(4, 2, 8, seed=2)
    q = q[:, :, :1]
    pos = UOp.variable("start_pos", 1, 7).bind(4)           # the decode step: keys 0..4 are visible
    kk, vv = Tensor(k)[:, :, :pos + 1], Tensor(v)[:, :, :pos + 1]
    got = attention_fused(Tensor(q), kk, vv).numpy()
    want = attention_reference(Tensor(q), Tensor(k[:, :, :5]), Tensor(v[:, :, :5])).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_swiglu_storage_hints_change_no_value_and_no_gradient():
    Tensor.manual_seed(0)
    ffn = SwiGLU(16, 40)
    x = np.random.default_rng(3).standard_normal((2, 5, 16)).astype(np.float32)
    outs = []

    def with_fast(t):
        with ops.plain():
            ops.replace(swiglu_hidden=fast_swiglu_hidden)
            return ffn(t)

    def without(t):
        with ops.plain("swiglu_hidden"):
            return ffn(t)
    for f in (with_fast, without):
        tx = Tensor(x)
        y = f(tx)
        w = Tensor(np.random.default_rng(4).standard_normal(y.shape).astype(np.float32))
        grads = (y * w).sum().gradient(tx, ffn.w1.weight, ffn.w2.weight, ffn.w3.weight)
        outs.append([y.numpy()] + [g.numpy() for g in grads])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # and the float64 formula
    w1, w2, w3 = (getattr(ffn, n).weight.numpy().astype(np.float64) for n in ("w1", "w2", "w3"))
    g = x @ w1.T
    np.testing.assert_allclose(outs[0][0], (g / (1 + np.exp(-g)) * (x @ w3.T)) @ w2.T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape_a,shape_b", [((5, 3), (3, 4)), ((2, 3, 6, 4), (2, 3, 4, 5))])
def test_matmul_backward_equals_autograd_and_numpy(shape_a, shape_b):
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal(shape_a).astype(np.float32), rng.standard_normal(shape_b).astype(np.float32)
    g = rng.standard_normal((*shape_a[:-1], shape_b[-1])).astype(np.float32)
    got, ref = [], []
    for f, out in ((matmul, got), (lambda x, y: x @ y, ref)):
        ta, tb = Tensor(a), Tensor(b)
        c = f(ta, tb)
        out += [c.numpy(), *(t.numpy() for t in (c * Tensor(g)).sum().gradient(ta, tb))]
    for x, y in zip(got, ref):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)
    a64, b64, g64 = a.astype(np.float64), b.astype(np.float64), g.astype(np.float64)
    np.testing.assert_allclose(got[1], g64 @ np.swapaxes(b64, -1, -2), rtol=1e-5, atol=1e-5)   # da = dc b^T
    np.testing.assert_allclose(got[2], np.swapaxes(a64, -1, -2) @ g64, rtol=1e-5, atol=1e-5)   # db = a^T dc


def test_matmul_falls_back_to_plain_matmul_when_it_must():
    a, b = Tensor.ones(2, 3, 4), Tensor.ones(4, 5)
    assert matmul(a, b).uop is (a @ b).uop                        # broadcasting: the very same graph as a @ b
    pos = UOp.variable("n", 1, 8).bind(3)
    c, d = Tensor.ones(1, 4), Tensor.ones(4, 8)[:, :pos]
    assert matmul(c, d).uop is (c @ d).uop                        # symbolic shape (a decode step): a @ b


def test_linear_is_an_nn_linear_with_the_same_numbers_and_gradients():
    Tensor.manual_seed(1)
    fast = Linear(6, 3, bias=False)
    assert isinstance(fast, TinygradLinear)       # LoRA and get_state_dict see an ordinary nn.Linear
    x = np.random.default_rng(6).standard_normal((2, 4, 6)).astype(np.float32)
    outs = []
    for f in (lambda t: fast_linear(t, fast.weight), lambda t: TinygradLinear.__call__(fast, t)):
        tx = Tensor(x)
        y = f(tx)
        outs.append([y.numpy(), *(g.numpy() for g in (y * y).sum().gradient(tx, fast.weight))])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs[0][0], x @ fast.weight.numpy().T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 60.0])  # 60: exp(x) alone would overflow float32 without the max shift
def test_logsumexp_with_stored_exp_matches_tinygrad_and_numpy(scale):
    from minimac.fast.loss import logsumexp

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 5, 11)) * scale).astype(np.float32)
    g = rng.standard_normal((2, 5)).astype(np.float32)           # a different weight per row, so rows differ
    tx = Tensor(x)
    ours, lib = logsumexp(tx), tx.logsumexp(-1)
    (d_ours,), (d_lib,) = (ours * Tensor(g)).sum().gradient(tx), (lib * Tensor(g)).sum().gradient(tx)
    x64 = x.astype(np.float64)
    m = x64.max(-1, keepdims=True)
    want = (m + np.log(np.exp(x64 - m).sum(-1, keepdims=True)))[..., 0]
    softmax = np.exp(x64 - want[..., None])
    np.testing.assert_allclose(ours.numpy(), want, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(ours.numpy(), lib.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(d_ours.numpy(), g[..., None] * softmax, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d_ours.numpy(), d_lib.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("serial", [True, False], ids=["added (CPU)", "a kernel each (GPUs)"])
def test_sum_all_layouts_give_the_same_sum_and_gradients(serial, monkeypatch):
    """grad_norm.sum_all adds per-tensor sums in one kernel on the CPU and stores each one elsewhere; both layouts, forced
    here on whatever device runs the tests, give numpy's sum and its gradient (the EWC penalty needs it)."""
    from minimac.fast import grad_norm

    set_capability(monkeypatch, serial_sum=serial)
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(3, 5), (7,), (2, 2, 4)]]
    ts = [Tensor(a) for a in arrays]
    total = grad_norm.sum_all([t.square() for t in ts])
    grads = total.gradient(*ts)                     # before realizing the total, which would drop its graph
    np.testing.assert_allclose(total.item(), sum((a.astype(np.float64) ** 2).sum() for a in arrays), rtol=1e-6)
    for g, a in zip(grads, arrays):
        np.testing.assert_allclose(g.numpy(), 2 * a, rtol=1e-6)
    with pytest.raises(ValueError, match="at least one tensor"):
        grad_norm.sum_all([])


def test_fast_exp_and_sigmoid_match_numpy_and_keep_nan():
    """minimac.fast.fast_exp: the CPU's clamped polynomial, as accurate as tinygrad's exp (3.8e-6 for |x| < 87)."""
    from minimac.fast.fast_exp import exp, sigmoid

    x = np.linspace(-87, 87, 4001, dtype=np.float32)
    want = np.exp(x.astype(np.float64))
    got = exp(Tensor(x)).numpy()
    assert np.max(np.abs(got - want) / want) < 1e-5
    np.testing.assert_allclose(sigmoid(Tensor(x)).numpy(), 1 / (1 + np.exp(-x.astype(np.float64))), atol=1e-6)
    special = exp(Tensor(np.array([np.nan, -1000.0, -88.0, 0.0], dtype=np.float32))).numpy()
    assert np.isnan(special[0]) and special[1] == special[2] == 0.0 and special[3] == 1.0   # 0, never subnormal


def test_masked_attention_probabilities_are_zero_not_subnormal():
    """A masked score's probability must be exactly 0: a subnormal one (2^-126 / the row's sum, as before) makes every
    multiply by it a microcode assist on Intel CPUs, and the attention matmuls ran at 1 GFLOPS there."""
    from minimac.attention import MASK_VALUE
    from minimac.fast.attention import softmax

    scores = Tensor(np.random.default_rng(0).standard_normal((1, 2, 16, 16)).astype(np.float32))
    mask = Tensor.ones(16, 16, dtype=dtypes.bool).tril().reshape(1, 1, 16, 16)
    probs = softmax(mask.where(scores, MASK_VALUE)).numpy()
    subnormal = (probs != 0) & (np.abs(probs) < np.finfo(np.float32).tiny)
    assert not subnormal.any() and (probs[:, :, ~np.tril(np.ones((16, 16), bool))] == 0).all()


def test_fast_exp_is_tinygrads_own_off_the_cpu(monkeypatch):
    from minimac.fast import fast_exp

    x = Tensor(np.linspace(-5, 5, 11, dtype=np.float32))
    set_capability(monkeypatch, polynomial_exp=False)                 # as on CUDA or METAL
    np.testing.assert_array_equal(fast_exp.exp(x).numpy(), x.exp().numpy())


def test_a_whole_model_gives_the_same_loss_and_gradients_plain_and_fast():
    """Every seam at once: a tiny model's loss and every weight's gradient, plain against fast (whatever is installed
    in this process, switched per call)."""
    from minimac.model import ModelConfig, Transformer
    from minimac.ops import cross_entropy
    from minimac.train import shift_labels

    Tensor.manual_seed(7)
    model = Transformer(ModelConfig(vocab_size=64, d_model=32, num_layers=2, num_query_heads=4, num_kv_heads=2,
                                    d_ff=64, max_seq_len=16))
    batch = Tensor(np.random.default_rng(8).integers(0, 64, (2, 9)).astype(np.int32))
    params = model.parameters()
    was = minimac.fast.installed()
    minimac.fast.install()
    results = []
    for names in (("linear",), ()):     # ("linear",): only linear plain, the rest fast; (): every seam plain
        with ops.plain(*names):
            x, y = shift_labels(batch)
            loss = cross_entropy(model(x), y)
            results.append([loss.numpy(), *(g.numpy() for g in loss.gradient(*params))])
    if not was:
        minimac.fast.uninstall()
    assert len(results[0]) == len(params) + 1
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_importing_minimac_replaces_no_tinygrad_function_and_install_does():
    """`import minimac` (every module of it) leaves tinygrad alone; `minimac.fast.install()` changes it, and says so."""
    code = """
import importlib, pkgutil
import tinygrad.codegen.opt.heuristic as h
from tinygrad.runtime.ops_cpu import CPUDevice, CPUProgram
import tinygrad.engine.realize as r
before = (h.hand_coded_optimizations, CPUProgram.__call__, CPUDevice.__init__, r.get_worker_pool)
import minimac
for m in pkgutil.walk_packages(minimac.__path__, "minimac."):
    if not m.name.startswith("minimac.fast"):
        importlib.import_module(m.name)
from minimac import ops
after = (h.hand_coded_optimizations, CPUProgram.__call__, CPUDevice.__init__, r.get_worker_pool)
assert after == before, "import changed tinygrad"
assert ops.replaced() == ()
import minimac.fast
assert minimac.fast.installed() == ()
got = minimac.fast.install()
assert "cpu_tiles" in got and "attention" in got and "linear" in got, got
assert h.hand_coded_optimizations is not before[0] and CPUProgram.__call__ is not before[1]
minimac.fast.uninstall()
assert (h.hand_coded_optimizations, CPUProgram.__call__, CPUDevice.__init__) == before[:3]
assert minimac.fast.installed() == ()
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_another_tinygrad_version_warns_once_and_keeps_the_plain_path(monkeypatch):
    monkeypatch.setattr(minimac.fast, "tinygrad_version", lambda: "9.9.9")
    monkeypatch.setattr(minimac.fast, "_warned", False)
    patches = dict(minimac.fast._patches)
    minimac.fast._patches.clear()
    try:
        with ops.plain():
            with pytest.warns(UserWarning, match="written for tinygrad 0.14.0, this is 9.9.9"):
                assert minimac.fast.install() == ()
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("error")      # a second call does not warn again
                assert minimac.fast.install() == ()
    finally:
        minimac.fast._patches.update(patches)


def test_seams_refuse_unknown_names():
    with pytest.raises(ValueError, match="no seam named"):
        ops.replace(not_a_seam=lambda: None)
