"""LoRA adapters (minimac/lora.py): numpy references, invariants (fresh = no-op, merged = unmerged), which tensors a
training step may touch, multi-adapter switching, files and errors. Mostly on a toy tree of Linear layers named like
the model's; the last tests use a tiny real Transformer."""
import json

import numpy as np
import pytest
from tinygrad import Context, Tensor, TinyJit, nn
from tinygrad.nn.optim import AdamW
from tinygrad.nn.state import get_state_dict

from minimac.lora import (
    LoRAConfig,
    LoRALinear,
    active_adapter,
    adapter_names,
    add_adapter,
    count_parameters,
    delete_adapter,
    disable_adapters,
    enable_adapters,
    inject_lora,
    lora_layers,
    lora_parameters,
    merge_adapter,
    set_adapter,
    unmerge_adapter,
)
from minimac.lora_files import load_adapter, save_adapter

ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "w1", "w2", "w3")


def linear(rng, n_in, n_out):
    layer = nn.Linear(n_in, n_out, bias=False)
    layer.weight = Tensor(rng.uniform(-1, 1, size=(n_out, n_in)).astype(np.float32) / np.sqrt(n_in))  # no init kernel
    return layer


class Attention:
    def __init__(self, rng, d, kv):
        self.q_proj, self.k_proj, self.v_proj = linear(rng, d, d), linear(rng, d, kv), linear(rng, d, d)
        self.o_proj = linear(rng, d, d)
        self.xq_proj = linear(rng, d, d)  # a name that merely *contains* a target: never wrapped


class FeedForward:
    def __init__(self, rng, d, ff):
        self.w1, self.w2, self.w3 = linear(rng, d, ff), linear(rng, ff, d), linear(rng, d, ff)


class Block:
    def __init__(self, rng, d, kv, ff):
        self.attention, self.feed_forward = Attention(rng, d, kv), FeedForward(rng, d, ff)


class Toy:
    """Linear layers where the Transformer has them, wired into some differentiable function of all of them."""

    def __init__(self, d=8, kv=4, ff=12, layers=1, seed=0):
        rng = np.random.default_rng(seed)
        self.layers = [Block(rng, d, kv, ff) for _ in range(layers)]
        self.lm_head = linear(rng, d, 5)
        Tensor.manual_seed(seed)  # for the LoRA A init

    def __call__(self, x):
        for b in self.layers:
            a, f = b.attention, b.feed_forward
            x = x + a.o_proj(a.q_proj(x) * a.v_proj(x).tanh()) + a.k_proj(x).mean(-1, keepdim=True) + a.xq_proj(x)
            x = x + f.w2(f.w1(x).silu() * f.w3(x))
        return self.lm_head(x)


@pytest.fixture
def x():
    return Tensor(np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32))


def train_steps(model, x, steps=2, name=None):
    opt = AdamW(lora_parameters(model, name), lr=0.05, weight_decay=0.0)
    with Context(TRAINING=1):
        for _ in range(steps):
            opt.zero_grad()
            loss = (model(x) ** 2).mean()
            loss.backward()
            opt.step()


def snapshot(model):
    return {k: v.numpy().copy() for k, v in get_state_dict(model).items()}


# ---- config and one layer ----

def test_config_defaults_and_scaling():
    c = LoRAConfig()
    assert (c.r, c.lora_alpha, c.lora_dropout, c.target_modules, c.scaling) == (8, 16.0, 0.0, ALL, 2.0)
    assert LoRAConfig(r=4, lora_alpha=1.0, target_modules=["w1"]).target_modules == ("w1",)


@pytest.mark.parametrize("kwargs, match", [({"r": 0}, "r must"), ({"r": 2.5}, "r must"), ({"lora_alpha": 0}, "lora_alpha"),
                                           ({"lora_dropout": 1.0}, "lora_dropout"), ({"lora_dropout": -0.1}, "lora_dropout"),
                                           ({"target_modules": "q_proj"}, "target_modules"),
                                           ({"target_modules": ()}, "target_modules"),
                                           ({"target_modules": ["q_proj", ""]}, "target_modules")])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LoRAConfig(**kwargs)


