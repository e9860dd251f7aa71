"""LoRA on the tied embedding and the per-adapter output bias (minimac/lora_embedding.py): a zero delta changes
nothing, the delta is the same matrix for the lookup and the projection (numpy reference), gradients reach only the
adapter, files round-trip, switching adapters swaps them, deleting the last one gives the plain model back."""
import numpy as np
import pytest
from tinygrad import Context, Tensor
from tinygrad.nn import Embedding

from minimac import lora, lora_files
from minimac.learner.checkpoint import base_state_dict, merged_state_dict
from minimac.learner.step import param_groups
from minimac.lora import LoRAConfig
from minimac.lora_embedding import TiedLoRAEmbedding
from minimac.ops import cross_entropy

CFG = LoRAConfig(r=2, lora_alpha=4, use_rslora=True, embedding_r=3, output_bias=True)


@pytest.fixture
def tiny():
    from minimac.model import ModelConfig, Transformer
    Tensor.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=64, d_model=16, num_layers=1, num_query_heads=2, num_kv_heads=1,
                                    d_ff=32, max_seq_len=16))
    tokens = np.random.default_rng(0).integers(0, 64, size=(2, 8)).astype(np.int32)
    return model, tokens


def randomise(model, name, seed=1):
    """As if trained: every tensor of the adapter gets random values (B and the bias start at zero)."""
    rng = np.random.default_rng(seed)
    for t in lora.adapter_state_dict(model, name).values():
        t.assign(Tensor(rng.normal(scale=0.3, size=t.shape).astype(np.float32))).realize()


def reference_logits(model, name, tokens):
    """numpy: E' = E + s B A feeds the lookup (through the frozen blocks, read off the model) and the projection."""
    head = model.lm_head
    e = head.base_layer.weight.numpy().astype(np.float64)
    A, B = head.lora_A[name].numpy().astype(np.float64), head.lora_B[name].numpy().astype(np.float64)
    e2 = e + head.configs[name].scaling * B @ A
    return e2, head.lora_bias[name].numpy().astype(np.float64)


def test_a_fresh_adapter_changes_nothing_and_config_is_checked(tiny):
    model, tokens = tiny
    before = model(tokens).numpy()
    lora.inject_lora(model, CFG, "a")
    assert isinstance(model.token_embedding, TiedLoRAEmbedding) and model.lm_head.base_layer.weight is \
        model.token_embedding.base_layer.weight                                    # still one tied E
    np.testing.assert_allclose(model(tokens).numpy(), before, rtol=1e-5, atol=1e-5)
    assert "token_embedding.weight" in base_state_dict(model) and not any("lora" in k for k in base_state_dict(model))
    for bad, msg in (({"embedding_r": -1}, "embedding_r"), ({"output_bias": 1}, "output_bias"),
                     ({"embedding_r": 2, "target_modules": ("q_proj", "lm_head")}, "lm_head")):
        with pytest.raises(ValueError, match=msg):
            LoRAConfig(**bad)


def test_the_delta_is_one_matrix_for_lookup_and_projection(tiny):
    model, tokens = tiny
    lora.inject_lora(model, CFG, "a")
    randomise(model, "a")
    e2, bias = reference_logits(model, "a", tokens)
    np.testing.assert_allclose(model.token_embedding.weight.numpy(), e2, rtol=1e-5, atol=1e-5)
    h = model.hidden_states(tokens).numpy().astype(np.float64)
    np.testing.assert_allclose(model(tokens).numpy(), h @ e2.T + bias, rtol=1e-4, atol=1e-4)
    # the lookup too: a plain model holding the merged weights (E' as its E, every projection folded) gives the
    # same logits, less the bias, which a bias-free lm_head cannot hold
    from minimac.model import Transformer
    plain = Transformer(model.config)
    merged = merged_state_dict(model, "a")
    np.testing.assert_allclose(merged["token_embedding.weight"].numpy(), e2, rtol=1e-5, atol=1e-5)
    plain.load_state_dict(merged)
    logits = model(tokens).numpy()
    np.testing.assert_allclose(plain(tokens).numpy() + bias, logits, rtol=1e-4, atol=1e-4)
    # merging folds the delta into E (tied) and keeps the bias at run time; unmerging restores E
    lora.merge_adapter(model)
    np.testing.assert_allclose(model(tokens).numpy(), logits, rtol=1e-4, atol=1e-4)
    lora.unmerge_adapter(model)
    np.testing.assert_allclose(model(tokens).numpy(), logits, rtol=1e-4, atol=1e-4)


