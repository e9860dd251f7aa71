"""Tests for minimac/train.py: loss, label shift, schedule, clipping, the jitted step, checkpoints and guards."""
import math
import os
import signal

import numpy as np
import pytest
from tinygrad import Tensor

from minimac.model import ModelConfig, Transformer
from minimac.train import (
    CHECKPOINT,
    NonFiniteLossError,
    TrainConfig,
    Trainer,
    clip_by_global_norm,
    cross_entropy,
    lr_at,
    read_checkpoint_meta,
    shift_labels,
)

B, T, V = 4, 16, 300
TINY = dict(vocab_size=V, d_model=32, num_layers=1, num_query_heads=2, num_kv_heads=1, d_ff=64, max_seq_len=T)


def tiny_model(seed: int = 0, **overrides) -> Transformer:
    Tensor.manual_seed(seed)
    return Transformer(ModelConfig(**{**TINY, **overrides}))


def random_batches(seed: int = 0):
    """Batch of step s depends only on (seed, s): the data position is the step."""
    return lambda step: np.random.default_rng([seed, step]).integers(1, V, (B, T + 1)).astype(np.int32)


def weights(model) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def config(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(batch_size=B, seq_len=T, lr=1e-2, min_lr=1e-3, warmup_steps=2, max_steps=6,
                                 eval_every=0, ckpt_every=0), **kw})


def ce_reference(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -1) -> float:
    logits = logits.astype(np.float64)
    m = logits.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
    valid = targets != ignore_index
    picked = np.take_along_axis(logits, np.where(valid, targets, 0)[..., None], -1)[..., 0]
    return float(((lse - picked) * valid).sum() / max(valid.sum(), 1))


# ----- loss and labels -----

def test_cross_entropy_matches_numpy_and_skips_ignored_targets():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 7)).astype(np.float32) * 3
    targets = rng.integers(0, 7, (2, 5))
    targets[0, 1] = targets[1, 4] = -1
    got = cross_entropy(Tensor(logits), Tensor(targets.astype(np.int32))).item()
    np.testing.assert_allclose(got, ce_reference(logits, targets), rtol=1e-5, atol=1e-5)
    # the mean is over the 8 real targets only (tinygrad's sparse_categorical_crossentropy would divide by 10)
    kept = ce_reference(logits[0, [0, 2, 3, 4]][None], targets[0, [0, 2, 3, 4]][None])
    assert got != pytest.approx(kept)  # sanity: both rows count


def test_cross_entropy_is_stable_for_huge_logits_and_uniform_gives_log_v():
    logits = np.array([[[1000.0, 0.0, -1000.0], [50.0, 50.0, 50.0]]], dtype=np.float32)
    targets = np.array([[0, 2]])
    got = cross_entropy(Tensor(logits), Tensor(targets.astype(np.int32))).item()
    assert math.isfinite(got)
    np.testing.assert_allclose(got, ce_reference(logits, targets), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cross_entropy(Tensor.zeros(1, 3, 4), Tensor([[0, 1, 2]])).item(), math.log(4), rtol=1e-6)


def test_cross_entropy_all_ignored_is_zero_not_nan():
    assert cross_entropy(Tensor.ones(1, 2, 5), Tensor([[-1, -1]])).item() == 0.0


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    rng = np.random.default_rng(1)
    logits, targets = rng.normal(size=(1, 3, 4)).astype(np.float32), np.array([[1, -1, 3]])
    x = Tensor(logits)
    (g,) = cross_entropy(x, Tensor(targets.astype(np.int32))).gradient(x)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    expected = p.copy()
    expected[0, 0, 1] -= 1
    expected[0, 2, 3] -= 1
    expected[0, 1] = 0            # ignored position: no gradient
    np.testing.assert_allclose(g.numpy(), expected / 2, rtol=1e-5, atol=1e-6)


def test_cross_entropy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="vocabulary axis"):
        cross_entropy(Tensor.zeros(2, 3, 5), Tensor.zeros(2, 4, dtype="int32"))


def test_shift_labels_shifts_once():
    x, y = shift_labels(Tensor([[5, 6, 7, 8]]))
    assert x.tolist() == [[5, 6, 7]] and y.tolist() == [[6, 7, 8]]
    with pytest.raises(ValueError, match=r"\(B, T\+1\)"):
        shift_labels(Tensor([1, 2, 3]))


class NextTokenOracle:
    """Logits that put all the mass on (token + 1) % V, times a trainable scale: perfect if labels are shifted once."""

    def __init__(self):
        self.scale = Tensor([20.0])

    def parameters(self):
        return [self.scale]

    def __call__(self, x: Tensor) -> Tensor:
        return ((x + 1) % V).one_hot(V).float() * self.scale


