"""Tests for minimac/metrics.py: continual-learning arithmetic against hand-computed matrices, and `evaluate`
against numpy float64 references with fake models."""
import json
import math

import numpy as np
import pytest
from tinygrad import Context, Tensor
from tinygrad.helpers import TRAINING

from minimac.metrics import (
    RMatrix,
    average_forgetting,
    backward_transfer,
    bits_per_byte_of_text,
    compute_forgetting_rate,
    evaluate,
    forgetting,
    forward_transfer,
    gain,
    max_forgetting,
    relative_forgetting,
)

# Stages: base, d1, d2, d3 (stage j trains set j); sets: base, d1, d2, d3 and one probe. Lower is better.
R = np.array([
    # base  d1   d2   d3   probe
    [1.0, 3.0, 4.0, 5.0, 2.0],  # stage 0: base model
    [1.2, 2.0, 3.5, 5.5, 2.1],  # stage 1: trained d1
    [1.1, 1.8, 1.5, 4.0, 2.3],  # stage 2: trained d2 (d1 got better still)
    [1.6, 2.2, 2.5, 2.0, 1.9],  # stage 3: trained d3
])


def test_forgetting_by_hand():
    # base: 1.6 - min(1.0, 1.2, 1.1, 1.6) = 0.6; d1: 2.2 - min(3.0, 2.0, 1.8, 2.2) = 0.4; d2: 2.5 - 1.5 = 1.0
    np.testing.assert_allclose(forgetting(R), [0.6, 0.4, 1.0])
    # relative to the best: 0.6 / 1.0 = 60 %, 0.4 / 1.8 = 22.2 %, 1.0 / 1.5 = 66.7 %
    np.testing.assert_allclose(relative_forgetting(R), [60.0, 100 * 0.4 / 1.8, 100 / 1.5])
    assert average_forgetting(R) == pytest.approx(2.0 / 3)
    assert max_forgetting(R) == pytest.approx(1.0)
    # the probe is at its best now: 1.9 - min(2.0, 2.1, 2.3, 1.9) = 0
    np.testing.assert_allclose(forgetting(R, seen=[4]), [0.0])


def test_forgetting_is_never_negative_and_zero_when_nothing_got_worse():
    improving = np.array([[3.0, 4.0], [2.0, 3.0], [1.0, 2.0]])  # every set improves at every stage
    np.testing.assert_allclose(forgetting(improving, seen=[0, 1]), [0.0, 0.0])
    assert (forgetting(R, seen=range(5)) >= 0).all()


def test_backward_transfer_by_hand():
    # j = 0: R[0][0] - R[3][0] = 1.0 - 1.6 = -0.6; j = 1: R[1][1] - R[3][1] = 2.0 - 2.2 = -0.2;
    # j = 2: R[2][2] - R[3][2] = 1.5 - 2.5 = -1.0; mean = -0.6 (negative: forgot).
    assert backward_transfer(R) == pytest.approx(-0.6)
    # Differs from -average_forgetting (-0.667) because d1's best (1.8) came after its own stage.
    assert backward_transfer(R) != pytest.approx(-average_forgetting(R))
    # After stage 2: j=0: 1.0 - 1.1 = -0.1; j=1: 2.0 - 1.8 = +0.2 -> mean +0.05 (d2's training helped d1).
    assert backward_transfer(R[:3]) == pytest.approx(0.05)


def test_forward_transfer_by_hand():
    # j = 2: R[0][2] - R[1][2] = 4.0 - 3.5 = 0.5; j = 3: R[0][3] - R[2][3] = 5.0 - 4.0 = 1.0 -> mean 0.75
    assert forward_transfer(R, num_stages=4) == pytest.approx(0.75)
    # Without num_stages the probe counts as a domain 4: R[0][4] - R[3][4] = 2.0 - 1.9 = 0.1 -> (0.5+1+0.1)/3
    assert forward_transfer(R) == pytest.approx(1.6 / 3)
    # After stage 1 only d2's is known: 0.5
    assert forward_transfer(R[:2], num_stages=4) == pytest.approx(0.5)
    hurt = np.array([[1.0, 2.0, 3.0], [1.1, 1.0, 3.4], [1.2, 1.1, 1.0]])  # learning d1 made d2 worse: 3.0 - 3.4 < 0
    assert forward_transfer(hurt) == pytest.approx(-0.4)


def test_gain_by_hand():
    # gain(j) = R[j-1][j] - R[j][j]: d1 3.0 - 2.0; d2 3.5 - 1.5; d3 4.0 - 2.0
    assert [gain(R, j) for j in (1, 2, 3)] == pytest.approx([1.0, 2.0, 2.0])
    with pytest.raises(ValueError, match=r"gain needs a trained domain 1 <= j < 4, got j=0"):
        gain(R, 0)
    with pytest.raises(ValueError, match=r"gain needs a trained domain 1 <= j < 2, got j=2"):
        gain(R[:2], 2)


