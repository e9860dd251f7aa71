"""Dendritic feed-forward (minimac/neuro/dendritic.py): the forward against numpy, the swap into a built model is
exact at init, and LoRA on the context gate lets continual learning move the gates."""
import numpy as np
import pytest
from tinygrad import Tensor

from minimac import lora
from minimac.model import ModelConfig, Transformer
from minimac.neuro.dendritic import DendriticConfig, DendriticFFN, use_dendritic_ffn


def tiny() -> ModelConfig:
    return ModelConfig(vocab_size=300, d_model=32, num_layers=1, num_query_heads=2, num_kv_heads=1, d_ff=64,
                       max_seq_len=16)


def test_forward_matches_numpy_reference():
    rng = np.random.default_rng(0)
    ffn = DendriticFFN(d_model=8, d_ff=12, num_dendrites=3)
    ffn.context_gate.weight = Tensor(rng.normal(0, 1, (3, 8)).astype(np.float32))
    x = rng.normal(size=(2, 5, 8)).astype(np.float32)
    W1, W2, W3, G = (t.weight.numpy().astype(np.float64) for t in (ffn.w1, ffn.w2, ffn.w3, ffn.context_gate))
    z = x @ W1.T
    hidden = z / (1 + np.exp(-z)) * (x @ W3.T)                                   # SwiGLU, (2, 5, 12)
    gates = 2 / (1 + np.exp(-(x @ G.T)))                                         # (2, 5, 3)
    want = (hidden.reshape(2, 5, 3, 4) * gates[..., None]).reshape(2, 5, 12) @ W2.T
    np.testing.assert_allclose(ffn(Tensor(x)).numpy(), want, rtol=1e-4, atol=1e-5)


def test_swap_into_a_built_model_is_exact_and_adds_the_gate_only():
    model = Transformer(tiny())
    x = Tensor(np.random.default_rng(1).normal(size=(2, 16, 32)).astype(np.float32))
    old, keys = model.layers[0].feed_forward, set(model.state_dict())
    before = old(x).numpy()
    use_dendritic_ffn(model, DendriticConfig(num_dendrites=4))
    new = model.layers[0].feed_forward
    assert isinstance(new, DendriticFFN) and (new.w1, new.w2, new.w3) == (old.w1, old.w2, old.w3)
    np.testing.assert_allclose(new(x).numpy(), before, rtol=1e-5, atol=1e-6)   # the only block that changed
    assert set(model.state_dict()) - keys == {"layers.0.feed_forward.context_gate.weight"}
    with pytest.raises(TypeError, match="already has a dendritic"):
        use_dendritic_ffn(model)


def test_lora_on_the_context_gate_trains_the_gates():
    model = use_dendritic_ffn(Transformer(tiny()))
    lora.inject_lora(model, lora.LoRAConfig(r=2, target_modules=("w1", "context_gate")))
    gate = model.layers[0].feed_forward.context_gate
    assert isinstance(gate, lora.LoRALinear)
    B, ffn = gate.lora_B["default"], model.layers[0].feed_forward
    x = Tensor(np.random.default_rng(1).normal(size=(1, 3, 32)).astype(np.float32))
    assert np.abs(ffn(x).square().mean().gradient(B)[0].numpy()).max() > 0   # the gate's adapter gets a gradient
    g0 = ffn.gates(x).numpy()
    np.testing.assert_allclose(g0, 1.0, rtol=1e-6)                   # every compartment open at init
    B.assign(Tensor(np.ones((4, 2), dtype=np.float32))).realize()
    assert not np.allclose(model.layers[0].feed_forward.gates(x).numpy(), 1.0)


def test_invalid_sizes_and_config():
    with pytest.raises(ValueError, match="divisible by num_dendrites"):
        DendriticFFN(32, 64, num_dendrites=3)
    with pytest.raises(ValueError, match="DendriticConfig.num_dendrites"):
        DendriticConfig(num_dendrites=0)
    model = Transformer(tiny())
    with pytest.raises(ValueError, match="divisible"):
        use_dendritic_ffn(model, DendriticConfig(num_dendrites=5))
    with pytest.raises(TypeError, match="DendriticConfig"):
        use_dendritic_ffn(model, {"num_dendrites": 4})
