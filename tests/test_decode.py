"""The fast decoding path (minimac/fast/decode.py, fast/sampling.py) against the readable loop of minimac/generate.py:
greedy ids identical, batches equal to one-by-one, seeded sampling reproducible, on-device filtering equal to the
host's, and draws that follow the softmax (a chi-square test, no timing)."""
import dataclasses

import numpy as np
import pytest
from tinygrad import Tensor

from minimac import lora, ops
from minimac.fast import decode, devices
from minimac.fast.sampling import Rules, SamplingState, filter_top_k, filter_top_p, pick
from minimac.generate import generate, generate_batch, process_logits
from minimac.model import ModelConfig, Transformer

CONFIGS = {  # GQA 4:2 with a 40-token window; multi-head 2:2, more layers, a vocabulary that is not a power of two
    "gqa": {"vocab_size": 320, "d_model": 32, "num_layers": 2, "num_query_heads": 4, "num_kv_heads": 2, "d_ff": 64,
            "max_seq_len": 40},
    "mha": {"vocab_size": 301, "d_model": 48, "num_layers": 3, "num_query_heads": 2, "num_kv_heads": 2, "d_ff": 96,
            "max_seq_len": 64},
}


def _model(name: str, seed: int = 3) -> Transformer:
    Tensor.manual_seed(seed)
    m = Transformer(ModelConfig(**CONFIGS[name]))
    rng = np.random.default_rng(seed)  # larger weights than the init, so the next-token distribution is not flat
    m.load_state_dict({k: Tensor((rng.standard_normal(v.shape) * 0.3).astype(np.float32)) if "norm" not in k else v
                       for k, v in m.state_dict().items()})
    return m


@pytest.fixture(scope="module")
def model():
    return _model("gqa")


def plain(fn, *args, **kw):
    """The readable loop (host-side picking), whatever minimac.fast installed."""
    with ops.plain("decode_tokens", "decode_batch"):
        return fn(*args, **kw)


PROMPTS = [[5], [7, 3, 250, 11, 12, 13, 14, 15, 16, 17], list(range(20, 52))]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_greedy_ids_are_the_readable_loops(name, model):
    model = model if name == "gqa" else _model(name)
    assert "decode_tokens" in ops.replaced()
    for prompt in PROMPTS:
        assert generate(model, prompt, 12, temperature=0) == plain(generate, model, prompt, 12, temperature=0)


def test_greedy_past_the_window_with_penalty_and_vocab_limit(model):
    prompt, L = list(range(1, 30)), model.config.max_seq_len  # 29 + 20 new > 40 on "gqa": the window slides
    kw = {"temperature": 0, "repetition_penalty": 1.4, "vocab_limit": 200}
    got = generate(model, prompt, 20, **kw)
    assert got == plain(generate, model, prompt, 20, **kw) and max(got) < 200
    long = list(np.random.default_rng(1).integers(1, 300, L + 5))  # a prompt longer than the window
    assert generate(model, long, 3, temperature=0) == plain(generate, model, long, 3, temperature=0)


@pytest.mark.slow
def test_greedy_ids_on_the_nano_preset():
    """The lessons' preset itself (random init, 4,096-token vocabulary, 256-token window)."""
    Tensor.manual_seed(0)
    m = Transformer(ModelConfig.from_preset("nano"))
    prompts = [[1], list(range(100, 140)), list(np.random.default_rng(2).integers(1, 4096, 250))]
    for prompt in prompts:  # the last one slides the window after 6 tokens
        assert generate(m, prompt, 12, temperature=0) == plain(generate, m, prompt, 12, temperature=0)
    assert generate_batch(m, prompts[:2], 12, temperature=0) == [generate(m, p, 12, temperature=0)
                                                                 for p in prompts[:2]]


def test_eos_stops_inside_a_chunk(model):
    prompt = PROMPTS[1]
    full = plain(generate, model, prompt, 10, temperature=0)
    eos = full[4]
    expected = full[:full.index(eos) + 1]
    assert generate(model, prompt, 10, temperature=0, eos_id=eos) == expected