def test_lora_linear_matches_numpy_reference():
    rng = np.random.default_rng(1)
    base = nn.Linear(6, 5, bias=True)
    layer = LoRALinear(base)
    layer.add_adapter("a", LoRAConfig(r=3, lora_alpha=6.0))
    bound = 1 / np.sqrt(6)
    A = layer.lora_A["a"].numpy()
    assert A.shape == (3, 6) and np.abs(A).max() <= bound and np.abs(A).max() > bound / 2  # U(+-1/sqrt(in))
    assert layer.lora_B["a"].shape == (5, 3) and not layer.lora_B["a"].numpy().any()
    B = rng.normal(size=(5, 3)).astype(np.float32)
    layer.lora_B["a"].assign(Tensor(B)).realize()
    layer.active_adapter = "a"
    xs = rng.normal(size=(2, 4, 6)).astype(np.float32)
    W, b = base.weight.numpy().astype(np.float64), base.bias.numpy().astype(np.float64)
    x64 = xs.astype(np.float64)
    expected = x64 @ W.T + b + x64 @ A.T.astype(np.float64) @ B.T.astype(np.float64) * 2.0
    np.testing.assert_allclose(layer(Tensor(xs)).numpy(), expected, rtol=1e-5, atol=1e-5)
    layer.disabled = True
    np.testing.assert_allclose(layer(Tensor(xs)).numpy(), x64 @ W.T + b, rtol=1e-5, atol=1e-5)


def test_lora_dropout_only_while_training():
    layer = LoRALinear(nn.Linear(16, 4, bias=False))
    layer.add_adapter("a", LoRAConfig(r=2, lora_dropout=0.5))
    layer.lora_B["a"].assign(Tensor.ones(4, 2)).realize()
    layer.active_adapter = "a"
    xs = Tensor.ones(2, 16)
    eval_out = layer(xs).numpy()
    np.testing.assert_allclose(layer(xs).numpy(), eval_out)
    with Context(TRAINING=1):
        Tensor.manual_seed(3)
        assert not np.allclose(layer(xs).numpy(), eval_out)


# ---- injection ----

def test_inject_wraps_exact_names_only(x):
    model = Toy()
    before = model(x).numpy()
    assert inject_lora(model, LoRAConfig(r=2)) is model
    assert len(lora_layers(model)) == 7 and "layers.0.feed_forward.w2" in lora_layers(model)
    a = model.layers[0].attention
    assert isinstance(a.q_proj, LoRALinear) and not isinstance(a.xq_proj, LoRALinear)
    assert not isinstance(model.lm_head, LoRALinear)
    assert active_adapter(model) == "default" and adapter_names(model) == ["default"]
    np.testing.assert_allclose(model(x).numpy(), before, rtol=1e-6, atol=1e-6)  # B = 0: a fresh adapter is a no-op
    add_adapter(model, "second", LoRAConfig(r=2, target_modules=["q_proj"]))  # no re-wrapping, no nesting
    assert isinstance(a.q_proj.base_layer, nn.Linear) and set(a.q_proj.lora_A) == {"default", "second"}
    assert active_adapter(model) == "default"  # adding does not switch


def test_target_by_dotted_suffix():
    model = inject_lora(Toy(), LoRAConfig(r=2, target_modules=["0.attention.q_proj"]))
    assert list(lora_layers(model)) == ["layers.0.attention.q_proj"]