def test_undefined_before_any_new_domain_is_nan():
    base_only = R[:1]
    assert forgetting(base_only).size == 0
    assert math.isnan(average_forgetting(base_only)) and math.isnan(max_forgetting(base_only))
    assert math.isnan(backward_transfer(base_only)) and math.isnan(forward_transfer(base_only, 4))


def test_matrix_errors():
    with pytest.raises(ValueError, match="R must be a 2-D matrix"):
        forgetting([1.0, 2.0])
    with pytest.raises(ValueError, match="out of range for R with 5 sets"):
        forgetting(R, seen=[7])


def test_compute_forgetting_rate():
    # lower is better: a: 2.0 -> 2.5 worse by 0.5, c: 3.0 -> 2.0 better by 1.0; b is new
    out = compute_forgetting_rate({"a": 2.5, "b": 1.0, "c": 2.0}, {"a": 2.0, "c": 3.0})
    # forgetting = mean(max(0, 0.5), max(0, -1.0)) = 0.25; BWT = mean(-0.5, +1.0) = 0.25; new_task_mean = 1.0
    assert out == pytest.approx({"forgetting": 0.25, "backward_transfer": 0.25, "new_task_mean": 1.0})
    # higher is better (accuracy): the seed's arithmetic, forgetting = mean(max(0, prev - curr))
    acc = compute_forgetting_rate({"a": 0.7, "c": 0.9}, {"a": 0.8, "c": 0.85}, lower_is_better=False)
    assert acc == pytest.approx({"forgetting": 0.05, "backward_transfer": -0.025, "new_task_mean": 0.0})
    assert compute_forgetting_rate({"x": 2.0, "y": 4.0}, {"z": 1.0}) == {
        "forgetting": 0.0, "backward_transfer": 0.0, "new_task_mean": 3.0}


def test_rmatrix_fills_and_summarises():
    names = ["base", "d1", "d2", "d3"]
    r = RMatrix(names, names + ["probe"])
    r.append(R[0].tolist())
    assert math.isnan(r.summary()["gain"]) and r.summary()["forgetting"] == {}
    r.append(dict(zip(names + ["probe"], R[1], strict=True)))
    r.append(R[2])
    r.append(R[3])
    s = r.summary()
    assert s["stage"] == "d3"
    assert s["forgetting"] == pytest.approx({"base": 0.6, "d1": 0.4, "d2": 1.0})
    assert s["relative_forgetting_pct"]["base"] == pytest.approx(60.0)
    assert s["average_forgetting"] == pytest.approx(average_forgetting(R))
    assert s["max_forgetting"] == pytest.approx(1.0)
    assert s["backward_transfer"] == pytest.approx(-0.6)
    assert s["forward_transfer"] == pytest.approx(0.75)  # the probe is not a domain here
    assert s["gain"] == pytest.approx(2.0)
    back = RMatrix.from_dict(json.loads(json.dumps(r.to_dict())))
    np.testing.assert_array_equal(back.values, R)
    assert back.stages == names and back.summary() == s


def test_rmatrix_errors():
    with pytest.raises(ValueError, match="sets must start with the stages' own test sets in order"):
        RMatrix(["base", "d1"], ["d1", "base"])
    r = RMatrix(["base"], ["base", "probe"])
    with pytest.raises(ValueError, match="RMatrix is empty"):
        r.summary()
    with pytest.raises(ValueError, match="a row needs 2 values"):
        r.append([1.0])
    with pytest.raises(ValueError, match=r"row is missing set\(s\) \['probe'\]"):
        r.append({"base": 1.0})
    r.append([1.0, 2.0])
    with pytest.raises(ValueError, match="all 1 stages are already filled"):
        r.append([1.0, 2.0])
    with pytest.raises(ValueError, match="values must have shape"):
        RMatrix(["base"], ["base"], np.zeros((2, 1)))


# -- evaluate -----------------------------------------------------------------------------------------------------

V = 37
RNG = np.random.default_rng(0)
TABLE = RNG.normal(0, 2, size=(V, V)).astype(np.float32)
TOKENS = RNG.integers(0, V, size=203)  # 202 predictions: not a multiple of any seq_len used below


class Bigram:
    """logits[b, t] = TABLE[tokens[b, t]]: a context-free model with an exact numpy reference."""
    def __init__(self):
        self.table = Tensor(TABLE)

    def __call__(self, tokens):
        return self.table[tokens]  # (B, T, V)


def zeros_model(tokens):
    return Tensor.zeros(tokens.shape[0], tokens.shape[1], V) + tokens.unsqueeze(-1).float() * 0