def test_batch_equals_one_by_one(model):
    prompts = PROMPTS + [[9, 8, 7]]
    one_by_one = [generate(model, p, 9, temperature=0) for p in prompts]
    assert generate_batch(model, prompts, 9, temperature=0) == one_by_one
    eos = one_by_one[1][2]  # rows stop at their own EOS; the others go on
    cut = [r[:r.index(eos) + 1] if eos in r else r for r in one_by_one]
    assert generate_batch(model, prompts, 9, temperature=0, eos_id=eos) == cut
    with pytest.raises(ValueError, match="prompts is empty"):
        generate_batch(model, [], 3)


def test_seeded_sampling_is_reproducible(model):
    kw = {"temperature": 0.9, "top_k": 40, "top_p": 0.9, "repetition_penalty": 1.2}
    a = generate(model, PROMPTS[1], 14, seed=7, **kw)
    assert a == generate(model, PROMPTS[1], 14, seed=7, **kw) and len(a) == 14
    assert a != generate(model, PROMPTS[1], 14, seed=8, **kw)


def test_an_active_lora_adapter_is_merged_for_decoding_and_follows_training():
    m = _model("gqa", seed=4)
    lora.inject_lora(m, lora.LoRAConfig(r=2), "a")
    for layer in lora.lora_layers(m).values():
        layer.lora_B["a"].assign(Tensor.full(layer.lora_B["a"].shape, 0.3)).realize()
    assert generate(m, PROMPTS[1], 8, temperature=0) == plain(generate, m, PROMPTS[1], 8, temperature=0)
    for layer in lora.lora_layers(m).values():  # updated in place, as an optimizer does: the merged copy follows
        layer.lora_A["a"].assign(layer.lora_A["a"] * -2).realize()
    assert generate(m, PROMPTS[1], 8, temperature=0) == plain(generate, m, PROMPTS[1], 8, temperature=0)
    d = decode.decoder(m)
    assert sum(x.lora is not None for x in d.linears.values()) == len(lora.lora_layers(m))


# (True, True) is the CPU row's choice; the other three cases run with -m slow (about 35 s on two cores)
@pytest.mark.parametrize("transposed,shared", [pytest.param(False, False, marks=pytest.mark.slow),
                                               pytest.param(True, False, marks=pytest.mark.slow),
                                               pytest.param(False, True, marks=pytest.mark.slow), (True, True)])
def test_copies_follow_weights_changed_in_place(monkeypatch, transposed, shared):
    """The decoding copies that the device table may ask for (fast/devices.py: W^T for batches, q/k/v and w1/w3
    concatenated), with and without an adapter: one row and a batch give the ids of the readable loop, and again
    after an in-place update, as an optimizer makes."""
    name = devices.backend(Tensor([0]).device)
    monkeypatch.setitem(devices.DEVICES, name, dataclasses.replace(
        devices.capabilities(name), decode_batch_transposed=transposed, decode_shared_inputs=shared))
    m = _model("mha", seed=5)
    rows = [PROMPTS[1], [9, 8, 7]]

    def same() -> bool:
        return generate_batch(m, rows, 6, temperature=0) == plain(generate_batch, m, rows, 6, temperature=0) and \
            generate(m, rows[0], 6, temperature=0) == plain(generate, m, rows[0], 6, temperature=0)
    assert same()
    w = m.layers[0].attention.q_proj.weight
    w.assign(w * -1.5).realize()
    assert same()
    lora.inject_lora(m, lora.LoRAConfig(r=2), "a")
    for layer in lora.lora_layers(m).values():
        layer.lora_B["a"].assign(Tensor.full(layer.lora_B["a"].shape, 0.3)).realize()
    assert same()
    d = decode.decoder(m)
    grouped = {id(x) for g in d.groups.values() for x in g.layers}
    assert all((x.transposed is not None) == (transposed and id(x) not in grouped) for x in d.linears.values())
    assert len(d.groups) == (2 * len(m.layers) if shared else 0)
    assert all((g.transposed is not None) == transposed for g in d.groups.values())


def test_a_padded_window_gives_the_same_ids(monkeypatch):
    """fast/attention.py's padded window (devices.py `padded_window`, for GPUs): a decoding step's keys padded from
    their symbolic length to the longest and masked, for one row (a batch keeps its keys as they are). One row that
    slides past the window, and a left-padded batch."""
    from minimac.fast import attention as fast_attention
    name = devices.backend(Tensor([0]).device)
    monkeypatch.setitem(devices.DEVICES, name, dataclasses.replace(devices.capabilities(name), padded_window=True))
    calls, padded_window = [], fast_attention.padded_window
    monkeypatch.setattr(fast_attention, "padded_window", lambda *a: calls.append(a[0].shape) or padded_window(*a))
    m = _model("gqa", seed=6)
    prompt = list(range(1, 37))   # 36 + 6 > 40: the window slides
    assert generate(m, prompt, 6, temperature=0) == plain(generate, m, prompt, 6, temperature=0)
    rows = [PROMPTS[1], [9, 8, 7]]
    assert generate_batch(m, rows, 5, temperature=0) == plain(generate_batch, m, rows, 5, temperature=0)
    assert calls and all(not isinstance(shape[2], int) for shape in calls)   # the decode steps' symbolic keys