def test_gradients_reach_only_the_adapter(tiny):
    model, tokens = tiny
    lora.inject_lora(model, CFG, "a")
    lora.add_adapter(model, "b", CFG)
    randomise(model, "a")
    params = lora.lora_parameters(model, "a")
    assert {k.split(".lora_")[0] for k in lora.adapter_state_dict(model, "a") if k.startswith("lm_head")} == {"lm_head"}
    with Context(TRAINING=1):
        loss = cross_entropy(model(tokens[:, :-1]), Tensor(tokens[:, 1:]))
        grads = loss.gradient(*params)
    assert all(np.abs(g.numpy()).sum() > 0 for g in grads)       # A, B and the bias of lm_head all learn
    # the frozen weights read through .detach(): every projection's and E (the norms' gains are not detached: a LoRA
    # learner keeps them out of the optimizer instead)
    frozen = [t for k, t in model.state_dict().items() if k.endswith("base_layer.weight")]
    assert any(t is model.lm_head.base_layer.weight for t in frozen)
    with Context(TRAINING=1):
        loss = cross_entropy(model(tokens[:, :-1]), Tensor(tokens[:, 1:]))
        graph_grads = loss.gradient(*frozen, *lora.lora_parameters(model, "b"))
    assert all(np.abs(g.numpy()).sum() == 0 for g in graph_grads)  # nothing reaches E, the projections or adapter b
    groups = param_groups(model, "a", 16)
    assert sum(len(ts) for ts, _, _ in groups) == len(params)
    assert any(t is model.lm_head.lora_bias["a"] for t in groups[1][0]) and groups[1][1] == 16


def test_switching_swaps_and_files_round_trip(tiny, tmp_path):
    model, tokens = tiny
    base = model(tokens).numpy()
    lora.inject_lora(model, CFG, "a")
    lora.add_adapter(model, "b", CFG)
    randomise(model, "a", 1)
    randomise(model, "b", 2)
    out_a = model(tokens).numpy()
    lora.set_adapter(model, "b")
    out_b = model(tokens).numpy()
    assert np.abs(out_a - out_b).max() > 1e-3
    with lora.disable_adapters(model):
        np.testing.assert_allclose(model(tokens).numpy(), base, rtol=1e-5, atol=1e-5)
    lora.set_adapter(model, "a")
    np.testing.assert_allclose(model(tokens).numpy(), out_a, rtol=1e-5, atol=1e-5)
    lora_files.save_adapter(model, tmp_path / "a", "a")
    from minimac.model import Transformer
    fresh = Transformer(model.config)
    fresh.load_state_dict(base_state_dict(model))
    assert lora_files.load_adapter(fresh, tmp_path / "a") == "a"
    lora.set_adapter(fresh, "a")
    np.testing.assert_allclose(fresh(tokens).numpy(), out_a, rtol=1e-5, atol=1e-5)
    assert fresh.lm_head.configs["a"].r == 3 and fresh.layers[0].attention.q_proj.configs["a"].r == 2
    for name in ("a", "b"):
        lora.delete_adapter(model, name)
    assert isinstance(model.token_embedding, Embedding) and not isinstance(model.lm_head, lora.LoRALinear)
    np.testing.assert_allclose(model(tokens).numpy(), base, rtol=1e-5, atol=1e-5)


def test_output_bias_alone(tiny):
    model, tokens = tiny
    before = model(tokens).numpy()
    lora.inject_lora(model, LoRAConfig(r=2, output_bias=True), "a")
    assert not isinstance(model.token_embedding, TiedLoRAEmbedding) and not model.lm_head.lora_A
    assert {k for k in lora.adapter_state_dict(model, "a") if k.startswith("lm_head")} == {"lm_head.lora_bias.weight"}
    model.lm_head.lora_bias["a"].assign(Tensor.ones(64)).realize()
    np.testing.assert_allclose(model(tokens).numpy(), before + 1, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_a_learner_with_embedding_deltas_learns_routes_and_reloads(tmp_path):
    """adapter-per-domain with embedding_r and output_bias: each domain's loss falls, the router tells them apart,
    and a checkpoint gives the same logits back."""
    from minimac.learner import ContinualLearner, LearnerConfig
    from minimac.model import ModelConfig, Transformer
    from minimac.tokenizer import Tokenizer
    Tensor.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=300, d_model=32, num_layers=1, num_query_heads=2, num_kv_heads=1,
                                    d_ff=64, max_seq_len=32))
    cfg = LearnerConfig(batch_size=4, seq_len=16, min_steps=10, learning_rate=1e-2, r=2, embedding_r=4,
                        output_bias=True)
    learner = ContinualLearner(model, Tokenizer(), cfg)
    code, prose = "def double(x):\n    return x * 2\n\n" * 6, "the cat sat on the mat and looked at the dog. " * 6
    results = [learner.learn_from_text(text, name, steps=25) for name, text in (("code", code), ("prose", prose))]
    assert all(r["loss_after"] < 0.8 * r["loss_before"] for r in results)
    assert learner.route("def double(x):\n    return x") == "code" and learner.route("the cat sat on") == "prose"
    learner.save_checkpoint(tmp_path / "ckpt")
    again = ContinualLearner.load_checkpoint(tmp_path / "ckpt")
    for name in ("code", "prose"):
        ids = [learner.encode("def double")]
        lora.set_adapter(learner.model, name)
        lora.set_adapter(again.model, name)
        np.testing.assert_allclose(again.model(ids).numpy(), learner.model(ids).numpy(), rtol=1e-5, atol=1e-5)