def test_inject_errors_name_the_problem():
    model = Toy()
    with pytest.raises(ValueError, match=r"\['gate_proj'\] match no Linear layer.*'q_proj'"):
        inject_lora(model, LoRAConfig(target_modules=["q_proj", "gate_proj"]))
    assert not lora_layers(model)  # nothing half-done
    with pytest.raises(TypeError, match="'attention' matched 'layers.0.attention', a Attention"):
        inject_lora(model, LoRAConfig(target_modules=["attention"]))
    with pytest.raises(TypeError, match="LoRAConfig"):
        add_adapter(model, "a", {"r": 2})
    inject_lora(model, LoRAConfig(r=2))
    with pytest.raises(ValueError, match="'default' already exists"):
        inject_lora(model, LoRAConfig(r=2))
    for fn in (set_adapter, delete_adapter):
        with pytest.raises(ValueError, match=r"no adapter named 'nope'; this model has \['default'\]"):
            fn(model, "nope")
    with pytest.raises(ValueError, match="no adapter named 'nope'"):
        lora_parameters(model, "nope")


# ---- training touches only the active adapter ----

def test_step_changes_only_the_active_adapter(x):
    model = inject_lora(Toy(), LoRAConfig(r=2), "a")
    add_adapter(model, "b", LoRAConfig(r=2))
    before = snapshot(model)
    train_steps(model, x, steps=2)  # two steps: B moves first, then A gets a gradient through B
    after = snapshot(model)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed == {k for k in before if k.endswith((".lora_A.a", ".lora_B.a"))}
    grad = model.layers[0].attention.q_proj.base_layer.weight.grad  # detached: backward leaves zeros at most
    assert grad is None or not grad.numpy().any()
    ids = {id(t) for t in lora_parameters(model)}
    assert ids == {id(layer.lora_A["a"]) for layer in lora_layers(model).values()} | \
        {id(layer.lora_B["a"]) for layer in lora_layers(model).values()}


def test_adapters_switch_disable_merge_delete(x):
    model = Toy()
    base = model(x).numpy()
    inject_lora(model, LoRAConfig(r=2), "a")
    add_adapter(model, "b", LoRAConfig(r=2))
    train_steps(model, x, steps=2)
    out_a = model(x).numpy()
    assert not np.allclose(out_a, base, atol=1e-4)
    set_adapter(model, "b")
    np.testing.assert_allclose(model(x).numpy(), base, rtol=1e-5, atol=1e-5)  # b is fresh
    set_adapter(model, "a")
    with disable_adapters(model):
        np.testing.assert_allclose(model(x).numpy(), base, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model(x).numpy(), out_a, rtol=1e-6, atol=1e-6)  # re-enabled on exit
    disable_adapters(model)
    np.testing.assert_allclose(model(x).numpy(), base, rtol=1e-5, atol=1e-5)
    enable_adapters(model)
    w_before = model.layers[0].attention.q_proj.weight.numpy().copy()
    merge_adapter(model)
    assert not np.allclose(model.layers[0].attention.q_proj.weight.numpy(), w_before)
    np.testing.assert_allclose(model(x).numpy(), out_a, rtol=1e-5, atol=1e-5)  # merged == unmerged
    for action, fn in (("switch adapters", lambda: set_adapter(model, "b")),
                       ("disable adapters", lambda: disable_adapters(model))):
        with pytest.raises(ValueError, match=f"cannot {action} while an adapter is merged"):
            fn()
    with pytest.raises(ValueError, match="'a' is merged"):
        delete_adapter(model, "a")
    unmerge_adapter(model)
    np.testing.assert_allclose(model.layers[0].attention.q_proj.weight.numpy(), w_before, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model(x).numpy(), out_a, rtol=1e-5, atol=1e-5)
    delete_adapter(model, "a")
    assert active_adapter(model) is None and adapter_names(model) == ["b"]
    with pytest.raises(ValueError, match="merge_adapter needs an active"):
        merge_adapter(model)
    delete_adapter(model, "b")
    assert not lora_layers(model) and isinstance(model.layers[0].attention.q_proj, nn.Linear)  # back to plain
    np.testing.assert_allclose(model(x).numpy(), base, rtol=1e-5, atol=1e-5)


