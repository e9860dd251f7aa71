"""The whole transformer: numpy reference, cache, padding, config, parameters, float32-only kernels, bad input."""
import math

import numpy as np
import pytest
from tinygrad import Context, Tensor, UOp, dtypes
from tinygrad.engine.realize import run_linear
from tinygrad.nn.state import get_parameters

from minimac.model import PRESETS, ModelConfig, Transformer, check_ids

SMALL = {"vocab_size": 320, "d_model": 32, "num_layers": 2, "num_query_heads": 4, "num_kv_heads": 2, "d_ff": 64,
         "max_seq_len": 16}


def randomize(model, std=0.3, seed=0):
    """Random weights (norm gains too), large enough that every part of the network matters."""
    rng = np.random.default_rng(seed)
    sd = model.state_dict()
    model.load_state_dict({k: Tensor((1 + rng.standard_normal(v.shape) * 0.2 if "norm" in k else
                                      rng.standard_normal(v.shape) * std).astype(np.float32)) for k, v in sd.items()})
    return model


@pytest.fixture(scope="module")
def model():
    Tensor.manual_seed(0)
    return randomize(Transformer(ModelConfig(**SMALL)))


# ---- numpy float64 reference -------------------------------------------------------------------------------------
def np_rms(x, w, eps):
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * w