def bigram_reference(ids):
    t = TABLE.astype(np.float64)
    logp = t - np.log(np.exp(t).sum(-1, keepdims=True))
    return -logp[ids[:-1], ids[1:]].sum()


def test_uniform_logits_give_ln_v():
    out = evaluate(zeros_model, TOKENS, seq_len=16, batch_size=4, num_bytes=500)
    assert out["num_tokens"] == len(TOKENS) - 1
    np.testing.assert_allclose(out["loss"], math.log(V), rtol=1e-5)
    np.testing.assert_allclose(out["bits_per_token"], math.log2(V), rtol=1e-5)
    np.testing.assert_allclose(out["perplexity"], V, rtol=1e-5)
    np.testing.assert_allclose(out["bits_per_byte"], (len(TOKENS) - 1) * math.log2(V) / 500, rtol=1e-5)
    assert math.isnan(evaluate(zeros_model, TOKENS, 16, 4)["bits_per_byte"])


@pytest.mark.parametrize("seq_len, batch_size, jit", [(16, 1, True), (16, 3, True), (16, 16, False), (7, 4, True)])
def test_matches_float64_reference_whatever_the_batching(seq_len, batch_size, jit):
    # 202 predictions in windows of 16 -> 13 windows, the last holding 10; batches of 3 pad 2 empty windows.
    # Unmasked padding (token 0 predicting 0) would change the sum, so equality checks the mask.
    out = evaluate(Bigram(), TOKENS, seq_len, batch_size, num_bytes=1000, jit=jit)
    ref = bigram_reference(TOKENS)
    np.testing.assert_allclose(out["loss"], ref / (len(TOKENS) - 1), rtol=1e-5)
    np.testing.assert_allclose(out["bits_per_byte"], ref / math.log(2) / 1000, rtol=1e-5)


@pytest.mark.parametrize("jit", [True, False])
def test_perfect_model_has_zero_loss(jit):
    # A stream where every token has one successor, perm[token]; the "perfect" model knows perm through a closure
    # and puts a huge logit on the true next token.
    perm = RNG.permutation(V)
    ids = [0]
    for _ in range(99):
        ids.append(perm[ids[-1]])
    successor = Tensor(perm.astype(np.int32))

    def perfect(tokens):
        return successor[tokens].one_hot(V).float() * 50.0  # (B, T, V)
    out = evaluate(perfect, np.array(ids), 16, 2, jit=jit)
    assert 0 <= out["loss"] < 1e-6 and out["perplexity"] == pytest.approx(1.0)


def test_evaluation_runs_with_dropout_off():
    seen = []

    def model(tokens):
        seen.append(TRAINING.value)
        return zeros_model(tokens)
    with Context(TRAINING=1):
        evaluate(model, TOKENS[:20], 8, 2, jit=False)
    assert seen and set(seen) == {0}


class ByteTokenizer:
    eot_id = 0

    def encode(self, text):
        return [b + 1 for b in text.encode("utf-8")]


class PairTokenizer:
    """Two bytes per token (ids < 37 after a modulo: only the count matters with uniform logits)."""
    eot_id = 0

    def encode(self, text):
        b = text.encode("utf-8")
        return [1 + (b[i] % (V - 1)) for i in range(0, len(b), 2)]


def test_bits_per_byte_of_text_counts_utf8_bytes():
    text = "Café — naïve señor. " * 3  # non-ASCII: 20 characters, 25 bytes each time
    n_bytes = len(text.encode("utf-8"))
    assert n_bytes > len(text)

    def zeros257(tokens):
        return Tensor.zeros(tokens.shape[0], tokens.shape[1], 257) + tokens.unsqueeze(-1).float() * 0
    # Byte tokenizer: one prediction per byte (the leading <|endoftext|> is free), so bpb = log2(257) exactly.
    bpb = bits_per_byte_of_text(zeros257, ByteTokenizer(), text, seq_len=16, batch_size=2)
    np.testing.assert_allclose(bpb, math.log2(257), rtol=1e-5)
    # Two bytes per token: half as many predictions of log2(V) bits each, over the same bytes.
    bpb2 = bits_per_byte_of_text(zeros_model, PairTokenizer(), text, seq_len=16, batch_size=2)
    np.testing.assert_allclose(bpb2, math.ceil(n_bytes / 2) * math.log2(V) / n_bytes, rtol=1e-5)