def test_jitted_step_matches_eager(x):
    def run(jit):
        model = inject_lora(Toy(), LoRAConfig(r=2))
        opt = AdamW(lora_parameters(model), lr=0.05, weight_decay=0.0)  # as train_steps: the same kernels

        def step(inp):
            with Context(TRAINING=1):
                opt.zero_grad()
                loss = (model(inp) ** 2).mean()
                loss.backward()
                opt.step()
            return loss.realize()
        step = TinyJit(step) if jit else step
        losses = [step(x.contiguous().realize()).item() for _ in range(4)]
        return losses, model(x).numpy()
    (l_eager, out_eager), (l_jit, out_jit) = run(False), run(True)
    np.testing.assert_allclose(l_jit, l_eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out_jit, out_eager, rtol=1e-5, atol=1e-5)


# ---- counting and files ----

def test_count_parameters_exact():
    model = Toy()
    base_total = sum(t.numel() for t in get_state_dict(model).values())
    inject_lora(model, LoRAConfig(r=3))
    add_adapter(model, "w", LoRAConfig(r=2, target_modules=["w1", "w2", "w3"]))
    d, kv, ff, L = 8, 4, 12, 1
    per_layer = 3 * ((d + d) + (d + kv) + (d + d) + (d + d)) + 3 * ((d + ff) + (ff + d) + (d + ff))
    per_layer_w = 2 * ((d + ff) + (ff + d) + (d + ff))
    counts = count_parameters(model)
    assert counts == {"trainable": L * per_layer, "total": base_total + L * (per_layer + per_layer_w)}
    assert count_parameters(model, "w")["trainable"] == L * per_layer_w


def test_save_load_round_trip(tmp_path, x):
    model = inject_lora(Toy(seed=0), LoRAConfig(r=2), "code")
    train_steps(model, x)
    expected = model(x).numpy()
    save_adapter(model, tmp_path / "code")
    assert sorted(p.name for p in (tmp_path / "code").iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    meta = json.loads((tmp_path / "code" / "adapter_config.json").read_text())
    assert meta["r"] == 2 and meta["lora_alpha"] == 16.0 and meta["adapter_name"] == "code"
    fresh = Toy(seed=0)  # same base weights
    assert load_adapter(fresh, tmp_path / "code") == "code" and active_adapter(fresh) == "code"
    np.testing.assert_allclose(fresh(x).numpy(), expected, rtol=1e-6, atol=1e-6)
    A = fresh.layers[0].attention.q_proj.lora_A["code"]
    inject_lora(fresh, LoRAConfig(r=2), "other")
    load_adapter(fresh, tmp_path / "code", "other")  # a second copy under another name
    assert fresh.layers[0].attention.q_proj.lora_A["code"] is A
    np.testing.assert_allclose(fresh(x).numpy(), expected, rtol=1e-6, atol=1e-6)


def test_load_errors(tmp_path, x):
    model = inject_lora(Toy(), LoRAConfig(r=2))
    with pytest.raises(FileNotFoundError, match="no adapter_config.json in"):
        load_adapter(Toy(), tmp_path / "missing")
    save_adapter(model, tmp_path / "ok")
    with pytest.raises(ValueError, match=r"layers.0.attention.q_proj.lora_A.weight: the adapter has shape \(2, 8\) "
                                         r"but this model needs \(2, 10\)"):
        load_adapter(Toy(d=10), tmp_path / "ok")
    with pytest.raises(ValueError, match="lacks 14 tensors the model needs, e.g. layers.1"):
        load_adapter(Toy(layers=2), tmp_path / "ok")
    two = inject_lora(Toy(layers=2), LoRAConfig(r=2))
    save_adapter(two, tmp_path / "two")
    with pytest.raises(ValueError, match="has 14 tensors this model has no layer for, e.g. layers.1"):
        load_adapter(Toy(), tmp_path / "two")
    other = Toy()
    inject_lora(other, LoRAConfig(r=4))
    with pytest.raises(ValueError, match=r"the adapter has shape \(2, 8\) but this model needs \(4, 8\)"):
        load_adapter(other, tmp_path / "ok")  # the existing "default" has another rank
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "adapter_config.json").write_text((tmp_path / "ok" / "adapter_config.json").read_text())
    (bad / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="adapter_model.safetensors' is truncated or corrupt"):
        load_adapter(Toy(), bad)
    (bad / "adapter_model.safetensors").write_bytes((tmp_path / "ok" / "adapter_model.safetensors").read_bytes()[:400])
    with pytest.raises(ValueError, match="adapter_model.safetensors' is truncated or corrupt"):
        load_adapter(Toy(), bad)
    (bad / "adapter_model.safetensors").write_bytes((tmp_path / "ok" / "adapter_model.safetensors").read_bytes()[:-16])
    with pytest.raises(ValueError, match="adapter_model.safetensors' is truncated or corrupt: .* ends at byte"):
        load_adapter(Toy(), bad)
    (bad / "adapter_config.json").write_text("{broken")
    with pytest.raises(ValueError, match="adapter_config.json is not a valid adapter config"):
        load_adapter(Toy(), bad)
    fresh = Toy()
    for fn in (lambda: save_adapter(fresh, tmp_path / "x"), lambda: count_parameters(fresh)):
        with pytest.raises(ValueError, match="no active adapter"):
            fn()