def np_rope(x, base):
    T, d = x.shape[-2], x.shape[-1]
    ang = np.arange(T)[:, None] * base ** (-np.arange(0, d, 2) / d)[None, :]
    a, b = x[..., : d // 2], x[..., d // 2:]
    return np.concatenate([a * np.cos(ang) - b * np.sin(ang), b * np.cos(ang) + a * np.sin(ang)], axis=-1)


def np_weights(model):
    w = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        w["lm_head.weight"] = w["token_embedding.weight"]  # one array, as in the model
    return w


def np_forward(model, tokens, w=None):
    c, w = model.config, np_weights(model) if w is None else w
    B, T = tokens.shape
    hq, hkv, hd = c.num_query_heads, c.num_kv_heads, c.head_dim
    x = w["token_embedding.weight"][tokens]
    for i in range(c.num_layers):
        p = f"layers.{i}."
        h = np_rms(x, w[p + "attention_norm.weight"], c.norm_eps)
        q = np_rope((h @ w[p + "attention.q_proj.weight"].T).reshape(B, T, hq, hd).transpose(0, 2, 1, 3), c.rope_base)
        k = np_rope((h @ w[p + "attention.k_proj.weight"].T).reshape(B, T, hkv, hd).transpose(0, 2, 1, 3), c.rope_base)
        v = (h @ w[p + "attention.v_proj.weight"].T).reshape(B, T, hkv, hd).transpose(0, 2, 1, 3)
        k, v = np.repeat(k, hq // hkv, axis=1), np.repeat(v, hq // hkv, axis=1)  # contiguous groups
        s = np.where(np.tril(np.ones((T, T), bool)), q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd), -np.inf)
        a = np.exp(s - s.max(-1, keepdims=True))
        a = (a / a.sum(-1, keepdims=True) @ v).transpose(0, 2, 1, 3).reshape(B, T, hq * hd)
        x = x + a @ w[p + "attention.o_proj.weight"].T
        h = np_rms(x, w[p + "ffn_norm.weight"], c.norm_eps)
        g = h @ w[p + "feed_forward.w1.weight"].T
        x = x + (g / (1 + np.exp(-g)) * (h @ w[p + "feed_forward.w3.weight"].T)) @ w[p + "feed_forward.w2.weight"].T
    return np_rms(x, w["norm.weight"], c.norm_eps) @ w["lm_head.weight"].T


@pytest.mark.parametrize("tied", [True, False])
def test_forward_matches_numpy_reference(model, tied):
    m = model if tied else randomize(Transformer(ModelConfig(**SMALL, tie_embeddings=False)), seed=1)
    tokens = np.random.default_rng(3).integers(0, 320, (2, 8))
    logits = m(tokens)
    assert logits.shape == (2, 8, 320) and logits.dtype == dtypes.float32
    np.testing.assert_allclose(logits.numpy(), np_forward(m, tokens), rtol=1e-4, atol=1e-4)


def test_hidden_states_feed_lm_head(model):
    tokens = np.random.default_rng(4).integers(0, 320, (2, 8))
    h = model.hidden_states(tokens)
    assert h.shape == (2, 8, 32)
    np.testing.assert_allclose(model.lm_head(h).numpy(), model(tokens).numpy(), rtol=1e-6, atol=1e-6)


def test_cached_decoding_matches_full_recompute_at_every_step(model):
    tokens = np.random.default_rng(5).integers(0, 320, (1, 8))
    full = model(tokens).numpy()  # causal: row t is what a recompute over tokens[:, :t+1] gives at its end
    steps = [model(tokens[:, :3], 0, use_cache=True).numpy(), model(tokens[:, 3:5], 3, use_cache=True).numpy()]
    pos = UOp.variable("start_pos", 1, 15)  # the symbolic position generation uses
    for p in range(5, 8):
        steps.append(model(Tensor(tokens[:, p:p + 1].astype(np.int32)), pos.bind(p), use_cache=True).numpy())
    for t, got in enumerate(np.concatenate(steps, axis=1)[0]):
        np.testing.assert_allclose(got, full[0, t], rtol=1e-4, atol=1e-4, err_msg=f"step at position {t}")


def test_padding_mask_leaves_real_positions_unchanged(model):
    rng = np.random.default_rng(6)
    tokens, mask = rng.integers(1, 320, (2, 8)), np.ones((2, 8), np.int32)
    tokens[1, :3], mask[1, :3] = 0, 0  # left padding; RoPE is relative, so the shift does not matter
    got = model(tokens, attention_mask=mask).numpy()
    np.testing.assert_allclose(got[0], np_forward(model, tokens[:1])[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[1, 3:], np_forward(model, tokens[1:, 3:])[0], rtol=1e-4, atol=1e-4)


def test_parameters_are_the_weights_only(model):
    model(np.zeros((1, 2), np.int32), use_cache=True)  # create the KV caches
    params = model.parameters()
    assert len(params) == len({id(p) for p in params}) == 2 + 9 * 2  # embedding, final norm, 9 per layer
    assert all(p.dtype == dtypes.float32 for p in params)
    big = {id(model.rope.cos), id(model.rope.sin)} | {id(layer.attention.cache.k) for layer in model.layers}
    assert not big & {id(p) for p in get_parameters(model)}
    assert model.lm_head.weight is model.token_embedding.weight
    model.reset_cache()


def test_state_dict_uses_the_seed_names(model):
    per_layer = ["attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj", "feed_forward.w1",
                 "feed_forward.w2", "feed_forward.w3", "attention_norm", "ffn_norm"]
    want = {"token_embedding.weight", "norm.weight", "lm_head.weight"}
    want |= {f"layers.{i}.{n}.weight" for i in range(2) for n in per_layer}
    assert set(model.state_dict()) == want


def test_init_is_normal_0_02_and_norms_are_ones():
    Tensor.manual_seed(1)
    m = Transformer(ModelConfig(**SMALL, tie_embeddings=False))
    for name, w in m.state_dict().items():
        a = w.numpy()
        if "norm" in name:
            assert (a == 1).all(), name
        else:
            assert abs(a.mean()) < 0.003 and abs(a.std() - 0.02) < 0.002, name


def test_param_counts_match_the_seed_table():
    seed = {"tiny": (5_982_464, 12_126_464), "small": (26_909_184, 39_197_184),
            "medium": (108_792_576, 127_224_576), "large": (251_495_424, 276_071_424)}
    for name, counts in seed.items():
        assert tuple(ModelConfig.from_preset(name, vocab_size=v).param_count() for v in (8000, 32000)) == counts


@pytest.mark.parametrize("tied", [True, False])
def test_param_count_matches_an_independent_count(tied):
    c = ModelConfig(**SMALL, tie_embeddings=tied)
    m = Transformer(c)
    kv = c.num_kv_heads * c.head_dim
    layer = 32 * 32 * 2 + 32 * kv * 2 + 3 * 32 * 64 + 2 * 32   # q, o; k, v; w1, w2, w3; two norms
    want = 320 * 32 * (1 if tied else 2) + 2 * layer + 32
    assert m.param_count() == c.param_count() == want == sum(math.prod(p.shape) for p in m.parameters())


def test_presets_and_config_round_trip():
    assert ModelConfig() == ModelConfig.from_preset("nano")
    assert set(PRESETS) == {"nano", "tiny", "small", "medium", "large"}
    c = ModelConfig.from_preset("small", vocab_size=32000, dropout=0.1)
    assert (c.d_model, c.num_layers, c.num_query_heads, c.num_kv_heads, c.d_ff) == (512, 6, 8, 2, 2048)
    assert ModelConfig.from_dict(c.to_dict()) == c and c.vocab_size == 32000
    with pytest.raises(ValueError, match="unknown preset 'huge'; choose one of nano, tiny, small, medium, large"):
        ModelConfig.from_preset("huge")
    with pytest.raises(ValueError, match="unknown ModelConfig field.*n_heads"):
        ModelConfig.from_dict({**c.to_dict(), "n_heads": 4})


@pytest.mark.parametrize("change, error, message", [
    ({"d_model": 30}, ValueError, r"d_model \(30\) must be divisible by num_query_heads \(4\)"),
    ({"num_kv_heads": 3}, ValueError, r"num_query_heads \(4\) must be a multiple of num_kv_heads \(3\)"),
    ({"d_model": 12, "num_query_heads": 4, "num_kv_heads": 2}, ValueError, "head_dim .* = 3 must be even"),
    ({"num_layers": 0}, ValueError, "num_layers must be positive"),
    ({"vocab_size": -5}, ValueError, "vocab_size must be positive"),
    ({"d_ff": 64.0}, TypeError, "d_ff must be an int"),
    ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\)"),
    ({"rope_base": 0.0}, ValueError, "rope_base must be positive"),
    ({"norm_eps": 0.0}, ValueError, "norm_eps must be in"),
    ({"tie_embeddings": 1}, TypeError, "tie_embeddings must be a bool"),
])
def test_config_validation_names_the_field(change, error, message):
    with pytest.raises(error, match=message):
        ModelConfig(**{**SMALL, **change})


def test_dropout_only_when_training():
    Tensor.manual_seed(2)
    m = Transformer(ModelConfig(**SMALL, dropout=0.5))
    tokens = np.arange(16).reshape(2, 8)
    a, b = m(tokens).numpy(), m(tokens).numpy()
    np.testing.assert_array_equal(a, b)
    with Context(TRAINING=1):
        c = m(tokens).numpy()
    assert not np.allclose(a, c)


def test_bad_input_raises(model):
    with pytest.raises(ValueError, match="sequence of 17 tokens from position 0 is longer than max_seq_len 16"):
        model(np.zeros((1, 17), np.int32))
    with pytest.raises(ValueError, match="sequence of 2 tokens from position 15 is longer than max_seq_len 16"):
        model(np.zeros((1, 2), np.int32), start_pos=15)
    with pytest.raises(ValueError, match="token id 320 is out of range for vocab_size 320"):
        model([[1, 320]])
    with pytest.raises(ValueError, match="token id -1 is out of range"):
        check_ids(Tensor([[3, -1]]), 320)
    with pytest.raises(TypeError, match="tokens must be an integer tensor"):
        model(Tensor([[1.0, 2.0]]))
    with pytest.raises(TypeError, match="tokens must hold integers"):
        model([[1.5, 2.0]])
    with pytest.raises(ValueError, match=r"tokens must be 2-D \(batch, time\), got shape \(3,\)"):
        model([1, 2, 3])
    with pytest.raises(ValueError, match="start_pos must be >= 0"):
        model([[1]], start_pos=-1)
    with pytest.raises(TypeError, match="needs a ModelConfig"):
        Transformer(SMALL)


def test_load_state_dict_errors(model):
    sd = dict(model.state_dict())
    with pytest.raises(ValueError, match=r"missing \['norm.weight'\]"):
        model.load_state_dict({k: v for k, v in sd.items() if k != "norm.weight"})
    with pytest.raises(ValueError, match="shape mismatch for norm.weight"):
        model.load_state_dict({**sd, "norm.weight": Tensor.ones(7)})


# ---- no float64 on the device --------------------------------------------------------------------------------------
def kernel_dtypes(*tensors):
    """Every dtype that appears in the kernels that realize `tensors` (then runs them)."""
    linear, var_vals = Tensor.linear_with_vars(*tensors)
    found = {getattr(u.dtype, "base", u.dtype) for u in linear.toposort()}
    run_linear(linear, var_vals)
    return found


def test_float64_detector_works():
    assert dtypes.float64 in kernel_dtypes((Tensor.ones(4).contiguous().cast(dtypes.float64) * 2).sum())


def np_loss(model, w, x, y):
    logits = np_forward(model, x, w)
    m = logits.max(-1, keepdims=True)
    logz = np.log(np.exp(logits - m).sum(-1)) + m[..., 0]
    return float(np.mean(logz - np.take_along_axis(logits, y[..., None], -1)[..., 0]))


def test_backward_matches_finite_differences_and_no_float64(model):
    tokens = np.random.default_rng(7).integers(0, 320, (2, 9))
    x, y = Tensor(tokens[:, :-1].astype(np.int32)), Tensor(tokens[:, 1:].astype(np.int32))
    with Context(TRAINING=1):
        loss = model(x).sparse_categorical_crossentropy(y)
        grads = loss.gradient(*model.parameters())
        assert dtypes.float64 not in kernel_dtypes(loss, *grads)
    names = {id(t): k for k, t in reversed(list(model.state_dict().items()))}  # tied: token_embedding.weight
    grad = {names[id(p)]: g.numpy() for p, g in zip(model.parameters(), grads)}
    w = np_weights(model)
    probes = [("token_embedding.weight", (int(tokens[0, 0]), 3)), ("token_embedding.weight", (int(tokens[1, 5]), 0)),
              ("layers.0.attention.q_proj.weight", (5, 7)), ("layers.1.attention.v_proj.weight", (2, 30)),
              ("layers.0.feed_forward.w2.weight", (4, 11)), ("layers.1.ffn_norm.weight", (9,)), ("norm.weight", (1,))]
    for name, idx in probes:
        old, eps = w[name][idx], 1e-5
        w[name][idx] = old + eps
        up = np_loss(model, w, tokens[:, :-1], tokens[:, 1:])
        w[name][idx] = old - eps
        down = np_loss(model, w, tokens[:, :-1], tokens[:, 1:])
        w[name][idx] = old
        np.testing.assert_allclose(grad[name][idx], (up - down) / (2 * eps), rtol=2e-3, atol=1e-6, err_msg=name)


def test_no_float64_in_decoding(model):
    x = Tensor(np.arange(1, 5, dtype=np.int32).reshape(1, 4))
    prefill = model(x[:, :3], 0, use_cache=True, last_only=True)
    assert dtypes.float64 not in kernel_dtypes(prefill)
    step = model(x[:, 3:4], UOp.variable("start_pos", 1, 15).bind(3), use_cache=True, last_only=True)
    assert dtypes.float64 not in kernel_dtypes(step)