@pytest.mark.parametrize("kwargs, msg", [
    ({"token_ids": TOKENS[:1]}, "at least 2 tokens"),
    ({"token_ids": TOKENS.reshape(7, 29)}, "1-D integer array"),
    ({"token_ids": TOKENS.astype(np.float32)}, "1-D integer array"),
    ({"seq_len": 0}, "seq_len must be a positive integer, got 0"),
    ({"batch_size": 2.5}, "batch_size must be a positive integer, got 2.5"),
    ({"num_bytes": 0}, "num_bytes must be positive"),
    ({"token_ids": np.array([1, 2, V])}, f"token id {V} is outside the model's vocabulary of {V}"),
])
def test_evaluate_errors(kwargs, msg):
    args = {"model": zeros_model, "token_ids": TOKENS, "seq_len": 8, "batch_size": 2, **kwargs}
    with pytest.raises(ValueError, match=msg):
        evaluate(**args)


def test_evaluate_rejects_wrong_logit_shape():
    with pytest.raises(ValueError, match=r"model must map tokens \(B, T\) = \(2, 8\) to logits \(B, T, V\), got \(2, 8\)"):
        evaluate(lambda t: t.float(), TOKENS, 8, 2)


def test_bits_per_byte_of_text_errors():
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        bits_per_byte_of_text(zeros_model, ByteTokenizer(), b"abc", 8, 2)
    with pytest.raises(ValueError, match="text is empty"):
        bits_per_byte_of_text(zeros_model, ByteTokenizer(), "", 8, 2)


def test_a_minimac_models_eval_jit_is_kept_and_never_stale():
    """evaluate keeps one jit per model and (B, T) (minimac/jit_cache.py); it must still follow every change."""
    from minimac import lora
    from minimac.jit_cache import cached
    from minimac.model import ModelConfig, Transformer

    Tensor.manual_seed(0)
    m = Transformer(ModelConfig(vocab_size=64, d_model=32, num_layers=2, num_query_heads=4, num_kv_heads=2,
                                d_ff=64, max_seq_len=32))
    ids = np.random.default_rng(0).integers(0, 64, 200)

    def both():  # the cached jit's loss and a plain eager pass's (a stale jit would differ by far more than 1e-5)
        return evaluate(m, ids, 16, 2)["loss"], evaluate(m, ids, 16, 2, jit=False)["loss"]

    first = both()
    assert first[0] == pytest.approx(first[1], rel=1e-5) and len(cached(m, ("nll", 2, 16))) == 1
    jit = cached(m, ("nll", 2, 16))[0]
    emb = m.state_dict()["token_embedding.weight"]
    emb.assign(Tensor.randn(*emb.shape) * 0.1).realize()  # in place, like an optimizer step: same jit, new values
    now = both()
    assert now[0] == pytest.approx(now[1], rel=1e-5) and now[0] != pytest.approx(first[0], rel=1e-4)
    assert cached(m, ("nll", 2, 16)) == [jit]
    block, ffn = m.layers[0], m.layers[0].feed_forward
    block.feed_forward = lambda x: ffn(x) * 20.0      # a controller swapping a sub-module: a new graph
    swapped = both()
    assert swapped[0] == pytest.approx(swapped[1], rel=1e-5) and swapped[0] != pytest.approx(now[0], rel=1e-4)
    block.feed_forward = ffn
    lora.inject_lora(m, lora.LoRAConfig(r=2, target_modules=["q_proj", "w2"]), "a")
    for layer in lora.lora_layers(m).values():
        layer.lora_B["a"].assign(Tensor.full(layer.lora_B["a"].shape, 2.0)).realize()
    adapted = both()
    assert adapted[0] == pytest.approx(adapted[1], rel=1e-5) and adapted[0] != pytest.approx(now[0], rel=1e-4)
    lora.disable_adapters(m)                          # same buffers, another LoRA mode: another jit
    bare = both()
    assert bare[0] == pytest.approx(bare[1], rel=1e-5) and bare[0] != pytest.approx(adapted[0], rel=1e-4)


def test_a_minimac_models_vocabulary_is_checked_without_tracing_it():
    """A minimac model declares its vocabulary (config.vocab_size), so evaluate checks ids against it instead of
    tracing a forward pass (half a second for nano on a CPU, paid twice per learn_from_text)."""
    from minimac.model import ModelConfig, Transformer

    m = Transformer(ModelConfig(vocab_size=64, d_model=32, num_layers=1, num_query_heads=4, num_kv_heads=2,
                                d_ff=64, max_seq_len=32))
    calls = []
    m.hidden_states = lambda tokens, *a, **kw: calls.append(tokens) or Transformer.hidden_states(m, tokens, *a, **kw)
    with pytest.raises(ValueError, match="token id 64 is outside the model's vocabulary of 64"):
        evaluate(m, np.array([1, 2, 64]), 8, 2)
    assert calls == []  # rejected before any forward pass
    assert math.isfinite(evaluate(m, np.array([1, 2, 63]), 8, 2, jit=False)["loss"]) and len(calls) == 1
