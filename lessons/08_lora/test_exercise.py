"""Tests for lesson 08. `pytest lessons/08_lora` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py.

Each stage compares your numpy functions with numpy float64 references, with minimac's own LoRA layer
(minimac/lora_layer.py) and with tinygrad's autograd. Run one stage at a time with -k, e.g.
`pytest lessons/08_lora -k stage1`.
"""
import numpy as np
from tinygrad import Tensor, nn

from minimac.lora import LoRAConfig, LoRALinear, count_parameters, inject_lora
from minimac.model import ModelConfig, Transformer

IN, OUT, R, ALPHA = 6, 5, 3, 6.0


def setup(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(4, IN)), rng.normal(size=(OUT, IN)), rng.normal(size=(R, IN)), rng.normal(size=(OUT, R)))


def minimac_layer(W, A, B):
    base = nn.Linear(IN, OUT, bias=False)
    base.weight = Tensor(W.astype(np.float32))
    layer = LoRALinear(base)
    layer.add_adapter("a", LoRAConfig(r=R, lora_alpha=ALPHA))
    layer.lora_A["a"].assign(Tensor(A.astype(np.float32))).realize()
    layer.lora_B["a"].assign(Tensor(B.astype(np.float32))).realize()
    layer.active_adapter = "a"
    return layer


def test_stage1_lora_init(ex):
    A, B = ex.lora_init(64, 10, 4, np.random.default_rng(0))
    assert A.shape == (4, 64) and B.shape == (10, 4)
    assert np.abs(A).max() <= 1 / 8 and np.abs(A).max() > 0.1  # uniform in +-1/sqrt(64), fills the range
    assert abs(A.mean()) < 0.02 and not B.any()
    A2, _ = ex.lora_init(64, 10, 4, np.random.default_rng(1))
    assert not np.allclose(A, A2)  # drawn with the rng you were given


def test_stage2_lora_forward(ex):
    x, W, A, B = setup()
    expected = x @ W.T + x @ A.T @ B.T * (ALPHA / R)
    np.testing.assert_allclose(ex.lora_forward(x, W, A, B, ALPHA, R), expected, rtol=1e-10)
    np.testing.assert_allclose(minimac_layer(W, A, B)(Tensor(x.astype(np.float32))).numpy(),
                               ex.lora_forward(x, W, A, B, ALPHA, R), rtol=1e-5, atol=1e-5)
    zero_B = np.zeros_like(B)
    np.testing.assert_allclose(ex.lora_forward(x, W, A, zero_B, ALPHA, R), x @ W.T)  # a fresh adapter: no change


def test_stage3_merge_unmerge(ex):
    x, W, A, B = setup()
    W_before = W.copy()
    merged = ex.merge_weights(W, A, B, ALPHA, R)
    np.testing.assert_array_equal(W, W_before)  # W itself untouched
    np.testing.assert_allclose(x @ merged.T, ex.lora_forward(x, W, A, B, ALPHA, R), rtol=1e-10)
    np.testing.assert_allclose(ex.unmerge_weights(merged, A, B, ALPHA, R), W, rtol=1e-10, atol=1e-12)
    layer = minimac_layer(W, A, B)
    layer.merge()
    np.testing.assert_allclose(layer.base_layer.weight.numpy(), merged, rtol=1e-5, atol=1e-5)


def test_stage4_lora_grads(ex):
    x, W, A, B = setup()
    g = np.random.default_rng(5).normal(size=(4, OUT))
    A_t, B_t = Tensor(A.astype(np.float32)), Tensor(B.astype(np.float32))
    y = Tensor(x.astype(np.float32)) @ Tensor(W.astype(np.float32)).T + \
        (Tensor(x.astype(np.float32)) @ A_t.T @ B_t.T) * (ALPHA / R)
    dA_ref, dB_ref = (y * Tensor(g.astype(np.float32))).sum().gradient(A_t, B_t)  # tinygrad autograd
    dA, dB = ex.lora_grads(x, A, B, g, ALPHA, R)
    assert dA.shape == (R, IN) and dB.shape == (OUT, R)
    np.testing.assert_allclose(dA, dA_ref.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dB, dB_ref.numpy(), rtol=1e-4, atol=1e-4)
    dA0, dB0 = ex.lora_grads(x, A, np.zeros_like(B), g, ALPHA, R)
    assert not dA0.any() and dB0.any()  # at init only B learns


def test_stage5_lora_parameter_count(ex):
    assert ex.lora_parameter_count(ModelConfig.from_preset("tiny"), 8) == 180_224  # the design's table
    assert ex.lora_parameter_count(ModelConfig.from_preset("medium"), 8) == 1_585_152
    assert ex.lora_parameter_count(ModelConfig.from_preset("large"), 16) == 5_636_096
    config = ModelConfig(vocab_size=300, d_model=32, num_layers=2, num_query_heads=4, num_kv_heads=2, d_ff=64,
                         max_seq_len=16)
    model = inject_lora(Transformer(config), LoRAConfig(r=4))
    assert ex.lora_parameter_count(config, 4) == count_parameters(model)["trainable"]
