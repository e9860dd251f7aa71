"""Mixed precision and the GPU-shaped backward paths of minimac.fast.linear, against numpy float64.

`set_matmul_dtype("bfloat16" | "float16")` casts matmul operands to half precision and keeps float32 sums, results,
weights and gradients. The CPU's clang cannot compile bfloat16 here, so these tests use float16 (the same code path:
only the operand dtype differs) and check the results against numpy within half precision's error. The float32
default must stay exact. The weight gradient split over token chunks (GPUs only) and the embedding's matmul gradient
(every device without atomics) are forced on here and must give numpy's numbers.
"""
import dataclasses

import numpy as np
import pytest
from tinygrad import Context, Tensor
from tinygrad.nn import Embedding

from minimac.fast import devices, linear
from minimac.model import ModelConfig, Transformer
from minimac.train import cross_entropy


@pytest.fixture
def half():
    linear.set_matmul_dtype("float16")
    yield
    linear.set_matmul_dtype("float32")


def on_cpu(monkeypatch, **values):
    """The CPU's row of minimac/fast/devices.py with `values` changed, for one test (as if the CPU were a GPU)."""
    monkeypatch.setitem(devices.DEVICES, "CPU", dataclasses.replace(devices.DEVICES["CPU"], **values))


def operands(m=64, k=32, n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)


def values_and_grads(an, bn):
    a, b = Tensor(an), Tensor(bn)
    c = linear.matmul(a, b)
    ga, gb = (c * c).sum().gradient(a, b)   # d/dc = 2c
    return c, ga, gb


def np_values_and_grads(an, bn):
    a, b = an.astype(np.float64), bn.astype(np.float64)
    c = a @ b
    return c, 2 * c @ b.T, a.T @ (2 * c)


def test_unknown_matmul_dtype_is_rejected_by_name():
    with pytest.raises(ValueError, match="unknown matmul dtype 'fp8'"):
        linear.set_matmul_dtype("fp8")
    assert linear.matmul_dtype() == "float32"


def test_half_precision_matmul_keeps_float32_results_and_is_close_to_numpy(half):
    an, bn = operands()
    c, ga, gb = values_and_grads(an, bn)
    assert linear.matmul_dtype() == "float16"
    assert c.dtype == ga.dtype == gb.dtype == Tensor([1.0]).dtype  # float32 out, float32 gradients
    for got, want in zip((c, ga, gb), np_values_and_grads(an, bn)):
        err = np.abs(got.numpy() - want).max() / np.abs(want).max()
        assert 0 < err < 2e-3  # rounded (not exact: the operands really were half) and within half's precision


