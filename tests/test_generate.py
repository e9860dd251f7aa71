"""Generation: logits processing, cached decoding == full recompute, sliding window, EOS, errors, and the CLI."""
import contextlib

import numpy as np
import pytest
from tinygrad import Tensor

from minimac import checkpoint, ops
from minimac.generate import generate, load_for_generation, main, process_logits, sample_token, stream
from minimac.model import ModelConfig, Transformer

SMALL = {"vocab_size": 320, "d_model": 32, "num_layers": 2, "num_query_heads": 4, "num_kv_heads": 2, "d_ff": 64,
         "max_seq_len": 16}


@pytest.fixture(scope="module")
def model():
    Tensor.manual_seed(5)
    m = Transformer(ModelConfig(**SMALL))
    rng = np.random.default_rng(0)  # larger weights than the init, so the next-token distribution is not flat
    m.load_state_dict({k: Tensor((rng.standard_normal(v.shape) * 0.3).astype(np.float32)) if "norm" not in k else v
                       for k, v in m.state_dict().items()})
    return m


def reference_generate(model, prompt, n, seed=None, **kw):
    """Full recompute for every token: the last max_seq_len tokens, right-padded to max_seq_len (causal attention
    makes the padding invisible to the row we read), so one compiled shape serves every step."""
    L, ids, rng = model.config.max_seq_len, list(prompt), np.random.default_rng(seed)
    for _ in range(n):
        context = ids[-L:]
        logits = model([context + [0] * (L - len(context))]).numpy()[0, len(context) - 1]
        ids.append(sample_token(logits, ids, rng=rng, **kw))
    return ids[len(prompt):]


def test_repetition_penalty_is_hf_style():
    out = process_logits(np.array([2.0, -2.0, 1.0]), context=[0, 1, 1], repetition_penalty=2.0)
    np.testing.assert_allclose(out, [1.0, -4.0, 1.0])  # positive divided, negative multiplied, unseen untouched


def test_vocab_limit_blocks_ids_the_tokenizer_lacks():
    out = process_logits(np.array([0.0, 1.0, 9.0, 8.0]), [], vocab_limit=2)
    np.testing.assert_allclose(out, [0.0, 1.0, -np.inf, -np.inf])


def test_top_k_and_temperature():
    out = process_logits(np.array([1.0, 3.0, 2.0, 0.0]), [], temperature=0.5, top_k=2)
    np.testing.assert_allclose(out, [-np.inf, 6.0, 4.0, -np.inf])


@pytest.mark.parametrize("top_p, kept", [(0.4, 1), (0.6, 2), (0.85, 3), (1.0, 3)])
def test_top_p_keeps_the_first_token_over_p(top_p, kept):
    logits = np.log([0.2, 0.5, 0.3])  # ranked: 0.5, 0.3, 0.2
    out = process_logits(logits, [], top_p=top_p)
    assert np.isfinite(out).sum() == kept and np.isfinite(out[1])


def test_sampling_follows_the_distribution_and_greedy_takes_argmax():
    logits, rng = np.log([0.7, 0.2, 0.1]), np.random.default_rng(0)
    counts = np.bincount([sample_token(logits, [], temperature=1.0, rng=rng) for _ in range(4000)], minlength=3)
    np.testing.assert_allclose(counts / 4000, [0.7, 0.2, 0.1], atol=0.03)
    assert sample_token(np.array([0.1, 0.9, 0.3]), [], temperature=0) == 1


def test_greedy_cached_generation_matches_full_recompute(model):
    prompt = [5, 17, 250]
    assert generate(model, prompt, 8, temperature=0) == reference_generate(model, prompt, 8, temperature=0)


def test_sampled_generation_matches_full_recompute_past_the_window(model):
    prompt = list(range(1, 14))  # 13 tokens + 7 new ones: the last 4 steps slide the 16-token window
    kw = {"temperature": 0.9, "top_k": 50, "top_p": 0.95, "repetition_penalty": 1.3}
    with ops.plain("decode_tokens", "decode_batch"):  # numpy's draws; the fast path draws on the device
        got = generate(model, prompt, 7, seed=1, **kw)
        assert got == list(stream(model, prompt, 7, seed=1, **kw)) and len(got) == 7
    assert got == reference_generate(model, prompt, 7, seed=1, **kw)


