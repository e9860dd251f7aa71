"""Dendritic feed-forward (minimac/neuro/dendritic.py): the forward against numpy, the swap into a built model is
exact at init, and LoRA on the context gate lets continual learning move the gates."""
import numpy as np
import pytest
from tinygrad import Tensor

from minimac import checkpoint, lora
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


# ---- ModelConfig(ffn_type="dendritic"): the dendritic FFN as a model option ------------------------------------------
def dendritic(**kw) -> ModelConfig:
    return ModelConfig(**{**tiny().to_dict(), "ffn_type": "dendritic", **kw})


@pytest.mark.parametrize("kw, error, message", [
    ({"ffn_type": "moe"}, ValueError, "ModelConfig.ffn_type must be one of 'swiglu', 'dendritic', got 'moe'"),
    ({"ffn_type": None}, ValueError, "ModelConfig.ffn_type"),
    ({"num_dendrites": 0}, ValueError, "ModelConfig.num_dendrites must be positive"),
    ({"num_dendrites": 2.0}, TypeError, "ModelConfig.num_dendrites must be an int"),
    ({"num_dendrites": 3}, ValueError, r"ModelConfig.d_ff \(64\) must be divisible by num_dendrites \(3\)"),
])
def test_bad_ffn_fields_name_the_field(kw, error, message):
    with pytest.raises(error, match=message):
        dendritic(**kw)
    with pytest.raises(error, match=message.split(" ")[0]):
        ModelConfig.from_dict({**dendritic().to_dict(), **kw})   # what Transformer.load reads from config.json


def test_config_defaults_and_old_configs():
    assert (tiny().ffn_type, tiny().num_dendrites) == ("swiglu", 4)
    ModelConfig(**{**tiny().to_dict(), "num_dendrites": 3})            # unused by SwiGLU: not checked against d_ff
    old = {k: v for k, v in tiny().to_dict().items() if k not in ("ffn_type", "num_dendrites")}
    assert ModelConfig.from_dict(old) == tiny()                          # a config.json from before the field
    assert ModelConfig.from_dict(dendritic(num_dendrites=8).to_dict()) == dendritic(num_dendrites=8)


@pytest.mark.parametrize("ffn_type", ["swiglu", "dendritic"])
@pytest.mark.parametrize("tied", [True, False])
def test_param_count_matches_the_state_dict(ffn_type, tied):
    config = ModelConfig(**{**tiny().to_dict(), "ffn_type": ffn_type, "num_dendrites": 8, "tie_embeddings": tied})
    model = Transformer(config)
    unique = {id(t): t for t in model.state_dict().values()}                # the tied lm_head counted once
    assert config.param_count() == sum(int(np.prod(t.shape)) for t in unique.values()) == model.param_count()
    gates = [k for k in model.state_dict() if "context_gate" in k]
    assert gates == (["layers.0.feed_forward.context_gate.weight"] if ffn_type == "dendritic" else [])
    assert isinstance(model.layers[0].feed_forward, DendriticFFN) == (ffn_type == "dendritic")


def test_dendritic_checkpoint_reproduces_the_logits(tmp_path):
    model = Transformer(dendritic())                  # the gates start at N(0, 0.02): not all 1, so they must load
    x = Tensor(np.arange(12, dtype=np.int32).reshape(1, 12))
    checkpoint.save(model, tmp_path / "ckpt")
    again = checkpoint.load(tmp_path / "ckpt")
    assert again.config == model.config and isinstance(again.layers[0].feed_forward, DendriticFFN)
    np.testing.assert_array_equal(again(x).numpy(), model(x).numpy())


@pytest.mark.slow   # ~30 s on a busy 2-core CPU: four eager training steps
def test_dendritic_model_trains_and_its_checkpoint_reproduces_the_logits(tmp_path):
    from tinygrad import Context
    from tinygrad.nn.optim import AdamW

    from minimac.train import cross_entropy
    Tensor.manual_seed(0)
    model = Transformer(dendritic())
    params = model.parameters()
    opt = AdamW(params, lr=1e-2)
    ids = np.random.default_rng(0).integers(0, 300, (2, 17))
    x, y = Tensor(ids[:, :-1].astype(np.int32)), Tensor(ids[:, 1:].astype(np.int32))
    gate = model.layers[0].feed_forward.context_gate.weight
    g0, losses = gate.numpy().copy(), []
    with Context(TRAINING=1):
        for _ in range(4):
            opt.zero_grad()
            loss = cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert not np.allclose(gate.numpy(), g0)                                  # the gates are trained too
    checkpoint.save(model, tmp_path / "ckpt")
    again = checkpoint.load(tmp_path / "ckpt")
    assert again.config == model.config and again.config.ffn_type == "dendritic"
    assert isinstance(again.layers[0].feed_forward, DendriticFFN)
    np.testing.assert_array_equal(again(x).numpy(), model(x).numpy())


def test_swapped_model_saves_as_dendritic_and_old_config_json_loads(tmp_path):
    import json
    model = Transformer(tiny())
    x = Tensor(np.arange(12, dtype=np.int32).reshape(1, 12))
    checkpoint.save(model, tmp_path / "plain")
    blob = json.loads((tmp_path / "plain" / "config.json").read_text())
    for key in ("ffn_type", "num_dendrites"):                               # as written before these fields existed
        del blob["model"][key]
    (tmp_path / "plain" / "config.json").write_text(json.dumps(blob))
    np.testing.assert_array_equal(checkpoint.load(tmp_path / "plain")(x).numpy(), model(x).numpy())
    use_dendritic_ffn(model, DendriticConfig(num_dendrites=2))
    assert (model.config.ffn_type, model.config.num_dendrites) == ("dendritic", 2)
    checkpoint.save(model, tmp_path / "swapped")
    again = checkpoint.load(tmp_path / "swapped")
    assert again.layers[0].feed_forward.num_dendrites == 2
    np.testing.assert_array_equal(again(x).numpy(), model(x).numpy())