# ---- the picking rules, on fixed logits ---------------------------------------------------------------------------
def _state(logits: np.ndarray, seed: int = 0, **settings) -> SamplingState:
    B, V = logits.shape
    s = SamplingState(B, V)
    full = {"temperature": 1.0, "top_k": None, "top_p": None, "repetition_penalty": 1.0, "vocab_limit": None}
    s.set(seed=seed, contexts=np.zeros((B, V), bool), **{**full, **settings})
    return s


def test_top_k_and_top_p_keep_what_the_host_keeps():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 50)) * 2).astype(np.float32)
    x[0, :3] = x[0, 3]  # ties at the k-th value: all kept, as on the host
    for k in (1, 4, 17):
        got = filter_top_k(Tensor(x), Tensor.full((6, 1), k, dtype="int32")).numpy()
        want = np.stack([process_logits(row, [], temperature=1.0, top_k=k) for row in x])
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    for p in (0.05, 0.5, 0.93):
        got = filter_top_p(Tensor(x), Tensor.full((6, 1), p)).numpy()
        want = np.stack([process_logits(row, [], temperature=1.0, top_p=p) for row in x])
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))


@pytest.mark.parametrize("settings", [{"temperature": 1.0}, {"temperature": 0.7, "top_k": 5},
                                      {"temperature": 1.3, "top_p": 0.8}])
def test_draws_follow_the_softmax(settings):
    """4,000 rows with the same logits, one draw each (each row has its own noise): chi-square against the host's
    distribution after the same filtering, at the 0.1% level."""
    logits = np.log(np.array([0.3, 0.2, 0.15, 0.1, 0.08, 0.07, 0.05, 0.03, 0.015, 0.005]))
    N, V = 4000, logits.size
    s = _state(np.tile(logits, (N, 1)).astype(np.float32), seed=11, **settings)
    rules = Rules.of(vocab_size=V, **{"top_k": None, "top_p": None, "repetition_penalty": 1.0, "vocab_limit": None,
                                      **settings})
    draws = pick(Tensor(np.tile(logits, (N, 1)).astype(np.float32)), s, rules).numpy()
    x = process_logits(logits, [], **{"top_k": None, "top_p": None, **settings})
    p = np.exp(x - x.max())
    p /= p.sum()
    counts = np.bincount(draws, minlength=V)
    assert counts[p == 0].sum() == 0  # filtered tokens are never drawn
    expected = N * p[p > 0]
    chi2 = (((counts[p > 0] - expected) ** 2) / expected).sum()
    assert chi2 < {1: 10.8, 2: 13.8, 3: 16.3, 4: 18.5, 5: 20.5, 6: 22.5, 7: 24.3, 8: 26.1, 9: 27.9}[(p > 0).sum() - 1]
    again = pick(Tensor(np.tile(logits, (N, 1)).astype(np.float32)), s, rules).numpy()
    assert (again != draws).mean() > 0.3  # the counter moved on: new numbers for the next draw


def test_several_steps_in_one_jit_call_make_the_same_ids(model, monkeypatch):
    """MINIMAC_DECODE_STEPS=4 (benchmarks/gpu_decode.sh measures it on NVIDIA) on this device: greedy ids unchanged,
    and seeded draws unchanged too (the draw counter advances once a token either way)."""
    kw = {"temperature": 0.9, "top_k": 40, "repetition_penalty": 1.2, "seed": 3}
    one = generate(model, PROMPTS[1], 11, **kw)
    monkeypatch.setenv("MINIMAC_DECODE_STEPS", "4")
    assert generate(model, PROMPTS[1], 11, temperature=0) == plain(generate, model, PROMPTS[1], 11, temperature=0)
    assert generate(model, PROMPTS[1], 11, **kw) == one