def test_trainer_loss_at_position_t_uses_token_t_plus_1():
    batch = ((np.arange(T + 1)[None, :] + np.arange(B)[:, None] * 7) % V).astype(np.int32)  # b[t+1] = b[t] + 1
    oracle = NextTokenOracle()
    logits = (np.eye(V)[(batch[:, :-1] + 1) % V] * 20.0).astype(np.float32)
    single = ce_reference(logits, batch[:, 1:])                     # target at t is token t+1
    double = ce_reference(logits[:, :-1], batch[:, 2:])             # the seed's bug: target at t is token t+2
    assert single < 1e-6 < 1.0 < double
    trainer = Trainer(oracle, config(weight_decay=0.0), lambda s: batch, jit=False)
    loss, _ = trainer.train_step(batch)   # the loss reported is the one before the update
    np.testing.assert_allclose(loss, single, atol=1e-5)


# ----- schedule and clipping -----

def test_lr_at_warmup_then_cosine_to_min_lr():
    c = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    np.testing.assert_allclose([lr_at(s, c) for s in (0, 4, 9)], [0.1, 0.5, 1.0])
    np.testing.assert_allclose(lr_at(60, c), 0.55)            # half way down the cosine
    np.testing.assert_allclose([lr_at(110, c), lr_at(500, c)], [0.1, 0.1])
    decay = [lr_at(s, c) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    ref = [0.1 + 0.45 * (1 + math.cos(math.pi * (s - 10) / 100)) for s in range(10, 110)]
    np.testing.assert_allclose(decay[:-1], ref, rtol=1e-12)
    assert lr_at(0, TrainConfig(lr=1.0, warmup_steps=0, max_steps=10)) == 1.0


def test_clip_by_global_norm_matches_numpy():
    rng = np.random.default_rng(0)
    gs = [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(5,)).astype(np.float32)]
    norm = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in gs))
    clipped, got = clip_by_global_norm([Tensor(g) for g in gs], 1.0)
    np.testing.assert_allclose(got.item(), norm, rtol=1e-5)
    for c, g in zip(clipped, gs):
        np.testing.assert_allclose(c.numpy(), g / (norm + 1e-6), rtol=1e-5, atol=1e-6)
    unclipped, _ = clip_by_global_norm([Tensor(g) for g in gs], 100.0)   # below the limit: untouched
    np.testing.assert_allclose(unclipped[0].numpy(), gs[0], rtol=1e-6)


@pytest.mark.parametrize("bad, message", [(dict(lr=float("inf")), "lr"), (dict(min_lr=1.0, lr=0.1), "min_lr"),
                                          (dict(batch_size=0), "batch_size"), (dict(warmup_steps=-1), "warmup_steps"),
                                          (dict(betas=(0.9, 1.0)), "betas")])
def test_train_config_rejects_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)


# ----- the step -----

def test_jitted_step_equals_eager_step_small():
    """Catches a JIT that replays stale values (e.g. an lr assigned but never realized): a 1-parameter model."""
    runs = []
    for jit in (True, False):
        model = NextTokenOracle()
        trainer = Trainer(model, config(warmup_steps=3, weight_decay=0.0), random_batches(), jit=jit)
        trainer.fit(until_step=4)   # TinyJit runs, captures, then replays twice, with a new lr each step
        runs.append(([h["loss"] for h in trainer.history], model.scale.numpy()))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-6)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-6)


@pytest.mark.slow
def test_jitted_step_equals_eager_step():
    runs = []
    for jit in (True, False):
        model = tiny_model()
        trainer = Trainer(model, config(warmup_steps=3), random_batches(), jit=jit)
        trainer.fit(until_step=3)   # TinyJit runs, captures, then replays (with a new lr each step)
        runs.append(([h["loss"] for h in trainer.history], weights(model)))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5, atol=1e-5)
    for k in runs[0][1]:
        np.testing.assert_allclose(runs[0][1][k], runs[1][1][k], rtol=1e-5, atol=1e-5, err_msg=k)


def test_tiny_model_overfits_one_batch():
    batch = random_batches()(0)
    trainer = Trainer(tiny_model(), config(max_steps=80, warmup_steps=5, weight_decay=0.0), lambda s: batch)
    trainer.fit()
    first, last = trainer.history[0]["loss"], trainer.history[-1]["loss"]
    assert last < 0.1 * first, (first, last)