def test_float32_default_is_unchanged_by_the_half_precision_code():
    an, bn = operands(seed=1)
    c, ga, gb = values_and_grads(an, bn)
    for got, want in zip((c, ga, gb), np_values_and_grads(an, bn)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_split_weight_gradient_equals_numpy(monkeypatch, dtype):
    """The GPU path: the token sum of dW split into chunks of SPLIT_ROWS, summed after."""
    on_cpu(monkeypatch, split_matmul_sums=True)
    monkeypatch.setattr(linear, "SPLIT_ROWS", 16)
    linear.set_matmul_dtype(dtype)
    try:
        an, bn = operands(m=64, seed=2)          # 4 chunks of 16 rows
        _, ga, gb = values_and_grads(an, bn)
    finally:
        linear.set_matmul_dtype("float32")
    _, want_a, want_b = np_values_and_grads(an, bn)
    tol = 1e-5 if dtype == "float32" else 2e-3
    assert np.abs(gb.numpy() - want_b).max() / np.abs(want_b).max() < tol
    assert np.abs(ga.numpy() - want_a).max() / np.abs(want_a).max() < tol


@pytest.mark.parametrize("m, k, n", [(32, 256, 4), (4, 512, 16), (8, 192, 8)])
def test_skinny_matmuls_split_their_sum_on_gpus_with_the_same_numbers(monkeypatch, m, k, n):
    """The GPU path for LoRA-shaped matmuls: a result of fewer than SPLIT_OUTPUTS entries sums K in chunks."""
    on_cpu(monkeypatch, split_matmul_sums=True)
    an, bn = operands(m, k, n, seed=5)
    S = linear._k_chunks(Tensor(an), Tensor(bn))
    assert S > 1 and k % S == 0 and k // S >= linear.MIN_CHUNK  # 192 = 3 * 64: two chunks of 96
    for got, want in zip(values_and_grads(an, bn), np_values_and_grads(an, bn)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-4)
    on_cpu(monkeypatch, split_matmul_sums=False)
    assert linear._k_chunks(Tensor(an).to("CPU"), Tensor(bn).to("CPU")) == 1  # never on the CPU


def test_which_gpu_matmuls_split_their_sum(monkeypatch):
    """Few outputs split (a LoRA step's 512-token matmuls, rank-8 results); a training batch's matmuls do not."""
    on_cpu(monkeypatch, split_matmul_sums=True)

    def chunks(m, k, n):
        return linear._k_chunks(Tensor.empty(m, k), Tensor.empty(k, n))

    assert chunks(512, 2048, 512) == 16         # 262,144 outputs: 16 chunks of 128 terms, 4M partial outputs
    assert chunks(512, 512, 8) == 8             # LoRA's down-projection: 8 chunks of 64 (MIN_CHUNK)
    assert chunks(4096, 512, 2048) == 1         # small's training batch: 8M outputs, plenty of threads
    assert chunks(512, 96, 512) == 1            # 96 terms cannot be halved into chunks of 64
    on_cpu(monkeypatch, split_matmul_sums=False)
    assert chunks(512, 2048, 512) == 1          # never on the CPU


def test_embedding_rows_and_matmul_gradient_equal_numpy_and_nn_embedding():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((50, 8)).astype(np.float32)
    idx = rng.integers(0, 50, (3, 7))
    idx[0, :3] = 5                               # a repeated id: its gradients must add up
    G = rng.standard_normal((3, 7, 8)).astype(np.float32)
    w = Tensor(W)
    y = linear._embedding(w, Tensor(idx))                 # the one-hot matmul gradient (devices without atomics)
    g, = (y * Tensor(G)).sum().gradient(w)
    want = np.zeros((50, 8))
    np.add.at(want, idx.reshape(-1), G.reshape(-1, 8).astype(np.float64))
    np.testing.assert_array_equal(y.numpy(), W[idx])
    np.testing.assert_allclose(g.numpy(), want, rtol=1e-6, atol=1e-6)
    emb = Embedding(50, 8)                       # tinygrad's atomic scatter-add (the CPU path of the model)
    emb.weight = Tensor(W)
    with Context(USE_ATOMICS=1):
        g_atomic, = (emb(Tensor(idx)) * Tensor(G)).sum().gradient(emb.weight)
    np.testing.assert_allclose(g.numpy(), g_atomic.numpy(), rtol=1e-6, atol=1e-6)


def loss_and_grads(model, x, y):
    params = model.parameters()
    for p in params:
        p.requires_grad, p.grad = True, None
    loss = cross_entropy(model(x), y)
    loss.backward()
    return loss.item(), [p.grad.numpy() for p in params]


SMALL = ModelConfig(vocab_size=64, d_model=32, num_layers=2, num_query_heads=4, num_kv_heads=2, d_ff=64,
                    max_seq_len=16)


def model_and_batch(seed: int):
    """A 2-layer model and a (2, 12) batch of inputs and targets."""
    Tensor.manual_seed(seed)
    ids = np.random.default_rng(seed + 4).integers(0, 64, (2, 13))
    return Transformer(SMALL), Tensor(ids[:, :-1]), Tensor(ids[:, 1:])


@pytest.mark.slow
def test_model_loss_and_gradients_in_half_precision_stay_close_to_float32():
    model, x, y = model_and_batch(0)
    loss32, grads32 = loss_and_grads(model, x, y)
    linear.set_matmul_dtype("float16")
    try:
        loss16, grads16 = loss_and_grads(model, x, y)
    finally:
        linear.set_matmul_dtype("float32")
    assert loss16 != loss32 and abs(loss16 - loss32) / loss32 < 1e-3
    for g32, g16 in zip(grads32, grads16):
        cos = (g32 * g16).sum() / (np.linalg.norm(g32) * np.linalg.norm(g16) + 1e-30)
        assert np.abs(g32).max() > 0 and cos > 0.999


def test_a_cached_jit_is_not_reused_across_matmul_dtypes():
    """A TinyJit keeps the dtype it captured, so the per-model jit cache must key on it."""
    from minimac.jit_cache import graph_key, same_key

    model = Transformer(ModelConfig(vocab_size=32, d_model=16, num_layers=1, num_query_heads=2, num_kv_heads=1,
                                    d_ff=32, max_seq_len=8))
    before = graph_key(model)
    assert same_key(before, graph_key(model))
    linear.set_matmul_dtype("float16")
    try:
        assert not same_key(before, graph_key(model))
    finally:
        linear.set_matmul_dtype("float32")


def test_the_gpu_embedding_path_trains_and_decodes_like_the_atomic_one(monkeypatch):
    """CUDA and METAL take `linear.embedding` (no atomics there); forced on here, the CPU must give the same loss,
    gradients and cached greedy decoding as nn.Embedding's atomic path."""
    from minimac.generate import generate

    model, x, y = model_and_batch(1)
    atomic = loss_and_grads(model, x, y), generate(model, [3, 9, 27], 6, temperature=0)
    on_cpu(monkeypatch, atomic_embedding=False)
    twin = Transformer(SMALL)                    # the same weights, and none of the first model's cached jits
    twin.load_state_dict({k: Tensor(v.numpy()) for k, v in model.state_dict().items()})
    matmul_path = loss_and_grads(twin, x, y), generate(twin, [3, 9, 27], 6, temperature=0)
    (loss_a, grads_a), tokens_a = atomic
    (loss_m, grads_m), tokens_m = matmul_path
    assert loss_m == pytest.approx(loss_a, rel=1e-6) and tokens_m == tokens_a
    for ga, gm in zip(grads_a, grads_m):
        np.testing.assert_allclose(gm, ga, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_lora_layers_take_the_split_gpu_path_with_the_same_numbers(monkeypatch):
    """On GPUs LoRA's A and B go through `linear` and its split sums (`low_rank_linear`); forced on here, the loss
    and the adapter's gradients equal the CPU's plain path."""
    from minimac import lora

    monkeypatch.setattr(linear, "SPLIT_OUTPUTS", 1 << 12)    # this toy's (24, 8) results count as few
    monkeypatch.setattr(linear, "MIN_CHUNK", 8)
    model, x, y = model_and_batch(2)
    lora.inject_lora(model, lora.LoRAConfig(r=4), "a")
    for t in lora.lora_parameters(model, "a"):
        t.assign(Tensor(np.random.default_rng(t.numel()).standard_normal(t.shape).astype(np.float32) * 0.1)).realize()

    def loss_and_adapter_grads():
        params = lora.lora_parameters(model, "a")
        loss = cross_entropy(model(x), y)
        grads = loss.gradient(*params)              # before realizing the loss, which would drop its graph
        Tensor.realize(loss, *grads)
        return loss.item(), [g.numpy() for g in grads]

    plain = loss_and_adapter_grads()
    on_cpu(monkeypatch, split_matmul_sums=True)
    assert linear._k_chunks(Tensor.ones(24, 32), Tensor.ones(32, 4)) > 1
    split = loss_and_adapter_grads()
    assert split[0] == pytest.approx(plain[0], rel=1e-6)
    for gp, gs in zip(plain[1], split[1]):
        assert np.abs(gp).max() > 0
        np.testing.assert_allclose(gs, gp, rtol=1e-4, atol=1e-6)