# ---- the real model ----

@pytest.fixture(scope="module")
def tiny_model():
    from minimac.model import ModelConfig, Transformer
    Tensor.manual_seed(0)
    config = ModelConfig(vocab_size=300, d_model=32, num_layers=1, num_query_heads=4, num_kv_heads=2, d_ff=64,
                         max_seq_len=32)
    model = Transformer(config)
    tokens = Tensor(np.random.default_rng(0).integers(0, 300, size=(2, 16)).astype(np.int32))
    return model, tokens, model(tokens).numpy()


def test_transformer_inject_count_merge(tiny_model):
    model, tokens, base = tiny_model
    total = sum(t.numel() for t in model.parameters())
    inject_lora(model, LoRAConfig(r=8))
    try:
        assert len(lora_layers(model)) == 7 and "layers.0.attention.v_proj" in lora_layers(model)
        d, kv, ff = 32, 2 * 8, 64
        per_layer = 8 * ((d + d) + 2 * (d + kv) + (d + d) + 3 * (d + ff))
        assert count_parameters(model) == {"trainable": per_layer, "total": total + per_layer}
        np.testing.assert_allclose(model(tokens).numpy(), base, rtol=1e-5, atol=1e-5)  # fresh: no change
        for layer in lora_layers(model).values():  # pretend training happened
            layer.lora_B["default"].assign(Tensor.randn(*layer.lora_B["default"].shape) * 0.1).realize()
        adapted = model(tokens).numpy()
        assert not np.allclose(adapted, base, atol=1e-4)
        merge_adapter(model)
        np.testing.assert_allclose(model(tokens).numpy(), adapted, rtol=1e-4, atol=1e-4)
        unmerge_adapter(model)
    finally:
        delete_adapter(model, "default")
    np.testing.assert_allclose(model(tokens).numpy(), base, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # about 30 s on a 2-core CPU (kernel compiles); the toy test above checks the same rule
def test_transformer_step_touches_only_lora(tiny_model):
    model, tokens, _ = tiny_model
    inject_lora(model, LoRAConfig(r=4))
    try:
        before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
        opt = AdamW(lora_parameters(model), lr=1e-2)
        with Context(TRAINING=1):
            opt.zero_grad()
            logits = model(tokens[:, :-1])
            loss = logits.sparse_categorical_crossentropy(tokens[:, 1:])
            loss.backward()
            opt.step()
        changed = {k for k, v in model.state_dict().items() if not np.array_equal(v.numpy(), before[k])}
        assert changed and all(k.endswith((".lora_A.default", ".lora_B.default")) for k in changed)
        grad = model.layers[0].attention.q_proj.base_layer.weight.grad
        assert grad is None or not grad.numpy().any()
    finally:
        delete_adapter(model, "default")
