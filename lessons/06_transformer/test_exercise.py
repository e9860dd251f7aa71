"""Tests for lesson 06. `pytest lessons/06_transformer` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py.

Your functions are compared with minimac itself: ModelConfig.param_count, a real (toy-sized) Transformer's logits,
minimac.generate's filters, and minimac.checkpoint's file format. (The notebook checks that your cache-free generation
loop and minimac's cached `minimac.generate.generate` pick the same tokens; here a single uncached pass is the reference.)
Run one stage at a time with -k, e.g. `pytest lessons/06_transformer -k stage1`.
"""
import json
import math

import numpy as np
import pytest
from tinygrad import Tensor

from minimac import checkpoint, files
from minimac.generate import process_logits as minimac_process_logits
from minimac.model import PRESETS, ModelConfig, Transformer

CONFIG = ModelConfig(vocab_size=64, d_model=32, num_layers=2, num_query_heads=4, num_kv_heads=2, d_ff=64,
                     max_seq_len=16)
TOKENS = np.random.default_rng(0).integers(0, 64, size=(2, 8))


@pytest.fixture(scope="module")
def model():
    Tensor.manual_seed(0)
    return Transformer(CONFIG)


@pytest.fixture(scope="module")
def weights(model):
    return {name: t.numpy().astype(np.float64) for name, t in model.state_dict().items()}


def test_stage1_param_count_matches_every_preset(ex):
    assert ex.param_count(8000, 256, 4, 4, 2, 1024) == 5_982_464
    for name in PRESETS:
        for vocab in (8000, 32000):
            c = ModelConfig.from_preset(name, vocab_size=vocab)
            assert ex.param_count(c.vocab_size, c.d_model, c.num_layers, c.num_query_heads, c.num_kv_heads,
                                  c.d_ff) == c.param_count(), (name, vocab)
    assert ex.param_count(32000, 768, 12, 12, 3, 3072) == 127_224_576  # the design's "medium"


def test_stage1_untied_head_and_real_tensors(ex, model):
    c = CONFIG
    args = (c.vocab_size, c.d_model, c.num_layers, c.num_query_heads, c.num_kv_heads, c.d_ff)
    assert ex.param_count(*args) == model.param_count() == sum(math.prod(t.shape) for t in model.parameters())
    untied = ModelConfig.from_dict({**c.to_dict(), "tie_embeddings": False})
    assert ex.param_count(*args, tie_embeddings=False) == untied.param_count() == ex.param_count(*args) + 64 * 32


def test_stage2_block_matches_minimac(ex, model, weights):
    x = np.random.default_rng(1).normal(size=(2, 8, 32))
    for layer in range(CONFIG.num_layers):
        ours = ex.block_forward(x, weights, layer, CONFIG)
        theirs = model.layers[layer](Tensor(x.astype(np.float32))).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_stage2_logits_match_minimac(ex, model, weights):
    logits = ex.transformer_forward(TOKENS, weights, CONFIG)
    assert logits.shape == (2, 8, 64)
    np.testing.assert_allclose(logits, model(TOKENS).numpy(), rtol=1e-4, atol=1e-5)
    no_head = {k: v for k, v in weights.items() if k != "lm_head.weight"}  # tied: the head is the embedding
    np.testing.assert_allclose(ex.transformer_forward(TOKENS, no_head, CONFIG), logits, atol=1e-12)
    # random weights predict almost uniformly: the loss is about ln V
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    loss = -np.take_along_axis(logp[:, :-1], TOKENS[:, 1:, None], -1).mean()
    assert abs(loss - math.log(64)) < 0.2


def test_stage3_filters_match_minimac(ex):
    logits = np.random.default_rng(2).normal(size=50) * 3
    for kw in [{}, {"temperature": 0.5}, {"top_k": 5}, {"top_p": 0.7}, {"temperature": 1.3, "top_k": 10, "top_p": 0.9},
               {"temperature": 0.0, "top_k": 3}]:
        np.testing.assert_allclose(ex.process_logits(logits, **kw), minimac_process_logits(logits, [], **kw))
    kept = np.isfinite(ex.process_logits(np.log([0.5, 0.3, 0.2]), top_p=0.6))
    np.testing.assert_array_equal(kept, [True, True, False])
    assert np.isfinite(ex.process_logits(np.array([5.0, 0.0]), top_p=0.01)).sum() == 1  # the top token survives


def test_stage3_sampling(ex):
    logits = np.array([2.0, 1.5, 1.0, 0.0, -1.0, -3.0])
    assert ex.sample_next(logits, temperature=0) == 0
    rng = np.random.default_rng(0)
    draws = np.bincount([ex.sample_next(logits, 1.0, top_k=3, rng=rng) for _ in range(3000)], minlength=6) / 3000
    expected = np.exp(logits[:3]) / np.exp(logits[:3]).sum()
    assert draws[3:].sum() == 0, "a token outside the top-k was drawn"
    np.testing.assert_allclose(draws[:3], expected, atol=0.04)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        ex.sample_next(logits, temperature=-1.0)


def one_pass_logits(model, prompt, new):
    """The logits that predicted each new token, from one uncached pass over the sequence. Because of the causal mask,
    position p sees exactly tokens 0..p, as a step-by-step full recompute would. The last token predicts nothing we
    need, so we leave it out (and the pass has a length the generation loop already compiled)."""
    return model([(prompt + new)[:-1]]).numpy()[0, len(prompt) - 1:]  # (len(new), V)


def test_stage4_greedy_generation(ex, model):
    prompt = [1, 2, 3, 4]
    new = ex.generate(model, prompt, 3, temperature=0)
    assert len(new) == 3
    assert new == one_pass_logits(model, prompt, new).argmax(-1).tolist(), "greedy takes the argmax at every step"


def test_stage4_sampled_generation(ex, model):
    prompt = [5, 6, 7, 8]  # same lengths as the greedy test: tinygrad reuses its compiled kernels
    new = ex.generate(model, prompt, 3, temperature=1.0, top_k=3, seed=0)
    assert len(new) == 3 and new == ex.generate(model, prompt, 3, temperature=1.0, top_k=3, seed=0)
    top3 = np.argsort(-one_pass_logits(model, prompt, new), axis=-1)[:, :3]
    assert all(t in row for t, row in zip(new, top3)), "every sampled token must be among the top 3"


def test_stage5_round_trip_gives_identical_logits(ex, model, tmp_path):
    ex.save_checkpoint(model, tmp_path / "ckpt")
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["config.json", "model.safetensors"], f"unexpected files (temp files left?): {names}"
    blob = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert blob["format_version"] == 1 and ModelConfig.from_dict(blob["model"]) == CONFIG
    assert "lm_head.weight" not in files.read_safetensors(tmp_path / "ckpt" / "model.safetensors")
    expected = model(TOKENS).numpy()
    loaded = ex.load_checkpoint(tmp_path / "ckpt")
    assert isinstance(loaded, Transformer) and loaded.lm_head.weight is loaded.token_embedding.weight
    np.testing.assert_array_equal(loaded(TOKENS).numpy(), expected)


def test_stage5_same_format_as_minimac(ex, model, tmp_path):
    expected = model(TOKENS).numpy()
    ex.save_checkpoint(model, tmp_path / "ours")
    np.testing.assert_array_equal(checkpoint.load(tmp_path / "ours")(TOKENS).numpy(), expected)
    checkpoint.save(model, tmp_path / "theirs")
    np.testing.assert_array_equal(ex.load_checkpoint(tmp_path / "theirs")(TOKENS).numpy(), expected)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ex.load_checkpoint(tmp_path / "nowhere")