def test_step_updates_only_the_parameters_it_was_given():
    model = tiny_model()
    trainable = [model.layers[0].feed_forward.w1.weight, model.norm.weight]
    before = weights(model)
    Trainer(model, config(), random_batches(), params=trainable).fit(until_step=2)
    after = weights(model)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed == {"layers.0.feed_forward.w1.weight", "norm.weight"}


def test_norm_gains_are_not_weight_decayed():
    trainer = Trainer(tiny_model(), config(weight_decay=0.5), random_batches())
    decayed = {id(p) for o in trainer.optimizers if o.wd > 0 for p in o.params}
    assert decayed and all(p.ndim >= 2 for p in trainer.params if id(p) in decayed)
    assert not any(id(p) in decayed for p in trainer.params if p.ndim < 2)


def test_train_step_rejects_a_batch_of_the_wrong_shape():
    trainer = Trainer(tiny_model(), config(), random_batches())
    with pytest.raises(ValueError, match=r"needs \(batch_size, seq_len\+1\) = "):
        trainer.train_step(np.zeros((B, T), dtype=np.int32))


# ----- checkpoints, resume, guards -----

def test_resume_continues_bit_identically(tmp_path):
    """6 steps in one go == 3 steps, save, load into a fresh model (other init), 3 more; dropout on, so RNG too."""
    straight = tiny_model(dropout=0.1)
    Trainer(straight, config(), random_batches(), out_dir=tmp_path / "a").fit()
    first = Trainer(tiny_model(dropout=0.1), config(), random_batches(), out_dir=tmp_path / "b")
    assert first.fit(until_step=3) == "done"
    assert read_checkpoint_meta(tmp_path / "b")["step"] == 3
    resumed_model = tiny_model(seed=99, dropout=0.1)
    resumed = Trainer(resumed_model, config(), random_batches(), out_dir=tmp_path / "b")
    resumed.load(tmp_path / "b")
    assert resumed.step == 3
    resumed.fit()
    straight_w, resumed_w = weights(straight), weights(resumed_model)
    for k in straight_w:
        np.testing.assert_array_equal(straight_w[k], resumed_w[k], err_msg=k)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in read_history(tmp_path / "a")]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [CHECKPOINT]   # no temp files left behind


def read_history(folder):
    return read_checkpoint_meta(folder)["history"]


def test_loading_a_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    Trainer(tiny_model(), config(), random_batches()).save(tmp_path)
    other = Trainer(tiny_model(d_ff=32), config(), random_batches())
    with pytest.raises(ValueError, match="different model config"):
        other.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        other.load(tmp_path / "missing")


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    model = tiny_model()

    def poison(record):   # after step 2 was saved, a weight goes bad (as after an exploding update)
        if record["step"] == 2:
            model.norm.weight.assign(Tensor.full(model.norm.weight.shape, float("nan"))).realize()

    trainer = Trainer(model, config(ckpt_every=1), random_batches(), out_dir=tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan .*at step 3 .*last good checkpoint"):
        trainer.fit(log=poison)
    saved = read_checkpoint_meta(tmp_path)
    assert saved["step"] == 2
    fresh = Trainer(tiny_model(seed=5), config(), random_batches())
    fresh.load(tmp_path)
    assert all(np.isfinite(w).all() for w in weights(fresh.model).values())


def test_a_last_update_that_goes_nan_is_never_saved(tmp_path):
    """The loss of a step is computed before its update: weights made non-finite by the last update must still not
    overwrite a good checkpoint."""
    model = tiny_model()
    trainer = Trainer(model, config(), random_batches(), out_dir=tmp_path)
    trainer.train_step(random_batches()(0))
    trainer.save()
    good = (tmp_path / CHECKPOINT).read_bytes()
    model.norm.weight.assign(Tensor.full(model.norm.weight.shape, float("inf"))).realize()   # as after a bad update
    with pytest.raises(NonFiniteLossError, match=r"not saving .*norm.weight .*nan or inf after the last update"):
        trainer.save()
    assert (tmp_path / CHECKPOINT).read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT]   # no temp file left behind


