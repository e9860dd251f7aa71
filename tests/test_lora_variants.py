"""Stronger adapters (minimac/lora_variants.py): rsLoRA's scaling, PiSSA's start against numpy's SVD, LoRA+ groups,
per-adapter copies of the RMSNorm gains (modules_to_save) through switching, training, files and deletion."""
import numpy as np
import pytest
from tinygrad import Context, Tensor, nn
from tinygrad.nn.optim import AdamW

from minimac import lora, lora_files
from minimac.learner.step import param_groups
from minimac.lora import LoRAConfig, LoRALinear
from minimac.lora_variants import base_values, saved_paths


def test_rslora_scaling_is_alpha_over_sqrt_r():
    assert LoRAConfig(r=16, lora_alpha=8).scaling == 0.5
    assert LoRAConfig(r=16, lora_alpha=8, use_rslora=True).scaling == 2.0
    for bad in ({"use_rslora": 1}, {"init_lora_weights": "olora"}, {"modules_to_save": ("lm_head",)},
                {"modules_to_save": "norm"}):
        with pytest.raises(ValueError):
            LoRAConfig(**bad)


def test_pissa_starts_from_the_top_singular_vectors_and_adds_nothing():
    rng = np.random.default_rng(0)
    base = nn.Linear(6, 5, bias=False)
    w = rng.normal(size=(5, 6)).astype(np.float32)
    base.weight = Tensor(w)
    layer = LoRALinear(base)
    cfg = LoRAConfig(r=2, lora_alpha=4, init_lora_weights="pissa")
    layer.add_adapter("p", cfg)
    layer.active_adapter = "p"
    u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    top = (u[:, :2] * s[:2]) @ vt[:2]                                       # W's best rank-2 part
    A, B = layer.lora_A["p"].numpy(), layer.lora_B["p"].numpy()
    np.testing.assert_allclose(cfg.scaling * B @ A, top, rtol=1e-4, atol=1e-5)
    x = rng.normal(size=(3, 6)).astype(np.float32)
    np.testing.assert_allclose(layer(Tensor(x)).numpy(), x @ w.T, rtol=1e-5, atol=1e-5)   # fresh: no change
    layer.lora_B["p"].assign(Tensor(B * 1.5)).realize()                    # as if trained: B moved by 0.5 B
    expected = x @ w.T + cfg.scaling * x @ (0.5 * B @ A).T
    np.testing.assert_allclose(layer(Tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.delta_weight("p").numpy(), cfg.scaling * 0.5 * B @ A, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="PiSSA needs r"):
        layer.add_adapter("q", LoRAConfig(r=6, init_lora_weights="pissa"))


@pytest.fixture
def tiny():
    from minimac.model import ModelConfig, Transformer
    Tensor.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=64, d_model=16, num_layers=1, num_query_heads=2, num_kv_heads=1,
                                    d_ff=32, max_seq_len=16))
    tokens = Tensor(np.random.default_rng(0).integers(0, 64, size=(2, 8)).astype(np.int32))
    return model, tokens


def norms(model):
    return {p: model.state_dict()[p].numpy().copy() for p in saved_paths(model, ("norm",))}


def test_loraplus_groups_give_b_the_ratio(tiny):
    model, _ = tiny
    lora.add_adapter(model, "a", LoRAConfig(r=2, modules_to_save=("norm",)))
    groups = param_groups(model, "a", loraplus_lr_ratio=16)
    assert [(len(ts), k, wd) for ts, k, wd in groups] == [(7, 1.0, 1.0), (7, 16.0, 1.0), (3, 1.0, 0.0)]
    a_ids = {id(layer.lora_A["a"]) for layer in lora.lora_layers(model).values()}
    assert {id(t) for t in groups[0][0]} == a_ids
    plain = param_groups(model, "a")        # ratio 1: one group in adapter_state_dict's order, then the norms
    assert [(len(ts), k) for ts, k, _ in plain] == [(14, 1.0), (3, 1.0)]


def test_saved_norms_follow_the_adapter_that_runs(tiny, tmp_path):
    model, tokens = tiny
    base_norms, base_out = norms(model), model(tokens).numpy()
    cfg = LoRAConfig(r=2, modules_to_save=("norm",))
    lora.add_adapter(model, "a", cfg)
    lora.add_adapter(model, "b", cfg)
    assert len(saved_paths(model, ("norm",))) == 3 and lora.count_parameters(model, "a")["trainable"] == \
        sum(t.numel() for t in lora.adapter_state_dict(model, "a").values())
    lora.set_adapter(model, "a")
    opt = AdamW([t for ts, _, _ in param_groups(model, "a") for t in ts], lr=0.1, weight_decay=0.0)
    with Context(TRAINING=1):
        for _ in range(2):
            opt.zero_grad()
            (model(tokens) ** 2).mean().backward()
            opt.step()
    trained = norms(model)
    assert all(not np.allclose(trained[p], base_norms[p]) for p in trained)      # the gains were trained
    a_out = model(tokens).numpy()
    lora.set_adapter(model, "b")                                                 # b: its own (untrained) copy
    assert all(np.array_equal(v, base_norms[p]) for p, v in norms(model).items())
    np.testing.assert_allclose(model(tokens).numpy(), base_out, rtol=1e-5, atol=1e-5)
    with lora.disable_adapters(model):                                           # the bare base: base values
        assert all(np.array_equal(v, base_norms[p]) for p, v in norms(model).items())
    lora.set_adapter(model, "a")                                                 # a's trained copy comes back
    assert all(np.array_equal(v, trained[p]) for p, v in norms(model).items())
    np.testing.assert_allclose(model(tokens).numpy(), a_out, rtol=1e-5, atol=1e-5)
    assert all(np.array_equal(t.numpy(), base_norms[p]) for p, t in base_values(model).items())
    lora_files.save_adapter(model, tmp_path / "a", "a")                                # files carry the copies
    lora.delete_adapter(model, "a")                                              # the model gets the base back
    assert all(np.array_equal(v, base_norms[p]) for p, v in norms(model).items())
    assert lora_files.load_adapter(model, tmp_path / "a") == "a"
    lora.set_adapter(model, "a")
    np.testing.assert_allclose(model(tokens).numpy(), a_out, rtol=1e-5, atol=1e-5)


def test_pissa_adapter_file_round_trip(tiny, tmp_path):
    model, tokens = tiny
    lora.add_adapter(model, "p", LoRAConfig(r=2, init_lora_weights="pissa", use_rslora=True))
    lora.set_adapter(model, "p")
    for layer in lora.lora_layers(model).values():                               # as if trained
        layer.lora_B["p"].assign(layer.lora_B["p"] * 1.2).realize()
    out = model(tokens).numpy()
    lora_files.save_adapter(model, tmp_path / "p", "p")
    lora.delete_adapter(model, "p")
    lora_files.load_adapter(model, tmp_path / "p")                                    # A0, B0 recomputed from W
    lora.set_adapter(model, "p")
    np.testing.assert_allclose(model(tokens).numpy(), out, rtol=1e-4, atol=1e-4)