def test_stops_at_eos_and_zero_tokens(model):
    first = generate(model, [5, 17, 250], 1, temperature=0)[0]
    assert generate(model, [5, 17, 250], 10, temperature=0, eos_id=first) == [first]
    assert generate(model, [5, 17, 250], 0) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": -0.1}, "temperature must be >= 0"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"top_k": 0}, "top_k must be an int >= 1"),
    ({"repetition_penalty": 0.0}, "repetition_penalty must be > 0"),
    ({"max_new_tokens": -1}, "max_new_tokens must be an int >= 0"),
    ({"prompt_ids": []}, "prompt_ids is empty"),
    ({"prompt_ids": [1, 999]}, "token id 999 is out of range for vocab_size 320"),
    ({"vocab_limit": 321}, r"vocab_limit must be in \[1, 320\]"),
])
def test_bad_arguments_raise_before_any_work(model, kwargs, message):
    args = {"prompt_ids": [1, 2], "max_new_tokens": 3} | kwargs
    with pytest.raises(ValueError, match=message):
        stream(model, **args)  # eager validation: no need to iterate


def test_cli_streams_text_from_a_checkpoint(model, tmp_path, capsys):
    from minimac.tokenizer import Tokenizer

    checkpoint.save(model, tmp_path)
    assert main(["--checkpoint", str(tmp_path), "--prompt", "hi"]) == 1
    assert "no tokenizer at" in capsys.readouterr().err
    Tokenizer().save(tmp_path / "tokenizer")
    assert main(["--checkpoint", str(tmp_path), "--prompt", "hi", "--max-new-tokens", "5", "--seed", "0"]) == 0
    assert capsys.readouterr().out.startswith("hi")
    loaded, tokenizer = load_for_generation(tmp_path)
    assert tokenizer.vocab_size == 257 and loaded.config == model.config
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_for_generation(tmp_path / "nowhere")


def _fresh(seed=5):
    Tensor.manual_seed(seed)
    m = Transformer(ModelConfig(**SMALL))
    rng = np.random.default_rng(seed)
    m.load_state_dict({k: Tensor((rng.standard_normal(v.shape) * 0.3).astype(np.float32)) if "norm" not in k else v
                       for k, v in m.state_dict().items()})
    return m


@pytest.mark.parametrize("path", ["plain", "fast"])
def test_the_decode_jit_is_reused_across_calls_and_never_stale(path):
    """The readable loop keeps its jit under "decode"; the fast path (minimac/fast/decode.py) its Decoder."""
    with contextlib.nullcontext() if path == "fast" else ops.plain("decode_tokens", "decode_batch"):
        _check_jit_reuse("decoder" if path == "fast" else "decode")


def _check_jit_reuse(name):
    from minimac import lora
    from minimac.jit_cache import cached

    m, prompt = _fresh(), [3, 9, 40]
    first = generate(m, prompt, 6, temperature=0)
    jit = cached(m, name)[-1]
    assert generate(m, prompt, 6, temperature=0) == first and cached(m, name) == [jit]  # reused, same tokens
    # weights changed in place (what an optimizer step does): same buffers, so the same JIT, reading new values
    emb = m.state_dict()["token_embedding.weight"]
    emb.assign(emb * -1.5).realize()
    assert generate(m, prompt, 6, temperature=0) == reference_generate(m, prompt, 6, temperature=0)
    assert cached(m, name) == [jit]
    # new buffers (load_state_dict) and a new graph (a LoRA adapter with a non-zero B): a fresh capture each time
    m.load_state_dict(_fresh(seed=6).state_dict())
    assert generate(m, prompt, 6, temperature=0) == reference_generate(m, prompt, 6, temperature=0)
    if name == "decode":  # load_state_dict cleared the KV caches the plain jit captured: that jit is dropped
        assert cached(m, name)[-1] is not jit and jit not in cached(m, name)
    lora.inject_lora(m, lora.LoRAConfig(r=2, target_modules=["q_proj", "w2"]), "a")
    for layer in lora.lora_layers(m).values():
        layer.lora_B["a"].assign(Tensor.full(layer.lora_B["a"].shape, 0.5)).realize()
    assert generate(m, prompt, 6, temperature=0) == reference_generate(m, prompt, 6, temperature=0)
    adapted = generate(m, prompt, 6, temperature=0)
    lora.disable_adapters(m)                   # same buffers, another graph: the LoRA mode is part of the key
    assert generate(m, prompt, 6, temperature=0) == reference_generate(m, prompt, 6, temperature=0)
    lora.enable_adapters(m)
    assert generate(m, prompt, 6, temperature=0) == adapted