def test_ctrl_c_finishes_the_step_saves_and_stops(tmp_path):
    def press_ctrl_c(record):
        if record["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    trainer = Trainer(tiny_model(), config(), random_batches(), out_dir=tmp_path)
    assert trainer.fit(log=press_ctrl_c) == "interrupted"
    assert read_checkpoint_meta(tmp_path)["step"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # the handler is put back


def test_evaluate_is_called_every_eval_every_steps_and_at_the_end():
    calls = []
    trainer = Trainer(tiny_model(), config(eval_every=2, max_steps=5), random_batches(),
                      evaluate=lambda m: calls.append(1) or {"bits_per_byte": 1.0})
    trainer.fit(until_step=3)   # stopping early (as the CLI's calibration does) is not the end: no evaluation at 3
    trainer.fit()
    assert [h["step"] for h in trainer.history if "eval" in h] == [2, 4, 5] and len(calls) == 3


# ----- the command line: python -m minimac.pretrain -----

@pytest.fixture
def tiny_preset(monkeypatch):
    """Make the `nano` preset tiny so a whole CLI run takes seconds."""
    import minimac.model
    monkeypatch.setitem(minimac.model.PRESETS, "nano", {**TINY, "max_seq_len": 32})


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = "the cat sat on a mat and then it ran to see the dog who was not there but came back later".split()
    paragraphs = [" ".join(rng.choice(words, 40)) + "." for _ in range(60)]
    path = tmp_path_factory.mktemp("corpus") / "story.txt"
    path.write_text("\n\n".join(paragraphs))
    return path


def cli(*args) -> list[str]:
    return ["--batch-size", "2", "--seq-len", "16", "--vocab-size", "300", "--no-live", "--sample-tokens", "0",
            "--eval-every", "0", *args]


def test_cli_pretrains_writes_a_run_directory_and_resumes(tiny_preset, text_file, tmp_path):
    import json

    from minimac.pretrain import main
    from minimac.tokenizer import Tokenizer
    out = tmp_path / "run"
    assert main(cli("--corpus", str(text_file), "--steps", "4", "--out", str(out))) == 0
    written = {p.name for p in out.iterdir()}
    assert {"tokenizer", "model.safetensors", "config.json", CHECKPOINT, "metrics.json"} <= written
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 4 and m["tokens_seen"] == 4 * 2 * 16 and math.isfinite(m["heldout_bits_per_byte"])
    assert m["heldout_bits_per_byte"] > 0 and "minimac.pretrain" in m["command"] and m["machine"]["cpu_count"]
    assert Tokenizer.load(out / "tokenizer").vocab_size <= 300
    assert main(["--resume", str(out), "--steps", "6", "--no-live", "--sample-tokens", "0"]) == 0
    assert read_checkpoint_meta(out)["step"] == 6
    assert [h["step"] for h in read_checkpoint_meta(out)["history"]] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match=r"--seq-len 32 does not match the checkpoint .*seq_len = 16"):
        main(["--resume", str(out), "--seq-len", "32", "--no-live"])
    with pytest.raises(ValueError, match=r"--corpus default does not match"):
        main(["--resume", str(out), "--corpus", "default", "--no-live"])


def test_cli_minutes_budget_fixes_max_steps_after_timing_a_few_steps(tiny_preset, text_file, tmp_path):
    from minimac.pretrain import CALIBRATION_STEPS, main
    assert main(cli("--corpus", str(text_file), "--minutes", "0.01", "--out", str(tmp_path))) == 0
    meta = read_checkpoint_meta(tmp_path)
    assert meta["step"] >= CALIBRATION_STEPS
    assert meta["train_config"]["max_steps"] >= CALIBRATION_STEPS + 1   # no longer the "not yet known" sentinel


def test_cli_unknown_corpus_lists_the_choices(tmp_path):
    from minimac.pretrain import main
    with pytest.raises(ValueError, match=r"unknown corpus 'shakespear'.*gutenberg.*tinyshakespeare"):
        main(cli("--corpus", "shakespear", "--out", str(tmp_path)))


def test_cli_empty_or_too_short_corpus_is_a_clear_error(tiny_preset, text_file, tmp_path):
    from minimac.pretrain import main
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(ValueError, match="is empty"):
        main(cli("--corpus", str(empty), "--out", str(tmp_path / "a")))
    short = tmp_path / "short.txt"
    short.write_text("one small paragraph.\n\n" * 12)
    with pytest.raises(ValueError, match="too short: it needs text in both its train and valid splits"):
        main(cli("--corpus", str(short), "--out", str(tmp_path / "b")))
    with pytest.raises(ValueError, match="need at least .* tokens for one batch"):
        main(cli("--corpus", str(text_file), "--batch-size", "512", "--out", str(tmp_path / "b")))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        main(cli("--corpus", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "c")))


def test_cli_resume_needs_a_checkpoint_of_its_own(tmp_path):
    from minimac.pretrain import main
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        main(["--resume", str(tmp_path), "--no-live"])
    Trainer(NextTokenOracle(), config(), random_batches()).save(tmp_path)   # a library checkpoint, no CLI settings
    with pytest.raises(ValueError, match="not written by `python -m minimac.pretrain`"):
        main(["--resume", str(tmp_path), "--no-live"])
