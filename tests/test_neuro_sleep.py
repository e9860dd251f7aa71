"""Sleep (minimac/neuro/sleep.py): the Hebbian and pruning rules against numpy, token-flip dreams, and the FIX of the
seed's bug: counts are non-zero when there is something to do, and only LoRA tensors change."""
from types import SimpleNamespace

import numpy as np
import pytest
from tinygrad import Tensor

from minimac import lora
from minimac.model import ModelConfig, Transformer
from minimac.neuro.sleep import Sleep, SleepConfig, flip_tokens, lora_sites, prune, replay_hebbian, seed_hebbian
from minimac.replay import Experience


@pytest.fixture(scope="module")
def model():
    m = Transformer(ModelConfig(vocab_size=300, d_model=32, num_layers=1, num_query_heads=2, num_kv_heads=1,
                                d_ff=64, max_seq_len=16))
    lora.inject_lora(m, lora.LoRAConfig(r=4))
    return m


@pytest.fixture
def trained(model):
    """The adapter as after some learning: B no longer zero. Restored afterwards."""
    rng = np.random.default_rng(0)
    saved = {k: v.numpy().copy() for k, v in lora.adapter_state_dict(model).items()}
    for k, v in lora.adapter_state_dict(model).items():
        if "lora_B" in k:
            v.assign(Tensor(rng.normal(0, 0.02, v.shape).astype(np.float32))).realize()
    yield model
    for k, v in lora.adapter_state_dict(model).items():
        v.assign(Tensor(saved[k])).realize()


ITEMS = [Experience(np.random.default_rng(i).integers(1, 257, 17)) for i in range(6)]


def test_flip_tokens_flips_about_prob_and_respects_the_mask():
    rng = np.random.default_rng(0)
    tokens = np.full((50, 40), 7)
    mask = np.ones_like(tokens)
    mask[:, 30:] = 0
    out = flip_tokens(tokens, 0.05, 300, rng, mask)
    assert np.all(out[:, 30:] == 7)
    assert 0.03 < np.mean(out[:, :30] != 7) < 0.07


def test_seed_hebbian_matches_numpy_reference():
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(4, 10)), rng.normal(size=(6, 4))
    D = B @ A
    med = np.median(np.abs(D))
    step = np.zeros_like(B)
    for o in range(6):            # B[o, j] += lr * sum_i sign(D[o, i]) [|D[o, i]| > med] A[j, i]
        for j in range(4):
            step[o, j] = sum(np.sign(D[o, i]) * (abs(D[o, i]) > med) * A[j, i] for i in range(10))
    np.testing.assert_allclose(seed_hebbian(A, B, 0.01), B + 0.01 * step, rtol=1e-12)


def test_replay_hebbian_grows_the_directions_replay_uses():
    B = np.ones((3, 2))
    C = np.diag([3.0, 1.0])                              # direction 0 is active three times as much
    new = replay_hebbian(B, C, 0.1)
    np.testing.assert_allclose(new, B + 0.1 * B @ (C / 2.0 - np.eye(2)), rtol=1e-12)
    assert np.all(new[:, 0] > 1) and np.all(new[:, 1] < 1)
    np.testing.assert_array_equal(replay_hebbian(B, np.zeros((2, 2)), 0.1), B)   # no activity: no change


def test_prune_counts_only_live_weights():
    w = np.array([0.0, 0.001, -0.002, 0.5, -0.3])
    new, n = prune(w, 0.01, relative=False)
    np.testing.assert_array_equal(new, [0, 0, 0, 0.5, -0.3])
    assert n == 2
    rms = np.sqrt(np.mean(w ** 2))
    assert prune(w, 0.1, relative=True)[1] == int(np.sum((np.abs(w) < 0.1 * rms) & (w != 0)))


def test_sleep_counts_are_nonzero_and_only_lora_changes(trained):
    base = {k: v.numpy().copy() for k, v in trained.state_dict().items() if "lora" not in k}
    before = {k: v.numpy().copy() for k, v in lora.adapter_state_dict(trained).items()}
    sleep = Sleep(SleepConfig(num_replay_cycles=2, dream_rows=4))
    counts = sleep.consolidate(trained, ITEMS, seq_len=16)
    assert counts["replay_cycles"] == 2 and counts["dreams"] == 8
    assert counts["connections_strengthened"] > 0 and counts["connections_weakened"] > 0    # the seed measured 0
    assert counts["connections_pruned"] > 0
    after = lora.adapter_state_dict(trained)
    assert any(not np.array_equal(before[k], after[k].numpy()) for k in before if "lora_B" in k)
    for k, v in trained.state_dict().items():
        if "lora" not in k:
            np.testing.assert_array_equal(v.numpy(), base[k])      # the frozen base is untouched
    assert sleep.readout()["connections_pruned"] == counts["connections_pruned"]


def test_dreams_drive_our_rule_but_not_the_seeds(trained):
    saved = {k: v.numpy().copy() for k, v in lora.adapter_state_dict(trained).items()}

    def b_after(rule, items):
        for k, v in lora.adapter_state_dict(trained).items():
            v.assign(Tensor(saved[k])).realize()
        Sleep(SleepConfig(rule=rule, num_replay_cycles=1, dream_rows=2, pruning_threshold=0.0, flip_prob=0.0,
                          hebbian_lr=0.01)).consolidate(trained, items, 16)
        return lora.adapter_state_dict(trained)["layers.0.feed_forward.w1.lora_B.weight"].numpy()

    other = [Experience(np.full(17, 5))] * 2
    assert not np.allclose(b_after("replay", ITEMS[:2]), b_after("replay", other))
    np.testing.assert_allclose(b_after("seed", ITEMS[:2]), b_after("seed", other))


def test_dream_coactivation_is_positive_semidefinite(trained):
    sleep = Sleep(SleepConfig(dream_rows=4))
    cs = sleep.dream(trained, ITEMS, 16, lora_sites(trained))
    assert len(cs) == 7                                             # q, k, v, o, w1, w2, w3 of the one block
    for C in cs:
        assert C.shape == (4, 4) and np.linalg.eigvalsh(C).min() > -1e-6 * np.trace(C)


def test_nothing_to_do_gives_zero_counts(model):
    sleep = Sleep()
    assert sleep.consolidate(model, [], 16)["connections_pruned"] == 0          # empty memory: no KeyError (seed)
    learner = SimpleNamespace(model=model, replay=SimpleNamespace(experiences=[]), config=SimpleNamespace(seq_len=16))
    sleep.on_domain_end(learner, "a")
    assert sleep.last["replay_cycles"] == 0 and sleep.sleeps == 0
    with lora.disable_adapters(model):
        assert sleep.consolidate(model, ITEMS, 16)["replay_cycles"] == 0       # no active adapter: nothing to do


@pytest.mark.parametrize("field, value", [("num_replay_cycles", 0), ("dream_rows", 0), ("flip_prob", 1.5),
                                          ("hebbian_lr", -0.1), ("pruning_threshold", -1.0)])
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"SleepConfig.{field}"):
        SleepConfig(**{field: value})


def test_invalid_rule():
    with pytest.raises(ValueError, match="SleepConfig.rule"):
        SleepConfig(rule="nap")
